package packet

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Test packets are built with gopacket, so that the decoder is checked against an
// independent encoder rather than against bytes written by the same hand.

var (
	src4 = netip.MustParseAddr("10.0.1.2")
	dst4 = netip.MustParseAddr("192.0.2.80")
	src6 = netip.MustParseAddr("2001:db8::1")
	dst6 = netip.MustParseAddr("2001:db8:ffff::2")
)

func ip(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

// serialize encodes the layers with lengths and checksums fixed, giving each
// transport layer the closest IP layer before it for its pseudo-header.
func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	var nl gopacket.NetworkLayer
	for _, l := range ls {
		switch l := l.(type) {
		case *layers.IPv4:
			nl = l
		case *layers.IPv6:
			nl = l
		case interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}:
			if nl != nil {
				if err := l.SetNetworkLayerForChecksum(nl); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func v4(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Id: 0x1234, Protocol: proto, SrcIP: ip(src4), DstIP: ip(dst4)}
}

func v6(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: ip(src6), DstIP: ip(dst6)}
}

func tcp(sport, dport uint16, flags uint8) *layers.TCP {
	return &layers.TCP{
		SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1000, Ack: 2000,
		Window: 65535,
		FIN:    flags&TCPFin != 0, SYN: flags&TCPSyn != 0, RST: flags&TCPRst != 0,
		PSH: flags&TCPPsh != 0, ACK: flags&TCPAck != 0, URG: flags&TCPUrg != 0,
		ECE: flags&TCPEce != 0, CWR: flags&TCPCwr != 0,
	}
}

func udp(sport, dport uint16) *layers.UDP {
	return &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
}

func icmp4(typ, code uint8, id, seq uint16) *layers.ICMPv4 {
	return &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: id, Seq: seq}
}

func icmp6(typ, code uint8) *layers.ICMPv6 {
	return &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
}

// hbh returns an 8-byte Hop-by-Hop header: one option of the experimental type 0x1e
// (skip if unknown) with 4 data bytes. dstOpts does the same for Destination Options
// of any multiple of 8 bytes.
func hbh(next layers.IPProtocol) *layers.IPv6HopByHop {
	h := &layers.IPv6HopByHop{Options: []*layers.IPv6HopByHopOption{{OptionType: 0x1e, OptionData: []byte{1, 2, 3, 4}}}}
	h.NextHeader = next
	return h
}

func dstOpts(next layers.IPProtocol, size int) *layers.IPv6Destination {
	// size-4 data bytes: 2 for the header, 2 for the option's type and length.
	d := &layers.IPv6Destination{Options: []*layers.IPv6DestinationOption{{OptionType: 0x1e, OptionData: make([]byte, size-4)}}}
	d.NextHeader = next
	return d
}

func frag6(next layers.IPProtocol, offset uint16, more bool) *layers.IPv6Fragment {
	return &layers.IPv6Fragment{NextHeader: next, FragmentOffset: offset, MoreFragments: more, Identification: 0xabcdef}
}

func payload(n int) gopacket.Payload {
	p := make(gopacket.Payload, n)
	for i := range p {
		p[i] = byte(i)
	}
	return p
}

// ether prefixes b with an Ethernet header of EtherType typ and the given VLAN tags
// (each a TPID; the VID is 100).
func ether(typ uint16, b []byte, tags ...uint16) []byte {
	out := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2}
	for _, t := range tags {
		out = append(out, byte(t>>8), byte(t), 0, 100)
	}
	out = append(out, byte(typ>>8), byte(typ))
	return append(out, b...)
}
