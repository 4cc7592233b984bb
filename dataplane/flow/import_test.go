package flow

import (
	"testing"

	"weir/dataplane/packet"
	"weir/dataplane/policy"
)

func importedFlow() FlowState {
	return FlowState{ID: 0x1234, Scope: 7, Proto: packet.ProtoTCP, Src: server6, SrcPort: 40000,
		Dst: client6, DstPort: 443, Start: 100 * sec, Last: 110 * sec, State: StateEstablished,
		Action: policy.Drop, Rule: 3, AWS: *cookie(9),
		Tunnel: Tunnel{Encap: EncapGeneve, Src: eniA, Dst: sinkA, SrcPort: 5000, DstPort: 6081}}
}

func TestImport(t *testing.T) {
	tb, sk, dec := newTest(t, Config{})
	f := importedFlow() // the client (server6) is the Hi endpoint
	if !tb.Import(&f) || tb.Active() != 1 {
		t.Fatal("not imported")
	}
	fwd := tcp(server6, 40000, client6, 443, packet.TCPAck)
	if r := tb.Track(7, reverse(fwd, packet.TCPAck), 60, cookie(9), 111*sec); r.Created || r.FlowID != f.ID ||
		r.Action != policy.Drop || r.ToServer {
		t.Fatalf("reply after import: %+v", r)
	}
	if r := tb.Track(7, fwd, 50, cookie(9), 112*sec); r.Created || r.FlowID != f.ID || r.Action != policy.Drop || !r.ToServer {
		t.Fatalf("request after import: %+v", r)
	}
	if dec.calls.Load() != 0 {
		t.Fatal("the Decider ran for an imported flow")
	}
	// It carried traffic here: it ends with a record of that traffic.
	tb.Expire(1000 * sec)
	recs := sk.take()
	if len(recs) != 1 {
		t.Fatalf("records %+v", recs)
	}
	r := recs[0]
	if r.ID != f.ID || r.Src != server6 || r.Dst != client6 || r.PktsToServer != 1 || r.PktsToClient != 1 ||
		r.BytesToServer != 50 || r.Start.UnixNano() != f.Start || r.Action != policy.Drop || r.Rule != 3 ||
		r.Tunnel != f.Tunnel || r.AWS != f.AWS || r.State != StateEstablished {
		t.Fatalf("record %+v", r)
	}

	// One that carries nothing here ends silently, by timeout or by lookup.
	tb.Import(&f)
	g := f
	g.ID, g.SrcPort, g.Last = 0x5678, 40001, 400*sec
	tb.Import(&g)
	if n := tb.Expire(500 * sec); n != 1 {
		t.Fatalf("Expire = %d", n)
	}
	if tb.Active() != 1 {
		t.Fatalf("active %d", tb.Active())
	}
	if r := tb.Track(7, tcp(server6, 40001, client6, 443, packet.TCPSyn), 1, nil, 1000*sec); !r.Created {
		t.Fatalf("after timeout: %+v", r)
	}
	tb.Flush(0)
	if recs := sk.take(); len(recs) != 1 || recs[0].ID == g.ID {
		t.Fatalf("records %+v, want only the new flow's", recs)
	}
}

// The newer Last wins; an Ended event removes the flow only if it was imported.
func TestImportUpdate(t *testing.T) {
	tb, sk, _ := newTest(t, Config{})
	f := importedFlow()
	f.Action = policy.Allow
	tb.Import(&f)
	older := f
	older.Last, older.Action = f.Last-sec, policy.Drop
	if tb.Import(&older) {
		t.Fatal("older state accepted")
	}
	newer := f
	newer.Last, newer.State, newer.Action = f.Last+sec, StateClosed, policy.Drop
	if !tb.Import(&newer) {
		t.Fatal("newer state refused")
	}
	rec, _ := lookup(tb, 7, tcp(server6, 40000, client6, 443, 0))
	if rec.Action != policy.Drop || rec.State != StateClosed || rec.End.UnixNano() != newer.Last {
		t.Fatalf("after update: %+v", rec)
	}
	if f.ID = 0; tb.Import(&f) {
		t.Fatal("id 0 accepted")
	}
	ended := newer
	ended.Kind = JournalEnded
	if wrong := ended; func() bool { wrong.ID++; return tb.Import(&wrong) }() {
		t.Fatal("Ended of another flow id removed the flow")
	}
	if !tb.Import(&ended) || tb.Active() != 0 {
		t.Fatalf("Ended: active %d", tb.Active())
	}
	// A local flow is not removed by a peer's Ended, and keeps its counters when a
	// newer state arrives.
	p := tcp(client, 1, server, 443, packet.TCPSyn)
	r := tb.Track(0, p, 60, nil, sec)
	local := FlowState{ID: r.FlowID, Proto: packet.ProtoTCP, Src: client, SrcPort: 1, Dst: server, DstPort: 443,
		Start: sec, Last: 2 * sec, State: StateEstablished, Action: policy.Drop}
	tb.Import(&local)
	local.Kind = JournalEnded
	tb.Import(&local)
	tb.Flush(0)
	if recs := sk.take(); len(recs) != 1 || recs[0].PktsToServer != 1 || recs[0].Action != policy.Drop {
		t.Fatalf("local flow: %+v", recs)
	}
}

// A peer replaying a table's journal ends up with the same flows.
func TestJournalReplay(t *testing.T) {
	j := &journal{}
	a, _, _ := newTest(t, Config{Journal: j.add, MaxFlows: 1 << 12})
	b, bsink, bdec := newTest(t, Config{MaxFlows: 1 << 12})
	type flowAt struct {
		p   *packet.Packet
		res Result
	}
	var live []flowAt
	for i := range 300 {
		p := tcp(client, uint16(1000+i), server, 443, packet.TCPSyn)
		r := a.Track(uint64(i%3), p, 60, nil, sec)
		switch i % 3 {
		case 0: // answered
			a.Track(uint64(i%3), reverse(p, packet.TCPSyn|packet.TCPAck), 60, nil, 2*sec)
		case 1: // reset: it ends when a SYN restarts it
			a.Track(uint64(i%3), reverse(p, packet.TCPRst), 60, nil, 2*sec)
			r = a.Track(uint64(i%3), p, 60, nil, 3*sec)
		}
		if i%5 == 0 {
			a.SetAction(r.Handle, policy.Drop)
			r.Action = policy.Drop
		}
		live = append(live, flowAt{p, r})
	}
	a.FlushJournal()
	for _, ev := range j.take() {
		b.Import(&ev)
	}
	if a.Active() != b.Active() || b.Active() != len(live) {
		t.Fatalf("active %d, replayed %d, want %d", a.Active(), b.Active(), len(live))
	}
	for i, f := range live {
		r := b.Track(uint64(i%3), reverse(f.p, packet.TCPAck), 60, nil, 4*sec)
		if r.Created || r.FlowID != f.res.FlowID || r.Action != f.res.Action || r.ToServer {
			t.Fatalf("flow %d on the peer: %+v, want %+v", i, r, f.res)
		}
	}
	if bdec.calls.Load() != 0 || len(bsink.take()) != 0 {
		t.Fatal("the peer decided or emitted")
	}
}

// TestImportedCount: Imported counts the flows learned from peers that carried no
// packet here since, as they come, carry traffic, end and expire.
func TestImportedCount(t *testing.T) {
	tb, _, _ := newTest(t, Config{})
	mk := func(id uint64, port uint16) FlowState {
		return FlowState{Kind: JournalCreated, ID: id, Proto: packet.ProtoTCP, Src: client, SrcPort: port,
			Dst: server, DstPort: 443, Start: sec, Last: sec, State: StateEstablished}
	}
	a, b, c := mk(101, 40001), mk(102, 40002), mk(103, 40003)
	for _, f := range []*FlowState{&a, &b, &c} {
		if !tb.Import(f) {
			t.Fatal("not imported")
		}
	}
	tb.Track(0, tcp(client, 40004, server, 443, packet.TCPSyn), 60, nil, sec) // one of our own
	if n := tb.Imported(); n != 3 || tb.Active() != 4 {
		t.Fatalf("Imported %d of %d, want 3 of 4", n, tb.Active())
	}
	tb.Track(0, tcp(server, 443, client, 40001, packet.TCPAck), 60, nil, 2*sec) // a carries traffic here
	if n := tb.Imported(); n != 2 {
		t.Fatalf("after a packet: Imported %d, want 2", n)
	}
	ended := b
	ended.Kind = JournalEnded
	tb.Import(&ended)
	if n := tb.Imported(); n != 1 || tb.Active() != 3 {
		t.Fatalf("after an end: Imported %d of %d, want 1 of 3", n, tb.Active())
	}
	tb.Expire(sec + int64(DefaultTCPTimeout) + 10*sec)
	if n := tb.Imported(); n != 0 || tb.Active() != 0 {
		t.Fatalf("after expiry: Imported %d of %d, want 0 of 0", n, tb.Active())
	}
}
