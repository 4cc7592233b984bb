package xsk

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"weir/internal/netns"
)

func skipOutsideCI(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why + ", and this is CI")
	}
	t.Skip(why)
}

// newVethNetns creates a network namespace holding an up veth pair, xsk0 and
// xsk1, deleted when the test ends; it returns the namespace's name.
func newVethNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOutsideCI(t, "needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipOutsideCI(t, "needs ip")
	}
	ns := fmt.Sprintf("weir-xsk-%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("-n", ns, "link", "add", "xsk0", "type", "veth", "peer", "name", "xsk1")
	run("-n", ns, "link", "set", "xsk0", "up")
	run("-n", ns, "link", "set", "xsk1", "up")
	return ns
}

// inNetns runs f on an OS thread switched into namespace ns (netns.Run).
func inNetns(ns string, f func() error) error { return netns.Run(ns, f) }

// openIn opens a socket on interface name in ns, skipping the test (failing it in
// CI) when the kernel refuses AF_XDP.
func openIn(t *testing.T, ns, name string, cfg Config) (*Socket, error) {
	t.Helper()
	var s *Socket
	err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		cfg.Ifindex = ifi.Index
		s, err = Open(cfg)
		return err
	})
	if err != nil && cfg.ZeroCopy != ZeroCopyOn && (errors.Is(err, ErrNotSupported) || errors.Is(err, unix.EPERM)) {
		skipOutsideCI(t, "the kernel refuses AF_XDP: "+err.Error())
	}
	return s, err
}

// openAfterClose is openIn on a queue a socket was just closed on. The kernel frees
// a queue's binding in deferred work after the socket's last reference goes, so a
// new bind may briefly see EBUSY; it is retried for up to five seconds.
func openAfterClose(t *testing.T, ns, name string, cfg Config) (*Socket, error) {
	t.Helper()
	for tries := 0; ; tries++ {
		s, err := openIn(t, ns, name, cfg)
		if !errors.Is(err, unix.EBUSY) || tries == 500 {
			return s, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSocketVeth binds real sockets to a veth queue in a namespace of the test's
// own: copy mode binds, statistics read, a second socket on the same queue is
// refused until the first closes, and zero-copy (which veth lacks) is reported as
// not supported.
func TestSocketVeth(t *testing.T) {
	ns := newVethNetns(t)
	cfg := Config{Queue: 0, Frames: 64, FrameSize: 2048, RingSize: 64, ZeroCopy: ZeroCopyOff, NeedWakeup: true}
	s, err := openIn(t, ns, "xsk0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.FD() <= 0 || s.ZeroCopy() {
		t.Fatalf("FD %d ZeroCopy %v, want a descriptor and copy mode", s.FD(), s.ZeroCopy())
	}
	if s.UMEM().FreeFrames() != 64 || s.Fill().Size() != 64 || s.TX().Size() != 64 {
		t.Fatalf("UMEM %d free frames, fill ring %d, TX ring %d; want 64 each", s.UMEM().FreeFrames(), s.Fill().Size(), s.TX().Size())
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stats{}) {
		t.Fatalf("Stats of a fresh socket = %+v, want zeros", st)
	}

	// Give the kernel frames to receive into; with need_wakeup and nothing
	// polling the queue, a wakeup is harmless.
	fill := s.Fill()
	idx, got := fill.Reserve(32)
	if got != 32 {
		t.Fatalf("Reserve(32) on a fresh fill ring got %d", got)
	}
	for i := range got {
		a, _ := s.UMEM().Alloc()
		fill.Set(idx+i, a)
	}
	fill.Submit(got)
	if err := s.WakeRX(); err != nil {
		t.Fatalf("WakeRX: %v", err)
	}
	if err := s.Kick(); err != nil {
		t.Fatalf("Kick with an empty TX ring: %v", err)
	}
	// The wakeups are made per batch; they allocate nothing either.
	if allocs := testing.AllocsPerRun(10, func() {
		_ = s.Kick()
		_ = s.WakeRX()
		_, _ = s.Poll(0)
	}); allocs != 0 {
		t.Fatalf("Kick, WakeRX and Poll: %v allocations a run, want 0", allocs)
	}
	if ready, err := s.Poll(0); err != nil || ready {
		t.Fatalf("Poll(0) with nothing steered to the socket = %v, %v; want false, nil", ready, err)
	}

	// The queue is taken: a second socket with its own UMEM is refused.
	if s2, err := openIn(t, ns, "xsk0", cfg); err == nil {
		s2.Close()
		t.Fatal("a second socket bound the same queue")
	} else if !errors.Is(err, unix.EBUSY) {
		t.Fatalf("second socket on the queue: %v, want EBUSY", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Close released the queue.
	s3, err := openAfterClose(t, ns, "xsk0", cfg)
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	s3.Close()

	// Auto on veth: copy mode, reported as such.
	auto := cfg
	auto.ZeroCopy = ZeroCopyAuto
	auto.NeedWakeup = false
	sa, err := openIn(t, ns, "xsk1", auto)
	if err != nil {
		t.Fatalf("auto mode: %v", err)
	}
	if sa.ZeroCopy() {
		t.Error("auto mode on veth reported zero-copy")
	}
	if !sa.Fill().NeedsWakeup() {
		t.Error("without need_wakeup the fill ring must always need a wakeup")
	}
	sa.Close()

	on := cfg
	on.ZeroCopy = ZeroCopyOn
	if sz, err := openAfterClose(t, ns, "xsk1", on); err == nil {
		sz.Close()
		t.Log("veth offered zero-copy")
	} else if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("zero-copy on veth: %v, want ErrNotSupported", err)
	}
}

// TestOpenRejects bad configurations before any system call.
func TestOpenRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no interface", Config{}, "interface index"},
		{"negative queue", Config{Ifindex: 1, Queue: -1}, "queue"},
		{"ring not a power of two", Config{Ifindex: 1, RingSize: 100}, "ring size"},
		{"negative ring", Config{Ifindex: 1, RingSize: -4}, "ring size"},
		{"bad frame size", Config{Ifindex: 1, FrameSize: 1000}, "frame size"},
		{"unknown zero-copy mode", Config{Ifindex: 1, ZeroCopy: 7}, "zero-copy mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestSocketTransmit sends a frame through the TX ring of a socket on xsk0 and
// reads it on the peer xsk1 with a packet socket; the frame's address comes back
// on the completion ring, and a descriptor outside the UMEM is counted by the
// kernel as invalid rather than sent.
func TestSocketTransmit(t *testing.T) {
	ns := newVethNetns(t)
	var peer int
	err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName("xsk1")
		if err != nil {
			return err
		}
		const ethPAll = 0x0300 // htons(ETH_P_ALL)
		peer, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, ethPAll)
		if err != nil {
			return err
		}
		return unix.Bind(peer, &unix.SockaddrLinklayer{Protocol: ethPAll, Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(peer)
	// Receive waits are bounded so that a lost frame fails instead of hanging.
	if err := unix.SetsockoptTimeval(peer, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
		t.Fatal(err)
	}

	s, err := openIn(t, ns, "xsk0", Config{Frames: 16, FrameSize: 2048, RingSize: 16, ZeroCopy: ZeroCopyOff, NeedWakeup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// A broadcast frame of the local experimental EtherType.
	frame := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5}
	frame = append(frame, "weir xsk transmit test"...)
	addr, _ := s.UMEM().Alloc()
	copy(s.UMEM().Frame(addr), frame)
	tx := s.TX()
	idx, got := tx.Reserve(1)
	if got != 1 {
		t.Fatalf("Reserve(1) on an empty TX ring got %d", got)
	}
	*tx.Desc(idx) = unix.XDPDesc{Addr: addr, Len: uint32(len(frame))}
	tx.Submit(1)
	if tx.NeedsWakeup() {
		if err := s.Kick(); err != nil {
			t.Fatalf("Kick: %v", err)
		}
	}

	buf := make([]byte, 2048)
	for {
		n, _, err := unix.Recvfrom(peer, buf, 0)
		if err != nil {
			t.Fatalf("the peer never saw the frame: %v", err)
		}
		if string(buf[:n]) == string(frame) {
			break
		}
	}

	// The kernel completes the frame once the peer has it.
	comp := s.Completion()
	var back []uint64
	for tries := 0; len(back) == 0 && tries < 500; tries++ {
		idx, got := comp.Peek(16)
		for i := range got {
			back = append(back, comp.Addr(idx+i))
		}
		comp.Release(got)
		if len(back) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(back) != 1 || back[0] != addr {
		t.Fatalf("completion ring returned %v, want [%d]", back, addr)
	}

	// A descriptor past the UMEM's end: refused and counted.
	idx, _ = tx.Reserve(1)
	*tx.Desc(idx) = unix.XDPDesc{Addr: uint64(16 * 2048), Len: 64}
	tx.Submit(1)
	if err := s.Kick(); err != nil {
		t.Fatalf("Kick: %v", err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.TxInvalidDescs != 1 {
		t.Fatalf("Stats after an invalid TX descriptor: %+v, want TxInvalidDescs 1", st)
	}
}

// TestSysError: the errors that mean missing kernel support match ErrNotSupported;
// others do not, and the errno stays matchable either way.
func TestSysError(t *testing.T) {
	for _, tc := range []struct {
		errno        unix.Errno
		notSupported bool
	}{
		{unix.EAFNOSUPPORT, true},
		{unix.EPROTONOSUPPORT, true},
		{unix.ENOPROTOOPT, true},
		{unix.EOPNOTSUPP, true},
		{unix.EBUSY, false},
		{unix.EPERM, false},
		{unix.EINVAL, false},
	} {
		err := sysError("op", tc.errno)
		if errors.Is(err, ErrNotSupported) != tc.notSupported || !errors.Is(err, tc.errno) {
			t.Errorf("sysError(%v) = %v: ErrNotSupported %v, want %v", tc.errno, err, errors.Is(err, ErrNotSupported), tc.notSupported)
		}
	}
}

func TestZeroCopyModeString(t *testing.T) {
	for m, want := range map[ZeroCopyMode]string{ZeroCopyAuto: "auto", ZeroCopyOn: "on", ZeroCopyOff: "off", 9: "ZeroCopyMode(9)"} {
		if got := m.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(m), got, want)
		}
	}
}
