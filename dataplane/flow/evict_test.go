package flow

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"weir/dataplane/packet"
)

// Eviction takes unanswered flows first, then closed ones, then the rest; a flow
// idle past its timeout goes before any of them.
func TestEvictionOrder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		present []string // flows in the full table, oldest first
		want    string   // the one the next new flow evicts
		now     int64
	}{
		{"new before established", []string{"est", "closed", "new"}, "new", 10},
		{"closed before established", []string{"est", "closed", "est2"}, "closed", 10},
		{"established by LRU", []string{"est", "udp-est", "est2"}, "est", 10},
		{"new UDP before TCP", []string{"est", "udp-new", "new"}, "udp-new", 10},
		{"idle first", []string{"udp-est", "new", "est"}, "udp-est", 200 * sec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, sk, _ := newTest(t, Config{MaxFlows: len(tc.present)})
			ids := map[uint64]string{}
			for i, name := range tc.present {
				now := int64(i+1) * sec
				p := tcp(client, uint16(i+1), server, 443, packet.TCPSyn)
				if name == "udp-est" || name == "udp-new" {
					p = udp(client, uint16(i+1), server, 53)
				}
				ids[tb.Track(0, p, 1, nil, now).FlowID] = name
				switch name {
				case "est", "est2":
					tb.Track(0, reverse(p, packet.TCPSyn|packet.TCPAck), 1, nil, now)
				case "udp-est":
					tb.Track(0, reverse(p, 0), 1, nil, now)
				case "closed":
					tb.Track(0, reverse(p, packet.TCPRst), 1, nil, now)
				}
			}
			tb.Track(0, tcp(client, 999, server, 443, packet.TCPSyn), 1, nil, tc.now)
			recs := sk.take()
			if len(recs) != 1 || ids[recs[0].ID] != tc.want {
				t.Fatalf("evicted %v, want %s", recs, tc.want)
			}
		})
	}
}

// A SYN flood from spoofed sources does not evict established flows.
func TestSYNFloodSparesEstablished(t *testing.T) {
	const established, floods, perFlood = 1000, 10, 100_000
	tb := NewTable(Config{MaxFlows: 10_000, Logger: slog.New(slog.DiscardHandler)}, nil, nil)
	now := int64(sec)
	est := make([]*packet.Packet, established)
	ids := make([]uint64, established)
	for i := range est {
		est[i] = tcp(client, uint16(10000+i), server, 443, packet.TCPSyn)
		ids[i] = tb.Track(0, est[i], 60, nil, now).FlowID
		tb.Track(0, reverse(est[i], packet.TCPSyn|packet.TCPAck), 60, nil, now)
		tb.Track(0, withFlags(est[i], packet.TCPAck), 60, nil, now)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	syn := &packet.Packet{Family: 4, Proto: packet.ProtoTCP, Dst: server, DstPort: 443, TCPFlags: packet.TCPSyn}
	for range floods {
		for range perFlood {
			now += 1000
			syn.Src = netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
			syn.SrcPort = uint16(rng.Uint32())
			tb.Track(0, syn, 60, nil, now)
		}
		for i, p := range est { // the established flows carry on between floods
			if r := tb.Track(0, withFlags(p, packet.TCPAck), 60, nil, now); r.Created || r.FlowID != ids[i] {
				t.Fatalf("established flow %d: %+v, want id %d", i, r, ids[i])
			}
		}
	}
	for i, p := range est {
		if r := tb.Track(0, reverse(p, packet.TCPAck), 60, nil, now); r.Created || r.FlowID != ids[i] || r.ToServer {
			t.Fatalf("established flow %d after the flood: %+v, want id %d", i, r, ids[i])
		}
	}
	if tb.Evicted() < floods*perFlood-10_000 {
		t.Fatalf("evicted %d", tb.Evicted())
	}
}

// A housekeeping goroutine stuck emitting (its output queue full) does not stall
// packet workers: their evictions are emitted on their own.
func TestSlowOutputDoesNotStallPackets(t *testing.T) {
	blocking := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	fromPackets := 0
	tb := NewTable(Config{MaxFlows: 100, Logger: slog.New(slog.DiscardHandler)}, nil, func(r *Record) {
		if r.Background {
			once.Do(func() { close(blocking) })
			<-release // a queue that never drains, until the test ends
			return
		}
		mu.Lock()
		fromPackets++
		mu.Unlock()
	})
	if len(tb.shards) != 1 {
		t.Fatal("want one shard")
	}
	for i := range 100 {
		tb.Track(0, udp(client, uint16(i), server, 53), 1, nil, 0)
	}
	expired := make(chan int)
	go func() { expired <- tb.Expire(1000 * sec) }()
	<-blocking // Expire now holds the shard's background outbox, blocked in onEnd

	const n = 1000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n { // each evicts a flow: live ones once Expire's batch is out
			tb.Track(0, tcp(client6, uint16(i), server6, 443, packet.TCPSyn), 1, nil, 1000*sec)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("packet path blocked behind a stuck Expire")
	}
	mu.Lock()
	got := fromPackets
	mu.Unlock()
	if got < n-100 || tb.Lost() != 0 {
		t.Errorf("%d records from packet workers, lost %d", got, tb.Lost())
	}
	close(release)
	if e := <-expired; e == 0 {
		t.Error("Expire ended nothing")
	}
}

// The packet workers' outbox is bounded: while one worker is stuck emitting (a
// receiver that blocks, against the contract), records beyond it drop the oldest
// and are counted.
func TestPacketOutboxBounded(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	tb := NewTable(Config{MaxFlows: 64, Logger: slog.New(slog.DiscardHandler)}, nil, func(r *Record) {
		once.Do(func() {
			close(entered)
			<-release
		})
	})
	for i := range 64 {
		tb.Track(0, udp(client, uint16(i), server, 53), 1, nil, 0)
	}
	const workers = pendingCap + 4
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the first eviction blocks in onEnd, holding the outbox
		defer wg.Done()
		tb.Track(0, udp(client6, 0, server6, 53), 1, nil, 1)
	}()
	<-entered
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tb.Track(0, udp(client6, uint16(w), server6, 53), 1, nil, 1)
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for tb.Lost() < workers-1-pendingCap && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if tb.Lost() != workers-1-pendingCap {
		t.Fatalf("lost %d, want %d", tb.Lost(), workers-1-pendingCap)
	}
}
