package main

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"
	"weir/config"
	"weir/dataplane/engine"

	"weir/dataplane"
	"weir/dataplane/socket"
	gwlbsim "weir/sim/gwlb"
)

// returnAll is the baseline pipeline: it returns every datagram untouched, so a run
// with it measures the socket I/O alone (recvmmsg, reply headers, sendmmsg).
type returnAll struct{}

func (returnAll) Process(_ *dataplane.Worker, b *dataplane.Batch) {
	for i := range b.Slots[:b.N] {
		b.Slots[i].Verdict = dataplane.VerdictReturn
	}
}

// BenchmarkLoopbackGWLB is the bench harness for the inline path: the GWLB simulator
// sends GENEVE over loopback as fast as replies come back, first to the socket
// backend with the I/O-only baseline pipeline, then to weir's full pipeline (decode,
// flow table, policy), in the same run. It reports both rates and their ratio, which
// is what to watch: the machine's speed cancels out.
//
//	go test -run - -bench LoopbackGWLB -benchtime 200000x ./cmd/weir
func BenchmarkLoopbackGWLB(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	measure := func(p *dataplane.Pipeline) gwlbsim.Report {
		port, err := demoPort(16081, demoAppliance, demoGWLB)
		if err != nil {
			b.Fatal(err)
		}
		be, err := socket.New(socket.Config{
			Listeners: []socket.Listener{{Addr: netip.AddrPortFrom(demoAppliance, port), Encap: dataplane.EncapGeneve}},
			Workers:   1, Logger: log,
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- be.Run(ctx, p, func() { close(ready) }) }()
		<-ready
		defer func() { cancel(); <-done }()
		rep, err := gwlbsim.Run(context.Background(), gwlbsim.Config{
			Targets: []gwlbsim.Target{{Addr: netip.AddrPortFrom(demoAppliance, port)}},
			Local:   demoGWLB, ListenPort: port,
			Flows: max(b.N/20, 1), PacketsPerFlow: 20, ActiveFlows: 1000,
			MaxOutstanding: 256, ReplyTimeout: 500 * time.Millisecond, Seed: 1,
		})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Mismatched != 0 {
			b.Fatalf("%d replies mismatched", rep.Mismatched)
		}
		return rep
	}

	base := measure(dataplane.NewPipeline(returnAll{}))
	cfg := config.Default()
	cfg.Mirror.Listen = netip.AddrPort{}
	e, err := engine.New(cfg, log, false)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	full := measure(e.Pipeline)
	b.StopTimer()
	e.Flush(time.Now().UnixNano())
	e.CloseOutputs()

	b.ReportMetric(full.PPS, "pps")
	b.ReportMetric(base.PPS, "baseline-pps")
	b.ReportMetric(full.PPS/base.PPS, "x-baseline")
	b.ReportMetric(full.LatencyUS.P50, "p50-µs")
	b.ReportMetric(base.LatencyUS.P50, "baseline-p50-µs")
}
