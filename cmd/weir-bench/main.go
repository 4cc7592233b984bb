// Command weir-bench measures, in one run, how fast weir's dataplanes return
// GWLB traffic on this machine: for each target, the highest offered rate at
// which under 1% of packets go without a good reply, and the CPU time a packet
// costs at that rate beyond what the generator alone costs.
//
// Targets (-targets):
//
//	xdptx   an XDP program that reflects each GENEVE packet (XDP_TX): the upper bound
//	afxdp   weir run with dataplane.backend: afxdp
//	socket  weir run with the socket backend
//
// and, for diagnostics, xdp-fast (weir's own XDP program with its fast path
// on and every request's flow in its map: each request answered in XDP),
// afxdp-io (weir's AF_XDP backend in the bench's own process with a pipeline
// that returns every datagram: the AF_XDP mechanics alone) and drop (the
// generator alone).
//
// The generator and the target sit in two network namespaces joined by a
// veth pair; the generator runs on one thread pinned to one CPU (-gen-cpu).
// Generators (-gen):
//
//	live  BPF_PROG_TEST_RUN with live frames (kernel 5.18+): an XDP program
//	      writes each request into a kernel page and XDP_TX sends it out of the
//	      generator's veth as an xdp_frame, paced by the program (the default)
//	xsk   an AF_XDP socket in copy mode: an skb per packet, about a sixth of the rate
//
// An XDP program on the generator's veth checks and counts each reply, and a
// sample of replies is compared byte by byte with its request before each
// target's search. It needs root:
//
//	sudo go run ./cmd/weir-bench -targets xdptx,afxdp,socket
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"weir/internal/xdpbench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg := xdpbench.DefaultConfig()
	fs := flag.NewFlagSet("weir-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	targets := fs.String("targets", strings.Join(xdpbench.Targets, ","), "targets to measure, comma-separated: "+strings.Join(xdpbench.Targets, ", "))
	fs.DurationVar(&cfg.Trial, "trial", cfg.Trial, "sending time of each search trial (the CPU measurement uses twice this)")
	maxRate := fs.Float64("max-rate", cfg.MaxRate/1e3, "highest rate to offer, kpps")
	start := fs.Float64("start-rate", cfg.Start/1e3, "first rate offered, kpps (the search doubles it until loss)")
	fs.IntVar(&cfg.MaxTrials, "trials", cfg.MaxTrials, "at most this many search trials a target")
	fs.IntVar(&cfg.Retries, "retries", cfg.Retries, "runs again of a trial that lost 1% or more before its rate counts as failed")
	fs.StringVar(&cfg.Gen, "gen", cfg.Gen, "generator: live (BPF_PROG_TEST_RUN with live frames, kernel 5.18+) or xsk (an AF_XDP socket in copy mode)")
	fs.IntVar(&cfg.GenCPU, "gen-cpu", 0, "CPU the generator is pinned to")
	fs.IntVar(&cfg.LiveBatch, "live-batch", xdpbench.LiveBatch, "frames the live generator's kernel loop runs the program on before it flushes them to the veth, 1 to 256")
	fs.IntVar(&cfg.Flows, "flows", cfg.Flows, "distinct inner 5-tuples")
	fs.IntVar(&cfg.Payload, "payload", cfg.Payload, "inner transport payload bytes")
	weirBin := fs.String("weir", "", "weir binary for the afxdp and socket targets (default: build ./cmd/weir)")
	rates := fs.String("rates", "", "comma-separated kpps: trials at these rates instead of the search (diagnostics)")
	quiet := fs.Bool("q", false, "print only the table, not each trial")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "weir-bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg.MaxRate, cfg.Start = *maxRate*1e3, *start*1e3
	if cfg.Gen != xdpbench.GenLive && cfg.Gen != xdpbench.GenXSK {
		fmt.Fprintf(stderr, "weir-bench: unknown generator %q (want %s)\n", cfg.Gen, strings.Join(xdpbench.Generators, ", "))
		return 2
	}
	if cfg.LiveBatch < 1 || cfg.LiveBatch > xdpbench.MaxLiveBatch {
		fmt.Fprintf(stderr, "weir-bench: -live-batch %d, want 1 to %d\n", cfg.LiveBatch, xdpbench.MaxLiveBatch)
		return 2
	}
	if *rates != "" {
		for _, r := range strings.Split(*rates, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
			if err != nil || v <= 0 {
				fmt.Fprintf(stderr, "weir-bench: bad rate %q\n", r)
				return 2
			}
			cfg.Rates = append(cfg.Rates, v*1e3)
		}
	}
	cfg.Targets = nil
	needWeir := false
	for _, t := range strings.Split(*targets, ",") {
		t = strings.TrimSpace(t)
		known := false
		all := append(append([]string{}, xdpbench.Targets...), xdpbench.Diagnostics...)
		for _, k := range all {
			known = known || t == k
		}
		if !known {
			fmt.Fprintf(stderr, "weir-bench: unknown target %q (want %s)\n", t, strings.Join(all, ", "))
			return 2
		}
		cfg.Targets = append(cfg.Targets, t)
		needWeir = needWeir || t == xdpbench.TargetAFXDP || t == xdpbench.TargetSocket
	}
	if !*quiet {
		cfg.Log = stderr
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "weir-bench: needs root (it makes network namespaces and loads XDP programs); run it with sudo")
		return 1
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	xdpbench.RemoveStale()

	if needWeir {
		cfg.WeirBin = *weirBin
		if cfg.WeirBin == "" {
			dir, err := os.MkdirTemp("", "weir-bench-bin-")
			if err != nil {
				fmt.Fprintln(stderr, "weir-bench:", err)
				return 1
			}
			defer os.RemoveAll(dir)
			cfg.WeirBin = filepath.Join(dir, "weir")
			if err := buildWeir(cfg.WeirBin); err != nil {
				fmt.Fprintln(stderr, "weir-bench:", err)
				return 1
			}
		}
	}

	b, err := xdpbench.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "weir-bench:", err)
		return 1
	}
	defer func() {
		if err := b.Close(); err != nil {
			fmt.Fprintln(stderr, "weir-bench: cleaning up:", err)
		}
	}()

	background, err := xdpbench.Background(time.Second)
	if err != nil {
		fmt.Fprintln(stderr, "weir-bench:", err)
		return 1
	}
	began := time.Now()
	var rows []xdpbench.Row
	for _, t := range cfg.Targets {
		if ctx.Err() != nil {
			break
		}
		rows = append(rows, b.Measure(ctx, t))
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "weir-bench: interrupted")
		return 130
	}
	printTable(stdout, cfg, rows, background, time.Since(began))
	for _, r := range rows {
		if r.Err != nil {
			return 1
		}
	}
	return 0
}

// buildWeir builds ./cmd/weir of the module the working directory is in.
func buildWeir(out string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return errors.New("cannot find the weir module to build weir: run from inside it, or pass -weir")
	}
	cmd := exec.Command("go", "build", "-o", out, "./cmd/weir")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building weir: %v\n%s", err, b)
	}
	return nil
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

func printTable(w io.Writer, cfg xdpbench.Config, rows []xdpbench.Row, background float64, took time.Duration) {
	gen := cfg.Gen
	if gen == xdpbench.GenLive {
		gen = fmt.Sprintf("%s (batches of %d)", gen, cfg.LiveBatch)
	}
	fmt.Fprintf(w, "kernel %s, %d CPUs, generator %s on CPU %d, %d flows, %d-byte inner payload, trials of %v, run took %v\n",
		kernelRelease(), runtime.NumCPU(), gen, cfg.GenCPU, cfg.Flows, cfg.Payload, cfg.Trial, took.Round(time.Second))
	fmt.Fprintf(w, "before the run, %.0f%% of the CPUs was busy with other work", 100*background)
	if background > 0.05 {
		fmt.Fprint(w, ": the figures are noisy, run again on a quiet machine")
	}
	fmt.Fprintln(w)
	var ref float64
	for _, r := range rows {
		if r.Target == xdpbench.TargetXDPTX && r.Err == nil {
			ref = r.Best.Offered
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tkpps at <1% loss\tloss\tCPU ns/packet\t(at kpps, loss)\tvs xdptx\tbusy per CPU\tbyte-checked (exact)\t")
	for _, r := range rows {
		if r.Err != nil {
			fmt.Fprintf(tw, "%s\terror: %v\t\t\t\t\t\t\t\n", r.Target, r.Err)
			continue
		}
		if r.Best.Sent == 0 {
			fmt.Fprintf(tw, "%s\tnone under the loss limit\t\t\t\t\t\t\t\n", r.Target)
			continue
		}
		kpps := fmt.Sprintf("%.0f", r.Best.Offered/1e3)
		if r.Best.GenLimited() || r.Best.Asked >= cfg.MaxRate {
			kpps = ">=" + kpps // the generator or -max-rate ran out first
		}
		ratio := "-"
		if ref > 0 {
			ratio = fmt.Sprintf("%.0f%%", 100*r.Best.Offered/ref)
		}
		var per []string
		for _, p := range r.CPU.PerCPU {
			per = append(per, fmt.Sprintf("%.0f%%", 100*p))
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f%%\t%.0f\t(%.0f, %.2f%%)\t%s\t%s\t%d (%d)\t\n", r.Target, kpps, 100*r.Best.Loss(),
			r.CPU.NsPerPacket, r.CPU.Rate/1e3, 100*r.CPU.Loss, ratio, strings.Join(per, " "), r.Checked, r.Exact)
	}
	tw.Flush()
}
