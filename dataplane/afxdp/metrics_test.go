package afxdp

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCollector: each queue's counters come out under its queue label as the
// worker published them, and the info and XDP metrics only once the program
// is attached (here: never, as the backend is not opened).
func TestCollector(t *testing.T) {
	b, err := New(Config{Interface: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	q := b.queues[0]
	q.rx.Store(7)
	q.tx.Store(5)
	q.fillEmpty.Store(1)
	q.txFull.Store(2)
	q.invalid.Store(3)
	q.rxDropped.Store(4)
	q.rxRingFull.Store(6)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(b))
	want := `
# HELP weir_afxdp_rx_packets_total Frames taken from the queue's AF_XDP RX ring.
# TYPE weir_afxdp_rx_packets_total counter
weir_afxdp_rx_packets_total{queue="0"} 7
# HELP weir_afxdp_tx_packets_total Replies put on the queue's AF_XDP TX ring.
# TYPE weir_afxdp_tx_packets_total counter
weir_afxdp_tx_packets_total{queue="0"} 5
# HELP weir_afxdp_fill_ring_empty_total Packets the kernel had no fill-ring frame for (sampled each second).
# TYPE weir_afxdp_fill_ring_empty_total counter
weir_afxdp_fill_ring_empty_total{queue="0"} 1
# HELP weir_afxdp_tx_ring_full_total Replies dropped because the queue's TX ring was full.
# TYPE weir_afxdp_tx_ring_full_total counter
weir_afxdp_tx_ring_full_total{queue="0"} 2
# HELP weir_afxdp_invalid_descriptors_total Descriptors outside the UMEM, or refused by the kernel on the fill and TX rings.
# TYPE weir_afxdp_invalid_descriptors_total counter
weir_afxdp_invalid_descriptors_total{queue="0"} 3
# HELP weir_afxdp_rx_dropped_total Packets steered to the socket that the kernel dropped, such as frames longer than a UMEM frame (sampled each second).
# TYPE weir_afxdp_rx_dropped_total counter
weir_afxdp_rx_dropped_total{queue="0"} 4
# HELP weir_afxdp_rx_ring_full_total Packets dropped because the queue's RX ring was full: the worker did not keep up (sampled each second).
# TYPE weir_afxdp_rx_ring_full_total counter
weir_afxdp_rx_ring_full_total{queue="0"} 6
# HELP weir_afxdp_zerocopy 1 when the queue's socket runs in zero-copy mode, 0 in copy mode.
# TYPE weir_afxdp_zerocopy gauge
weir_afxdp_zerocopy{queue="0"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
