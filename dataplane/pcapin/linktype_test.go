package pcapin

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/dataplane"
	"weir/dataplane/packet"
)

// The plain packets the link-type captures carry: TCP over IPv4, UDP over IPv6.
var (
	plainSrc6 = netip.MustParseAddr("2001:db8::1")
	plainDst6 = netip.MustParseAddr("2001:db8::2")
)

func tcp4(tb testing.TB) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP(outerSrc.AsSlice()), DstIP: net.IP(outerDst.AsSlice())}
	t := &layers.TCP{SrcPort: 40000, DstPort: 443, SYN: true, Window: 1024}
	t.SetNetworkLayerForChecksum(ip)
	return build(tb, ip, t, gopacket.Payload("hello"))
}

func udp6(tb testing.TB) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.IP(plainSrc6.AsSlice()), DstIP: net.IP(plainDst6.AsSlice())}
	u := &layers.UDP{SrcPort: 5353, DstPort: 53}
	u.SetNetworkLayerForChecksum(ip)
	return build(tb, ip, u, gopacket.Payload("query"))
}

// loopback prefixes ip with a 4-byte address family in the given byte order.
func loopback(order binary.AppendByteOrder, af uint32, ip []byte) []byte {
	return append(order.AppendUint32(nil, af), ip...)
}

// ppp frames ip as PPP with layers.PPP: with the 0xff 0x03 address and control if
// hdlc, the protocol compressed to one byte if compressed.
func ppp(tb testing.TB, typ layers.PPPType, hdlc, compressed bool, ip []byte) []byte {
	if compressed {
		typ |= 0x100 // layers.PPP's way of asking for one byte
	}
	return build(tb, &layers.PPP{PPPType: typ, HasPPTPHeader: hdlc}, gopacket.Payload(ip))
}

func ciscoHDLC(addr byte, etherType uint16, ip []byte) []byte {
	return append([]byte{addr, 0, byte(etherType >> 8), byte(etherType)}, ip...)
}

// linkCase is a frame of some link type and the IP packet Classify should find in
// it (nil: Classify refuses the frame).
type linkCase struct {
	name string
	link layers.LinkType
	data []byte
	ip   []byte
}

func linkCases(tb testing.TB) []linkCase {
	v4, v6 := tcp4(tb), udp6(tb)
	le, be := binary.LittleEndian, binary.BigEndian
	lcp := []byte{0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4}
	return []linkCase{
		{"null le v4", layers.LinkTypeNull, loopback(le, 2, v4), v4},
		{"null be v4", layers.LinkTypeNull, loopback(be, 2, v4), v4},
		{"null le v6 bsd", layers.LinkTypeNull, loopback(le, 24, v6), v6},
		{"null le v6 freebsd", layers.LinkTypeNull, loopback(le, 28, v6), v6},
		{"null le v6 darwin", layers.LinkTypeNull, loopback(le, 30, v6), v6},
		{"null be v6 darwin", layers.LinkTypeNull, loopback(be, 30, v6), v6},
		{"loop be v4", layers.LinkTypeLoop, loopback(be, 2, v4), v4},
		{"loop be v6", layers.LinkTypeLoop, loopback(be, 24, v6), v6},
		{"null le appletalk", layers.LinkTypeNull, loopback(le, 16, v4), nil},
		{"null le linux inet6", layers.LinkTypeNull, loopback(le, 10, v6), nil},
		{"null short", layers.LinkTypeNull, []byte{2, 0, 0}, nil},
		{"ppp v4", layers.LinkTypePPP, ppp(tb, layers.PPPTypeIPv4, false, false, v4), v4},
		{"ppp hdlc v4", layers.LinkTypePPP, ppp(tb, layers.PPPTypeIPv4, true, false, v4), v4},
		{"ppp compressed v6", layers.LinkTypePPP, ppp(tb, layers.PPPTypeIPv6, false, true, v6), v6},
		{"ppp hdlc compressed v6", layers.LinkTypePPP, ppp(tb, layers.PPPTypeIPv6, true, true, v6), v6},
		{"ppp lcp", layers.LinkTypePPP, lcp, nil},
		{"ppp short", layers.LinkTypePPP, []byte{0xff, 0x03, 0x00}, nil},
		{"ppp cisco address is not cisco", layers.LinkTypePPP, ciscoHDLC(0x0f, 0x0800, v4), nil},
		{"ppp_hdlc v4", layers.LinkTypePPP_HDLC, ppp(tb, layers.PPPTypeIPv4, true, false, v4), v4},
		{"ppp_hdlc compressed v6", layers.LinkTypePPP_HDLC, ppp(tb, layers.PPPTypeIPv6, true, true, v6), v6},
		{"ppp_hdlc cisco v4", layers.LinkTypePPP_HDLC, ciscoHDLC(0x0f, 0x0800, v4), v4},
		{"ppp_hdlc cisco multicast v6", layers.LinkTypePPP_HDLC, ciscoHDLC(0x8f, 0x86dd, v6), v6},
		{"ppp_hdlc cisco slarp", layers.LinkTypePPP_HDLC, ciscoHDLC(0x8f, 0x8035, make([]byte, 20)), nil},
		{"ppp_hdlc lcp", layers.LinkTypePPP_HDLC, lcp, nil},
		{"c_hdlc v4", layers.LinkTypeC_HDLC, ciscoHDLC(0x0f, 0x0800, v4), v4},
		{"c_hdlc v6", layers.LinkTypeC_HDLC, ciscoHDLC(0x8f, 0x86dd, v6), v6},
		{"c_hdlc short", layers.LinkTypeC_HDLC, []byte{0x0f, 0, 8}, nil},
	}
}

func TestClassifyLinkTypes(t *testing.T) {
	for _, c := range linkCases(t) {
		var s dataplane.Slot
		ok := Classify(&s, c.link, c.data)
		if ok != (c.ip != nil) {
			t.Errorf("%s: Classify = %v", c.name, ok)
			continue
		}
		if ok && (s.Encap != dataplane.EncapNone || !bytes.Equal(s.Buf, c.ip) || !bytes.Equal(s.Inner, c.ip) || s.Frame != nil) {
			t.Errorf("%s: encap %v buf % x inner % x", c.name, s.Encap, s.Buf, s.Inner)
		}
	}
	// A tunnel is still found behind these link types.
	vx := build(t, ipv4UDP(4789, []byte("tunnel payload"))...)
	for _, c := range []struct {
		link layers.LinkType
		data []byte
	}{
		{layers.LinkTypeNull, loopback(binary.BigEndian, 2, vx)},
		{layers.LinkTypePPP, ppp(t, layers.PPPTypeIPv4, true, false, vx)},
		{layers.LinkTypePPP_HDLC, ciscoHDLC(0x0f, 0x0800, vx)},
	} {
		var s dataplane.Slot
		if !Classify(&s, c.link, c.data) || s.Encap != dataplane.EncapVXLAN || string(s.Buf) != "tunnel payload" {
			t.Errorf("%v: vxlan not found: encap %v buf %q", c.link, s.Encap, s.Buf)
		}
	}
}

// TestRunLinkTypes writes a pcap per link type and a pcapng with all of them with
// pcapgo, reads them through the backend and decodes what reaches the pipeline.
func TestRunLinkTypes(t *testing.T) {
	cases := linkCases(t)
	byLink := map[layers.LinkType][]rec{}
	var all []rec
	var want [][]byte
	unreadable := 0
	for i, c := range cases {
		r := rec{c.link, t0.Add(time.Duration(i) * time.Millisecond), c.data}
		byLink[c.link] = append(byLink[c.link], r)
		all = append(all, r)
		if c.ip == nil {
			unreadable++
		}
	}
	dir := t.TempDir()
	var files []string
	for link, recs := range byLink {
		path := filepath.Join(dir, fmt.Sprintf("link%d.pcap", link))
		writePcap(t, path, false, recs...)
		files = append(files, path)
	}
	ng := filepath.Join(dir, "all.pcapng")
	writePcapng(t, ng, all...)
	// Each pcap's records in order, then the pcapng's.
	for _, path := range files {
		for _, c := range cases {
			if c.ip != nil && strings.HasSuffix(path, fmt.Sprintf("link%d.pcap", c.link)) {
				want = append(want, c.ip)
			}
		}
	}
	for _, c := range cases {
		if c.ip != nil {
			want = append(want, c.ip)
		}
	}

	b, x, err := run(t, Config{Files: append(files, ng)})
	if err != nil {
		t.Fatal(err)
	}
	if len(x.bufs) != len(want) {
		t.Fatalf("%d packets reached the pipeline, want %d", len(x.bufs), len(want))
	}
	for i, buf := range x.bufs {
		if !bytes.Equal(buf, want[i]) {
			t.Errorf("packet %d: % x, want % x", i, buf, want[i])
			continue
		}
		var p packet.Packet
		if err := p.Decode(buf); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		got := fmt.Sprintf("%d %v:%d > %v:%d", p.Proto, p.Src, p.SrcPort, p.Dst, p.DstPort)
		if got != "6 10.0.0.1:40000 > 10.0.0.2:443" && got != "17 2001:db8::1:5353 > 2001:db8::2:53" {
			t.Errorf("packet %d decodes to %s", i, got)
		}
		if x.encap[i] != dataplane.EncapNone {
			t.Errorf("packet %d: encap %v", i, x.encap[i])
		}
	}
	if b.Unreadable() != uint64(2*unreadable) || len(b.UnknownLinkTypes()) != 0 || b.Packets() != uint64(2*len(cases)) {
		t.Errorf("unreadable %d (want %d), unknown link types %v, packets %d", b.Unreadable(), 2*unreadable, b.UnknownLinkTypes(), b.Packets())
	}
}

// FuzzClassify: no frame of any link type makes Classify panic, and what it takes
// is a window of the frame.
func FuzzClassify(f *testing.F) {
	f.Fuzz(func(t *testing.T, link uint16, data []byte) {
		orig := bytes.Clone(data)
		var s dataplane.Slot
		ok := Classify(&s, layers.LinkType(link), data)
		if !bytes.Equal(data, orig) {
			t.Fatal("Classify changed the frame")
		}
		if !ok {
			return
		}
		if !ReadsLinkType(layers.LinkType(link)) {
			t.Fatalf("link type %d read, but ReadsLinkType is false", link)
		}
		if n := len(s.Buf); n > 0 {
			off := cap(data) - cap(s.Buf)
			if off < 0 || off+n > len(data) || &data[off] != &s.Buf[0] {
				t.Fatalf("Buf (%d bytes) is not within the frame", n)
			}
		}
		if s.Encap == dataplane.EncapNone && (s.Inner == nil) == (s.Frame == nil) {
			t.Fatalf("plain traffic with inner %d bytes, frame %d bytes", len(s.Inner), len(s.Frame))
		}
	})
}

var updateCorpus = os.Getenv("WEIR_UPDATE_CORPUS") != ""

// TestSeedCorpus checks that FuzzClassify's seeds (the link-type cases) are on
// disk; with WEIR_UPDATE_CORPUS=1 it writes them first.
func TestSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzClassify")
	if updateCorpus {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		vx := build(t, ipv4UDP(4789, []byte("tunnel payload"))...)
		seeds := append(linkCases(t),
			linkCase{name: "ethernet vxlan", link: layers.LinkTypeEthernet, data: build(t, append([]gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4)}, ipv4UDP(4789, []byte("x"))...)...)},
			linkCase{name: "raw vxlan", link: layers.LinkTypeRaw, data: vx},
			linkCase{name: "sll2 vxlan", link: layers.LinkTypeLinuxSLL2, data: append(binary.BigEndian.AppendUint16(nil, 0x0800), append(make([]byte, 18), vx...)...)},
		)
		for _, c := range seeds {
			data := fmt.Sprintf("go test fuzz v1\nuint16(%d)\n[]byte(%q)\n", c.link, c.data)
			if err := os.WriteFile(filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("seed corpus: %v", err)
	}
	if len(files) < len(linkCases(t)) {
		t.Errorf("%s: %d seeds, want at least %d", dir, len(files), len(linkCases(t)))
	}
}
