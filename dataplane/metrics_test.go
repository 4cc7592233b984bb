package dataplane

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"weir/dataplane/packet"
	"weir/dataplane/policy"
)

// TestCollector checks the exported names, labels and values after a batch on two
// workers: counts are summed over workers at scrape time.
func TestCollector(t *testing.T) {
	pol := &policy.Policy{Default: policy.Allow, Rules: []policy.Rule{
		{Action: policy.Drop, Proto: 6, DstPort: policy.PortRange{Lo: 23, Hi: 23}},
	}}
	p, table, _ := newTestPipeline(pol, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, 100)
	bad := gwlbDatagram(innerTCP(t, "10.0.0.1", "10.1.0.1", 1, 80, packet.TCPSyn, 0), 1, 1)
	bad[0] |= 0x40
	for i, w := range []*Worker{p.NewWorker(), p.NewWorker()} {
		b := NewBatch(4)
		load(b, [][]byte{
			gwlbDatagram(innerTCP(t, "10.0.0.1", "10.1.0.1", uint16(1000+i), 80, packet.TCPSyn, 0), 1, 1),
			gwlbDatagram(innerTCP(t, "10.0.0.1", "10.1.0.1", uint16(1000+i), 23, packet.TCPSyn, 0), 1, 1),
			bad,
		}, gwlb, 1)
		w.Process(b)
		w.CountSent(1, 0)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(p, Gauges{
		FlowsActive: table.Active, FlowsEvicted: table.Evicted,
		FlowsEnded: func() (uint64, uint64) { return 5, 2 },
	}))
	want := `
# HELP weir_packets_total Datagrams received, by encapsulation and what became of them.
# TYPE weir_packets_total counter
weir_packets_total{action="allow",encap="geneve"} 2
weir_packets_total{action="drop",encap="geneve"} 2
weir_packets_total{action="malformed",encap="geneve"} 2
` + zeroRows(`weir_packets_total{action="%s",encap="%s"} 0`,
		[][2]string{{"allow", "geneve"}, {"drop", "geneve"}, {"malformed", "geneve"}}) + `# HELP weir_returned_total Packets sent back to the load balancer.
# TYPE weir_returned_total counter
weir_returned_total 2
# HELP weir_flows_active Flows in the flow table.
# TYPE weir_flows_active gauge
weir_flows_active 4
# HELP weir_flows_ended_total Flows that ended (timed out, closed, evicted or flushed), by ACL verdict.
# TYPE weir_flows_ended_total counter
weir_flows_ended_total{action="allow"} 5
weir_flows_ended_total{action="drop"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"weir_packets_total", "weir_returned_total", "weir_flows_active", "weir_flows_ended_total"); err != nil {
		t.Error(err)
	}
	n, err := testutil.GatherAndCount(reg, "weir_decode_errors_total")
	if err != nil || n == 0 {
		t.Fatalf("weir_decode_errors_total: %d series, %v", n, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "weir_") {
			t.Errorf("metric %s lacks the weir_ prefix", mf.GetName())
		}
		if mf.GetType() == 0 /* counter */ && !strings.HasSuffix(mf.GetName(), "_total") {
			t.Errorf("counter %s does not end in _total", mf.GetName())
		}
		if mf.GetName() == "weir_decode_errors_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "reason" && l.GetValue() == "bad_version" && m.GetCounter().GetValue() != 2 {
						t.Errorf("bad_version = %v, want 2", m.GetCounter().GetValue())
					}
				}
			}
		}
	}
}

// zeroRows lists every action and encapsulation the collector exports, but those
// in except, with value 0.
func zeroRows(format string, except [][2]string) string {
	var b strings.Builder
	for e := Encap(0); e < EncapNone; e++ {
		for a := Action(0); a < NumActions(); a++ {
			skip := false
			for _, x := range except {
				skip = skip || (x[0] == a.String() && x[1] == e.String())
			}
			if !skip {
				fmt.Fprintf(&b, format+"\n", a, e)
			}
		}
	}
	return b.String()
}

// TestCollectorEVE: EVE records written and dropped, by event type, zeros included.
func TestCollectorEVE(t *testing.T) {
	p, _, _ := newTestPipeline(&policy.Policy{Default: policy.Allow}, nil, 100)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(p, Gauges{
		EVEEventTypes: []string{"flow", "alert"},
		EVEWritten:    func(i int) uint64 { return []uint64{10, 3}[i] },
		EVEDropped:    func(i int) uint64 { return []uint64{2, 0}[i] },
	}))
	want := `
# HELP weir_eve_dropped_total EVE records lost because the writer's queue was full, by event type.
# TYPE weir_eve_dropped_total counter
weir_eve_dropped_total{event_type="alert"} 0
weir_eve_dropped_total{event_type="flow"} 2
# HELP weir_eve_records_total EVE records written, by event type.
# TYPE weir_eve_records_total counter
weir_eve_records_total{event_type="alert"} 3
weir_eve_records_total{event_type="flow"} 10
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"weir_eve_records_total", "weir_eve_dropped_total"); err != nil {
		t.Error(err)
	}
}

// TestSocketMetrics: the backend's kernel drops and granted buffers, by listener.
func TestSocketMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(NewPipeline(), Gauges{
		SocketDrops:      func() map[string]uint64 { return map[string]uint64{"gwlb": 7, "mirror": 0} },
		SocketRecvBuffer: func() map[string]uint64 { return map[string]uint64{"gwlb": 4 << 20, "mirror": 4 << 20} },
	}))
	want := `
# HELP weir_socket_drops_total Datagrams the kernel dropped at the receive sockets (queue full: workers too slow or the buffer too small), by listener.
# TYPE weir_socket_drops_total counter
weir_socket_drops_total{listener="gwlb"} 7
weir_socket_drops_total{listener="mirror"} 0
# HELP weir_socket_recv_buffer_bytes Receive buffer the kernel granted each receive socket (dataplane.recv_buffer, capped by net.core.rmem_max without CAP_NET_ADMIN), by listener.
# TYPE weir_socket_recv_buffer_bytes gauge
weir_socket_recv_buffer_bytes{listener="gwlb"} 4.194304e+06
weir_socket_recv_buffer_bytes{listener="mirror"} 4.194304e+06
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "weir_socket_drops_total", "weir_socket_recv_buffer_bytes"); err != nil {
		t.Error(err)
	}
}

// TestCollectorFlowLogAndLost: flow-log lines written and dropped, and ended-flow
// records packet workers could not hand over.
func TestCollectorFlowLogAndLost(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(NewPipeline(), Gauges{
		FlowLogWritten: func() uint64 { return 12 },
		FlowLogDropped: func() uint64 { return 3 },
		FlowsLost:      func() uint64 { return 5 },
	}))
	want := `
# HELP weir_flow_records_lost_total Records of ended flows that packet workers dropped because the outputs were not keeping up (they never wait).
# TYPE weir_flow_records_lost_total counter
weir_flow_records_lost_total 5
# HELP weir_flowlog_dropped_total Flow-log lines lost because the writer's queue was full (only lines emitted on the packet path are ever dropped).
# TYPE weir_flowlog_dropped_total counter
weir_flowlog_dropped_total 3
# HELP weir_flowlog_records_total Flow-log lines written.
# TYPE weir_flowlog_records_total counter
weir_flowlog_records_total 12
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"weir_flowlog_records_total", "weir_flowlog_dropped_total", "weir_flow_records_lost_total"); err != nil {
		t.Error(err)
	}
}

// TestCollectorPCAPLate: pcap records written out of timestamp order.
func TestCollectorPCAPLate(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(NewPipeline(), Gauges{PCAPLate: func() uint64 { return 4 }}))
	want := `
# HELP weir_pcap_late_total Packets written to the pcap out of timestamp order: they reached the writer more than outputs.pcap.reorder_window late.
# TYPE weir_pcap_late_total counter
weir_pcap_late_total 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "weir_pcap_late_total"); err != nil {
		t.Error(err)
	}
}
