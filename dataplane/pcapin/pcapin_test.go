package pcapin

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"weir/dataplane"
	"weir/geneve"
)

var (
	outerSrc = netip.MustParseAddr("10.0.0.1")
	outerDst = netip.MustParseAddr("10.0.0.2")
	t0       = time.Unix(1_700_000_000, 0)
)

// build serializes layers with lengths and checksums fixed.
func build(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	for _, l := range ls {
		if u, ok := l.(*layers.UDP); ok {
			for _, n := range ls {
				if ip, ok := n.(gopacket.NetworkLayer); ok {
					u.SetNetworkLayerForChecksum(ip)
				}
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

func ipv4UDP(dport uint16, payload []byte) []gopacket.SerializableLayer {
	return []gopacket.SerializableLayer{
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP(outerSrc.AsSlice()), DstIP: net.IP(outerDst.AsSlice())},
		&layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(dport)},
		gopacket.Payload(payload),
	}
}

func eth(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: typ}
}

func TestClassify(t *testing.T) {
	tunnel := []byte("tunnel payload")
	vxFrame := build(t, append([]gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4)}, ipv4UDP(4789, tunnel)...)...)
	gnFrame := build(t, append([]gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4)}, ipv4UDP(6081, tunnel)...)...)
	dnsFrame := build(t, append([]gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4)}, ipv4UDP(53, tunnel)...)...)
	vxIP := build(t, ipv4UDP(4789, tunnel)...)
	dnsIP := build(t, ipv4UDP(53, tunnel)...)
	arp := build(t, eth(layers.EthernetTypeARP), gopacket.Payload(make([]byte, 28)))
	sll := func(proto uint16, ip []byte) []byte {
		h := make([]byte, 16)
		binary.BigEndian.PutUint16(h[14:], proto)
		return append(h, ip...)
	}
	sll2 := func(proto uint16, ip []byte) []byte {
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], proto)
		return append(h, ip...)
	}
	null := append([]byte{2, 0, 0, 0}, vxIP...)
	outer := geneve.Outer{Src: outerSrc, Dst: outerDst, SrcPort: 40000, DstPort: 4789}
	for _, c := range []struct {
		name  string
		link  layers.LinkType
		data  []byte
		ok    bool
		encap dataplane.Encap
		buf   []byte // Buf; Frame or Inner is the same for plain traffic
		frame bool   // plain traffic with an Ethernet frame
	}{
		{"ethernet vxlan", layers.LinkTypeEthernet, vxFrame, true, dataplane.EncapVXLAN, tunnel, false},
		{"ethernet geneve", layers.LinkTypeEthernet, gnFrame, true, dataplane.EncapGeneve, tunnel, false},
		{"ethernet plain udp", layers.LinkTypeEthernet, dnsFrame, true, dataplane.EncapNone, dnsFrame, true},
		{"ethernet arp", layers.LinkTypeEthernet, arp, true, dataplane.EncapNone, arp, true},
		{"raw vxlan", layers.LinkTypeRaw, vxIP, true, dataplane.EncapVXLAN, tunnel, false},
		{"raw 12 plain", 12, dnsIP, true, dataplane.EncapNone, dnsIP, false},
		{"raw ipv4 228", 228, vxIP, true, dataplane.EncapVXLAN, tunnel, false},
		{"sll vxlan", layers.LinkTypeLinuxSLL, sll(0x0800, vxIP), true, dataplane.EncapVXLAN, tunnel, false},
		{"sll plain", layers.LinkTypeLinuxSLL, sll(0x0800, dnsIP), true, dataplane.EncapNone, dnsIP, false},
		{"sll arp", layers.LinkTypeLinuxSLL, sll(0x0806, make([]byte, 28)), false, 0, nil, false},
		{"sll short", layers.LinkTypeLinuxSLL, make([]byte, 15), false, 0, nil, false},
		{"sll2 vxlan", layers.LinkTypeLinuxSLL2, sll2(0x0800, vxIP), true, dataplane.EncapVXLAN, tunnel, false},
		{"sll2 short", layers.LinkTypeLinuxSLL2, make([]byte, 19), false, 0, nil, false},
		{"null vxlan", layers.LinkTypeNull, null, true, dataplane.EncapVXLAN, tunnel, false},
		{"loop short", layers.LinkTypeLoop, []byte{2, 0}, false, 0, nil, false},
		{"unknown link", layers.LinkTypeIEEE802_11, vxFrame, false, 0, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s dataplane.Slot
			ok := Classify(&s, c.link, c.data)
			if ok != c.ok {
				t.Fatalf("Classify = %v, want %v", ok, c.ok)
			}
			if !ok {
				return
			}
			if s.Encap != c.encap || !bytes.Equal(s.Buf, c.buf) {
				t.Fatalf("encap %v buf % x, want %v % x", s.Encap, s.Buf, c.encap, c.buf)
			}
			switch {
			case c.encap != dataplane.EncapNone:
				if s.Outer.Src != outer.Src || s.Outer.Dst != outer.Dst || s.Outer.SrcPort != 40000 || s.Outer.DstPort != uint16(map[dataplane.Encap]int{dataplane.EncapVXLAN: 4789, dataplane.EncapGeneve: 6081}[c.encap]) {
					t.Errorf("outer %+v", s.Outer)
				}
			case c.frame:
				if !bytes.Equal(s.Frame, c.buf) || s.Inner != nil {
					t.Errorf("frame % x inner % x", s.Frame, s.Inner)
				}
			default:
				if !bytes.Equal(s.Inner, c.buf) || s.Frame != nil {
					t.Errorf("inner % x frame % x", s.Inner, s.Frame)
				}
			}
		})
	}
}

// seen is a stage that records what each batch holds.
type seen struct {
	now   []int64
	encap []dataplane.Encap
	bufs  [][]byte
	n     []int
}

func (x *seen) Process(_ *dataplane.Worker, b *dataplane.Batch) {
	x.n = append(x.n, b.N)
	x.now = append(x.now, b.Now)
	for _, s := range b.Slots[:b.N] {
		x.encap = append(x.encap, s.Encap)
		x.bufs = append(x.bufs, bytes.Clone(s.Buf))
	}
}

// rec is one record to write.
type rec struct {
	link layers.LinkType
	ts   time.Time
	data []byte
}

func writePcap(tb testing.TB, path string, nano bool, recs ...rec) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var w *pcapgo.Writer
	if nano {
		w = pcapgo.NewWriterNanos(f)
	} else {
		w = pcapgo.NewWriter(f)
	}
	if err := w.WriteFileHeader(65535, recs[0].link); err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: r.ts, CaptureLength: len(r.data), Length: len(r.data)}, r.data); err != nil {
			tb.Fatal(err)
		}
	}
}

func writePcapng(tb testing.TB, path string, recs ...rec) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	w, err := pcapgo.NewNgWriterInterface(f, pcapgo.NgInterface{LinkType: recs[0].link, SnapLength: 65535, TimestampResolution: 9}, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		tb.Fatal(err)
	}
	ifaces := map[layers.LinkType]int{recs[0].link: 0}
	for _, r := range recs {
		id, ok := ifaces[r.link]
		if !ok {
			if id, err = w.AddInterface(pcapgo.NgInterface{LinkType: r.link, SnapLength: 65535, TimestampResolution: 9}); err != nil {
				tb.Fatal(err)
			}
			ifaces[r.link] = id
		}
		ci := gopacket.CaptureInfo{Timestamp: r.ts, CaptureLength: len(r.data), Length: len(r.data), InterfaceIndex: id}
		if err := w.WritePacket(ci, r.data); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
}

func run(tb testing.TB, cfg Config) (*Backend, *seen, error) {
	tb.Helper()
	x := &seen{}
	p := dataplane.NewPipeline(x)
	b := New(cfg)
	ready := false
	err := b.Run(context.Background(), p, func() { ready = true })
	if !ready {
		tb.Error("ready not called")
	}
	return b, x, err
}

// TestRunFiles reads a pcap (micro- and nanosecond, plain and gzipped) and a pcapng
// with two link types through the backend: every packet reaches the pipeline alone,
// with its own capture time, and OnTime hears each time in order.
func TestRunFiles(t *testing.T) {
	tunnel := []byte("tunnel payload")
	vxFrame := build(t, append([]gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4)}, ipv4UDP(4789, tunnel)...)...)
	vxIP := build(t, ipv4UDP(6081, tunnel)...)
	dir := t.TempDir()
	recs := []rec{
		{layers.LinkTypeEthernet, t0, vxFrame},
		{layers.LinkTypeEthernet, t0.Add(1500 * time.Microsecond), vxFrame},
		{layers.LinkTypeEthernet, t0.Add(2 * time.Second), vxFrame},
	}
	micro, nano, ng, gz := filepath.Join(dir, "micro.pcap"), filepath.Join(dir, "nano.pcap"), filepath.Join(dir, "mixed.pcapng"), filepath.Join(dir, "micro.pcap.gz")
	writePcap(t, micro, false, recs...)
	writePcap(t, nano, true, rec{layers.LinkTypeRaw, t0.Add(3*time.Second + 7), vxIP})
	writePcapng(t, ng,
		rec{layers.LinkTypeEthernet, t0.Add(4 * time.Second), vxFrame},
		rec{layers.LinkTypeRaw, t0.Add(5*time.Second + 9), vxIP},
		rec{layers.LinkTypeIEEE802_11, t0.Add(6 * time.Second), vxFrame}, // unreadable
	)
	raw, _ := os.ReadFile(micro)
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(raw)
	zw.Close()
	if err := os.WriteFile(gz, zb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	var times []int64
	var progress bytes.Buffer
	b, x, err := run(t, Config{Files: []string{micro, nano, ng}, OnTime: func(now int64) { times = append(times, now) }, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{t0.UnixNano(), t0.Add(1500 * time.Microsecond).UnixNano(), t0.Add(2 * time.Second).UnixNano(),
		t0.Add(3*time.Second + 7).UnixNano(), t0.Add(4 * time.Second).UnixNano(), t0.Add(5*time.Second + 9).UnixNano()}
	if fmt.Sprint(times) != fmt.Sprint(want) || fmt.Sprint(x.now) != fmt.Sprint(want) {
		t.Errorf("OnTime %v, batch times %v; want %v", times, x.now, want)
	}
	for i, n := range x.n {
		if n != 1 {
			t.Errorf("batch %d holds %d packets", i, n)
		}
	}
	wantEncap := []dataplane.Encap{dataplane.EncapVXLAN, dataplane.EncapVXLAN, dataplane.EncapVXLAN, dataplane.EncapGeneve, dataplane.EncapVXLAN, dataplane.EncapGeneve}
	if fmt.Sprint(x.encap) != fmt.Sprint(wantEncap) {
		t.Errorf("encaps %v, want %v", x.encap, wantEncap)
	}
	for i, buf := range x.bufs {
		if !bytes.Equal(buf, tunnel) {
			t.Errorf("packet %d: buf %q", i, buf)
		}
	}
	if b.Unreadable() != 1 || b.Packets() != 7 || b.Last() != want[len(want)-1] {
		t.Errorf("unreadable %d packets %d last %d", b.Unreadable(), b.Packets(), b.Last())
	}
	if got := progress.String(); strings.Count(got, "done") != 3 {
		t.Errorf("progress %q", got)
	}

	// The same records from the gzipped copy.
	_, x, err = run(t, Config{Files: []string{gz}})
	if err != nil || len(x.now) != 3 || x.now[1] != want[1] {
		t.Errorf("gzip: %v, times %v", err, x.now)
	}
}

// TestBigEndianPcap reads a pcap written big-endian, with nanosecond timestamps.
func TestBigEndianPcap(t *testing.T) {
	data := build(t, ipv4UDP(4789, []byte("x"))...)
	var f bytes.Buffer
	be := binary.BigEndian
	h := make([]byte, 24)
	be.PutUint32(h[0:], magicNano)
	be.PutUint16(h[4:], 2)
	be.PutUint16(h[6:], 4)
	be.PutUint32(h[16:], 65535)
	be.PutUint32(h[20:], uint32(layers.LinkTypeRaw))
	f.Write(h)
	r := make([]byte, 16)
	be.PutUint32(r[0:], 1_700_000_000)
	be.PutUint32(r[4:], 123456789)
	be.PutUint32(r[8:], uint32(len(data)))
	be.PutUint32(r[12:], uint32(len(data)))
	f.Write(r)
	f.Write(data)
	path := filepath.Join(t.TempDir(), "be.pcap")
	os.WriteFile(path, f.Bytes(), 0o644)
	_, x, err := run(t, Config{Files: []string{path}})
	if err != nil || len(x.now) != 1 || x.now[0] != 1_700_000_000_123456789 || x.encap[0] != dataplane.EncapVXLAN {
		t.Fatalf("%v: times %v encaps %v", err, x.now, x.encap)
	}
}

// TestHugeRecord: a record header that claims 4 GiB is refused before anything is
// allocated for it, naming the file and the packet.
func TestHugeRecord(t *testing.T) {
	frame := build(t, ipv4UDP(53, []byte("ok"))...)
	path := filepath.Join(t.TempDir(), "huge.pcap")
	writePcap(t, path, false, rec{layers.LinkTypeRaw, t0, frame}, rec{layers.LinkTypeRaw, t0, frame})
	f, _ := os.ReadFile(path)
	// Second record's captured and original lengths.
	off := 24 + 16 + len(frame)
	binary.LittleEndian.PutUint32(f[off+8:], 0xffffffff)
	binary.LittleEndian.PutUint32(f[off+12:], 0xffffffff)
	os.WriteFile(path, f, 0o644)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, x, err := run(t, Config{Files: []string{path}})
	runtime.ReadMemStats(&after)
	want := path + ": packet 2: captured length 4294967295 exceeds the maximum 262144"
	if err == nil || err.Error() != want || !errors.Is(err, ErrTooLong) {
		t.Fatalf("error %v, want %s", err, want)
	}
	if len(x.now) != 1 {
		t.Errorf("%d packets processed before the bad one, want 1", len(x.now))
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 10<<20 {
		t.Errorf("allocated %d bytes", d)
	}
}

// TestHugePcapngBlocks: pcapng blocks or packets over the limits are refused before
// pcapgo reads them.
func TestHugePcapngBlocks(t *testing.T) {
	frame := build(t, ipv4UDP(53, []byte("ok"))...)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pcapng")
	writePcapng(t, good, rec{layers.LinkTypeRaw, t0, frame}, rec{layers.LinkTypeRaw, t0, frame})
	f, _ := os.ReadFile(good)
	// Find the second enhanced packet block.
	var epbs []int
	for off := 0; off+8 <= len(f); {
		typ, l := binary.LittleEndian.Uint32(f[off:]), int(binary.LittleEndian.Uint32(f[off+4:]))
		if typ == ngEnhancedPacket {
			epbs = append(epbs, off)
		}
		off += l
	}
	if len(epbs) != 2 {
		t.Fatalf("%d enhanced packet blocks", len(epbs))
	}
	second := epbs[1]
	for _, c := range []struct {
		name  string
		patch func(b []byte)
		want  string
	}{
		{"caplen", func(b []byte) { binary.LittleEndian.PutUint32(b[second+20:], 0xffffffff) },
			"packet 2: captured length 4294967295 exceeds the maximum 262144"},
		{"block length", func(b []byte) { binary.LittleEndian.PutUint32(b[second+4:], 0xfffffff0) },
			"packet 2: pcapng block length 4294967280 exceeds the maximum 16777216"},
		{"block length not a multiple of 4", func(b []byte) { binary.LittleEndian.PutUint32(b[second+4:], 0x41) },
			"packet 2: pcapng block length 65 is not valid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(f)
			c.patch(b)
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".pcapng")
			os.WriteFile(path, b, 0o644)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, x, err := run(t, Config{Files: []string{path}})
			runtime.ReadMemStats(&after)
			if err == nil || err.Error() != path+": "+c.want {
				t.Fatalf("error %v, want %s", err, c.want)
			}
			if len(x.now) != 1 {
				t.Errorf("%d packets processed before the bad one, want 1", len(x.now))
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 10<<20 {
				t.Errorf("allocated %d bytes", d)
			}
		})
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	frame := build(t, ipv4UDP(53, []byte("ok"))...)
	good := filepath.Join(dir, "good.pcap")
	writePcap(t, good, false, rec{layers.LinkTypeRaw, t0, frame})
	f, _ := os.ReadFile(good)
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a capture file: EOF"},
		{"text", []byte("hello, world\n"), "not a capture file: magic 0x6c6c6568"},
		{"short header", f[:20], "pcap file header: unexpected EOF"},
		{"record header cut", f[:24+10], "packet 1: record header cut short: unexpected EOF"},
		{"record cut", f[:len(f)-1], "packet 1: record cut short: unexpected EOF"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
		os.WriteFile(path, c.data, 0o644)
		_, _, err := run(t, Config{Files: []string{path}})
		if err == nil || err.Error() != path+": "+c.want {
			t.Errorf("%s: error %v, want %s", c.name, err, c.want)
		}
	}
	if _, _, err := run(t, Config{Files: []string{filepath.Join(dir, "missing")}}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestRunCancelled(t *testing.T) {
	frame := build(t, ipv4UDP(53, []byte("ok"))...)
	path := filepath.Join(t.TempDir(), "a.pcap")
	writePcap(t, path, false, rec{layers.LinkTypeRaw, t0, frame})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(Config{Files: []string{path}}).Run(ctx, dataplane.NewPipeline(), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel: %v", err)
	}
}

// TestClock: expiry once per second of capture time, intervals every Every,
// realigned after a gap rather than repeated for each interval missed.
func TestClock(t *testing.T) {
	var expired, intervals []int64
	c := &Clock{Expire: func(n int64) { expired = append(expired, n) }, Interval: func(n int64) { intervals = append(intervals, n) }, Every: 10 * time.Second}
	s := int64(time.Second)
	for _, ts := range []int64{100 * s, 100*s + s/2, 101 * s, 101*s + 1, 110 * s, 155 * s, 160 * s, 165 * s} {
		c.Tick(ts)
	}
	if want := fmt.Sprint([]int64{101 * s, 110 * s, 155 * s, 160 * s, 165 * s}); fmt.Sprint(expired) != want {
		t.Errorf("expired at %v, want %v", expired, want)
	}
	// Intervals due at 110, then 120 (missed until 155), next 160, 170.
	if want := fmt.Sprint([]int64{110 * s, 155 * s, 160 * s}); fmt.Sprint(intervals) != want {
		t.Errorf("intervals at %v, want %v", intervals, want)
	}
	// No intervals configured: only expiry.
	c = &Clock{Expire: func(int64) {}, Interval: func(int64) { t.Error("interval without Every") }}
	c.Tick(s)
	c.Tick(100 * s)
}

// TestName says the backend.
func TestName(t *testing.T) {
	var b dataplane.Backend = New(Config{Files: []string{"a", "b"}})
	if !strings.HasPrefix(b.Name(), "pcapin") {
		t.Errorf("name %q", b.Name())
	}
}
