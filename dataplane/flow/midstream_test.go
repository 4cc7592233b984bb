package flow

import (
	"log/slog"
	"net/netip"
	"testing"

	"weir/dataplane/packet"
	"weir/dataplane/policy"
)

// allow tcp dst_port 443, default drop.
var https = &policy.Policy{Default: policy.Drop, Rules: []policy.Rule{
	{Action: policy.Allow, Proto: int(packet.ProtoTCP), DstPort: policy.PortRange{Lo: 443, Hi: 443}},
}}

func TestMidstreamAllow(t *testing.T) {
	tb := NewTable(Config{MaxFlows: 64, Logger: slog.New(slog.DiscardHandler)}, https, nil)
	// The server speaks first (the flow was evicted, or began on another node).
	fromServer := tcp(server, 443, client, 40000, packet.TCPAck|packet.TCPPsh)
	r := tb.Track(0, fromServer, 1400, nil, sec)
	if !r.Created || !r.Midstream || r.ToServer || r.Action != policy.Allow {
		t.Fatalf("server's packet: %+v, want a new flow, to the client, allowed", r)
	}
	if e, _ := lookup(tb, 0, fromServer); e.State != StateNew || e.Src != client || e.DstPort != 443 ||
		e.PktsToClient != 1 || e.PktsToServer != 0 {
		t.Fatalf("flow %+v", e)
	}
	c := tb.Track(0, reverse(fromServer, packet.TCPAck), 60, nil, 2*sec)
	if c.Created || c.Midstream || !c.ToServer || c.Action != policy.Allow || c.FlowID != r.FlowID {
		t.Fatalf("client's packet: %+v", c)
	}
	if e, _ := lookup(tb, 0, fromServer); e.State != StateEstablished {
		t.Fatalf("state %v after both directions", e.State)
	}
	// A bare SYN is no midstream packet.
	if r := tb.Track(0, tcp(client, 40001, server, 443, packet.TCPSyn), 60, nil, sec); r.Midstream || !r.ToServer {
		t.Fatalf("SYN: %+v", r)
	}
}

// Who is taken for the server of a flow seen midstream.
func TestMidstreamOrientation(t *testing.T) {
	tb := NewTable(Config{MaxFlows: 64, Logger: slog.New(slog.DiscardHandler)}, nil, nil)
	for _, tc := range []struct {
		name              string
		sport, dport      uint16
		flags             uint8
		senderIsTheClient bool
	}{
		{"SYN-ACK from a high port", 50000, 40000, packet.TCPSyn | packet.TCPAck, false},
		{"well-known source", 22, 40000, packet.TCPAck, false},
		{"well-known destination", 40000, 22, packet.TCPAck, true},
		{"both ephemeral, lower source", 8443, 50000, packet.TCPAck, false},
		{"both ephemeral, lower destination", 50000, 8443, packet.TCPFin | packet.TCPAck, true},
		{"both well-known", 443, 80, packet.TCPAck, true},
		{"equal ports", 7000, 7000, packet.TCPAck, true},
	} {
		p := tcp(client, tc.sport, server, tc.dport, tc.flags)
		r := tb.Track(uint64(len(tc.name)), p, 1, nil, 0)
		if !r.Created || !r.Midstream || r.ToServer != tc.senderIsTheClient {
			t.Errorf("%s: %+v, want ToServer %v", tc.name, r, tc.senderIsTheClient)
		}
	}
}

func TestMidstreamDrop(t *testing.T) {
	tb, sk, _ := newTest(t, Config{Midstream: MidstreamDrop})
	tb.decide = https
	fromServer := tcp(server, 443, client, 40000, packet.TCPAck)
	if r := tb.Track(0, fromServer, 60, nil, sec); !r.Midstream || r.Created || r.FlowID != 0 || r.Action != policy.Drop {
		t.Fatalf("midstream packet: %+v", r)
	}
	if tb.Active() != 0 {
		t.Fatal("a flow was created")
	}
	// A SYN-ACK carries a SYN: the flow is created, with its sender as the server.
	r := tb.Track(0, withFlags(fromServer, packet.TCPSyn|packet.TCPAck), 60, nil, sec)
	if !r.Created || !r.Midstream || r.ToServer || r.Action != policy.Allow {
		t.Fatalf("SYN-ACK: %+v", r)
	}
	// A flow found expired by a midstream packet ends and is not replaced.
	tb.Track(0, reverse(fromServer, packet.TCPAck), 60, nil, 2*sec)
	if r := tb.Track(0, fromServer, 60, nil, 1000*sec); !r.Midstream || r.FlowID != 0 || r.Action != policy.Drop {
		t.Fatalf("after timeout: %+v", r)
	}
	if recs := sk.take(); len(recs) != 1 || recs[0].Reason != EndTimeout || tb.Active() != 0 {
		t.Fatalf("records %+v, active %d", recs, tb.Active())
	}
	if r := tb.Track(0, reverse(fromServer, packet.TCPSyn), 60, nil, 1001*sec); !r.Created || r.Midstream || r.Action != policy.Allow {
		t.Fatalf("SYN: %+v", r)
	}
}

func TestMidstreamAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("alloc counts")
	}
	tb := NewTable(Config{MaxFlows: 1 << 12, Logger: slog.New(slog.DiscardHandler)}, https, nil)
	ps := make([]*packet.Packet, 1000)
	for i := range ps {
		ps[i] = tcp(server, 443, netip.AddrFrom4([4]byte{10, 3, byte(i >> 8), byte(i)}), 40000, packet.TCPAck)
	}
	for i := range 3000 { // grow the shards first
		tb.Track(uint64(i+1), ps[0], 1, nil, 0)
	}
	i := 0
	if a := testing.AllocsPerRun(len(ps)-1, func() {
		tb.Track(0, ps[i], 1, nil, 0)
		i++
	}); a != 0 {
		t.Errorf("midstream create: %v allocs", a)
	}
}

// TestHandshakeProcessedLate: the two directions of a connection reach different
// workers, and the server's worker runs ahead: the SYN-ACK, and even the server's
// FIN, are tracked before the client's SYN, which was received first. The flow is
// one flow, its client the SYN's sender, its start the SYN's time; the late SYN
// neither restarts nor turns it round.
func TestHandshakeProcessedLate(t *testing.T) {
	syn := tcp(client, 40000, server, 8080, packet.TCPSyn)
	for _, tc := range []struct {
		name   string
		server []uint8 // flags of the server's packets tracked before the SYN
	}{
		{"SYN-ACK first", []uint8{packet.TCPSyn | packet.TCPAck}},
		{"server's FIN first", []uint8{packet.TCPSyn | packet.TCPAck, packet.TCPAck | packet.TCPPsh, packet.TCPFin | packet.TCPAck}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, sk, _ := newTest(t, Config{})
			// Receive times: the SYN at 10, the server's packets from 11 on.
			var first Result
			for i, f := range tc.server {
				r := tb.Track(0, reverse(syn, f), 60, nil, sec+int64(11+i))
				if i == 0 {
					first = r
				}
				if r.ToServer {
					t.Fatalf("server's packet %d taken for the client's", i)
				}
			}
			r := tb.Track(0, syn, 60, nil, sec+10)
			if r.Created || r.FlowID != first.FlowID || !r.ToServer {
				t.Fatalf("late SYN: %+v, want the flow %d, to the server", r, first.FlowID)
			}
			tb.Track(0, withFlags(syn, packet.TCPAck), 60, nil, sec+20)
			e, ok := lookup(tb, 0, syn)
			if !ok || e.Src != client || e.SrcPort != 40000 || e.Dst != server || e.DstPort != 8080 {
				t.Fatalf("flow %+v, want client 10.0.0.1:40000 to server :8080", e)
			}
			if e.Start.UnixNano() != sec+10 || e.PktsToServer != 2 || e.PktsToClient != uint64(len(tc.server)) {
				t.Fatalf("flow %+v: want start at the SYN, 2 packets to the server, %d to the client", e, len(tc.server))
			}
			if e.TCPFlagsToServer&packet.TCPSyn == 0 {
				t.Fatal("the SYN is not in the flow's flags")
			}
			if recs := sk.take(); len(recs) != 0 {
				t.Fatalf("flows ended: %+v", recs)
			}
			// A new connection on the 5-tuple, after this one, still restarts it.
			if r := tb.Track(0, syn, 60, nil, sec+30); len(tc.server) > 1 && (!r.Created || r.FlowID == first.FlowID) {
				t.Fatalf("a SYN after the flow's last packet: %+v, want a new flow", r)
			}
		})
	}
}

// TestLateSYNOnClosedMidstreamFlow: a flow first seen mid-stream (no SYN either way)
// that closed. A bare SYN received before the flow's newest packet belongs to this
// connection (a worker ran ahead) and joins it; one received after it is a new
// connection on the 5-tuple and restarts the flow.
func TestLateSYNOnClosedMidstreamFlow(t *testing.T) {
	for _, tc := range []struct {
		name    string
		at      int64 // the SYN's receive time
		restart bool
	}{
		{"received before the last packet", sec + 5, false},
		{"received after the last packet", sec + 13, true}, // within the closed timeout: the rule decides, not expiry
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, _, _ := newTest(t, Config{})
			syn := tcp(client, 40000, server, 8080, packet.TCPSyn)
			data := withFlags(syn, packet.TCPAck|packet.TCPPsh)
			first := tb.Track(0, data, 60, nil, sec+10) // mid-stream: the flow starts here
			tb.Track(0, reverse(syn, packet.TCPAck|packet.TCPFin), 60, nil, sec+11)
			tb.Track(0, withFlags(syn, packet.TCPAck|packet.TCPFin), 60, nil, sec+12)
			r := tb.Track(0, syn, 60, nil, tc.at)
			if restarted := r.Created || r.FlowID != first.FlowID; restarted != tc.restart {
				t.Errorf("SYN at %ds: %+v (first flow %d); want restart %v", tc.at/sec, r, first.FlowID, tc.restart)
			}
		})
	}
}
