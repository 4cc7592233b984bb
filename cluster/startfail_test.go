package cluster_test

import (
	"net"
	"net/netip"
	"testing"

	"weir/cluster"
)

// TestStartFailThenShutdown: a failed Start (the port in use) followed by Shutdown,
// as startNode does, returns the error and does not panic.
func TestStartFailThenShutdown(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	n, err := cluster.New(cluster.Config{Bind: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), NodeName: "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err == nil {
		t.Fatal("expected bind failure")
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Shutdown after failed Start panicked: %v", r)
		}
	}()
	_ = n.Shutdown()
}
