package cluster_test

import (
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"weir/cluster"
)

// TestDiscoveredSeeds: a node with no cluster.join finds its fleet through
// Discovered alone (its own address in the list is left out), and a node already
// in a fleet joins a peer that is discovered later, one that knew no seed.
func TestDiscoveredSeeds(t *testing.T) {
	a, _ := start(t, "a", "127.0.0.21", nil)
	var found atomic.Pointer[[]string]
	found.Store(&[]string{})
	b, err := cluster.New(cluster.Config{
		Bind: netip.MustParseAddrPort("127.0.0.22:0"), NodeName: "b",
		Discovered: func() []string { return *found.Load() },
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Shutdown() })
	found.Store(&[]string{b.Addr().String(), a.Addr().String()})
	waitState(t, b, "a", 15*time.Second, cluster.StateAlive)
	waitState(t, a, "b", 5*time.Second, cluster.StateAlive)

	// c starts alone, with no seed: b finds it at its next look (every 5s or so
	// once it has peers) and the three are one fleet.
	c, _ := start(t, "c", "127.0.0.23", nil)
	found.Store(&[]string{a.Addr().String(), b.Addr().String(), c.Addr().String()})
	waitState(t, c, "a", 15*time.Second, cluster.StateAlive)
	waitState(t, c, "b", 5*time.Second, cluster.StateAlive)
	waitState(t, a, "c", 5*time.Second, cluster.StateAlive)
}

// TestDiscoveredLateJoinsPromptly: a node alone whose discovery answers late
// (IMDS, the instance role or the EC2 API slow at boot, DescribeInstances
// throttled) joins the peers as soon as they are discovered. The join loop's
// backoff while alone reaches 8s then 16s: a list that arrives 8s after start
// was joined only ~15-19s after start, past weir's joinWait (10s), so the node
// started its flow sync alone, passed health with an empty table and never
// bulk-synced the fleet's flows (flowsync asks for a bulk only at Start).
func TestDiscoveredLateJoinsPromptly(t *testing.T) {
	a, _ := start(t, "a", "127.0.0.24", nil)
	var found atomic.Pointer[[]string]
	found.Store(&[]string{})
	b, err := cluster.New(cluster.Config{
		Bind: netip.MustParseAddrPort("127.0.0.25:0"), NodeName: "b",
		Discovered: func() []string { return *found.Load() },
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Shutdown() })
	time.Sleep(9 * time.Second) // past the attempt at 1+2+4s (+25% jitter at most)
	found.Store(&[]string{a.Addr().String()})
	waitState(t, b, "a", 2500*time.Millisecond, cluster.StateAlive)
}

// TestShutdownNotHeldByDiscoveredPeers: discovered instances that accept TCP
// but never answer (booting, a firewall that swallows, an instance being torn
// down) cost TCPTimeout (5s) each in memberlist's Join, which tries them one
// after the other. Shutdown waited for the whole Join: with 12 such instances
// in a scale-out, weir's shutdown after its 300s drain outlasted the unit's
// TimeoutStopSec=360s and systemd SIGKILLed it before it flushed its flows (or,
// on the lifecycle path, before it completed the lifecycle action).
func TestShutdownNotHeldByDiscoveredPeers(t *testing.T) {
	b, _ := start(t, "b", "127.0.0.27", nil)
	var silent []string
	for i := range 4 {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(30 + i)}), 0).String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() }) // held open, never answered
			}
		}()
		silent = append(silent, ln.Addr().String())
	}
	a, err := cluster.New(cluster.Config{
		Bind: netip.MustParseAddrPort("127.0.0.26:0"), NodeName: "a",
		Discovered: func() []string { return append([]string{b.Addr().String()}, silent...) },
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "b", 15*time.Second, cluster.StateAlive)
	time.Sleep(7 * time.Second) // a's join loop is now trying the silent ones
	start := time.Now()
	_ = a.Leave(2 * time.Second)
	_ = a.Shutdown()
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("Leave and Shutdown took %v: held up by joining discovered peers that do not answer", d.Round(time.Second))
	}
}
