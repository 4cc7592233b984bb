package xdpbench

import (
	"strings"
	"testing"
	"time"
)

const procStat = `cpu  1000 20 300 5000 40 6 7 8 90 10
cpu0 600 10 200 2000 30 6 7 4 90 10
cpu1 400 10 100 3000 10 0 0 4 0 0
intr 12345 0 0
ctxt 999
`

func TestParseStat(t *testing.T) {
	st, err := ParseStat(strings.NewReader(procStat))
	if err != nil {
		t.Fatal(err)
	}
	// guest (90) and guest_nice (10) are inside user and nice already.
	if want := (CPUTimes{Total: 1000 + 20 + 300 + 5000 + 40 + 6 + 7 + 8, Idle: 5040, IRQ: 6 + 7}); st.All != want {
		t.Fatalf("all CPUs: %+v, want %+v", st.All, want)
	}
	if len(st.PerCPU) != 2 || st.PerCPU[1] != (CPUTimes{Total: 3524, Idle: 3010, IRQ: 0}) {
		t.Fatalf("per CPU: %+v", st.PerCPU)
	}
	if got := st.All.Busy(); got != 1341 {
		t.Fatalf("busy %d ticks, want 1341", got)
	}
	later := st.All
	later.Total += 300
	later.Idle += 100
	if got := later.BusySince(st.All); got != 2*time.Second {
		t.Fatalf("200 busy ticks are %v, want 2s", got)
	}
}

func TestParseStatOldKernel(t *testing.T) {
	// Kernels before 2.6.11 have four to seven columns.
	st, err := ParseStat(strings.NewReader("cpu 1 2 3 4 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.All != (CPUTimes{Total: 15, Idle: 9}) {
		t.Fatalf("%+v", st.All)
	}
}

func TestParseStatErrors(t *testing.T) {
	for _, in := range []string{"", "intr 1 2\n", "cpu 1 2 3\n", "cpu 1 2 x 4 5\n"} {
		if _, err := ParseStat(strings.NewReader(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestReadStat(t *testing.T) {
	st, err := ReadStat()
	if err != nil {
		t.Fatal(err)
	}
	if st.All.Total == 0 || len(st.PerCPU) == 0 {
		t.Fatalf("%+v", st)
	}
}

// TestTargetBusySince: every CPU's busy time but the generator's, and the
// generator CPU's irq and softirq time only.
func TestTargetBusySince(t *testing.T) {
	before, err := ParseStat(strings.NewReader(`cpu  0 0 0 0 0 0 0 0
cpu0 100 0 50 10 0 1 4 0
cpu1 20 0 10 500 5 0 2 0
`))
	if err != nil {
		t.Fatal(err)
	}
	after, err := ParseStat(strings.NewReader(`cpu  0 0 0 0 0 0 0 0
cpu0 180 0 90 10 0 2 13 0
cpu1 50 0 25 560 5 1 6 0
`))
	if err != nil {
		t.Fatal(err)
	}
	// CPU 1: (50+25+1+6) - (20+10+0+2) = 50 ticks busy; CPU 0: (2+13) - (1+4) = 10
	// ticks of irq and softirq.
	if got, want := after.TargetBusySince(before, 0), 60*(time.Second/UserHZ); got != want {
		t.Errorf("generator on CPU 0: %v, want %v", got, want)
	}
	// CPU 0: (180+90+2+13) - (100+50+1+4) = 130 ticks busy; CPU 1: (1+6) - (0+2) = 5
	// ticks of irq and softirq.
	if got, want := after.TargetBusySince(before, 1), 135*(time.Second/UserHZ); got != want {
		t.Errorf("generator on CPU 1: %v, want %v", got, want)
	}
	if got, want := after.TargetBusySince(before, 5), after.All.BusySince(before.All); got != want {
		t.Errorf("generator CPU unknown: %v, want all CPUs' busy time %v", got, want)
	}
}
