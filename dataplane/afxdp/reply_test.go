package afxdp

import (
	"bytes"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/dataplane/packet"
	"weir/geneve"
)

var (
	gwlbMAC      = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	applianceMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// genevePayload is a GWLB datagram's UDP payload: the AWS options and an inner
// packet of n bytes.
func genevePayload(n int) []byte {
	b := geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 0x1234, AttachmentID: 9, FlowCookie: 0xfeed})
	for i := range n {
		b = append(b, byte(i))
	}
	return b
}

// outerFrame builds a GWLB datagram as it arrives on the wire, with valid
// checksums: Ethernet, IPv4 or IPv6, UDP from port 40000 to 6081.
func outerFrame(t testing.TB, src, dst string, payload []byte) []byte {
	t.Helper()
	s, d := net.ParseIP(src), net.ParseIP(dst)
	udp := &layers.UDP{SrcPort: 40000, DstPort: geneve.Port}
	eth := &layers.Ethernet{SrcMAC: gwlbMAC, DstMAC: applianceMAC}
	var ip gopacket.SerializableLayer
	if s.To4() != nil {
		eth.EthernetType = layers.EthernetTypeIPv4
		v4 := &layers.IPv4{Version: 4, TTL: 64, Id: 0x4242, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolUDP, SrcIP: s, DstIP: d}
		udp.SetNetworkLayerForChecksum(v4)
		ip = v4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: s, DstIP: d}
		udp.SetNetworkLayerForChecksum(v6)
		ip = v6
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checksumsValid verifies the IPv4 header checksum (if any) and the UDP
// checksum of an Ethernet frame, with packet.Checksum: a valid checksum makes
// the folded sum over the covered bytes come out as zero.
func checksumsValid(t *testing.T, frame []byte) {
	t.Helper()
	typ, ip, ok := packet.EthernetPayload(frame)
	if !ok {
		t.Fatal("not an Ethernet frame")
	}
	var pseudo uint32
	var l4 []byte
	switch typ {
	case packet.EtherTypeIPv4:
		h := packet.IPv4(ip)
		if c := packet.FoldChecksum(packet.Checksum(0, ip[:h.HeaderLength()])); c != 0 {
			t.Errorf("IPv4 header checksum invalid (sum %#04x)", c)
		}
		pseudo = packet.Checksum(0, ip[12:20])
		l4 = ip[h.HeaderLength():h.TotalLength()]
	case packet.EtherTypeIPv6:
		pseudo = packet.Checksum(0, ip[8:40])
		l4 = ip[40:]
	default:
		t.Fatalf("EtherType %#04x", typ)
	}
	pseudo += uint32(packet.ProtoUDP) + uint32(len(l4))
	if c := packet.FoldChecksum(packet.Checksum(pseudo, l4)); c != 0 {
		t.Errorf("UDP checksum invalid (sum %#04x)", c)
	}
}

// TestReplyKeepsChecksums proves the premise of the in-place reply: swapping
// the addresses leaves the IPv4 header and UDP checksums valid, checked both by
// packet.Checksum and by gopacket recomputing them; and the reply is the
// datagram with its MACs and IPs swapped, every other byte kept.
func TestReplyKeepsChecksums(t *testing.T) {
	for _, tc := range []struct {
		name, src, dst string
		inner          int
	}{
		{"ipv4", "192.0.2.1", "198.51.100.7", 60},
		{"ipv4 odd length", "10.0.0.1", "10.255.3.200", 61},
		{"ipv4 large", "172.16.9.1", "172.16.200.3", 1400},
		{"ipv6", "2001:db8::1", "2001:db8:ffff::42", 60},
		{"ipv6 odd length", "fd00::1:2:3", "fd00:abcd::9", 333},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := genevePayload(tc.inner)
			frame := outerFrame(t, tc.src, tc.dst, payload)
			checksumsValid(t, frame)
			if !rewriteReply(frame) {
				t.Fatal("rewriteReply refused a GWLB datagram")
			}
			checksumsValid(t, frame)
			want := outerFrame(t, tc.dst, tc.src, payload)
			copy(want[0:6], gwlbMAC)
			copy(want[6:12], applianceMAC)
			if !bytes.Equal(frame, want) {
				t.Errorf("reply\n%x\nwant\n%x", frame, want)
			}
			pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
			udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if udp == nil {
				t.Fatal("gopacket finds no UDP in the reply")
			}
			if udp.SrcPort != 40000 || udp.DstPort != geneve.Port {
				t.Errorf("ports %d -> %d, want 40000 -> %d", udp.SrcPort, udp.DstPort, geneve.Port)
			}
			if err := udp.SetNetworkLayerForChecksum(pkt.NetworkLayer()); err != nil {
				t.Fatal(err)
			}
			if err, v := udp.VerifyChecksum(); err != nil || !v.Valid {
				t.Errorf("gopacket: UDP checksum %+v, %v", v, err)
			}
			if v4, _ := pkt.NetworkLayer().(*layers.IPv4); v4 != nil {
				got := v4.Checksum
				buf := gopacket.NewSerializeBuffer()
				if err := v4.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
					t.Fatal(err)
				}
				if v4.Checksum != got {
					t.Errorf("gopacket recomputes the IPv4 checksum as %#04x, the reply has %#04x", v4.Checksum, got)
				}
			}
		})
	}
}

// TestReplyRefuses: frames that are not Ethernet carrying IPv4 or IPv6 with a
// whole fixed header are left alone.
func TestReplyRefuses(t *testing.T) {
	good := outerFrame(t, "192.0.2.1", "192.0.2.2", genevePayload(10))
	good6 := outerFrame(t, "2001:db8::1", "2001:db8::2", genevePayload(10))
	mutate := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"empty", nil},
		{"short Ethernet", good[:13]},
		{"Ethernet only", good[:14]},
		{"short IPv4", good[:14+19]},
		{"short IPv6", good6[:14+39]},
		{"ARP", mutate(good, func(b []byte) []byte { b[12], b[13] = 0x08, 0x06; return b })},
		{"IPv4 type, version 6", mutate(good, func(b []byte) []byte { b[14] = 0x65; return b })},
		{"IPv6 type, version 4", mutate(good6, func(b []byte) []byte { b[14] = 0x45; return b })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := bytes.Clone(tc.frame)
			if rewriteReply(tc.frame) {
				t.Fatal("rewriteReply took it")
			}
			if !bytes.Equal(tc.frame, before) {
				t.Error("rewriteReply changed a frame it refused")
			}
		})
	}
}

// TestReplyVLAN: the addresses are found behind VLAN tags.
func TestReplyVLAN(t *testing.T) {
	plain := outerFrame(t, "192.0.2.1", "192.0.2.2", genevePayload(20))
	tagged := append(bytes.Clone(plain[:12]), 0x81, 0x00, 0x00, 0x07)
	tagged = append(tagged, plain[12:]...)
	if !rewriteReply(tagged) {
		t.Fatal("refused a tagged frame")
	}
	o, _, ok := packet.ParseOuter(tagged)
	if !ok || o.Src.String() != "192.0.2.2" || o.Dst.String() != "192.0.2.1" {
		t.Errorf("after the rewrite: %+v, %v", o, ok)
	}
}

func TestReplyAllocs(t *testing.T) {
	frame := outerFrame(t, "2001:db8::1", "2001:db8::2", genevePayload(100))
	if n := testing.AllocsPerRun(100, func() { rewriteReply(frame) }); n != 0 {
		t.Errorf("rewriteReply allocates %v times", n)
	}
}

func BenchmarkReply(b *testing.B) {
	frame := outerFrame(b, "192.0.2.1", "192.0.2.2", genevePayload(1400))
	b.ReportAllocs()
	for b.Loop() {
		rewriteReply(frame)
	}
}

// FuzzReply: rewriteReply never panics; what it takes is what ParseOuter's
// Ethernet walk accepts as IP; twice is the identity; and a parsed datagram's
// addresses come out swapped with its ports and payload kept.
func FuzzReply(f *testing.F) {
	f.Add(outerFrame(f, "192.0.2.1", "192.0.2.2", genevePayload(8)))
	f.Add(outerFrame(f, "2001:db8::1", "2001:db8::2", genevePayload(8)))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := bytes.Clone(frame)
		before, payload0, parsed := packet.ParseOuter(orig)
		if !rewriteReply(frame) {
			if !bytes.Equal(frame, orig) {
				t.Fatal("refused but changed")
			}
			if parsed {
				t.Fatal("refused a frame ParseOuter takes")
			}
			return
		}
		if parsed {
			after, payload, ok := packet.ParseOuter(frame)
			if !ok {
				t.Fatal("the reply no longer parses")
			}
			if after.Src != before.Dst || after.Dst != before.Src || after.SrcPort != before.SrcPort ||
				after.DstPort != before.DstPort || after.SrcMAC != before.DstMAC || after.DstMAC != before.SrcMAC {
				t.Fatalf("before %+v after %+v", before, after)
			}
			if !bytes.Equal(payload, payload0) {
				t.Fatal("payload changed")
			}
		}
		if !rewriteReply(frame) || !bytes.Equal(frame, orig) {
			t.Fatal("rewriting twice is not the identity")
		}
	})
}
