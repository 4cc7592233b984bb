package flow

import (
	"testing"

	"weir/dataplane/packet"
)

// The first packet of a mirrored flow comes from the server (midstream): the
// record's Direction should be that of the client's packets.
func TestMidstreamDirectionIsTheClients(t *testing.T) {
	tb, _, _ := newTest(t, Config{})
	fromServer := tcp(server, 443, client, 40000, packet.TCPAck)
	m := Meta{Direction: DirectionEgress} // the server's packet leaves the ENI
	r := tb.TrackMeta(0, fromServer, 60, &m, sec)
	if r.ToServer {
		t.Fatal("oriented wrong")
	}
	rec, _ := lookup(tb, 0, fromServer)
	if rec.Direction != DirectionIngress {
		t.Errorf("record Direction %d, want ingress (%d): the client's packets go into the ENI", rec.Direction, DirectionIngress)
	}
}

// TestImportTurningFlowRoundTurnsItsDeltas: when a peer's Import says the other side
// started a flow this node already counts, the interval traffic turns round with the
// orientation, as the totals do.
func TestImportTurningFlowRoundTurnsItsDeltas(t *testing.T) {
	var deltas []Delta
	tb, _, _ := newTest(t, Config{OnInterval: func(_ *Record, d *Delta) { deltas = append(deltas, *d) }})
	syn := tcp(client, 40000, server, 443, packet.TCPSyn) // here: client -> server
	tb.Track(0, syn, 60, nil, sec)
	f := FlowState{Kind: JournalCreated, ID: 77, Proto: packet.ProtoTCP, Src: server, SrcPort: 443, Dst: client, DstPort: 40000,
		Start: 2 * sec, Last: 2 * sec, State: StateEstablished}
	if !tb.Import(&f) {
		t.Fatal("not imported")
	}
	tb.Interval(3 * sec)
	if len(deltas) != 1 {
		t.Fatalf("%d interval records, want 1", len(deltas))
	}
	if d := deltas[0]; d.PktsToServer != 0 || d.PktsToClient != 1 || d.BytesToClient != 60 {
		t.Errorf("delta %+v: the packet seen here went from the (new) server to the client", d)
	}
	rec, _ := lookup(tb, 0, syn)
	if rec.PktsToServer != 0 || rec.PktsToClient != 1 || rec.Src != server {
		t.Errorf("record %+v", rec)
	}
}
