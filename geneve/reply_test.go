package geneve_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/geneve"
)

// replyPacket builds the reply headers for datagram into a buffer pre-filled with
// garbage and returns headers and datagram concatenated.
func replyPacket(o geneve.Outer, datagram []byte, id uint16) []byte {
	hdr := bytes.Repeat([]byte{0xa5}, geneve.ReplyHeaderLen)
	geneve.PutReplyHeaders(hdr, o, datagram, id)
	return append(hdr, datagram...)
}

// checkReply decodes pkt, the reply to datagram, with gopacket and checks addressing,
// lengths, checksums and payload.
func checkReply(t *testing.T, o geneve.Outer, datagram, pkt []byte, id uint16) {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if ip == nil || udp == nil {
		t.Fatalf("gopacket does not find IPv4/UDP: %v", p)
	}
	if ip.Version != 4 || ip.IHL != 5 || ip.Protocol != layers.IPProtocolUDP || ip.TTL == 0 {
		t.Errorf("IPv4 version %d IHL %d proto %v TTL %d", ip.Version, ip.IHL, ip.Protocol, ip.TTL)
	}
	if ip.Flags != layers.IPv4DontFragment || ip.FragOffset != 0 {
		t.Errorf("IPv4 flags %v frag offset %d, want DF and 0", ip.Flags, ip.FragOffset)
	}
	if ip.Id != id {
		t.Errorf("IPv4 id %#x, want %#x", ip.Id, id)
	}
	if want := net.IP(o.Dst.AsSlice()); !ip.SrcIP.Equal(want) {
		t.Errorf("IPv4 src %v, want the appliance %v", ip.SrcIP, want)
	}
	if want := net.IP(o.Src.AsSlice()); !ip.DstIP.Equal(want) {
		t.Errorf("IPv4 dst %v, want GWLB %v", ip.DstIP, want)
	}
	if int(ip.Length) != geneve.ReplyHeaderLen+len(datagram) {
		t.Errorf("IPv4 total length %d, want %d", ip.Length, geneve.ReplyHeaderLen+len(datagram))
	}
	if uint16(udp.SrcPort) != o.SrcPort || uint16(udp.DstPort) != o.DstPort {
		t.Errorf("UDP ports %d -> %d, want %d -> %d", udp.SrcPort, udp.DstPort, o.SrcPort, o.DstPort)
	}
	if int(udp.Length) != 8+len(datagram) {
		t.Errorf("UDP length %d, want %d", udp.Length, 8+len(datagram))
	}
	if !bytes.Equal(udp.Payload, datagram) {
		t.Errorf("UDP payload differs from the datagram")
	}
	verifyReplyChecksums(t, pkt)

	// gopacket, asked to compute lengths and checksums for the same fields, writes
	// the same bytes.
	ip2 := &layers.IPv4{Version: 4, TTL: ip.TTL, Id: ip.Id, Flags: ip.Flags, Protocol: layers.IPProtocolUDP,
		SrcIP: ip.SrcIP, DstIP: ip.DstIP}
	udp2 := &layers.UDP{SrcPort: udp.SrcPort, DstPort: udp.DstPort}
	if err := udp2.SetNetworkLayerForChecksum(ip2); err != nil {
		t.Fatal(err)
	}
	if want := serialize(t, ip2, udp2, gopacket.Payload(datagram)); !bytes.Equal(pkt, want) {
		t.Errorf("reply headers differ from gopacket's:\n got % x\nwant % x", pkt[:28], want[:28])
	}
}

func TestPutReplyHeaders(t *testing.T) {
	for _, tc := range []struct {
		name     string
		datagram []byte
		odd      bool
	}{
		{"ipv4 inner", gwlbPacket(geneve.ProtoIPv4, innerIPv4(t, 100)), false},
		{"ipv6 inner", gwlbPacket(geneve.ProtoIPv6, innerIPv6(t, 1000)), false},
		{"odd length", gwlbPacket(geneve.ProtoIPv4, innerIPv4(t, 33)), true},
		{"odd length ipv6", gwlbPacket(geneve.ProtoIPv6, innerIPv6(t, 1)), true},
		{"1400 inner", gwlbPacket(geneve.ProtoIPv4, innerIPv4(t, 1400-40)), false},
		{"8500 inner", gwlbPacket(geneve.ProtoIPv6, innerIPv6(t, 8500-48)), false},
		{"8501 inner", gwlbPacket(geneve.ProtoIPv4, innerIPv4(t, 8501-40)), true},
		{"extra options odd", append(header(geneve.ProtoIPv4, optOtherClass, optCookie, optAttachment, optEndpoint),
			innerIPv4(t, 7)...), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if odd := len(tc.datagram)%2 == 1; odd != tc.odd {
				t.Fatalf("datagram length %d: odd is %v, the case wants %v", len(tc.datagram), odd, tc.odd)
			}
			dg := append([]byte(nil), tc.datagram...)
			pkt := replyPacket(testOuter, dg, 0xbeef)
			if !bytes.Equal(dg, tc.datagram) {
				t.Fatalf("PutReplyHeaders modified the datagram")
			}
			checkReply(t, testOuter, dg, pkt, 0xbeef)

			// The GENEVE header comes back byte for byte, and gopacket sees it.
			p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
			g, _ := p.Layer(layers.LayerTypeGeneve).(*layers.Geneve)
			if g == nil {
				t.Fatalf("no Geneve layer in the reply: %v", p)
			}
			h, _, _, err := geneve.Decode(dg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(g.Contents, h) {
				t.Errorf("reply GENEVE header differs from the received one")
			}
		})
	}
}

// TestPutReplyHeadersOnlyWritesHeaders checks hdr beyond ReplyHeaderLen is untouched and
// the result does not depend on what hdr held.
func TestPutReplyHeadersOnlyWritesHeaders(t *testing.T) {
	dg := gwlbPacket(geneve.ProtoIPv4, innerIPv4(t, 50))
	a := make([]byte, geneve.ReplyHeaderLen+4)
	b := bytes.Repeat([]byte{0xff}, geneve.ReplyHeaderLen+4)
	geneve.PutReplyHeaders(a, testOuter, dg, 7)
	geneve.PutReplyHeaders(b, testOuter, dg, 7)
	if !bytes.Equal(a[:geneve.ReplyHeaderLen], b[:geneve.ReplyHeaderLen]) {
		t.Errorf("headers depend on the buffer's old contents:\n% x\n% x", a[:28], b[:28])
	}
	if !bytes.Equal(a[28:], []byte{0, 0, 0, 0}) || !bytes.Equal(b[28:], []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("bytes past ReplyHeaderLen written")
	}
}

// TestPutReplyHeadersZeroChecksum crafts a datagram whose UDP checksum computes to 0,
// which must go out as 0xffff (0 means no checksum).
func TestPutReplyHeadersZeroChecksum(t *testing.T) {
	dg := append(gwlbPacket(geneve.ProtoIPv4, innerIPv4(t, 20)), 0, 0)
	hdr := make([]byte, geneve.ReplyHeaderLen)
	geneve.PutReplyHeaders(hdr, testOuter, dg, 1)
	// Adding the transmitted checksum as data makes the one's-complement sum 0xffff.
	copy(dg[len(dg)-2:], hdr[26:28])
	geneve.PutReplyHeaders(hdr, testOuter, dg, 1)
	if c := binary.BigEndian.Uint16(hdr[26:]); c != 0xffff {
		t.Fatalf("UDP checksum = %#04x, want 0xffff", c)
	}
	checkReply(t, testOuter, dg, append(hdr, dg...), 1)
}

func TestPutReplyHeadersAddresses(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	dg := gwlbPacket(geneve.ProtoIPv6, innerIPv6(t, 11))
	for i := range 50 {
		var s, d [4]byte
		binary.BigEndian.PutUint32(s[:], r.Uint32())
		binary.BigEndian.PutUint32(d[:], r.Uint32())
		o := geneve.Outer{Src: netip.AddrFrom4(s), Dst: netip.AddrFrom4(d), SrcPort: uint16(r.Uint32()), DstPort: geneve.Port}
		n := r.IntN(len(dg)-geneve.HeaderLen) + geneve.HeaderLen
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			checkReply(t, o, dg[:n], replyPacket(o, dg[:n], uint16(i)), uint16(i))
		})
	}
}

// TestChecksum compares Checksum, started from arbitrary sums, with an independent
// byte-at-a-time implementation.
func TestChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		b := make([]byte, r.IntN(200))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if r.IntN(4) == 0 {
			for i := range b {
				b[i] = 0xff
			}
		}
		start := r.Uint32()
		if r.IntN(4) == 0 {
			start = 0
		}
		got := fold16(geneve.Checksum(start, b))
		want := naiveSum(0, binary.BigEndian.AppendUint32(nil, start), b)
		if got != want {
			t.Fatalf("Checksum(%#x, % x) folds to %#04x, want %#04x", start, b, got, want)
		}
	}
}

func fold16(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
