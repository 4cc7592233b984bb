package packet

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	macDst = [6]byte{2, 0, 0, 0, 0, 1} // as ether writes them
	macSrc = [6]byte{2, 0, 0, 0, 0, 2}
)

// outerCases are frames for ParseOuter with what it should make of them; want.HasMAC
// false means refused.
func outerCases(tb testing.TB) []struct {
	name    string
	frame   []byte
	want    Outer
	payload []byte
} {
	vx := payload(24)
	udp4 := serialize(tb, v4(layers.IPProtocolUDP), udp(50000, 4789), vx)
	opts4 := v4(layers.IPProtocolUDP)
	opts4.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
	withOpts := serialize(tb, opts4, udp(50000, 6081), vx)
	udp6 := serialize(tb, v6(layers.IPProtocolUDP), udp(50001, 6081), vx)
	hop := v6(layers.IPProtocolIPv6HopByHop)
	hop.HopByHop = hbh(layers.IPProtocolIPv6Destination)
	ext6 := serialize(tb, hop, dstOpts(layers.IPProtocolUDP, 16), udp(50002, 4789), vx)
	atomic6 := serialize(tb, v6(layers.IPProtocolIPv6Fragment), frag6(layers.IPProtocolUDP, 0, false), udp(50003, 4789), vx)
	first6 := serialize(tb, v6(layers.IPProtocolIPv6Fragment), frag6(layers.IPProtocolUDP, 0, true), udp(50003, 4789), vx)
	later6 := serialize(tb, v6(layers.IPProtocolIPv6Fragment), frag6(layers.IPProtocolUDP, 64, false), vx)
	first4 := bytes.Clone(udp4)
	first4[6] |= 0x20 // more fragments
	later4 := bytes.Clone(udp4)
	later4[7] = 8 // offset 64
	tcp4 := serialize(tb, v4(layers.IPProtocolTCP), tcp(1, 2, TCPSyn))
	longUDP := bytes.Clone(udp4)
	longUDP[25]++ // UDP length one past the IP payload
	shortUDP := bytes.Clone(udp4)
	shortUDP[24], shortUDP[25] = 0, 7
	v4o := Outer{SrcMAC: macSrc, DstMAC: macDst, HasMAC: true, Src: src4, Dst: dst4, SrcPort: 50000, DstPort: 4789}
	v6o := Outer{SrcMAC: macSrc, DstMAC: macDst, HasMAC: true, Src: src6, Dst: dst6, SrcPort: 50001, DstPort: 6081}
	with := func(o Outer, f func(*Outer)) Outer { f(&o); return o }
	none := Outer{}
	return []struct {
		name    string
		frame   []byte
		want    Outer
		payload []byte
	}{
		{"v4", ether(EtherTypeIPv4, udp4), v4o, vx},
		{"v4 padded", append(ether(EtherTypeIPv4, udp4), 0, 0, 0, 0, 0, 0), v4o, vx},
		{"v4 options", ether(EtherTypeIPv4, withOpts), with(v4o, func(o *Outer) { o.DstPort = 6081 }), vx},
		{"v4 vlan", ether(EtherTypeIPv4, udp4, EtherTypeVLAN), v4o, vx},
		{"v4 qinq", ether(EtherTypeIPv4, udp4, EtherTypeQinQ, EtherTypeVLAN), v4o, vx},
		{"v6", ether(EtherTypeIPv6, udp6), v6o, vx},
		{"v6 ext headers", ether(EtherTypeIPv6, ext6, EtherTypeVLAN), with(v6o, func(o *Outer) { o.SrcPort, o.DstPort = 50002, 4789 }), vx},
		{"v6 atomic fragment", ether(EtherTypeIPv6, atomic6), with(v6o, func(o *Outer) { o.SrcPort, o.DstPort = 50003, 4789 }), vx},
		{"bad three tags", ether(EtherTypeIPv4, udp4, EtherTypeQinQ, EtherTypeVLAN, EtherTypeVLAN), none, nil},
		{"bad arp", ether(EtherTypeARP, make([]byte, 28)), none, nil},
		{"bad short", ether(EtherTypeIPv4, nil)[:13], none, nil},
		{"bad tag truncated", ether(EtherTypeVLAN, []byte{0, 100}), none, nil},
		{"bad version mismatch", ether(EtherTypeIPv6, udp4), none, nil},
		{"bad tcp", ether(EtherTypeIPv4, tcp4), none, nil},
		{"bad v4 first fragment", ether(EtherTypeIPv4, first4), none, nil},
		{"bad v4 later fragment", ether(EtherTypeIPv4, later4), none, nil},
		{"bad v6 first fragment", ether(EtherTypeIPv6, first6), none, nil},
		{"bad v6 later fragment", ether(EtherTypeIPv6, later6), none, nil},
		{"bad v4 truncated", ether(EtherTypeIPv4, udp4[:len(udp4)-1]), none, nil},
		{"bad v6 truncated", ether(EtherTypeIPv6, udp6[:len(udp6)-1]), none, nil},
		{"bad udp length long", ether(EtherTypeIPv4, longUDP), none, nil},
		{"bad udp length short", ether(EtherTypeIPv4, shortUDP), none, nil},
		{"bad v4 header only", ether(EtherTypeIPv4, udp4[:20]), none, nil},
		{"bad empty ip", ether(EtherTypeIPv4, nil), none, nil},
	}
}

func TestParseOuter(t *testing.T) {
	for _, c := range outerCases(t) {
		t.Run(c.name, func(t *testing.T) {
			o, p, ok := ParseOuter(c.frame)
			if ok != c.want.HasMAC || o != c.want || !bytes.Equal(p, c.payload) {
				t.Fatalf("ParseOuter = %+v, % x, %v; want %+v, % x", o, p, ok, c.want, c.payload)
			}
			// ParseUDP reads the same from the IP packet, without the MACs.
			if _, ip, eok := EthernetPayload(c.frame); eok && ok {
				u, up, uok := ParseUDP(ip)
				want := c.want
				want.SrcMAC, want.DstMAC, want.HasMAC = [6]byte{}, [6]byte{}, false
				if !uok || u != want || !bytes.Equal(up, c.payload) {
					t.Fatalf("ParseUDP = %+v, % x, %v; want %+v", u, up, uok, want)
				}
			}
		})
	}
}

func TestEthernetPayload(t *testing.T) {
	body := []byte{0x45, 1, 2, 3}
	for _, c := range []struct {
		name  string
		frame []byte
		typ   uint16
		n     int // payload length; -1: not ok
	}{
		{"plain", ether(EtherTypeIPv4, body), EtherTypeIPv4, 4},
		{"one tag", ether(EtherTypeIPv6, body, EtherTypeVLAN), EtherTypeIPv6, 4},
		{"two tags", ether(EtherTypeARP, body, EtherTypeQinQ, EtherTypeVLAN), EtherTypeARP, 4},
		{"three tags: the third is the payload", ether(EtherTypeIPv4, body, EtherTypeQinQ, EtherTypeVLAN, EtherTypeVLAN), EtherTypeVLAN, 8},
		{"header only", ether(EtherTypeIPv4, nil), EtherTypeIPv4, 0},
		{"short", ether(EtherTypeIPv4, nil)[:13], 0, -1},
		{"tag truncated", ether(EtherTypeVLAN, []byte{0, 100, 8}), 0, -1},
	} {
		typ, p, ok := EthernetPayload(c.frame)
		if ok != (c.n >= 0) || typ != c.typ || ok && len(p) != c.n {
			t.Errorf("%s: %#04x, %d bytes, %v; want %#04x, %d", c.name, typ, len(p), ok, c.typ, c.n)
		}
	}
}

func TestParseOuterAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, c := range outerCases(t) {
		if a := testing.AllocsPerRun(1000, func() { ParseOuter(c.frame) }); a != 0 {
			t.Errorf("%s: %v allocations per ParseOuter, want 0", c.name, a)
		}
	}
}

func BenchmarkParseOuter(b *testing.B) {
	frame := ether(EtherTypeIPv4, serialize(b, v4(layers.IPProtocolUDP), udp(50000, 4789), payload(1400)), EtherTypeVLAN)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, _, ok := ParseOuter(frame); !ok {
			b.Fatal("not parsed")
		}
	}
}

// gopacketOuter is what gopacket makes of frame, restricted to what ParseOuter takes:
// ok is false unless the frame is Ethernet, at most two VLAN tags, IPv4 or IPv6 of
// the EtherType's version (IPv6 extension headers that ParseUDP walks, at most
// MaxExtHeaders), and a whole UDP datagram, none of it truncated or fragmented.
// unsure reports frames gopacket cannot judge: IPv4 options or IPv6 extension header
// options it refuses (ParseUDP skips them by length), an IPv6 atomic fragment (it
// decodes nothing after one).
func gopacketOuter(frame []byte) (o Outer, payload []byte, ok, unsure bool) {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
	ls := pkt.Layers()
	i := 0
	next := func() gopacket.Layer {
		if i < len(ls) {
			i++
			return ls[i-1]
		}
		return nil
	}
	eth, isEth := next().(*layers.Ethernet)
	if !isEth {
		return
	}
	o.SrcMAC, o.DstMAC, o.HasMAC = [6]byte(eth.SrcMAC), [6]byte(eth.DstMAC), true
	typ := eth.EthernetType
	ipAt := EthernetMinimumSize
	l := next()
	for tags := 0; l != nil && l.LayerType() == layers.LayerTypeDot1Q; tags++ {
		if tags == MaxVLANTags {
			return
		}
		typ = l.(*layers.Dot1Q).Type
		ipAt += VLANTagSize
		l = next()
	}
	// gopacket also takes its own EtherType 0xffff for raw IPv4.
	if typ != layers.EthernetTypeIPv4 && typ != layers.EthernetTypeIPv6 {
		return
	}
	if i < len(ls) {
		if _, failed := ls[i].(*gopacket.DecodeFailure); failed {
			// gopacket adds the IP layer, then fails on its options, which
			// ParseUDP skips by length.
			unsure = true
			return
		}
	}
	switch ip := l.(type) {
	case *layers.IPv4:
		if ip.Version != IPv4Version || ip.Contents[2] == 0 && ip.Contents[3] == 0 ||
			int(ip.Length) != len(ip.Contents)+len(ip.Payload) || ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
			return
		}
		o.Src, o.Dst = netip.AddrFrom4([4]byte(ip.SrcIP.To4())), netip.AddrFrom4([4]byte(ip.DstIP.To4()))
	case *layers.IPv6:
		if ip.Version != IPv6Version || ip.Length == 0 || IPv6MinimumSize+int(ip.Length) > len(frame)-ipAt {
			return
		}
		o.Src, o.Dst = netip.AddrFrom16([16]byte(ip.SrcIP)), netip.AddrFrom16([16]byte(ip.DstIP))
		for ext := 0; ; ext++ {
			l = next()
			if l == nil {
				return
			}
			switch x := l.(type) {
			case *gopacket.DecodeFailure:
				// gopacket reads the options of extension headers; ParseUDP
				// skips the headers by their length.
				unsure = true
				return
			case *layers.IPv6HopByHop, *layers.IPv6Destination, *layers.IPv6Routing, *layers.IPSecAH:
			case *layers.IPv6Fragment:
				// gopacket does not decode past a fragment header, even an
				// atomic one (offset 0, no more fragments) which ParseUDP takes.
				unsure = x.FragmentOffset == 0 && !x.MoreFragments
				return
			default:
				i--
				if ext > MaxExtHeaders {
					return
				}
				goto transport
			}
		}
	case *gopacket.DecodeFailure:
		// gopacket checks IPv4 options; ParseUDP skips them by IHL.
		prev, _ := ls[i-2].(interface{ NextLayerType() gopacket.LayerType })
		unsure = prev != nil && prev.NextLayerType() == layers.LayerTypeIPv4
		return
	default:
		return
	}
transport:
	u, isUDP := next().(*layers.UDP)
	if !isUDP || u.Length < UDPMinimumSize || int(u.Length) != UDPMinimumSize+len(u.Payload) {
		return
	}
	o.SrcPort, o.DstPort = uint16(u.SrcPort), uint16(u.DstPort)
	return o, u.Payload, true, false
}

func FuzzParseOuter(f *testing.F) {
	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := bytes.Clone(frame)
		o, p, ok := ParseOuter(frame)
		if !bytes.Equal(frame, orig) {
			t.Fatal("ParseOuter changed its input")
		}
		if !ok {
			if o != (Outer{}) || p != nil {
				t.Fatalf("refused with %+v, % x", o, p)
			}
		} else {
			if !o.HasMAC || o.DstMAC != [6]byte(frame[0:6]) || o.SrcMAC != [6]byte(frame[6:12]) {
				t.Fatalf("MACs %+v of % x", o, frame[:12])
			}
			if !o.Src.IsValid() || o.Src.Is4() != o.Dst.Is4() || o.Src.Is4In6() || o.Dst.Is4In6() {
				t.Fatalf("addresses %v, %v", o.Src, o.Dst)
			}
			// The payload lies within the frame, read in place.
			if off := cap(frame) - cap(p); off < 0 || off+len(p) > len(frame) || len(p) > 0 && &p[0] != &frame[off] {
				t.Fatalf("payload (%d bytes, cap %d) is not within the frame", len(p), cap(p))
			}
		}
		g, gp, gok, unsure := gopacketOuter(frame)
		switch {
		case gok && !ok:
			t.Fatalf("gopacket reads %+v, payload % x; ParseOuter refuses", g, gp)
		case ok && !gok && !unsure:
			t.Fatalf("ParseOuter reads %+v, payload % x; gopacket does not", o, p)
		case ok && gok && (o != g || !bytes.Equal(p, gp)):
			t.Fatalf("ParseOuter %+v, % x; gopacket %+v, % x", o, p, g, gp)
		}
	})
}
