package flow

import (
	"net/netip"
	"testing"

	"weir/dataplane/packet"
	"weir/dataplane/policy"
)

func TestExport(t *testing.T) {
	defer func(n int) { exportScan = n }(exportScan)
	exportScan = 7 // many batches per shard
	tb, _, _ := newTest(t, Config{MaxFlows: 1 << 12})
	want := map[uint64]FlowState{}
	for i := range 1000 {
		src := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		r := tb.Track(7, tcp(src, 40000, server, 443, packet.TCPSyn), 60, cookie(uint32(i)), int64(i+1)*sec)
		if i%3 == 0 {
			tb.SetAction(r.Handle, policy.Drop)
		}
		want[r.FlowID] = FlowState{ID: r.FlowID, Src: src, Dst: server, SrcPort: 40000, DstPort: 443}
	}
	imp := importedFlow()
	tb.Import(&imp)
	want[imp.ID] = imp
	seen := map[uint64]bool{}
	batches := 0
	tb.Export(func(batch []FlowState) bool {
		batches++
		if len(batch) > exportScan {
			t.Fatalf("batch of %d", len(batch))
		}
		for _, f := range batch {
			w, ok := want[f.ID]
			if !ok || seen[f.ID] {
				t.Fatalf("unexpected or repeated flow %+v", f)
			}
			seen[f.ID] = true
			if f.Kind != JournalCreated || f.Src != w.Src || f.Dst != w.Dst || f.SrcPort != w.SrcPort || f.DstPort != w.DstPort {
				t.Fatalf("flow %+v, want %+v", f, w)
			}
			if f.ID == imp.ID {
				if f != imp {
					t.Fatalf("imported flow exported as %+v, want %+v", f, imp)
				}
			} else if f.Scope != 7 || f.Proto != packet.ProtoTCP || f.AWS.FlowCookie > 1000 ||
				(f.Action == policy.Drop) != ((f.Start/sec-1)%3 == 0) {
				t.Fatalf("flow %+v", f)
			}
		}
		return true
	})
	if len(seen) != len(want) || batches < len(want)/exportScan {
		t.Fatalf("saw %d of %d flows in %d batches", len(seen), len(want), batches)
	}
	// Stopping early: fn returning false ends the walk.
	calls := 0
	tb.Export(func([]FlowState) bool { calls++; return false })
	if calls != 1 {
		t.Fatalf("%d calls after a stop", calls)
	}
	// An exported table imports into another as the same flows.
	other, _, _ := newTest(t, Config{MaxFlows: 1 << 12})
	tb.Export(func(batch []FlowState) bool {
		for i := range batch {
			if !other.Import(&batch[i]) {
				t.Fatalf("import %+v", batch[i])
			}
		}
		return true
	})
	if other.Active() != len(want) {
		t.Fatalf("imported %d", other.Active())
	}
	empty, _, _ := newTest(t, Config{})
	empty.Export(func([]FlowState) bool { t.Fatal("called on an empty table"); return false })
}
