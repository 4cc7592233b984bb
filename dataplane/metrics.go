package dataplane

import (
	"github.com/prometheus/client_golang/prometheus"

	"weir/dataplane/packet"
	"weir/geneve"
	"weir/vxlan"
)

// Gauges are values the collector reads from outside the pipeline at scrape time.
type Gauges struct {
	FlowsActive  func() int
	FlowsEvicted func() uint64
	// FlowsLost returns how many ended-flow records packet workers dropped because
	// the outputs were not keeping up.
	FlowsLost func() uint64
	// EVEEventTypes name the EVE event types ("flow", "alert"); EVEWritten(i) and
	// EVEDropped(i) return the records of EVEEventTypes[i] written, and lost to a full
	// queue.
	EVEEventTypes          []string
	EVEWritten, EVEDropped func(i int) uint64
	// FlowsEnded returns how many flows have ended, by their ACL verdict.
	FlowsEnded func() (allowed, dropped uint64)
	// Sessions returns the mirror sessions (they change on reload), for per-session
	// metrics.
	Sessions func() []*Session
	// FlowLogWritten and FlowLogDropped return the flow-log lines written, and
	// lost to a full queue; nil without a flow log.
	FlowLogWritten, FlowLogDropped func() uint64
	// PCAPDropped returns the packets of a session the pcap writer dropped.
	PCAPDropped func(session int) uint64
	// SocketDrops returns the datagrams the kernel dropped at the backend's receive
	// sockets, by listener (gwlb, mirror).
	SocketDrops func() map[string]uint64
	// SocketRecvBuffer returns the receive buffer the kernel granted each socket,
	// by listener.
	SocketRecvBuffer func() map[string]uint64
	// PCAPLate returns the pcap records written after a later one (they reached the
	// writer more than its reorder window late); nil without pcap output.
	PCAPLate func() uint64
	// Offloaded returns the GENEVE datagrams a backend answered in the kernel
	// without the pipeline (the AF_XDP backend's XDP fast path) and their UDP
	// payload bytes: they count as allowed and returned. nil when none can be.
	Offloaded func() (packets, bytes uint64)
}

// Collector exports the pipeline's counters, summed over workers at scrape time.
type Collector struct {
	p *Pipeline
	g Gauges

	packets, bytes, decodeErrors, sendErrors, returned *prometheus.Desc
	flowsActive, flowsEvicted, eveWritten, eveDropped  *prometheus.Desc
	flowsLost, flowLogWritten, flowLogDropped          *prometheus.Desc
	flowsEnded                                         *prometheus.Desc
	vxlanReserved                                      *prometheus.Desc
	socketDrops, socketRecvBuffer                      *prometheus.Desc
	mirror                                             [7]*prometheus.Desc
	pcapLate                                           *prometheus.Desc
}

// The per-session mirror metrics, in the order of Collector.mirror.
var mirrorMetrics = [7][2]string{
	{"weir_mirror_received_packets_total", "Mirrored packets received for the session."},
	{"weir_mirror_received_bytes_total", "Bytes of mirrored frames received for the session."},
	{"weir_mirror_accepted_packets_total", "Mirrored packets the session's filter accepted (recorded)."},
	{"weir_mirror_rejected_packets_total", "Mirrored packets the session's filter rejected or did not match."},
	{"weir_mirror_truncated_packets_total", "Accepted packets cut to the session's packet length."},
	{"weir_mirror_duplicates_total", "Second copies of packets mirrored at both ends, suppressed."},
	{"weir_pcap_dropped_total", "Accepted packets the pcap writer dropped because its queue was full."},
}

// NewCollector makes the weir_ metrics of p and g.
func NewCollector(p *Pipeline, g Gauges) *Collector {
	c := &Collector{
		p: p, g: g,
		vxlanReserved: prometheus.NewDesc("weir_vxlan_reserved_bits_total",
			"VXLAN headers with reserved bits set (accepted: real senders set them).", nil, nil),
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
		flowLogWritten: prometheus.NewDesc("weir_flowlog_records_total",
			"Flow-log lines written.", nil, nil),
		flowLogDropped: prometheus.NewDesc("weir_flowlog_dropped_total",
			"Flow-log lines lost because the writer's queue was full (only lines emitted on the packet path are ever dropped).", nil, nil),
		flowsLost: prometheus.NewDesc("weir_flow_records_lost_total",
			"Records of ended flows that packet workers dropped because the outputs were not keeping up (they never wait).", nil, nil),
		flowsEvicted: prometheus.NewDesc("weir_flows_evicted_total",
			"Flows evicted because the flow table was full.", nil, nil),
		flowsEnded: prometheus.NewDesc("weir_flows_ended_total",
			"Flows that ended (timed out, closed, evicted or flushed), by ACL verdict.", []string{"action"}, nil),
		eveWritten: prometheus.NewDesc("weir_eve_records_total",
			"EVE records written, by event type.", []string{"event_type"}, nil),
		eveDropped: prometheus.NewDesc("weir_eve_dropped_total",
			"EVE records lost because the writer's queue was full, by event type.", []string{"event_type"}, nil),
		socketDrops: prometheus.NewDesc("weir_socket_drops_total",
			"Datagrams the kernel dropped at the receive sockets (queue full: workers too slow or the buffer too small), by listener.",
			[]string{"listener"}, nil),
		socketRecvBuffer: prometheus.NewDesc("weir_socket_recv_buffer_bytes",
			"Receive buffer the kernel granted each receive socket (dataplane.recv_buffer, capped by net.core.rmem_max without CAP_NET_ADMIN), by listener.",
			[]string{"listener"}, nil),
	}
	for i, m := range mirrorMetrics {
		c.mirror[i] = prometheus.NewDesc(m[0], m[1], []string{"session"}, nil)
	}
	c.pcapLate = prometheus.NewDesc("weir_pcap_late_total",
		"Packets written to the pcap out of timestamp order: they reached the writer more than outputs.pcap.reorder_window late.", nil, nil)
	return c
}

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.decodeErrors, c.sendErrors,
		c.returned, c.flowsActive, c.flowsEvicted, c.flowsEnded, c.eveWritten, c.eveDropped, c.vxlanReserved,
		c.socketDrops, c.socketRecvBuffer, c.flowsLost, c.flowLogWritten, c.flowLogDropped} {
		ch <- d
	}
	for _, d := range c.mirror {
		ch <- d
	}
	ch <- c.pcapLate
}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	t := c.p.Totals()
	if c.g.Offloaded != nil {
		n, b := c.g.Offloaded()
		t.Packets[EncapGeneve][ActionAllow] += n
		t.Bytes[EncapGeneve] += b
		t.Returned += n
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	// Plain traffic comes only from replayed captures, never from a listener.
	for e := Encap(0); e < EncapNone; e++ {
		for a := Action(0); a < NumActions(); a++ {
			counter(c.packets, t.Packets[e][a], e.String(), a.String())
		}
		counter(c.bytes, t.Bytes[e], e.String())
	}
	// Every reason is exported, zeros included, so that alerts can name them.
	for r := geneve.Reason(1); r < geneve.NumReasons; r++ {
		counter(c.decodeErrors, t.GeneveErr[r], EncapGeneve.String(), r.String())
	}
	for r := vxlan.Reason(1); r < vxlan.NumReasons; r++ {
		counter(c.decodeErrors, t.VXLANErr[r], EncapVXLAN.String(), r.String())
	}
	for e := Encap(0); e < EncapNone; e++ {
		for r := packet.Reason(1); r < packet.NumReasons; r++ {
			counter(c.decodeErrors, t.InnerErr[e][r], e.String(), "inner_"+r.String())
		}
	}
	counter(c.vxlanReserved, t.VXLANReserved)
	var sessions []*Session
	if c.g.Sessions != nil {
		sessions = c.g.Sessions()
	}
	for _, x := range sessions {
		if int(x.Index) >= len(t.Sessions) {
			continue
		}
		st := t.Sessions[x.Index]
		var dropped uint64
		if c.g.PCAPDropped != nil {
			dropped = c.g.PCAPDropped(int(x.Index))
		}
		for i, v := range [7]uint64{st.Received, st.ReceivedBytes, st.Accepted, st.Rejected, st.Truncated, st.Duplicates, dropped} {
			counter(c.mirror[i], v, x.Name)
		}
	}
	counter(c.sendErrors, t.SendErrors)
	counter(c.returned, t.Returned)
	if c.g.FlowsActive != nil {
		ch <- prometheus.MustNewConstMetric(c.flowsActive, prometheus.GaugeValue, float64(c.g.FlowsActive()))
	}
	if c.g.FlowsEvicted != nil {
		counter(c.flowsEvicted, c.g.FlowsEvicted())
	}
	if c.g.PCAPLate != nil {
		counter(c.pcapLate, c.g.PCAPLate())
	}
	if c.g.FlowsLost != nil {
		counter(c.flowsLost, c.g.FlowsLost())
	}
	if c.g.FlowLogWritten != nil {
		counter(c.flowLogWritten, c.g.FlowLogWritten())
		counter(c.flowLogDropped, c.g.FlowLogDropped())
	}
	if c.g.FlowsEnded != nil {
		allowed, dropped := c.g.FlowsEnded()
		counter(c.flowsEnded, allowed, "allow")
		counter(c.flowsEnded, dropped, "drop")
	}
	// Every event type is exported, zeros included, so that alerts can name them.
	for i, name := range c.g.EVEEventTypes {
		if c.g.EVEWritten != nil {
			counter(c.eveWritten, c.g.EVEWritten(i), name)
		}
		if c.g.EVEDropped != nil {
			counter(c.eveDropped, c.g.EVEDropped(i), name)
		}
	}
	if c.g.SocketDrops != nil {
		for l, v := range c.g.SocketDrops() {
			counter(c.socketDrops, v, l)
		}
	}
	if c.g.SocketRecvBuffer != nil {
		for l, v := range c.g.SocketRecvBuffer() {
			ch <- prometheus.MustNewConstMetric(c.socketRecvBuffer, prometheus.GaugeValue, float64(v), l)
		}
	}
}
