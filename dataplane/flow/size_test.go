package flow

import (
	"log/slog"
	"math"
	"net/netip"
	"reflect"
	"runtime"
	"testing"
	"unsafe"

	"weir/dataplane/packet"
)

// entryBudget is the most a flow may cost in its shard: its slab entry and its share
// of the index (two slots, the index being at most half full).
const entryBudget = 160

func TestEntrySize(t *testing.T) {
	e, sl := unsafe.Sizeof(entry{}), unsafe.Sizeof(slot(0))
	t.Logf("entry %d bytes, slot %d bytes, %d bytes a flow", e, sl, e+2*sl)
	if e+2*sl > entryBudget {
		t.Errorf("entry %d + 2 slots of %d bytes > %d", e, sl, entryBudget)
	}
	if p := pointerIn(reflect.TypeFor[entry](), "entry"); p != "" {
		t.Errorf("%s holds a pointer: the GC would scan every slab", p)
	}
}

// pointerIn returns the path of a field of t that holds a pointer, or "".
func pointerIn(t reflect.Type, path string) string {
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if p := pointerIn(f.Type, path+"."+f.Name); p != "" {
				return p
			}
		}
	case reflect.Array:
		return pointerIn(t.Elem(), path+"[]")
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.String, reflect.Interface,
		reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return path
	}
	return ""
}

// Packet counters carry past 2^32 into the byte word's top bits.
func TestCounterPacking(t *testing.T) {
	var e entry
	e.p[1] = math.MaxUint32
	e.b[1] = 1000
	e.count(false, 60, 0)
	if e.pkts(1) != 1<<32 || e.bytes(1) != 1060 {
		t.Fatalf("pkts %d bytes %d", e.pkts(1), e.bytes(1))
	}
	e.count(false, 40, 0)
	if e.pkts(1) != 1<<32+1 || e.bytes(1) != 1100 || e.pkts(0) != 0 {
		t.Fatalf("pkts %d bytes %d", e.pkts(1), e.bytes(1))
	}
}

// Tunnels with IPv6 addresses go to the side array and come back intact.
func TestTunnelIPv6(t *testing.T) {
	tb, sk, _ := newTest(t, Config{})
	m4 := &Meta{Tunnel: Tunnel{Encap: EncapVXLAN, Src: eniA, Dst: sinkA, SrcPort: 1, DstPort: 4789, VNI: 7}}
	m6 := &Meta{Tunnel: Tunnel{Encap: EncapGeneve, Src: client6, Dst: server6, SrcPort: 2, DstPort: 6081}}
	mixed := &Meta{Tunnel: Tunnel{Encap: EncapGeneve, Src: eniA}}
	want := map[uint16]Tunnel{1: m4.Tunnel, 2: m6.Tunnel, 3: mixed.Tunnel}
	tb.TrackMeta(0, udp(client, 1, server, 53), 1, m4, 0)
	tb.TrackMeta(0, udp(client, 2, server, 53), 1, m6, 0)
	tb.TrackMeta(0, udp(client, 3, server, 53), 1, mixed, 0)
	tb.Flush(0)
	for _, r := range sk.take() {
		if r.Tunnel != want[r.SrcPort] {
			t.Errorf("flow %d: tunnel %+v, want %+v", r.SrcPort, r.Tunnel, want[r.SrcPort])
		}
	}
}

// BenchmarkTableMillion fills a table of 1M flows (offering more, so that every
// shard is full) and reports what a flow costs and the heap in use.
func BenchmarkTableMillion(b *testing.B) {
	const n = 1 << 20
	logger := slog.New(slog.DiscardHandler)
	var ms runtime.MemStats
	var perFlow, heap float64
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapInuse
		tb := NewTable(Config{MaxFlows: n, Logger: logger}, nil, nil)
		p := &packet.Packet{Family: 4, Proto: packet.ProtoTCP, Dst: server, DstPort: 443, TCPFlags: packet.TCPSyn}
		for i := range n + n/8 {
			p.Src = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			p.SrcPort = uint16(i)
			tb.TrackMeta(0, p, 60, nil, int64(i))
		}
		if tb.Active() != n {
			b.Fatalf("active %d", tb.Active())
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		perFlow = float64(ms.HeapInuse-before) / n
		heap = float64(ms.HeapInuse) / (1 << 20)
		runtime.KeepAlive(tb)
	}
	b.ReportMetric(perFlow, "bytes/flow")
	b.ReportMetric(heap, "heap-MB")
}

// A table reserves little up front: shards start small and grow with their flows.
func TestGrowFromSmall(t *testing.T) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	big := NewTable(Config{MaxFlows: 1 << 20, OnInterval: func(*Record, *Delta) {}}, nil, nil)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if used := int64(ms.HeapInuse) - int64(before); used > 4<<20 {
		t.Errorf("NewTable with 1M flows: %d bytes in use, want < 4 MB", used)
	} else {
		t.Logf("NewTable with 1M flows: %d bytes in use", used)
	}
	runtime.KeepAlive(big)

	// Grown to 200k flows, every flow is still found, with its id and counters.
	const n = 200_000
	tb, _, _ := newTest(t, Config{MaxFlows: 1 << 18, OnInterval: func(*Record, *Delta) {}})
	ids := make([]uint64, n)
	pkt := func(i int) *packet.Packet {
		return udp(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(i), server, 53)
	}
	for i := range n {
		ids[i] = tb.Track(0, pkt(i), 10, nil, int64(i)).FlowID
	}
	for i := range n {
		if r := tb.Track(0, reverse(pkt(i), 0), 20, nil, n+int64(i)); r.Created || r.FlowID != ids[i] || r.ToServer {
			t.Fatalf("flow %d after growth: %+v, want id %d", i, r, ids[i])
		}
	}
	if tb.Active() != n || tb.Evicted() != 0 {
		t.Fatalf("active %d evicted %d", tb.Active(), tb.Evicted())
	}
	for i := range tb.shards {
		if s := &tb.shards[i]; cap(s.slab) > s.limit || len(s.ival) != cap(s.slab) || len(s.slots) < 2*cap(s.slab) {
			t.Fatalf("shard %d: cap %d limit %d ival %d slots %d", i, cap(s.slab), s.limit, len(s.ival), len(s.slots))
		}
	}
	if r, _ := lookup(tb, 0, pkt(12345)); r.PktsToServer != 1 || r.BytesToClient != 20 || r.State != StateEstablished {
		t.Fatalf("record after growth: %+v", r)
	}
}
