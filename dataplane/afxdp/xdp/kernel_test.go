package xdp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// loaded is a collection loaded into the running kernel.
type loaded struct {
	coll *ebpf.Collection
	prog *ebpf.Program
}

// load loads the collection for cfg, or skips the test when this machine
// cannot: not root, or the kernel refuses for lack of permission or support.
// With CI set, those are failures instead, so CI cannot pass by skipping.
func load(t testing.TB, cfg Config) *loaded {
	t.Helper()
	skip := func(reason string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set, so not skipping: "+reason, args...)
		}
		t.Skipf(reason, args...)
	}
	if os.Geteuid() != 0 {
		skip("loading an XDP program needs root")
	}
	spec, err := Spec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EPERM) {
		skip("kernel refuses to load the program: %v", err)
	}
	if err != nil {
		// %+v prints the verifier log.
		t.Fatalf("loading: %+v", err)
	}
	t.Cleanup(func() { coll.Close() })
	return &loaded{coll: coll, prog: coll.Programs[ProgramName]}
}

// run runs one packet and returns the action and the counter it bumped. It
// fails the test unless exactly one counter moved by one.
func (l *loaded) run(t testing.TB, pkt []byte) (uint32, Counter) {
	t.Helper()
	before := l.counters(t)
	rc, err := l.prog.Run(&ebpf.RunOptions{Data: pkt})
	if err != nil {
		t.Fatalf("run %d bytes: %v", len(pkt), err)
	}
	after := l.counters(t)
	moved := Counter(numCounters)
	for i := range before {
		switch after[i] - before[i] {
		case 0:
		case 1:
			if moved != numCounters {
				t.Fatalf("counters %d and %d both moved", moved, i)
			}
			moved = Counter(i)
		default:
			t.Fatalf("counter %d moved by %d", i, after[i]-before[i])
		}
	}
	if moved == numCounters {
		t.Fatalf("no counter moved for %d bytes", len(pkt))
	}
	return rc, moved
}

func (l *loaded) counters(t testing.TB) [numCounters]uint64 {
	t.Helper()
	c, err := ReadCounters(l.coll)
	if err != nil {
		t.Fatal(err)
	}
	return [numCounters]uint64{
		CounterRedirected:      c.Redirected,
		CounterNoSocket:        c.NoSocket,
		CounterPassed:          c.Passed,
		CounterPassedFragment:  c.PassedFragment,
		CounterPassedMalformed: c.PassedMalformed,
		CounterDroppedSource:   c.DroppedSource,
		CounterPassedOversize:  c.PassedOversize,
		CounterFastPath:        c.FastPath,
	}
}

// Packet building.

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

type pktOpts struct {
	src      string // IPv4 or IPv6 source
	dst      string // of the same family; empty: 10.9.9.9 or 2001:db8::2
	dstPort  uint16
	proto    layers.IPProtocol
	vlans    []layers.EthernetType // outer first: the TPID of each tag
	fragOff  uint16                // IPv4 fragment offset in 8-byte units
	moreFrag bool
	payload  int
}

func buildPacket(t testing.TB, o pktOpts) []byte {
	t.Helper()
	src := netip.MustParseAddr(o.src)
	dst := o.dst
	switch {
	case dst != "":
	case src.Is6():
		dst = "2001:db8::2"
	default:
		dst = "10.9.9.9"
	}
	dstIP := netip.MustParseAddr(dst).AsSlice()
	var stack []gopacket.SerializableLayer
	netType := layers.EthernetTypeIPv4
	if src.Is6() {
		netType = layers.EthernetTypeIPv6
	}
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: netType}
	stack = append(stack, eth)
	if len(o.vlans) > 0 {
		eth.EthernetType = o.vlans[0]
		for i := range o.vlans {
			next := netType
			if i+1 < len(o.vlans) {
				next = o.vlans[i+1]
			}
			stack = append(stack, &layers.Dot1Q{VLANIdentifier: uint16(100 + i), Type: next})
		}
	}
	proto := o.proto
	if proto == 0 {
		proto = layers.IPProtocolUDP
	}
	var netLayer gopacket.NetworkLayer
	if src.Is6() {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto,
			SrcIP: src.AsSlice(), DstIP: dstIP}
		netLayer = ip
		stack = append(stack, ip)
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto,
			SrcIP: src.AsSlice(), DstIP: dstIP, FragOffset: o.fragOff}
		if o.moreFrag {
			ip.Flags = layers.IPv4MoreFragments
		}
		netLayer = ip
		stack = append(stack, ip)
	}
	switch proto {
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(o.dstPort)}
		if err := udp.SetNetworkLayerForChecksum(netLayer); err != nil {
			t.Fatal(err)
		}
		stack = append(stack, udp)
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(o.dstPort), SYN: true, Window: 1024}
		if err := tcp.SetNetworkLayerForChecksum(netLayer); err != nil {
			t.Fatal(err)
		}
		stack = append(stack, tcp)
	case layers.IPProtocolICMPv4:
		stack = append(stack, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0)})
	}
	stack = append(stack, gopacket.Payload(make([]byte, o.payload)))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, stack...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func arpPacket(t testing.TB) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true},
		&layers.Ethernet{SrcMAC: macA, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: macA, SourceProtAddress: []byte{10, 0, 1, 5},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const (
	allowedSrc = "10.0.1.5"
	deniedSrc  = "10.0.2.5"
)

// In BPF_PROG_TEST_RUN no AF_XDP socket is bound, so bpf_redirect_map finds
// no entry and returns its flags argument, XDP_PASS: a steered packet comes
// back as XDP_PASS and is counted NoSocket.
func TestSteering(t *testing.T) {
	qinq := []layers.EthernetType{layers.EthernetTypeQinQ, layers.EthernetTypeDot1Q}
	for _, tc := range []struct {
		name    string
		open    bool // an empty allow list
		pkt     pktOpts
		arp     bool
		rc      uint32
		counter Counter
	}{
		{name: "geneve allowed", pkt: pktOpts{src: allowedSrc, dstPort: 6081, payload: 100}, rc: actionPass, counter: CounterNoSocket},
		{name: "geneve allowed /32", pkt: pktOpts{src: "192.0.2.7", dstPort: 6081}, rc: actionPass, counter: CounterNoSocket},
		{name: "geneve denied", pkt: pktOpts{src: deniedSrc, dstPort: 6081}, rc: actionDrop, counter: CounterDroppedSource},
		{name: "geneve next to a /32", pkt: pktOpts{src: "192.0.2.8", dstPort: 6081}, rc: actionDrop, counter: CounterDroppedSource},
		{name: "geneve any source", open: true, pkt: pktOpts{src: deniedSrc, dstPort: 6081}, rc: actionPass, counter: CounterNoSocket},
		{name: "vxlan not source checked", pkt: pktOpts{src: deniedSrc, dstPort: 4789}, rc: actionPass, counter: CounterNoSocket},
		{name: "ipv6 vxlan", pkt: pktOpts{src: "2001:db8::1", dstPort: 4789}, rc: actionPass, counter: CounterNoSocket},
		{name: "ipv6 geneve, list in force", pkt: pktOpts{src: "2001:db8::1", dstPort: 6081}, rc: actionDrop, counter: CounterDroppedSource},
		{name: "ipv6 geneve, any source", open: true, pkt: pktOpts{src: "2001:db8::1", dstPort: 6081}, rc: actionPass, counter: CounterNoSocket},
		{name: "ipv6 other udp", pkt: pktOpts{src: "2001:db8::1", dstPort: 53}, rc: actionPass, counter: CounterPassed},
		{name: "ipv6 tcp to 6081", pkt: pktOpts{src: "2001:db8::1", dstPort: 6081, proto: layers.IPProtocolTCP}, rc: actionPass, counter: CounterPassed},
		{name: "802.1Q geneve denied", pkt: pktOpts{src: deniedSrc, dstPort: 6081, vlans: []layers.EthernetType{layers.EthernetTypeDot1Q}}, rc: actionDrop, counter: CounterDroppedSource},
		{name: "802.1Q geneve allowed", pkt: pktOpts{src: allowedSrc, dstPort: 6081, vlans: []layers.EthernetType{layers.EthernetTypeDot1Q}}, rc: actionPass, counter: CounterNoSocket},
		{name: "QinQ vxlan", pkt: pktOpts{src: deniedSrc, dstPort: 4789, vlans: qinq}, rc: actionPass, counter: CounterNoSocket},
		{name: "QinQ geneve denied", pkt: pktOpts{src: deniedSrc, dstPort: 6081, vlans: qinq}, rc: actionDrop, counter: CounterDroppedSource},
		{name: "three tags passed", pkt: pktOpts{src: deniedSrc, dstPort: 6081, vlans: append(qinq, layers.EthernetTypeDot1Q)}, rc: actionPass, counter: CounterPassed},
		{name: "arp", arp: true, rc: actionPass, counter: CounterPassed},
		{name: "icmp", pkt: pktOpts{src: deniedSrc, proto: layers.IPProtocolICMPv4}, rc: actionPass, counter: CounterPassed},
		{name: "tcp to 6081", pkt: pktOpts{src: deniedSrc, dstPort: 6081, proto: layers.IPProtocolTCP}, rc: actionPass, counter: CounterPassed},
		{name: "other udp", pkt: pktOpts{src: deniedSrc, dstPort: 53}, rc: actionPass, counter: CounterPassed},
		{name: "first fragment", pkt: pktOpts{src: deniedSrc, dstPort: 6081, moreFrag: true, payload: 64}, rc: actionPass, counter: CounterPassedFragment},
		{name: "later fragment", pkt: pktOpts{src: deniedSrc, dstPort: 6081, fragOff: 3}, rc: actionPass, counter: CounterPassedFragment},
		{name: "last fragment of vxlan", pkt: pktOpts{src: allowedSrc, dstPort: 4789, fragOff: 185}, rc: actionPass, counter: CounterPassedFragment},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testCfg
			if tc.open {
				cfg.AllowedSources = nil
			}
			l := load(t, cfg)
			var pkt []byte
			if tc.arp {
				pkt = arpPacket(t)
			} else {
				pkt = buildPacket(t, tc.pkt)
			}
			rc, c := l.run(t, pkt)
			if rc != tc.rc || c != tc.counter {
				t.Errorf("got action %d counter %d, want %d %d", rc, c, tc.rc, tc.counter)
			}
			if mrc, mc := model(pkt, cfg); mrc != rc || mc != c {
				t.Errorf("model says %d %d, kernel %d %d", mrc, mc, rc, c)
			}
		})
	}
}

// TestMalformedIPv4 covers headers the program must not trust.
func TestMalformedIPv4(t *testing.T) {
	l := load(t, testCfg)
	base := buildPacket(t, pktOpts{src: deniedSrc, dstPort: 6081, payload: 40})
	for _, tc := range []struct {
		name    string
		edit    func(p []byte) []byte
		counter Counter
	}{
		{"ihl 4", func(p []byte) []byte { p[14] = 0x44; return p }, CounterPassedMalformed},
		{"ihl 0", func(p []byte) []byte { p[14] = 0x40; return p }, CounterPassedMalformed},
		{"version 6 in ipv4 ethertype", func(p []byte) []byte { p[14] = 0x65; return p }, CounterPassedMalformed},
		// IHL 15 puts the UDP header at byte 74; the packet has 82 bytes, so
		// the "ports" read are payload bytes, zero here: not steered.
		{"ihl 15", func(p []byte) []byte { p[14] = 0x4f; return p }, CounterPassed},
		{"ihl 15 with geneve port after options", func(p []byte) []byte {
			p[14] = 0x4f
			binary.BigEndian.PutUint16(p[14+60+2:], 6081)
			return p
		}, CounterDroppedSource},
		{"ihl past the end", func(p []byte) []byte { p[14] = 0x4f; return p[:14+60+7] }, CounterPassedMalformed},
		{"ihl 6 options skipped", func(p []byte) []byte {
			// The real UDP header (port 6081) is now read as an option and
			// the ports come from its length and checksum fields.
			p[14] = 0x46
			return p
		}, CounterPassed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.edit(append([]byte(nil), base...))
			rc, c := l.run(t, p)
			if c != tc.counter {
				t.Errorf("counter %d, want %d", c, tc.counter)
			}
			if mrc, mc := model(p, testCfg); mrc != rc || mc != c {
				t.Errorf("model says %d %d, kernel %d %d", mrc, mc, rc, c)
			}
		})
	}
}

// TestTruncated runs each packet cut at every length. A cut before the end
// of the UDP header must pass as malformed; after it the packet is steered
// as whole ones are (the program reads no further than the UDP header).
func TestTruncated(t *testing.T) {
	l := load(t, testCfg)
	qinq := []layers.EthernetType{layers.EthernetTypeQinQ, layers.EthernetTypeDot1Q}
	for _, tc := range []struct {
		name     string
		pkt      pktOpts
		headers  int // bytes up to the end of the UDP header
		complete Counter
	}{
		{"ipv4 geneve", pktOpts{src: allowedSrc, dstPort: 6081, payload: 16}, 14 + 20 + 8, CounterNoSocket},
		{"ipv4 geneve denied", pktOpts{src: deniedSrc, dstPort: 6081, payload: 16}, 14 + 20 + 8, CounterDroppedSource},
		{"ipv6 vxlan", pktOpts{src: "2001:db8::1", dstPort: 4789, payload: 16}, 14 + 40 + 8, CounterNoSocket},
		{"qinq vxlan", pktOpts{src: deniedSrc, dstPort: 4789, vlans: qinq, payload: 16}, 14 + 8 + 20 + 8, CounterNoSocket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := buildPacket(t, tc.pkt)
			for n := ethHeaderLen; n <= len(full); n++ {
				rc, c := l.run(t, full[:n])
				want, wantRC := tc.complete, uint32(actionPass)
				if n < tc.headers {
					want = CounterPassedMalformed
				} else if want == CounterDroppedSource {
					wantRC = actionDrop
				}
				if rc != wantRC || c != want {
					t.Errorf("%d of %d bytes: action %d counter %d, want %d %d", n, len(full), rc, c, wantRC, want)
				}
			}
		})
	}
}

// TestShorterThanEthernet documents that the kernel itself refuses to test
// run an XDP program on less than an Ethernet header, so such frames are
// covered by the bounds checks the verifier demands, not by a run.
func TestShorterThanEthernet(t *testing.T) {
	l := load(t, testCfg)
	for n := range ethHeaderLen {
		if _, err := l.prog.Run(&ebpf.RunOptions{Data: make([]byte, n)}); err == nil {
			t.Errorf("%d bytes: the kernel ran the program; the bounds checks now matter in tests too", n)
		}
	}
}

// TestVerifierAccepts loads the program with every config shape; the load
// is the verifier's approval.
func TestVerifierAccepts(t *testing.T) {
	for _, cfg := range []Config{
		testCfg,
		{GenevePort: 6081, VXLANPort: 4789, Queues: 1},
		{GenevePort: 65535, VXLANPort: 1, Queues: maxQueues},
		{GenevePort: 6081, VXLANPort: 4789, Queues: 1, FastPath: true},
		{GenevePort: 6081, Queues: 2, FastPath: true, FastFlows: 16, MaxFrame: 3840, Frags: true,
			AllowedSources: testCfg.AllowedSources,
			GeneveDst:      netip.MustParseAddr("10.9.9.9"), VXLANDst: netip.MustParseAddr("2001:db8::2")},
		{GenevePort: 6081, Queues: 2, FastPath: true, MaxFrame: 3840, GeneveDst: netip.MustParseAddr("2001:db8::2")},
	} {
		l := load(t, cfg)
		info, err := l.prog.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Type != ebpf.XDP {
			t.Errorf("loaded type %s, want XDP", info.Type)
		}
		if n, ok := info.VerifiedInstructions(); ok {
			t.Logf("fast path %v frags %v: %d instructions verified", cfg.FastPath, cfg.Frags, n)
		}
	}
}

// TestLicence shows that the helpers the program calls (map lookup,
// bpf_redirect_map) are not GPL-only: the kernel loads it under a licence
// that is not GPL-compatible. The spec's dual licence is therefore a choice,
// not a requirement.
func TestLicence(t *testing.T) {
	load(t, testCfg) // skips where the kernel cannot load programs at all
	spec, err := Spec(testCfg)
	if err != nil {
		t.Fatal(err)
	}
	spec.Programs[ProgramName].License = "Proprietary"
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("a non-GPL licence was refused, so some helper is GPL-only: %v", err)
	}
	coll.Close()
}

func TestFill(t *testing.T) {
	l := load(t, testCfg)
	geneve := func(src string) []byte { return buildPacket(t, pktOpts{src: src, dstPort: 6081}) }
	for _, step := range []struct {
		name    string
		sources []string
		allowed []string
		denied  []string
	}{
		{"initial", []string{"10.0.1.0/24", "192.0.2.7/32"}, []string{"10.0.1.5", "192.0.2.7"}, []string{"10.0.2.5"}},
		{"replace", []string{"10.0.2.0/24"}, []string{"10.0.2.5"}, []string{"10.0.1.5", "192.0.2.7"}},
		{"widen", []string{"10.0.0.0/8", "10.0.2.0/24"}, []string{"10.0.1.5", "10.0.2.5"}, []string{"192.0.2.7"}},
		{"empty", nil, []string{"10.0.1.5", "192.0.2.7", "203.0.113.1"}, nil},
		{"on again", []string{"203.0.113.0/24"}, []string{"203.0.113.1"}, []string{"10.0.1.5"}},
	} {
		cfg := testCfg
		cfg.AllowedSources = nil
		for _, s := range step.sources {
			cfg.AllowedSources = append(cfg.AllowedSources, netip.MustParsePrefix(s))
		}
		if err := Fill(l.coll, cfg); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		for _, src := range step.allowed {
			if rc, c := l.run(t, geneve(src)); rc != actionPass || c != CounterNoSocket {
				t.Errorf("%s: %s got %d %d, want steered", step.name, src, rc, c)
			}
		}
		for _, src := range step.denied {
			if rc, c := l.run(t, geneve(src)); rc != actionDrop || c != CounterDroppedSource {
				t.Errorf("%s: %s got %d %d, want dropped", step.name, src, rc, c)
			}
		}
		var n int
		var k lpmKey
		var v uint8
		for it := l.coll.Maps[MapAllowed].Iterate(); it.Next(&k, &v); {
			n++
		}
		if n != len(step.sources) {
			t.Errorf("%s: %d prefixes in the map, want %d (stale ones removed)", step.name, n, len(step.sources))
		}
	}
}

func TestFillRejects(t *testing.T) {
	l := load(t, testCfg)
	bad := testCfg
	bad.AllowedSources = []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}
	if err := Fill(l.coll, bad); err == nil {
		t.Error("Fill took an IPv6 prefix")
	}
	if err := Fill(&ebpf.Collection{}, testCfg); err == nil {
		t.Error("Fill took a collection without maps")
	}
	if _, err := ReadCounters(&ebpf.Collection{}); err == nil {
		t.Error("ReadCounters took a collection without maps")
	}
}

// model is the program's decision written plainly in Go, for the
// differential fuzz target and as a cross-check in the tables. It takes p
// as one buffer, as test runs of up to 3520 bytes are.
func model(p []byte, cfg Config) (uint32, Counter) {
	steer := func() (uint32, Counter) {
		if cfg.MaxFrame > 0 && len(p) > cfg.MaxFrame {
			return actionPass, CounterPassedOversize
		}
		return actionPass, CounterNoSocket
	}
	// to reports whether the datagram is addressed to want, or want is no
	// filter.
	var dst netip.Addr
	to := func(want netip.Addr) bool {
		return !want.IsValid() || want.IsUnspecified() || want == dst
	}
	if len(p) < ethHeaderLen {
		return actionPass, CounterPassedMalformed
	}
	off := 12
	et := binary.BigEndian.Uint16(p[off:])
	for range 2 {
		if et != etherTypeVLAN && et != etherTypeQinQ {
			break
		}
		off += vlanTagLen
		if off+2 > len(p) {
			return actionPass, CounterPassedMalformed
		}
		et = binary.BigEndian.Uint16(p[off:])
	}
	off += 2
	var src netip.Addr
	switch et {
	case etherTypeIPv4:
		if off+ipv4MinLen > len(p) {
			return actionPass, CounterPassedMalformed
		}
		if p[off]>>4 != 4 || p[off]&0xf < 5 {
			return actionPass, CounterPassedMalformed
		}
		if binary.BigEndian.Uint16(p[off+6:])&ipv4FragMask != 0 {
			return actionPass, CounterPassedFragment
		}
		if p[off+9] != protoUDP {
			return actionPass, CounterPassed
		}
		src = netip.AddrFrom4([4]byte(p[off+12 : off+16]))
		dst = netip.AddrFrom4([4]byte(p[off+16 : off+20]))
		off += int(p[off]&0xf) * 4
	case etherTypeIPv6:
		if off+ipv6HeaderLen > len(p) {
			return actionPass, CounterPassedMalformed
		}
		if p[off]>>4 != 6 {
			return actionPass, CounterPassedMalformed
		}
		if p[off+6] != protoUDP {
			return actionPass, CounterPassed
		}
		dst = netip.AddrFrom16([16]byte(p[off+24 : off+40]))
		off += ipv6HeaderLen
	default:
		return actionPass, CounterPassed
	}
	if off+udpHeaderLen > len(p) {
		return actionPass, CounterPassedMalformed
	}
	switch binary.BigEndian.Uint16(p[off+2:]) {
	case cfg.GenevePort:
		if !to(cfg.GeneveDst) {
			return actionPass, CounterPassed
		}
		if len(cfg.AllowedSources) == 0 {
			return steer()
		}
		for _, pr := range cfg.AllowedSources {
			if src.IsValid() && pr.Contains(src) {
				return steer()
			}
		}
		return actionDrop, CounterDroppedSource
	case cfg.VXLANPort:
		if cfg.VXLANPort == 0 {
			return actionPass, CounterPassed
		}
		if !to(cfg.VXLANDst) {
			return actionPass, CounterPassed
		}
		return steer()
	}
	return actionPass, CounterPassed
}

// FuzzSteer checks the kernel's verdict against the model on any frame.
func FuzzSteer(f *testing.F) {
	f.Add(buildPacket(f, pktOpts{src: allowedSrc, dstPort: 6081, payload: 8}))
	f.Add(buildPacket(f, pktOpts{src: deniedSrc, dstPort: 6081, vlans: []layers.EthernetType{layers.EthernetTypeDot1Q}}))
	f.Add(buildPacket(f, pktOpts{src: "2001:db8::1", dstPort: 4789}))
	f.Add(arpPacket(f))
	f.Add(buildPacket(f, pktOpts{src: "2001:db8::1", dst: "2001:db8::3", dstPort: 4789, payload: 1200}))
	// The second program filters destinations and limits the frame, with
	// Frags, so every branch of the program is fuzzed.
	filtered := testCfg
	filtered.GeneveDst = netip.MustParseAddr("10.9.9.9")
	filtered.VXLANDst = netip.MustParseAddr("2001:db8::2")
	filtered.MaxFrame = 1000
	filtered.Frags = true
	// The third steers no VXLAN (no mirror listener).
	noVXLAN := testCfg
	noVXLAN.VXLANPort = 0
	// The fourth and fifth add the fast path, with a map holding the keys
	// of the fast-path seeds.
	fast := testCfg
	fast.FastPath = true
	filteredFast := filtered
	filteredFast.FastPath = true
	fm := fastModel{on: true, keys: map[FastKey]bool{}}
	for _, in := range []innerOpts{tcp4, udp4, tcp6, udp6} {
		fm.keys[in.key()] = true
		f.Add(genevePacket(f, allowedSrc, nil, awsOptions(), innerPacket(f, in)))
	}
	f.Add(genevePacket(f, allowedSrc, []layers.EthernetType{layers.EthernetTypeDot1Q}, awsOptions(), innerPacket(f, tcp6)))
	keys := make([]FastKey, 0, len(fm.keys))
	for k := range fm.keys {
		keys = append(keys, k)
	}
	cfgs := []Config{testCfg, filtered, noVXLAN, fast, filteredFast}
	progs := []*loaded{load(f, testCfg), load(f, filtered), load(f, noVXLAN), loadFast(f, fast, keys...), loadFast(f, filteredFast, keys...)}
	f.Fuzz(func(t *testing.T, p []byte) {
		// Shorter runs the kernel refuses (see TestShorterThanEthernet);
		// longer ones it splits into buffers, which the model does not.
		if len(p) < ethHeaderLen || len(p) > linearMax {
			return
		}
		for i, l := range progs {
			rc, c := l.run(t, p)
			if mrc, mc := modelFast(p, cfgs[i], fm); mrc != rc || mc != c {
				t.Errorf("config %d: kernel %d %d, model %d %d for % x", i, rc, c, mrc, mc, p)
			}
		}
	})
}

func BenchmarkSteer(b *testing.B) {
	plain := load(b, testCfg)
	// Every check on: destination, frame limit measured across buffers.
	limitedCfg := testCfg
	limitedCfg.GeneveDst = netip.MustParseAddr("10.9.9.9")
	limitedCfg.MaxFrame = 3840
	limitedCfg.Frags = true
	limited := load(b, limitedCfg)
	for _, bc := range []struct {
		name string
		l    *loaded
		pkt  []byte
	}{
		{"geneve allowed", plain, buildPacket(b, pktOpts{src: allowedSrc, dstPort: 6081, payload: 100})},
		{"geneve denied", plain, buildPacket(b, pktOpts{src: deniedSrc, dstPort: 6081, payload: 100})},
		{"tcp", plain, buildPacket(b, pktOpts{src: deniedSrc, dstPort: 22, proto: layers.IPProtocolTCP})},
		{"geneve allowed, dst and frags limit", limited, buildPacket(b, pktOpts{src: allowedSrc, dstPort: 6081, payload: 100})},
		{"geneve jumbo, dst and frags limit", limited, buildPacket(b, pktOpts{src: allowedSrc, dstPort: 6081, payload: 8000})},
		// A flow in fast_flows: looked up, counted and answered in XDP.
		{"fast path hit", loadFast(b, fastCfg(), tcp4.key()), genevePacket(b, allowedSrc, nil, awsOptions(), innerPacket(b, tcp4))},
		{"fast path miss", loadFast(b, fastCfg()), genevePacket(b, allowedSrc, nil, awsOptions(), innerPacket(b, tcp4))},
	} {
		l := bc.l
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			// The kernel loops over the packet itself and reports the mean
			// time of one run, so one syscall covers many packets.
			const repeat = 10000
			var total float64
			for b.Loop() {
				_, d, err := l.prog.Benchmark(bc.pkt, repeat, nil)
				if err != nil {
					b.Fatal(err)
				}
				total += float64(d.Nanoseconds())
			}
			b.ReportMetric(total/float64(b.N), "kernel-ns/pkt")
		})
	}
}
