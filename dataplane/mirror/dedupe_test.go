package mirror

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// v4 builds an IPv4/TCP-ish packet with a valid header checksum.
func v4(ttl byte, id uint16, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], 0x4000) // DF
	b[8], b[9] = ttl, 6
	copy(b[12:16], []byte{10, 0, 1, 5})
	copy(b[16:20], []byte{192, 0, 2, 10})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	copy(b[20:], payload)
	return b
}

// v6 builds an IPv6 packet.
func v6(hop byte, payload []byte) []byte {
	b := make([]byte, 40+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6], b[7] = 17, hop
	a, c := netip.MustParseAddr("2001:db8::5").As16(), netip.MustParseAddr("2001:db8:1::10").As16()
	copy(b[8:24], a[:])
	copy(b[24:40], c[:])
	copy(b[40:], payload)
	return b
}

func payload(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i)
	}
	return p
}

var (
	srcA = netip.MustParseAddr("172.31.0.238") // the client's ENI
	srcB = netip.MustParseAddr("172.31.0.17")  // the server's ENI
	srcC = netip.MustParseAddr("2001:db8:ffff::1")
)

const ms = int64(time.Millisecond)

func TestDedupe(t *testing.T) {
	pk := v4(64, 1, payload(200, 0))
	type arrival struct {
		ip   []byte
		src  netip.Addr
		at   int64 // ns
		want bool
	}
	change := func(b []byte, i int, v byte) []byte { c := append([]byte(nil), b...); c[i] = v; return c }
	p6 := v6(64, payload(60, 3))
	for _, tc := range []struct {
		name     string
		window   time.Duration
		arrivals []arrival
	}{
		{"second copy from another source within the window", 10 * time.Millisecond, []arrival{
			{pk, srcA, 0, false}, {pk, srcB, 2 * ms, true},
		}},
		{"every later copy is a duplicate", 10 * time.Millisecond, []arrival{
			{pk, srcA, 0, false}, {pk, srcB, 1 * ms, true}, {pk, srcC, 2 * ms, true},
		}},
		{"copy after the window is not", 10 * time.Millisecond, []arrival{
			{pk, srcA, 0, false}, {pk, srcB, 11 * ms, false},
		}},
		{"same source twice is a retransmission", 10 * time.Millisecond, []arrival{
			{pk, srcA, 0, false}, {pk, srcA, 1 * ms, false},
		}},
		{"retransmission refreshes; its copy is a duplicate", 10 * time.Millisecond, []arrival{
			{pk, srcA, 0, false}, {pk, srcA, 8 * ms, false}, {pk, srcB, 15 * ms, true},
		}},
		{"copy racing ahead on a worker whose clock is behind", 10 * time.Millisecond, []arrival{
			{pk, srcA, 100 * ms, false}, {pk, srcB, 99 * ms, true},
		}},
		{"IPv4 TTL and checksum ignored", 10 * time.Millisecond, []arrival{
			{pk, srcA, 0, false}, {v4(63, 1, payload(200, 0)), srcB, 1 * ms, true},
		}},
		{"IPv6 hop limit ignored", 10 * time.Millisecond, []arrival{
			{p6, srcA, 0, false}, {v6(1, payload(60, 3)), srcB, 1 * ms, true},
		}},
		{"link padding ignored", 10 * time.Millisecond, []arrival{
			{v4(64, 9, nil), srcA, 0, false}, {append(v4(64, 9, nil), 0, 0, 0, 0, 0, 0), srcB, 1 * ms, true},
		}},
		{"copy truncated past 128 bytes still matches", 10 * time.Millisecond, []arrival{
			{pk, srcA, 0, false}, {pk[:150], srcB, 1 * ms, true},
		}},
		{"different IP ID: different packets", 10 * time.Millisecond, []arrival{
			{pk, srcA, 0, false}, {v4(64, 2, payload(200, 0)), srcB, 1 * ms, false},
		}},
		{"different payload byte: different packets", 10 * time.Millisecond, []arrival{
			{pk, srcA, 0, false}, {change(pk, 127, 0xee), srcB, 1 * ms, false},
		}},
		{"different length: different packets", 10 * time.Millisecond, []arrival{
			{pk, srcA, 0, false}, {v4(64, 1, payload(201, 0)), srcB, 1 * ms, false},
		}},
		{"different source address in the header", 10 * time.Millisecond, []arrival{
			{pk, srcA, 0, false}, {change(pk, 15, 6), srcB, 1 * ms, false},
		}},
		{"IPv4 and IPv6 not confused", 10 * time.Millisecond, []arrival{
			{pk, srcA, 0, false}, {p6, srcB, 1 * ms, false}, {pk, srcB, 2 * ms, true}, {p6, srcA, 3 * ms, true},
		}},
		{"disabled", 0, []arrival{
			{pk, srcA, 0, false}, {pk, srcB, 1, false},
		}},
		{"empty and tiny packets", time.Second, []arrival{
			{nil, srcA, 0, false}, {nil, srcB, 1, true}, {[]byte{0x45}, srcA, 2, false}, {[]byte{0x45}, srcB, 3, true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDedupe(tc.window, 1024)
			const base = int64(1_700_000_000) * int64(time.Second)
			for i, a := range tc.arrivals {
				if got := d.Seen(a.ip, a.src, base+a.at); got != a.want {
					t.Errorf("arrival %d (from %s at %v): Seen = %v, want %v", i, a.src, time.Duration(a.at), got, a.want)
				}
			}
		})
	}
	var nilD *Dedupe
	if nilD.Seen(pk, srcA, 0) || nilD.Seen(pk, srcB, 0) {
		t.Error("nil Dedupe saw something")
	}
}

// TestDedupeBytesPast128 documents a limit: packets that differ only past the
// first 128 bytes (with equal lengths) are taken for copies.
func TestDedupeBytesPast128(t *testing.T) {
	d := NewDedupe(time.Second, 1024)
	a := v4(64, 1, payload(300, 0))
	b := append([]byte(nil), a...)
	b[200] ^= 0xff
	d.Seen(a, srcA, 0)
	if !d.Seen(b, srcB, 1) {
		t.Error("bytes past 128 were compared: update the doc")
	}
}

func TestNewDedupe(t *testing.T) {
	for _, tc := range []struct {
		window time.Duration
		slots  int
		n      int
		w      uint64
	}{
		{time.Millisecond, 0, 64, 245}, // 1ms / 4.096µs rounded up
		{time.Nanosecond, 100, 128, 1}, // at least one unit
		{time.Hour, 1 << 20, 1 << 20, maxWindow},
		{-time.Second, 64, 64, 0},
	} {
		d := NewDedupe(tc.window, tc.slots)
		if len(d.slots) != tc.n || d.window != tc.w || d.mask != uint64(tc.n/bucketSlots-1) {
			t.Errorf("NewDedupe(%v, %d): %d slots, window %d, mask %d", tc.window, tc.slots, len(d.slots), d.window, d.mask)
		}
	}
}

// TestDedupeLoad records 10000 distinct packets from one source, then checks that
// nearly all their copies are caught and that no new packet is taken for a copy.
func TestDedupeLoad(t *testing.T) {
	const n = 10000
	d := NewDedupe(time.Second, 1<<16)
	pkts := make([][]byte, n)
	for i := range pkts {
		pkts[i] = v4(64, uint16(i), payload(40, byte(i>>16)))
	}
	for i, p := range pkts {
		if d.Seen(p, srcA, int64(i)) {
			t.Fatalf("packet %d: first sight is a duplicate", i)
		}
	}
	caught := 0
	for i, p := range pkts {
		if d.Seen(p, srcB, int64(n+i)) {
			caught++
		}
	}
	if caught < n*995/1000 {
		t.Errorf("caught %d of %d copies", caught, n)
	}
	for i := range n {
		if d.Seen(v4(64, uint16(i), payload(40, 0x80)), srcB, int64(2*n+i)) {
			t.Errorf("new packet %d taken for a copy", i)
		}
	}
}

// TestDedupeConcurrent has workers see the same packets from different sources at
// once; run with -race. Every packet passes at least once; most copies are caught.
func TestDedupeConcurrent(t *testing.T) {
	const n, workers = 2000, 4
	d := NewDedupe(time.Second, 1<<14)
	pkts := make([][]byte, n)
	for i := range pkts {
		pkts[i] = v4(64, uint16(i), payload(60, 1))
	}
	passed := make([]atomic.Int32, n)
	var wg sync.WaitGroup
	for w := range workers {
		src := netip.AddrFrom4([4]byte{172, 31, 0, byte(w + 1)})
		wg.Go(func() {
			for k := range n {
				i := (k + w*n/workers) % n
				if !d.Seen(pkts[i], src, time.Now().UnixNano()) {
					passed[i].Add(1)
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for i := range passed {
		c := int(passed[i].Load())
		if c == 0 {
			t.Errorf("packet %d never passed", i)
		}
		total += c
	}
	if total > n*workers/2 {
		t.Errorf("%d of %d arrivals passed; want about %d", total, n*workers, n)
	}
	t.Logf("%d of %d arrivals passed (ideal %d)", total, n*workers, n)
}

func TestDedupeNoAlloc(t *testing.T) {
	d := NewDedupe(time.Second, 1024)
	a, b := v4(64, 1, payload(1400, 0)), v6(64, payload(20, 0))
	now := int64(0)
	allocs := testing.AllocsPerRun(100, func() {
		now += 1000
		d.Seen(a, srcA, now)
		d.Seen(a, srcB, now)
		d.Seen(b, srcC, now)
	})
	if allocs != 0 {
		t.Errorf("Seen allocates %v times per run", allocs)
	}
}

func BenchmarkDedupeSeen(b *testing.B) {
	d := NewDedupe(10*time.Millisecond, 1<<16)
	pkts := make([][]byte, 1024)
	for i := range pkts {
		pkts[i] = v4(64, uint16(i), payload(1400, byte(i)))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Seen(pkts[i&1023], srcA, int64(i)*1000)
		i++
	}
}
