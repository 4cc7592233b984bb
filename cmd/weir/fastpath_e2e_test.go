package main

import (
	"encoding/json"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"weir/dataplane/policy"
	gwlbsim "weir/sim/gwlb"
)

// TestE2EAFXDPFastPath runs long flows through weir on AF_XDP with the XDP
// fast path (the default without detection): the program answers most of
// their packets, every reply still comes back byte for byte, the metrics
// count every packet once, a SIGHUP takes the flows out of the fast path
// without losing a count, and each flow's EVE record counts exactly the
// packets the GWLB sent it.
func TestE2EAFXDPFastPath(t *testing.T) {
	requireAFXDP(t)
	tp := newTopology(t)
	tp.backend = "afxdp"
	node, dir := startNodeIn(t, tp, "")

	const flows, packets = 200, 40
	sim := startIn(t, tp.gw, weirBinary(t), "sim", "gwlb",
		"-target", nodeAddr+":6081,http://"+nodeAddr+":8080/healthz",
		"-local", gwlbAddr, "-flows", "200", "-packets", "40", "-rate", "4000", "-protos", "tcp,udp,icmp",
		"-denied-source", "203.0.113.0/24", "-per-flow", "-seed", "11", "-reply-timeout", "5s")
	// Mid-run, a reload flushes the fast path; its flows come back to it.
	time.Sleep(1200 * time.Millisecond)
	mid := scrape(t, tp.gw)
	sendSignal(t, node, syscall.SIGHUP)
	if err := sim.wait(t, 60*time.Second); err != nil {
		t.Fatalf("sim: %v\n%s", err, sim.stderr.String())
	}
	var rep gwlbsim.Report
	if err := json.Unmarshal(sim.stdout.Bytes(), &rep); err != nil {
		t.Fatalf("sim report: %v\n%s", err, sim.stdout.String())
	}
	t.Logf("sim: sent %d returned %d dropped %d mismatched %d", rep.Sent, rep.Returned, rep.Dropped, rep.Mismatched)
	if rep.Mismatched != 0 {
		t.Errorf("%d replies were not byte-identical or came from the wrong address or port: %v", rep.Mismatched, rep.MismatchReasons)
	}
	var wantReturned uint64
	for _, f := range rep.Flows {
		if e2eDecide(t, f) == policy.Drop {
			continue
		}
		wantReturned += f.Sent
		if f.Returned != f.Sent {
			t.Errorf("allowed flow %s %s:%d > %s:%d: sent %d, returned %d", f.Proto, f.Src, f.SrcPort, f.Dst, f.DstPort, f.Sent, f.Returned)
		}
	}
	if len(rep.Flows) != flows || rep.Sent != flows*packets {
		t.Errorf("%d flows, %d packets sent, want %d and %d", len(rep.Flows), rep.Sent, flows, flows*packets)
	}

	m := scrape(t, tp.gw)
	fast := m[`weir_xdp_packets_total{result="fast_path"}`]
	t.Logf("fast path answered %v of %d packets; mid-run %v flows in it", fast, rep.Sent, mid["weir_xdp_fast_flows"])
	// TCP and UDP flows (two thirds) pass FastAfter packets early: most of
	// their packets are the program's.
	if fast < float64(rep.Sent)/4 {
		t.Errorf("weir_xdp_packets_total{fast_path} = %v of %d packets sent, want at least a quarter", fast, rep.Sent)
	}
	if mid["weir_xdp_fast_flows"] == 0 {
		t.Error("weir_xdp_fast_flows was 0 mid-run")
	}
	if got := m["weir_xdp_fast_removed_total"]; got < mid["weir_xdp_fast_flows"] {
		t.Errorf("weir_xdp_fast_removed_total = %v after the SIGHUP, want at least the %v flows in it before", got, mid["weir_xdp_fast_flows"])
	}
	if got := m["weir_xdp_fast_added_total"]; got <= mid["weir_xdp_fast_added_total"] {
		t.Errorf("weir_xdp_fast_added_total did not grow after the flush: %v then %v", mid["weir_xdp_fast_added_total"], got)
	}
	for _, k := range []string{"weir_xdp_fast_evicted_total", "weir_xdp_fast_errors_total", "weir_xdp_fast_full_total"} {
		if m[k] != 0 {
			t.Errorf("%s = %v, want 0", k, m[k])
		}
	}
	// Every packet is counted once, whichever path answered it.
	if got := m[`weir_packets_total{action="allow",encap="geneve"}`]; got != float64(wantReturned) {
		t.Errorf("weir_packets_total allow = %v, want %d", got, wantReturned)
	}
	if got := m["weir_returned_total"]; got != float64(wantReturned) {
		t.Errorf("weir_returned_total = %v, want %d", got, wantReturned)
	}
	if got, redirected := m[`weir_xdp_packets_total{result="redirected"}`], float64(rep.Sent)-fast; got != redirected {
		t.Errorf("weir_xdp_packets_total{redirected} = %v, want the %v the fast path did not answer", got, redirected)
	}

	sendSignal(t, node, syscall.SIGTERM)
	if err := node.wait(t, 20*time.Second); err != nil {
		t.Fatalf("weir exit: %v\n%s", err, node.stderr.String())
	}
	checkEVE(t, filepath.Join(dir, "eve.json"), rep)
}
