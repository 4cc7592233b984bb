package socket

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"weir/dataplane"
	"weir/health"
)

// gate is a stage that holds every batch until opened: a worker stuck in the
// pipeline, as one blocked on a lock would be.
type gate struct {
	held   chan int      // the id of a worker holding a batch (non-blocking send)
	open   chan struct{} // closed to let batches through
	passed atomic.Int64  // datagrams let through
}

func newGate() *gate { return &gate{held: make(chan int, 1), open: make(chan struct{})} }

func (g *gate) Process(w *dataplane.Worker, b *dataplane.Batch) {
	select {
	case g.held <- w.ID:
	default:
	}
	<-g.open
	g.passed.Add(int64(b.N))
}

// runBackend runs be over p until stop is called or the test ends.
func runBackend(t *testing.T, be *Backend, p *dataplane.Pipeline, ready func()) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- be.Run(ctx, p, func() {
			if ready != nil {
				ready()
			}
			close(up)
		})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-up:
	case err := <-done:
		t.Fatalf("backend ended before it was ready: %v", err)
	}
	return stop
}

type healthz struct {
	code       int
	Status     string `json:"status"`
	Worker     *int   `json:"worker"`
	StalledFor string `json:"stalled_for"`
}

func getHealthz(t *testing.T, h http.Handler) healthz {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	r := healthz{code: rec.Code}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("/healthz body %q: %v", rec.Body, err)
	}
	return r
}

// waitHealthz polls h until cond holds, failing after a bound.
func waitHealthz(t *testing.T, h http.Handler, what string, cond func(healthz) bool) healthz {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		r := getHealthz(t, h)
		if cond(r) {
			return r
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("/healthz never %s; last %d %+v", what, r.code, r)
		}
	}
}

// TestStallFailsHealth: idle workers stay healthy; a worker stuck in a stage while
// traffic arrives turns /healthz 503 naming it, and 200 again once it moves.
func TestStallFailsHealth(t *testing.T) {
	const timeout = 500 * time.Millisecond
	port := freePort(t)
	be, err := New(Config{Listeners: []Listener{{Addr: netip.AddrPortFrom(applianceIP, port), Encap: dataplane.EncapGeneve}},
		Workers: 2, Reply: ReplyUDP})
	if err != nil {
		t.Fatal(err)
	}
	g := newGate()
	p := dataplane.NewPipeline(g)
	var state health.State
	state.SetStallCheck(func() (int, time.Duration, bool) { return p.Stalled(time.Now(), timeout) })
	h := state.Handler()
	runBackend(t, be, p, func() { state.SetDataplaneUp(true) })
	var once sync.Once
	release := func() { once.Do(func() { close(g.open) }) }
	defer release() // let a held worker go if the test fails early

	// Idle for several timeouts: the workers' receive timeouts keep them beating.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for idle := time.After(3 * timeout); ; {
		if r := getHealthz(t, h); r.code != http.StatusOK {
			t.Fatalf("idle dataplane: /healthz %d %+v, want 200", r.code, r)
		}
		select {
		case <-tick.C:
			continue
		case <-idle:
		}
		break
	}

	send, err := net.ListenUDP("udp4", &net.UDPAddr{IP: gwlbIP.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	if _, err := send.WriteToUDPAddrPort([]byte("stuck"), netip.AddrPortFrom(applianceIP, port)); err != nil {
		t.Fatal(err)
	}
	var stuck int
	select {
	case stuck = <-g.held:
	case <-time.After(10 * time.Second):
		t.Fatal("no worker took the datagram")
	}
	held := time.Now()
	r := waitHealthz(t, h, "503", func(r healthz) bool { return r.code == http.StatusServiceUnavailable })
	if waited := time.Since(held); waited > timeout+5*time.Second {
		t.Errorf("503 came %s after the worker stuck, timeout %s", waited, timeout)
	}
	if r.Status != "dataplane stalled" || r.Worker == nil || *r.Worker != stuck {
		t.Errorf("/healthz %+v, want dataplane stalled, worker %d", r, stuck)
	}
	if d, err := time.ParseDuration(r.StalledFor); err != nil || d < timeout {
		t.Errorf("stalled_for %q, want at least %s", r.StalledFor, timeout)
	}

	release()
	waitHealthz(t, h, "200 after the worker moved on", func(r healthz) bool {
		return r.code == http.StatusOK && r.Status == "serving"
	})
	if n := g.passed.Load(); n != 1 {
		t.Errorf("%d datagrams went through the gate, want 1", n)
	}
}
