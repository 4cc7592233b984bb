package flowsync_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"weir/cluster/flowsync"
	"weir/cluster/flowsync/fakenet"
	"weir/dataplane/flow"
)

func TestCollector(t *testing.T) {
	net := fakenet.New(0, 0, 1)
	s := flowsync.New(flowsync.Config{Transport: net.Add("a")})
	reg := prometheus.NewRegistry()
	tb := flow.NewTable(flow.Config{MaxFlows: 64}, nil, nil)
	f := flow.FlowState{Kind: flow.JournalCreated, ID: 9, Proto: 17, Src: netip.MustParseAddr("10.0.0.1"),
		Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 1, DstPort: 2, Start: 1e18, Last: 1e18}
	tb.Import(&f)
	reg.MustRegister(flowsync.NewCollector(s, tb))
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
	flows := `
# HELP weir_cluster_flows Flows in the table: this node's own (local, including peers' flows it now carries), and learned from peers (peer).
# TYPE weir_cluster_flows gauge
weir_cluster_flows{origin="local"} 0
weir_cluster_flows{origin="peer"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(flows), "weir_cluster_flows"); err != nil {
		t.Error(err)
	}
	c := flowsync.NewCollector(s, nil)
	c.Decrypt = func() uint64 { return 3 }
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(c)
	mfs, err := reg2.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "weir_cluster_sync_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if l := m.GetLabel(); len(l) == 1 && l[0].GetValue() == "decrypt" && m.GetCounter().GetValue() == 3 {
				found = true
			}
		}
	}
	if !found {
		t.Error(`weir_cluster_sync_errors_total{reason="decrypt"} 3 not exported`)
	}
	if n := testutil.CollectAndCount(flowsync.NewCollector(s, nil), "weir_cluster_sync_errors_total"); n < 8 {
		t.Errorf("%d error reasons exported, want 8 (every reason but none)", n)
	}
}
