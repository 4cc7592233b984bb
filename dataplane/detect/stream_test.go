package detect

import (
	"slices"
	"testing"
)

// A content split across two segments matches once; the segment retransmitted
// does not alert again; a content within the tail alone never alerts twice.
func TestStreamSplitContent(t *testing.T) {
	h := newHarness(t, `alert tcp any any -> any any (msg:"split"; flow:to_server,established; content:"SPLIT-ME-PLEASE"; sid:1;)`, Options{})
	x := h.tcp("10.0.0.1", "192.0.2.80", 40000, 80)
	x.handshake()
	start := x.cseq
	got := sids(x.seg(true, "PA", []byte("xxxxSPLIT-")), x.seg(true, "PA", []byte("ME-PLEASExxxx")),
		x.at(start+10, []byte("ME-PLEASExxxx")), x.seg(true, "PA", []byte("tail only")))
	if want := [][]uint32{nil, {1}, nil, nil}; !equalSteps(got, want) {
		t.Fatalf("alerts by segment %v, want %v", got, want)
	}
}

// A segment beyond a gap is inspected alone; the gap's data, when it comes, is
// inspected in order.
func TestStreamOutOfOrder(t *testing.T) {
	h := newHarness(t, `alert tcp any any -> any any (msg:"a"; content:"AAAA"; sid:1;)
alert tcp any any -> any any (msg:"b"; content:"BBBB"; sid:2;)`, Options{})
	x := h.tcp("10.0.0.1", "192.0.2.80", 40000, 80)
	x.handshake()
	start := x.cseq
	got := sids(x.at(start+8, []byte("BBBB")), x.at(start, []byte("xxAAAAxx")))
	if want := [][]uint32{{2}, {1}}; !equalSteps(got, want) {
		t.Fatalf("alerts by segment %v, want %v", got, want)
	}
	tot := h.stage.Totals(h.p)
	if tot.Stream[2] == 0 && tot.Stream[4] == 0 { // stream.Overlap or stream.OutOfOrder
		t.Errorf("no out-of-order segment counted: %v", tot.Stream)
	}
}

// Inline in ips mode a drop rule drops the packet and every later packet of the
// flow both ways; in ids mode it only alerts. Other flows pass.
func TestIPSBlocksFlow(t *testing.T) {
	rule := `drop tcp any any -> any any (msg:"bad"; content:"EVIL"; sid:7;)`
	for _, mode := range []Mode{ModeIPS, ModeIDS} {
		h := newHarness(t, rule, Options{Mode: mode})
		x := h.tcp("10.0.0.1", "192.0.2.80", 40000, 80)
		x.handshake()
		var passed []bool
		var alerts [][]uint32
		for _, p := range []struct {
			toServer bool
			data     string
		}{{true, "hello"}, {true, "an EVIL thing"}, {false, "reply"}, {true, "more"}} {
			alerts = append(alerts, x.seg(p.toServer, "PA", []byte(p.data)))
			passed = append(passed, h.passed)
		}
		other := h.tcp("10.0.0.2", "192.0.2.80", 40001, 80)
		other.handshake()
		other.seg(true, "PA", []byte("fine"))
		otherPassed := h.passed
		wantPassed := []bool{true, false, false, false}
		wantAction := "blocked"
		if mode == ModeIDS {
			wantPassed = []bool{true, true, true, true}
			wantAction = "allowed"
		}
		if !slices.Equal(passed, wantPassed) || !otherPassed {
			t.Errorf("mode %d: passed %v (other flow %v), want %v", mode, passed, otherPassed, wantPassed)
		}
		if !equalSteps(alerts, [][]uint32{nil, {7}, nil, nil}) {
			t.Errorf("mode %d: alerts %v", mode, alerts)
		}
		if len(h.alerts) != 1 || h.alerts[0].Action.String() != wantAction {
			t.Errorf("mode %d: alert %+v, want action %s", mode, h.alerts, wantAction)
		}
	}
}

// Midstream pickup with Suricata's meaning: allowed (stream.midstream: true), the
// flow counts as established and its stream is inspected; with MidstreamDrop
// (false), packet rules still see the packets, but the flow never becomes
// established.
func TestMidstream(t *testing.T) {
	rules := `alert tcp any any -> any any (msg:"est"; flow:established,to_server; content:"DATA"; sid:1;)
alert tcp any any -> any any (msg:"any"; content:"DATA"; sid:2;)`
	for _, drop := range []bool{false, true} {
		h := newHarness(t, rules, Options{})
		h.stage.MidstreamDrop = drop
		x := h.tcp("10.0.0.1", "192.0.2.80", 40000, 80)
		got := x.seg(true, "PA", []byte("DATA"))
		want := []uint32{1, 2}
		if drop {
			want = []uint32{2}
		}
		if !slices.Equal(got, want) {
			t.Errorf("midstream drop=%v: alerts %v, want %v", drop, got, want)
		}
	}
}
