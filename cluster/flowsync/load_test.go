package flowsync

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	membership "weir/cluster"
	"weir/dataplane/flow"
	"weir/dataplane/packet"
)

// TestSyncUnderLoad: three nodes over real memberlist on loopback (encrypted), each
// creating new flows at 20,000 a second for two seconds; every node must come to
// hold the whole fleet's flows, with no journal event dropped. It logs the rate each
// node sustained and how long after the last flow the peers held everything (on the
// 2-core development machine: 20,000 a second, 60-70 ms); those are figures, not
// assertions, since a busy CI machine may be slower.
func TestSyncUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("two seconds of load")
	}
	const (
		nodes   = 3
		perNode = 20000 // flows a second
		secs    = 2
	)
	t0 := time.Now()
	key := make([]byte, 32)
	type member struct {
		cn *membership.Node
		s  *Syncer
		tb *flow.Table
	}
	ms := make([]member, nodes)
	var seeds []string
	for i := range ms {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(41 + i)}), 0)
		cn, err := membership.New(membership.Config{Bind: addr, NodeName: fmt.Sprintf("load-%d", i), Join: seeds,
			Keys: [][]byte{key}}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		s := New(Config{Transport: cn, NodeID: uint16(i + 1), Refresh: -1, Logger: quiet})
		tb := flow.NewTable(flow.Config{MaxFlows: 1 << 18, NodeID: uint16(i + 1), Journal: s.Journal,
			Midstream: flow.MidstreamDrop, Logger: quiet}, nil, nil)
		cn.SetHandler(s)
		if err := cn.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cn.Shutdown(); s.Close() })
		seeds = append(seeds, cn.Addr().String())
		ms[i] = member{cn, s, tb}
	}
	waitFor(t, 20*time.Second, "the three nodes see each other", func() bool {
		for _, m := range ms {
			if len(m.cn.Peers()) != nodes-1 {
				return false
			}
		}
		return true
	})
	for _, m := range ms {
		m.s.Start(m.tb)
	}
	for _, m := range ms {
		<-m.s.Ready()
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Errorf("three nodes starting together took %v to be ready (a bulk request waited out its timeout?)", d)
	}

	// Each node creates its flows paced in 10 ms steps, on its own goroutine.
	start := time.Now()
	done := make(chan time.Duration, nodes)
	for i, m := range ms {
		go func() {
			const step = 10 * time.Millisecond
			per := perNode * int(step) / int(time.Second)
			k := 0
			for tick := range secs * int(time.Second/step) {
				if d := time.Until(start.Add(time.Duration(tick) * step)); d > 0 {
					time.Sleep(d) // pacing the load, not waiting for a result
				}
				now := time.Now().UnixNano()
				for range per {
					src := netip.AddrFrom4([4]byte{10, byte(i), byte(k >> 8), byte(k)})
					syn := &packet.Packet{Family: 4, Proto: packet.ProtoTCP, Src: src, Dst: server,
						SrcPort: uint16(1024 + k%60000), DstPort: 443, TCPFlags: packet.TCPSyn}
					m.tb.TrackMeta(7, syn, 60, meta(k), now)
					k++
				}
			}
			done <- time.Since(start)
		}()
	}
	var took time.Duration
	for range nodes {
		took = max(took, <-done)
	}
	total := nodes * perNode * secs
	sent := time.Now()
	waitFor(t, 60*time.Second, "every node holds every flow", func() bool {
		for _, m := range ms {
			if m.tb.Active() != total {
				return false
			}
		}
		return true
	})
	lag := time.Since(sent)
	rate := float64(perNode*secs) / took.Seconds()
	t.Logf("%d nodes, %.0f new flows/s each for %.1f s (%d flows in all); every node held all %d, %v after the last was created",
		nodes, rate, took.Seconds(), total, total, lag.Round(time.Millisecond))
	for i, m := range ms {
		st := m.s.Stats()
		t.Logf("node %d: out %d msgs %d B, in %d msgs %d B, queue dropped %d, gaps %d, stale %d",
			i, st.MessagesOut, st.BytesOut, st.MessagesIn, st.BytesIn, st.QueueDropped, st.Gaps, st.Errors[ReasonStale])
		if st.QueueDropped != 0 {
			t.Errorf("node %d dropped %d journal events under load", i, st.QueueDropped)
		}
	}
}
