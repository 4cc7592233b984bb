package packet

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// The cross-check builds random packets with gopacket, decodes them both with Decode
// and with gopacket's own decoder, and compares what the two make of them.

// view is what both decoders are compared on.
type view struct {
	Family             uint8
	Proto              uint8
	Src, Dst           netip.Addr
	SrcPort, DstPort   uint16
	TCPFlags           uint8
	ICMPType, ICMPCode uint8
	Length             int
	Fragment           bool
	Quote              Quote
}

func viewOf(p *Packet) view {
	return view{p.Family, p.Proto, p.Src, p.Dst, p.SrcPort, p.DstPort, p.TCPFlags, p.ICMPType, p.ICMPCode,
		p.Length, p.Fragment, p.Quote}
}

func addr(tb testing.TB, b net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		tb.Fatalf("gopacket address %v", b)
	}
	return a
}

func tcpFlags(t *layers.TCP) uint8 {
	var f uint8
	for _, x := range []struct {
		set bool
		bit uint8
	}{{t.FIN, TCPFin}, {t.SYN, TCPSyn}, {t.RST, TCPRst}, {t.PSH, TCPPsh}, {t.ACK, TCPAck},
		{t.URG, TCPUrg}, {t.ECE, TCPEce}, {t.CWR, TCPCwr}} {
		if x.set {
			f |= x.bit
		}
	}
	return f
}

// gopacketView decodes data, an IP packet starting with layer first, with gopacket.
// gopacket leaves the packet an ICMP error quotes in the ICMP payload: it is decoded
// again, by quoteView.
func gopacketView(tb testing.TB, data []byte, first gopacket.LayerType) view {
	tb.Helper()
	pkt := gopacket.NewPacket(data, first, gopacket.Default)
	var v view
	switch nl := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		v.Family, v.Proto = 4, uint8(nl.Protocol)
		v.Src, v.Dst = addr(tb, nl.SrcIP), addr(tb, nl.DstIP)
		v.Length = int(nl.Length)
		v.Fragment = nl.FragOffset != 0
	case *layers.IPv6:
		v.Family, v.Proto = 6, uint8(nl.NextHeader)
		v.Src, v.Dst = addr(tb, nl.SrcIP), addr(tb, nl.DstIP)
		v.Length = 40 + int(nl.Length)
	default:
		tb.Fatalf("gopacket found no IP layer: %v", pkt)
	}
	// Follow IPv6 extension headers to the transport protocol. gopacket stops at a
	// fragment header, first fragment or not: decode a first fragment's payload,
	// which may start with more extension headers.
	for {
		walkExt(pkt, &v)
		f := pkt.Layer(gopacket.LayerTypeFragment)
		if v.Fragment || f == nil {
			break
		}
		pkt = gopacket.NewPacket(f.LayerContents(), layers.IPProtocol(v.Proto).LayerType(), gopacket.Default)
	}
	if v.Fragment {
		return v
	}
	if l, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		v.SrcPort, v.DstPort, v.TCPFlags = uint16(l.SrcPort), uint16(l.DstPort), tcpFlags(l)
	}
	if l, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		v.SrcPort, v.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
	}
	if l, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		v.ICMPType, v.ICMPCode = l.TypeCode.Type(), l.TypeCode.Code()
		switch v.ICMPType {
		case 0, 8:
			v.SrcPort, v.DstPort = l.Id, l.Id
		case 3, 11, 12:
			v.Quote = quoteView(tb, l.Payload, layers.LayerTypeIPv4)
		}
	}
	if l, ok := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
		v.ICMPType, v.ICMPCode = l.TypeCode.Type(), l.TypeCode.Code()
		if e, ok := pkt.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok {
			v.SrcPort, v.DstPort = e.Identifier, e.Identifier
		}
		if v.ICMPType >= 1 && v.ICMPType <= 4 {
			// gopacket's ICMPv6 payload starts with the 4 type-specific bytes.
			v.Quote = quoteView(tb, l.Payload[4:], layers.LayerTypeIPv6)
		}
	}
	return v
}

func walkExt(pkt gopacket.Packet, v *view) {
	for _, l := range pkt.Layers() {
		switch l := l.(type) {
		case *layers.IPv6HopByHop:
			v.Proto = uint8(l.NextHeader)
		case *layers.IPv6Destination:
			v.Proto = uint8(l.NextHeader)
		case *layers.IPv6Routing:
			v.Proto = uint8(l.NextHeader)
		case *layers.IPv6Fragment:
			v.Proto = uint8(l.NextHeader)
			v.Fragment = l.FragmentOffset != 0
		}
	}
}

func quoteView(tb testing.TB, data []byte, first gopacket.LayerType) Quote {
	q := gopacketView(tb, data, first)
	return Quote{Valid: true, Proto: q.Proto, Src: q.Src, Dst: q.Dst, SrcPort: q.SrcPort, DstPort: q.DstPort}
}

// gen builds random packets.
type gen struct {
	tb testing.TB
	r  *rand.Rand
}

func (g gen) addr(family int) net.IP {
	b := make(net.IP, 4)
	if family == 6 {
		b = make(net.IP, 16)
	}
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return b
}

func (g gen) port() uint16 { return uint16(g.r.IntN(65536)) }

func (g gen) payload() gopacket.Payload {
	p := make(gopacket.Payload, g.r.IntN(64))
	for i := range p {
		p[i] = byte(g.r.IntN(256))
	}
	return p
}

// ipLayers returns a random IP header, with options or extension headers, carrying
// proto, and whether it is a non-first fragment.
func (g gen) ipLayers(family int, proto layers.IPProtocol) (ls []gopacket.SerializableLayer, later bool) {
	r := g.r
	if family == 4 {
		l := &layers.IPv4{Version: 4, TOS: uint8(r.IntN(256)), TTL: uint8(r.IntN(256)), Id: uint16(r.IntN(65536)),
			Protocol: proto, SrcIP: g.addr(4), DstIP: g.addr(4)}
		if r.IntN(3) == 0 {
			l.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
			for range r.IntN(8) {
				l.Options = append(l.Options, layers.IPv4Option{OptionType: 1})
			}
		}
		switch r.IntN(8) {
		case 0: // first fragment
			l.Flags = layers.IPv4MoreFragments
		case 1: // later fragment
			l.Flags = layers.IPv4MoreFragments
			l.FragOffset = uint16(1 + r.IntN(8000))
			later = true
		case 2:
			l.Flags = layers.IPv4DontFragment
		}
		return []gopacket.SerializableLayer{l}, later
	}
	l := &layers.IPv6{Version: 6, TrafficClass: uint8(r.IntN(256)), FlowLabel: uint32(r.IntN(1 << 20)),
		HopLimit: uint8(r.IntN(256)), SrcIP: g.addr(6), DstIP: g.addr(6)}
	ls = append(ls, l)
	// Extension headers, in the order RFC 8200 recommends, each maybe.
	var exts []gopacket.SerializableLayer
	var setNext []func(layers.IPProtocol)
	if r.IntN(3) == 0 {
		l.HopByHop = hbh(0)
		h := l.HopByHop
		setNext = append(setNext, func(p layers.IPProtocol) { h.NextHeader = p })
		l.NextHeader = layers.IPProtocolIPv6HopByHop
	}
	next := func(p layers.IPProtocol) {
		if len(setNext) == 0 {
			l.NextHeader = p
		} else {
			setNext[len(setNext)-1](p)
		}
	}
	if r.IntN(3) == 0 {
		d := dstOpts(0, 8*(1+r.IntN(3)))
		next(layers.IPProtocolIPv6Destination)
		exts = append(exts, d)
		setNext = append(setNext, func(p layers.IPProtocol) { d.NextHeader = p })
	}
	if r.IntN(4) == 0 {
		f := frag6(0, 0, true)
		if r.IntN(2) == 0 {
			f.FragmentOffset = uint16(1 + r.IntN(8000))
			later = true
		}
		next(layers.IPProtocolIPv6Fragment)
		exts = append(exts, f)
		setNext = append(setNext, func(p layers.IPProtocol) { f.NextHeader = p })
	}
	if !later && r.IntN(4) == 0 {
		d := dstOpts(0, 8*(1+r.IntN(3)))
		next(layers.IPProtocolIPv6Destination)
		exts = append(exts, d)
		setNext = append(setNext, func(p layers.IPProtocol) { d.NextHeader = p })
	}
	next(proto)
	return append(ls, exts...), later
}

// packet returns a random TCP, UDP or ICMP packet. depth > 0 allows an ICMP error,
// which quotes a packet of depth-1.
func (g gen) packet(family, depth int) []byte {
	r := g.r
	icmpProto := layers.IPProtocolICMPv4
	if family == 6 {
		icmpProto = layers.IPProtocolICMPv6
	}
	var proto layers.IPProtocol
	switch r.IntN(4) {
	case 0:
		proto = layers.IPProtocolUDP
	case 1:
		proto = icmpProto
	default:
		proto = layers.IPProtocolTCP
	}
	ls, later := g.ipLayers(family, proto)
	if later {
		return serialize(g.tb, append(ls, g.payload())...)
	}
	switch proto {
	case layers.IPProtocolTCP:
		t := tcp(g.port(), g.port(), uint8(r.IntN(256)))
		t.Seq, t.Ack, t.Window = r.Uint32(), r.Uint32(), uint16(r.IntN(65536))
		ls = append(ls, t)
	case layers.IPProtocolUDP:
		ls = append(ls, udp(g.port(), g.port()))
	case layers.IPProtocolICMPv4:
		switch k := r.IntN(4); {
		case k == 0 && depth > 0:
			typ := []uint8{3, 11, 12}[r.IntN(3)]
			quote := g.packet(4, depth-1)
			return serialize(g.tb, append(ls, icmp4(typ, uint8(r.IntN(16)), 0, g.port()), gopacket.Payload(quote))...)
		case k == 1:
			ls = append(ls, icmp4(13, 0, g.port(), g.port()))
		default:
			ls = append(ls, icmp4([]uint8{0, 8}[r.IntN(2)], 0, g.port(), g.port()))
		}
	case layers.IPProtocolICMPv6:
		switch k := r.IntN(4); {
		case k == 0 && depth > 0:
			typ := uint8(1 + r.IntN(4))
			quote := g.packet(6, depth-1)
			return serialize(g.tb, append(ls, icmp6(typ, uint8(r.IntN(8))), gopacket.Payload{0, 0, 5, 0}, gopacket.Payload(quote))...)
		case k == 1:
			ls = append(ls, icmp6(135, 0), gopacket.Payload(make([]byte, 20)))
		default:
			ls = append(ls, icmp6([]uint8{128, 129}[r.IntN(2)], 0), &layers.ICMPv6Echo{Identifier: g.port(), SeqNumber: g.port()})
		}
	}
	return serialize(g.tb, append(ls, g.payload())...)
}

func TestCrossCheckGopacket(t *testing.T) {
	g := gen{t, rand.New(rand.NewPCG(1, 2))}
	counts := map[string]int{}
	for i := range 600 {
		family := 4 + 2*(i%2)
		b := g.packet(family, 1)
		first := layers.LayerTypeIPv4
		if family == 6 {
			first = layers.LayerTypeIPv6
		}
		want := gopacketView(t, b, first)
		var p Packet
		if err := p.Decode(b); err != nil {
			t.Fatalf("packet %d: Decode: %v\n% x", i, err, b)
		}
		if got := viewOf(&p); got != want {
			t.Fatalf("packet %d:\n     Decode %+v\n   gopacket %+v\n% x", i, got, want, b)
		}
		switch {
		case p.Fragment:
			counts["fragment"]++
		case p.Quote.Valid:
			counts["icmp error"]++
		default:
			counts[layers.IPProtocol(p.Proto).String()]++
		}
		if p.Family == 6 && IPv6(b).NextHeader() != p.Proto {
			counts["v6 ext headers"]++
		}
	}
	t.Logf("kinds: %v", counts)
	for _, k := range []string{"fragment", "icmp error", "TCP", "UDP", "ICMPv4", "ICMPv6", "v6 ext headers"} {
		if counts[k] < 10 {
			t.Errorf("only %d %s packets", counts[k], k)
		}
	}
}
