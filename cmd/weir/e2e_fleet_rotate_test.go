package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EFleetKeyRotation: the README's key rotation, done on a running fleet of
// three, one node at a time, each node holding its own copy of the key file. After
// every SIGHUP every node still shows the three alive and none has refused a peer's
// gossip as undecryptable, whatever mix of keys the fleet holds at that moment. Once
// the old key is removed everywhere, a fourth node holding only it is refused.
func TestE2EFleetKeyRotation(t *testing.T) {
	const n = 3
	start := time.Now()
	tp := newFleetTopology(t, n+1)
	keyA, keyB := newClusterKey(t), newClusterKey(t)

	// Each node its own key file, as on separate instances.
	keyFiles := make([]string, n)
	dir := t.TempDir()
	nodes := make([]*process, n)
	for i := range n {
		keyFiles[i] = filepath.Join(t.TempDir(), "cluster.key")
		writeKeyLines(t, keyFiles[i], keyA)
		var join []int
		for j := range n {
			if j != i {
				join = append(join, j)
			}
		}
		nodes[i] = startIn(t, tp.nodes[i], weirBinary(t), "run", "-config",
			writeFleetConfig(t, dir, i, join, keyFiles[i]))
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
	waitFleetAlive(t, tp.gw, n, n)
	t.Logf("%d nodes healthy, %d alive each, after %s", n, n, time.Since(start).Round(time.Millisecond))

	decrypt := func(i int) float64 {
		return scrapeURL(t, tp.gw, fleetMetricsURL(i))[`weir_cluster_rejected_total{reason="decrypt"}`]
	}
	rejected := func() (sum float64) {
		for i := range n {
			sum += decrypt(i)
		}
		return sum
	}
	// whole checks that every node shows the n alive and holds keys[i] keys.
	whole := func(when string, keys []int) {
		t.Helper()
		for i := range n {
			if nodes[i].exited() {
				t.Fatalf("%s: node %d exited: %v", when, i, nodes[i].err)
			}
			st, ok := fleetStatus(tp.gw, i)
			if !ok {
				t.Fatalf("%s: node %d: no /cluster", when, i)
			}
			if len(st.Members) != n || aliveMembers(st) != n {
				t.Fatalf("%s: node %d shows %d members, %d alive: %s", when, i, len(st.Members), aliveMembers(st), memberNames(st))
			}
			if !st.Encrypted || st.Keys != keys[i] {
				t.Fatalf("%s: node %d reports encrypted %v, %d keys; want %d", when, i, st.Encrypted, st.Keys, keys[i])
			}
		}
	}
	if r := rejected(); r != 0 {
		t.Fatalf("%g decrypt rejections before the rotation", r)
	}
	whole("before the rotation", []int{1, 1, 1})

	steps := []struct {
		name  string
		lines []string // the key file's lines after the step
		keys  int      // keys installed after it
	}{
		{"add B as the second key", []string{keyA, keyB}, 2},
		{"make B the first key", []string{keyB, keyA}, 2},
		{"remove A", []string{keyB}, 1},
	}
	keys := []int{1, 1, 1}
	for s, step := range steps {
		stepStart := time.Now()
		for i := range n {
			when := fmt.Sprintf("step %d (%s), node %d", s+1, step.name, i)
			writeKeyLines(t, keyFiles[i], step.lines...)
			set := strings.Count(nodes[i].stderr.String(), "cluster keys set")
			sendSignal(t, nodes[i], syscall.SIGHUP)
			// The node has re-read its keys when it logs so.
			waitFor(t, 5*time.Second, func() bool {
				return strings.Count(nodes[i].stderr.String(), "cluster keys set") > set
			})
			keys[i] = step.keys
			// A second of gossip (10 gossip rounds, 2 probe intervals) with the node's new
			// keys: at every poll the fleet is whole and nothing was refused.
			hold := time.Now().Add(time.Second)
			for time.Now().Before(hold) {
				whole(when, keys)
				if r := rejected(); r != 0 {
					t.Fatalf("%s: %g decrypt rejections", when, r)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		t.Logf("step %d (%s): every node SIGHUPed in %s; keys %v, %d alive each, 0 decrypt rejections",
			s+1, step.name, time.Since(stepStart).Round(time.Millisecond), keys, n)
	}
	if strings.Contains(nodes[0].stderr.String()+nodes[1].stderr.String()+nodes[2].stderr.String(), "not reloaded") {
		t.Error("a node logged that its cluster keys were not reloaded")
	}

	// The old key is gone: a fourth node that has only A is never admitted.
	oldKey := filepath.Join(t.TempDir(), "cluster.key")
	writeKeyLines(t, oldKey, keyA)
	intruder := startIn(t, tp.nodes[n], weirBinary(t), "run", "-config",
		writeFleetConfig(t, t.TempDir(), n, []int{0, 1, 2}, oldKey))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fourth node stderr:\n%s", intruder.stderr.String())
		}
	})
	refusedFrom := time.Now()
	first := -1.0
	waitFor(t, 20*time.Second, func() bool {
		if intruder.exited() {
			t.Fatalf("fourth node exited: %v\n%s", intruder.err, intruder.stderr.String())
		}
		whole("with the old-key node", keys)
		switch r := rejected(); {
		case r == 0:
			return false
		case first < 0:
			first = r
			return false
		default:
			return r > first
		}
	})
	waitFor(t, 5*time.Second, func() bool {
		st, ok := fleetStatus(tp.gw, n)
		return ok && len(st.Members) == 1 && st.Members[0].Self
	})
	whole("with the old-key node", keys)
	var counts []string
	for i := range n {
		counts = append(counts, fmt.Sprintf("%g", decrypt(i)))
	}
	t.Logf("old-key node refused: decrypt rejections %s on the three within %s; it sees only itself; test took %s",
		strings.Join(counts, ", "), time.Since(refusedFrom).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// newClusterKey returns a new random 32-byte cluster key, base64.
func newClusterKey(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(key)
}

// writeKeyLines replaces the key file at path with keys, one a line, the way an
// operator's tool would: a new file renamed over the old, never half written.
func writeKeyLines(t *testing.T, path string, keys ...string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
