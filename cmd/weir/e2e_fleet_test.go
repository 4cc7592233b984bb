package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"weir/cluster"
	gwlbsim "weir/sim/gwlb"
)

// TestE2EFleetFailover: three weir nodes in a fleet (gossip encrypted, flow state
// synced) behind the simulated GWLB, strict about mid-stream packets. One node is
// killed while long-lived TCP flows run; the GWLB (target_failover rebalance) moves
// its flows to the survivors, which must carry on forwarding them because they
// already hold their state: at least 99.9% of the moved flows lose nothing after
// their move, and the survivors' own flows lose nothing at all.
func TestE2EFleetFailover(t *testing.T) {
	_, moved, lost := runFleetFailover(t, true)
	if moved == 0 {
		t.Fatal("no flow moved off the killed node")
	}
	if continued := moved - lost; float64(continued) < 0.999*float64(moved) {
		t.Errorf("%d of %d moved flows continued (%d lost packets after their move); want at least 99.9%%",
			continued, moved, lost)
	}
	// (The report's lost_after_move also counts the denied flows' packets, dropped
	// by policy after their move as before it: the per-flow count leaves them out.)
}

// TestE2EFleetFailoverNoSync is the control: the same nodes standalone (no cluster),
// still strict. A survivor knows nothing of a moved flow, drops its mid-stream
// packets, and so the moved flows die: what the fleet test measures is the sync.
func TestE2EFleetFailoverNoSync(t *testing.T) {
	_, moved, lost := runFleetFailover(t, false)
	if moved == 0 {
		t.Fatal("no flow moved off the killed node")
	}
	if 2*lost <= moved {
		t.Errorf("without sync only %d of %d moved flows lost packets after their move; want most", lost, moved)
	}
}

// runFleetFailover runs three nodes (a fleet, or standalone), the simulator in
// rebalance mode against them, kills one node once every node forwards, and checks
// what does not depend on the sync: the killed node's flows moved, no flow stayed on
// or came back from the wrong target, and flows that never were on the killed node
// lost nothing. It returns the report, the moved flows and how many of them lost
// packets after their move.
func runFleetFailover(t *testing.T, fleet bool) (rep gwlbsim.Report, moved, lost int) {
	const n = 3
	start := time.Now()
	tp := newFleetTopology(t, n)
	keyFile := ""
	if fleet {
		keyFile = filepath.Join(t.TempDir(), "cluster.key")
		writeClusterKey(t, keyFile)
	}
	nodes, _ := startFleet(t, tp, n, keyFile)
	healthURL, metricsURL := fleetHealthURL, fleetMetricsURL
	t.Logf("%d nodes healthy (fleet %v) after %s", n, fleet, time.Since(start).Round(time.Millisecond))

	// 300 TCP flows of 150 packets at 3,000 packets a second: every flow is open
	// for the whole run (about 15 s), so the killed node's flows move mid-stream.
	args := []string{"sim", "gwlb", "-local", gwlbAddr, "-failover", "rebalance",
		"-health-interval", "500ms", "-flows", "300", "-packets", "150", "-rate", "3000",
		"-protos", "tcp", "-per-flow", "-reply-timeout", "2s", "-seed", "7", "-denied-source", "203.0.113.0/24"}
	for i := range n {
		args = append(args, "-target", fleetNodeAddr(i)+":6081,"+healthURL(i))
	}
	simStart := time.Now()
	sim := startIn(t, tp.gw, append([]string{weirBinary(t)}, args...)...)

	// Every node forwards (so its flows are established, and synced) before one dies.
	packets := func(i int) float64 {
		var sum float64
		for k, v := range scrapeURL(t, tp.gw, metricsURL(i)) {
			if strings.HasPrefix(k, "weir_packets_total") {
				sum += v
			}
		}
		return sum
	}
	waitFor(t, 20*time.Second, func() bool {
		if sim.exited() {
			t.Fatalf("sim exited before the kill: %v\n%s", sim.err, sim.stderr.String())
		}
		for i := range n {
			if packets(i) < 1000 {
				return false
			}
		}
		return true
	})
	const victim = 1
	victimKey := fleetNodeAddr(victim) + ":6081"
	sendSignal(t, nodes[victim], syscall.SIGKILL)
	killedAt := time.Since(simStart)

	if err := sim.wait(t, 45*time.Second); err != nil {
		t.Fatalf("sim: %v\n%s", err, sim.stderr.String())
	}
	if err := json.Unmarshal(sim.stdout.Bytes(), &rep); err != nil {
		t.Fatalf("sim report: %v\n%s", err, sim.stdout.String())
	}
	for i, p := range nodes {
		if i == victim {
			continue
		}
		if p.exited() {
			t.Errorf("node %d exited: %v", i, p.err)
			continue
		}
		// What the survivor did with the packets, and what the sync did.
		var lines []string
		for k, v := range scrapeURL(t, tp.gw, metricsURL(i)) {
			if v != 0 && (strings.HasPrefix(k, "weir_packets_total") || strings.HasPrefix(k, "weir_cluster_sync") ||
				strings.HasPrefix(k, "weir_cluster_flows") || strings.HasPrefix(k, "weir_flows_active")) {
				lines = append(lines, fmt.Sprintf("%s %g", k, v))
			}
		}
		slices.Sort(lines)
		t.Logf("node %d metrics:\n\t%s", i, strings.Join(lines, "\n\t"))
	}

	var survivorFlows, survivorLost, denied, deniedMoved int
	for _, f := range rep.Flows {
		switch {
		case f.Denied:
			// Denied by policy at its first packet: it never passes, neither before
			// nor after a move (its verdict travels with it, never decided again).
			denied++
			if f.Moved {
				deniedMoved++
			}
			if f.Returned != 0 {
				t.Errorf("denied flow %s:%d > %s:%d (moved %v) came back %d times", f.Src, f.SrcPort, f.Dst, f.DstPort, f.Moved, f.Returned)
			}
		case f.Moved:
			moved++
			if f.FirstTarget != victimKey {
				t.Errorf("flow %s %s:%d > %s:%d moved off %s, which was not killed", f.Proto, f.Src, f.SrcPort, f.Dst, f.DstPort, f.FirstTarget)
			}
			if f.LostAfterMove > 0 {
				lost++
			}
		case f.FirstTarget == victimKey:
			// Ended before the kill was noticed: nothing to move.
		default:
			survivorFlows++
			if f.Dropped > 0 || f.Mismatched > 0 {
				survivorLost++
			}
		}
	}
	t.Logf("sim: %.1f s, %d sent, %d returned, %d dropped, %d mismatched; node %d killed %.1f s in",
		rep.ElapsedS, rep.Sent, rep.Returned, rep.Dropped, rep.Mismatched, victim, killedAt.Seconds())
	t.Logf("failover: moved_flows %d (per flow: %d), continued %d, lost packets after the move %d (%d packets), moved_flows_lost %d, wrong_target %d, sent_to_unhealthy %d",
		rep.MovedFlows, moved, moved-lost, lost, rep.LostAfterMove, rep.MovedFlowsLost,
		rep.WrongTarget, rep.SentToUnhealthy)
	t.Logf("survivors' own flows: %d, of which %d lost packets; test took %s", survivorFlows, survivorLost, time.Since(start).Round(time.Millisecond))

	if len(rep.Flows) == 0 {
		t.Fatal("the report has no flows (-per-flow)")
	}
	t.Logf("denied flows: %d, %d of them moved; none came back", denied, deniedMoved)
	if denied == 0 || deniedMoved == 0 {
		t.Errorf("%d denied flows, %d moved: the test does not show a denied flow moving", denied, deniedMoved)
	}
	if uint64(moved+deniedMoved) != rep.MovedFlows {
		t.Errorf("%d flows marked moved (%d allowed, %d denied), moved_flows %d", moved+deniedMoved, moved, deniedMoved, rep.MovedFlows)
	}
	if survivorFlows == 0 || survivorLost > 0 {
		t.Errorf("%d of the survivors' %d own flows lost packets", survivorLost, survivorFlows)
	}
	if rep.WrongTarget != 0 {
		t.Errorf("wrong_target %d", rep.WrongTarget)
	}
	return rep, moved, lost
}

// startFleet starts nodes 0 to n-1 of tp, as one fleet sharing keyFile (each
// joining the others) or, without keyFile, standalone; it waits until each is
// healthy (a fleet node once it has found its peers and pulled their flows, or
// given up waiting: up to about 15 s) and, in a fleet, sees all n alive. It returns
// the nodes and the directory of their configurations.
func startFleet(t *testing.T, tp *fleetTopology, n int, keyFile string) ([]*process, string) {
	t.Helper()
	dir := t.TempDir()
	nodes := make([]*process, n)
	for i := range n {
		var join []int
		for j := range n {
			if j != i {
				join = append(join, j)
			}
		}
		path := writeFleetConfig(t, dir, i, join, keyFile)
		nodes[i] = startIn(t, tp.nodes[i], weirBinary(t), "run", "-config", path)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range nodes {
				t.Logf("node %d stderr:\n%s", i, p.stderr.String())
			}
		}
	})
	for i := range n {
		waitHealthy(t, tp.gw, fleetHealthURL(i), 30*time.Second, nodes[i])
	}
	if keyFile != "" {
		waitFleetAlive(t, tp.gw, n, n)
	}
	return nodes, dir
}

// writeClusterKey writes a new random cluster key (one base64 line) to path.
func writeClusterKey(t *testing.T, path string) {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeFleetConfig writes the configuration of fleet node i (at fleetNodeAddr(i),
// strict about mid-stream packets, denying 203.0.113.0/24) into dir and returns
// its path. With keyFile, the node is a fleet member named weir-i that joins the
// nodes in join; without, it runs standalone.
func writeFleetConfig(t *testing.T, dir string, i int, join []int, keyFile string) string {
	t.Helper()
	addr := fleetNodeAddr(i)
	cfg := fmt.Sprintf(`
gwlb:
  listen: 0.0.0.0:6081
  allowed_sources: [%s/32]
dataplane:
  workers: 1
health:
  listen: %s:8080
  drain_delay: 0s
metrics:
  listen: %s:9090
mirror:
  listen: ""
flows:
  midstream: drop
policy:
  default: allow
  rules:
    - {name: denied-clients, action: drop, src: 203.0.113.0/24}
outputs:
  eve: %s
`, gwlbAddr, addr, addr, filepath.Join(dir, fmt.Sprintf("eve%d.json", i)))
	if keyFile != "" {
		var seeds []string
		for _, j := range join {
			seeds = append(seeds, fleetNodeAddr(j)+":7946")
		}
		// The namespaces share the host's name: each node names itself.
		cfg += fmt.Sprintf(`cluster:
  bind: %s:7946
  node_name: weir-%d
  join: [%s]
  secret_key_file: %s
`, addr, i, strings.Join(seeds, ", "), keyFile)
	}
	path := filepath.Join(dir, fmt.Sprintf("weir%d.yaml", i))
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func fleetHealthURL(i int) string  { return "http://" + fleetNodeAddr(i) + ":8080/healthz" }
func fleetMetricsURL(i int) string { return "http://" + fleetNodeAddr(i) + ":9090/metrics" }

// fleetStatus fetches node i's GET /cluster from namespace ns.
func fleetStatus(ns string, i int) (st cluster.Status, ok bool) {
	code, body, err := get(ns, "http://"+fleetNodeAddr(i)+":8080/cluster")
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		return st, false
	}
	return st, true
}

// aliveMembers counts the members st shows alive, the node itself included.
func aliveMembers(st cluster.Status) int {
	alive := 0
	for _, m := range st.Members {
		if m.State == cluster.StateAlive {
			alive++
		}
	}
	return alive
}

// waitFleetAlive waits until each of nodes 0 to n-1 shows want members alive.
func waitFleetAlive(t *testing.T, ns string, n, want int) {
	t.Helper()
	for i := range n {
		waitFor(t, 15*time.Second, func() bool {
			st, ok := fleetStatus(ns, i)
			return ok && aliveMembers(st) == want
		})
	}
}
