package xdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"weir/dataplane/afxdp/xsk"
	"weir/internal/netns"
)

// jumboPair makes two namespaces of the test's own joined by a veth pair
// with MTU 9000: wxdp0 in ours (addresses .1 and .3) and wxdp1 in the
// peer's (.2). Both are deleted when the test ends, failed or not.
func jumboPair(t *testing.T) (ours, peer string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set, so not skipping: a veth pair needs root")
		}
		t.Skip("a veth pair needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set, so not skipping: needs ip")
		}
		t.Skip("needs ip")
	}
	base := fmt.Sprintf("wxdp-%d-%d", os.Getpid(), time.Now().UnixNano()%1000000)
	ours, peer = base+"-a", base+"-b"
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{ours, peer} {
		ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	ip("-n", ours, "link", "add", "wxdp0", "mtu", "9000", "type", "veth", "peer", "name", "wxdp1", "mtu", "9000", "netns", peer)
	ip("-n", ours, "addr", "add", "10.77.0.1/24", "dev", "wxdp0")
	ip("-n", ours, "addr", "add", "10.77.0.3/24", "dev", "wxdp0")
	ip("-n", peer, "addr", "add", "10.77.0.2/24", "dev", "wxdp1")
	ip("-n", ours, "link", "set", "wxdp0", "up")
	ip("-n", peer, "link", "set", "wxdp1", "up")
	return ours, peer
}

// attachNative attaches prog to wxdp0 in namespace ns in driver mode.
func attachNative(t *testing.T, ns string, l *loaded) (link.Link, error) {
	t.Helper()
	var xl link.Link
	err := netns.Run(ns, func() error {
		ifi, err := net.InterfaceByName("wxdp0")
		if err != nil {
			return err
		}
		xl, err = link.AttachXDP(link.XDPOptions{Program: l.prog, Interface: ifi.Index, Flags: link.XDPDriverMode})
		return err
	})
	return xl, err
}

// TestVethJumbo attaches the program natively to a veth with MTU 9000, as
// on an ENA with MTU 9001, and sends GENEVE to it from the peer namespace:
// jumbo datagrams to the configured address are passed, counted oversize,
// and reach the UDP socket; small ones to it go to the AF_XDP socket; ones
// to the host's other address are not ours and reach the UDP socket too.
// Only our side has an XDP program: receiving needs none on the peer.
func TestVethJumbo(t *testing.T) {
	ours, peer := jumboPair(t)
	cfg := Config{
		GenevePort: 6081, VXLANPort: 4789, Queues: 1,
		GeneveDst: netip.MustParseAddr("10.77.0.1"),
		MaxFrame:  4096 - 256, // a UMEM frame less XDP_PACKET_HEADROOM
	}

	// Without frags native XDP is refused at this MTU: the reason for Frags.
	if xl, err := attachNative(t, ours, load(t, cfg)); err == nil {
		xl.Close()
		t.Fatal("a program without the frags flag attached natively at MTU 9000")
	} else {
		t.Logf("without frags, as expected: %v", err)
	}

	cfg.Frags = true
	l := load(t, cfg)
	xl, err := attachNative(t, ours, l)
	if err != nil {
		t.Fatalf("attaching the frags program natively at MTU 9000: %v", err)
	}
	defer xl.Close()

	// An AF_XDP socket on the only queue, so a steered packet is redirected
	// (and, with no frames on its fill ring, dropped there).
	var sock *xsk.Socket
	err = netns.Run(ours, func() error {
		ifi, err := net.InterfaceByName("wxdp0")
		if err != nil {
			return err
		}
		sock, err = xsk.Open(xsk.Config{Ifindex: ifi.Index, Queue: 0, Frames: 64, FrameSize: 4096, RingSize: 64, ZeroCopy: xsk.ZeroCopyOff})
		return err
	})
	if err != nil {
		if (errors.Is(err, xsk.ErrNotSupported) || errors.Is(err, unix.EPERM)) && os.Getenv("CI") == "" {
			t.Skipf("the kernel refuses AF_XDP: %v", err)
		}
		t.Fatalf("AF_XDP socket: %v", err)
	}
	defer sock.Close()
	if err := l.coll.Maps[MapXSKs].Put(uint32(0), uint32(sock.FD())); err != nil {
		t.Fatal(err)
	}

	var recv, send *net.UDPConn
	if err := netns.Run(ours, func() (err error) {
		recv, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 6081})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	if err := netns.Run(peer, func() (err error) {
		send, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 77, 0, 2)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer send.Close()

	// The first byte of each payload says which kind it is.
	const (
		kindSmall = 's' // to GeneveDst, fits a frame: redirected
		kindJumbo = 'j' // to GeneveDst, 8000 bytes: passed oversize
		kindOther = 'o' // to the other address: passed
		perKind   = 5
		jumboLen  = 8000
	)
	datagram := func(kind byte, n int) []byte {
		b := make([]byte, n)
		b[0] = kind
		return b
	}
	geneveDst := &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 6081}
	other := &net.UDPAddr{IP: net.IPv4(10, 77, 0, 3), Port: 6081}
	for range perKind {
		for _, d := range []struct {
			to *net.UDPAddr
			b  []byte
		}{
			{geneveDst, datagram(kindSmall, 100)},
			{geneveDst, datagram(kindJumbo, jumboLen)},
			{other, datagram(kindOther, 100)},
		} {
			if _, err := send.WriteToUDP(d.b, d.to); err != nil {
				t.Fatalf("sending %d bytes to %v: %v", len(d.b), d.to, err)
			}
		}
	}

	got := map[byte]int{}
	buf := make([]byte, 9000)
	if err := recv.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for got[kindJumbo]+got[kindOther] < 2*perKind {
		n, _, err := recv.ReadFromUDP(buf)
		if err != nil {
			c, _ := ReadCounters(l.coll)
			out, _ := exec.Command("ip", "-n", ours, "-s", "-s", "link", "show", "wxdp0").CombinedOutput()
			t.Fatalf("after %v received: %v; counters %+v\n%s", got, err, c, out)
		}
		if buf[0] == kindJumbo && n != jumboLen {
			t.Errorf("a jumbo datagram arrived with %d bytes", n)
		}
		got[buf[0]]++
	}
	if got[kindSmall] != 0 {
		t.Errorf("%d small datagrams to the steered address reached the UDP socket; want them redirected", got[kindSmall])
	}

	c, err := ReadCounters(l.coll)
	if err != nil {
		t.Fatal(err)
	}
	// Passed also counts ARP and IPv6 neighbour traffic, so it is a floor.
	if c.PassedOversize != perKind || c.Redirected != perKind || c.Passed < perKind || c.NoSocket != 0 {
		t.Errorf("counters %+v, want %d oversize, %d redirected, at least %d passed, none without a socket", c, perKind, perKind, perKind)
	}
	t.Logf("received %v; counters %+v", got, c)
}
