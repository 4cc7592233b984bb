package flowsync

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"weir/cluster/flowsync/fakenet"
	"weir/dataplane/flow"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

const sec = int64(time.Second)

var (
	server = netip.MustParseAddr("10.1.0.80")
	quiet  = slog.New(slog.DiscardHandler)
)

type node struct {
	name string
	tb   *flow.Table
	s    *Syncer
	nd   *fakenet.Node
}

// dropPolicy drops flows to port 23 and allows the rest.
type dropPolicy struct{}

func (dropPolicy) Decide(p *packet.Packet) (policy.Action, int) {
	if p.DstPort == 23 {
		return policy.Drop, 4
	}
	return policy.Allow, 1
}

func newNode(t testing.TB, net *fakenet.Network, id uint16, cfg Config) *node {
	t.Helper()
	maxFlows := 1 << 17
	if _, ok := t.(*testing.B); ok {
		maxFlows = 1 << 19
	}
	n := &node{name: fmt.Sprintf("n%d", id), nd: nil}
	n.nd = net.Add(n.name)
	cfg.Transport, cfg.NodeID, cfg.Logger = n.nd, id, quiet
	n.s = New(cfg)
	n.tb = flow.NewTable(flow.Config{MaxFlows: maxFlows, NodeID: id, Journal: n.s.Journal,
		Midstream: flow.MidstreamDrop, Logger: quiet}, dropPolicy{}, nil)
	n.nd.Attach(n.s)
	n.s.Start(n.tb)
	t.Cleanup(func() {
		n.nd.Leave()
		n.s.Close()
	})
	return n
}

func cluster(t testing.TB, net *fakenet.Network, size int, cfg Config) []*node {
	nodes := make([]*node, size)
	for i := range nodes {
		nodes[i] = newNode(t, net, uint16(i+1), cfg)
	}
	return nodes
}

func tcp(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, flags uint8) *packet.Packet {
	return &packet.Packet{Family: packet.IPv4Version, Proto: packet.ProtoTCP, Src: src, Dst: dst,
		SrcPort: sport, DstPort: dport, TCPFlags: flags}
}

func reverse(p *packet.Packet, flags uint8) *packet.Packet {
	r := *p
	r.Src, r.Dst, r.SrcPort, r.DstPort, r.TCPFlags = p.Dst, p.Src, p.DstPort, p.SrcPort, flags
	return &r
}

func clientAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func meta(i int) *flow.Meta {
	return &flow.Meta{AWS: &geneve.AWS{EndpointID: 0xe1, FlowCookie: uint32(i),
		Present: 1<<geneve.AWSTypeEndpointID | 1<<geneve.AWSTypeFlowCookie},
		Tunnel: flow.Tunnel{Encap: flow.EncapGeneve, Src: netip.MustParseAddr("10.9.0.1"),
			Dst: netip.MustParseAddr("10.9.0.2"), SrcPort: uint16(40000 + i), DstPort: 6081}}
}

// handshake opens client i's flow to port on n and returns its id.
func handshake(t testing.TB, n *node, i int, port uint16, now int64) uint64 {
	syn := tcp(clientAddr(i), uint16(20000+i%40000), server, port, packet.TCPSyn)
	r := n.tb.TrackMeta(7, syn, 60, meta(i), now)
	if !r.Created {
		t.Fatalf("flow %d not created: %+v", i, r)
	}
	n.tb.TrackMeta(7, reverse(syn, packet.TCPSyn|packet.TCPAck), 60, meta(i), now+1)
	n.tb.TrackMeta(7, reverse(reverse(syn, 0), packet.TCPAck), 60, meta(i), now+2)
	return r.FlowID
}

// flows returns a node's flows by id.
func flows(tb *flow.Table) map[uint64]flow.FlowState {
	m := map[uint64]flow.FlowState{}
	tb.Export(func(b []flow.FlowState) bool {
		for _, f := range b {
			m[f.ID] = f
		}
		return true
	})
	return m
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func TestThreeNodes(t *testing.T) {
	net := fakenet.New(0, time.Millisecond, 1)
	cfg := Config{MaxDelay: 50 * time.Millisecond, Refresh: -1}
	ns := cluster(t, net, 3, cfg)
	a, b, c := ns[0], ns[1], ns[2]
	now := time.Now().UnixNano()
	allowed := handshake(t, a, 1, 443, now)
	dropped := handshake(t, a, 2, 23, now)
	short := handshake(t, a, 3, 443, now)
	want := flows(a.tb)
	if len(want) != 3 || want[dropped].Action != policy.Drop || want[allowed].State != flow.StateEstablished {
		t.Fatalf("on A: %+v", want)
	}
	took := waitFor(t, cfg.MaxDelay+2*time.Second, "flows on B and C", func() bool {
		for _, n := range []*node{b, c} {
			got := flows(n.tb)
			for id, w := range want {
				// Last may lag: a packet that changes nothing is journaled at most
				// once per JournalRefresh.
				g := got[id]
				w.Last, w.Kind = g.Last, g.Kind
				if g != w {
					return false
				}
			}
		}
		return true
	})
	t.Logf("3 flows on B and C after %v (MaxDelay %v)", took, cfg.MaxDelay)
	if took > cfg.MaxDelay+500*time.Millisecond {
		t.Errorf("took %v, MaxDelay %v", took, cfg.MaxDelay)
	}

	// GWLB moves the flows to B: the server's next segments find them.
	for _, tc := range []struct {
		id   uint64
		i    int
		port uint16
		act  policy.Action
	}{{allowed, 1, 443, policy.Allow}, {dropped, 2, 23, policy.Drop}} {
		reply := tcp(server, tc.port, clientAddr(tc.i), uint16(20000+tc.i), packet.TCPAck)
		r := b.tb.TrackMeta(7, reply, 60, meta(tc.i), now+sec)
		if r.Created || r.Midstream || r.FlowID != tc.id || r.Action != tc.act || r.ToServer {
			t.Fatalf("reply on B: %+v", r)
		}
	}
	// An unknown mid-stream segment on B is dropped: the flows above were not luck.
	if r := b.tb.TrackMeta(7, tcp(server, 443, clientAddr(99), 20099, packet.TCPAck), 60, meta(99), now+sec); !r.Midstream || r.FlowID != 0 {
		t.Fatalf("unknown flow on B: %+v", r)
	}

	// The third flow ends on A (reset, then expired): it goes from B and C.
	syn := tcp(clientAddr(3), 20003, server, 443, packet.TCPRst)
	a.tb.TrackMeta(7, syn, 40, meta(3), now+2*sec)
	a.tb.Expire(now + 100*sec)
	waitFor(t, cfg.MaxDelay+2*time.Second, "ended flow gone from B and C", func() bool {
		_, onB := flows(b.tb)[short]
		_, onC := flows(c.tb)[short]
		return !onB && !onC
	})
	if _, ok := flows(b.tb)[allowed]; !ok {
		t.Fatal("B lost the flow it carries")
	}
	for _, n := range ns {
		st := n.s.Stats()
		t.Logf("%s: %+v", n.name, st)
		if st.Errors != ([numReasons]uint64{}) || st.QueueDropped != 0 {
			t.Errorf("%s: errors %v dropped %d", n.name, st.Errors, st.QueueDropped)
		}
	}
}

// With 20% of the datagrams lost, every flow reaches every peer within one refresh
// period.
func TestLoss(t *testing.T) {
	net := fakenet.New(0.2, time.Millisecond, 2)
	cfg := Config{MaxDelay: 20 * time.Millisecond, Refresh: 500 * time.Millisecond}
	ns := cluster(t, net, 3, cfg)
	now := time.Now().UnixNano()
	const n = 20000 // some 100 datagrams: at 20% loss, none lost has a chance of 1e-10
	for i := range n {
		handshake(t, ns[0], i, 443, now)
	}
	want := flows(ns[0].tb)
	took := waitFor(t, cfg.Refresh+cfg.MaxDelay+3*time.Second, "all flows on B and C despite loss", func() bool {
		for _, p := range ns[1:] {
			got := flows(p.tb)
			for id, w := range want {
				if g := got[id]; g.ID != id || g.State != w.State || g.Action != w.Action {
					return false
				}
			}
		}
		return true
	})
	st := ns[1].s.Stats()
	t.Logf("%d flows on both peers after %v with %d datagrams lost; B: gaps %d, %d flows in", n, took, net.Lost.Load(), st.Gaps, st.FlowsIn)
	if net.Lost.Load() == 0 {
		t.Error("nothing was lost: the test proves nothing")
	}
}

// The transport reorders datagrams (memberlist hands a burst to the handler newest
// first): late ones within the window are imported, a number seen before is not,
// and a number is counted missing once it falls out of the window unseen.
func TestReorder(t *testing.T) {
	net := fakenet.New(0, 0, 11)
	ns := cluster(t, net, 1, Config{Refresh: -1})
	s, tb := ns[0].s, ns[0].tb
	send := func(seq uint64, i int) {
		f := gwlbFlow(i)
		f.Kind, f.ID = flow.JournalCreated, 2<<43|uint64(i)
		var e Encoder
		e.Reset(Header{Type: MsgUpdate, Node: 2, Epoch: 10, Seq: seq})
		e.Append(&f, MaxDatagram)
		s.HandleMessage("peer", e.Bytes())
	}
	check := func(what string, active int, stale, gaps uint64) {
		t.Helper()
		st := s.Stats()
		if n := len(flows(tb)); n != active || st.Errors[ReasonStale] != stale || st.Gaps != gaps {
			t.Fatalf("%s: %d flows, stale %d, gaps %d; want %d, %d, %d", what, n, st.Errors[ReasonStale], st.Gaps, active, stale, gaps)
		}
	}
	for seq := 100; seq >= 1; seq-- {
		send(uint64(seq), seq)
	}
	check("a burst newest first", 100, 0, 0)
	send(50, 1000)
	check("a number seen before", 100, 1, 0)
	// 101 to 103 never come; 104 does, then datagrams seqWindow later push them out
	// of the window (the window holds the seqWindow numbers up to the newest).
	send(104, 104)
	send(100+seqWindow, 105)
	check("missing numbers still in the window", 102, 1, 0)
	send(103+seqWindow, 106)
	check("missing numbers out of the window", 103, 1, 3)
	send(103, 103)
	check("a number out of the window", 103, 2, 3)
	send(105, 107)
	check("a late number in the window", 104, 2, 3)
	send(104+2*seqWindow+10, 108)
	// Out of the window unseen: of the numbers 104 to 103+seqWindow all but 104,
	// 105, 100+seqWindow and 103+seqWindow, and the 11 after them never in it.
	check("a jump beyond the window", 105, 2, 3+seqWindow-4+11)
}

// An update older than what a sender already told never rolls a flow back.
func TestStale(t *testing.T) {
	net := fakenet.New(0, 0, 3)
	ns := cluster(t, net, 1, Config{Refresh: -1})
	s, tb := ns[0].s, ns[0].tb
	f := gwlbFlow(1)
	f.Kind = flow.JournalCreated
	f.ID = 2<<43 | 5
	send := func(epoch, seq uint64, f flow.FlowState) {
		var e Encoder
		e.Reset(Header{Type: MsgUpdate, Node: 2, Epoch: epoch, Seq: seq})
		e.Append(&f, MaxDatagram)
		s.HandleMessage("peer", e.Bytes())
	}
	send(10, 5, f)
	newer := f
	newer.Last, newer.State, newer.Action = f.Last+sec, flow.StateClosing, policy.Allow
	send(10, 6, newer)
	older := f
	older.Last, older.State = f.Last-sec, flow.StateNew
	send(10, 7, older) // a fresh datagram with an old state: Import keeps the newer Last
	send(10, 6, f)     // a late datagram: dropped
	send(9, 100, f)    // the sender's previous life: dropped
	got := flows(tb)[f.ID]
	if got.Last != newer.Last || got.State != flow.StateClosing || got.Action != policy.Allow {
		t.Fatalf("rolled back: %+v", got)
	}
	ended := newer
	ended.Kind = flow.JournalEnded
	send(10, 8, ended)
	send(10, 7, newer) // late again: must not revive it
	if _, ok := flows(tb)[f.ID]; ok {
		t.Fatal("a late update revived an ended flow")
	}
	send(11, 1, newer) // the sender restarted: a new epoch starts over
	if _, ok := flows(tb)[f.ID]; !ok {
		t.Fatal("new epoch ignored")
	}
	st := s.Stats()
	if st.Errors[ReasonStale] != 3 || st.Gaps != 0 {
		t.Fatalf("stale %d gaps %d", st.Errors[ReasonStale], st.Gaps)
	}
}

// A node that joins later bulk-syncs the table in chunks.
func TestBulkSync(t *testing.T) {
	net := fakenet.New(0, time.Millisecond, 4)
	cfg := Config{MaxDelay: 50 * time.Millisecond, Refresh: -1, BulkTimeout: 30 * time.Second, BulkChunk: 128 << 10}
	ns := cluster(t, net, 3, cfg)
	now := time.Now().UnixNano()
	const n = 50000
	for i := range n {
		handshake(t, ns[i%3], i, 443, now)
	}
	waitFor(t, 10*time.Second, "every node holds the fleet's flows", func() bool {
		return ns[0].tb.Active() == n && ns[1].tb.Active() == n && ns[2].tb.Active() == n
	})
	servedBefore := uint64(0)
	for _, p := range ns {
		servedBefore += p.s.Stats().BulkServed
	}
	d := newNode(t, net, 4, cfg)
	select {
	case <-d.s.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("not ready")
	}
	st := d.s.Stats()
	if d.tb.Active() != n || st.BulkFlows != n || st.BulkTimedOut {
		t.Fatalf("D holds %d flows, bulk %d, timed out %v", d.tb.Active(), st.BulkFlows, st.BulkTimedOut)
	}
	served := uint64(0)
	for _, p := range ns {
		served += p.s.Stats().BulkServed
	}
	if served-servedBefore != 1 || st.MessagesIn < n*60/uint64(cfg.BulkChunk) {
		t.Fatalf("served %d, D received %d messages", served, st.MessagesIn)
	}
	t.Logf("D bulk-synced %d flows in %v, %d messages, %d bytes (%.1f bytes/flow)", n, st.BulkDuration,
		st.MessagesIn, st.BytesIn, float64(st.BytesIn)/n)
}

// With the only peer hung, Ready closes at BulkTimeout.
func TestBulkTimeout(t *testing.T) {
	net := fakenet.New(0, 0, 5)
	cfg := Config{Refresh: -1, BulkTimeout: 300 * time.Millisecond}
	a := newNode(t, net, 1, cfg)
	a.nd.Mute(true)
	start := time.Now()
	d := newNode(t, net, 2, cfg)
	select {
	case <-d.s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("Ready never closed: stuck forever")
	}
	if e := time.Since(start); e < cfg.BulkTimeout {
		t.Fatalf("ready after %v, before BulkTimeout", e)
	}
	if !d.s.Stats().BulkTimedOut {
		t.Fatal("timeout not reported")
	}
}

// If the bulk peer leaves mid-way, another is asked.
func TestBulkPeerLeaves(t *testing.T) {
	net := fakenet.New(0, 0, 6)
	cfg := Config{Refresh: -1, BulkTimeout: 20 * time.Second}
	ns := cluster(t, net, 2, cfg)
	now := time.Now().UnixNano()
	for i := range 100 {
		handshake(t, ns[1], i, 443, now)
	}
	waitFor(t, 5*time.Second, "A holds B's flows", func() bool { return ns[0].tb.Active() == 100 })
	ns[0].nd.Mute(true)
	ns[1].nd.Mute(true)
	d := newNode(t, net, 3, cfg)
	// Whichever it asked is hung; it leaves, so the other is asked.
	d.s.bmu.Lock()
	asked := d.s.bulkPeer
	d.s.bmu.Unlock()
	for _, p := range ns {
		if p.name == asked {
			p.nd.Leave()
		} else {
			p.nd.Mute(false)
		}
	}
	select {
	case <-d.s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	if d.s.Stats().BulkTimedOut || d.tb.Active() != 100 {
		t.Fatalf("timed out %v, %d flows", d.s.Stats().BulkTimedOut, d.tb.Active())
	}
}

// Nodes of a fleet start together: a node asked for its table before it has
// started syncing refuses, and the asker asks again instead of waiting for
// BulkTimeout with nothing coming.
func TestBulkRefusedAsksAgain(t *testing.T) {
	net := fakenet.New(0, time.Millisecond, 9)
	cfg := Config{Refresh: -1, BulkTimeout: 30 * time.Second, BulkRetry: 50 * time.Millisecond}
	// B holds flows, is in the fleet, and has not started its Syncer yet.
	b := &node{name: "n2", nd: net.Add("n2")}
	bcfg := cfg
	bcfg.Transport, bcfg.NodeID, bcfg.Logger = b.nd, 2, quiet
	b.s = New(bcfg)
	b.tb = flow.NewTable(flow.Config{MaxFlows: 1024, NodeID: 2, Journal: b.s.Journal,
		Midstream: flow.MidstreamDrop, Logger: quiet}, dropPolicy{}, nil)
	b.nd.Attach(b.s)
	t.Cleanup(func() {
		b.nd.Leave()
		b.s.Close()
	})
	now := time.Now().UnixNano()
	for i := range 10 {
		handshake(t, b, i, 443, now)
	}
	start := time.Now()
	a := newNode(t, net, 1, cfg)
	waitFor(t, 5*time.Second, "B refuses A's request", func() bool { return a.s.Stats().BulkRefusals > 0 })
	b.s.Start(b.tb)
	select {
	case <-a.s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("A not ready 5 s after B started: the refusal was not followed by another request")
	}
	if st := a.s.Stats(); st.BulkTimedOut || a.tb.Active() != 10 {
		t.Fatalf("timed out %v, A holds %d flows of B's 10", st.BulkTimedOut, a.tb.Active())
	}
	t.Logf("A synced %v after it started, %d refusals", time.Since(start).Round(time.Millisecond), a.s.Stats().BulkRefusals)
}

// A bulk request nothing answers (here the peer drops it; in a fleet starting
// together, the refusal of a peer that did not know the asker yet is lost) is made
// again, rather than waiting for BulkTimeout.
func TestBulkUnansweredAsksAgain(t *testing.T) {
	net := fakenet.New(0, 0, 10)
	cfg := Config{Refresh: -1, BulkTimeout: 30 * time.Second, BulkRetry: 20 * time.Millisecond}
	b := newNode(t, net, 2, cfg)
	now := time.Now().UnixNano()
	for i := range 10 {
		handshake(t, b, i, 443, now)
	}
	b.nd.Mute(true)
	a := newNode(t, net, 1, cfg)
	sess := func() uint64 {
		a.s.bmu.Lock()
		defer a.s.bmu.Unlock()
		return a.s.bulkSess
	}
	waitFor(t, 5*time.Second, "A asks again", func() bool { return sess() >= 2 })
	b.nd.Mute(false)
	select {
	case <-a.s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("A not ready 5 s after B answers again")
	}
	if st := a.s.Stats(); st.BulkTimedOut || a.tb.Active() != 10 {
		t.Fatalf("timed out %v, A holds %d flows of B's 10", st.BulkTimedOut, a.tb.Active())
	}
}

// Journal never blocks: with the sender stalled, thousands of events return at
// once and the excess is counted.
func TestJournalNeverBlocks(t *testing.T) {
	s := New(Config{Transport: fakenet.New(0, 0, 7).Add("x"), Queue: 1000, Logger: quiet})
	// Not started: nothing drains the queue, as with a sender stuck in Broadcast.
	ev := make([]flow.FlowState, 100)
	for i := range ev {
		ev[i] = gwlbFlow(i)
	}
	done := make(chan struct{})
	go func() {
		for range 100 {
			s.Journal(0, ev)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Journal blocked")
	}
	if st := s.Stats(); st.QueueDropped != 100*100-1000 {
		t.Fatalf("dropped %d", st.QueueDropped)
	}
	if n := testing.AllocsPerRun(100, func() { s.Journal(0, ev) }); n != 0 {
		t.Fatalf("Journal allocates %v", n)
	}
}

// BenchmarkFleet creates flows on three nodes at once, 3000 an iteration (1000 on
// each), and waits until every node holds every flow: flows/s is the rate the
// fleet keeps in sync, B-out/flow what each flow cost on the wire.
func BenchmarkFleet(b *testing.B) {
	net := fakenet.New(0, 0, 8)
	ns := cluster(b, net, 3, Config{MaxDelay: 20 * time.Millisecond, Refresh: time.Second})
	now := time.Now().UnixNano()
	const per = 3000
	b.ReportAllocs()
	total := 0
	for b.Loop() {
		for j := range per {
			handshake(b, ns[j%3], total+j, 443, now)
		}
		total += per
		if total > 1<<19-per {
			b.Fatal("table full: run with a smaller -benchtime")
		}
		waitFor(b, time.Minute, "fleet in sync", func() bool {
			for _, n := range ns {
				if n.tb.Active() != total {
					return false
				}
			}
			return true
		})
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "flows/s")
	var bytes, dropped uint64
	for _, n := range ns {
		st := n.s.Stats()
		bytes += st.BytesOut
		dropped += st.QueueDropped + st.JournalLost
	}
	b.ReportMetric(float64(bytes)/float64(total), "B-out/flow")
	b.ReportMetric(float64(dropped), "dropped")
}

// TestBulkPeerStarting: nodes of a fleet start together, so a bulk request can reach
// a peer that has not started syncing itself. It refuses at once, and the asker asks
// again, rather than waiting out BulkTimeout (which would keep it unhealthy).
func TestBulkPeerStarting(t *testing.T) {
	net := fakenet.New(0, time.Millisecond, 6)
	cfg := Config{Refresh: -1, BulkTimeout: time.Hour}
	// a: attached to the network but not started yet (no table).
	a := &node{name: "n1"}
	a.nd = net.Add(a.name)
	acfg := cfg
	acfg.Transport, acfg.NodeID, acfg.Logger = a.nd, 1, quiet
	a.s = New(acfg)
	a.tb = flow.NewTable(flow.Config{MaxFlows: 1 << 12, NodeID: 1, Journal: a.s.Journal, Logger: quiet}, dropPolicy{}, nil)
	a.nd.Attach(a.s)
	t.Cleanup(func() { a.nd.Leave(); a.s.Close() })

	d := newNode(t, net, 2, cfg) // asks a, which refuses
	waitFor(t, 10*time.Second, "d asked a", func() bool { return a.s.Stats().MessagesIn > 0 })
	now := time.Now().UnixNano()
	handshake(t, &node{name: a.name, tb: a.tb, s: a.s, nd: a.nd}, 1, 443, now)
	a.s.Start(a.tb) // a starts: d's next request is served
	select {
	case <-d.s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("d never became ready: a refusal was waited out")
	}
	if st := d.s.Stats(); st.BulkTimedOut || d.tb.Active() != 1 {
		t.Fatalf("d: timed out %v, %d flows; want a's one flow by bulk sync", st.BulkTimedOut, d.tb.Active())
	}
}

// TestReordered: the best-effort transport may deliver datagrams out of order; a
// late one not seen before is imported (its flows would otherwise wait for the next
// refresh), and no gap stays counted; a duplicate is dropped.
func TestReordered(t *testing.T) {
	net := fakenet.New(0, 0, 7)
	ns := cluster(t, net, 1, Config{Refresh: -1})
	s, tb := ns[0].s, ns[0].tb
	send := func(seq uint64, f flow.FlowState) {
		var e Encoder
		e.Reset(Header{Type: MsgUpdate, Node: 2, Epoch: 10, Seq: seq})
		e.Append(&f, MaxDatagram)
		s.HandleMessage("peer", e.Bytes())
	}
	x, y := gwlbFlow(1), gwlbFlow(2)
	x.Kind, y.Kind = flow.JournalCreated, flow.JournalCreated
	x.ID, y.ID = 2<<43|1, 2<<43|2
	send(1, x)
	send(3, x) // 2 is late
	send(2, y)
	if _, ok := flows(tb)[y.ID]; !ok {
		t.Fatal("the flow of a datagram that arrived out of order was dropped")
	}
	send(2, y) // a duplicate
	if st := s.Stats(); st.Errors[ReasonStale] != 1 || st.Gaps != 0 {
		t.Fatalf("stale %d (want the duplicate), gaps %d (want none: the late one arrived)", st.Errors[ReasonStale], st.Gaps)
	}
}

// TestStatus: the sync's status says it is ready and when each peer was last heard.
func TestStatus(t *testing.T) {
	net := fakenet.New(0, time.Millisecond, 8)
	ns := cluster(t, net, 2, Config{MaxDelay: 10 * time.Millisecond, Refresh: -1})
	handshake(t, ns[0], 1, 443, time.Now().UnixNano())
	// Ready comes when the node's start-up (its bulk sync) is over, which
	// may be just after it first hears its peer.
	waitFor(t, 5*time.Second, "n2 ready and heard n1", func() bool {
		st := ns[1].s.Status()
		return st.Ready && len(st.Peers) == 1
	})
	st := ns[1].s.Status()
	if !st.Ready || st.Peers[0].Peer != ns[0].name || st.Peers[0].LastMessage.IsZero() || st.Peers[0].LastMessageAgo == "" {
		t.Errorf("status %+v", st)
	}
}

// A flow detection blocks on one node (SetAction IPSDrop, as the detection stage
// does) is blocked on its peers: when the GWLB moves it, the peer drops it too.
func TestIPSVerdictSynced(t *testing.T) {
	net := fakenet.New(0, time.Millisecond, 12)
	cfg := Config{MaxDelay: 50 * time.Millisecond, Refresh: -1}
	ns := cluster(t, net, 2, cfg)
	a, b := ns[0], ns[1]
	now := time.Now().UnixNano()
	id := handshake(t, a, 1, 443, now)
	syn := tcp(clientAddr(1), 20001, server, 443, packet.TCPAck)
	r := a.tb.TrackMeta(7, syn, 60, meta(1), now+3)
	if !a.tb.SetAction(r.Handle, policy.IPSDrop) {
		t.Fatal("SetAction on A failed")
	}
	waitFor(t, cfg.MaxDelay+2*time.Second, "the blocked verdict on B", func() bool {
		return flows(b.tb)[id].Action == policy.IPSDrop
	})
	reply := tcp(server, 443, clientAddr(1), 20001, packet.TCPAck)
	if got := b.tb.TrackMeta(7, reply, 60, meta(1), now+sec); got.FlowID != id || got.Action != policy.IPSDrop {
		t.Fatalf("the blocked flow's next packet on B: %+v", got)
	}
}
