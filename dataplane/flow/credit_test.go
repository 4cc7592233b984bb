package flow

import (
	"testing"
	"time"

	"weir/dataplane/packet"
)

// TestResultStateAndPackets: Result says the flow's state after the packet and
// how many packets it carried, which the XDP fast path decides by.
func TestResultStateAndPackets(t *testing.T) {
	tb, _, _ := newTest(t, Config{})
	syn := tcp(client, 40000, server, 443, packet.TCPSyn)
	steps := []struct {
		p     *packet.Packet
		state State
	}{
		{syn, StateNew},
		{reverse(syn, packet.TCPSyn|packet.TCPAck), StateEstablished},
		{withFlags(syn, packet.TCPAck), StateEstablished},
		{withFlags(syn, packet.TCPFin|packet.TCPAck), StateClosing},
		{reverse(syn, packet.TCPFin|packet.TCPAck), StateClosed},
	}
	for i, s := range steps {
		r := tb.Track(1, s.p, 60, nil, int64(i+1)*sec)
		if r.State != s.state || r.Packets != uint64(i+1) {
			t.Errorf("packet %d: state %v, %d packets; want %v, %d", i+1, r.State, r.Packets, s.state, i+1)
		}
	}
}

// TestCredit: credited traffic counts as tracked traffic in the record, the
// flow-log interval and the idle timeout, and refreshes the flow for peers
// once a period; a credit to an ended flow reports false.
func TestCredit(t *testing.T) {
	j := &journal{}
	var deltas []Delta
	tb, ends, _ := newTest(t, Config{Journal: j.add, JournalRefresh: 10 * time.Second, OtherTimeout: 30 * time.Second,
		OnInterval: func(_ *Record, d *Delta) { deltas = append(deltas, *d) }})
	p := udp(client, 5000, server, 53)
	tb.Track(1, p, 100, nil, 1*sec)
	r := tb.Track(1, reverse(p, 0), 200, nil, 2*sec)
	tb.FlushJournal()
	j.take()

	// 2^32 packets one way: the packed counter carries into its high bits.
	c := Credit{Packets: [2]uint64{1 << 32, 3}, Bytes: [2]uint64{1000, 600}, First: 3 * sec, Last: 25 * sec}
	if !tb.Credit(r.Handle, &c) {
		t.Fatal("Credit to a live flow: false")
	}
	tb.FlushJournal()
	if ev := j.take(); len(ev) != 1 || ev[0].Kind != JournalRefreshed || ev[0].Last != 25*sec {
		t.Errorf("journal after a credit into a new period: %+v, want one refresh at 25 s", ev)
	}
	if !tb.Credit(r.Handle, &Credit{Packets: [2]uint64{1, 0}, Bytes: [2]uint64{10, 0}, Last: 26 * sec}) {
		t.Fatal("second Credit: false")
	}
	tb.FlushJournal()
	if ev := j.take(); len(ev) != 0 {
		t.Errorf("journal after a credit in the same period: %+v, want none", ev)
	}
	rec, ok := lookup(tb, 1, p)
	if !ok {
		t.Fatal("flow gone")
	}
	if rec.PktsToServer != 1<<32+2 || rec.PktsToClient != 4 || rec.BytesToServer != 1110 || rec.BytesToClient != 800 {
		t.Errorf("record counts %d/%d packets %d/%d bytes, want %d/4 and 1110/800",
			rec.PktsToServer, rec.PktsToClient, rec.BytesToServer, rec.BytesToClient, uint64(1<<32+2))
	}
	if rec.End != time.Unix(0, 26*sec) {
		t.Errorf("record end %v, want 26 s", rec.End)
	}

	// The interval holds tracked and credited packets, first and last each way.
	tb.Interval(27 * sec)
	if len(deltas) != 1 {
		t.Fatalf("%d interval records, want 1", len(deltas))
	}
	d := deltas[0]
	if d.PktsToServer != 1<<32+2 || d.PktsToClient != 4 || d.BytesToClient != 800 ||
		d.FirstToServer != time.Unix(0, 1*sec) || d.LastToServer != time.Unix(0, 26*sec) ||
		d.FirstToClient != time.Unix(0, 2*sec) || d.LastToClient != time.Unix(0, 25*sec) {
		t.Errorf("interval %+v", d)
	}

	// Credited time keeps the flow from expiring: 30 s idle from 26 s.
	if n := tb.Expire(50 * sec); n != 0 {
		t.Errorf("Expire at 50 s ended %d flows, want 0 (last packet credited at 26 s)", n)
	}
	if n := tb.Expire(57 * sec); n != 1 {
		t.Errorf("Expire at 57 s ended %d flows, want 1", n)
	}
	if got := ends.take(); len(got) != 1 || got[0].PktsToServer != 1<<32+2 {
		t.Errorf("ended records %+v", got)
	}
	if tb.Credit(r.Handle, &Credit{Packets: [2]uint64{1, 0}, Last: 58 * sec}) {
		t.Error("Credit to an ended flow: true")
	}
}

// TestCreditAllocs: crediting allocates nothing.
func TestCreditAllocs(t *testing.T) {
	tb, _, _ := newTest(t, Config{})
	r := tb.Track(1, udp(client, 5000, server, 53), 100, nil, sec)
	c := Credit{Packets: [2]uint64{1, 1}, Bytes: [2]uint64{100, 100}, Last: 2 * sec}
	if n := testing.AllocsPerRun(100, func() { c.Last++; tb.Credit(r.Handle, &c) }); n != 0 {
		t.Errorf("Credit allocates %.1f times", n)
	}
}

// TestSetEnding: the ending function's credit goes into the flow before its
// record, however it ends (here: replaced by a SYN, expired), and only for
// flows tracked here; cleared, it is not called.
func TestSetEnding(t *testing.T) {
	tb, ends, _ := newTest(t, Config{ClosedTimeout: 5 * time.Second})
	var calls []uint64
	tb.SetEnding(func(id uint64, c *Credit) {
		calls = append(calls, id)
		c.Packets = [2]uint64{10, 20}
		c.Bytes = [2]uint64{1000, 2000}
		c.Last = 9 * sec
	})
	syn := tcp(client, 40000, server, 443, packet.TCPSyn)
	r1 := tb.Track(1, syn, 60, nil, 1*sec)
	tb.Track(1, reverse(syn, packet.TCPSyn|packet.TCPAck), 60, nil, 2*sec)
	tb.Track(1, withFlags(syn, packet.TCPFin|packet.TCPAck), 60, nil, 3*sec)
	tb.Track(1, reverse(syn, packet.TCPFin|packet.TCPAck), 60, nil, 4*sec)
	// A new SYN on the closed flow replaces it.
	r2 := tb.Track(1, syn, 60, nil, 10*sec)
	if r2.FlowID == r1.FlowID {
		t.Fatal("the SYN did not start a new flow")
	}
	got := ends.take()
	if len(calls) != 1 || calls[0] != r1.FlowID || len(got) != 1 {
		t.Fatalf("ending called for %v, %d records; want the replaced flow once", calls, len(got))
	}
	if rec := got[0]; rec.PktsToServer != 12 || rec.PktsToClient != 22 || rec.BytesToServer != 1120 ||
		rec.BytesToClient != 2120 || rec.End != time.Unix(0, 9*sec) {
		t.Errorf("replaced flow's record %+v, want the ending credit added", rec)
	}
	tb.SetEnding(nil)
	tb.Expire(1000 * sec)
	if got := ends.take(); len(got) != 1 || len(calls) != 1 || got[0].PktsToServer != 1 {
		t.Errorf("after SetEnding(nil): %d more calls, records %+v", len(calls)-1, got)
	}
}
