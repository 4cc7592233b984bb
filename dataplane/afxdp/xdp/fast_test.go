package xdp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/geneve"
)

const testEndpoint = 0x0a1b2c3d4e5f6071

// innerOpts describes the packet a GENEVE datagram carries.
type innerOpts struct {
	src, dst            string // IPv4 or IPv6, one family
	udp                 bool   // else TCP
	sport, dport        uint16
	syn, fin, rst       bool
	payload             int
	ipOptions, moreFrag bool
	fragOff             uint16
}

func (o innerOpts) proto() uint8 {
	if o.udp {
		return protoUDP
	}
	return protoTCP
}

// key is the flow's key in a datagram with awsOptions (its cookie).
func (o innerOpts) key() FastKey {
	return FastKeyOf(testEndpoint, netip.MustParseAddr(o.src), netip.MustParseAddr(o.dst), o.proto(), o.sport, o.dport).
		WithCookie(testCookie)
}

// testCookie is awsOptions' flow cookie.
const testCookie = 0xcafe

func innerPacket(t testing.TB, o innerOpts) []byte {
	t.Helper()
	src, dst := netip.MustParseAddr(o.src), netip.MustParseAddr(o.dst)
	proto := layers.IPProtocolTCP
	if o.udp {
		proto = layers.IPProtocolUDP
	}
	var stack []gopacket.SerializableLayer
	var netLayer gopacket.NetworkLayer
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), FragOffset: o.fragOff}
		if o.moreFrag {
			ip.Flags = layers.IPv4MoreFragments
		}
		if o.ipOptions {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		netLayer = ip
		stack = append(stack, ip)
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		netLayer = ip
		stack = append(stack, ip)
	}
	if o.udp {
		udp := &layers.UDP{SrcPort: layers.UDPPort(o.sport), DstPort: layers.UDPPort(o.dport)}
		if err := udp.SetNetworkLayerForChecksum(netLayer); err != nil {
			t.Fatal(err)
		}
		stack = append(stack, udp)
	} else {
		tcp := &layers.TCP{SrcPort: layers.TCPPort(o.sport), DstPort: layers.TCPPort(o.dport),
			ACK: true, SYN: o.syn, FIN: o.fin, RST: o.rst, Seq: 1000, Ack: 2000, Window: 512}
		if err := tcp.SetNetworkLayerForChecksum(netLayer); err != nil {
			t.Fatal(err)
		}
		stack = append(stack, tcp)
	}
	stack = append(stack, gopacket.Payload(bytes.Repeat([]byte{0xab}, o.payload)))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, stack...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// awsOptions is the options area GWLB sends: endpoint id, attachment id,
// flow cookie (8 words).
func awsOptions() []byte {
	return geneve.AppendAWSOptions(nil, geneve.AWS{EndpointID: testEndpoint, AttachmentID: 0x1122334455667788, FlowCookie: testCookie})
}

// genevePacket wraps inner in GENEVE with options in a UDP datagram to port
// 6081 from outerSrc (to 10.9.9.9 or 2001:db8::2), as buildPacket builds.
func genevePacket(t testing.TB, outerSrc string, vlans []layers.EthernetType, options, inner []byte) []byte {
	t.Helper()
	proto := geneve.ProtoIPv4
	if len(inner) > 0 && inner[0]>>4 == 6 {
		proto = geneve.ProtoIPv6
	}
	payload := geneve.AppendHeader(nil, proto, 0, options)
	payload[0] = byte(len(options) / 4)
	payload = append(payload, inner...)
	pkt := buildPacket(t, pktOpts{src: outerSrc, dstPort: 6081, vlans: vlans, payload: len(payload)})
	copy(pkt[len(pkt)-len(payload):], payload)
	// The UDP checksum covered zeros; a reply test compares bytes, not sums,
	// but keep the datagram valid anyway.
	fixUDPChecksum(t, pkt)
	return pkt
}

// fixUDPChecksum recomputes the outer UDP checksum after the payload changed.
func fixUDPChecksum(t testing.TB, pkt []byte) {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeEthernet, gopacket.Default)
	udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp == nil {
		t.Fatal("no outer UDP")
	}
	var nl gopacket.NetworkLayer
	if ip4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		nl = ip4
	} else {
		nl = p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	}
	udpStart := len(pkt) - len(udp.Payload) - udpHeaderLen
	cp := &layers.UDP{SrcPort: udp.SrcPort, DstPort: udp.DstPort}
	if err := cp.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, cp, gopacket.Payload(udp.Payload)); err != nil {
		t.Fatal(err)
	}
	copy(pkt[udpStart:], buf.Bytes())
}

// reply is what weir sends back for frame p: MACs and outer IP addresses
// swapped, nothing else changed (as afxdp's rewriteReply does).
func reply(p []byte) []byte {
	r := append([]byte(nil), p...)
	swapIn := func(a, b []byte) {
		for i := range a {
			a[i], b[i] = b[i], a[i]
		}
	}
	swapIn(r[0:6], r[6:12])
	off := 12
	for binary.BigEndian.Uint16(r[off:]) == etherTypeVLAN || binary.BigEndian.Uint16(r[off:]) == etherTypeQinQ {
		off += vlanTagLen
	}
	ip := r[off+2:]
	if binary.BigEndian.Uint16(r[off:]) == etherTypeIPv4 {
		swapIn(ip[12:16], ip[16:20])
	} else {
		swapIn(ip[8:24], ip[24:40])
	}
	return r
}

// fastCfg is testCfg with the fast path.
func fastCfg() Config {
	c := testCfg
	c.FastPath = true
	return c
}

// loadFast loads cfg, puts keys in fast_flows and turns the fast path on.
func loadFast(t testing.TB, cfg Config, keys ...FastKey) *loaded {
	t.Helper()
	l := load(t, cfg)
	for _, k := range keys {
		if err := l.coll.Maps[MapFastFlows].Put(k, FastCounters{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := SetFastPath(l.coll, true); err != nil {
		t.Fatal(err)
	}
	return l
}

// runOut runs pkt and returns the action, the counter moved (exactly one,
// by one) and the packet as the program left it.
func (l *loaded) runOut(t testing.TB, pkt []byte) (uint32, Counter, []byte) {
	t.Helper()
	before := l.counters(t)
	out := make([]byte, len(pkt)+256)
	opts := &ebpf.RunOptions{Data: pkt, DataOut: out}
	rc, err := l.prog.Run(opts)
	if err != nil {
		t.Fatalf("run %d bytes: %v", len(pkt), err)
	}
	after := l.counters(t)
	moved := Counter(numCounters)
	for i := range before {
		if d := after[i] - before[i]; d == 1 && moved == numCounters {
			moved = Counter(i)
		} else if d != 0 {
			t.Fatalf("counter %d moved by %d (another moved: %v)", i, d, moved != numCounters)
		}
	}
	if moved == numCounters {
		t.Fatalf("no counter moved for %d bytes", len(pkt))
	}
	return rc, moved, opts.DataOut
}

func readFast(t testing.TB, l *loaded, k FastKey) FastCounters {
	t.Helper()
	c, ok, err := ReadFast(l.coll, k)
	if err != nil || !ok {
		t.Fatalf("ReadFast: %v, present %v", err, ok)
	}
	return c
}

var (
	tcp4 = innerOpts{src: "192.168.1.10", dst: "172.16.0.20", sport: 51000, dport: 443, payload: 100}
	udp4 = innerOpts{src: "192.168.1.10", dst: "172.16.0.20", udp: true, sport: 5353, dport: 53, payload: 33}
	tcp6 = innerOpts{src: "2001:db8:a::10", dst: "2001:db8:b::20", sport: 40001, dport: 22, payload: 7}
	udp6 = innerOpts{src: "2001:db8:a::10", dst: "2001:db8:b::20", udp: true, sport: 40002, dport: 4500, payload: 200}
)

// TestFastPathAnswers: a datagram of a flow in the map comes back as the
// reply weir would send (XDP_TX), and the flow's per-CPU counters show it.
func TestFastPathAnswers(t *testing.T) {
	dot1q := []layers.EthernetType{layers.EthernetTypeDot1Q}
	qinq := []layers.EthernetType{layers.EthernetTypeQinQ, layers.EthernetTypeDot1Q}
	endpointOnly := geneve.AppendOption(nil, geneve.ClassAWS, geneve.AWSTypeEndpointID, binary.BigEndian.AppendUint64(nil, testEndpoint))
	// GWLB's layout with other classes and types after the endpoint id.
	otherTail := geneve.AppendOption(nil, geneve.ClassAWS, geneve.AWSTypeEndpointID, binary.BigEndian.AppendUint64(nil, testEndpoint))
	otherTail = geneve.AppendOption(otherTail, 0x0123, 9, make([]byte, 8))
	otherTail = geneve.AppendOption(otherTail, 0x0456, 7, make([]byte, 4))
	for _, tc := range []struct {
		name     string
		outerSrc string
		open     bool // no allow list (IPv6 GENEVE is never on it)
		vlans    []layers.EthernetType
		options  []byte
		inner    innerOpts
	}{
		{name: "ipv4 tcp ack", outerSrc: allowedSrc, inner: tcp4},
		{name: "ipv4 udp", outerSrc: allowedSrc, inner: udp4},
		{name: "ipv6 tcp", outerSrc: allowedSrc, inner: tcp6},
		{name: "ipv6 udp", outerSrc: allowedSrc, inner: udp6},
		{name: "behind 802.1Q", outerSrc: allowedSrc, vlans: dot1q, inner: tcp4},
		{name: "behind QinQ", outerSrc: allowedSrc, vlans: qinq, inner: udp6},
		{name: "outer ipv6", outerSrc: "2001:db8::1", open: true, inner: tcp4},
		{name: "endpoint id alone", outerSrc: allowedSrc, options: endpointOnly, inner: tcp4},
		{name: "gwlb layout, other options", outerSrc: allowedSrc, options: otherTail, inner: udp4},
		{name: "empty tcp", outerSrc: allowedSrc, inner: innerOpts{src: "10.1.1.1", dst: "10.2.2.2", sport: 1, dport: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastCfg()
			if tc.open {
				cfg.AllowedSources = nil
			}
			key := tc.inner.key()
			opts := tc.options
			if opts == nil {
				opts = awsOptions()
			} else {
				key = key.WithCookie(0) // neither layout below carries one
			}
			l := loadFast(t, cfg, key)
			inner := innerPacket(t, tc.inner)
			pkt := genevePacket(t, tc.outerSrc, tc.vlans, opts, inner)
			for n := uint64(1); n <= 2; n++ {
				rc, c, out := l.runOut(t, pkt)
				if rc != actionTX || c != CounterFastPath {
					t.Fatalf("packet %d: action %d counter %d, want XDP_TX and CounterFastPath", n, rc, c)
				}
				if want := reply(pkt); !bytes.Equal(out, want) {
					t.Fatalf("packet %d: reply\n% x\nwant\n% x", n, out, want)
				}
				if mrc, mc := modelFast(pkt, cfg, fastModel{on: true, keys: map[FastKey]bool{key: true}}); mrc != rc || mc != c {
					t.Errorf("model says %d %d", mrc, mc)
				}
				got := readFast(t, l, key)
				if got.Packets != n || got.Bytes != n*uint64(len(inner)) || got.LastSeen == 0 {
					t.Errorf("packet %d: counters %+v, want %d packets, %d bytes, a time", n, got, n, n*uint64(len(inner)))
				}
			}
			c, err := ReadCounters(l.coll)
			if err != nil || c.FastPath != 2 {
				t.Errorf("CounterFastPath %d (%v), want 2", c.FastPath, err)
			}
			// The UDP payload: GENEVE's 8 bytes, its options, the inner packet.
			if want := 2 * uint64(8+len(opts)+len(inner)); c.FastPathBytes != want {
				t.Errorf("CounterFastPathBytes %d, want %d", c.FastPathBytes, want)
			}
		})
	}
}

// TestFastPathDeclines: whatever the fast path must not answer is redirected
// as without it, and the flow's counters stay untouched.
func TestFastPathDeclines(t *testing.T) {
	attachmentFirst := geneve.AppendOption(nil, geneve.ClassAWS, geneve.AWSTypeAttachmentID, make([]byte, 8))
	attachmentFirst = geneve.AppendOption(attachmentFirst, geneve.ClassAWS, geneve.AWSTypeEndpointID, binary.BigEndian.AppendUint64(nil, testEndpoint))
	otherClass := geneve.AppendOption(nil, 0x0109, geneve.AWSTypeEndpointID, binary.BigEndian.AppendUint64(nil, testEndpoint))
	shortID := geneve.AppendOption(nil, geneve.ClassAWS, geneve.AWSTypeEndpointID, make([]byte, 4))
	shortID = append(shortID, make([]byte, 4)...)
	criticalID := geneve.AppendOption(nil, geneve.ClassAWS, geneve.AWSTypeEndpointID|0x80, binary.BigEndian.AppendUint64(nil, testEndpoint))
	// Valid chains in layouts the program does not take, and an overrun.
	padded := append(append([]byte(nil), awsOptions()...), make([]byte, 4*8)...) // 16 words: eight empty options
	oneLong := geneve.AppendOption(nil, geneve.ClassAWS, geneve.AWSTypeEndpointID, binary.BigEndian.AppendUint64(nil, testEndpoint))
	oneLong = geneve.AppendOption(oneLong, 0x0123, 9, make([]byte, 16)) // 8 words, a 5-word second option
	overrun := append([]byte(nil), awsOptions()...)
	overrun[12+3] = overrun[12+3]&^0x1f | 3 // the second option claims 3 data words: past the area
	for _, tc := range []struct {
		name    string
		inner   innerOpts
		options []byte
		edit    func(p []byte) []byte // of the whole frame; inner starts at innerAt
		off     bool                  // fast_on left 0
		missing bool                  // the key is not in the map
		counter Counter
	}{
		{name: "syn", inner: innerOpts{src: tcp4.src, dst: tcp4.dst, sport: tcp4.sport, dport: tcp4.dport, syn: true}},
		{name: "fin", inner: innerOpts{src: tcp4.src, dst: tcp4.dst, sport: tcp4.sport, dport: tcp4.dport, fin: true}},
		{name: "rst", inner: innerOpts{src: tcp6.src, dst: tcp6.dst, sport: tcp6.sport, dport: tcp6.dport, rst: true}},
		{name: "not in the map", inner: tcp4, missing: true},
		{name: "fast path off", inner: tcp4, off: true},
		{name: "attachment id first", inner: tcp4, options: attachmentFirst},
		{name: "endpoint id of another class", inner: tcp4, options: otherClass},
		{name: "endpoint id of 4 bytes", inner: tcp4, options: shortID},
		{name: "critical endpoint id", inner: tcp4, options: criticalID},
		{name: "no options", inner: tcp4, options: []byte{}},
		{name: "16 option words", inner: tcp4, options: padded},
		{name: "8 words, other lengths", inner: tcp4, options: oneLong},
		{name: "option overrun", inner: tcp4, options: overrun},
		{name: "inner ipv4 options", inner: innerOpts{src: tcp4.src, dst: tcp4.dst, sport: tcp4.sport, dport: tcp4.dport, ipOptions: true}},
		{name: "inner first fragment", inner: innerOpts{src: udp4.src, dst: udp4.dst, udp: true, sport: udp4.sport, dport: udp4.dport, moreFrag: true, payload: 16}},
		{name: "inner later fragment", inner: innerOpts{src: udp4.src, dst: udp4.dst, udp: true, sport: udp4.sport, dport: udp4.dport, fragOff: 2, payload: 16}},
		{name: "geneve version 1", inner: tcp4, edit: func(p []byte) []byte { p[42+8] |= 0x40; return p }},
		// The flow table starts a new flow on another cookie: it must see it.
		{name: "another flow cookie", inner: tcp4, edit: func(p []byte) []byte { p[42+8+28] ^= 0xff; return p }},
		{name: "protocol type ethernet", inner: tcp4, edit: func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[42+10:], geneve.ProtoEthernet)
			return p
		}},
		{name: "inner ipv6 with ipv4 protocol type", inner: tcp6, edit: func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[42+10:], geneve.ProtoIPv4)
			return p
		}},
		{name: "inner icmp", inner: tcp4, edit: func(p []byte) []byte { p[innerAt+9] = 1; return p }},
		{name: "inner total length past the datagram", inner: tcp4, edit: func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[innerAt+2:], uint16(len(p)-innerAt+1))
			return p
		}},
		{name: "inner total length short of tcp", inner: tcp4, edit: func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[innerAt+2:], 39)
			return p
		}},
		{name: "udp length past the frame", inner: tcp4, edit: func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[34+4:], uint16(len(p)-34+1))
			return p
		}},
		{name: "udp length short of the inner packet", inner: tcp4, edit: func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[34+4:], uint16(len(p)-34-1))
			return p
		}},
		{name: "udp length below the headers", inner: tcp4, edit: func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[34+4:], 8)
			return p
		}},
		{name: "denied source", inner: tcp4, edit: func(p []byte) []byte { copy(p[26:30], []byte{10, 0, 2, 5}); return p }, counter: CounterDroppedSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastCfg()
			l := load(t, cfg)
			key := tc.inner.key()
			keys := map[FastKey]bool{}
			if !tc.missing {
				keys[key] = true
				if err := l.coll.Maps[MapFastFlows].Put(key, FastCounters{}); err != nil {
					t.Fatal(err)
				}
			}
			if !tc.off {
				if err := SetFastPath(l.coll, true); err != nil {
					t.Fatal(err)
				}
			}
			opts := tc.options
			if opts == nil {
				opts = awsOptions()
			}
			pkt := genevePacket(t, allowedSrc, nil, opts, innerPacket(t, tc.inner))
			if tc.edit != nil {
				if len(opts) != len(awsOptions()) {
					t.Fatal("edits assume the AWS options")
				}
				pkt = tc.edit(pkt)
			}
			rc, c, out := l.runOut(t, pkt)
			want, wantRC := tc.counter, uint32(actionPass)
			if want == 0 {
				want = CounterNoSocket
			}
			if want == CounterDroppedSource {
				wantRC = actionDrop
			}
			if rc != wantRC || c != want {
				t.Errorf("action %d counter %d, want %d %d", rc, c, wantRC, want)
			}
			if !bytes.Equal(out, pkt) {
				t.Errorf("the packet changed")
			}
			if mrc, mc := modelFast(pkt, cfg, fastModel{on: !tc.off, keys: keys}); mrc != rc || mc != c {
				t.Errorf("model says %d %d, kernel %d %d", mrc, mc, rc, c)
			}
			if !tc.missing {
				if got := readFast(t, l, key); got != (FastCounters{}) {
					t.Errorf("flow counters moved: %+v", got)
				}
			}
		})
	}
}

// innerAt is where the inner packet starts in an untagged IPv4 GENEVE frame
// with the AWS options.
const innerAt = 14 + 20 + 8 + 8 + 32

// TestFastPathTruncated cuts fast-path frames at every length: only the
// whole frame is answered (the UDP length then no longer fits), and the
// flow's counters count that one.
func TestFastPathTruncated(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outerSrc string
		inner    innerOpts
	}{
		{"ipv4 in ipv4", allowedSrc, tcp4},
		{"ipv6 in ipv4", allowedSrc, udp6},
		{"ipv4 in ipv6", "2001:db8::1", udp4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastCfg()
			cfg.AllowedSources = nil
			l := loadFast(t, cfg, tc.inner.key())
			full := genevePacket(t, tc.outerSrc, nil, awsOptions(), innerPacket(t, tc.inner))
			model := fastModel{on: true, keys: map[FastKey]bool{tc.inner.key(): true}}
			for n := ethHeaderLen; n < len(full); n++ {
				cut := full[:n]
				rc, c, out := l.runOut(t, cut)
				if rc == actionTX || c == CounterFastPath || !bytes.Equal(out, cut) {
					t.Fatalf("%d of %d bytes: action %d counter %d, answered", n, len(full), rc, c)
				}
				if mrc, mc := modelFast(cut, cfg, model); mrc != rc || mc != c {
					t.Errorf("%d bytes: model says %d %d, kernel %d %d", n, mrc, mc, rc, c)
				}
			}
			if rc, _, _ := l.runOut(t, full); rc != actionTX {
				t.Fatalf("the whole frame: action %d, want XDP_TX", rc)
			}
			if got := readFast(t, l, tc.inner.key()); got.Packets != 1 {
				t.Errorf("counters %+v, want 1 packet", got)
			}
		})
	}
}

// TestFastPathFrameLimits: MaxFrame is checked before the fast path (a
// longer frame goes to the kernel as before), and with Frags the fast path
// answers at most FastFragsMax bytes, all in the first buffer.
func TestFastPathFrameLimits(t *testing.T) {
	headers := innerAt + 20 + 20 // to the inner TCP payload
	sized := func(frame int) []byte {
		o := tcp4
		o.payload = frame - headers
		return genevePacket(t, allowedSrc, nil, awsOptions(), innerPacket(t, o))
	}
	for _, tc := range []struct {
		name     string
		frags    bool
		maxFrame int
		frame    int
		counter  Counter
	}{
		{"at MaxFrame", false, 600, 600, CounterFastPath},
		{"over MaxFrame", false, 600, 601, CounterPassedOversize},
		{"frags at FastFragsMax", true, 0, FastFragsMax, CounterFastPath},
		{"frags over FastFragsMax", true, 0, FastFragsMax + 1, CounterNoSocket},
		{"frags over MaxFrame", true, 1000, 1001, CounterPassedOversize},
		{"no frags, long", false, 0, linearMax, CounterFastPath},
		{"frags, two buffers", true, 0, linearMax + 100, CounterNoSocket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastCfg()
			cfg.Frags, cfg.MaxFrame = tc.frags, tc.maxFrame
			l := loadFast(t, cfg, tcp4.key())
			pkt := sized(tc.frame)
			if len(pkt) != tc.frame {
				t.Fatalf("built %d bytes, want %d", len(pkt), tc.frame)
			}
			rc, c, _ := l.runBuffers(t, pkt)
			if c != tc.counter {
				t.Errorf("%d bytes: action %d counter %d, want counter %d", len(pkt), rc, c, tc.counter)
			}
			if len(pkt) <= linearMax {
				if mrc, mc := modelFast(pkt, cfg, fastModel{on: true, keys: map[FastKey]bool{tcp4.key(): true}}); mrc != rc || mc != c {
					t.Errorf("model says %d %d, kernel %d %d", mrc, mc, rc, c)
				}
			}
		})
	}
}

func TestFastKeyOf(t *testing.T) {
	k := FastKeyOf(0x0102030405060708, netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("::ffff:10.4.5.6"), 6, 443, 0x1234)
	want := FastKey{Endpoint: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Family: 4, Proto: 6,
		Src: [16]byte{10, 1, 2, 3}, Dst: [16]byte{10, 4, 5, 6}, SrcPort: [2]byte{0x01, 0xbb}, DstPort: [2]byte{0x12, 0x34}}
	if k != want {
		t.Errorf("FastKeyOf = %+v, want %+v", k, want)
	}
	k6 := FastKeyOf(1, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), 17, 1, 2)
	if k6.Family != 6 || k6.Src != netip.MustParseAddr("2001:db8::1").As16() || k6.Proto != 17 {
		t.Errorf("FastKeyOf IPv6 = %+v", k6)
	}
	if n := binary.Size(FastKey{}); n != fastKeySize {
		t.Errorf("FastKey is %d bytes, the program's key %d", n, fastKeySize)
	}
	if n := binary.Size(FastCounters{}); n != 24 {
		t.Errorf("FastCounters is %d bytes, want 24", n)
	}
}

// TestFastPathAPI: the helpers refuse a collection built without the fast
// path, and SetFastPath turns it off again.
func TestFastPathAPI(t *testing.T) {
	plain := load(t, testCfg)
	if err := SetFastPath(plain.coll, true); err == nil {
		t.Error("SetFastPath on a program without the fast path: no error")
	}
	if _, _, err := ReadFast(plain.coll, tcp4.key()); err == nil {
		t.Error("ReadFast on a program without the fast path: no error")
	}
	l := loadFast(t, fastCfg(), tcp4.key())
	if _, ok, err := ReadFast(l.coll, udp4.key()); ok || err != nil {
		t.Errorf("ReadFast of a missing key: present %v, %v", ok, err)
	}
	pkt := genevePacket(t, allowedSrc, nil, awsOptions(), innerPacket(t, tcp4))
	if rc, _ := l.run(t, pkt); rc != actionTX {
		t.Fatalf("on: action %d", rc)
	}
	if err := SetFastPath(l.coll, false); err != nil {
		t.Fatal(err)
	}
	if rc, c := l.run(t, pkt); rc != actionPass || c != CounterNoSocket {
		t.Errorf("off again: %d %d, want redirected", rc, c)
	}
	if err := SetFastPath(l.coll, true); err != nil {
		t.Fatal(err)
	}

	// AddFast adds once; TakeFast returns the counters and removes the key.
	if added, err := AddFast(l.coll, tcp4.key()); added || err != nil {
		t.Errorf("AddFast of a present key: added %v, %v", added, err)
	}
	if added, err := AddFast(l.coll, udp4.key()); !added || err != nil {
		t.Errorf("AddFast of a new key: added %v, %v", added, err)
	}
	if _, err := AddFast(plain.coll, udp4.key()); err == nil {
		t.Error("AddFast on a program without the fast path: no error")
	}
	c, ok, err := TakeFast(l.coll, tcp4.key())
	if !ok || err != nil || c.Packets != 1 || c.Bytes != uint64(len(innerPacket(t, tcp4))) || c.LastSeen == 0 {
		t.Errorf("TakeFast = %+v %v %v, want the one packet answered", c, ok, err)
	}
	if _, ok, err := TakeFast(l.coll, tcp4.key()); ok || err != nil {
		t.Errorf("TakeFast again: present %v, %v", ok, err)
	}
	if rc, c := l.run(t, pkt); rc != actionPass || c != CounterNoSocket {
		t.Errorf("after TakeFast: %d %d, want redirected", rc, c)
	}

	// FastReader sees every entry once, across more than one batch.
	want := map[FastKey]bool{udp4.key(): true}
	for i := range fastBatch + 100 {
		k := FastKeyOf(uint64(i), netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.2"), 17, uint16(i), 53)
		if _, err := AddFast(l.coll, k); err != nil {
			t.Fatal(err)
		}
		want[k] = true
	}
	var r FastReader
	for round := range 2 { // the buffers are reused
		seen := map[FastKey]int{}
		if err := r.ReadAll(l.coll, func(k *FastKey, c *FastCounters) { seen[*k]++ }); err != nil {
			t.Fatal(err)
		}
		if len(seen) != len(want) {
			t.Errorf("round %d: ReadAll saw %d keys, want %d", round, len(seen), len(want))
		}
		for k, n := range seen {
			if !want[k] || n != 1 {
				t.Errorf("round %d: key %+v seen %d times (added: %v)", round, k, n, want[k])
				break
			}
		}
	}
}

// fastModel is what the Go model needs to know of the fast path's maps.
type fastModel struct {
	on   bool
	keys map[FastKey]bool
}

// modelFast is model with the fast path's decision for cfg.FastPath.
func modelFast(p []byte, cfg Config, fm fastModel) (uint32, Counter) {
	rc, c := model(p, cfg)
	if c != CounterNoSocket || !cfg.FastPath || !fm.on {
		return rc, c
	}
	if k, ok := fastKeyOfFrame(p, cfg); ok && fm.keys[k] {
		return actionTX, CounterFastPath
	}
	return rc, c
}

// fastKeyOfFrame is the fast path's parse written plainly: the key of a
// steered GENEVE frame it may answer, or false.
func fastKeyOfFrame(p []byte, cfg Config) (FastKey, bool) {
	var k FastKey
	if cfg.Frags && len(p) > FastFragsMax {
		return k, false
	}
	off := 12
	for binary.BigEndian.Uint16(p[off:]) == etherTypeVLAN || binary.BigEndian.Uint16(p[off:]) == etherTypeQinQ {
		off += vlanTagLen
	}
	if binary.BigEndian.Uint16(p[off:]) == etherTypeIPv4 {
		off += 2 + int(p[off+2]&0xf)*4
	} else {
		off += 2 + ipv6HeaderLen
	}
	// off: the outer UDP header, which model found whole; VXLAN is
	// steered too.
	if binary.BigEndian.Uint16(p[off+2:]) != cfg.GenevePort {
		return k, false
	}
	if off+int(binary.BigEndian.Uint16(p[off+4:])) > len(p) || off+genevePayloadOff+12 > len(p) {
		return k, false
	}
	g := p[off+udpHeaderLen:]
	words := int(g[0])
	if words > 0x3f || binary.BigEndian.Uint16(g[8:]) != geneveClassAWS || g[10] != awsTypeEndpointID || g[11]&0x1f != 2 {
		return k, false
	}
	switch words {
	case FastOptWordsEndpoint:
	case FastOptWordsGWLB:
		if off+genevePayloadOff+4*FastOptWordsGWLB > len(p) || g[8+12+3]&0x1f != 2 || g[8+24+3]&0x1f != 1 {
			return k, false
		}
		copy(k.Cookie[:], g[8+28:8+32])
	default:
		return k, false
	}
	copy(k.Endpoint[:], g[12:20])
	payloadLen := int(binary.BigEndian.Uint16(p[off+4:])) - genevePayloadOff - 4*words
	in := off + genevePayloadOff + 4*words
	var l4Len int
	switch binary.BigEndian.Uint16(g[2:]) {
	case etherTypeIPv4:
		if in+ipv4MinLen > len(p) || p[in] != 0x45 || binary.BigEndian.Uint16(p[in+6:])&ipv4FragMask != 0 {
			return k, false
		}
		total := int(binary.BigEndian.Uint16(p[in+2:]))
		if total > payloadLen {
			return k, false
		}
		l4Len = total - ipv4MinLen
		k.Family, k.Proto = 4, p[in+9]
		copy(k.Src[:], p[in+12:in+16])
		copy(k.Dst[:], p[in+16:in+20])
		in += ipv4MinLen
	case etherTypeIPv6:
		if in+ipv6HeaderLen > len(p) || p[in]>>4 != 6 {
			return k, false
		}
		l4Len = int(binary.BigEndian.Uint16(p[in+4:]))
		if ipv6HeaderLen+l4Len > payloadLen {
			return k, false
		}
		k.Family, k.Proto = 6, p[in+6]
		copy(k.Src[:], p[in+8:in+24])
		copy(k.Dst[:], p[in+24:in+40])
		in += ipv6HeaderLen
	default:
		return k, false
	}
	switch k.Proto {
	case protoTCP:
		if l4Len < tcpMinLen || in+tcpMinLen > len(p) || p[in+tcpFlagsOff]&tcpFinSynRst != 0 {
			return k, false
		}
		if off := int(p[in+12]>>4) * 4; off < tcpMinLen || off > l4Len {
			return k, false
		}
	case protoUDP:
		if l4Len < udpHeaderLen || in+udpHeaderLen > len(p) {
			return k, false
		}
		if n := int(binary.BigEndian.Uint16(p[in+4:])); n < udpHeaderLen || n > l4Len {
			return k, false
		}
	default:
		return k, false
	}
	copy(k.SrcPort[:], p[in:in+2])
	copy(k.DstPort[:], p[in+2:in+4])
	return k, true
}
