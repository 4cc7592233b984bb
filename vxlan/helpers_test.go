package vxlan_test

import (
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/vxlan"
)

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

// innerFrame is an Ethernet/IPv4/TCP frame carrying n bytes of TCP payload, with the
// ENI's MAC as source (an egress packet as Traffic Mirroring sees it).
func innerFrame(tb testing.TB, n int) []byte {
	tb.Helper()
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x02, 0x29, 0x23, 0x74, 0xc7, 0x7d},
		DstMAC:       net.HardwareAddr{0x06, 0, 0, 0, 0, 1},
		EthernetType: layers.EthernetTypeIPv4,
	}
	ip := &layers.IPv4{
		Version: 4, TTL: 64, Id: 0x4242, Flags: layers.IPv4DontFragment,
		Protocol: layers.IPProtocolTCP,
		SrcIP:    net.IPv4(172, 31, 0, 238).To4(), DstIP: net.IPv4(198, 51, 100, 7).To4(),
	}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 1, Ack: 2, ACK: true, PSH: true, Window: 512}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, eth, ip, tcp, gopacket.Payload(fill(n)))
}

// arpFrame is a 42-byte Ethernet ARP request, the shortest frame mirrors carry.
func arpFrame(tb testing.TB) []byte {
	tb.Helper()
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 1},
		DstMAC:       layers.EthernetBroadcast,
		EthernetType: layers.EthernetTypeARP,
	}
	arp := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: eth.SrcMAC, SourceProtAddress: []byte{10, 0, 0, 1},
		DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2},
	}
	return serialize(tb, eth, arp)
}

// datagram is a Traffic Mirroring VXLAN datagram: AppendHeader then the frame.
func datagram(vni uint32, frame []byte) []byte {
	return append(vxlan.AppendHeader(nil, vni), frame...)
}

// fill is n bytes of a recognisable pattern.
func fill(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}
