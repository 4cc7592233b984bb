package flowsync_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"weir/cluster/flowsync"
	"weir/cluster/flowsync/fakenet"
)

func TestCollector(t *testing.T) {
	net := fakenet.New(0, 0, 1)
	s := flowsync.New(flowsync.Config{Transport: net.Add("a")})
	reg := prometheus.NewRegistry()
	reg.MustRegister(flowsync.NewCollector(s))
	if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
		t.Fatalf("gathered %d series: %v", n, err)
	}
	want := `
# HELP weir_cluster_sync_messages_total Flow-sync messages sent (out) and received (in).
# TYPE weir_cluster_sync_messages_total counter
weir_cluster_sync_messages_total{direction="in"} 0
weir_cluster_sync_messages_total{direction="out"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "weir_cluster_sync_messages_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(flowsync.NewCollector(s), "weir_cluster_sync_errors_total"); n != 8 {
		t.Errorf("%d error reasons exported, want 8 (every reason but none)", n)
	}
}
