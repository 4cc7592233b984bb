package flowsync

import (
	"github.com/prometheus/client_golang/prometheus"

	"weir/dataplane/flow"
)

// Collector exports a Syncer's counters as weir_cluster_* metrics.
type Collector struct {
	// Decrypt, when set, is how many messages the transport could not decrypt (a
	// peer without the fleet's key): weir_cluster_sync_errors_total{reason="decrypt"}.
	Decrypt func() uint64

	s                                    *Syncer
	table                                *flow.Table // for weir_cluster_flows; may be nil
	flowsOrigin                          *prometheus.Desc
	messages, bytes, flows, errors, lost *prometheus.Desc
	imported, gaps, bulkSeconds          *prometheus.Desc
}

// NewCollector makes the metrics of s and, when table is not nil, the flows of
// table by origin.
func NewCollector(s *Syncer, table *flow.Table) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Collector{s: s, table: table,
		flowsOrigin: d("weir_cluster_flows",
			"Flows in the table: this node's own (local, including peers' flows it now carries), and learned from peers (peer).", "origin"),
		messages: d("weir_cluster_sync_messages_total", "Flow-sync messages sent (out) and received (in).", "direction"),
		bytes:    d("weir_cluster_sync_bytes_total", "Bytes of flow-sync messages sent (out) and received (in).", "direction"),
		flows:    d("weir_cluster_sync_flows_total", "Flow records sent (out) and received (in).", "direction"),
		errors:   d("weir_cluster_sync_errors_total", "Flow-sync messages refused or not sent, by reason.", "reason"),
		lost: d("weir_cluster_sync_dropped_total",
			"Flow changes not sent because the sync queue was full (healed by the next refresh).", "where"),
		imported:    d("weir_cluster_flows_imported_total", "Flow records from peers that changed this node's table."),
		gaps:        d("weir_cluster_sync_gaps_total", "Flow-sync datagrams missing from the peers' sequences (lost on the way)."),
		bulkSeconds: d("weir_cluster_bulk_sync_seconds", "How long this node's bulk sync from a peer took at start (0 until done)."),
	}
}

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.flowsOrigin, c.messages, c.bytes, c.flows, c.errors, c.lost, c.imported, c.gaps, c.bulkSeconds} {
		ch <- d
	}
}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.messages, st.MessagesIn, "in")
	counter(c.messages, st.MessagesOut, "out")
	counter(c.bytes, st.BytesIn, "in")
	counter(c.bytes, st.BytesOut, "out")
	counter(c.flows, st.FlowsIn, "in")
	counter(c.flows, st.FlowsOut, "out")
	for r := Reason(1); r < numReasons; r++ { // 0 is no error
		counter(c.errors, st.Errors[r], r.String())
	}
	if c.Decrypt != nil {
		counter(c.errors, c.Decrypt(), "decrypt")
	}
	counter(c.lost, st.QueueDropped, "queue")
	counter(c.lost, st.JournalLost, "table")
	counter(c.imported, st.FlowsImported)
	counter(c.gaps, st.Gaps)
	ch <- prometheus.MustNewConstMetric(c.bulkSeconds, prometheus.GaugeValue, st.BulkDuration.Seconds())
	if c.table != nil {
		active, peer := c.table.Counts() // one pass: local never comes out negative
		ch <- prometheus.MustNewConstMetric(c.flowsOrigin, prometheus.GaugeValue, float64(active-peer), "local")
		ch <- prometheus.MustNewConstMetric(c.flowsOrigin, prometheus.GaugeValue, float64(peer), "peer")
	}
}
