package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Inner packets use their own addresses, so that a test cannot mistake the outer
// header for the inner one.
var (
	innerSrc4 = netip.MustParseAddr("172.16.0.1")
	innerDst4 = netip.MustParseAddr("172.16.9.9")
	innerSrc6 = netip.MustParseAddr("fd00::a")
	innerDst6 = netip.MustParseAddr("fd00::b")
)

func innerV4(proto layers.IPProtocol) *layers.IPv4 {
	l := v4(proto)
	l.SrcIP, l.DstIP = ip(innerSrc4), ip(innerDst4)
	return l
}

func innerV6(next layers.IPProtocol) *layers.IPv6 {
	l := v6(next)
	l.SrcIP, l.DstIP = ip(innerSrc6), ip(innerDst6)
	return l
}

// The inner packets every tunnel case carries: TCP over IPv4 and UDP over IPv6.
func inner4Layers() []gopacket.SerializableLayer {
	return []gopacket.SerializableLayer{innerV4(layers.IPProtocolTCP), tcp(40000, 443, TCPSyn), payload(12)}
}

func inner6Layers() []gopacket.SerializableLayer {
	return []gopacket.SerializableLayer{innerV6(layers.IPProtocolUDP), udp(5353, 53), payload(20)}
}

// fiveTuple is what a test checks of the inner packet.
type fiveTuple struct {
	family           uint8
	proto            uint8
	src, dst         netip.Addr
	srcPort, dstPort uint16
}

var (
	want4 = fiveTuple{4, ProtoTCP, innerSrc4, innerDst4, 40000, 443}
	want6 = fiveTuple{6, ProtoUDP, innerSrc6, innerDst6, 5353, 53}
)

func tupleOf(p *Packet) fiveTuple {
	return fiveTuple{p.Family, p.Proto, p.Src, p.Dst, p.SrcPort, p.DstPort}
}

func layersOf(ls ...any) []gopacket.SerializableLayer {
	var out []gopacket.SerializableLayer
	for _, l := range ls {
		switch l := l.(type) {
		case gopacket.SerializableLayer:
			out = append(out, l)
		case []gopacket.SerializableLayer:
			out = append(out, l...)
		default:
			panic("layersOf: not a layer")
		}
	}
	return out
}

func gre(proto layers.EthernetType) *layers.GRE { return &layers.GRE{Protocol: proto} }

// pptp returns a version 1 GRE header for a PPP frame of n bytes.
func pptp(n int, seq, ack bool) *layers.GRE {
	return &layers.GRE{
		Version: 1, KeyPresent: true, SeqPresent: seq, AckPresent: ack, Protocol: layers.EthernetTypePPP,
		Key: uint32(n)<<16 | 0x0777, Seq: 9, Ack: 8,
	}
}

// pppLen returns the length of the PPP frame the layers make.
func pppLen(tb testing.TB, ls ...gopacket.SerializableLayer) int { return len(serialize(tb, ls...)) }

type tunnelCase struct {
	name string
	b    []byte // the outer IP packet
	kind TunnelKind
	want fiveTuple
}

func tunnelCases(tb testing.TB) []tunnelCase {
	ppp4 := &layers.PPP{PPPType: layers.PPPTypeIPv4, HasPPTPHeader: true}
	ppp6c := &layers.PPP{PPPType: 0x100 | layers.PPPTypeIPv6} // compressed protocol, no address/control
	ppp4c := &layers.PPP{PPPType: 0x100 | layers.PPPTypeIPv4, HasPPTPHeader: true}
	n4 := pppLen(tb, layersOf(ppp4, inner4Layers())...)
	n6c := pppLen(tb, layersOf(ppp6c, inner6Layers())...)
	eth := func(typ layers.EthernetType) *layers.Ethernet {
		return &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: typ}
	}
	dot1q := func(typ layers.EthernetType) *layers.Dot1Q { return &layers.Dot1Q{VLANIdentifier: 100, Type: typ} }
	keyed := gre(layers.EthernetTypeIPv4)
	keyed.KeyPresent, keyed.Key = true, 0xdeadbeef
	seq := gre(layers.EthernetTypeIPv6)
	seq.SeqPresent, seq.Seq = true, 77
	all := gre(layers.EthernetTypeIPv4)
	all.ChecksumPresent, all.KeyPresent, all.SeqPresent, all.Key, all.Seq = true, true, true, 1, 2
	qinq := eth(layers.EthernetTypeQinQ)

	return []tunnelCase{
		{"4in4", serialize(tb, layersOf(v4(layers.IPProtocolIPv4), inner4Layers())...), TunnelIPIP, want4},
		{"6in4", serialize(tb, layersOf(v4(layers.IPProtocolIPv6), inner6Layers())...), TunnelIPIP, want6},
		{"4in6", serialize(tb, layersOf(v6(layers.IPProtocolIPv4), inner4Layers())...), TunnelIPIP, want4},
		{"6in6", serialize(tb, layersOf(v6(layers.IPProtocolIPv6), inner6Layers())...), TunnelIPIP, want6},
		{"6in6 behind destination options", serialize(tb, layersOf(v6(layers.IPProtocolIPv6Destination), dstOpts(layers.IPProtocolIPv6, 8), inner6Layers())...), TunnelIPIP, want6},
		{"4in4 padded", append(serialize(tb, layersOf(v4(layers.IPProtocolIPv4), inner4Layers())...), 0, 0, 0), TunnelIPIP, want4},
		{"gre v4 in v4", serialize(tb, layersOf(v4(layers.IPProtocolGRE), gre(layers.EthernetTypeIPv4), inner4Layers())...), TunnelGRE, want4},
		{"gre v6 in v4", serialize(tb, layersOf(v4(layers.IPProtocolGRE), gre(layers.EthernetTypeIPv6), inner6Layers())...), TunnelGRE, want6},
		{"gre v4 in v6", serialize(tb, layersOf(v6(layers.IPProtocolGRE), gre(layers.EthernetTypeIPv4), inner4Layers())...), TunnelGRE, want4},
		{"gre v6 in v6", serialize(tb, layersOf(v6(layers.IPProtocolGRE), gre(layers.EthernetTypeIPv6), inner6Layers())...), TunnelGRE, want6},
		{"gre key", serialize(tb, layersOf(v4(layers.IPProtocolGRE), keyed, inner4Layers())...), TunnelGRE, want4},
		{"gre sequence", serialize(tb, layersOf(v4(layers.IPProtocolGRE), seq, inner6Layers())...), TunnelGRE, want6},
		{"gre checksum key sequence", serialize(tb, layersOf(v6(layers.IPProtocolGRE), all, inner4Layers())...), TunnelGRE, want4},
		{"gre ppp", serialize(tb, layersOf(v4(layers.IPProtocolGRE), gre(layers.EthernetTypePPP), ppp4, inner4Layers())...), TunnelGRE, want4},
		{"gre ppp compressed", serialize(tb, layersOf(v4(layers.IPProtocolGRE), gre(layers.EthernetTypePPP), ppp6c, inner6Layers())...), TunnelGRE, want6},
		{"pptp", serialize(tb, layersOf(v4(layers.IPProtocolGRE), pptp(n4, false, false), ppp4, inner4Layers())...), TunnelPPTP, want4},
		{"pptp seq ack", serialize(tb, layersOf(v4(layers.IPProtocolGRE), pptp(n4, true, true), ppp4, inner4Layers())...), TunnelPPTP, want4},
		{"pptp ack compressed v6", serialize(tb, layersOf(v4(layers.IPProtocolGRE), pptp(n6c, false, true), ppp6c, inner6Layers())...), TunnelPPTP, want6},
		{"pptp address control, compressed v4", serialize(tb, layersOf(v4(layers.IPProtocolGRE), pptp(pppLen(tb, layersOf(ppp4c, inner4Layers())...), true, false), ppp4c, inner4Layers())...), TunnelPPTP, want4},
		{"gre teb v4", serialize(tb, layersOf(v4(layers.IPProtocolGRE), gre(layers.EthernetTypeTransparentEthernetBridging), eth(layers.EthernetTypeIPv4), inner4Layers())...), TunnelGRE, want4},
		{"gre teb vlan v6", serialize(tb, layersOf(v6(layers.IPProtocolGRE), gre(layers.EthernetTypeTransparentEthernetBridging), eth(layers.EthernetTypeDot1Q), dot1q(layers.EthernetTypeIPv6), inner6Layers())...), TunnelGRE, want6},
		{"gre teb qinq v4", serialize(tb, layersOf(v4(layers.IPProtocolGRE), gre(layers.EthernetTypeTransparentEthernetBridging), qinq, dot1q(layers.EthernetTypeDot1Q), dot1q(layers.EthernetTypeIPv4), inner4Layers())...), TunnelGRE, want4},
	}
}

func TestTunnelled(t *testing.T) {
	for _, c := range tunnelCases(t) {
		t.Run(c.name, func(t *testing.T) {
			// Through Decode, and through DecodeEthernet behind a VLAN tag.
			typ := EtherTypeIPv4
			if c.b[0]>>4 == 6 {
				typ = EtherTypeIPv6
			}
			for _, eth := range []bool{false, true} {
				var outer Packet
				var err error
				if eth {
					err = outer.DecodeEthernet(ether(typ, c.b, EtherTypeVLAN))
				} else {
					err = outer.Decode(c.b)
				}
				if err != nil {
					t.Fatalf("outer (ethernet %v): %v", eth, err)
				}
				inner, kind, err := outer.Tunnelled()
				if err != nil || kind != c.kind {
					t.Fatalf("Tunnelled (ethernet %v) = %v, %v; want %v", eth, kind, err, c.kind)
				}
				var p Packet
				if err := p.Decode(inner); err != nil {
					t.Fatalf("inner: %v\n% x", err, inner)
				}
				if got := tupleOf(&p); got != c.want {
					t.Errorf("inner (ethernet %v) %+v, want %+v", eth, got, c.want)
				}
				if p.Payload == nil || len(inner) != p.Length {
					t.Errorf("inner payload %d bytes, inner %d bytes, Length %d", len(p.Payload), len(inner), p.Length)
				}
				if _, k, err := p.Tunnelled(); k != TunnelNone || err != nil {
					t.Errorf("inner TCP/UDP packet: Tunnelled = %v, %v", k, err)
				}
			}
			// No copy: inner is within the decoded buffer.
			var outer Packet
			if err := outer.Decode(c.b); err != nil {
				t.Fatal(err)
			}
			inner, _, _ := outer.Tunnelled()
			if off := cap(c.b) - cap(inner); off < 0 || off+len(inner) > len(c.b) || &c.b[off] != &inner[0] {
				t.Error("inner is not within the outer packet")
			}
		})
	}
}

// Nested tunnels open one layer at a time, as the documented loop does.
func TestTunnelledNested(t *testing.T) {
	// 4in4 inside GRE (with key) inside 6in6.
	keyed := gre(layers.EthernetTypeIPv4)
	keyed.KeyPresent = true
	b := serialize(t, layersOf(v6(layers.IPProtocolIPv6), v6(layers.IPProtocolGRE), keyed, v4(layers.IPProtocolIPv4), inner4Layers())...)
	var p Packet
	if err := p.Decode(b); err != nil {
		t.Fatal(err)
	}
	var kinds []TunnelKind
	for depth := 0; depth < MaxTunnelDepth; depth++ {
		inner, kind, err := p.Tunnelled()
		if err != nil {
			t.Fatalf("depth %d: %v", depth, err)
		}
		if kind == TunnelNone {
			break
		}
		kinds = append(kinds, kind)
		if err := p.Decode(inner); err != nil {
			t.Fatalf("depth %d: %v", depth, err)
		}
	}
	if want := []TunnelKind{TunnelIPIP, TunnelGRE, TunnelIPIP}; !equalKinds(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
	if got := tupleOf(&p); got != want4 {
		t.Errorf("innermost %+v, want %+v", got, want4)
	}
}

func equalKinds(a, b []TunnelKind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// greIn4 wraps raw GRE bytes in IPv4.
func greIn4(tb testing.TB, b ...byte) []byte {
	return serialize(tb, v4(layers.IPProtocolGRE), gopacket.Payload(b))
}

func TestTunnelledErrors(t *testing.T) {
	inner4 := serialize(t, inner4Layers()...)
	inner6 := serialize(t, inner6Layers()...)
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	first := v4(layers.IPProtocolIPv4)
	first.Flags = layers.IPv4MoreFragments
	later := v4(layers.IPProtocolGRE)
	later.FragOffset = 100
	arp := ether(EtherTypeARP, make([]byte, 28))
	cases := []struct {
		name   string
		b      []byte
		kind   TunnelKind
		reason Reason
	}{
		{"ipip first fragment", serialize(t, first, gopacket.Payload(inner4)), TunnelIPIP, ReasonTunnelFragment},
		{"gre later fragment", serialize(t, later, payload(16)), TunnelGRE, ReasonTunnelFragment},
		{"v6 fragment ipip", serialize(t, v6(layers.IPProtocolIPv6Fragment), frag6(layers.IPProtocolIPv4, 0, true), gopacket.Payload(inner4)), TunnelIPIP, ReasonTunnelFragment},
		{"ipip empty", serialize(t, v4(layers.IPProtocolIPv4)), TunnelIPIP, ReasonEmpty},
		{"protocol 4 carrying v6", serialize(t, v4(layers.IPProtocolIPv4), gopacket.Payload(inner6)), TunnelIPIP, ReasonVersion},
		{"protocol 41 carrying v4", serialize(t, v6(layers.IPProtocolIPv6), gopacket.Payload(inner4)), TunnelIPIP, ReasonVersion},
		{"gre empty", greIn4(t), TunnelGRE, ReasonEmpty},
		{"gre 3 bytes", greIn4(t, 0, 0, 8), TunnelGRE, ReasonGREHeader},
		{"gre version 2", greIn4(t, cat([]byte{0, 2, 8, 0}, inner4)...), TunnelGRE, ReasonGREHeader},
		{"gre version 7", greIn4(t, cat([]byte{0, 7, 8, 0}, inner4)...), TunnelGRE, ReasonGREHeader},
		{"gre routing", greIn4(t, cat([]byte{0x40, 0, 8, 0, 0, 0, 0, 0}, inner4)...), TunnelGRE, ReasonGREHeader},
		{"gre key truncated", greIn4(t, 0x20, 0, 8, 0, 1, 2), TunnelGRE, ReasonGREHeader},
		{"gre checksum key seq truncated", greIn4(t, 0xb0, 0, 8, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5), TunnelGRE, ReasonGREHeader},
		{"gre no payload", greIn4(t, 0, 0, 8, 0), TunnelGRE, ReasonEmpty},
		{"gre ipv4 carrying v6", greIn4(t, cat([]byte{0, 0, 8, 0}, inner6)...), TunnelGRE, ReasonVersion},
		{"gre erspan", greIn4(t, cat([]byte{0x10, 0, 0x88, 0xbe, 0, 0, 0, 1}, make([]byte, 8), ether(EtherTypeIPv4, inner4))...), TunnelGRE, ReasonGREProtocol},
		{"gre mpls", greIn4(t, cat([]byte{0, 0, 0x88, 0x47, 0, 0, 0x11, 64}, inner4)...), TunnelGRE, ReasonGREProtocol},
		{"gre teb empty", greIn4(t, 0, 0, 0x65, 0x58), TunnelGRE, ReasonEmpty},
		{"gre teb truncated", greIn4(t, cat([]byte{0, 0, 0x65, 0x58}, make([]byte, 10))...), TunnelGRE, ReasonEthernetHeader},
		{"gre teb vlan truncated", greIn4(t, cat([]byte{0, 0, 0x65, 0x58}, ether(EtherTypeVLAN, []byte{0, 1}))...), TunnelGRE, ReasonEthernetHeader},
		{"gre teb arp", greIn4(t, cat([]byte{0, 0, 0x65, 0x58}, arp)...), TunnelGRE, ReasonNotIP},
		{"gre teb ipv6 ethertype, v4 packet", greIn4(t, cat([]byte{0, 0, 0x65, 0x58}, ether(EtherTypeIPv6, inner4))...), TunnelGRE, ReasonVersion},
		{"gre teb no ip packet", greIn4(t, cat([]byte{0, 0, 0x65, 0x58}, ether(EtherTypeIPv4, nil))...), TunnelGRE, ReasonEmpty},
		{"gre ppp empty", greIn4(t, 0, 0, 0x88, 0x0b), TunnelGRE, ReasonEmpty},
		{"gre ppp lcp", greIn4(t, cat([]byte{0, 0, 0x88, 0x0b, 0xff, 0x03, 0xc0, 0x21}, make([]byte, 8))...), TunnelGRE, ReasonNotIP},
		{"gre ppp address control only", greIn4(t, 0, 0, 0x88, 0x0b, 0xff, 0x03), TunnelGRE, ReasonPPPHeader},
		{"gre ppp half a protocol", greIn4(t, 0, 0, 0x88, 0x0b, 0x00), TunnelGRE, ReasonPPPHeader},
		{"gre ppp ipv4 carrying v6", greIn4(t, cat([]byte{0, 0, 0x88, 0x0b, 0x21}, inner6)...), TunnelGRE, ReasonVersion},
		{"gre ppp ipv6, nothing after", greIn4(t, 0, 0, 0x88, 0x0b, 0x00, 0x57), TunnelGRE, ReasonEmpty},
		{"pptp without key", greIn4(t, cat([]byte{0x00, 0x01, 0x88, 0x0b, 0x21}, inner4)...), TunnelPPTP, ReasonGREHeader},
		{"pptp with checksum", greIn4(t, cat([]byte{0xa0, 0x01, 0x88, 0x0b, 0, 0, 0, 0, 0, 1, 0, 7, 0x21}, inner4)...), TunnelPPTP, ReasonGREHeader},
		{"pptp carrying ipv4", greIn4(t, cat([]byte{0x20, 0x01, 0x08, 0x00, 0, byte(len(inner4)), 0, 7}, inner4)...), TunnelPPTP, ReasonGREHeader},
		{"pptp payload length past data", greIn4(t, cat([]byte{0x20, 0x01, 0x88, 0x0b, 0, byte(len(inner4) + 2), 0, 7, 0x21}, inner4)...), TunnelPPTP, ReasonGREHeader},
		{"pptp ack truncated", greIn4(t, 0x20, 0x81, 0x88, 0x0b, 0, 0, 0, 7, 0, 0), TunnelPPTP, ReasonGREHeader},
		{"pptp ack only", greIn4(t, 0x20, 0x81, 0x88, 0x0b, 0, 0, 0, 7, 0, 0, 0, 9), TunnelPPTP, ReasonEmpty},
		{"pptp payload length cuts the ip packet", greIn4(t, cat([]byte{0x20, 0x01, 0x88, 0x0b, 0, 1, 0, 7, 0x21}, inner4)...), TunnelPPTP, ReasonEmpty},
		{"pptp encrypted (mppe)", greIn4(t, cat([]byte{0x20, 0x01, 0x88, 0x0b, 0, 10, 0, 7, 0x00, 0xfd}, make([]byte, 8))...), TunnelPPTP, ReasonNotIP},
	}
	seen := map[Reason]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			if err := p.Decode(c.b); err != nil {
				t.Fatalf("outer: %v", err)
			}
			inner, kind, err := p.Tunnelled()
			var r Reason
			if !errors.As(err, &r) || r != c.reason || kind != c.kind || inner != nil {
				t.Fatalf("Tunnelled = %d bytes, %v, %v; want %v, %v\n% x", len(inner), kind, err, c.kind, c.reason, c.b)
			}
			seen[r] = true
		})
	}
	for r := ReasonTunnelFragment; r < NumReasons; r++ {
		if !seen[r] {
			t.Errorf("no test input produces %v", r)
		}
	}
}

// Version 0 bits that Linux ignores are ignored: the packet is opened.
func TestTunnelledIgnoredGREBits(t *testing.T) {
	inner4 := serialize(t, inner4Layers()...)
	for _, c := range []struct {
		name string
		hdr  []byte
	}{
		{"strict source route", []byte{0x08, 0, 8, 0}},
		{"recursion 7", []byte{0x07, 0, 8, 0}},
		{"reserved flags", []byte{0, 0x78, 8, 0}},
		{"ack bit in version 0", []byte{0, 0x80, 8, 0}},
		{"all of them, with a key", []byte{0x2f, 0xf8, 8, 0, 1, 2, 3, 4}},
	} {
		var p Packet
		if err := p.Decode(greIn4(t, append(c.hdr, inner4...)...)); err != nil {
			t.Fatalf("%s: outer: %v", c.name, err)
		}
		inner, kind, err := p.Tunnelled()
		if err != nil || kind != TunnelGRE || !bytes.Equal(inner, inner4) {
			t.Errorf("%s: Tunnelled = %d bytes, %v, %v", c.name, len(inner), kind, err)
		}
	}
}

// A packet whose protocol is no tunnel, or that Decode failed on, opens nothing.
func TestTunnelledNone(t *testing.T) {
	gre4 := serialize(t, layersOf(v4(layers.IPProtocolGRE), gre(layers.EthernetTypeIPv4), inner4Layers())...)
	binary.BigEndian.PutUint16(gre4[2:], 200) // total length past the data
	cases := []struct {
		name string
		b    []byte
		kind TunnelKind
		err  error
	}{
		{"tcp", serialize(t, inner4Layers()...), TunnelNone, nil},
		{"udp6", serialize(t, inner6Layers()...), TunnelNone, nil},
		{"esp", serialize(t, v6(layers.IPProtocolESP), payload(20)), TunnelNone, nil},
		{"decode failed", gre4, TunnelGRE, ReasonEmpty},
		{"not decoded", nil, TunnelNone, nil},
	}
	for _, c := range cases {
		var p Packet
		if c.b != nil {
			_ = p.Decode(c.b)
		}
		if inner, kind, err := p.Tunnelled(); inner != nil || kind != c.kind || err != c.err {
			t.Errorf("%s: Tunnelled = %d bytes, %v, %v; want %v, %v", c.name, len(inner), kind, err, c.kind, c.err)
		}
	}
}

func TestPPPPayload(t *testing.T) {
	cases := []struct {
		name  string
		b     []byte
		proto uint16
		rest  int
		ok    bool
	}{
		{"address control, two bytes", []byte{0xff, 0x03, 0x00, 0x21, 0x45}, PPPProtoIPv4, 1, true},
		{"address control, compressed", []byte{0xff, 0x03, 0x57, 0x60}, PPPProtoIPv6, 1, true},
		{"two bytes", []byte{0x00, 0x57}, PPPProtoIPv6, 0, true},
		{"compressed", []byte{0x21}, PPPProtoIPv4, 0, true},
		{"lcp", []byte{0xc0, 0x21, 1}, 0xc021, 1, true},
		{"empty", nil, 0, 0, false},
		{"address control only", []byte{0xff, 0x03}, 0, 0, false},
		{"half a protocol", []byte{0xff, 0x03, 0x00}, 0, 0, false},
		{"0xff alone is a compressed protocol", []byte{0xff}, 0xff, 0, true},
	}
	for _, c := range cases {
		proto, rest, ok := PPPPayload(c.b)
		if proto != c.proto || len(rest) != c.rest || ok != c.ok {
			t.Errorf("%s: PPPPayload = %#04x, %d bytes, %v; want %#04x, %d, %v", c.name, proto, len(rest), ok, c.proto, c.rest, c.ok)
		}
	}
}

func TestGREAccessors(t *testing.T) {
	all := &layers.GRE{ChecksumPresent: true, KeyPresent: true, SeqPresent: true, Protocol: layers.EthernetTypeIPv6, Key: 0x01020304, Seq: 0x0a0b0c0d}
	g := GRE(serialize(t, all, payload(3)))
	if g.Version() != 0 || g.Protocol() != EtherTypeIPv6 || !g.ChecksumPresent() || !g.KeyPresent() || !g.SequencePresent() || g.AckPresent() {
		t.Errorf("flags wrong: % x", g)
	}
	if g.HeaderLength() != 16 || g.Key() != 0x01020304 || g.Sequence() != 0x0a0b0c0d || len(g.Payload()) != 3 || g.Checksum() == 0 {
		t.Errorf("fields wrong: length %d key %#x seq %#x checksum %#x % x", g.HeaderLength(), g.Key(), g.Sequence(), g.Checksum(), g)
	}
	v1 := GRE(serialize(t, pptp(5, true, true), payload(5)))
	if v1.Version() != 1 || !v1.AckPresent() || v1.HeaderLength() != 16 || v1.PayloadLength() != 5 || v1.CallID() != 0x0777 ||
		v1.Sequence() != 9 || v1.Ack() != 8 || len(v1.Payload()) != 5 {
		t.Errorf("version 1 fields wrong: % x", v1)
	}
	ackOnly := GRE([]byte{0x20, 0x81, 0x88, 0x0b, 0, 0, 0, 7, 0, 0, 0, 3})
	if ackOnly.HeaderLength() != 12 || ackOnly.Ack() != 3 || ackOnly.SequencePresent() {
		t.Errorf("ack without sequence wrong: length %d ack %d", ackOnly.HeaderLength(), ackOnly.Ack())
	}
	for k, want := range map[TunnelKind]string{TunnelNone: "none", TunnelIPIP: "ipip", TunnelGRE: "gre", TunnelPPTP: "pptp", 9: "unknown"} {
		if got := k.String(); got != want {
			t.Errorf("TunnelKind(%d) = %q, want %q", k, got, want)
		}
	}
}

func TestTunnelledAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, c := range tunnelCases(t) {
		var outer, p Packet
		allocs := testing.AllocsPerRun(1000, func() {
			if outer.Decode(c.b) != nil {
				panic("outer")
			}
			inner, _, err := outer.Tunnelled()
			if err != nil || p.Decode(inner) != nil {
				panic("inner")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Decode, Tunnelled, Decode; want 0", c.name, allocs)
		}
	}
}

func BenchmarkTunnelled(b *testing.B) {
	cases := tunnelCases(b)
	for _, name := range []string{"4in4", "gre v4 in v4", "gre checksum key sequence", "pptp seq ack", "gre teb vlan v6"} {
		var c tunnelCase
		for _, c = range cases {
			if c.name == name {
				break
			}
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.b)))
			var outer, p Packet
			for b.Loop() {
				if err := outer.Decode(c.b); err != nil {
					b.Fatal(err)
				}
				inner, _, err := outer.Tunnelled()
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Decode(inner); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
