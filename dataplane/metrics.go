package dataplane

import (
	"github.com/prometheus/client_golang/prometheus"

	"weir/dataplane/packet"
	"weir/geneve"
)

// Gauges are values the collector reads from outside the pipeline at scrape time.
type Gauges struct {
	FlowsActive  func() int
	FlowsEvicted func() uint64
	EVEWritten   func() uint64
	EVEDropped   func() uint64
	// FlowsEnded returns how many flows have ended, by their ACL verdict.
	FlowsEnded func() (allowed, dropped uint64)
}

// Collector exports the pipeline's counters, summed over workers at scrape time.
type Collector struct {
	p *Pipeline
	g Gauges

	packets, bytes, decodeErrors, sendErrors, returned *prometheus.Desc
	flowsActive, flowsEvicted, eveWritten, eveDropped  *prometheus.Desc
	flowsEnded                                         *prometheus.Desc
}

// NewCollector makes the weir_ metrics of p and g.
func NewCollector(p *Pipeline, g Gauges) *Collector {
	return &Collector{
		p: p, g: g,
		packets: prometheus.NewDesc("weir_packets_total",
			"Datagrams received, by encapsulation and what became of them.", []string{"encap", "action"}, nil),
		bytes: prometheus.NewDesc("weir_bytes_total",
			"Bytes of tunnel payload received, by encapsulation.", []string{"encap"}, nil),
		decodeErrors: prometheus.NewDesc("weir_decode_errors_total",
			"Datagrams dropped as malformed, by encapsulation and reason.", []string{"encap", "reason"}, nil),
		sendErrors: prometheus.NewDesc("weir_send_errors_total",
			"Replies the kernel refused to send (too big for the route, buffer full).", nil, nil),
		returned: prometheus.NewDesc("weir_returned_total",
			"Packets sent back to the load balancer.", nil, nil),
		flowsActive: prometheus.NewDesc("weir_flows_active",
			"Flows in the flow table.", nil, nil),
		flowsEvicted: prometheus.NewDesc("weir_flows_evicted_total",
			"Flows evicted because the flow table was full.", nil, nil),
		flowsEnded: prometheus.NewDesc("weir_flows_ended_total",
			"Flows that ended (timed out, closed, evicted or flushed), by ACL verdict.", []string{"action"}, nil),
		eveWritten: prometheus.NewDesc("weir_eve_records_total",
			"EVE records written.", nil, nil),
		eveDropped: prometheus.NewDesc("weir_eve_dropped_total",
			"EVE records lost because the writer's queue was full.", nil, nil),
	}
}

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.decodeErrors, c.sendErrors,
		c.returned, c.flowsActive, c.flowsEvicted, c.flowsEnded, c.eveWritten, c.eveDropped} {
		ch <- d
	}
}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	t := c.p.Totals()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for e := Encap(0); e < numEncaps; e++ {
		for a := Action(0); a < numActions; a++ {
			counter(c.packets, t.Packets[e][a], e.String(), a.String())
		}
		counter(c.bytes, t.Bytes[e], e.String())
	}
	// Every reason is exported, zeros included, so that alerts can name them.
	for r := geneve.Reason(1); r < geneve.NumReasons; r++ {
		counter(c.decodeErrors, t.GeneveErr[r], EncapGeneve.String(), r.String())
	}
	for r := packet.Reason(1); r < packet.NumReasons; r++ {
		counter(c.decodeErrors, t.InnerErr[r], EncapGeneve.String(), "inner_"+r.String())
	}
	counter(c.sendErrors, t.SendErrors)
	counter(c.returned, t.Returned)
	if c.g.FlowsActive != nil {
		ch <- prometheus.MustNewConstMetric(c.flowsActive, prometheus.GaugeValue, float64(c.g.FlowsActive()))
	}
	if c.g.FlowsEvicted != nil {
		counter(c.flowsEvicted, c.g.FlowsEvicted())
	}
	if c.g.FlowsEnded != nil {
		allowed, dropped := c.g.FlowsEnded()
		counter(c.flowsEnded, allowed, "allow")
		counter(c.flowsEnded, dropped, "drop")
	}
	if c.g.EVEWritten != nil {
		counter(c.eveWritten, c.g.EVEWritten())
	}
	if c.g.EVEDropped != nil {
		counter(c.eveDropped, c.g.EVEDropped())
	}
}
