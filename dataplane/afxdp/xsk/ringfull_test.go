package xsk

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRxRingFullCounted: with the 6-counter XDP_STATISTICS the kernel counts
// packets dropped for a full RX ring only in RxRingFull, not RxDropped, so Stats
// must read it (the afxdp backend publishes it as QueueStats.RxRingFull).
func TestRxRingFullCounted(t *testing.T) {
	ns := newVethNetns(t)
	const ring = 8
	s, err := openIn(t, ns, "xsk1", Config{Frames: 4 * ring, FrameSize: 2048, RingSize: ring, ZeroCopy: ZeroCopyOff, NeedWakeup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sender, xsk0, xsk1 int
	if err := inNetns(ns, func() error {
		for name, index := range map[string]*int{"xsk0": &xsk0, "xsk1": &xsk1} {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			*index = ifi.Index
		}
		var err error
		if sender, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Bind(sender, &unix.SockaddrLinklayer{Ifindex: xsk0})
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sender)
	var detach func()
	if err := inNetns(ns, func() (err error) { detach, err = attachRedirect(xsk1, s.FD()); return err }); err != nil {
		t.Fatal(err)
	}
	defer detach()
	fill := func() {
		f := s.Fill()
		idx, got := f.Reserve(ring)
		for i := range got {
			a, _ := s.UMEM().Alloc()
			f.Set(idx+i, a)
		}
		f.Submit(got)
		s.WakeRX()
	}
	send := func(n int) {
		for i := range n {
			f := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 2, 0x88, 0xb5, 'w', 'e', 'i', 'r', byte(i)}
			if err := unix.Sendto(sender, f, 0, &unix.SockaddrLinklayer{Ifindex: xsk0, Halen: 6}); err != nil {
				t.Fatal(err)
			}
		}
	}
	fill()
	send(ring) // RX ring now full, never consumed
	time.Sleep(50 * time.Millisecond)
	fill()  // the fill ring has frames again
	send(4) // no room on the RX ring
	var st Stats
	for range 100 {
		st, _ = s.Stats()
		if st.RxRingFull >= 4 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%+v", st)
	// The kernel counts these drops in RxRingFull (not RxDropped): Stats must
	// read them, and the backend publishes them as QueueStats.RxRingFull.
	if st.RxRingFull < 4 {
		t.Fatalf("4 packets sent to a full RX ring: %+v, want RxRingFull >= 4", st)
	}
}
