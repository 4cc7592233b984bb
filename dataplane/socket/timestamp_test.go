package socket

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"weir/dataplane"
)

// stamps is a stage that keeps each slot's receive time and its batch's.
type stamps struct {
	mu    sync.Mutex
	times []int64
	nows  []int64
	seen  chan struct{}
}

func (st *stamps) Process(w *dataplane.Worker, b *dataplane.Batch) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for i := range b.Slots[:b.N] {
		st.times = append(st.times, b.Slots[i].Time)
		st.nows = append(st.nows, b.Now)
		st.seen <- struct{}{}
	}
}

// TestKernelTimestamps: every datagram carries its own kernel receive time, within
// the sending window, in the order sent (one socket), never after its batch's time.
func TestKernelTimestamps(t *testing.T) {
	port := freePort(t)
	be, err := New(Config{Listeners: []Listener{{Addr: netip.AddrPortFrom(applianceIP, port), Encap: dataplane.EncapVXLAN}}, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	st := &stamps{seen: make(chan struct{}, n)}
	p := dataplane.NewPipeline(st)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- be.Run(ctx, p, func() { close(ready) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-ready
	send, err := net.ListenUDP("udp4", &net.UDPAddr{IP: gwlbIP.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(applianceIP, port))
	before := time.Now().UnixNano()
	for i := range n {
		if _, err := send.WriteToUDP([]byte{byte(i)}, to); err != nil {
			t.Fatal(err)
		}
	}
	after := time.Now().UnixNano()
	for i := range n {
		select {
		case <-st.seen:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d datagrams received", i, n)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	distinct := map[int64]bool{}
	for i, ts := range st.times {
		if ts < before || ts > after {
			t.Errorf("datagram %d: time %d outside the sending window [%d, %d]", i, ts, before, after)
		}
		if ts > st.nows[i] {
			t.Errorf("datagram %d: received at %d, after its batch's time %d", i, ts, st.nows[i])
		}
		if i > 0 && ts < st.times[i-1] {
			t.Errorf("datagram %d: time %d before the previous one's %d", i, ts, st.times[i-1])
		}
		distinct[ts] = true
	}
	if len(distinct) < n/2 {
		t.Errorf("only %d distinct times for %d datagrams: batch times, not the kernel's?", len(distinct), n)
	}
}
