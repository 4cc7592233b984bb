package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"weir/cluster"
	"weir/config"
)

// freeUDPPort finds a UDP port free on addr.
func freeUDPPort(t *testing.T, addr string) int {
	c, err := net.ListenPacket("udp4", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// A node with cluster.bind serves /cluster on its health listener, counts its
// members in /metrics, re-reads its keys on SIGHUP, and leaves on shutdown.
func TestRunWithCluster(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(key, []byte("AAAAAAAAAAAAAAAAAAAAAA==\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "weir.yaml")
	yaml := fmt.Sprintf(`gwlb:
  listen: 127.0.0.23:%d
  reply: udp
mirror:
  listen: 127.0.0.23:%d
health:
  listen: 127.0.0.23:0
metrics:
  listen: 127.0.0.23:0
cluster:
  bind: 127.0.0.23:0
  node_name: weir-run
  secret_key_file: %s
`, freeUDPPort(t, "127.0.0.23"), freeUDPPort(t, "127.0.0.23"), key)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := startNode(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer n.shutdown(0, nil)
	if n.cluster == nil {
		t.Fatal("no cluster started")
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + n.healthAddr() + "/cluster")
	if err != nil {
		t.Fatal(err)
	}
	var st cluster.Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Node != "weir-run" || !st.Encrypted || len(st.Members) != 1 {
		t.Fatalf("/cluster = %+v, %v", st, err)
	}
	if sync, ok := st.Sync.(map[string]any); !ok || sync["peers"] != nil && len(sync["peers"].([]any)) != 0 {
		t.Errorf("/cluster sync = %#v, want the flow sync's status with no peers", st.Sync)
	} else if _, ok := sync["ready"]; !ok {
		t.Errorf("/cluster sync has no ready: %#v", sync)
	}
	// SIGHUP with a second key: it is added (a bad file would be logged and ignored).
	if err := os.WriteFile(key, []byte("AAAAAAAAAAAAAAAAAAAAAA==\nBBBBBBBBBBBBBBBBBBBBBA==\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.reload(cfgPath, new(slog.LevelVar), nil)
	if k := n.cluster.Status().Keys; k != 2 {
		t.Errorf("after SIGHUP: %d keys, want 2", k)
	}
	if err := os.WriteFile(key, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.reload(cfgPath, new(slog.LevelVar), nil)
	if k := n.cluster.Status().Keys; k != 2 {
		t.Errorf("after a SIGHUP with a bad key file: %d keys, want the 2 running", k)
	}
}
