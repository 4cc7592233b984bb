package afxdp

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"weir/dataplane/afxdp/xdp"
)

// Collector exports the backend's per-queue ring counters and the XDP
// program's verdict counters, read at scrape time: the workers only store to
// their own counters, and the program's are per CPU.
type Collector struct {
	b *Backend

	queue    [7]*prometheus.Desc
	zeroCopy *prometheus.Desc
	xdp      *prometheus.Desc
	info     *prometheus.Desc
	fast     [8]*prometheus.Desc
}

// fastMetrics are the XDP fast path's, in the order of FastStats' fields.
var fastMetrics = [8][3]string{
	{"weir_xdp_fast_flows", "gauge", "Flows whose packets the XDP program answers itself now (the fast path)."},
	{"weir_xdp_fast_added_total", "counter", "Flows put in the XDP fast path."},
	{"weir_xdp_fast_removed_total", "counter", "Flows taken out of the XDP fast path: closed, ended, or flushed by a reload."},
	{"weir_xdp_fast_evicted_total", "counter", "Fast-path keys the map dropped before weir took them out (their packets since the last read are not in the flow's counts)."},
	{"weir_xdp_fast_full_total", "counter", "Requests to put a flow in the fast path turned away because it held its maximum (a waiting flow asks again each second)."},
	{"weir_xdp_fast_requests_dropped_total", "counter", "Requests to put a flow in the fast path lost to a full queue (the flow's next packets ask again)."},
	{"weir_xdp_fast_errors_total", "counter", "Failed operations on the fast path's map."},
	{"weir_xdp_fast_credited_packets_total", "counter", "Packets answered by the fast path and credited to their flows."},
}

// queueMetrics are the per-queue counters, in the order of Collector.queue.
var queueMetrics = [7][2]string{
	{"weir_afxdp_rx_packets_total", "Frames taken from the queue's AF_XDP RX ring."},
	{"weir_afxdp_tx_packets_total", "Replies put on the queue's AF_XDP TX ring."},
	{"weir_afxdp_fill_ring_empty_total", "Packets the kernel had no fill-ring frame for (sampled each second)."},
	{"weir_afxdp_tx_ring_full_total", "Replies dropped because the queue's TX ring was full."},
	{"weir_afxdp_invalid_descriptors_total", "Descriptors outside the UMEM, or refused by the kernel on the fill and TX rings."},
	{"weir_afxdp_rx_dropped_total", "Packets steered to the socket that the kernel dropped, such as frames longer than a UMEM frame (sampled each second)."},
	{"weir_afxdp_rx_ring_full_total", "Packets dropped because the queue's RX ring was full: the worker did not keep up (sampled each second)."},
}

// NewCollector returns the collector of b's metrics.
func NewCollector(b *Backend) *Collector {
	c := &Collector{b: b}
	for i, m := range queueMetrics {
		c.queue[i] = prometheus.NewDesc(m[0], m[1], []string{"queue"}, nil)
	}
	c.zeroCopy = prometheus.NewDesc("weir_afxdp_zerocopy", "1 when the queue's socket runs in zero-copy mode, 0 in copy mode.", []string{"queue"}, nil)
	c.xdp = prometheus.NewDesc("weir_xdp_packets_total",
		"Packets the XDP program saw, by what it did: redirected to a socket, passed to the kernel (and why), or dropped.", []string{"result"}, nil)
	c.info = prometheus.NewDesc("weir_afxdp_info", "The AF_XDP backend in use: interface, XDP mode, and whether the program takes jumbo (multi-buffer) frames.",
		[]string{"interface", "xdp_mode", "frags"}, nil)
	for i, m := range fastMetrics {
		c.fast[i] = prometheus.NewDesc(m[0], m[2], nil, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.queue {
		ch <- d
	}
	ch <- c.zeroCopy
	ch <- c.xdp
	ch <- c.info
	for _, d := range c.fast {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, q := range c.b.Stats() {
		l := strconv.Itoa(q.Queue)
		for i, v := range [7]uint64{q.RX, q.TX, q.FillRingEmpty, q.TxRingFull, q.InvalidDescs, q.RxDropped, q.RxRingFull} {
			ch <- prometheus.MustNewConstMetric(c.queue[i], prometheus.CounterValue, float64(v), l)
		}
		zc := 0.0
		if q.ZeroCopy {
			zc = 1
		}
		ch <- prometheus.MustNewConstMetric(c.zeroCopy, prometheus.GaugeValue, zc, l)
	}
	if x, err := c.b.XDPCounters(); err == nil {
		for _, r := range xdpResults(x) {
			ch <- prometheus.MustNewConstMetric(c.xdp, prometheus.CounterValue, float64(r.n), r.result)
		}
	}
	if f, ok := c.b.FastStats(); ok {
		for i, v := range [8]uint64{uint64(f.Flows), f.Added, f.Removed, f.Evicted, f.Full, f.Dropped, f.Errors, f.Credited} {
			kind := prometheus.CounterValue
			if fastMetrics[i][1] == "gauge" {
				kind = prometheus.GaugeValue
			}
			ch <- prometheus.MustNewConstMetric(c.fast[i], kind, float64(v))
		}
	}
	c.b.mu.Lock()
	mode, frags := c.b.xdpMode, c.b.frags
	c.b.mu.Unlock()
	if mode != "" {
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, c.b.cfg.Interface, mode, strconv.FormatBool(frags))
	}
}

type xdpResult struct {
	result string
	n      uint64
}

// xdpResults labels the program's counters for weir_xdp_packets_total.
func xdpResults(x xdp.Counters) []xdpResult {
	return []xdpResult{
		{"redirected", x.Redirected},
		{"passed_no_socket", x.NoSocket},
		{"passed", x.Passed},
		{"passed_fragment", x.PassedFragment},
		{"passed_malformed", x.PassedMalformed},
		{"passed_oversize", x.PassedOversize},
		{"dropped_source", x.DroppedSource},
		{"fast_path", x.FastPath},
	}
}
