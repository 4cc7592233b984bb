package gwlb

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/geneve"
)

// The simulated GWLB lives on 127.0.0.2, the echo targets on 127.0.0.1 and 127.0.0.3,
// so that the GWLB's source ports P and the targets' reply sockets (bound to
// target:P) never collide.
var gwlbAddr = netip.MustParseAddr("127.0.0.2")

// lossless keeps few packets in flight, so that a run at full speed does not overrun
// the echo target's socket buffer.
const lossless = 256

// freePort returns a UDP port that was free on gwlbAddr a moment ago.
func freePort(t *testing.T) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(gwlbAddr, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return netip.MustParseAddrPort(c.LocalAddr().String()).Port()
}

// echoTarget is a fake appliance: it returns every datagram (after mutate; nil drops
// it) from its own address and the sender's source port P to the GWLB's listen port,
// as weir does.
type echoTarget struct {
	addr     netip.AddrPort
	conn     *net.UDPConn
	gwlbPort uint16
	mutate   func([]byte) []byte
	record   bool
	from     netip.Addr // address replies come from; default addr's

	mu      sync.Mutex
	replies map[uint16]net.PacketConn
	got     []recorded
	n       atomic.Int64
	done    chan struct{}
}

type recorded struct {
	from netip.AddrPort
	b    []byte
}

func startEcho(t *testing.T, ip string, gwlbPort uint16, record bool, mutate func([]byte) []byte) *echoTarget {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	e := &echoTarget{
		addr:     netip.MustParseAddrPort(c.LocalAddr().String()),
		conn:     c,
		gwlbPort: gwlbPort,
		mutate:   mutate,
		record:   record,
		replies:  map[uint16]net.PacketConn{},
		done:     make(chan struct{}),
	}
	e.from = e.addr.Addr()
	go e.loop(t)
	t.Cleanup(func() {
		c.Close()
		<-e.done
		for _, r := range e.replies {
			r.Close()
		}
	})
	return e
}

func reuseAddr(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	}); err != nil {
		return err
	}
	return serr
}

func (e *echoTarget) loop(t *testing.T) {
	defer close(e.done)
	buf := make([]byte, 1<<16)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		e.n.Add(1)
		b := append([]byte(nil), buf[:n]...)
		if e.record {
			e.mu.Lock()
			e.got = append(e.got, recorded{from, b})
			e.mu.Unlock()
		}
		if e.mutate != nil {
			if b = e.mutate(b); b == nil {
				continue
			}
		}
		e.mu.Lock()
		rc := e.replies[from.Port()]
		if rc == nil {
			lc := net.ListenConfig{Control: reuseAddr}
			rc, err = lc.ListenPacket(context.Background(), "udp4",
				netip.AddrPortFrom(e.from, from.Port()).String())
			if err != nil {
				e.mu.Unlock()
				t.Errorf("echo target: bind reply socket: %v", err)
				continue
			}
			e.replies[from.Port()] = rc
		}
		e.mu.Unlock()
		dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(from.Addr(), e.gwlbPort))
		if _, err := rc.WriteTo(b, dst); err != nil {
			t.Errorf("echo target: reply: %v", err)
		}
	}
}

func (e *echoTarget) recorded() []recorded {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]recorded(nil), e.got...)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func run(t *testing.T, cfg Config) Report {
	t.Helper()
	rep, err := Run(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Run: %v (report %+v)", err, rep)
	}
	return rep
}

// innerPorts returns the inner transport ports of a GENEVE datagram (0, 0 for ICMP).
func innerPorts(b []byte) (src, dst uint16, ok bool) {
	_, inner, _, err := geneve.Decode(b)
	if err != nil {
		return 0, 0, false
	}
	var proto uint8
	var l4 []byte
	if inner[0]>>4 == 4 {
		proto, l4 = inner[9], inner[int(inner[0]&0xf)*4:]
	} else {
		proto, l4 = inner[6], inner[40:]
	}
	if proto != 6 && proto != 17 {
		return 0, 0, true
	}
	return binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:]), true
}

func TestAllReturned(t *testing.T) {
	port := freePort(t)
	e := startEcho(t, "127.0.0.1", port, false, nil)
	rep := run(t, Config{
		Targets:        []Target{{Addr: e.addr}},
		Local:          gwlbAddr,
		ListenPort:     port,
		MaxOutstanding: lossless,
		Flows:          200,
		PacketsPerFlow: 10,
		ActiveFlows:    50,
		JumboEvery:     50,
		PerFlow:        true,
		ReplyTimeout:   2 * time.Second,
	})
	if rep.Sent != 2000 || rep.Returned != 2000 || rep.Dropped != 0 || rep.Mismatched != 0 || rep.Unhealthy != 0 {
		t.Fatalf("sent %d returned %d dropped %d mismatched %d unhealthy %d (%v)",
			rep.Sent, rep.Returned, rep.Dropped, rep.Mismatched, rep.Unhealthy, rep.MismatchReasons)
	}
	if rep.Jumbo != 40 {
		t.Errorf("jumbo = %d, want 40", rep.Jumbo)
	}
	tr := rep.Targets[e.addr.String()]
	if tr.Sent != 2000 || tr.Returned != 2000 || !tr.Healthy || tr.Flows != 200 {
		t.Errorf("target report %+v", tr)
	}
	if len(rep.Flows) != 200 {
		t.Fatalf("%d flow reports", len(rep.Flows))
	}
	eps := map[uint64]bool{}
	for _, f := range rep.Flows {
		if f.Sent != 10 || f.Returned != 10 || f.Target != e.addr.String() {
			t.Errorf("flow %+v", f)
		}
		eps[f.Endpoint] = true
	}
	if len(eps) != 2 {
		t.Errorf("%d distinct endpoints, want 2", len(eps))
	}
	if rep.LatencyUS.P50 <= 0 || rep.LatencyUS.Max < rep.LatencyUS.P99 || rep.LatencyUS.P99 < rep.LatencyUS.P50 {
		t.Errorf("latency %+v", rep.LatencyUS)
	}
	j, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"latency_us":{"p50":`, `"src_port":`, `"returned":`, `"elapsed_s":`} {
		if !bytes.Contains(j, []byte(k)) {
			t.Errorf("JSON lacks %s", k)
		}
	}
}

// TestPackets checks what the target receives: GWLB-style GENEVE and valid inner
// IPv4 and IPv6 packets.
func TestPackets(t *testing.T) {
	port := freePort(t)
	e := startEcho(t, "127.0.0.1", port, true, nil)
	denied := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/64")}
	rep := run(t, Config{
		Targets:        []Target{{Addr: e.addr}},
		Local:          gwlbAddr,
		ListenPort:     port,
		MaxOutstanding: lossless,
		Flows:          90,
		PacketsPerFlow: 6,
		JumboEvery:     7,
		DeniedSources:  denied,
		PerFlow:        true,
		Seed:           7,
	})
	if rep.Returned != rep.Sent || rep.Sent != 540 {
		t.Fatalf("sent %d returned %d", rep.Sent, rep.Returned)
	}
	var (
		ip4    layers.IPv4
		ip6    layers.IPv6
		tcp    layers.TCP
		udp    layers.UDP
		icmp4  layers.ICMPv4
		icmp6  layers.ICMPv6
		pay    gopacket.Payload
		p4     = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, &ip4, &ip6, &tcp, &udp, &icmp4, &icmp6, &pay)
		p6     = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv6, &ip4, &ip6, &tcp, &udp, &icmp4, &icmp6, &pay)
		decode []gopacket.LayerType
	)
	p4.IgnoreUnsupported = true
	p6.IgnoreUnsupported = true
	type flowKey struct {
		a, b   netip.Addr
		ap, bp uint16
		proto  gopacket.LayerType
	}
	headers := map[flowKey][]byte{}
	srcPorts := map[flowKey]uint16{}
	seen := map[string]int{}
	jumbo := 0
	for _, r := range e.recorded() {
		if r.from.Addr() != gwlbAddr {
			t.Fatalf("datagram from %v", r.from)
		}
		h, inner, aws, err := geneve.Decode(r.b)
		if err != nil {
			t.Fatal(err)
		}
		if h.Version() != 0 || h.VNI() != 0 || aws.Present != 1<<1|1<<2|1<<3 || aws.EndpointID == 0 {
			t.Fatalf("GENEVE header %x aws %+v", []byte(h), aws)
		}
		var net gopacket.NetworkLayer = &ip4
		parser := p4
		switch h.ProtocolType() {
		case geneve.ProtoIPv4:
		case geneve.ProtoIPv6:
			net, parser = &ip6, p6
		default:
			t.Fatalf("protocol type %#x", h.ProtocolType())
		}
		if err := parser.DecodeLayers(inner, &decode); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if net == &ip6 {
			if int(ip6.Length)+40 != len(inner) {
				t.Fatalf("IPv6 length %d, packet %d", ip6.Length, len(inner))
			}
			seen["ipv6"]++
		} else {
			if int(ip4.Length) != len(inner) {
				t.Fatalf("IPv4 length %d, packet %d", ip4.Length, len(inner))
			}
			if _, v := ip4.VerifyChecksum(); !v.Valid {
				t.Fatalf("bad IPv4 checksum %+v", v)
			}
			seen["ipv4"]++
		}
		if len(inner) == JumboLen {
			jumbo++
		} else if len(inner) > 1500 {
			t.Fatalf("inner packet of %d bytes", len(inner))
		}
		src, dst := net.NetworkFlow().Endpoints()
		a, _ := netip.AddrFromSlice(src.Raw())
		b, _ := netip.AddrFromSlice(dst.Raw())
		var v gopacket.ChecksumVerificationResult
		var l4 gopacket.LayerType
		var ap, bp uint16
		var payload []byte
		for _, lt := range decode {
			switch lt {
			case layers.LayerTypeTCP:
				tcp.SetNetworkLayerForChecksum(net)
				_, v = tcp.VerifyChecksum()
				l4, ap, bp, payload = lt, uint16(tcp.SrcPort), uint16(tcp.DstPort), tcp.Payload
				if tcp.SYN && len(tcp.Options) == 0 {
					t.Errorf("SYN without MSS option")
				}
			case layers.LayerTypeUDP:
				udp.SetNetworkLayerForChecksum(net)
				_, v = udp.VerifyChecksum()
				l4, ap, bp, payload = lt, uint16(udp.SrcPort), uint16(udp.DstPort), udp.Payload
				if int(udp.Length) != len(udp.Contents)+len(udp.Payload) {
					t.Errorf("UDP length %d", udp.Length)
				}
			case layers.LayerTypeICMPv4:
				_, v = icmp4.VerifyChecksum()
				l4, ap, payload = lt, icmp4.Id, icmp4.Payload
				if tc := icmp4.TypeCode.Type(); tc != layers.ICMPv4TypeEchoRequest && tc != layers.ICMPv4TypeEchoReply {
					t.Errorf("ICMP type %d", tc)
				}
			case layers.LayerTypeICMPv6:
				icmp6.SetNetworkLayerForChecksum(net)
				_, v = icmp6.VerifyChecksum()
				l4, ap = lt, binary.BigEndian.Uint16(icmp6.Payload)
				payload = icmp6.Payload[4:]
				if tc := icmp6.TypeCode.Type(); tc != layers.ICMPv6TypeEchoRequest && tc != layers.ICMPv6TypeEchoReply {
					t.Errorf("ICMPv6 type %d", tc)
				}
			}
		}
		if l4 == 0 {
			t.Fatalf("no transport layer in %v", decode)
		}
		if !v.Valid {
			t.Fatalf("bad %v checksum: %+v", l4, v)
		}
		seen[l4.String()]++
		if seq, err := SeqOf(r.b); err != nil || len(payload) < minPayload || binary.BigEndian.Uint64(payload) != seq {
			t.Fatalf("sequence number: %v", err)
		}
		// Normalise the direction: the flow is the same both ways.
		k := flowKey{a, b, ap, bp, l4}
		if rk := (flowKey{b, a, bp, ap, l4}); headers[rk] != nil {
			k = rk
		}
		if l4 == layers.LayerTypeICMPv4 || l4 == layers.LayerTypeICMPv6 {
			k = flowKey{a, b, ap, 0, l4}
			if rk := (flowKey{b, a, ap, 0, l4}); headers[rk] != nil {
				k = rk
			}
		}
		if prev, ok := headers[k]; !ok {
			headers[k] = append([]byte(nil), h...)
			srcPorts[k] = r.from.Port()
		} else if !bytes.Equal(prev, h) {
			t.Errorf("flow %v: GENEVE header changed", k)
		} else if srcPorts[k] != r.from.Port() {
			t.Errorf("flow %v: source port changed", k)
		}
	}
	if len(headers) != 90 {
		t.Errorf("%d flows seen, want 90", len(headers))
	}
	for _, s := range []string{"ipv4", "ipv6", "TCP", "UDP", "ICMPv4", "ICMPv6"} {
		if seen[s] == 0 {
			t.Errorf("no %s packets: %v", s, seen)
		}
	}
	if jumbo != 540/7 || uint64(jumbo) != rep.Jumbo {
		t.Errorf("jumbo packets %d, report %d, want %d", jumbo, rep.Jumbo, 540/7)
	}
	nDenied := 0
	for i, f := range rep.Flows {
		if f.Denied != (i%10 == 0) {
			t.Errorf("flow %d denied=%v", i, f.Denied)
		}
		if f.Denied {
			nDenied++
			if !denied[0].Contains(f.Src) && !denied[1].Contains(f.Src) {
				t.Errorf("denied flow from %v", f.Src)
			}
		} else if !clientNet4.Contains(f.Src) && !clientNet6.Contains(f.Src) {
			t.Errorf("flow from %v", f.Src)
		}
	}
	if nDenied != 9 || rep.DeniedSent != 9*6 || rep.DeniedReturned != 9*6 {
		t.Errorf("denied flows %d, sent %d, returned %d", nDenied, rep.DeniedSent, rep.DeniedReturned)
	}
}

func TestDroppedPort(t *testing.T) {
	port := freePort(t)
	e := startEcho(t, "127.0.0.1", port, false, func(b []byte) []byte {
		if sp, dp, _ := innerPorts(b); sp == 23 || dp == 23 {
			return nil
		}
		return b
	})
	rep := run(t, Config{
		Targets:        []Target{{Addr: e.addr}},
		Local:          gwlbAddr,
		ListenPort:     port,
		MaxOutstanding: lossless,
		Flows:          60,
		PacketsPerFlow: 5,
		Protos:         []string{"tcp", "udp"},
		Ports:          []uint16{22, 23, 80},
		PerFlow:        true,
		ReplyTimeout:   200 * time.Millisecond,
	})
	var want uint64
	for _, f := range rep.Flows {
		if f.DstPort == 23 {
			want += f.Sent
			if f.Returned != 0 || f.Dropped != f.Sent {
				t.Errorf("port 23 flow %+v", f)
			}
		} else if f.Returned != f.Sent || f.Dropped != 0 {
			t.Errorf("flow %+v", f)
		}
	}
	if want == 0 || rep.Dropped != want || rep.Mismatched != 0 || rep.Returned+rep.Dropped != rep.Sent {
		t.Errorf("dropped %d, want %d; sent %d returned %d mismatched %d", rep.Dropped, want, rep.Sent, rep.Returned, rep.Mismatched)
	}
}

func TestCorruptedReply(t *testing.T) {
	port := freePort(t)
	var once atomic.Bool
	e := startEcho(t, "127.0.0.1", port, false, func(b []byte) []byte {
		if once.CompareAndSwap(false, true) {
			b[len(b)-1] ^= 0x40
		}
		return b
	})
	rep := run(t, Config{
		Targets:        []Target{{Addr: e.addr}},
		Local:          gwlbAddr,
		ListenPort:     port,
		MaxOutstanding: lossless,
		Flows:          20,
		PacketsPerFlow: 5,
		PerFlow:        true,
	})
	if rep.Mismatched != 1 || rep.MismatchReasons["bytes_differ"] != 1 || rep.Returned != rep.Sent-1 || rep.Dropped != 0 {
		t.Errorf("sent %d returned %d dropped %d mismatched %d %v", rep.Sent, rep.Returned, rep.Dropped, rep.Mismatched, rep.MismatchReasons)
	}
	if tr := rep.Targets[e.addr.String()]; tr.Mismatched != 1 {
		t.Errorf("target %+v", tr)
	}
}

// TestWrongSourcePort: a target that replies from its GENEVE socket (not from port P)
// has every reply counted as mismatched.
func TestWrongSourcePort(t *testing.T) {
	port := freePort(t)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(buf[:n], netip.AddrPortFrom(from.Addr(), port))
		}
	}()
	rep := run(t, Config{
		Targets:        []Target{{Addr: netip.MustParseAddrPort(c.LocalAddr().String())}},
		Local:          gwlbAddr,
		ListenPort:     port,
		Flows:          5,
		PacketsPerFlow: 2,
	})
	if rep.Sent != 10 || rep.Mismatched != 10 || rep.MismatchReasons["wrong_source_port"] != 10 || rep.Returned != 0 {
		t.Errorf("%+v", rep)
	}
}

func healthServer(t *testing.T, code *atomic.Int32) string {
	return countingHealthServer(t, code, new(atomic.Int32))
}

// countingHealthServer is healthServer that also counts the failing answers it gave.
func countingHealthServer(t *testing.T, code *atomic.Int32, failed *atomic.Int32) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c := code.Load()
		w.WriteHeader(int(c))
		if c >= 400 {
			failed.Add(1)
		}
	}))
	t.Cleanup(s.Close)
	return s.URL + "/healthz"
}

func TestUnhealthyTargetGetsNoTraffic(t *testing.T) {
	port := freePort(t)
	a := startEcho(t, "127.0.0.1", port, false, nil)
	b := startEcho(t, "127.0.0.3", port, false, nil)
	var okCode, badCode atomic.Int32
	okCode.Store(200)
	badCode.Store(503)
	rep := run(t, Config{
		Targets: []Target{
			{Addr: a.addr, HealthURL: healthServer(t, &okCode)},
			{Addr: b.addr, HealthURL: healthServer(t, &badCode)},
		},
		Local:          gwlbAddr,
		ListenPort:     port,
		MaxOutstanding: lossless,
		Flows:          50,
		PacketsPerFlow: 4,
		HealthInterval: 50 * time.Millisecond,
	})
	ta, tb := rep.Targets[a.addr.String()], rep.Targets[b.addr.String()]
	if tb.Sent != 0 || tb.Healthy || b.n.Load() != 0 || tb.HealthChecks == 0 || tb.HealthFailures != tb.HealthChecks {
		t.Errorf("unhealthy target %+v, received %d", tb, b.n.Load())
	}
	if ta.Sent != 200 || ta.Returned != 200 || !ta.Healthy || ta.Flows != 50 || rep.Unhealthy != 0 {
		t.Errorf("healthy target %+v, report %+v", ta, rep)
	}
}

func TestSpreadAndFailover(t *testing.T) {
	port := freePort(t)
	var bCode, bFailed atomic.Int32
	bCode.Store(200)
	var got atomic.Int64
	a := startEcho(t, "127.0.0.1", port, false, nil)
	b := startEcho(t, "127.0.0.3", port, false, func(p []byte) []byte {
		if got.Add(1) == 150 {
			// b turns unhealthy, and holds this reply until the simulator has
			// processed UnhealthyThreshold (2) failed checks: it asks a third time
			// only after acting on the second. Waiting on that, not on a clock, keeps
			// the test independent of how busy the machine is.
			bCode.Store(503)
			deadline := time.Now().Add(5 * time.Second)
			for bFailed.Load() < 3 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
		return p
	})
	var okCode atomic.Int32
	okCode.Store(200)
	rep := run(t, Config{
		Targets: []Target{
			{Addr: a.addr, HealthURL: healthServer(t, &okCode)},
			{Addr: b.addr, HealthURL: countingHealthServer(t, &bCode, &bFailed)},
		},
		Local:          gwlbAddr,
		ListenPort:     port,
		Flows:          100,
		PacketsPerFlow: 20,
		Rate:           4000,
		PerFlow:        true,
		HealthInterval: 20 * time.Millisecond,
		Failover:       Rebalance,
	})
	ta, tb := rep.Targets[a.addr.String()], rep.Targets[b.addr.String()]
	if rep.Sent != 2000 || rep.Returned != 2000 || ta.Sent+tb.Sent != 2000 {
		t.Fatalf("report %+v", rep)
	}
	if tb.Sent < 150 || tb.Sent > 1000 || tb.Healthy || tb.Flows != 0 || !ta.Healthy || ta.Flows != 100 {
		t.Errorf("a %+v, b %+v", ta, tb)
	}
	if rep.Rehashed == 0 || rep.Rehashed > 100 {
		t.Errorf("rehashed %d", rep.Rehashed)
	}
	for _, f := range rep.Flows {
		if f.Target != a.addr.String() {
			t.Errorf("flow on %s after failover", f.Target)
		}
	}
	if rep.ElapsedS < 0.4 {
		t.Errorf("2000 packets at 4000/s took %.3f s", rep.ElapsedS)
	}
}

func TestFlowHashSticky(t *testing.T) {
	// Two always-healthy targets: flows spread over both, each flow on one only.
	port := freePort(t)
	a := startEcho(t, "127.0.0.1", port, false, nil)
	b := startEcho(t, "127.0.0.3", port, false, nil)
	rep := run(t, Config{
		Targets:        []Target{{Addr: a.addr}, {Addr: b.addr}},
		Local:          gwlbAddr,
		ListenPort:     port,
		MaxOutstanding: lossless,
		Flows:          100,
		PacketsPerFlow: 4,
		PerFlow:        true,
	})
	ta, tb := rep.Targets[a.addr.String()], rep.Targets[b.addr.String()]
	if ta.Flows+tb.Flows != 100 || ta.Flows < 20 || tb.Flows < 20 || ta.Sent != uint64(4*ta.Flows) {
		t.Errorf("a %+v b %+v", ta, tb)
	}
	if rep.Returned != 400 || rep.Rehashed != 0 {
		t.Errorf("%+v", rep)
	}
}

func TestDroppedWithOutstandingLimit(t *testing.T) {
	port := freePort(t)
	e := startEcho(t, "127.0.0.1", port, false, func([]byte) []byte { return nil })
	rep := run(t, Config{
		Targets:        []Target{{Addr: e.addr}},
		Local:          gwlbAddr,
		ListenPort:     port,
		Flows:          10,
		PacketsPerFlow: 4,
		MaxOutstanding: 10,
		ReplyTimeout:   40 * time.Millisecond,
	})
	if rep.Sent != 40 || rep.Dropped != 40 || rep.Returned != 0 || rep.Outstanding != 0 {
		t.Errorf("%+v", rep)
	}
}

func TestNoHealthyTargetHonoursContext(t *testing.T) {
	port := freePort(t)
	e := startEcho(t, "127.0.0.1", port, false, nil)
	var bad atomic.Int32
	bad.Store(503)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rep, err := Run(ctx, Config{
		Targets:        []Target{{Addr: e.addr, HealthURL: healthServer(t, &bad)}},
		Local:          gwlbAddr,
		ListenPort:     port,
		HealthInterval: 50 * time.Millisecond,
	})
	if !errors.Is(err, context.DeadlineExceeded) || rep.Sent != 0 {
		t.Errorf("err %v, report %+v", err, rep)
	}
}

func TestWrongSourceAddr(t *testing.T) {
	port := freePort(t)
	e := startEcho(t, "127.0.0.1", port, false, nil)
	e.mu.Lock()
	e.from = netip.MustParseAddr("127.0.0.3")
	e.mu.Unlock()
	rep := run(t, Config{
		Targets:        []Target{{Addr: e.addr}},
		Local:          gwlbAddr,
		ListenPort:     port,
		Flows:          5,
		PacketsPerFlow: 2,
	})
	if rep.Sent != 10 || rep.Mismatched != 10 || rep.MismatchReasons["wrong_source_addr"] != 10 || rep.Returned != 0 {
		t.Errorf("%+v", rep)
	}
}

func TestIPv4OnlyICMP(t *testing.T) {
	port := freePort(t)
	e := startEcho(t, "127.0.0.1", port, false, nil)
	rep := run(t, Config{
		Targets:        []Target{{Addr: e.addr}},
		Local:          gwlbAddr,
		ListenPort:     port,
		Flows:          30,
		PacketsPerFlow: 3,
		IPv6Share:      IPv4Only,
		Protos:         []string{"icmp"},
		PerFlow:        true,
	})
	for _, f := range rep.Flows {
		if f.Proto != "icmp" || !f.Src.Is4() || f.DstPort != 0 {
			t.Errorf("flow %+v", f)
		}
	}
	if rep.Returned != 90 {
		t.Errorf("%+v", rep)
	}
}

func TestProgress(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 20 * time.Millisecond
	port := freePort(t)
	e := startEcho(t, "127.0.0.1", port, false, nil)
	var mu sync.Mutex
	var reps []Report
	rep := run(t, Config{
		Targets:        []Target{{Addr: e.addr}},
		Local:          gwlbAddr,
		ListenPort:     port,
		Flows:          40,
		PacketsPerFlow: 10,
		Rate:           2000,
		PerFlow:        true,
		Progress: func(r Report) {
			mu.Lock()
			reps = append(reps, r)
			mu.Unlock()
		},
	})
	mu.Lock()
	defer mu.Unlock()
	if len(reps) < 3 {
		t.Fatalf("%d progress reports in %.3f s", len(reps), rep.ElapsedS)
	}
	for i, r := range reps {
		if r.Flows != nil || r.Sent > rep.Sent || i > 0 && r.Sent < reps[i-1].Sent || r.Returned+r.Outstanding+r.Dropped+r.Mismatched < r.Sent {
			t.Errorf("progress report %d: %+v", i, r)
		}
	}
	if rep.Returned != 400 {
		t.Errorf("%+v", rep)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Targets: []Target{{Addr: netip.MustParseAddrPort("127.0.0.1:6081")}}, Local: netip.MustParseAddr("::1")},
		{Targets: []Target{{Addr: netip.MustParseAddrPort("127.0.0.1:6081")}}, Protos: []string{"sctp"}},
		{Targets: []Target{{Addr: netip.MustParseAddrPort("127.0.0.1:6081")}, {Addr: netip.MustParseAddrPort("127.0.0.1:6081")}}},
		{Targets: []Target{{Addr: netip.MustParseAddrPort("127.0.0.1:6081")}}, IPv6Share: 2},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("no error for %+v", cfg)
		}
	}
}

func TestRandAddrIn(t *testing.T) {
	rng := newTestRand()
	for _, s := range []string{"10.0.0.0/16", "192.0.2.7/32", "10.128.0.0/9", "fd00:1::/64", "2001:db8::5/127"} {
		p := netip.MustParsePrefix(s)
		for range 100 {
			if a := randAddrIn(rng, p); !p.Contains(a) {
				t.Fatalf("%v not in %v", a, p)
			}
		}
	}
}

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

// fleetTarget is an echo target with its own health endpoint. kill stops it as a dead
// process stops: its socket closes, so nothing more comes back, and its health
// checks fail (each connection is dropped unanswered and counted in failed), though
// only once release is closed, so that a test can let traffic reach the dead target
// before the simulator can notice.
type fleetTarget struct {
	*echoTarget
	url     string
	dead    atomic.Bool
	release chan struct{}
	failed  atomic.Int32
}

func startFleetTarget(t *testing.T, ip string, gwlbPort uint16) *fleetTarget {
	t.Helper()
	ft := &fleetTarget{echoTarget: startEcho(t, ip, gwlbPort, true, nil), release: make(chan struct{})}
	s := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, req *http.Request) {
		if ft.dead.Load() {
			select {
			case <-ft.release:
			case <-req.Context().Done():
			}
			ft.failed.Add(1)
			panic(http.ErrAbortHandler)
		}
	}))
	t.Cleanup(s.Close)
	ft.url = s.URL + "/healthz"
	return ft
}

func (ft *fleetTarget) kill() {
	ft.dead.Store(true)
	ft.conn.Close()
}

// Failover runs: three targets, 60 flows of 60 packets, 30 open at once and sent
// round-robin, so each flow of the first 30 has sent 20 packets when the second
// target dies at packet killAt and 5 more when its health checks may start failing
// (releaseAt); the second 30 flows start after holdAt.
const (
	foFlows, foActive, foPackets = 60, 30, 60
	killAt, releaseAt, holdAt    = 600, 750, 900
)

// failoverRun kills the second target at packet killAt; its health checks fail from
// packet releaseAt on. At packet holdAt the sender waits until the simulator has
// acted on the target's second failed health check (UnhealthyThreshold 2): it checks
// a third time only after that. So the death is seen mid-run however busy the
// machine is, and what was sent to the dead target in between is lost as it would
// be.
func failoverRun(t *testing.T, mode Failover) (Report, []*fleetTarget) {
	port := freePort(t)
	fts := []*fleetTarget{
		startFleetTarget(t, "127.0.0.1", port),
		startFleetTarget(t, "127.0.0.3", port),
		startFleetTarget(t, "127.0.0.4", port),
	}
	dying := fts[1]
	defer func() { testSendHook = nil }()
	testSendHook = func(k uint64) {
		switch k {
		case killAt:
			dying.kill()
		case releaseAt:
			close(dying.release)
		case holdAt:
			deadline := time.Now().Add(10 * time.Second)
			for dying.failed.Load() < 3 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if dying.failed.Load() < 3 {
				t.Errorf("the dead target failed %d health checks in 10 s", dying.failed.Load())
			}
		}
	}
	var targets []Target
	for _, ft := range fts {
		targets = append(targets, Target{Addr: ft.addr, HealthURL: ft.url})
	}
	rep := run(t, Config{
		Targets:        targets,
		Local:          gwlbAddr,
		ListenPort:     port,
		Flows:          foFlows,
		ActiveFlows:    foActive,
		PacketsPerFlow: foPackets,
		Rate:           5000,
		PerFlow:        true,
		HealthInterval: 10 * time.Millisecond,
		ReplyTimeout:   time.Second,
		Failover:       mode,
	})
	if rep.Failover != mode || rep.Sent != foFlows*foPackets || rep.Unhealthy != 0 || rep.Mismatched != 0 || rep.WrongTarget != 0 {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("%s: sent %d returned %d dropped %d rehashed %d moves %+v lost after move %d sent to unhealthy %d",
		mode, rep.Sent, rep.Returned, rep.Dropped, rep.Rehashed, rep.Moves, rep.LostAfterMove, rep.SentToUnhealthy)
	if rep.Returned+rep.Dropped != rep.Sent || rep.Dropped == 0 {
		t.Errorf("sent %d returned %d dropped %d", rep.Sent, rep.Returned, rep.Dropped)
	}
	if tr := rep.Targets[dying.addr.String()]; tr.Healthy || tr.Dropped != rep.Dropped {
		t.Errorf("dead target %+v; %d dropped in all", tr, rep.Dropped)
	}
	for i, ft := range fts {
		if tr := rep.Targets[ft.addr.String()]; i != 1 && (!tr.Healthy || tr.Dropped != 0 || tr.Returned != tr.Sent) {
			t.Errorf("live target %v: %+v", ft.addr, tr)
		}
	}
	for i, f := range rep.Flows {
		if i >= foActive && f.FirstTarget == dying.addr.String() {
			t.Errorf("flow %d, started after the death was seen, sent to the dead target: %+v", i, f)
		}
		if f.FirstTarget != dying.addr.String() && (f.Moved || f.Target != f.FirstTarget || f.Returned != f.Sent) {
			t.Errorf("flow %d on a live target disturbed: %+v", i, f)
		}
	}
	return rep, fts
}

// TestFailoverRebalance: a target dies mid-run; its flows, and only they, move to the
// other two and carry on (they lose only what was sent to it before the move), and
// nothing comes back from the wrong target.
func TestFailoverRebalance(t *testing.T) {
	rep, fts := failoverRun(t, Rebalance)
	dead := fts[1].addr.String()
	tb := rep.Targets[dead]
	if rep.Rehashed == 0 || rep.MovedFlows != rep.Rehashed || tb.MovedOut != rep.Rehashed || tb.Flows != 0 || tb.MovedIn != 0 {
		t.Errorf("rehashed %d, moved flows %d, dead target %+v", rep.Rehashed, rep.MovedFlows, tb)
	}
	if rep.MovedFlowsLost != 0 || rep.LostAfterMove != 0 || rep.SentToUnhealthy != 0 {
		t.Errorf("moved flows lost %d (%d packets) after the move; %d sent to the unhealthy target",
			rep.MovedFlowsLost, rep.LostAfterMove, rep.SentToUnhealthy)
	}
	var in, fromMoves uint64
	for _, ft := range []*fleetTarget{fts[0], fts[2]} {
		tr := rep.Targets[ft.addr.String()]
		if tr.MovedIn == 0 || tr.MovedOut != 0 {
			t.Errorf("live target %v: %+v", ft.addr, tr)
		}
		in += tr.MovedIn
	}
	for _, m := range rep.Moves {
		if m.From != dead || m.To == dead {
			t.Errorf("move %+v", m)
		}
		fromMoves += m.Flows
	}
	if in != rep.Rehashed || fromMoves != rep.Rehashed || len(rep.Moves) != 2 {
		t.Errorf("moved in %d, moves %+v, rehashed %d", in, rep.Moves, rep.Rehashed)
	}
	var moved uint64
	for i, f := range rep.Flows {
		if f.FirstTarget != dead {
			continue
		}
		moved++
		// 20 packets per flow were sent before the death and 5 more (lost) before it
		// could be seen; it is seen by packet holdAt (5 more per flow); everything
		// after the move comes back.
		if !f.Moved || f.Moves != 1 || f.Target == dead || f.LostAfterMove != 0 ||
			f.Returned+f.Dropped != f.Sent || f.Dropped < (releaseAt-killAt)/foActive || f.Returned < foPackets-(holdAt/foActive) {
			t.Errorf("flow %d from the dead target: %+v", i, f)
		}
	}
	if moved != rep.MovedFlows {
		t.Errorf("%d flows started on the dead target, %d moved", moved, rep.MovedFlows)
	}
	// A moved flow reaches its new target with the same GENEVE options and from the
	// same source port P as before.
	type seen struct {
		ep, att uint64
		port    uint16
	}
	got := map[string]map[uint32]seen{} // target -> cookie -> what it received
	for _, ft := range fts {
		m := map[uint32]seen{}
		for _, r := range ft.recorded() {
			_, _, aws, err := geneve.Decode(r.b)
			if err != nil {
				t.Fatal(err)
			}
			if prev, ok := m[aws.FlowCookie]; ok && prev != (seen{aws.EndpointID, aws.AttachmentID, r.from.Port()}) {
				t.Errorf("cookie %#x: options or source port changed on %v", aws.FlowCookie, ft.addr)
			}
			m[aws.FlowCookie] = seen{aws.EndpointID, aws.AttachmentID, r.from.Port()}
		}
		got[ft.addr.String()] = m
	}
	for _, f := range rep.Flows {
		if !f.Moved {
			continue
		}
		want := seen{f.Endpoint, f.Attachment, f.SourcePort}
		if g, ok := got[f.Target][f.Cookie]; !ok || g != want {
			t.Errorf("moved flow %+v: new target got %+v (%v)", f, g, ok)
		}
		if g, ok := got[dead][f.Cookie]; !ok || g != want {
			t.Errorf("moved flow %+v: dead target got %+v (%v)", f, g, ok)
		}
	}
}

// TestPickRebalance drives target selection directly through failures and
// recoveries.
func TestPickRebalance(t *testing.T) {
	for _, mode := range []Failover{Rebalance, NoRebalance} {
		r := &runner{cfg: Config{Failover: mode}, moves: map[[2]int]uint64{}}
		for i := range 3 {
			r.targets = append(r.targets, &target{key: string(rune('a' + i))})
			r.targets[i].setHealthy(true)
		}
		var flows []*flow
		for i := range 300 {
			f := &flow{target: -1, first: -1, hash: uint64(i) * 0x9e3779b97f4a7c15}
			flows = append(flows, f)
			r.pick(f)
		}
		before := make([]int, len(flows))
		for i, f := range flows {
			before[i] = f.target
		}
		b := r.targets[1]
		b.setHealthy(false)
		// Flows 0-99 send during the outage; 100-299 only after b recovers.
		for _, f := range flows[:100] {
			r.pick(f)
		}
		b.setHealthy(true)
		for _, f := range flows {
			r.pick(f)
		}
		onB, movedFlows := 0, 0
		for i, f := range flows {
			switch {
			case before[i] != 1 || mode == NoRebalance:
				if f.target != before[i] || f.moves != 0 {
					t.Errorf("%s: flow %d moved from %d to %d", mode, i, before[i], f.target)
				}
			default:
				// Rebalanced at the failure, whether or not it sent during it; it
				// stays on its new target after b recovers.
				onB++
				movedFlows++
				if f.target == 1 || f.moves != 1 || f.first != 1 {
					t.Errorf("%s: flow %d on b: now on %d after %d moves", mode, i, f.target, f.moves)
				}
			}
		}
		if mode == Rebalance && (onB == 0 || r.rep.Rehashed != uint64(movedFlows) || b.movedOut != uint64(movedFlows) ||
			r.targets[0].movedIn+r.targets[2].movedIn != uint64(movedFlows) || b.flows != 0) {
			t.Errorf("%s: %d flows were on b; rehashed %d, b %+v", mode, onB, r.rep.Rehashed, b)
		}
		// New flows use b again.
		newOnB := 0
		for i := range 30 {
			f := &flow{target: -1, first: -1, hash: uint64(1000+i) * 0x9e3779b97f4a7c15}
			if ti, _ := r.pick(f); ti == 1 {
				newOnB++
			}
		}
		if newOnB == 0 {
			t.Errorf("%s: no new flow on the recovered target", mode)
		}
		// No healthy target: nothing is picked; an unhealthy target keeps its
		// flows with NoRebalance.
		for _, tg := range r.targets {
			tg.setHealthy(false)
		}
		f := flows[0]
		got, unhealthy := r.pick(f)
		if mode == Rebalance && (got != -1 || unhealthy) || mode == NoRebalance && (got != f.target || !unhealthy) {
			t.Errorf("%s: all unhealthy: picked %d for a flow on %d", mode, got, f.target)
		}
	}
}

// TestFailoverNoRebalance: a target dies mid-run; its flows stay on it and die, new
// flows go to the others.
func TestFailoverNoRebalance(t *testing.T) {
	rep, fts := failoverRun(t, NoRebalance)
	dead := fts[1].addr.String()
	tb := rep.Targets[dead]
	if rep.Rehashed != 0 || rep.MovedFlows != 0 || rep.Moves != nil || rep.MovedFlowsLost != 0 || tb.MovedOut != 0 {
		t.Errorf("flows moved: %+v", rep)
	}
	if rep.SentToUnhealthy == 0 || tb.SentUnhealthy != rep.SentToUnhealthy || tb.Flows == 0 {
		t.Errorf("sent to unhealthy %d, dead target %+v", rep.SentToUnhealthy, tb)
	}
	n := 0
	for i, f := range rep.Flows {
		if f.FirstTarget != dead {
			continue
		}
		n++
		// 20 of its 60 packets were sent before the death; none after it returns.
		if f.Moved || f.Target != dead || f.Sent != foPackets || f.Returned > killAt/foActive || f.Dropped < foPackets-killAt/foActive {
			t.Errorf("flow %d on the dead target: %+v", i, f)
		}
	}
	if n == 0 || n != tb.Flows {
		t.Errorf("%d flows on the dead target, its report says %d", n, tb.Flows)
	}
}

// TestWrongTarget: a target replying from another target's address has those replies
// counted as returned by the wrong target.
func TestWrongTarget(t *testing.T) {
	port := freePort(t)
	a := startEcho(t, "127.0.0.1", port, false, nil)
	b := startEcho(t, "127.0.0.3", port, false, nil)
	a.mu.Lock()
	a.from = b.addr.Addr()
	a.mu.Unlock()
	rep := run(t, Config{
		Targets:        []Target{{Addr: a.addr}, {Addr: b.addr}},
		Local:          gwlbAddr,
		ListenPort:     port,
		MaxOutstanding: lossless,
		Flows:          40,
		PacketsPerFlow: 3,
	})
	ta, tb := rep.Targets[a.addr.String()], rep.Targets[b.addr.String()]
	if ta.Sent == 0 || rep.WrongTarget != ta.Sent || rep.MismatchReasons["wrong_target"] != ta.Sent ||
		ta.Mismatched != ta.Sent || tb.Returned != tb.Sent || rep.Returned != tb.Sent {
		t.Errorf("a %+v b %+v report %+v", ta, tb, rep)
	}
}
