package dataplane

import (
	"testing"
)

// TestMirrorFlowKey: a mirrored flow is keyed by its inner conversation within the
// session; the outer source (which ENI, which VTEP) is context. Two ENIs mirrored in
// one session, one direction each, make one flow; with sessions merged (dedupe on),
// so do two sessions; without, two sessions stay apart. Each packet's own receive
// time, not its batch's, reaches the flow table and the pcap.
func TestMirrorFlowKey(t *testing.T) {
	out := ethernet(macR, macA, tcpPacket(t, "10.0.1.5", "10.0.2.9", 40004, 5432, 20))
	back := ethernet(macR, macB, tcpPacket(t, "10.0.2.9", "10.0.1.5", 5432, 40004, 30))
	const now = int64(1_700_000_000_000_000_000)
	for _, tc := range []struct {
		name     string
		vnis     [2]uint32
		merge    bool
		sameFlow bool
	}{
		{"one session, two ENIs", [2]uint32{101, 101}, false, true},
		{"two sessions, merged", [2]uint32{101, 102}, true, true},
		{"two sessions, apart", [2]uint32{101, 102}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &mirrorRig{merge: tc.merge}
			r.start(t, session("a", 101), session("b", 102))
			b := NewBatch(2)
			loadMirror(b, []mirrorIn{fromENI(eniA, tc.vnis[0], out), fromENI(eniB, tc.vnis[1], back)}, now)
			// The second slot was received first, by the kernel's clock.
			b.Slots[0].Time, b.Slots[1].Time = now-1000, now-2000
			r.w.Process(b)
			f0, f1 := b.Slots[0].Flow, b.Slots[1].Flow
			if f0.FlowID == 0 || f1.FlowID == 0 {
				t.Fatalf("slots %v %v: not tracked", b.Slots[0].Action(), b.Slots[1].Action())
			}
			if (f0.FlowID == f1.FlowID) != tc.sameFlow {
				t.Fatalf("flows %d and %d; one flow: %v", f0.FlowID, f1.FlowID, tc.sameFlow)
			}
			if tc.sameFlow && f0.ToServer == f1.ToServer {
				t.Fatal("both directions counted the same way")
			}
			recs := r.records(t)
			if len(recs) != 2 || recs[0].ci.Timestamp.UnixNano() != now-1000 || recs[1].ci.Timestamp.UnixNano() != now-2000 {
				t.Fatalf("pcap records %+v: want each packet's own time", recs)
			}
			r.mirror.Flush(now)
			if tc.sameFlow {
				if len(r.ended) != 1 || r.ended[0].Start.UnixNano() != now-2000 || r.ended[0].End.UnixNano() != now-1000 {
					t.Fatalf("flow records %+v: want one, from the earlier packet's time to the later's", r.ended)
				}
			}
		})
	}
}
