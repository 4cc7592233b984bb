package afxdp

// Regression tests from a review of Open, Run and the collector.

import (
	"context"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"weir/dataplane/afxdp/xsk"
	"weir/internal/netns"
)

// vethNS makes a namespace of its own (newNetns: role) holding a veth pair a/b,
// both up unless peerDown, for tests that need an interface and no traffic.
func vethNS(t *testing.T, role, a, b string, peerDown bool) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOutsideCI(t, "needs root for network namespaces and XDP")
	}
	ns := newNetns(t, role)
	ipCmd(t, "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b)
	ipCmd(t, "-n", ns, "link", "set", a, "up")
	if !peerDown {
		ipCmd(t, "-n", ns, "link", "set", b, "up")
	}
	return ns
}

// copySocket opens a copy-mode AF_XDP socket on queue 0 of ifname in ns.
func copySocket(t *testing.T, ns, ifname string) *xsk.Socket {
	t.Helper()
	var s *xsk.Socket
	if err := netns.Run(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		s, err = xsk.Open(xsk.Config{Ifindex: ifi.Index, ZeroCopy: xsk.ZeroCopyOff, NeedWakeup: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestOpenFailureReleases: Open failing after the attach (zero-copy asked
// of veth) leaves no descriptor, no XDP program and no "attached" state.
func TestOpenFailureReleases(t *testing.T) {
	ns := vethNS(t, "rv1", "rva0", "rva1", false)
	b := newIn(t, ns, Config{Interface: "rva0", ZeroCopy: xsk.ZeroCopyOn})
	before := openFDs(t)
	err := netns.Run(ns, b.Open)
	if err == nil {
		b.Close()
		t.Fatal("Open with zero-copy on veth succeeded")
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after the failed Open, %d before", after, before)
	}
	if xdpAttached(t, ns, "rva0") {
		t.Error("XDP left attached")
	}
	if m := b.XDPMode(); m != "" {
		t.Errorf("XDPMode after a failed Open = %q, want \"\" (nothing is attached); Name = %s", m, b.Name())
	}
}

// TestCollectWhileRunStops scrapes the collector in a loop (bounded) while
// Run starts, serves and releases: run with -race.
func TestCollectWhileRunStops(t *testing.T) {
	ns := vethNS(t, "rv1", "rva0", "rva1", false)
	b := newIn(t, ns, Config{Interface: "rva0"})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(b))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Enter(ns); err != nil {
			done <- err
			return
		}
		done <- b.Run(ctx, testPipeline(), func() { close(ready) })
	}()
	scraped := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(2 * time.Second)
		for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
			if _, err := reg.Gather(); err != nil {
				scraped <- err
				return
			}
		}
		scraped <- nil
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready in 10 s")
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop in 10 s")
	}
	if err := <-scraped; err != nil {
		t.Errorf("Gather: %v", err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("Gather after Run: %v", err)
	}
}
