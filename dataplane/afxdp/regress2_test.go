package afxdp

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"weir/geneve"
	"weir/internal/netns"
	"weir/vxlan"
)

// Regression tests from a second review of the AF_XDP backend: each failed
// before its fix.

// TestSetAllowedSourcesDuringRun: a reload (SIGHUP) that calls
// SetAllowedSources while Run starts its workers. Run copies b.cfg for each
// worker without b.mu while SetAllowedSources writes b.cfg.AllowedSources
// under it: run with -race.
func TestSetAllowedSourcesDuringRun(t *testing.T) {
	ns := vethNS(t, "rv2a", "rv2a0", "rv2a1", false)
	b := newIn(t, ns, Config{Interface: "rv2a0"})
	lists := [][]netip.Prefix{{netip.MustParsePrefix("10.0.0.0/8")}, {netip.MustParsePrefix("192.0.2.0/24")}}
	stopSet := make(chan struct{})
	setDone := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(3 * time.Second)
		for i := 0; i < 5000 && time.Now().Before(deadline); i++ {
			select {
			case <-stopSet:
				setDone <- nil
				return
			default:
			}
			if err := b.SetAllowedSources(lists[i%2]); err != nil {
				setDone <- err
				return
			}
		}
		setDone <- nil
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends in ns
		if err := netns.Enter(ns); err != nil {
			done <- err
			return
		}
		done <- b.Run(ctx, testPipeline(), func() { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready in 10 s")
	}
	time.Sleep(20 * time.Millisecond)
	close(stopSet)
	if err := <-setDone; err != nil {
		t.Errorf("SetAllowedSources: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop in 10 s")
	}
}

// TestDeviceGoneAfterClockStepBack: a worker notices, within about
// statsEvery, that its device went away (the socket's ENETDOWN), also when
// the wall clock stepped back after its last sample of the kernel's counters
// (NTP, a restored VM). lastStats an hour ahead of now is that step.
func TestDeviceGoneAfterClockStepBack(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lastStats func() int64
	}{
		{"steady clock", func() int64 { return 0 }},
		{"clock stepped back an hour", func() int64 { return time.Now().Add(time.Hour).UnixNano() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := vethNS(t, "rv2c", "rv2c0", "rv2c1", false)
			s := copySocket(t, ns, "rv2c0")
			cfg := Config{Batch: 32, GenevePort: geneve.Port, VXLANPort: vxlan.Port}
			wk := newWorker(0, s, testPipeline().NewWorker(), &queueCounters{}, cfg)
			wk.idleWait = 10
			wk.refill()
			if _, err := wk.step(); err != nil {
				t.Fatal(err)
			}
			wk.lastStats = tc.lastStats()
			ipCmd(t, "-n", ns, "link", "del", "rv2c0")
			deadline := time.Now().Add(2 * statsEvery)
			steps := 0
			for ; steps < 100000 && time.Now().Before(deadline); steps++ {
				if _, err := wk.step(); err != nil {
					t.Logf("after %d steps: %v", steps, err)
					return
				}
			}
			t.Errorf("the worker did not notice within %v that its device is gone (%d idle steps)", 2*statsEvery, steps)
		})
	}
}

// TestKickLeftovers: kickPending wakes the kernel "enough times to
// send the descriptors submitted since the last kick" assuming each copy-mode
// kick takes copyModeTxBudget of them. A kick during which the device drops a
// frame (veth: the peer down, or its ring full) ends after that frame with
// EBUSY, which Kick reports as nil: the rest stay on the TX ring until an idle
// step, however long the RX ring keeps the worker busy.
func TestKickLeftovers(t *testing.T) {
	// rv2k1 stays down: veth drops what rv2k0 sends.
	ns := vethNS(t, "rv2k", "rv2k0", "rv2k1", true)
	s := copySocket(t, ns, "rv2k0")
	cfg := Config{Batch: 64, GenevePort: geneve.Port, VXLANPort: vxlan.Port}
	wk := newWorker(0, s, testPipeline().NewWorker(), &queueCounters{}, cfg)
	frame := outerFrame(t, "192.0.2.1", "192.0.2.2", genevePayload(40))
	const n = 2 * copyModeTxBudget
	tx := s.TX()
	idx, got := tx.Reserve(n)
	if got != n {
		t.Fatalf("reserved %d TX descriptors of %d", got, n)
	}
	for i := range uint32(n) {
		addr, ok := wk.umem.Alloc()
		if !ok {
			t.Fatal("no free frame")
		}
		copy(wk.umem.Frame(addr), frame)
		d := tx.Desc(idx + i)
		d.Addr, d.Len, d.Options = addr, uint32(len(frame)), 0
	}
	tx.Submit(n)
	wk.inFlight, wk.unkicked = n, n
	wk.kickPending()
	if left := tx.Outstanding(); wk.unkicked != left {
		t.Fatalf("after kickPending %d descriptors are on the ring but %d wait for a kick", left, wk.unkicked)
	}
	// Busy batches (full ones) retry them within maxKickDelay batches each.
	for range n * maxKickDelay {
		if wk.unkicked == 0 {
			break
		}
		wk.kickDue(true)
	}
	wk.reap()
	if wk.inFlight != 0 {
		t.Errorf("%d of %d descriptors still on the TX ring after the worker's kicks", wk.inFlight, n)
	}
}
