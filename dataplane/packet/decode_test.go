package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var router4 = netip.MustParseAddr("198.51.100.1")
var router6 = netip.MustParseAddr("2001:db8:aaaa::1")

// tcpBytes6 returns a serialized TCP header (with 4 payload bytes) as carried over IPv6.
func tcpBytes6(tb testing.TB, sport, dport uint16, flags uint8) []byte {
	return serialize(tb, v6(layers.IPProtocolTCP), tcp(sport, dport, flags), payload(4))[IPv6MinimumSize:]
}

// ah returns an Authentication Header of (words+2)*4 bytes followed by next.
func ah(next uint8, words uint8) []byte {
	b := make([]byte, (int(words)+2)*4)
	b[0] = next
	b[1] = words
	binary.BigEndian.PutUint32(b[4:], 0x1000) // SPI
	return b
}

type decodeCase struct {
	name string
	b    []byte
	want Packet
}

func decodeCases(tb testing.TB) []decodeCase {
	tb.Helper()
	var cs []decodeCase
	add := func(name string, b []byte, want Packet) {
		cs = append(cs, decodeCase{name, b, want})
	}
	tcp4 := func(sp, dp uint16, fl uint8, n int) Packet {
		return Packet{Family: 4, Proto: ProtoTCP, Src: src4, Dst: dst4, SrcPort: sp, DstPort: dp, TCPFlags: fl, Length: n}
	}

	// IPv4 TCP: every flag combination of a connection's life, with IPv4 options.
	v4opts := func(proto layers.IPProtocol) *layers.IPv4 {
		l := v4(proto)
		l.Options = []layers.IPv4Option{
			{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}, // router alert
			{OptionType: 1}, // NOP
			{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}, // record route
		}
		return l
	}
	b := serialize(tb, v4opts(layers.IPProtocolTCP), tcp(40000, 443, TCPSyn), payload(0))
	if IPv4(b).HeaderLength() != 32 {
		tb.Fatalf("IPv4 options: IHL*4 = %d, want 32", IPv4(b).HeaderLength())
	}
	add("v4 tcp syn with ip options", b, tcp4(40000, 443, TCPSyn, 52))
	for _, f := range []struct {
		name  string
		flags uint8
	}{
		{"syn-ack", TCPSyn | TCPAck},
		{"ack", TCPAck},
		{"psh-ack", TCPPsh | TCPAck},
		{"fin-ack", TCPFin | TCPAck},
		{"rst", TCPRst},
		{"rst-ack", TCPRst | TCPAck},
		{"syn ece cwr", TCPSyn | TCPEce | TCPCwr},
		{"urg", TCPUrg | TCPAck},
	} {
		add("v4 tcp "+f.name, serialize(tb, v4(layers.IPProtocolTCP), tcp(443, 40000, f.flags), payload(10)),
			tcp4(443, 40000, f.flags, 50))
	}
	// TCP with options: data offset > 5.
	withOpts := tcp(1, 2, TCPSyn)
	withOpts.Options = []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}
	add("v4 tcp with tcp options", serialize(tb, v4(layers.IPProtocolTCP), withOpts), tcp4(1, 2, TCPSyn, 52))
	// Link padding after the total length is ignored.
	b = serialize(tb, v4(layers.IPProtocolTCP), tcp(5, 6, TCPAck))
	add("v4 tcp with ethernet padding", append(b, make([]byte, 6)...), tcp4(5, 6, TCPAck, 40))

	add("v4 udp", serialize(tb, v4(layers.IPProtocolUDP), udp(53000, 53), payload(30)),
		Packet{Family: 4, Proto: ProtoUDP, Src: src4, Dst: dst4, SrcPort: 53000, DstPort: 53, Length: 58})
	add("v4 udp empty payload", serialize(tb, v4(layers.IPProtocolUDP), udp(1, 2)),
		Packet{Family: 4, Proto: ProtoUDP, Src: src4, Dst: dst4, SrcPort: 1, DstPort: 2, Length: 28})

	// Fragments.
	first := v4(layers.IPProtocolUDP)
	first.Flags = layers.IPv4MoreFragments
	add("v4 first fragment", serialize(tb, first, udp(4500, 4500), payload(100)),
		Packet{Family: 4, Proto: ProtoUDP, Src: src4, Dst: dst4, SrcPort: 4500, DstPort: 4500, Length: 128,
			FragmentID: 0x1234, FirstFragment: true})
	later := v4(layers.IPProtocolUDP)
	later.Flags = layers.IPv4MoreFragments
	later.FragOffset = 185 // 1480 bytes
	add("v4 middle fragment", serialize(tb, later, payload(64)),
		Packet{Family: 4, Proto: ProtoUDP, Src: src4, Dst: dst4, Length: 84, Fragment: true, FragmentID: 0x1234})
	last := v4(layers.IPProtocolTCP)
	last.FragOffset = 1
	// A last fragment whose payload happens to look like a TCP header: no ports.
	add("v4 last fragment", serialize(tb, last, tcp(7, 8, TCPSyn)),
		Packet{Family: 4, Proto: ProtoTCP, Src: src4, Dst: dst4, Length: 40, Fragment: true, FragmentID: 0x1234})

	// ICMP.
	add("v4 icmp echo request", serialize(tb, v4(layers.IPProtocolICMPv4), icmp4(8, 0, 0x4242, 1), payload(56)),
		Packet{Family: 4, Proto: ProtoICMP, Src: src4, Dst: dst4, SrcPort: 0x4242, DstPort: 0x4242, ICMPType: 8, Length: 84})
	add("v4 icmp echo reply", serialize(tb, v4(layers.IPProtocolICMPv4), icmp4(0, 0, 7, 9)),
		Packet{Family: 4, Proto: ProtoICMP, Src: src4, Dst: dst4, SrcPort: 7, DstPort: 7, Length: 28})
	add("v4 icmp timestamp (no ports)", serialize(tb, v4(layers.IPProtocolICMPv4), icmp4(13, 0, 7, 9), payload(12)),
		Packet{Family: 4, Proto: ProtoICMP, Src: src4, Dst: dst4, ICMPType: 13, Length: 40})

	// ICMP errors. The error travels from a router back to the sender, and quotes
	// the sender's packet in its original direction.
	errFrom := func(l *layers.IPv4) *layers.IPv4 {
		l.SrcIP, l.DstIP = ip(router4), ip(src4)
		return l
	}
	inner := serialize(tb, v4(layers.IPProtocolTCP), tcp(40000, 443, TCPSyn), payload(20))
	quoteTCP := Quote{Valid: true, Proto: ProtoTCP, Src: src4, Dst: dst4, SrcPort: 40000, DstPort: 443}
	add("v4 icmp frag needed quoting tcp (header + 8)",
		serialize(tb, errFrom(v4(layers.IPProtocolICMPv4)), icmp4(3, 4, 0, 1400), gopacket.Payload(inner[:28])),
		Packet{Family: 4, Proto: ProtoICMP, Src: router4, Dst: src4, ICMPType: 3, ICMPCode: 4, Length: 56, Quote: quoteTCP})
	add("v4 icmp time exceeded quoting whole tcp",
		serialize(tb, errFrom(v4(layers.IPProtocolICMPv4)), icmp4(11, 0, 0, 0), gopacket.Payload(inner)),
		Packet{Family: 4, Proto: ProtoICMP, Src: router4, Dst: src4, ICMPType: 11, Length: 28 + len(inner), Quote: quoteTCP})
	innerOpts := serialize(tb, v4opts(layers.IPProtocolUDP), udp(1111, 2222))
	add("v4 icmp param problem quoting udp with ip options",
		serialize(tb, errFrom(v4(layers.IPProtocolICMPv4)), icmp4(12, 0, 0x1400, 0), gopacket.Payload(innerOpts)),
		Packet{Family: 4, Proto: ProtoICMP, Src: router4, Dst: src4, ICMPType: 12, Length: 28 + len(innerOpts),
			Quote: Quote{Valid: true, Proto: ProtoUDP, Src: src4, Dst: dst4, SrcPort: 1111, DstPort: 2222}})
	innerEcho := serialize(tb, v4(layers.IPProtocolICMPv4), icmp4(8, 0, 0x77, 3))
	add("v4 icmp unreachable quoting an echo",
		serialize(tb, errFrom(v4(layers.IPProtocolICMPv4)), icmp4(3, 1, 0, 0), gopacket.Payload(innerEcho)),
		Packet{Family: 4, Proto: ProtoICMP, Src: router4, Dst: src4, ICMPType: 3, ICMPCode: 1, Length: 56,
			Quote: Quote{Valid: true, Proto: ProtoICMP, Src: src4, Dst: dst4, SrcPort: 0x77, DstPort: 0x77}})
	add("v4 icmp error with truncated quote",
		serialize(tb, errFrom(v4(layers.IPProtocolICMPv4)), icmp4(3, 3, 0, 0), gopacket.Payload(inner[:22])),
		Packet{Family: 4, Proto: ProtoICMP, Src: router4, Dst: src4, ICMPType: 3, ICMPCode: 3, Length: 50})
	add("v4 icmp error quoting ip header only",
		serialize(tb, errFrom(v4(layers.IPProtocolICMPv4)), icmp4(3, 3, 0, 0), gopacket.Payload(inner[:20])),
		Packet{Family: 4, Proto: ProtoICMP, Src: router4, Dst: src4, ICMPType: 3, ICMPCode: 3, Length: 48})
	add("v4 icmp error quoting ipv6 (invalid quote)",
		serialize(tb, errFrom(v4(layers.IPProtocolICMPv4)), icmp4(3, 3, 0, 0),
			gopacket.Payload(serialize(tb, v6(layers.IPProtocolUDP), udp(1, 2)))),
		Packet{Family: 4, Proto: ProtoICMP, Src: router4, Dst: src4, ICMPType: 3, ICMPCode: 3, Length: 76})
	add("v4 icmp error without quote",
		serialize(tb, errFrom(v4(layers.IPProtocolICMPv4)), gopacket.Payload{11, 0, 0, 0}),
		Packet{Family: 4, Proto: ProtoICMP, Src: router4, Dst: src4, ICMPType: 11, Length: 24})
	quotedFrag := v4(layers.IPProtocolUDP)
	quotedFrag.FragOffset = 100
	add("v4 icmp error quoting a non-first fragment",
		serialize(tb, errFrom(v4(layers.IPProtocolICMPv4)), icmp4(11, 1, 0, 0),
			gopacket.Payload(serialize(tb, quotedFrag, payload(8)))),
		Packet{Family: 4, Proto: ProtoICMP, Src: router4, Dst: src4, ICMPType: 11, ICMPCode: 1, Length: 56,
			Quote: Quote{Valid: true, Proto: ProtoUDP, Src: src4, Dst: dst4}})
	errHdr := func(typ, code uint8, quote []byte) []byte {
		return serialize(tb, errFrom(v4(layers.IPProtocolICMPv4)), icmp4(typ, code, 0, 0), gopacket.Payload(quote))
	}
	for _, c := range []struct {
		name  string
		quote []byte
	}{
		{"ihl past quote", mutate(inner[:28], func(b []byte) []byte { b[0] = 0x48; return b })},
		{"ihl 4", mutate(inner[:28], func(b []byte) []byte { b[0] = 0x44; return b })},
		{"version 5", mutate(inner[:28], func(b []byte) []byte { b[0] = 0x55; return b })},
		{"3 bytes of an icmp header", innerEcho[:23]},
		{"7 bytes of an echo", innerEcho[:27]},
		{"3 bytes of udp", innerOpts[:35]},
	} {
		add("v4 icmp error, bad quote: "+c.name, errHdr(11, 0, c.quote),
			Packet{Family: 4, Proto: ProtoICMP, Src: router4, Dst: src4, ICMPType: 11, Length: 28 + len(c.quote)})
	}
	innerTS := serialize(tb, v4(layers.IPProtocolICMPv4), icmp4(13, 0, 1, 2))[:24]
	add("v4 icmp error quoting icmp timestamp (no ports)", errHdr(3, 0, innerTS),
		Packet{Family: 4, Proto: ProtoICMP, Src: router4, Dst: src4, ICMPType: 3, Length: 28 + 24,
			Quote: Quote{Valid: true, Proto: ProtoICMP, Src: src4, Dst: dst4}})
	innerGRE := serialize(tb, v4(layers.IPProtocolGRE))
	add("v4 icmp error quoting gre header only", errHdr(3, 2, innerGRE),
		Packet{Family: 4, Proto: ProtoICMP, Src: router4, Dst: src4, ICMPType: 3, ICMPCode: 2, Length: 28 + 20,
			Quote: Quote{Valid: true, Proto: 47, Src: src4, Dst: dst4}})
	add("v4 other protocol (gre)", serialize(tb, v4(layers.IPProtocolGRE), payload(24)),
		Packet{Family: 4, Proto: 47, Src: src4, Dst: dst4, Length: 44})

	// IPv6.
	tcp6 := func(sp, dp uint16, fl uint8, n int) Packet {
		return Packet{Family: 6, Proto: ProtoTCP, Src: src6, Dst: dst6, SrcPort: sp, DstPort: dp, TCPFlags: fl, Length: n}
	}
	udp6 := func(sp, dp uint16, n int) Packet {
		return Packet{Family: 6, Proto: ProtoUDP, Src: src6, Dst: dst6, SrcPort: sp, DstPort: dp, Length: n}
	}
	add("v6 tcp syn", serialize(tb, v6(layers.IPProtocolTCP), tcp(50000, 80, TCPSyn)), tcp6(50000, 80, TCPSyn, 60))
	add("v6 tcp fin-ack with padding", append(serialize(tb, v6(layers.IPProtocolTCP), tcp(80, 50000, TCPFin|TCPAck)), 0, 0, 0),
		tcp6(80, 50000, TCPFin|TCPAck, 60))
	add("v6 udp", serialize(tb, v6(layers.IPProtocolUDP), udp(5353, 5353), payload(12)), udp6(5353, 5353, 60))

	hop := v6(layers.IPProtocolIPv6HopByHop)
	hop.HopByHop = hbh(layers.IPProtocolIPv6Destination)
	add("v6 hop-by-hop, destination options, tcp",
		serialize(tb, hop, dstOpts(layers.IPProtocolTCP, 16), tcp(1234, 22, TCPPsh|TCPAck), payload(3)),
		tcp6(1234, 22, TCPPsh|TCPAck, 40+8+16+20+3))
	add("v6 destination options, udp", serialize(tb, v6(layers.IPProtocolIPv6Destination), dstOpts(layers.IPProtocolUDP, 8), udp(9, 10)),
		udp6(9, 10, 56))
	add("v6 first fragment, udp",
		serialize(tb, v6(layers.IPProtocolIPv6Fragment), frag6(layers.IPProtocolUDP, 0, true), udp(4789, 4789), payload(40)),
		func() Packet {
			p := udp6(4789, 4789, 40+8+8+40)
			p.FragmentID, p.FirstFragment = 0xabcdef, true
			return p
		}())
	add("v6 non-first fragment",
		serialize(tb, v6(layers.IPProtocolIPv6Fragment), frag6(layers.IPProtocolUDP, 181, false), payload(16)),
		Packet{Family: 6, Proto: ProtoUDP, Src: src6, Dst: dst6, Length: 64, Fragment: true, FragmentID: 0xabcdef})
	hop = v6(layers.IPProtocolIPv6HopByHop)
	hop.HopByHop = hbh(layers.IPProtocolIPv6Fragment)
	add("v6 hop-by-hop, non-first fragment",
		serialize(tb, hop, frag6(layers.IPProtocolTCP, 8, true), tcp(1, 2, 0)),
		Packet{Family: 6, Proto: ProtoTCP, Src: src6, Dst: dst6, Length: 40 + 8 + 8 + 20, Fragment: true, FragmentID: 0xabcdef})
	add("v6 routing, tcp",
		serialize(tb, v6(layers.IPProtocolIPv6Routing), gopacket.Payload{6, 2, 0, 1, 0, 0, 0, 0},
			gopacket.Payload(dst6.AsSlice()), gopacket.Payload(tcpBytes6(tb, 3, 4, TCPSyn))),
		tcp6(3, 4, TCPSyn, 40+24+24))
	add("v6 ah, tcp",
		serialize(tb, v6(layers.IPProtocolAH), gopacket.Payload(ah(ProtoTCP, 4)), gopacket.Payload(tcpBytes6(tb, 5, 6, TCPAck))),
		tcp6(5, 6, TCPAck, 40+24+24))
	add("v6 esp", serialize(tb, v6(layers.IPProtocolESP), payload(32)),
		Packet{Family: 6, Proto: ProtoESP, Src: src6, Dst: dst6, Length: 72})
	add("v6 destination options, no next header", serialize(tb, v6(layers.IPProtocolIPv6Destination), dstOpts(layers.IPProtocolNoNextHeader, 8)),
		Packet{Family: 6, Proto: ProtoNoNext, Src: src6, Dst: dst6, Length: 48})
	chain := []gopacket.SerializableLayer{v6(layers.IPProtocolIPv6Destination)}
	for range MaxExtHeaders - 1 {
		chain = append(chain, dstOpts(layers.IPProtocolIPv6Destination, 8))
	}
	chain = append(chain, dstOpts(layers.IPProtocolUDP, 8), udp(1, 2))
	add("v6 eight extension headers", serialize(tb, chain...), udp6(1, 2, 40+8*8+8))

	// ICMPv6.
	echo6 := func(typ uint8, id uint16) []byte {
		return serialize(tb, v6(layers.IPProtocolICMPv6), icmp6(typ, 0), &layers.ICMPv6Echo{Identifier: id, SeqNumber: 1}, payload(8))
	}
	add("v6 icmp echo request", echo6(128, 0xbeef),
		Packet{Family: 6, Proto: ProtoICMPv6, Src: src6, Dst: dst6, SrcPort: 0xbeef, DstPort: 0xbeef, ICMPType: 128, Length: 56})
	add("v6 icmp echo reply", echo6(129, 1),
		Packet{Family: 6, Proto: ProtoICMPv6, Src: src6, Dst: dst6, SrcPort: 1, DstPort: 1, ICMPType: 129, Length: 56})
	add("v6 icmp neighbor solicitation (no ports)",
		serialize(tb, v6(layers.IPProtocolICMPv6), icmp6(135, 0), gopacket.Payload(make([]byte, 20))),
		Packet{Family: 6, Proto: ProtoICMPv6, Src: src6, Dst: dst6, ICMPType: 135, Length: 64})

	err6 := func(next layers.IPProtocol) *layers.IPv6 {
		l := v6(next)
		l.SrcIP, l.DstIP = ip(router6), ip(src6)
		return l
	}
	mtu := gopacket.Payload{0, 0, 0x05, 0xdc}
	innerUDP := serialize(tb, v6(layers.IPProtocolUDP), udp(33434, 4789), payload(1400))
	add("v6 packet too big quoting udp",
		serialize(tb, err6(layers.IPProtocolICMPv6), icmp6(2, 0), mtu, gopacket.Payload(innerUDP[:1232-48])),
		Packet{Family: 6, Proto: ProtoICMPv6, Src: router6, Dst: src6, ICMPType: 2, Length: 1232,
			Quote: Quote{Valid: true, Proto: ProtoUDP, Src: src6, Dst: dst6, SrcPort: 33434, DstPort: 4789}})
	hop = v6(layers.IPProtocolIPv6HopByHop)
	hop.HopByHop = hbh(layers.IPProtocolTCP)
	innerExt := serialize(tb, hop, tcp(60000, 443, TCPSyn))
	add("v6 unreachable quoting tcp behind hop-by-hop",
		serialize(tb, err6(layers.IPProtocolICMPv6), icmp6(1, 4), gopacket.Payload{0, 0, 0, 0}, gopacket.Payload(innerExt)),
		Packet{Family: 6, Proto: ProtoICMPv6, Src: router6, Dst: src6, ICMPType: 1, ICMPCode: 4, Length: 48 + len(innerExt),
			Quote: Quote{Valid: true, Proto: ProtoTCP, Src: src6, Dst: dst6, SrcPort: 60000, DstPort: 443}})
	innerEcho6 := echo6(128, 0x5150)
	add("v6 time exceeded quoting echo",
		serialize(tb, err6(layers.IPProtocolICMPv6), icmp6(3, 0), gopacket.Payload{0, 0, 0, 0}, gopacket.Payload(innerEcho6)),
		Packet{Family: 6, Proto: ProtoICMPv6, Src: router6, Dst: src6, ICMPType: 3, Length: 48 + len(innerEcho6),
			Quote: Quote{Valid: true, Proto: ProtoICMPv6, Src: src6, Dst: dst6, SrcPort: 0x5150, DstPort: 0x5150}})
	add("v6 param problem with quote cut inside an extension header",
		serialize(tb, err6(layers.IPProtocolICMPv6), icmp6(4, 1), gopacket.Payload{0, 0, 0, 40}, gopacket.Payload(innerExt[:44])),
		Packet{Family: 6, Proto: ProtoICMPv6, Src: router6, Dst: src6, ICMPType: 4, ICMPCode: 1, Length: 48 + 44})
	add("v6 packet too big with quote cut inside the ports",
		serialize(tb, err6(layers.IPProtocolICMPv6), icmp6(2, 0), mtu, gopacket.Payload(innerUDP[:42])),
		Packet{Family: 6, Proto: ProtoICMPv6, Src: router6, Dst: src6, ICMPType: 2, Length: 48 + 42})
	add("v6 unreachable with a 39-byte quote",
		serialize(tb, err6(layers.IPProtocolICMPv6), icmp6(1, 0), gopacket.Payload{0, 0, 0, 0}, gopacket.Payload(innerUDP[:39])),
		Packet{Family: 6, Proto: ProtoICMPv6, Src: router6, Dst: src6, ICMPType: 1, Length: 48 + 39})
	add("v6 unreachable quoting ipv4 (invalid quote)",
		serialize(tb, err6(layers.IPProtocolICMPv6), icmp6(1, 0), gopacket.Payload{0, 0, 0, 0}, gopacket.Payload(inner)),
		Packet{Family: 6, Proto: ProtoICMPv6, Src: router6, Dst: src6, ICMPType: 1, Length: 48 + len(inner)})
	laterQ := serialize(tb, v6(layers.IPProtocolIPv6Fragment), frag6(layers.IPProtocolTCP, 100, false), payload(24))
	add("v6 time exceeded quoting a non-first fragment",
		serialize(tb, err6(layers.IPProtocolICMPv6), icmp6(3, 1), gopacket.Payload{0, 0, 0, 0}, gopacket.Payload(laterQ)),
		Packet{Family: 6, Proto: ProtoICMPv6, Src: router6, Dst: src6, ICMPType: 3, ICMPCode: 1, Length: 48 + len(laterQ),
			Quote: Quote{Valid: true, Proto: ProtoTCP, Src: src6, Dst: dst6}})
	add("v6 time exceeded quoting 6 bytes of an echo",
		serialize(tb, err6(layers.IPProtocolICMPv6), icmp6(3, 0), gopacket.Payload{0, 0, 0, 0}, gopacket.Payload(innerEcho6[:46])),
		Packet{Family: 6, Proto: ProtoICMPv6, Src: router6, Dst: src6, ICMPType: 3, Length: 48 + 46})
	return cs
}

func TestDecode(t *testing.T) {
	for _, c := range decodeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			// Start dirty, to check that Decode resets every field.
			p := Packet{Family: 9, Proto: 99, SrcPort: 1, DstPort: 2, TCPFlags: 3, ICMPType: 4, ICMPCode: 5,
				Length: 6, Fragment: true, Src: router4, Dst: router6,
				Quote: Quote{Valid: true, Proto: 7, Src: src4, Dst: dst4, SrcPort: 8, DstPort: 9}}
			if err := p.Decode(c.b); err != nil {
				t.Fatalf("Decode: %v\n% x", err, c.b)
			}
			if !sameHeaders(p, c.want) {
				t.Errorf("Decode:\n got %+v\nwant %+v", p, c.want)
			}
			ttl := c.b[8] // IPv4 TTL
			if c.want.Family == 6 {
				ttl = c.b[7] // IPv6 hop limit
			}
			if p.TTL != ttl || ttl == 0 {
				t.Errorf("TTL %d, want %d", p.TTL, ttl)
			}
			// The same packet behind Ethernet, with and without VLAN tags.
			typ := EtherTypeIPv4
			if c.want.Family == 6 {
				typ = EtherTypeIPv6
			}
			for _, tags := range [][]uint16{nil, {EtherTypeVLAN}, {EtherTypeQinQ, EtherTypeVLAN}} {
				var q Packet
				if err := q.DecodeEthernet(ether(typ, c.b, tags...)); err != nil {
					t.Fatalf("DecodeEthernet (tags %x): %v", tags, err)
				}
				if !sameHeaders(q, c.want) || !bytes.Equal(q.Payload, p.Payload) {
					t.Errorf("DecodeEthernet (tags %x):\n got %+v\nwant %+v", tags, q, c.want)
				}
			}
		})
	}
}

// sameHeaders compares decoded headers but the payload (TestDecodePayload checks
// it), the TTL (TestDecode checks it against the packet's bytes) and the tunnel.
func sameHeaders(a, b Packet) bool {
	a.Payload, b.Payload = nil, nil
	a.TTL, b.TTL = 0, 0
	a.Seq, b.Seq = 0, 0           // TestDecodeSeq
	a.tunnel, b.tunnel = nil, nil // what Tunnelled gives is checked in tunnel_test.go
	return reflect.DeepEqual(a, b)
}

func TestDecodePayload(t *testing.T) {
	data := payload(37)
	opts := tcp(1, 2, TCPAck|TCPPsh)
	opts.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}}}
	echoData := []byte("ping payload")
	for _, c := range []struct {
		name string
		b    []byte
		want []byte
	}{
		{"tcp data", serialize(t, v4(layers.IPProtocolTCP), tcp(1, 2, TCPAck|TCPPsh), data), data},
		{"tcp options then data", serialize(t, v4(layers.IPProtocolTCP), opts, data), data},
		{"tcp no data", serialize(t, v4(layers.IPProtocolTCP), tcp(1, 2, TCPSyn)), nil},
		{"tcp ipv6 after ext header", serialize(t, v6(layers.IPProtocolIPv6HopByHop), hbh(layers.IPProtocolTCP), tcp(1, 2, TCPAck), data), data},
		{"udp", serialize(t, v4(layers.IPProtocolUDP), udp(1, 2), data), data},
		{"udp cut to its length, padding not payload", append(serialize(t, v4(layers.IPProtocolUDP), udp(1, 2), data), 0, 0, 0), data},
		{"udp empty", serialize(t, v6(layers.IPProtocolUDP), udp(1, 2)), nil},
		{"icmp echo data", serialize(t, v4(layers.IPProtocolICMPv4), icmp4(8, 0, 7, 1), gopacket.Payload(echoData)), echoData},
		{"icmp echo empty", serialize(t, v4(layers.IPProtocolICMPv4), icmp4(8, 0, 7, 1)), nil},
		{"first fragment", serialize(t, &layers.IPv4{Version: 4, TTL: 64, Id: 9, Flags: layers.IPv4MoreFragments, Protocol: layers.IPProtocolUDP, SrcIP: ip(src4), DstIP: ip(dst4)}, udp(1, 2), data), data},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			if err := p.Decode(c.b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p.Payload, c.want) || (c.want == nil) != (p.Payload == nil) {
				t.Fatalf("Payload = % x, want % x", p.Payload, c.want)
			}
			// In place: the payload is a window of the decoded buffer, not a copy.
			if p.Payload != nil && &p.Payload[0] != &c.b[len(c.b)-len(p.Payload)-trailer(c.name)] {
				t.Error("Payload is not within the decoded buffer")
			}
		})
	}
}

// trailer is the padding a case adds after the packet.
func trailer(name string) int {
	if strings.Contains(name, "padding") {
		return 3
	}
	return 0
}

// mutate returns a copy of b changed by f.
func mutate(b []byte, f func(b []byte) []byte) []byte {
	return f(append([]byte(nil), b...))
}

func TestDecodeReasons(t *testing.T) {
	tcp4 := serialize(t, v4(layers.IPProtocolTCP), tcp(1, 2, TCPSyn))
	udp4 := serialize(t, v4(layers.IPProtocolUDP), udp(1, 2), payload(4))
	echo4 := serialize(t, v4(layers.IPProtocolICMPv4), icmp4(8, 0, 1, 1))
	tcp6 := serialize(t, v6(layers.IPProtocolTCP), tcp(1, 2, TCPSyn))
	echo6 := serialize(t, v6(layers.IPProtocolICMPv6), icmp6(128, 0), &layers.ICMPv6Echo{Identifier: 1})
	dst6 := serialize(t, v6(layers.IPProtocolIPv6Destination), dstOpts(layers.IPProtocolTCP, 16), tcp(1, 2, TCPSyn))
	frag6 := serialize(t, v6(layers.IPProtocolIPv6Fragment), frag6(layers.IPProtocolTCP, 0, true), tcp(1, 2, TCPSyn))
	ah6 := serialize(t, v6(layers.IPProtocolAH), gopacket.Payload(ah(ProtoTCP, 4)), gopacket.Payload(tcpBytes6(t, 5, 6, TCPAck)))
	chain := []gopacket.SerializableLayer{v6(layers.IPProtocolIPv6Destination)}
	for range MaxExtHeaders {
		chain = append(chain, dstOpts(layers.IPProtocolIPv6Destination, 8))
	}
	chain = append(chain, dstOpts(layers.IPProtocolUDP, 8), udp(1, 2))
	tooMany := serialize(t, chain...)

	// setLen4 sets the IPv4 total length; setLen6 the IPv6 payload length.
	setLen4 := func(n int) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], uint16(n)); return b }
	}
	setLen6 := func(n int) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[4:], uint16(n)); return b }
	}
	// cut4 cuts an IPv4 packet to n bytes and sets its total length to match.
	cut4 := func(n int) func([]byte) []byte {
		return func(b []byte) []byte { return setLen4(n)(b[:n]) }
	}
	cut6 := func(n int) func([]byte) []byte {
		return func(b []byte) []byte { return setLen6(n - 40)(b[:n]) }
	}

	cases := []struct {
		name   string
		b      []byte
		reason Reason
	}{
		{"nil", nil, ReasonEmpty},
		{"empty", []byte{}, ReasonEmpty},
		{"version 5", mutate(tcp4, func(b []byte) []byte { b[0] = 0x55; return b }), ReasonVersion},
		{"version 0", make([]byte, 40), ReasonVersion},
		{"one byte v4", []byte{0x45}, ReasonIPv4Header},
		{"v4 19 bytes", tcp4[:19], ReasonIPv4Header},
		{"v4 ihl 4", mutate(tcp4, func(b []byte) []byte { b[0] = 0x44; return b }), ReasonIPv4Header},
		{"v4 ihl 0", mutate(tcp4, func(b []byte) []byte { b[0] = 0x40; return b }), ReasonIPv4Header},
		{"v4 ihl past data", mutate(tcp4, func(b []byte) []byte { b[0] = 0x4f; return b[:40] }), ReasonIPv4Header},
		{"v4 total length < ihl", mutate(tcp4, setLen4(19)), ReasonIPv4Length},
		{"v4 total length 0", mutate(tcp4, setLen4(0)), ReasonIPv4Length},
		{"v4 total length past data", mutate(tcp4, setLen4(41)), ReasonIPv4Length},
		{"v4 truncated", tcp4[:30], ReasonIPv4Length},
		{"v6 one byte", []byte{0x60}, ReasonIPv6Header},
		{"v6 39 bytes", tcp6[:39], ReasonIPv6Header},
		{"v6 payload length past data", mutate(tcp6, setLen6(21)), ReasonIPv6Length},
		{"v6 truncated", tcp6[:50], ReasonIPv6Length},
		{"v6 ext header truncated", mutate(dst6, cut6(44)), ReasonExtHeader},
		{"v6 ext header length past payload", mutate(dst6, cut6(50)), ReasonExtHeader},
		{"v6 ext header length field too big", mutate(dst6, func(b []byte) []byte { b[41] = 10; return b }), ReasonExtHeader},
		{"v6 hop-by-hop, nothing after", mutate(tcp6, func(b []byte) []byte { b[6] = ProtoHopByHop; return setLen6(0)(b[:40]) }), ReasonExtHeader},
		{"v6 fragment truncated", mutate(frag6, cut6(47)), ReasonExtHeader},
		{"v6 ah truncated", mutate(ah6, cut6(60)), ReasonExtHeader},
		{"v6 ah length past payload", mutate(ah6, func(b []byte) []byte { b[41] = 20; return b }), ReasonExtHeader},
		{"v6 too many ext headers", tooMany, ReasonExtHeader},
		{"v4 tcp truncated", mutate(tcp4, cut4(39)), ReasonTCPHeader},
		{"v4 tcp no header", mutate(tcp4, cut4(20)), ReasonTCPHeader},
		{"v4 tcp data offset 4", mutate(tcp4, func(b []byte) []byte { b[32] = 0x40; return b }), ReasonTCPHeader},
		{"v4 tcp data offset 0", mutate(tcp4, func(b []byte) []byte { b[32] = 0x00; return b }), ReasonTCPHeader},
		{"v4 tcp data offset past data", mutate(tcp4, func(b []byte) []byte { b[32] = 0x60; return b }), ReasonTCPHeader},
		{"v6 tcp truncated", mutate(tcp6, cut6(59)), ReasonTCPHeader},
		{"v6 tcp behind ext header truncated", mutate(dst6, cut6(70)), ReasonTCPHeader},
		{"v4 udp truncated", mutate(udp4, cut4(27)), ReasonUDPHeader},
		{"v4 udp length < 8", mutate(udp4, func(b []byte) []byte { b[24], b[25] = 0, 7; return b }), ReasonUDPHeader},
		{"v4 udp length 0", mutate(udp4, func(b []byte) []byte { b[24], b[25] = 0, 0; return b }), ReasonUDPHeader},
		{"v4 udp length past data", mutate(udp4, func(b []byte) []byte { b[24], b[25] = 0, 13; return b }), ReasonUDPHeader},
		{"v4 icmp 3 bytes", mutate(echo4, cut4(23)), ReasonICMPHeader},
		{"v4 icmp echo 7 bytes", mutate(echo4, cut4(27)), ReasonICMPHeader},
		{"v4 icmp empty", mutate(echo4, cut4(20)), ReasonICMPHeader},
		{"v6 icmp 3 bytes", mutate(echo6, cut6(43)), ReasonICMPHeader},
		{"v6 icmp echo 6 bytes", mutate(echo6, cut6(46)), ReasonICMPHeader},
	}
	seen := map[Reason]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			err := p.Decode(c.b)
			if err != c.reason {
				t.Fatalf("Decode = %v, want %v\n% x", err, c.reason, c.b)
			}
			var r Reason
			if !errors.As(err, &r) || r != c.reason {
				t.Fatalf("errors.As(%v) = %v", err, r)
			}
			seen[r] = true
		})
	}

	v4 := EtherTypeIPv4
	ethCases := []struct {
		name   string
		b      []byte
		reason Reason
	}{
		{"empty frame", nil, ReasonEthernetHeader},
		{"13 bytes", ether(v4, nil)[:13], ReasonEthernetHeader},
		{"vlan tag truncated", ether(EtherTypeVLAN, []byte{0, 1, 8}), ReasonEthernetHeader},
		{"second tag truncated", ether(EtherTypeQinQ, []byte{0, 1, 8}, EtherTypeVLAN), ReasonEthernetHeader},
		{"arp", ether(EtherTypeARP, make([]byte, 28)), ReasonNotIP},
		{"arp behind vlan", ether(EtherTypeARP, make([]byte, 28), EtherTypeVLAN), ReasonNotIP},
		{"three vlan tags", ether(v4, tcp4, EtherTypeQinQ, EtherTypeVLAN, EtherTypeVLAN), ReasonNotIP},
		{"802.3 length", ether(0x0040, tcp4), ReasonNotIP},
		{"ipv4 without packet", ether(v4, nil), ReasonEmpty},
		{"ipv6 ethertype, ipv4 packet", ether(EtherTypeIPv6, tcp4), ReasonVersion},
		{"ipv4 ethertype, ipv6 packet", ether(v4, tcp6, EtherTypeVLAN), ReasonVersion},
		{"ipv4 bad tcp", ether(v4, mutate(tcp4, cut4(30))), ReasonTCPHeader},
	}
	for _, c := range ethCases {
		t.Run("ethernet "+c.name, func(t *testing.T) {
			var p Packet
			if err := p.DecodeEthernet(c.b); err != c.reason {
				t.Fatalf("DecodeEthernet = %v, want %v\n% x", err, c.reason, c.b)
			}
			seen[c.reason] = true
		})
	}
	for r := Reason(1); r < ReasonTunnelFragment; r++ { // the later ones are Tunnelled's
		if !seen[r] {
			t.Errorf("no test input produces %v", r)
		}
	}
}

// On error, what was decoded before the fault is kept.
func TestDecodeErrorKeepsOuterFields(t *testing.T) {
	b := serialize(t, v4(layers.IPProtocolTCP), tcp(1, 2, TCPSyn))
	b = mutate(b, func(b []byte) []byte { b[32] = 0x40; return b })
	var p Packet
	if err := p.Decode(b); err != ReasonTCPHeader {
		t.Fatalf("Decode = %v", err)
	}
	want := Packet{Family: 4, Proto: ProtoTCP, TTL: 64, Src: src4, Dst: dst4, Length: 40}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %+v, want %+v", p, want)
	}
}

func TestReasonString(t *testing.T) {
	names := map[string]Reason{}
	for r := Reason(1); r < NumReasons; r++ {
		s := r.String()
		if s == "" || s == "unknown" || s == "none" || strings.ToLower(s) != s || strings.ContainsAny(s, " -.") {
			t.Errorf("Reason(%d).String() = %q, want a snake_case label", r, s)
		}
		if prev, ok := names[s]; ok {
			t.Errorf("%d and %d share the label %q", prev, r, s)
		}
		names[s] = r
		if got, want := r.Error(), "packet: "+s; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	}
	if got := ReasonTCPHeader.String(); got != "tcp_header" {
		t.Errorf("ReasonTCPHeader = %q", got)
	}
	if got := Reason(0).String(); got != "none" {
		t.Errorf("Reason(0) = %q", got)
	}
	if got := NumReasons.String(); got != "unknown" {
		t.Errorf("NumReasons = %q", got)
	}
	if got := Reason(255).Error(); got != "packet: unknown" {
		t.Errorf("Reason(255).Error() = %q", got)
	}
	if ReasonEmpty != 1 {
		t.Errorf("ReasonEmpty = %d, want 1", ReasonEmpty)
	}
}

// The header accessors not exercised by Decode.
func TestHeaderAccessors(t *testing.T) {
	l := v4(layers.IPProtocolUDP)
	l.TOS, l.TTL, l.Flags, l.FragOffset = 0xb8, 17, layers.IPv4DontFragment|layers.IPv4MoreFragments, 3
	l.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
	b := serialize(t, l, udp(7, 8), payload(2))
	h := IPv4(b)
	if h.Version() != 4 || h.TOS() != 0xb8 || h.TTL() != 17 || h.ID() != 0x1234 || h.Flags() != 3 || !h.More() ||
		h.FragmentOffset() != 24 || h.Checksum() != l.Checksum || len(h.Options()) != 4 || len(h.Payload()) != 10 ||
		h.TotalLength() != 34 {
		t.Errorf("IPv4 accessors wrong: % x", b)
	}
	u := UDP(h.Payload())
	if u.Length() != 10 || len(u.Payload()) != 2 || u.Checksum() == 0 {
		t.Errorf("UDP accessors wrong: % x", u)
	}

	l6 := v6(layers.IPProtocolIPv6Fragment)
	l6.TrafficClass, l6.FlowLabel = 0xa5, 0xabcde
	b = serialize(t, l6, frag6(layers.IPProtocolTCP, 0x100, true), tcp(1, 2, TCPAck), payload(5))
	h6 := IPv6(b)
	if h6.Version() != 6 || h6.TrafficClass() != 0xa5 || h6.FlowLabel() != 0xabcde || h6.HopLimit() != 64 ||
		h6.NextHeader() != ProtoFragment || len(h6.Payload()) != 8+20+5 {
		t.Errorf("IPv6 accessors wrong: % x", b)
	}
	f := IPv6Fragment(h6.Payload())
	if f.NextHeader() != ProtoTCP || f.FragmentOffset() != 0x800 || !f.More() || f.ID() != 0xabcdef {
		t.Errorf("IPv6Fragment accessors wrong: % x", f)
	}
	tc := TCP(h6.Payload()[8:])
	if tc.SequenceNumber() != 1000 || tc.AckNumber() != 2000 || tc.WindowSize() != 65535 || tc.UrgentPointer() != 0 ||
		tc.Checksum() == 0 || len(tc.Options()) != 0 || len(tc.Payload()) != 5 {
		t.Errorf("TCP accessors wrong: % x", tc)
	}

	m := ICMP(serialize(t, v6(layers.IPProtocolICMPv6), icmp6(2, 0), gopacket.Payload{0, 0, 0x23, 0x28})[40:])
	if ICMP([]byte{8, 0, 0, 0, 0, 1, 0, 2}).Sequence() != 2 {
		t.Error("ICMP sequence wrong")
	}
	if m.MTU() != 9000 || m.Checksum() == 0 || len(m.Payload()) != 0 {
		t.Errorf("ICMP accessors wrong: % x", m)
	}
	e := Ethernet(ether(EtherTypeVLAN, []byte{0xa0, 0x64, 0x86, 0xdd}))
	if e.Destination() != [6]byte{2, 0, 0, 0, 0, 1} || e.Source() != [6]byte{2, 0, 0, 0, 0, 2} || e.Type() != EtherTypeVLAN {
		t.Errorf("Ethernet accessors wrong: % x", e)
	}
	v := VLAN(e.Payload())
	if v.ID() != 100 || v.Priority() != 5 || v.Type() != EtherTypeIPv6 || len(v.Payload()) != 0 {
		t.Errorf("VLAN accessors wrong: % x", v)
	}
	if IPv6Ext([]byte{6, 2}).Length() != 24 || IPv6Ext([]byte{6, 2}).NextHeader() != 6 ||
		IPv6AH([]byte{6, 4}).Length() != 24 || IPv6AH([]byte{6, 4}).NextHeader() != 6 {
		t.Error("extension header lengths wrong")
	}
}

func TestDecodeAllocs(t *testing.T) {
	hop := v6(layers.IPProtocolIPv6HopByHop)
	hop.HopByHop = hbh(layers.IPProtocolIPv6Fragment)
	inner := serialize(t, v4(layers.IPProtocolTCP), tcp(40000, 443, TCPSyn))
	icmpErr := v4(layers.IPProtocolICMPv4)
	icmpErr.SrcIP = ip(router4)
	innerExt := serialize(t, hop, frag6(layers.IPProtocolIPv6Destination, 0, false), dstOpts(layers.IPProtocolUDP, 8), udp(1, 2))
	cases := []struct {
		name string
		b    []byte
		eth  bool
	}{
		{"v4 tcp", serialize(t, v4(layers.IPProtocolTCP), tcp(40000, 443, TCPSyn|TCPAck), payload(100)), false},
		{"v6 ext headers udp", serialize(t, hop, frag6(layers.IPProtocolIPv6Destination, 0, true), dstOpts(layers.IPProtocolUDP, 16), udp(1, 2), payload(10)), false},
		{"v4 icmp error quoting tcp", serialize(t, icmpErr, icmp4(3, 4, 0, 1400), gopacket.Payload(inner[:28])), false},
		{"v6 packet too big quoting ext headers", serialize(t, v6(layers.IPProtocolICMPv6), icmp6(2, 0), gopacket.Payload{0, 0, 5, 0}, gopacket.Payload(innerExt)), false},
		{"v6 icmp echo", serialize(t, v6(layers.IPProtocolICMPv6), icmp6(128, 0), &layers.ICMPv6Echo{Identifier: 1}), false},
		{"malformed tcp", serialize(t, v4(layers.IPProtocolTCP), tcp(1, 2, 0))[:30], false},
		{"bad version", []byte{0x10}, false},
		{"ethernet vlan v4 udp", ether(EtherTypeIPv4, serialize(t, v4(layers.IPProtocolUDP), udp(1, 2)), EtherTypeVLAN), true},
		{"ethernet arp", ether(EtherTypeARP, make([]byte, 28)), true},
	}
	for _, c := range cases {
		var p Packet
		var err error
		allocs := testing.AllocsPerRun(1000, func() {
			if c.eth {
				err = p.DecodeEthernet(c.b)
			} else {
				err = p.Decode(c.b)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Decode, want 0", c.name, allocs)
		}
		_ = err
	}
	// The error strings are built once, too.
	if a := testing.AllocsPerRun(100, func() { _ = ReasonUDPHeader.Error() }); a != 0 {
		t.Errorf("Reason.Error: %v allocations", a)
	}
}

func BenchmarkDecode(b *testing.B) {
	hop := v6(layers.IPProtocolIPv6HopByHop)
	hop.HopByHop = hbh(layers.IPProtocolIPv6Destination)
	inner := serialize(b, v4(layers.IPProtocolTCP), tcp(40000, 443, TCPSyn))
	cases := []struct {
		name string
		b    []byte
	}{
		{"tcp4", serialize(b, v4(layers.IPProtocolTCP), tcp(40000, 443, TCPAck|TCPPsh), payload(1400))},
		{"udp6", serialize(b, v6(layers.IPProtocolUDP), udp(5353, 4789), payload(1400))},
		{"udp6_ext", serialize(b, hop, dstOpts(layers.IPProtocolUDP, 16), udp(5353, 4789), payload(1400))},
		{"icmp4_error", serialize(b, v4(layers.IPProtocolICMPv4), icmp4(3, 4, 0, 1400), gopacket.Payload(inner[:28]))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.b)))
			var p Packet
			for b.Loop() {
				if err := p.Decode(c.b); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecodeUDPFirstFragment: in the first fragment of a large UDP datagram (a big
// DNS answer, IKE) the UDP length covers the whole datagram, the fragment only its
// start; the fragment is decoded with its ports and the payload it holds.
func TestDecodeUDPFirstFragment(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		var b []byte
		if !v6 {
			b = make([]byte, 20+1480)
			b[0] = 0x45
			binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
			binary.BigEndian.PutUint16(b[6:], 0x2000) // MF, offset 0
			b[8], b[9] = 64, ProtoUDP
			copy(b[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
		} else {
			b = make([]byte, 40+8+1448)
			b[0] = 0x60
			binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
			b[6], b[7] = ProtoFragment, 64
			b[23], b[39] = 1, 2
			b[40] = ProtoUDP
			binary.BigEndian.PutUint16(b[42:], 1) // offset 0, M
			binary.BigEndian.PutUint32(b[44:], 0xabc)
		}
		u := b[len(b)-1480:]
		if v6 {
			u = b[48:]
		}
		binary.BigEndian.PutUint16(u[0:], 53)
		binary.BigEndian.PutUint16(u[2:], 40000)
		binary.BigEndian.PutUint16(u[4:], 3008) // the whole datagram's length
		var p Packet
		if err := p.Decode(b); err != nil {
			t.Fatalf("v6=%v: %v", v6, err)
		}
		if !p.FirstFragment || p.SrcPort != 53 || p.DstPort != 40000 || len(p.Payload) != len(u)-8 {
			t.Errorf("v6=%v: first %v ports %d>%d payload %d", v6, p.FirstFragment, p.SrcPort, p.DstPort, len(p.Payload))
		}
	}
	// Unfragmented, a UDP length past the packet is still malformed.
	var p Packet
	b := make([]byte, 28)
	b[0], b[9] = 0x45, ProtoUDP
	binary.BigEndian.PutUint16(b[2:], 28)
	binary.BigEndian.PutUint16(b[24:], 100)
	if err := p.Decode(b); err != ReasonUDPHeader {
		t.Errorf("UDP length past an unfragmented packet: %v", err)
	}
}

func TestDecodeSeq(t *testing.T) {
	l := tcp(1, 2, TCPAck)
	l.Seq = 0xdeadbeef
	b := serialize(t, v4(layers.IPProtocolTCP), l)
	var p Packet
	if err := p.Decode(b); err != nil || p.Seq != 0xdeadbeef {
		t.Fatalf("Decode: %v, Seq %#x", err, p.Seq)
	}
}
