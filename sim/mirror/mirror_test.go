package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"weir/vxlan"
)

var (
	eniA = netip.MustParseAddr("127.0.0.2")
	eniB = netip.MustParseAddr("127.0.0.3")
	eniC = netip.MustParseAddr("127.0.0.4")
	macA = net.HardwareAddr{0x02, 0x29, 0x23, 0x74, 0xc7, 0x7d}
)

// side is what the receiver must see for an ENI.
type side struct {
	vni uint32
	mac string
}

func sides(t *testing.T, rep Report) map[netip.Addr]side {
	t.Helper()
	m := map[netip.Addr]side{}
	for _, e := range rep.ENIs {
		if e.VNI == 0 || e.VNI > vxlan.MaxVNI || e.MAC == "" {
			t.Fatalf("ENI report %+v", e)
		}
		m[e.IP] = side{e.VNI, e.MAC}
	}
	return m
}

// direction checks a mirrored datagram against its ENI and returns true for egress.
func direction(t *testing.T, m mirrored, s side) bool {
	t.Helper()
	eni := m.from.Addr()
	inner := eni
	if m.v6 {
		inner = eniIPv6(eni)
	}
	router := RouterMAC().String()
	switch {
	case m.srcMAC == s.mac && m.dstMAC == router:
		if m.src != inner {
			t.Fatalf("egress from %v with inner source %v", eni, m.src)
		}
		return true
	case m.dstMAC == s.mac && m.srcMAC == router:
		if m.dst != inner {
			t.Fatalf("ingress at %v with inner destination %v", eni, m.dst)
		}
		return false
	}
	t.Fatalf("datagram from %v (MAC %s): inner MACs %s -> %s", eni, s.mac, m.srcMAC, m.dstMAC)
	return false
}

// TestSynthetic checks one-ended mirroring: every datagram comes from an ENI's
// address with its VNI, the inner MACs say the direction, both directions of a flow
// leave from the same source port, and the inner packets are valid.
func TestSynthetic(t *testing.T) {
	rcv := startReceiver(t)
	rep := run(t, Config{
		Target:         rcv.addr,
		ENIs:           []ENI{{IP: eniA, MAC: macA, VNI: 100}, {IP: eniB}},
		Flows:          40,
		PacketsPerFlow: 6,
		IPv6Share:      0.3,
		Seed:           3,
		Rate:           20000,
	})
	if rep.Sent != 240 || rep.Frames != 240 || rep.Duplicates != 0 || rep.Egress+rep.Ingress != rep.Sent ||
		rep.SentBytes == 0 || rep.SocketsOpened == 0 || rep.PortFallbacks != 0 {
		t.Fatalf("report %+v", rep)
	}
	sd := sides(t, rep)
	if sd[eniA] != (side{100, macA.String()}) || sd[eniB].mac != "02:00:7f:00:00:03" {
		t.Fatalf("ENIs %+v", rep.ENIs)
	}
	got := rcv.wait(t, rep.Sent)

	type flowSeen struct {
		from     netip.AddrPort
		egress   int
		ingress  int
		tcpFlags []string
	}
	flows := map[string]*flowSeen{}
	seen := map[string]int{}
	var egress, ingress uint64
	perENI := map[netip.Addr][2]uint64{}
	for _, d := range got {
		m := decodeMirrored(t, d)
		s, ok := sd[m.from.Addr()]
		if !ok {
			t.Fatalf("datagram from %v, not an ENI", m.from)
		}
		if p := m.from.Port(); p < FirstSourcePort {
			t.Fatalf("source port %d", p)
		}
		if m.vni != s.vni {
			t.Fatalf("VNI %d from %v, want %d", m.vni, m.from, s.vni)
		}
		eg := direction(t, m, s)
		c := perENI[m.from.Addr()]
		if eg {
			egress++
			c[0]++
		} else {
			ingress++
			c[1]++
		}
		perENI[m.from.Addr()] = c
		f := flows[m.key()]
		if f == nil {
			f = &flowSeen{from: m.from}
			flows[m.key()] = f
		} else if f.from != m.from {
			t.Errorf("flow %s: from %v and %v", m.key(), f.from, m.from)
		}
		if eg {
			f.egress++
		} else {
			f.ingress++
		}
		if m.proto == layers.LayerTypeTCP {
			f.tcpFlags = append(f.tcpFlags, m.tcpFlags)
		}
		seen[m.proto.String()]++
		if m.v6 {
			seen["ipv6"]++
		} else {
			seen["ipv4"]++
		}
	}
	if egress != rep.Egress || ingress != rep.Ingress {
		t.Errorf("egress/ingress %d/%d, report %d/%d", egress, ingress, rep.Egress, rep.Ingress)
	}
	for _, e := range rep.ENIs {
		if c := perENI[e.IP]; c != [2]uint64{e.Egress, e.Ingress} {
			t.Errorf("ENI %v: received %v, report %d/%d", e.IP, c, e.Egress, e.Ingress)
		}
	}
	if len(flows) != 40 {
		t.Errorf("%d flows seen, want 40", len(flows))
	}
	for k, f := range flows {
		if f.egress != 3 || f.ingress != 3 {
			t.Errorf("flow %s: %d egress, %d ingress", k, f.egress, f.ingress)
		}
		// Loopback may reorder datagrams from different sockets; compare the set.
		slices.Sort(f.tcpFlags)
		if f.tcpFlags != nil && strings.Join(f.tcpFlags, " ") != "AF AP AP AP S SA" {
			t.Errorf("flow %s: TCP flags %v", k, f.tcpFlags)
		}
	}
	for _, s := range []string{"ipv4", "ipv6", "TCP", "UDP", "ICMPv4", "ICMPv6"} {
		if seen[s] == 0 {
			t.Errorf("no %s packets (%v)", s, seen)
		}
	}

	if len(rep.Flows) != 40 {
		t.Fatalf("%d flow reports", len(rep.Flows))
	}
	clients, servers := 0, 0
	for _, f := range rep.Flows {
		if f.Packets != 6 || (f.ClientENI == "") == (f.ServerENI == "") {
			t.Errorf("flow %+v", f)
		}
		if f.ClientENI != "" {
			clients++
		} else {
			servers++
		}
	}
	if clients == 0 || servers == 0 {
		t.Errorf("ENI is client of %d flows, server of %d", clients, servers)
	}
	j, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"sent":240`, `"frames":240`, `"duplicates":0`, `"send_errors":0`, `"port_fallbacks":`,
		`"enis":[{"ip":"127.0.0.2","mac":"02:29:23:74:c7:7d","vni":100,`, `"client_eni":`, `"src_port":`, `"elapsed_s":`} {
		if !bytes.Contains(j, []byte(k)) {
			t.Errorf("JSON lacks %s: %s", k, j[:min(len(j), 400)])
		}
	}
}

// TestBothEnds checks that with both ends mirrored every inner IP packet arrives
// twice: as egress at the sender's ENI and as ingress at the receiver's.
func TestBothEnds(t *testing.T) {
	rcv := startReceiver(t)
	rep := run(t, Config{
		Target: rcv.addr,
		ENIs: []ENI{
			{IP: eniA, MAC: macA, VNI: 100},
			{IP: eniB, VNI: 200},
			{IP: eniC, VNI: 100}, // sessions may share a VNI
		},
		Flows:          30,
		PacketsPerFlow: 5,
		IPv6Share:      0.5,
		BothEnds:       true,
		Seed:           9,
		Rate:           20000,
	})
	if rep.Frames != 150 || rep.Sent != 300 || rep.Duplicates != 150 || rep.Egress != 150 || rep.Ingress != 150 {
		t.Fatalf("report %+v", rep)
	}
	sd := sides(t, rep)
	got := rcv.wait(t, rep.Sent)

	copies := map[string][]mirrored{}
	for _, d := range got {
		m := decodeMirrored(t, d)
		copies[m.ipPacket] = append(copies[m.ipPacket], m)
	}
	pairs := 0
	pairsSeen := map[[2]netip.Addr]bool{}
	for _, c := range copies {
		if len(c) != 2 {
			t.Fatalf("IP packet %v -> %v arrived %d times", c[0].src, c[0].dst, len(c))
		}
		eg, in := c[0], c[1]
		if !direction(t, eg, sd[eg.from.Addr()]) {
			eg, in = in, eg
		}
		if !direction(t, eg, sd[eg.from.Addr()]) || direction(t, in, sd[in.from.Addr()]) {
			t.Fatalf("copies of %v -> %v are not one egress and one ingress", eg.src, eg.dst)
		}
		if eg.from.Addr() == in.from.Addr() || eg.vni != sd[eg.from.Addr()].vni || in.vni != sd[in.from.Addr()].vni {
			t.Fatalf("copies from %v (VNI %d) and %v (VNI %d)", eg.from, eg.vni, in.from, in.vni)
		}
		if eg.srcMAC == in.srcMAC || eg.dstMAC == in.dstMAC {
			t.Fatalf("copies have the same MACs %s -> %s", eg.srcMAC, eg.dstMAC)
		}
		if eg.from.Port() != in.from.Port() {
			t.Errorf("copies from ports %d and %d", eg.from.Port(), in.from.Port())
		}
		pairsSeen[[2]netip.Addr{eg.from.Addr(), in.from.Addr()}] = true
		pairs++
	}
	if uint64(pairs) != rep.Duplicates {
		t.Errorf("%d duplicated packets, report says %d", pairs, rep.Duplicates)
	}
	if len(pairsSeen) != 6 {
		t.Errorf("%d ordered ENI pairs, want all 6: %v", len(pairsSeen), pairsSeen)
	}
	for _, f := range rep.Flows {
		if f.ClientENI == "" || f.ServerENI == "" || f.ClientENI == f.ServerENI || f.Packets != 5 {
			t.Errorf("flow %+v", f)
		}
	}
}

// TestPortFallback occupies the source port range on an ENI address, but for its
// last port, with sockets that do not share: every flow must fall back to it.
func TestPortFallback(t *testing.T) {
	var held []*net.UDPConn
	busy := map[uint16]bool{}
	for p := FirstSourcePort; p < 0xffff; p++ {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(eniC, uint16(p))))
		if err != nil {
			t.Logf("port %d: %v", p, err) // in use already: busy either way
		} else {
			held = append(held, c)
		}
		busy[uint16(p)] = true
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	rcv := startReceiver(t)
	rep := run(t, Config{
		Target: rcv.addr, ENIs: []ENI{{IP: eniC, VNI: 5}},
		Flows: 12, PacketsPerFlow: 4, Seed: 1, Rate: 20000,
	})
	if rep.Sent != 48 || rep.PortFallbacks == 0 || rep.PortFallbacks > rep.SocketsOpened {
		t.Fatalf("report %+v", rep)
	}
	for _, d := range rcv.wait(t, rep.Sent) {
		if d.from.Port() != 0xffff {
			t.Fatalf("datagram from %v", d.from)
		}
	}
}

func TestSockCache(t *testing.T) {
	c := newSockCache(3, FirstSourcePort+1)
	defer c.close()
	first, p, err := c.get(eniA, FirstSourcePort+10)
	if err != nil || p != FirstSourcePort+10 {
		t.Fatalf("get: port %d, %v", p, err)
	}
	if again, _, _ := c.get(eniA, FirstSourcePort+10); again != first {
		t.Errorf("same key, different socket")
	}
	// The avoided port (the target's) is skipped like a busy one.
	if _, p, err := c.get(eniA, FirstSourcePort+1); err != nil || p != FirstSourcePort+2 || c.fallbacks != 1 {
		t.Errorf("avoided port: bound %d, fallbacks %d, %v", p, c.fallbacks, err)
	}
	for i := range 4 {
		if _, _, err := c.get(eniB, FirstSourcePort+20+uint16(i)); err != nil {
			t.Fatal(err)
		}
		if c.open() > 3 {
			t.Fatalf("%d sockets open, max 3", c.open())
		}
	}
	if c.opened != 6 || c.evicted != 3 {
		t.Errorf("opened %d evicted %d", c.opened, c.evicted)
	}
	if _, err := first.WriteToUDPAddrPort([]byte{1}, netip.MustParseAddrPort("127.0.0.1:9")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("evicted socket still open: %v", err)
	}
	// Wrapping at the end of the range.
	if nextPort(0xffff) != FirstSourcePort || nextPort(FirstSourcePort) != FirstSourcePort+1 {
		t.Errorf("nextPort")
	}
}

// TestSmallCache runs with a socket cache far smaller than the flows need.
func TestSmallCache(t *testing.T) {
	defer func(n int) { maxSockets = n }(maxSockets)
	maxSockets = 2
	rcv := startReceiver(t)
	rep := run(t, Config{
		Target: rcv.addr, ENIs: []ENI{{IP: eniA, VNI: 1}, {IP: eniB, VNI: 2}},
		Flows: 30, PacketsPerFlow: 4, BothEnds: true, Rate: 20000,
	})
	if rep.Sent != 240 || rep.SocketsOpened <= 2 {
		t.Fatalf("report %+v", rep)
	}
	rcv.wait(t, rep.Sent)
}

func TestTupleHash(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("198.18.0.7")
	seen := map[uint16]bool{}
	for p := uint16(1000); p < 1400; p++ {
		h := tupleHash(protoTCP, a, p, b, 443)
		if h != tupleHash(protoTCP, b, 443, a, p) {
			t.Fatalf("hash not symmetric")
		}
		if h == tupleHash(protoUDP, a, p, b, 443) {
			t.Fatalf("protocol not hashed")
		}
		port := hashPort(h)
		if port < FirstSourcePort || int(port) >= FirstSourcePort+NumSourcePorts {
			t.Fatalf("port %d out of range", port)
		}
		seen[port] = true
	}
	if len(seen) < NumSourcePorts*3/4 {
		t.Errorf("400 flows hash to only %d ports", len(seen))
	}
	// Same address, different ports: still symmetric.
	if tupleHash(protoUDP, a, 1, a, 2) != tupleHash(protoUDP, a, 2, a, 1) {
		t.Errorf("hash not symmetric on one address")
	}
	x, y := []byte{2, 0, 0, 0, 0, 1}, []byte{6, 0, 0, 0, 0, 1}
	if macHash(0x0806, x, y) != macHash(0x0806, y, x) || macHash(0x0806, x, y) == macHash(0x0800, x, y) {
		t.Errorf("macHash")
	}
}

func TestDeterministic(t *testing.T) {
	rcv := startReceiver(t)
	cfg := Config{Target: rcv.addr, ENIs: []ENI{{IP: eniA}, {IP: eniB}}, Flows: 10, PacketsPerFlow: 2, IPv6Share: 0.5, Seed: 42}
	r1, r2 := run(t, cfg), run(t, cfg)
	cfg.Seed = 43
	r3 := run(t, cfg)
	j := func(r Report) string {
		b, _ := json.Marshal(struct {
			E []ENIReport
			F []FlowReport
		}{r.ENIs, r.Flows})
		return string(b)
	}
	if j(r1) != j(r2) {
		t.Errorf("same seed, different runs:\n%s\n%s", j(r1), j(r2))
	}
	if j(r1) == j(r3) || r1.ENIs[0].VNI == r3.ENIs[0].VNI {
		t.Errorf("different seeds, same run")
	}
	rcv.wait(t, r1.Sent+r2.Sent+r3.Sent)
}

func TestRateAndProgress(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 20 * time.Millisecond
	rcv := startReceiver(t)
	var calls atomic.Int64
	var last atomic.Uint64
	start := time.Now()
	rep := run(t, Config{
		Target: rcv.addr, ENIs: []ENI{{IP: eniA}}, Flows: 10, PacketsPerFlow: 10, Rate: 1000,
		Progress: func(r Report) {
			calls.Add(1)
			if r.Flows != nil || len(r.ENIs) != 1 || r.Sent < last.Load() {
				t.Errorf("progress report %+v", r)
			}
			last.Store(r.Sent)
		},
	})
	if el := time.Since(start); el < 90*time.Millisecond || rep.Elapsed < 90*time.Millisecond {
		t.Errorf("100 datagrams at 1000/s took %v (report %v)", el, rep.Elapsed)
	}
	if rep.PPS > 1200 {
		t.Errorf("%.0f datagrams/s at rate 1000", rep.PPS)
	}
	if calls.Load() < 2 {
		t.Errorf("%d progress calls", calls.Load())
	}
	rcv.wait(t, rep.Sent)
}

func TestCancel(t *testing.T) {
	rcv := startReceiver(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancel once some datagrams have arrived (not after a fixed time): at 100/s the
	// 100 datagrams take a second, so the run is cut well short.
	go func() {
		deadline := time.Now().Add(5 * time.Second)
		for rcv.count() < 5 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	rep, err := Run(ctx, Config{Target: rcv.addr, ENIs: []ENI{{IP: eniA}}, Flows: 10, PacketsPerFlow: 10, Rate: 100})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if rep.Sent == 0 || rep.Sent >= 100 || rep.Frames != rep.Sent {
		t.Errorf("report %+v", rep)
	}
	rcv.wait(t, rep.Sent)
}

func TestConfigErrors(t *testing.T) {
	target := netip.MustParseAddrPort("127.0.0.1:4789")
	ok := []ENI{{IP: eniA}, {IP: eniB}}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no target", Config{ENIs: ok}, "no target"},
		{"IPv6 target", Config{Target: netip.MustParseAddrPort("[::1]:4789"), ENIs: ok}, "not IPv4"},
		{"no ENIs", Config{Target: target}, "no ENIs"},
		{"IPv6 ENI", Config{Target: target, ENIs: []ENI{{IP: netip.MustParseAddr("::1")}}}, "not a unicast IPv4"},
		{"duplicate ENI", Config{Target: target, ENIs: []ENI{{IP: eniA}, {IP: eniA}}}, "duplicate"},
		{"bad MAC", Config{Target: target, ENIs: []ENI{{IP: eniA, MAC: net.HardwareAddr{1, 2}}}}, "6 bytes"},
		{"router MAC", Config{Target: target, ENIs: []ENI{{IP: eniA, MAC: RouterMAC()}}}, "router"},
		{"big VNI", Config{Target: target, ENIs: []ENI{{IP: eniA, VNI: 1 << 24}}}, "24 bits"},
		{"not local", Config{Target: target, ENIs: []ENI{{IP: netip.MustParseAddr("192.0.2.1")}}}, "must be local"},
		{"protocol", Config{Target: target, ENIs: ok, Protos: []string{"sctp"}}, "unknown protocol"},
		{"port 0", Config{Target: target, ENIs: ok, Ports: []uint16{80, 0}}, "port 0"},
		{"IPv6Share", Config{Target: target, ENIs: ok, IPv6Share: 1.5}, "IPv6Share"},
		{"negative", Config{Target: target, ENIs: ok, Flows: -1}, "negative"},
		{"BothEnds one ENI", Config{Target: target, ENIs: ok[:1], BothEnds: true}, "two ENIs"},
		{"BothEnds PCAP", Config{Target: target, ENIs: ok, BothEnds: true, PCAP: "x.pcap"}, "exclude"},
		{"missing PCAP", Config{Target: target, ENIs: ok, PCAP: "/nonexistent.pcap"}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "mirrorsim: ") {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
