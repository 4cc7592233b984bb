package socket

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// portSockets caches UDP sockets bound to local address:port and connected to the
// GWLB, for the unprivileged reply path. GWLB uses one source port per flow, so the
// cache is bounded and the oldest socket is closed when it is full. Connected, a
// socket only ever matches datagrams from its GWLB, so it never takes traffic meant
// for the listeners even when it shares their port.
type portSockets struct {
	max   int
	fds   map[portKey]int
	order []portKey // insertion order, oldest first
}

type portKey struct{ local, remote netip.AddrPort }

func newPortSockets(max int) *portSockets {
	return &portSockets{max: max, fds: make(map[portKey]int, max)}
}

func (p *portSockets) get(local, remote netip.AddrPort) (int, error) {
	k := portKey{local, remote}
	if fd, ok := p.fds[k]; ok {
		return fd, nil
	}
	if len(p.fds) >= p.max {
		old := p.order[0]
		p.order = p.order[1:]
		unix.Close(p.fds[old])
		delete(p.fds, old)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, err
	}
	// Another socket (ours or the system's) may hold the port: share it.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
	// Nothing is ever read from these sockets; keep what arrives small.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(local.Port()), Addr: local.Addr().As4()}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", local, err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(remote.Port()), Addr: remote.Addr().As4()}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", remote, err)
	}
	p.fds[k] = fd
	p.order = append(p.order, k)
	return fd, nil
}

func (p *portSockets) close() {
	for _, fd := range p.fds {
		unix.Close(fd)
	}
	p.fds = nil
	p.order = nil
}
