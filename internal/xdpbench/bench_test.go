package xdpbench

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain removes the namespaces of an earlier, killed run.
func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		RemoveStale()
	}
	os.Exit(m.Run())
}

// The reflector target end to end, in a short run with each generator (the
// default first): the byte check passes, every reply counted is good, and the
// namespaces are gone after Close.
func TestReflectorTarget(t *testing.T) {
	if DefaultConfig().Gen != Generators[0] {
		t.Fatalf("the default generator %q is not listed first", DefaultConfig().Gen)
	}
	for _, gen := range Generators {
		t.Run(gen, func(t *testing.T) { testReflectorTarget(t, gen) })
	}
}

func testReflectorTarget(t *testing.T, gen string) {
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("needs ip, and CI is set")
		}
		t.Skip("needs ip")
	}
	cfg := DefaultConfig()
	cfg.Tag = "test" + gen
	cfg.Gen = gen
	cfg.Trial = 300 * time.Millisecond
	cfg.Settle = 100 * time.Millisecond
	cfg.Start, cfg.MaxRate, cfg.MaxTrials = 20e3, 40e3, 2
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	topo := *b.Topology()
	closed := false
	t.Cleanup(func() {
		if !closed {
			b.Close()
		}
	})

	row := b.Measure(context.Background(), TargetXDPTX)
	if row.Err != nil {
		t.Fatal(row.Err)
	}
	if row.Checked < 900 || row.Exact != row.Checked {
		t.Errorf("byte check: %d replies, %d exact", row.Checked, row.Exact)
	}
	if len(row.Trials) != 2 {
		t.Errorf("%d trials, want 2", len(row.Trials))
	}
	for _, tr := range row.Trials {
		if tr.Bad != 0 || tr.Sent == 0 || tr.Good > tr.Sent {
			t.Errorf("trial %+v", tr)
		}
		// Both generators send exactly rate*trial frames at these rates.
		if want := uint64(tr.Asked * cfg.Trial.Seconds()); tr.Sent != want {
			t.Errorf("trial at %.0f pps sent %d, want %d", tr.Asked, tr.Sent, want)
		}
	}
	// 40 kpps is far below what the reflector takes, even on a busy machine.
	if row.Best.Asked != 40e3 || row.Best.Loss() >= 0.01 {
		t.Errorf("best %+v", row.Best)
	}
	// Busy may be 0: at 40 kpps the reflector's softirq time on the
	// generator's CPU can stay under one /proc/stat tick.
	if row.CPU.Packets == 0 || row.CPU.Rate == 0 || row.CPU.NsPerPacket < 0 {
		t.Errorf("CPU %+v", row.CPU)
	}
	c, err := b.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if c.Bad != 0 || c.Good < row.CPU.Packets {
		t.Errorf("checker counts %+v", c)
	}

	closed = true
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{topo.Gen, topo.Dut} {
		if strings.Contains(string(out), ns) {
			t.Errorf("namespace %s left behind", ns)
		}
	}
}

// TestAFXDPIOTarget: weir's AF_XDP backend in the bench's process answers
// every request at a low rate, byte for byte, and leaves no XDP program
// behind when it stops.
func TestAFXDPIOTarget(t *testing.T) {
	requireRoot(t)
	cfg := DefaultConfig()
	cfg.Tag = "testio"
	cfg.Trial = 300 * time.Millisecond
	cfg.Settle = 100 * time.Millisecond
	cfg.Start, cfg.MaxRate, cfg.MaxTrials = 10e3, 20e3, 2
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	row := b.Measure(context.Background(), TargetAFXDPIO)
	if row.Err != nil {
		t.Fatal(row.Err)
	}
	if row.Checked < 900 || row.Exact != row.Checked {
		t.Errorf("byte check: %d replies, %d exact", row.Checked, row.Exact)
	}
	if row.Best.Asked != 20e3 || row.Best.Loss() >= 0.01 {
		t.Errorf("best %+v", row.Best)
	}
	out, err := exec.Command("ip", "-n", b.Topology().Dut, "link", "show", DutIf).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(string(out), "prog/xdp") {
		t.Errorf("an XDP program is left on %s after the target stopped:\n%s", DutIf, out)
	}
}
