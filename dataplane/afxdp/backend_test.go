package afxdp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"weir/dataplane"
	"weir/dataplane/afxdp/xsk"
	"weir/dataplane/flow"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
	"weir/internal/netns"
)

func skipOutsideCI(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why + ", and this is CI")
	}
	t.Skip(why)
}

// newNetns creates a network namespace, deleted when the test ends.
func newNetns(t testing.TB, role string) string {
	t.Helper()
	ns := fmt.Sprintf("weir-afxdp-%s-%d", role, os.Getpid())
	exec.Command("ip", "netns", "del", ns).Run() // a killed run's leftover
	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	return ns
}

// newIn is New run in namespace ns, where the interface is.
func newIn(t testing.TB, ns string, cfg Config) *Backend {
	t.Helper()
	var b *Backend
	if err := inNetns(ns, func() (err error) {
		b, err = New(cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

// runIn starts b.Run on a thread of its own in namespace ns (never switched
// back: it ends with the goroutine); ready closes when Run calls back, done
// gets Run's error.
func runIn(ctx context.Context, ns string, b *Backend, p *dataplane.Pipeline) (ready chan struct{}, done chan error) {
	ready, done = make(chan struct{}), make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Enter(ns); err != nil {
			done <- err
			return
		}
		done <- b.Run(ctx, p, func() { close(ready) })
	}()
	return ready, done
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs f on an OS thread switched into namespace ns (netns.Run).
func inNetns(ns string, f func() error) error { return netns.Run(ns, f) }

var (
	gwlbAddr      = netip.MustParseAddr("10.77.0.1")
	applianceAddr = netip.MustParseAddr("10.77.0.2")
)

const gwlbPort = 40123 // the GWLB's source port P

// innerPacket is a valid IPv4 TCP packet of flow i.
func innerPacket(t testing.TB, i int) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IPv4(10, 1, byte(i>>8), byte(i)), DstIP: net.IPv4(10, 2, 0, 1)}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(20000 + i), DstPort: 443, SYN: true, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, tcp, gopacket.Payload(bytes.Repeat([]byte{byte(i)}, i%97))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBackendHairpin runs the backend on one end of a veth pair between two
// namespaces of the test's own and plays the GWLB from the other end: every
// GENEVE datagram comes back to GWLB:6081 from the appliance's port P, its
// payload unchanged; on the wire each reply is the datagram's frame with the
// MAC and IP addresses swapped and no other byte changed; and ping and TCP
// still reach the appliance namespace's kernel.
func TestBackendHairpin(t *testing.T) {
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d queues", queues), func(t *testing.T) { hairpin(t, queues) })
	}
}

// newVethPair makes the appliance's namespace and the GWLB's, joined by a veth
// pair with the given number of queues each way: afx0 (the appliance's,
// applianceAddr) and afx1 (the GWLB's, gwlbAddr, with an XDP_PASS program).
func newVethPair(t *testing.T, queues int) (weirNS, gwlbNS string) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOutsideCI(t, "needs root for network namespaces and XDP")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipOutsideCI(t, "needs ip")
	}
	weirNS, gwlbNS = newNetns(t, "w"), newNetns(t, "g")
	q := fmt.Sprint(queues)
	ipCmd(t, "-n", weirNS, "link", "add", "afx0", "numrxqueues", q, "numtxqueues", q, "type", "veth",
		"peer", "name", "afx1", "netns", gwlbNS, "numrxqueues", q, "numtxqueues", q)
	ipCmd(t, "-n", weirNS, "addr", "add", applianceAddr.String()+"/24", "dev", "afx0")
	ipCmd(t, "-n", gwlbNS, "addr", "add", gwlbAddr.String()+"/24", "dev", "afx1")
	ipCmd(t, "-n", weirNS, "link", "set", "afx0", "up")
	ipCmd(t, "-n", gwlbNS, "link", "set", "afx1", "up")

	var detachPeer func()
	if err := inNetns(gwlbNS, func() (err error) { detachPeer, err = netns.XDPPass("afx1"); return err }); err != nil {
		skipOutsideCI(t, "the kernel refuses XDP on veth: "+err.Error())
	}
	t.Cleanup(detachPeer)
	// With checksum offload, veth hands on datagrams whose UDP checksum is only
	// the pseudo-header's part, to be finished by a NIC that is not there: the
	// reflected reply would then fail the receiver's check. A GWLB sends whole
	// checksums, so the sender does too.
	if err := inNetns(gwlbNS, func() error { return netns.TxChecksumOff("afx1") }); err != nil {
		t.Fatal(err)
	}
	return weirNS, gwlbNS
}

func hairpin(t *testing.T, queues int) {
	weirNS, gwlbNS := newVethPair(t, queues)
	const flows = 300
	table := flow.NewTable(flow.Config{MaxFlows: 4 * flows}, &policy.Policy{Default: policy.Allow}, func(*flow.Record) {})
	p := dataplane.NewPipeline(&dataplane.GeneveDecode{}, dataplane.InnerDecode{}, &dataplane.Track{Table: table})

	b := newIn(t, weirNS, Config{Interface: "afx0", ZeroCopy: xsk.ZeroCopyAuto, Batch: 32})
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := runIn(ctx, weirNS, b, p)
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("Run did not return within 10 s of ctx ending")
		}
	}
	defer stop()
	select {
	case <-ready:
	case err := <-done:
		if errors.Is(err, xsk.ErrNotSupported) || errors.Is(err, unix.EPERM) || errors.Is(err, ebpf.ErrNotSupported) {
			skipOutsideCI(t, "the kernel refuses AF_XDP or XDP: "+err.Error())
		}
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run not ready within 10 s")
	}
	t.Logf("backend: %s", b.Name())
	if n := len(b.Stats()); n != queues {
		t.Errorf("%d queues bound, want the interface's %d", n, queues)
	}

	// The GWLB side: a sender bound to P, a receiver on 6081, and a packet
	// socket that sees both directions on the wire.
	var send, recv *net.UDPConn
	var tap int
	err := inNetns(gwlbNS, func() (err error) {
		if send, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(gwlbAddr, gwlbPort))); err != nil {
			return err
		}
		if recv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(gwlbAddr, geneve.Port))); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("afx1")
		if err != nil {
			return err
		}
		// Only ETH_P_ALL taps see outgoing frames too.
		if tap, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(tap, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
			return err
		}
		return unix.Bind(tap, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	defer recv.Close()
	// Room for every reply: they are read after all are sent.
	if rc, err := recv.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) })
	}
	defer unix.Close(tap)
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(tap, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}

	sent := make(map[string]bool, flows)
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(applianceAddr, geneve.Port))
	for i := range flows {
		d := append(geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 0xe1, AttachmentID: 9, FlowCookie: uint32(i)}), innerPacket(t, i)...)
		sent[string(d)] = true
		if _, err := send.WriteTo(d, to); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // keep within the receiver's buffer
		}
	}

	got := 0
	buf := make([]byte, 9000)
	deadline := time.Now().Add(10 * time.Second)
	for got < flows && time.Now().Before(deadline) {
		recv.SetReadDeadline(deadline)
		n, from, err := recv.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		if want := netip.AddrPortFrom(applianceAddr, gwlbPort); from != want {
			t.Errorf("reply from %v, want %v (the appliance, the GWLB's port P)", from, want)
		}
		if !sent[string(buf[:n])] {
			t.Errorf("reply of %d bytes is none of the datagrams sent", n)
			continue
		}
		delete(sent, string(buf[:n]))
		got++
	}
	if got != flows {
		t.Errorf("%d of %d replies came back; queues %+v", got, flows, b.Stats())
	}

	// On the wire: each outgoing datagram's frame, rewritten, is a reply frame.
	out, in := map[string]bool{}, map[string]bool{}
	for range 4 * flows {
		n, from, err := unix.Recvfrom(tap, buf, 0)
		if err != nil {
			break
		}
		o, _, ok := packet.ParseOuter(buf[:n])
		if !ok || o.SrcPort != gwlbPort || o.DstPort != geneve.Port {
			continue
		}
		ll, _ := from.(*unix.SockaddrLinklayer)
		if ll != nil && ll.Pkttype == unix.PACKET_OUTGOING {
			f := bytes.Clone(buf[:n])
			rewriteReply(f)
			out[string(f)] = true
		} else {
			in[string(buf[:n])] = true
		}
	}
	if len(out) != flows || len(in) != flows {
		t.Errorf("on the wire: %d datagrams out, %d replies in, want %d each", len(out), len(in), flows)
	}
	for f := range out {
		if !in[f] {
			t.Errorf("no reply frame is the datagram with addresses swapped:\n%x", f)
			break
		}
	}

	// Not tunnel traffic: the appliance's kernel still answers.
	if err := inNetns(gwlbNS, func() error { return netns.Ping(applianceAddr) }); err != nil {
		t.Errorf("ping the appliance: %v", err)
	}
	var ln net.Listener
	if err := inNetns(weirNS, func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(applianceAddr, 8080).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	if err := inNetns(gwlbNS, func() error {
		c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(applianceAddr, 8080).String(), 3*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Errorf("TCP to the appliance: %v", err)
	}
	select {
	case err := <-accepted:
		if err != nil {
			t.Errorf("accept: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Error("the appliance's listener accepted nothing")
	}

	st := b.Stats()
	var rx, tx uint64
	for _, q := range st {
		rx += q.RX
		tx += q.TX
	}
	if rx != flows || tx != flows {
		t.Errorf("queue counters: rx %d, tx %d, want %d each: %+v", rx, tx, flows, st)
	}
	if m := b.XDPMode(); m != "driver" && m != "generic" {
		t.Errorf("XDP mode %q", m)
	}
	if !xdpAttached(t, weirNS, "afx0") {
		t.Error("ip link shows no XDP program on the interface while Run runs")
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if tot := p.Totals(); tot.Packet(dataplane.EncapGeneve, dataplane.ActionAllow) != flows {
		t.Errorf("pipeline allowed %d GENEVE packets, want %d", tot.Packet(dataplane.EncapGeneve, dataplane.ActionAllow), flows)
	}
	// Detached on exit: the interface has no XDP program left.
	if xdpAttached(t, weirNS, "afx0") {
		t.Error("XDP still attached after Run returned")
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// xdpAttached reports whether ip link shows an XDP program on the interface.
func xdpAttached(t *testing.T, ns, name string) bool {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "link", "show", name).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show %s: %v\n%s", name, err, out)
	}
	// "prog/xdp", "xdpgeneric", "xdp/id:" by ip version; not the "afxdp" of a name.
	return regexp.MustCompile(`\bxdp`).Match(out)
}

// TestBackendZeroCopyRefused: asking for zero-copy where the driver has none
// (veth) fails Run with an error matching xsk.ErrNotSupported, and leaves no
// XDP program behind.
func TestBackendZeroCopyRefused(t *testing.T) {
	weirNS, _ := newVethPair(t, 1)
	b := newIn(t, weirNS, Config{Interface: "afx0", ZeroCopy: xsk.ZeroCopyOn})
	err := inNetns(weirNS, func() error {
		return b.Run(context.Background(), testPipeline(), func() { t.Error("ready called") })
	})
	if !errors.Is(err, xsk.ErrNotSupported) || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Run: %v, want an error matching xsk.ErrNotSupported and ErrUnsupported", err)
	}
	t.Logf("Run: %v", err)
	if xdpAttached(t, weirNS, "afx0") {
		t.Error("XDP left attached after Run failed")
	}
	if err := b.Run(context.Background(), testPipeline(), nil); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a second Run: %v, want an error", err)
	}
}
