package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"weir/cluster"
)

func TestClusterStatus(t *testing.T) {
	n, err := cluster.New(cluster.Config{Bind: netip.MustParseAddrPort("127.0.0.21:0"), NodeName: "weir-a", Keys: [][]byte{make([]byte, 16)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown() })
	mux := http.NewServeMux()
	mux.Handle("/cluster", n)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	code, out, errs := runWeir(t, "cluster", "status", "-addr", addr)
	if code != 0 {
		t.Fatalf("cluster status = %d, stderr %q", code, errs)
	}
	for _, want := range []string{`node "weir-a" at 127.0.0.21:`, "gossip encrypted (1 key): 1 alive, 0 suspect", "NAME", "weir-a *", "alive"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, _, errs = runWeir(t, "cluster", "status", "-addr", strings.TrimPrefix(httptest.NewServer(http.NotFoundHandler()).URL, "http://"))
	if code != 1 || !strings.Contains(errs, "standalone") {
		t.Errorf("against a node without a cluster: %d %q", code, errs)
	}
	if code, _, _ := runWeir(t, "cluster", "members"); code != 2 {
		t.Errorf("cluster members = %d, want 2", code)
	}
	if code, _, _ := runWeir(t, "cluster", "status", "-addr", "nope"); code != 2 {
		t.Errorf("-addr nope = %d, want 2", code)
	}
}

func TestPrintClusterStatus(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := cluster.Status{Node: "b", Address: "10.0.1.6:7946", Members: []cluster.Member{
		{Name: "a", Address: "10.0.1.5:7946", State: "dead", Since: now.Add(-90 * time.Second)},
		{Name: "b", Address: "10.0.1.6:7946", State: "alive", Since: now.Add(-time.Hour), Self: true},
		{Name: "c", Address: "10.0.1.7:7946", State: "suspect", Since: now.Add(-2 * time.Second)},
	}}
	var sb strings.Builder
	printClusterStatus(&sb, st, now)
	want := `node "b" at 10.0.1.6:7946, gossip NOT encrypted (cluster.insecure): 1 alive, 1 suspect, 1 dead, 0 left

NAME  ADDRESS        STATE    FOR
a     10.0.1.5:7946  dead     1m30s
b *   10.0.1.6:7946  alive    1h0m0s
c     10.0.1.7:7946  suspect  2s
`
	if sb.String() != want {
		t.Errorf("got\n%s\nwant\n%s", sb.String(), want)
	}
	if _, err := json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	// With the flow sync's part, as it comes from JSON.
	st.Sync = map[string]any{"ready": true, "peers": []any{
		map[string]any{"peer": "a", "last_message_ago": "90s"}, map[string]any{"peer": "c", "last_message_ago": "40ms"}}}
	sb.Reset()
	printClusterStatus(&sb, st, now)
	if !strings.HasSuffix(sb.String(), "\nflow sync: ready; last message from a 90s ago, c 40ms ago\n") {
		t.Errorf("with sync:\n%s", sb.String())
	}
}
