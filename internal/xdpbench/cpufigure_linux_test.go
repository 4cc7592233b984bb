package xdpbench

import (
	"context"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// TestCPUFigureCountsTargetWork (from a review: it failed while the figure left
// out the generator CPU's softirq time): the CPU figure (measurement trial's busy
// time minus the drop baseline's) must be at least the run time of the XDP
// programs the target added (the reflector and the reply checker, less the
// baseline's drop program), as the kernel's BPF statistics measure it: that
// is a strict lower bound of the work the target costs.
func TestCPUFigureCountsTargetWork(t *testing.T) {
	requireRoot(t)
	cfg := DefaultConfig()
	cfg.Tag = "cpufig"
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	runtimeOf := func(p *ebpf.Program) time.Duration {
		s, err := p.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return s.Runtime
	}
	checker := b.checker.Programs["wb_check"]
	const rate, dur = 3e5, 2 * time.Second
	ctx := context.Background()

	refl, err := b.startXDP(ReflectorSpec())
	if err != nil {
		t.Fatal(err)
	}
	r0 := runtimeOf(refl.prog) + runtimeOf(checker)
	m, err := b.Trial(ctx, rate, dur)
	if err != nil {
		refl.stop()
		t.Fatal(err)
	}
	progs := runtimeOf(refl.prog) + runtimeOf(checker) - r0
	if err := refl.stop(); err != nil {
		t.Fatal(err)
	}

	drop, err := b.startXDP(DropSpec())
	if err != nil {
		t.Fatal(err)
	}
	d0 := runtimeOf(drop.prog)
	bm, err := b.Trial(ctx, rate, dur)
	if err != nil {
		drop.stop()
		t.Fatal(err)
	}
	progs -= runtimeOf(drop.prog) - d0
	if err := drop.stop(); err != nil {
		t.Fatal(err)
	}

	extra := m.busy - bm.busy
	t.Logf("reflector: sent %d good %d busy %v per CPU %.2f; baseline: sent %d busy %v per CPU %.2f",
		m.Sent, m.Good, m.busy, m.perCPU, bm.Sent, bm.busy, bm.perCPU)
	t.Logf("CPU figure %v (%.1f ns/packet); XDP programs alone %v (%.1f ns/packet)",
		extra, float64(extra)/float64(m.Sent), progs, float64(progs)/float64(m.Sent))
	if m.Loss() > 0.01 {
		t.Fatalf("the reflector lost %.1f%% at %.0f pps: no figure to check", 100*m.Loss(), rate)
	}
	if extra < progs {
		t.Errorf("the CPU figure %v is less than the target's XDP programs' own run time %v: work on the generator's busy CPU is not counted", extra, progs)
	}
}
