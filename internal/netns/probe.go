package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// TxChecksumOff turns off the interface's TX checksum offload (ETHTOOL_STXCSUM),
// as `ethtool -K name tx off` does, in the calling thread's namespace. A veth
// with offload hands on datagrams whose UDP checksum covers only the pseudo
// header (the receiving stack is told to trust it); a test whose receiver sees
// the bytes (an XDP program, an AF_XDP socket, a reply rebuilt from them) needs
// real checksums, as a NIC delivers.
func TxChecksumOff(name string) error {
	const ethtoolSTxCsum = 0x17
	return ethtoolSet(name, ethtoolSTxCsum, 0, "turning off TX checksum offload")
}

// XDPPass attaches an XDP program that passes every packet to the interface
// (native mode), in the calling thread's namespace, until the returned
// function is called. A veth takes the frames its peer sends from XDP (XDP_TX,
// a redirect) only while it has an XDP program itself: without one the kernel
// drops them after the first ring's worth (a NIC has no such condition).
func XDPPass(name string) (detach func(), err error) {
	spec := &ebpf.ProgramSpec{
		Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
		// Multi-buffer capable, or it would not attach above an MTU of
		// about a page (veth at 9001); kernels before 5.18 lack the flag.
		Flags: unix.BPF_F_XDP_HAS_FRAGS,
	}
	prog, err := ebpf.NewProgram(spec)
	if err != nil {
		spec.Flags = 0
		if prog, err = ebpf.NewProgram(spec); err != nil {
			return nil, err
		}
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		prog.Close()
		return nil, err
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi.Index, Flags: link.XDPDriverMode})
	if err != nil {
		prog.Close()
		return nil, fmt.Errorf("attaching XDP_PASS to %s: %w", name, err)
	}
	return func() { l.Close(); prog.Close() }, nil
}

// ethtoolSet issues an ethtool set command that takes a struct ethtool_value.
func ethtoolSet(name string, cmd, v uint32, what string) error {
	val := [2]uint32{cmd, v} // struct ethtool_value
	var ifr [40]byte         // struct ifreq: the name, then a pointer to val
	copy(ifr[:], name)
	*(*uintptr)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = uintptr(unsafe.Pointer(&val[0]))
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr[0])))
	runtime.KeepAlive(&val)
	if e != 0 {
		return fmt.Errorf("%s on %s: %w", what, name, e)
	}
	return nil
}

// Ping sends ICMP echo requests to dst from a raw socket in the calling thread's
// namespace and waits, bounded in tries and time, for a reply with its identifier.
func Ping(dst netip.Addr) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	const id = 0x5e1f
	echo := []byte{8, 0, 0, 0, id >> 8, id & 0xff, 0, 1, 'w', 'e', 'i', 'r'}
	c := icmpChecksum(echo)
	echo[2], echo[3] = byte(c>>8), byte(c)
	buf := make([]byte, 1500)
	for range 10 {
		if err := unix.Sendto(fd, echo, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
			return err
		}
		for range 5 {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				break
			}
			// The raw socket hands the IPv4 header too.
			if n < 20 || n < int(buf[0]&0xf)*4+8 {
				continue
			}
			icmp := buf[int(buf[0]&0xf)*4 : n]
			if icmp[0] == 0 && icmp[4] == id>>8 && icmp[5] == id&0xff {
				return nil
			}
		}
	}
	return errors.New("no echo reply")
}

// icmpChecksum is the Internet checksum of b (RFC 1071).
func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
