package flow

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

// journal collects journal events.
type journal struct {
	mu     sync.Mutex
	events []FlowState
	shards map[int]bool
}

func (j *journal) add(shard int, evs []FlowState) {
	j.mu.Lock()
	j.events = append(j.events, evs...)
	if j.shards == nil {
		j.shards = map[int]bool{}
	}
	j.shards[shard] = true
	j.mu.Unlock()
}

func (j *journal) take() []FlowState {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.events
	j.events = nil
	return e
}

func TestJournalEvents(t *testing.T) {
	j := &journal{}
	tb, _, _ := newTest(t, Config{Journal: j.add, JournalRefresh: 10 * time.Second})
	syn := tcp(client, 40000, server, 443, packet.TCPSyn)
	m := vxlanMeta(eniA, 7, 9, DirectionEgress, 2)
	m.AWS = cookie(1)
	newOpts := *cookie(1)
	newOpts.AttachmentID = 0xa2
	r := tb.TrackMeta(5, syn, 60, m, 1*sec)
	steps := []struct {
		name string
		do   func()
		want []JournalKind
	}{
		{"created", func() {}, []JournalKind{JournalCreated}},
		{"answered", func() { tb.Track(5, reverse(syn, packet.TCPSyn|packet.TCPAck), 60, cookie(1), 2*sec) }, []JournalKind{JournalChanged}},
		{"nothing new", func() { tb.Track(5, withFlags(syn, packet.TCPAck), 60, cookie(1), 3*sec) }, nil},
		{"new options", func() { tb.Track(5, withFlags(syn, packet.TCPAck), 60, &newOpts, 4*sec) }, []JournalKind{JournalChanged}},
		{"refresh", func() { tb.Track(5, withFlags(syn, packet.TCPAck), 60, &newOpts, 10*sec) }, []JournalKind{JournalRefreshed}},
		{"no second refresh", func() { tb.Track(5, withFlags(syn, packet.TCPAck), 60, &newOpts, 19*sec) }, nil},
		{"verdict", func() { tb.SetAction(r.Handle, policy.Drop) }, []JournalKind{JournalChanged}},
		{"same verdict", func() { tb.SetAction(r.Handle, policy.Drop) }, nil},
		{"reset", func() { tb.Track(5, reverse(syn, packet.TCPRst), 60, &newOpts, 20*sec) }, []JournalKind{JournalChanged}},
		{"ended", func() { tb.Flush(0) }, []JournalKind{JournalEnded}},
	}
	for _, st := range steps {
		st.do()
		tb.FlushJournal()
		evs := j.take()
		if len(evs) != len(st.want) {
			t.Fatalf("%s: events %+v, want kinds %v", st.name, evs, st.want)
		}
		for i, ev := range evs {
			if ev.Kind != st.want[i] || ev.ID != r.FlowID || ev.Scope != 5 || ev.Src != client || ev.SrcPort != 40000 ||
				ev.Dst != server || ev.DstPort != 443 || ev.Proto != packet.ProtoTCP || ev.Start != 1*sec ||
				ev.Tunnel != m.Tunnel || ev.Direction != DirectionEgress || ev.Session != 2 {
				t.Fatalf("%s: event %+v", st.name, ev)
			}
			switch st.name {
			case "answered":
				if ev.State != StateEstablished || ev.Last != 2*sec {
					t.Fatalf("%s: %+v", st.name, ev)
				}
			case "new options":
				if ev.AWS != newOpts {
					t.Fatalf("%s: options %+v", st.name, ev.AWS)
				}
			case "refresh":
				if ev.Last != 10*sec {
					t.Fatalf("%s: last %d", st.name, ev.Last)
				}
			case "verdict":
				if ev.Action != policy.Drop {
					t.Fatalf("%s: %+v", st.name, ev)
				}
			case "reset":
				if ev.State != StateClosed || ev.Action != policy.Drop {
					t.Fatalf("%s: %+v", st.name, ev)
				}
			}
		}
	}
	if tb.JournalLost() != 0 {
		t.Fatalf("lost %d", tb.JournalLost())
	}
}

// A journal consumer that blocks does not block the packet path: events that find
// the buffer full are counted as lost, and none is delivered twice.
func TestJournalSlowConsumer(t *testing.T) {
	blocking := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	delivered := 0
	ids := map[[2]uint64]bool{}
	dup := false
	tb := NewTable(Config{MaxFlows: 100, Logger: slog.New(slog.DiscardHandler), Journal: func(_ int, evs []FlowState) {
		mu.Lock()
		delivered += len(evs)
		for _, e := range evs {
			k := [2]uint64{e.ID, uint64(e.Kind)}
			dup = dup || ids[k]
			ids[k] = true
		}
		mu.Unlock()
		once.Do(func() {
			close(blocking)
			<-release
		})
	}}, nil, nil)
	if len(tb.shards) != 1 {
		t.Fatal("want one shard")
	}
	tb.Track(0, udp(client, 0, server, 53), 1, nil, 0)
	done := make(chan struct{})
	go func() {
		tb.FlushJournal() // its delivery blocks in the consumer
		close(done)
	}()
	<-blocking
	const n = 5000
	for i := 1; i < n; i++ { // each creates a flow and evicts one
		tb.Track(0, udp(client, uint16(i), server, 53), 1, nil, int64(i))
	}
	if tb.JournalLost() == 0 {
		t.Fatal("nothing lost while the consumer was blocked")
	}
	close(release)
	<-done
	tb.FlushJournal()
	mu.Lock()
	defer mu.Unlock()
	if total := n + (n - 100); delivered+int(tb.JournalLost()) != total || dup {
		t.Fatalf("delivered %d + lost %d != %d events; duplicates %v", delivered, tb.JournalLost(), total, dup)
	}
}

func TestJournalAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("alloc counts")
	}
	const n = 1024
	tb := NewTable(Config{MaxFlows: 4 * n, Logger: slog.New(slog.DiscardHandler), JournalRefresh: 1,
		Journal: func(int, []FlowState) {}}, nil, nil)
	ps, rev := make([]*packet.Packet, n), make([]*packet.Packet, n)
	for i := range ps {
		ps[i] = tcp(client, uint16(i), server, 443, packet.TCPAck)
		rev[i] = reverse(ps[i], packet.TCPAck)
	}
	for j := range 3 * n { // grow the shards first
		tb.Track(uint64(j), ps[0], 1, nil, 0)
	}
	tb.Flush(0)
	aws := &geneve.AWS{}
	i := 0
	if a := testing.AllocsPerRun(n-1, func() {
		tb.Track(0, ps[i], 1, aws, int64(i))
		i++
	}); a != 0 {
		t.Errorf("create: %v allocs", a)
	}
	i = 0
	if a := testing.AllocsPerRun(1000, func() { // every packet a refresh
		tb.Track(0, rev[i%n], 1, aws, int64(n+i))
		i++
	}); a != 0 {
		t.Errorf("hit: %v allocs", a)
	}
}
