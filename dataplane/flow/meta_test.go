package flow

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"weir/dataplane/packet"
	"weir/dataplane/policy"
)

var (
	eniA  = netip.MustParseAddr("172.31.0.10")
	eniB  = netip.MustParseAddr("172.31.0.20")
	sinkA = netip.MustParseAddr("172.31.9.9")
)

func vxlanMeta(src netip.Addr, sport uint16, vni uint32, dir uint8, session uint16) *Meta {
	return &Meta{Tunnel: Tunnel{Encap: EncapVXLAN, Src: src, Dst: sinkA, SrcPort: sport, DstPort: 4789, VNI: vni},
		Direction: dir, Session: session}
}

// ivalSink collects interval records and ended flows in call order.
type ivalSink struct {
	mu     sync.Mutex
	events []ivalEvent
}

type ivalEvent struct {
	end   bool // onEnd; else OnInterval
	rec   Record
	delta Delta
}

func (s *ivalSink) onInterval(r *Record, d *Delta) {
	s.mu.Lock()
	s.events = append(s.events, ivalEvent{rec: *r, delta: *d})
	s.mu.Unlock()
}

func (s *ivalSink) onEnd(r *Record) {
	s.mu.Lock()
	s.events = append(s.events, ivalEvent{end: true, rec: *r})
	s.mu.Unlock()
}

func (s *ivalSink) take() []ivalEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.events
	s.events = nil
	return e
}

// deltas returns the interval records of events by flow id.
func deltas(evs []ivalEvent) map[uint64]Delta {
	m := map[uint64]Delta{}
	for _, e := range evs {
		if !e.end {
			if _, dup := m[e.rec.ID]; dup {
				panic(fmt.Sprintf("two deltas for flow %d", e.rec.ID))
			}
			m[e.rec.ID] = e.delta
		}
	}
	return m
}

func newIval(tb testing.TB, cfg Config) (*Table, *ivalSink) {
	tb.Helper()
	s := &ivalSink{}
	cfg.OnInterval = s.onInterval
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxFlows == 0 {
		cfg.MaxFlows = 1 << 12
	}
	return NewTable(cfg, nil, s.onEnd), s
}

func TestTrackMetaKeepsFirst(t *testing.T) {
	tb, sk, _ := newTest(t, Config{})
	syn := tcp(client, 40000, server, 443, packet.TCPSyn)
	first := vxlanMeta(eniA, 1111, 77, DirectionEgress, 3)
	first.AWS = cookie(1)
	r := tb.TrackMeta(5, syn, 60, first, sec)
	// The reply seen from the other mirrored ENI: other tunnel, session, direction.
	second := vxlanMeta(eniB, 2222, 88, DirectionIngress, 9)
	second.AWS = cookie(2)
	tb.TrackMeta(5, reverse(syn, packet.TCPSyn|packet.TCPAck), 60, second, 2*sec)
	tb.TrackMeta(5, withFlags(syn, packet.TCPAck), 52, second, 3*sec)
	tb.TrackMeta(5, withFlags(syn, packet.TCPAck), 52, nil, 4*sec)
	tb.Track(5, withFlags(syn, packet.TCPAck), 52, nil, 5*sec)
	if n := tb.Flush(0); n != 1 {
		t.Fatalf("Flush = %d", n)
	}
	rec := sk.take()[0]
	if rec.ID != r.FlowID || rec.Tunnel != first.Tunnel || rec.Session != 3 || rec.Direction != DirectionEgress {
		t.Fatalf("record %+v", rec)
	}
	if rec.AWS != *cookie(2) || rec.PktsToServer != 4 || rec.PktsToClient != 1 {
		t.Fatalf("aws/counters %+v", rec)
	}

	// IPv6 and absent outer addresses survive packing; no Meta means a zero Tunnel.
	for _, tun := range []Tunnel{
		{Encap: EncapGeneve, Src: netip.MustParseAddr("2001:db8::a"), Dst: netip.MustParseAddr("::ffff:10.0.0.1"), SrcPort: 1, DstPort: 6081, VNI: 1<<24 - 1},
		{Encap: EncapVXLAN, Src: eniA},
		{Encap: EncapNone, Dst: netip.MustParseAddr("fe80::1")},
		{},
	} {
		p := udp(client, 1, server, 2)
		if tun == (Tunnel{}) {
			tb.TrackMeta(1, p, 1, nil, 0)
		} else {
			tb.TrackMeta(1, p, 1, &Meta{Tunnel: tun, Direction: DirectionIngress, Session: 1}, 0)
		}
		tb.Flush(0)
		if got := sk.take()[0]; got.Tunnel != tun {
			t.Errorf("tunnel %+v, want %+v", got.Tunnel, tun)
		}
	}
}

// A flow restarted by a SYN from the old server takes its new first packet's meta.
func TestTrackMetaRestart(t *testing.T) {
	tb, sk, _ := newTest(t, Config{})
	syn := tcp(client, 1, server, 2, packet.TCPSyn)
	tb.TrackMeta(0, syn, 1, vxlanMeta(eniA, 1, 1, DirectionEgress, 1), 1)
	tb.TrackMeta(0, reverse(syn, packet.TCPRst|packet.TCPAck), 1, vxlanMeta(eniA, 1, 1, DirectionIngress, 1), 2)
	tb.TrackMeta(0, reverse(syn, packet.TCPSyn), 1, vxlanMeta(eniB, 2, 2, DirectionIngress, 2), 3)
	tb.Flush(0)
	recs := sk.take()
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	old, cur := recs[0], recs[1]
	if old.Reason != EndForced {
		old, cur = cur, old
	}
	if old.Direction != DirectionEgress || old.Session != 1 || old.Src != client {
		t.Errorf("old flow %+v", old)
	}
	if cur.Direction != DirectionIngress || cur.Session != 2 || cur.Src != server || cur.Tunnel.Src != eniB {
		t.Errorf("new flow %+v", cur)
	}
}

func TestScopesApart(t *testing.T) {
	tb, sk := newIval(t, Config{})
	p := udp(client6, 5000, server6, 53)
	a := tb.TrackMeta(1, p, 100, vxlanMeta(eniA, 1, 10, DirectionEgress, 1), 1*sec)
	b := tb.TrackMeta(2, p, 200, vxlanMeta(eniB, 2, 20, DirectionIngress, 2), 2*sec)
	if !a.Created || !b.Created || a.FlowID == b.FlowID {
		t.Fatalf("%+v %+v", a, b)
	}
	tb.TrackMeta(2, reverse(p, 0), 300, vxlanMeta(eniB, 2, 20, DirectionEgress, 2), 3*sec)
	if tb.Active() != 2 {
		t.Fatalf("active %d", tb.Active())
	}
	if n := tb.Interval(4 * sec); n != 2 {
		t.Fatalf("Interval = %d", n)
	}
	d := deltas(sk.take())
	if da := d[a.FlowID]; da.PktsToServer != 1 || da.BytesToServer != 100 || da.PktsToClient != 0 {
		t.Errorf("scope 1: %+v", da)
	}
	if db := d[b.FlowID]; db.PktsToServer != 1 || db.BytesToServer != 200 || db.PktsToClient != 1 || db.BytesToClient != 300 {
		t.Errorf("scope 2: %+v", db)
	}
	tb.Flush(0)
	for _, e := range sk.take() {
		if !e.end {
			t.Errorf("delta after the interval with no traffic: %+v", e)
			continue
		}
		want := map[uint64]uint16{a.FlowID: 1, b.FlowID: 2}[e.rec.ID]
		if e.rec.Session != want || e.rec.Tunnel.VNI != uint32(want)*10 {
			t.Errorf("flow %d: %+v", e.rec.ID, e.rec)
		}
	}
}

func TestInterval(t *testing.T) {
	tb, sk := newIval(t, Config{})
	syn := tcp(client, 40000, server, 443, packet.TCPSyn)
	dns := udp(client, 5353, server, 53)
	ping := echo(client6, server6, 7, 128)
	f := tb.Track(0, syn, 60, nil, 10*sec)
	tb.Track(0, reverse(syn, packet.TCPSyn|packet.TCPAck), 64, nil, 11*sec)
	tb.Track(0, withFlags(syn, packet.TCPAck), 52, nil, 12*sec)
	g := tb.Track(0, dns, 70, nil, 13*sec)
	h := tb.Track(0, ping, 84, nil, 14*sec)

	// Interval 1: all three flows.
	if n := tb.Interval(60 * sec); n != 3 {
		t.Fatalf("Interval 1 = %d", n)
	}
	evs := sk.take()
	d := deltas(evs)
	want := Delta{PktsToServer: 2, PktsToClient: 1, BytesToServer: 112, BytesToClient: 64,
		FirstToServer: time.Unix(10, 0), LastToServer: time.Unix(12, 0),
		FirstToClient: time.Unix(11, 0), LastToClient: time.Unix(11, 0)}
	if !deltaEqual(d[f.FlowID], want) {
		t.Errorf("tcp interval 1:\n got %+v\nwant %+v", d[f.FlowID], want)
	}
	if got := d[g.FlowID]; got.PktsToServer != 1 || got.BytesToServer != 70 || got.PktsToClient != 0 ||
		!got.FirstToClient.IsZero() || !got.LastToClient.IsZero() || !got.FirstToServer.Equal(time.Unix(13, 0)) {
		t.Errorf("udp interval 1: %+v", got)
	}
	if got := d[h.FlowID]; got.PktsToServer != 1 || got.BytesToServer != 84 {
		t.Errorf("icmp interval 1: %+v", got)
	}
	for _, e := range evs {
		if e.end {
			t.Fatalf("flow ended: %+v", e.rec)
		}
		if e.rec.ID == f.FlowID && (e.rec.PktsToServer != 2 || e.rec.State != StateEstablished ||
			e.rec.Src != client || !e.rec.End.Equal(time.Unix(12, 0))) {
			t.Errorf("tcp record %+v", e.rec)
		}
	}

	// Interval 2: nothing at all.
	if n := tb.Interval(120 * sec); n != 0 || len(sk.take()) != 0 {
		t.Fatalf("Interval 2 = %d", n)
	}

	// Interval 3: only the TCP flow's server talks, only the DNS reply arrives; the
	// ping is idle. Packet times out of order are kept as first/last.
	tb.Track(0, reverse(syn, packet.TCPAck|packet.TCPPsh), 1000, nil, 125*sec)
	tb.Track(0, reverse(syn, packet.TCPAck|packet.TCPPsh), 1000, nil, 121*sec)
	tb.Track(0, reverse(syn, packet.TCPAck|packet.TCPPsh), 500, nil, 130*sec)
	tb.Track(0, reverse(dns, 0), 120, nil, 122*sec)
	if n := tb.Interval(180 * sec); n != 2 {
		t.Fatalf("Interval 3 = %d", n)
	}
	d = deltas(sk.take())
	want = Delta{PktsToClient: 3, BytesToClient: 2500, FirstToClient: time.Unix(121, 0), LastToClient: time.Unix(130, 0)}
	if !deltaEqual(d[f.FlowID], want) {
		t.Errorf("tcp interval 3:\n got %+v\nwant %+v", d[f.FlowID], want)
	}
	if got := d[g.FlowID]; got.PktsToServer != 0 || got.PktsToClient != 1 || got.BytesToClient != 120 ||
		!got.FirstToServer.IsZero() {
		t.Errorf("udp interval 3: %+v", got)
	}
	if _, ok := d[h.FlowID]; ok {
		t.Error("idle flow emitted")
	}

	// The sums of the deltas are the flows' totals.
	tb.Track(0, dns, 70, nil, 190*sec)
	tb.Flush(0)
	evs = sk.take()
	if len(evs) != 4 {
		t.Fatalf("flush events %+v", evs)
	}
	for j, e := range evs {
		if e.end != (e.rec.ID != g.FlowID || j > 0 && !evs[j-1].end) {
			t.Fatalf("flush events %+v", evs)
		}
		if e.rec.ID != g.FlowID {
			continue
		}
		if !e.end && (e.delta.PktsToServer != 1 || e.delta.BytesToServer != 70 || e.delta.PktsToClient != 0) {
			t.Errorf("final delta %+v", e.delta)
		}
		if e.rec.PktsToServer != 2 || e.rec.PktsToClient != 1 || e.rec.Reason != EndShutdown {
			t.Errorf("ended record %+v", e.rec)
		}
	}
}

func deltaEqual(a, b Delta) bool {
	return a.PktsToServer == b.PktsToServer && a.PktsToClient == b.PktsToClient &&
		a.BytesToServer == b.BytesToServer && a.BytesToClient == b.BytesToClient &&
		a.FirstToServer.Equal(b.FirstToServer) && a.LastToServer.Equal(b.LastToServer) &&
		a.FirstToClient.Equal(b.FirstToClient) && a.LastToClient.Equal(b.LastToClient)
}

// Every way a flow ends hands its unreported traffic to OnInterval just before onEnd,
// with the same record.
func TestIntervalOnEnd(t *testing.T) {
	tb, sk := newIval(t, Config{MaxFlows: 2, OtherTimeout: 10 * time.Second})
	if len(tb.shards) != 1 {
		t.Fatal("want one shard")
	}
	p := udp(client, 1, server, 53)
	q := udp(client, 2, server, 53)
	syn := tcp(client, 3, server, 80, packet.TCPSyn)

	check := func(what string, reason EndReason, pkts uint64) {
		t.Helper()
		evs := sk.take()
		if pkts == 0 {
			if len(evs) != 1 || !evs[0].end || evs[0].rec.Reason != reason {
				t.Fatalf("%s: events %+v", what, evs)
			}
			return
		}
		if len(evs) != 2 || evs[0].end || !evs[1].end || evs[0].rec != evs[1].rec ||
			evs[1].rec.Reason != reason || evs[0].delta.PktsToServer+evs[0].delta.PktsToClient != pkts {
			t.Fatalf("%s: events %+v", what, evs)
		}
	}
	// Expire.
	tb.Track(0, p, 1, nil, 0)
	tb.Track(0, p, 1, nil, 1)
	tb.Expire(20 * sec)
	check("expire", EndTimeout, 2)
	// Timeout found by a packet.
	tb.Track(0, p, 1, nil, 30*sec)
	tb.Track(0, p, 1, nil, 50*sec)
	check("timeout on lookup", EndTimeout, 1)
	// Eviction.
	tb.Track(0, q, 1, nil, 51*sec)
	tb.Track(0, reverse(q, 0), 1, nil, 52*sec)
	tb.Track(0, syn, 1, nil, 53*sec) // evicts p
	check("evict", EndForced, 1)
	if tb.Interval(54*sec) != 2 || len(sk.take()) != 2 {
		t.Fatal("interval")
	}
	// Restart by SYN after RST, nothing new since the interval but the RST.
	tb.Track(0, reverse(syn, packet.TCPRst), 1, nil, 55*sec)
	tb.Track(0, syn, 1, nil, 56*sec)
	check("restart", EndForced, 1)
	// A flow with nothing since the last interval ends with onEnd only.
	tb.Interval(57 * sec)
	sk.take()
	tb.Flush(0)
	evs := sk.take()
	if len(evs) != 2 || !evs[0].end || !evs[1].end {
		t.Fatalf("flush after interval: %+v", evs)
	}
}

// Interval walks many flows in batches, skipping free slab entries; each flow with
// traffic is emitted once.
func TestIntervalMany(t *testing.T) {
	defer func(n int) { intervalScan = n }(intervalScan)
	intervalScan = 16
	const n = 5000 // about 80 a shard: more than intervalScan and pendingCap
	tb, sk := newIval(t, Config{MaxFlows: 1 << 14})
	for i := range n {
		tb.Track(uint64(i), udp(client, uint16(i), server, 53), i+1, nil, int64(i))
		if i%3 == 0 {
			tb.Track(uint64(i), tcp(client, uint16(i), server, 53, packet.TCPRst), 1, nil, int64(i))
		}
	}
	closed := (n + 2) / 3
	check := func(want int, udpBytes func(port uint16) uint64) {
		t.Helper()
		if got := tb.Interval(0); got != want {
			t.Fatalf("Interval = %d, want %d", got, want)
		}
		evs := sk.take()
		if len(evs) != want {
			t.Fatalf("%d events", len(evs))
		}
		seen := map[uint64]bool{}
		for _, e := range evs {
			if e.end || seen[e.rec.ID] {
				t.Fatalf("event %+v", e)
			}
			seen[e.rec.ID] = true
			if e.rec.Proto == packet.ProtoUDP && e.delta.BytesToServer != udpBytes(e.rec.SrcPort) {
				t.Fatalf("delta %+v for %+v", e.delta, e.rec)
			}
		}
	}
	check(n+closed, func(port uint16) uint64 { return uint64(port) + 1 })
	// The closed TCP flows expire (nothing to report) and leave free slab entries.
	if got := tb.Expire(int64(n) + 6*sec); got != closed {
		t.Fatalf("Expire = %d", got)
	}
	for _, e := range sk.take() {
		if !e.end {
			t.Fatalf("delta after the interval: %+v", e)
		}
	}
	for i := 0; i < n; i += 2 {
		tb.Track(uint64(i), reverse(udp(client, uint16(i), server, 53), 0), 7, nil, int64(n)+7*sec)
		tb.Track(uint64(i), udp(client, uint16(i), server, 53), 9, nil, int64(n)+7*sec)
	}
	check((n+1)/2, func(uint16) uint64 { return 9 })
	if tb.Interval(0) != 0 || tb.Active() != n {
		t.Fatalf("active %d", tb.Active())
	}
}

// Interval without OnInterval does nothing; ended flows have no delta.
func TestIntervalDisabled(t *testing.T) {
	tb, sk, _ := newTest(t, Config{})
	tb.Track(0, udp(client, 1, server, 2), 1, nil, 0)
	if tb.Interval(0) != 0 || tb.shards[0].ival != nil {
		t.Fatal("interval without OnInterval")
	}
	tb.Flush(0)
	if len(sk.take()) != 1 {
		t.Fatal("flush")
	}
}

// ICMP errors counted against their flow are in its delta.
func TestIntervalICMPError(t *testing.T) {
	tb, sk := newIval(t, Config{})
	syn := tcp(client, 40000, server, 443, packet.TCPSyn)
	f := tb.Track(0, syn, 60, nil, sec)
	tb.Track(0, unreachable(router, client, syn), 88, nil, 2*sec)
	tb.Interval(0)
	d := deltas(sk.take())[f.FlowID]
	if d.PktsToServer != 1 || d.PktsToClient != 1 || d.BytesToClient != 88 || !d.LastToClient.Equal(time.Unix(2, 0)) {
		t.Fatalf("%+v", d)
	}
}

// OnInterval runs without table locks: it may call back into the table.
func TestOnIntervalUnlocked(t *testing.T) {
	var tb *Table
	var calls int
	tb = NewTable(Config{MaxFlows: 2, Logger: slog.New(slog.DiscardHandler), OnInterval: func(*Record, *Delta) {
		calls++
		_ = tb.Active()
	}}, nil, func(*Record) { _ = tb.Active() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5 {
			tb.Track(0, udp(client, uint16(i), server, 2), 1, nil, int64(i))
		}
		tb.Interval(0)
		tb.Track(0, udp(client, 4, server, 2), 1, nil, 5)
		tb.Flush(0)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: OnInterval called with a lock held")
	}
	if calls != 3+2+1 { // 3 evicted, 2 at the interval, 1 flushed
		t.Fatalf("OnInterval called %d times", calls)
	}
}

// Workers, Expire and Interval at once: every packet is in exactly one delta, and
// the deltas of a flow add up to its record.
func TestIntervalConcurrent(t *testing.T) {
	var (
		mu     sync.Mutex
		pkts   uint64
		sums   = map[uint64][2]uint64{}
		totals = map[uint64][2]uint64{}
	)
	tb := NewTable(Config{MaxFlows: 500, OtherTimeout: time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		OnInterval: func(r *Record, d *Delta) {
			mu.Lock()
			pkts += d.PktsToServer + d.PktsToClient
			s := sums[r.ID]
			sums[r.ID] = [2]uint64{s[0] + d.PktsToServer, s[1] + d.BytesToClient}
			mu.Unlock()
		}}, nil, func(r *Record) {
		mu.Lock()
		totals[r.ID] = [2]uint64{r.PktsToServer, r.BytesToClient}
		mu.Unlock()
	})
	const workers, perWorker = 4, 20000
	var clock atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	bg := make(chan struct{})
	go func() {
		defer close(bg)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
				if i&1 == 0 {
					tb.Expire(clock.Load())
				} else {
					tb.Interval(clock.Load())
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range perWorker {
				now := clock.Add(1000)
				port := uint16(rng.IntN(1000))
				p := udp(client, port, server, 53)
				if rng.IntN(2) == 0 {
					p = reverse(p, 0)
				}
				tb.TrackMeta(uint64(port%3), p, 1+rng.IntN(3), &Meta{Session: 1}, now)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-bg
	tb.Interval(0)
	tb.Flush(0)
	mu.Lock()
	defer mu.Unlock()
	if pkts != workers*perWorker {
		t.Fatalf("packets in deltas %d, want %d", pkts, workers*perWorker)
	}
	if len(sums) != len(totals) {
		t.Fatalf("%d flows with deltas, %d ended", len(sums), len(totals))
	}
	for id, tot := range totals {
		if sums[id] != tot {
			t.Fatalf("flow %d: deltas %v, record %v", id, sums[id], tot)
		}
	}
}

func TestTrackMetaAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("alloc counts")
	}
	const n = 4096
	ps := make([]*packet.Packet, 2*n)
	rev := make([]*packet.Packet, 2*n)
	for i := range n {
		ps[i] = tcp(client, uint16(i), server, 443, packet.TCPAck)
		ps[n+i] = udp(client6, uint16(i), server6, 53)
	}
	for j, p := range ps {
		rev[j] = reverse(p, packet.TCPAck)
	}
	m := vxlanMeta(eniA, 1, 1, DirectionEgress, 2)
	m.AWS = cookie(1)
	var ivals, ended int
	cfg := Config{MaxFlows: 4 * n, Logger: slog.New(slog.DiscardHandler),
		OnInterval: func(*Record, *Delta) { ivals++ }}
	onEnd := func(*Record) { ended++ }

	tb := NewTable(cfg, &policy.Policy{}, onEnd)
	for j := range 3 * n { // grow the shards: growth allocates, creation does not
		tb.TrackMeta(uint64(j), ps[0], 100, m, 0)
	}
	tb.Flush(0)
	ivals, ended = 0, 0
	i := 0
	if a := testing.AllocsPerRun(len(ps)-1, func() {
		tb.TrackMeta(0, ps[i], 100, m, int64(i))
		i++
	}); a != 0 {
		t.Errorf("new flow: %v allocs", a)
	}
	i = 0
	if a := testing.AllocsPerRun(1000, func() {
		p := ps[i%len(ps)]
		if i&1 != 0 {
			p = rev[i%len(ps)]
		}
		tb.TrackMeta(0, p, 100, m, int64(i))
		i++
	}); a != 0 {
		t.Errorf("existing flow: %v allocs", a)
	}
	if a := testing.AllocsPerRun(3, func() {
		tb.TrackMeta(0, ps[0], 100, m, 0)
		tb.Interval(0)
	}); a != 0 {
		t.Errorf("interval: %v allocs", a)
	}
	if ivals == 0 {
		t.Fatal("no interval records")
	}

	// A full table: each new flow evicts one, with its delta.
	cfg.MaxFlows = n / 2
	tb = NewTable(cfg, &policy.Policy{}, onEnd)
	for _, p := range ps[:n] {
		tb.TrackMeta(0, p, 100, m, 0)
	}
	ivals, ended = 0, 0
	i = 0
	if a := testing.AllocsPerRun(1000, func() {
		tb.TrackMeta(1, ps[i%len(ps)], 100, m, int64(i))
		i++
	}); a != 0 {
		t.Errorf("evicting: %v allocs", a)
	}
	if ended == 0 || ivals != ended {
		t.Fatalf("ended %d, interval records %d", ended, ivals)
	}
	// Track (the wrapper) with a nil Meta.
	if a := testing.AllocsPerRun(100, func() {
		tb.Track(1, ps[1], 100, m.AWS, 2000)
		tb.TrackMeta(1, ps[1], 100, nil, 2000)
	}); a != 0 {
		t.Errorf("track: %v allocs", a)
	}
}

// TrackMeta on existing flows with tunnel metadata and interval counters, 64K flows.
func BenchmarkTrackMeta(b *testing.B) {
	m := vxlanMeta(eniA, 1, 1, DirectionEgress, 2)
	for _, withIval := range []bool{false, true} {
		name := "hit"
		cfg := Config{MaxFlows: 1 << 18, Logger: slog.New(slog.DiscardHandler)}
		if withIval {
			name = "hit-interval"
			cfg.OnInterval = func(*Record, *Delta) {}
		}
		b.Run(name, func(b *testing.B) {
			ps := benchPackets(1 << 16)
			tb := NewTable(cfg, nil, func(*Record) {})
			for _, p := range ps {
				tb.TrackMeta(0, p, 100, m, 0)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tb.TrackMeta(0, ps[i&(len(ps)-1)], 100, m, int64(i))
				i++
			}
		})
	}
}
