package geneve_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/geneve"
)

// testAWS is the set of GWLB option values most tests use.
var testAWS = geneve.AWS{
	EndpointID:   0x0123456789abcdef,
	AttachmentID: 0xfedcba9876543210,
	FlowCookie:   0xdeadbeef,
	Present:      1<<geneve.AWSTypeEndpointID | 1<<geneve.AWSTypeAttachmentID | 1<<geneve.AWSTypeFlowCookie,
}

// serialize builds a packet from gopacket layers with lengths and checksums filled.
func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// innerIPv4 is a real IPv4/TCP packet carrying n bytes of TCP payload.
func innerIPv4(tb testing.TB, n int) []byte {
	tb.Helper()
	ip := &layers.IPv4{
		Version: 4, TTL: 63, Id: 0x4242, Flags: layers.IPv4DontFragment,
		Protocol: layers.IPProtocolTCP,
		SrcIP:    net.IPv4(192, 0, 2, 10).To4(), DstIP: net.IPv4(198, 51, 100, 7).To4(),
	}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 1, Ack: 2, ACK: true, PSH: true, Window: 512}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, ip, tcp, gopacket.Payload(fill(n)))
}

// innerIPv6 is a real IPv6/UDP packet carrying n bytes of UDP payload.
func innerIPv6(tb testing.TB, n int) []byte {
	tb.Helper()
	ip := &layers.IPv6{
		Version: 6, HopLimit: 63, NextHeader: layers.IPProtocolUDP,
		SrcIP: net.ParseIP("2001:db8::10"), DstIP: net.ParseIP("2001:db8:1::7"),
	}
	udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, ip, udp, gopacket.Payload(fill(n)))
}

// innerEthernet is an Ethernet frame carrying an IPv4 packet.
func innerEthernet(tb testing.TB) []byte {
	tb.Helper()
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 1},
		DstMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4,
	}
	return append(serialize(tb, eth), innerIPv4(tb, 10)...)
}

// fill is n bytes of a recognisable pattern.
func fill(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// word is n 4-byte words of option data.
func word(n int, v byte) []byte {
	b := make([]byte, 4*n)
	for i := range b {
		b[i] = v + byte(i)
	}
	return b
}

// gwlbPacket is a GENEVE datagram exactly as GWLB sends it.
func gwlbPacket(proto uint16, inner []byte) []byte {
	return append(geneve.AppendAWSHeader(nil, proto, testAWS), inner...)
}

// walk returns every option of h in order, failing the test if the walk errors.
func walk(tb testing.TB, opts geneve.Options) []geneve.Option {
	tb.Helper()
	var out []geneve.Option
	for len(opts) > 0 {
		opt, rest, err := opts.Next()
		if err != nil {
			tb.Fatalf("walking options: %v", err)
		}
		out = append(out, opt)
		opts = rest
	}
	return out
}

// naiveSum is an independent Internet checksum sum (RFC 1071) of the concatenated
// parts, an odd total padded with a zero byte, folded to 16 bits, not complemented.
func naiveSum(start uint32, parts ...[]byte) uint16 {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	s := uint64(start)
	for i := 0; i < len(b); i += 2 {
		v := uint64(b[i]) << 8
		if i+1 < len(b) {
			v |= uint64(b[i+1])
		}
		s += v
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// verifyReplyChecksums checks the IPv4 header and UDP checksums of pkt (outer IPv4
// without options, then UDP) independently of package geneve.
func verifyReplyChecksums(tb testing.TB, pkt []byte) {
	tb.Helper()
	if got := naiveSum(0, pkt[:20]); got != 0xffff {
		tb.Errorf("IPv4 header checksum does not verify: sum %#04x", got)
	}
	udp := pkt[20:]
	if udp[6] == 0 && udp[7] == 0 {
		tb.Errorf("UDP checksum is 0 (none)")
	}
	ulen := len(udp)
	pseudo := []byte{pkt[12], pkt[13], pkt[14], pkt[15], pkt[16], pkt[17], pkt[18], pkt[19],
		0, 17, byte(ulen >> 8), byte(ulen)}
	if got := naiveSum(0, pseudo, udp); got != 0xffff {
		tb.Errorf("UDP checksum does not verify: sum %#04x", got)
	}
}

var (
	gwlbAddr      = netip.MustParseAddr("10.0.1.5")
	applianceAddr = netip.MustParseAddr("10.0.2.9")
	testOuter     = geneve.Outer{Src: gwlbAddr, Dst: applianceAddr, SrcPort: 49321, DstPort: geneve.Port}
)
