package defrag

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/dataplane/packet"
)

// udp4 builds an IPv4/UDP packet with a payload of n bytes.
func udp4(t testing.TB, n int, id uint16) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: id, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	udp := &layers.UDP{SrcPort: 1234, DstPort: 9999}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ip, udp, gopacket.Payload(pattern(n)))
}

// udp6 builds an IPv6 packet with a Hop-by-Hop and a Destination Options header
// before its UDP header, and a payload of n bytes.
func udp6(t testing.TB, n int) []byte {
	t.Helper()
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6HopByHop,
		SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}
	hbh := &layers.IPv6HopByHop{}
	hbh.NextHeader = layers.IPProtocolIPv6Destination
	hbh.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
	udp := &layers.UDP{SrcPort: 1234, DstPort: 9999}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	// gopacket cannot serialize Destination Options: write its 8 bytes (PadN) raw.
	dest := gopacket.Payload{byte(layers.IPProtocolUDP), 0, 1, 4, 0, 0, 0, 0}
	body := serialize(t, udp, gopacket.Payload(pattern(n)))
	return serialize(t, ip, hbh, append(dest, body...))
}

// udp6plain builds an IPv6/UDP packet with a payload of n bytes.
func udp6plain(t testing.TB, n int) []byte {
	t.Helper()
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
		SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::3")}
	udp := &layers.UDP{SrcPort: 1234, DstPort: 9999}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ip, udp, gopacket.Payload(pattern(n)))
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// frag4 splits an IPv4 packet's data at the offsets cuts (multiples of 8).
func frag4(pkt []byte, cuts ...int) [][]byte {
	hl := int(pkt[0]&0x0f) * 4
	data := pkt[hl:]
	var out [][]byte
	for i, from := range append([]int{0}, cuts...) {
		to := len(data)
		if i < len(cuts) {
			to = cuts[i]
		}
		f := append(append([]byte(nil), pkt[:hl]...), data[from:to]...)
		binary.BigEndian.PutUint16(f[2:4], uint16(len(f)))
		w := uint16(from / 8)
		if to < len(data) {
			w |= 0x2000
		}
		binary.BigEndian.PutUint16(f[6:8], w)
		f[10], f[11] = 0, 0
		binary.BigEndian.PutUint16(f[10:12], packet.FoldChecksum(packet.Checksum(0, f[:hl])))
		out = append(out, f)
	}
	return out
}

// frag6 splits an IPv6 packet whose unfragmentable part is unfrag bytes long (the
// byte at nhPos naming what follows it) at the offsets cuts.
func frag6(pkt []byte, unfrag, nhPos int, id uint32, cuts ...int) [][]byte {
	data := pkt[unfrag:]
	var out [][]byte
	for i, from := range append([]int{0}, cuts...) {
		to := len(data)
		if i < len(cuts) {
			to = cuts[i]
		}
		f := append([]byte(nil), pkt[:unfrag]...)
		f[nhPos] = 44
		fh := make([]byte, 8)
		fh[0] = pkt[nhPos]
		w := uint16(from)
		if to < len(data) {
			w |= 1
		}
		binary.BigEndian.PutUint16(fh[2:4], w)
		binary.BigEndian.PutUint32(fh[4:8], id)
		f = append(append(f, fh...), data[from:to]...)
		binary.BigEndian.PutUint16(f[4:6], uint16(len(f)-40))
		out = append(out, f)
	}
	return out
}

// permutations returns every order of 0..n-1.
func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int(nil), p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

func newTest() *Reassembler {
	return New(Config{MaxBytes: 1 << 20, MaxDatagrams: 16, Timeout: 30 * time.Second})
}

// reassemble adds frags in order and checks that only the last completes.
func reassemble(t *testing.T, r *Reassembler, frags [][]byte, order []int) []byte {
	t.Helper()
	dst := make([]byte, 0, 70000)
	for k, i := range order {
		whole, st := r.Add(dst, frags[i], int64(k))
		if k < len(order)-1 {
			if st != Held || whole != nil {
				t.Fatalf("fragment %d (%d of order %v): %v, want held", i, k, order, st)
			}
			continue
		}
		if st != Complete {
			t.Fatalf("last fragment %d of order %v: %v, want complete", i, order, st)
		}
		return whole
	}
	return nil
}

func TestRebuild(t *testing.T) {
	v4 := udp4(t, 3000, 77)
	v4tiny := udp4(t, 40, 78)
	v6 := udp6(t, 3000)
	const v6unfrag, v6nhPos = 40 + 8, 40 // IPv6 header and Hop-by-Hop; Destination Options travel fragmented
	v6both := udp6(t, 100)
	v6plain := udp6plain(t, 1000)
	tests := []struct {
		name  string
		pkt   []byte
		frags [][]byte
	}{
		{"v4 two", v4, frag4(v4, 1480)},
		{"v4 four uneven", v4, frag4(v4, 504, 1000, 2008)},
		{"v4 tiny first fragment cuts the UDP header", v4tiny, frag4(v4tiny, 8, 16)},
		{"v6 two", v6, frag6(v6, v6unfrag, v6nhPos, 9, 1232)},
		{"v6 four", v6, frag6(v6, v6unfrag, v6nhPos, 9, 8, 1000, 2000)},
		{"v6 both extension headers unfragmentable", v6both, frag6(v6both, v6unfrag+8, v6unfrag, 10, 48)},
		{"v6 no extension header before", v6plain, frag6(v6plain, 40, 6, 11, 504)},
	}
	for _, tt := range tests {
		for _, order := range permutations(len(tt.frags)) {
			t.Run(fmt.Sprintf("%s/%v", tt.name, order), func(t *testing.T) {
				r := newTest()
				whole := reassemble(t, r, tt.frags, order)
				if !bytes.Equal(whole, tt.pkt) {
					t.Fatalf("rebuilt packet differs from the original:\n got %x\nwant %x", whole, tt.pkt)
				}
				if r.Len() != 0 {
					t.Errorf("%d datagrams left after completion", r.Len())
				}
				checkGopacket(t, whole, len(tt.pkt))
			})
		}
	}
}

// checkGopacket decodes a rebuilt packet with gopacket and checks that it is whole:
// no decode failure, a UDP layer with the full payload and a valid checksum.
func checkGopacket(t *testing.T, pkt []byte, n int) {
	t.Helper()
	first := layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	if e := p.ErrorLayer(); e != nil {
		t.Fatalf("gopacket: %v", e.Error())
	}
	udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp == nil {
		t.Fatalf("gopacket found no UDP layer in %v", p)
	}
	if int(udp.Length) != len(udp.Contents)+len(udp.Payload) || !bytes.Equal(udp.Payload, pattern(len(udp.Payload))) {
		t.Fatalf("UDP length %d, payload %d bytes: not the datagram sent", udp.Length, len(udp.Payload))
	}
	if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		if int(ip.Length) != n || ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
			t.Fatalf("IPv4 length %d flags %v offset %d, want %d, no MF, 0", ip.Length, ip.Flags, ip.FragOffset, n)
		}
		if packet.FoldChecksum(packet.Checksum(0, pkt[:ip.IHL*4])) != 0 {
			t.Fatal("IPv4 header checksum is wrong")
		}
	}
	if p.Layer(layers.LayerTypeIPv6Fragment) != nil {
		t.Fatal("the rebuilt IPv6 packet still has a Fragment header")
	}
}

func TestOverlap(t *testing.T) {
	v4 := udp4(t, 64, 5)
	frags := frag4(v4, 24, 48) // data: 8 UDP + 64 payload = 72 bytes
	// A fragment at offset 16 of 16 bytes of 0xEE: half held, half new.
	evil := frag4(v4, 16, 32)[1]
	copy(evil[20:], bytes.Repeat([]byte{0xee}, 16))
	tests := []struct {
		name   string
		seq    [][]byte
		status []Status
		want   []byte // the rebuilt packet, when the last completes
	}{
		{"duplicate", [][]byte{frags[0], frags[0], frags[1], frags[2]}, []Status{Held, Overlap, Held, Complete}, v4},
		{"duplicate last", [][]byte{frags[2], frags[0], frags[2], frags[1]}, []Status{Held, Held, Overlap, Complete}, v4},
		{"first data wins", [][]byte{frags[0], evil, frags[1], frags[2]}, []Status{Held, Conflict, Conflict, Complete}, func() []byte {
			// evil's second half (offset 24..32) came before frags[1]: it stays.
			w := append([]byte(nil), v4...)
			copy(w[20+24:20+32], bytes.Repeat([]byte{0xee}, 8))
			return w
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTest()
			var whole []byte
			for i, f := range tt.seq {
				var st Status
				whole, st = r.Add(nil, f, 0)
				if st != tt.status[i] {
					t.Fatalf("fragment %d: %v, want %v", i, st, tt.status[i])
				}
			}
			if !bytes.Equal(whole, tt.want) {
				t.Fatalf("rebuilt %x, want %x", whole, tt.want)
			}
			if s := r.Stats(); s.Overlaps == 0 || s.Datagrams != 1 {
				t.Errorf("stats %+v: want overlaps counted and one datagram", s)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	v4 := udp4(t, 100, 9)
	frags := frag4(v4, 48)
	sec := int64(time.Second)
	r := newTest()
	if _, st := r.Add(nil, frags[0], 0); st != Held {
		t.Fatalf("first fragment: %v", st)
	}
	if n := r.Expire(30 * sec); n != 0 {
		t.Fatalf("Expire at the timeout dropped %d, want 0", n)
	}
	if n := r.Expire(31 * sec); n != 1 || r.Len() != 0 {
		t.Fatalf("Expire after the timeout dropped %d (%d left), want 1 (0 left)", n, r.Len())
	}
	// The rest alone does not complete it.
	if _, st := r.Add(nil, frags[1], 32*sec); st != Held {
		t.Fatalf("late fragment: %v, want held", st)
	}
	// A datagram timed out when its next fragment comes starts again.
	if _, st := r.Add(nil, frags[0], 70*sec); st != Timeout {
		t.Fatalf("fragment after the timeout: %v, want timeout", st)
	}
	whole, st := r.Add(nil, frags[1], 71*sec)
	if st != Complete || !bytes.Equal(whole, v4) {
		t.Fatalf("restarted datagram: %v", st)
	}
	if s := r.Stats(); s.Timeouts != 2 {
		t.Errorf("Timeouts = %d, want 2", s.Timeouts)
	}
}

func TestBounds(t *testing.T) {
	t.Run("datagrams", func(t *testing.T) {
		r := New(Config{MaxBytes: 1 << 20, MaxDatagrams: 2, Timeout: time.Second})
		for id := range uint16(3) {
			want := Held
			if id == 2 {
				want = NoRoom
			}
			if _, st := r.Add(nil, frag4(udp4(t, 100, id), 48)[0], 0); st != want {
				t.Fatalf("datagram %d: %v, want %v", id, st, want)
			}
		}
		// Once the others time out, there is room again.
		if _, st := r.Add(nil, frag4(udp4(t, 100, 3), 48)[0], int64(2*time.Second)); st != Held {
			t.Fatalf("after the timeout: %v, want held", st)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		r := New(Config{MaxBytes: 40000, MaxDatagrams: 8, Timeout: time.Second})
		// The least MaxBytes holds one datagram of the largest size.
		big := frag4(udp4(t, 65000, 1), 64000)
		if _, st := r.Add(nil, big[1], 0); st != Held {
			t.Fatalf("big datagram: %v, want held", st)
		}
		if _, st := r.Add(nil, frag4(udp4(t, 3000, 2), 1480)[1], 0); st != NoRoom {
			t.Fatalf("second datagram past MaxBytes: %v, want no room", st)
		}
		if s := r.Stats(); s.BufferBytes > uint64(hdrRoom+maxPayload) || s.NoRoom != 1 {
			t.Errorf("stats %+v: want at most %d bytes held and one no-room", s, hdrRoom+maxPayload)
		}
	})
}

func TestBad(t *testing.T) {
	v4 := udp4(t, 100, 1)
	v6 := udp6(t, 100)
	mod := func(b []byte, f func([]byte)) []byte {
		b = append([]byte(nil), b...)
		f(b)
		return b
	}
	frag := frag4(v4, 48)[0]
	frag6first := frag6(v6, 48, 40, 1, 48)[0]
	tests := []struct {
		name string
		pkt  []byte
		want Status
	}{
		{"empty", nil, Malformed},
		{"version 5", []byte{0x50, 0, 0, 0}, Malformed},
		{"short IPv4", v4[:19], Malformed},
		{"IHL below 5", mod(frag, func(b []byte) { b[0] = 0x44 }), Malformed},
		{"total length past the packet", frag[:40], Malformed},
		{"not a fragment (IPv4)", v4, NotFragment},
		{"middle fragment not a multiple of 8", frag4(v4, 44)[0], Malformed},
		{"empty fragment with MF", mod(frag[:20], func(b []byte) { binary.BigEndian.PutUint16(b[2:4], 20) }), Malformed},
		{"past 65535", mod(frag4(v4, 48)[1], func(b []byte) { binary.BigEndian.PutUint16(b[6:8], 0x1fff) }), TooBig},
		{"short IPv6", v6[:39], Malformed},
		{"IPv6 payload length past the packet", v6[:60], Malformed},
		{"not a fragment (IPv6)", v6, NotFragment},
		{"IPv6 extension header past the packet", mod(frag6first, func(b []byte) { b[41] = 200 }), Malformed},
		{"IPv6 Fragment header cut", mod(frag6first[:52], func(b []byte) { binary.BigEndian.PutUint16(b[4:6], 12) }), Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTest()
			whole, st := r.Add(nil, tt.pkt, 0)
			if st != tt.want || whole != nil {
				t.Errorf("got %v (%d bytes), want %v", st, len(whole), tt.want)
			}
			if r.Len() != 0 {
				t.Errorf("%d datagrams held after a bad packet", r.Len())
			}
		})
	}
}

func TestContradictions(t *testing.T) {
	v4 := udp4(t, 100, 1)
	frags := frag4(v4, 48, 96) // data 108 bytes
	shortLast := frag4(udp4(t, 60, 1), 48)[1]
	r := newTest()
	for i, step := range []struct {
		pkt  []byte
		want Status
	}{
		{frags[1], Held},
		{shortLast, Malformed}, // ends before data already held
		{frags[2], Held},
		{frag4(udp4(t, 200, 1), 48, 112)[1], Malformed}, // more data past the end
		{frags[0], Complete},
	} {
		if _, st := r.Add(nil, step.pkt, 0); st != step.want {
			t.Fatalf("step %d: %v, want %v", i, st, step.want)
		}
	}
}

func TestAtomicFragment(t *testing.T) {
	v6 := udp6(t, 100)
	f := frag6(v6, 48, 40, 5)[0] // offset 0, M 0
	whole, st := newTest().Add(nil, f, 0)
	if st != Complete || !bytes.Equal(whole, v6) {
		t.Fatalf("atomic fragment: %v, rebuilt %x, want %x", st, whole, v6)
	}
}

func TestConcurrent(t *testing.T) {
	r := New(Config{MaxBytes: 1 << 22, MaxDatagrams: 64, Timeout: time.Minute})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			dst := make([]byte, 0, 70000)
			for i := range 50 {
				pkt := udp4(t, 2000, uint16(g*1000+i))
				frags := frag4(pkt, 1480)
				r.Add(dst, frags[1], 0)
				whole, st := r.Add(dst, frags[0], 0)
				if st != Complete || !bytes.Equal(whole, pkt) {
					t.Errorf("goroutine %d datagram %d: %v", g, i, st)
					return
				}
			}
		})
	}
	wg.Wait()
	if s := r.Stats(); s.Datagrams != 200 {
		t.Errorf("%d datagrams completed, want 200", s.Datagrams)
	}
}

func TestAddAllocs(t *testing.T) {
	r := newTest()
	v4 := frag4(udp4(t, 3000, 1), 1480)
	v6 := frag6(udp6(t, 3000), 48, 40, 1, 1232)
	dst := make([]byte, 0, 70000)
	step := func() {
		r.Add(dst, v4[1], 0)
		r.Add(dst, v4[0], 0)
		r.Add(dst, v6[0], 0)
		r.Add(dst, v6[1], 0)
	}
	step() // grows the buffers once
	if a := testing.AllocsPerRun(100, step); a != 0 {
		t.Errorf("Add allocates %v times per run in steady state, want 0", a)
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct{ in, want Config }{
		{Config{}, Config{DefaultMaxBytes, DefaultMaxDatagrams, DefaultTimeout}},
		{Config{-1, -1, -1}, Config{DefaultMaxBytes, DefaultMaxDatagrams, DefaultTimeout}},
		{Config{1000, 3, time.Second}, Config{hdrRoom + maxPayload, 3, time.Second}},
		{Config{1 << 24, 5, time.Minute}, Config{1 << 24, 5, time.Minute}},
	}
	for _, tt := range tests {
		if got := New(tt.in).Config(); got != tt.want {
			t.Errorf("New(%+v).Config() = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestStatusString(t *testing.T) {
	for s := Status(0); s <= numStatus; s++ {
		if s.String() == "" || (s < numStatus && s.String() == "unknown") {
			t.Errorf("Status(%d) has no name", s)
		}
	}
}

func BenchmarkAdd(b *testing.B) {
	r := newTest()
	pkt := udp4(b, 8000, 1)
	frags := frag4(pkt, 1480, 2960, 4440, 5920, 7400)
	dst := make([]byte, 0, 70000)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range frags {
			r.Add(dst, f, 0)
		}
	}
}

func TestWordMask(t *testing.T) {
	tests := []struct {
		w, first, last int
		want           uint64
	}{
		{0, 0, 0, 1},
		{0, 0, 63, ^uint64(0)},
		{0, 3, 5, 0b111000},
		{0, 60, 200, 0xf << 60},
		{1, 60, 65, 0b11},
		{1, 0, 200, ^uint64(0)},
		{2, 130, 130, 1 << 2},
	}
	for _, tt := range tests {
		if got := wordMask(tt.w, tt.first, tt.last); got != tt.want {
			t.Errorf("wordMask(%d, %d, %d) = %#x, want %#x", tt.w, tt.first, tt.last, got, tt.want)
		}
	}
}
