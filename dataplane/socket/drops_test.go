package socket

import (
	"bytes"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"weir/dataplane"
)

// TestDropsCounted: while the only worker is held in the pipeline, a burst overflows
// its small receive buffer; the kernel's drops are reported, and every datagram sent
// is either received by the pipeline or counted as dropped.
func TestDropsCounted(t *testing.T) {
	const burst = 5000
	port := freePort(t)
	be, err := New(Config{Listeners: []Listener{{Addr: netip.AddrPortFrom(applianceIP, port), Encap: dataplane.EncapGeneve}},
		Workers: 1, Reply: ReplyUDP, RecvBuffer: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if d := be.Drops(); len(d) != 1 || d["gwlb"] != 0 {
		t.Fatalf("Drops() before any traffic = %v, want gwlb 0", d)
	}
	if g := be.RecvBuffer()["gwlb"]; g < 16<<10 {
		t.Errorf("receive buffer granted %d, want at least 16 KiB", g)
	}
	g := newGate()
	var once sync.Once
	release := func() { once.Do(func() { close(g.open) }) }
	defer release()
	stop := runBackend(t, be, dataplane.NewPipeline(g), nil)

	send, err := net.ListenUDP("udp4", &net.UDPAddr{IP: gwlbIP.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	to := netip.AddrPortFrom(applianceIP, port)
	sent := 0
	write := func() {
		if _, err := send.WriteToUDPAddrPort(make([]byte, 100), to); err != nil {
			t.Fatalf("after %d datagrams: %v", sent, err)
		}
		sent++
	}
	write()
	select {
	case <-g.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker never took the first datagram")
	}
	for range burst {
		write()
	}
	release()

	// Loopback delivers (or drops) as it sends; wait for the worker to read the rest.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		drops, received := be.Drops()["gwlb"], uint64(g.passed.Load())
		if drops+received == uint64(sent) {
			if drops == 0 {
				t.Fatalf("all %d datagrams received: the burst did not overflow the buffer", sent)
			}
			t.Logf("sent %d, received %d, dropped %d", sent, received, drops)
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("sent %d, received %d, dropped %d: %d unaccounted for", sent, received, drops, uint64(sent)-received-drops)
		}
	}
	// Run closes the sockets when it ends; the count stays.
	drops := be.Drops()["gwlb"]
	stop()
	if d := be.Drops()["gwlb"]; d != drops {
		t.Errorf("Drops() after the backend stopped = %d, want %d", d, drops)
	}
}

// TestDropCounterWraps: the kernel's counter is 32 bits; the total keeps growing.
func TestDropCounterWraps(t *testing.T) {
	var s sock
	for _, c := range []struct {
		cur  uint32
		want uint64
	}{{10, 10}, {1<<32 - 5, 1<<32 - 5}, {3, 1<<32 + 3}, {3, 1<<32 + 3}, {20, 1<<32 + 20}} {
		s.foldDrops(c.cur)
		if s.drops != c.want {
			t.Fatalf("after kernel count %d: total %d, want %d", c.cur, s.drops, c.want)
		}
	}
}

// TestRecvBufferWarning: when the kernel grants less than asked (here more than it
// ever grants), New says so, naming the sysctl.
func TestRecvBufferWarning(t *testing.T) {
	var logs bytes.Buffer
	be, err := New(Config{Listeners: []Listener{{Addr: netip.AddrPortFrom(applianceIP, freePort(t)), Encap: dataplane.EncapVXLAN}},
		Workers: 1, RecvBuffer: math.MaxInt32, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if g := be.RecvBuffer()["mirror"]; g == 0 || g >= math.MaxInt32 {
		t.Errorf("granted %d", g)
	}
	if s := logs.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, "net.core.rmem_max") ||
		!strings.Contains(s, "listener=mirror.listen") || strings.Count(s, "\n") != 1 {
		t.Errorf("log %q, want one warning naming net.core.rmem_max and the listener", s)
	}
}
