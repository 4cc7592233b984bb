package socket

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"weir/dataplane"
)

// ErrInUse is matched (errors.Is) by the error New returns when another process
// already receives on a listener's address.
var ErrInUse = errors.New("listen address in use by another process")

type inUseError struct {
	l    Listener
	hint string
}

func (e *inUseError) Error() string {
	return fmt.Sprintf("%s %s is already in use by another process (another weir?)%s", e.l.key(), e.l.Addr, e.hint)
}

func (e *inUseError) Is(target error) bool { return target == ErrInUse }

// key is the configuration key the listener comes from, for errors.
func (l Listener) key() string { return l.label() + ".listen" }

// label names the listener in metrics: gwlb or mirror.
func (l Listener) label() string {
	switch l.Encap {
	case dataplane.EncapGeneve:
		return "gwlb"
	case dataplane.EncapVXLAN:
		return "mirror"
	}
	return "udp"
}

// claim makes sure that no other process receives on l.Addr, before the SO_REUSEPORT
// sockets open: with SO_REUSEPORT a second weir (same user) would silently join
// their group and take a share of the flows. It returns a lock held until closed.
//
// Two checks. The lock is an abstract unix socket named after the address: abstract
// names live per network namespace, as ports do, and the kernel frees them when the
// process dies, so no stale lock survives a crash; it settles two weirs starting at
// the same time. Then a probe socket without SO_REUSEPORT or SO_REUSEADDR is bound
// to the address and closed: bind checks overlapping addresses too (0.0.0.0:6081
// against 10.0.0.5:6081), so it finds a weir on another address of the same port,
// or any other program's socket there. (Two weirs on overlapping but different
// addresses starting within the same few microseconds could both pass the probe;
// the lock cannot see them, as it is per address.)
func claim(l Listener) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket backend: lock socket: %w", err)
	}
	// Never listened on: a connect is refused, nothing is ever queued.
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: "@weir/udp/" + l.Addr.String()}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return -1, &inUseError{l: l}
		}
		return -1, fmt.Errorf("socket backend: lock for %s %s: %w", l.key(), l.Addr, err)
	}
	if err := probe(l.Addr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return -1, &inUseError{l: l, hint: fmt.Sprintf("; `ss -ulpn 'sport = :%d'` names it", l.Addr.Port())}
		}
		return -1, fmt.Errorf("socket backend: bind %s %s: %w", l.key(), l.Addr, err)
	}
	return fd, nil
}

// probe binds a plain UDP socket to addr, which fails if any socket has it.
func probe(addr netip.AddrPort) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Bind(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()})
}
