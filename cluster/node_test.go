package cluster_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"weir/cluster"
	"weir/cluster/clustertest"
)

var (
	keyA = bytes.Repeat([]byte{'a'}, 32)
	keyB = bytes.Repeat([]byte{'b'}, 16)
	keyC = bytes.Repeat([]byte{'c'}, 24)
)

// start runs a node on addr (port 0: a free one) with a recorder as its handler.
func start(t *testing.T, name, addr string, keys [][]byte, seeds ...string) (*cluster.Node, *clustertest.Recorder) {
	t.Helper()
	out := &testOutput{w: t.Output()}
	t.Cleanup(out.close)
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", name)
	n, err := cluster.New(cluster.Config{
		Bind: netip.AddrPortFrom(netip.MustParseAddr(addr), 0), NodeName: name, Join: seeds, Keys: keys,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	r := clustertest.NewRecorder()
	n.SetHandler(r)
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown() })
	return n, r
}

// testOutput is the test's output until the test ends, then nothing: memberlist's
// timers can fire after Shutdown.
type testOutput struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (o *testOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return len(p), nil
	}
	return o.w.Write(p)
}

func (o *testOutput) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
}

// fleet starts three nodes: the first on 127.0.0.1 (so that "localhost" finds it),
// the others joining it by name and by address.
func fleet(t *testing.T, keys [][]byte) ([]*cluster.Node, []*clustertest.Recorder) {
	a, ra := start(t, "a", "127.0.0.1", keys)
	port := a.Addr().Port()
	b, rb := start(t, "b", "127.0.0.12", keys, fmt.Sprintf("localhost:%d", port))
	c, rc := start(t, "c", "127.0.0.13", keys, "127.0.0.99:1", fmt.Sprintf("127.0.0.1:%d", port))
	nodes := []*cluster.Node{a, b, c}
	clustertest.WaitPeers(t, transports(nodes), 15*time.Second)
	return nodes, []*clustertest.Recorder{ra, rb, rc}
}

func transports(nodes []*cluster.Node) []cluster.Transport {
	var ts []cluster.Transport
	for _, n := range nodes {
		ts = append(ts, n)
	}
	return ts
}

// stateOf is name's state as n sees it, "" when unknown.
func stateOf(n *cluster.Node, name string) string {
	for _, m := range n.Status().Members {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

func waitState(t *testing.T, n *cluster.Node, name string, timeout time.Duration, states ...string) time.Duration {
	t.Helper()
	start := time.Now()
	for !slices.Contains(states, stateOf(n, name)) {
		if time.Since(start) > timeout {
			t.Fatalf("%s sees %s %q after %s, want %q", n.LocalName(), name, stateOf(n, name), timeout, states)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, bounded by timeout
	}
	return time.Since(start)
}

func TestFleetTransport(t *testing.T) {
	nodes, rs := fleet(t, [][]byte{keyA})
	clustertest.Contract(t, transports(nodes), rs, 10*time.Second)

	st := nodes[0].Status()
	if st.Node != "a" || !st.Encrypted || len(st.Members) != 3 {
		t.Fatalf("Status = %+v", st)
	}
	for _, m := range st.Members {
		if m.State != cluster.StateAlive || m.Address == "" || m.Self != (m.Name == "a") {
			t.Errorf("member %+v", m)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(nodes[0].Collector())
	want := `# HELP weir_cluster_members Fleet members this node knows, by state (this node included).
# TYPE weir_cluster_members gauge
weir_cluster_members{state="alive"} 3
weir_cluster_members{state="dead"} 0
weir_cluster_members{state="left"} 0
weir_cluster_members{state="suspect"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "weir_cluster_members"); err != nil {
		t.Error(err)
	}
	rec := httptest.NewRecorder()
	nodes[1].ServeHTTP(rec, httptest.NewRequest("GET", "/cluster", nil))
	var got cluster.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Node != "b" || len(got.Members) != 3 {
		t.Errorf("GET /cluster = %d %s (%v)", rec.Code, rec.Body, err)
	}
}

func TestDeadNodeDetected(t *testing.T) {
	nodes, rs := fleet(t, [][]byte{keyA})
	killed := time.Now()
	nodes[2].Shutdown() // no Leave: a crash as the others see it
	for i := range 2 {
		waitState(t, nodes[i], "c", 3*cluster.DetectionTime, cluster.StateDead)
		t.Logf("%s saw c dead %s after it stopped (documented: within %s)", nodes[i].LocalName(), time.Since(killed).Round(time.Millisecond), cluster.DetectionTime)
		if !rs[i].WaitFor(5*time.Second, func(r *clustertest.Recorder) bool { return slices.Contains(r.Left(), "c") }) {
			t.Errorf("%s: no PeerLeft(c)", nodes[i].LocalName())
		}
	}
	if p := nodes[0].Peers(); !slices.Equal(p, []string{"b"}) {
		t.Errorf("Peers = %q after c died", p)
	}
}

func TestGracefulLeave(t *testing.T) {
	nodes, _ := fleet(t, [][]byte{keyA})
	if err := nodes[2].Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	nodes[2].Shutdown()
	for i := range 2 {
		waitState(t, nodes[i], "c", 5*time.Second, cluster.StateLeft)
	}
}

func TestWrongKeyNeverAdmitted(t *testing.T) {
	a, _ := start(t, "a", "127.0.0.11", [][]byte{keyA})
	seed := a.Addr().String()
	b, _ := start(t, "b", "127.0.0.12", [][]byte{keyA}, seed)
	clustertest.WaitPeers(t, []cluster.Transport{a, b}, 10*time.Second)

	intruder, _ := start(t, "intruder", "127.0.0.13", [][]byte{keyB}, seed)
	clear, _ := start(t, "clear", "127.0.0.14", nil, seed)
	deadline := time.Now().Add(15 * time.Second)
	for a.Rejected("decrypt") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("rejections counted: %d, want the attempts of both", a.Rejected("decrypt"))
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, bounded by the deadline
	}
	for _, n := range []*cluster.Node{a, b} {
		if p := n.Peers(); len(p) != 1 {
			t.Errorf("%s admitted %q", n.LocalName(), p)
		}
	}
	for _, n := range []*cluster.Node{intruder, clear} {
		if p := n.Peers(); len(p) != 0 {
			t.Errorf("%s got in: %q", n.LocalName(), p)
		}
	}
	if n := testutil.ToFloat64(onlyRejected{a.Collector()}); n < 2 {
		t.Errorf("weir_cluster_rejected_total{reason=decrypt} = %v", n)
	}
}

// onlyRejected keeps weir_cluster_rejected_total of a collector.
type onlyRejected struct{ prometheus.Collector }

func (o onlyRejected) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { o.Collector.Collect(all); close(all) }()
	for m := range all {
		if strings.Contains(m.Desc().String(), "weir_cluster_rejected_total") {
			ch <- m
		}
	}
}

func TestKeyRotation(t *testing.T) {
	nodes, rs := fleet(t, [][]byte{keyA})
	round := 0
	whole := func(step string) {
		t.Helper()
		// Every node's broadcast reaches both others: encryption with the current
		// primary keys works everywhere.
		round++
		for i, n := range nodes {
			msg := []byte(fmt.Sprintf("%s-%d-%d", step, round, i))
			deadline := time.Now().Add(10 * time.Second)
			for {
				n.Broadcast(msg)
				ok := true
				for j, r := range rs {
					if j != i && !r.WaitFor(200*time.Millisecond, func(r *clustertest.Recorder) bool { return r.Has(n.LocalName(), msg) }) {
						ok = false
					}
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: broadcasts from %s do not arrive", step, n.LocalName())
				}
			}
		}
		for _, n := range nodes {
			for _, o := range nodes {
				if s := stateOf(n, o.LocalName()); s != cluster.StateAlive {
					t.Fatalf("%s: %s sees %s %s", step, n.LocalName(), o.LocalName(), s)
				}
			}
			if r := n.Rejected("decrypt"); r != 0 {
				t.Fatalf("%s: %s refused %d packets", step, n.LocalName(), r)
			}
		}
	}
	for _, step := range []struct {
		name string
		keys [][]byte
	}{
		{"add C", [][]byte{keyA, keyC}},
		{"C first", [][]byte{keyC, keyA}},
		{"remove A", [][]byte{keyC}},
	} {
		for _, n := range nodes {
			if err := n.SetKeys(step.keys); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			// One node at a time, with gossip between: a rolling SIGHUP.
			whole(step.name)
		}
	}
	newcomer, _ := start(t, "d", "127.0.0.14", [][]byte{keyC}, nodes[0].Addr().String())
	clustertest.WaitPeers(t, append(transports(nodes), newcomer), 15*time.Second)
	old, _ := start(t, "old", "127.0.0.15", [][]byte{keyA}, nodes[0].Addr().String())
	deadline := time.Now().Add(15 * time.Second)
	for nodes[0].Rejected("decrypt") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a node with the removed key was not refused")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, bounded by the deadline
	}
	if p := old.Peers(); len(p) != 0 {
		t.Errorf("a node with the removed key got in: %q", p)
	}
}

func TestNewErrors(t *testing.T) {
	for _, cfg := range []cluster.Config{
		{},
		{Bind: netip.MustParseAddrPort("127.0.0.1:0"), Keys: [][]byte{make([]byte, 10)}},
		{Bind: netip.MustParseAddrPort("127.0.0.1:0"), Join: []string{"a b"}},
		{Bind: netip.MustParseAddrPort("127.0.0.1:0"), NodeName: strings.Repeat("n", 200)},
	} {
		if _, err := cluster.New(cfg, nil); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	n, err := cluster.New(cluster.Config{Bind: netip.MustParseAddrPort("127.0.0.1:0"), NodeName: "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetKeys([][]byte{keyA}); err == nil {
		t.Error("SetKeys on a clear-text node accepted")
	}
}
