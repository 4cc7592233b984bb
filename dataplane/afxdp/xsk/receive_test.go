package xsk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bpf system call commands and values used by the test's XDP program.
const (
	bpfMapCreate    = 0
	bpfMapUpdate    = 2
	bpfProgLoad     = 5
	bpfLinkCreate   = 28
	bpfMapTypeXSK   = 17 // BPF_MAP_TYPE_XSKMAP
	bpfProgTypeXDP  = 6
	bpfAttachXDP    = 37 // BPF_XDP
	xdpFlagsSKBMode = 2  // generic XDP, which every driver has
)

func bpf(cmd int, attr []byte) (int, error) {
	fd, _, e := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
	runtime.KeepAlive(attr)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// attachRedirect loads and attaches, on a thread in the interface's namespace, in generic mode, the smallest XDP program
// that steers every packet of ifindex to the socket in an XSKMAP slot for its
// queue, and returns a close function. Only the test needs it: the dataplane's
// program is another package's.
// Refusals by the kernel wrap ErrNotSupported. It must not end the goroutine
// (t.Fatal): it runs on a thread switched into another namespace.
func attachRedirect(ifindex, xskFD int) (func(), error) {
	ne := binary.NativeEndian
	attr := make([]byte, 128)
	ne.PutUint32(attr[0:], bpfMapTypeXSK)
	ne.PutUint32(attr[4:], 4) // key: queue
	ne.PutUint32(attr[8:], 4) // value: socket fd
	ne.PutUint32(attr[12:], 1)
	mapFD, err := bpf(bpfMapCreate, attr)
	if err != nil {
		return nil, fmt.Errorf("create an XSKMAP: %w: %w", ErrNotSupported, err)
	}
	key, val := uint32(0), uint32(xskFD)
	attr = make([]byte, 128)
	ne.PutUint32(attr[0:], uint32(mapFD))
	ne.PutUint64(attr[8:], uint64(uintptr(unsafe.Pointer(&key))))
	ne.PutUint64(attr[16:], uint64(uintptr(unsafe.Pointer(&val))))
	_, err = bpf(bpfMapUpdate, attr)
	runtime.KeepAlive(&key)
	runtime.KeepAlive(&val)
	if err != nil {
		unix.Close(mapFD)
		return nil, fmt.Errorf("put the socket in the XSKMAP: %w", err)
	}

	insn := func(code, regs uint8, off int16, imm int32) []byte {
		b := make([]byte, 8)
		b[0], b[1] = code, regs
		ne.PutUint16(b[2:], uint16(off))
		ne.PutUint32(b[4:], uint32(imm))
		return b
	}
	var prog []byte
	prog = append(prog, insn(0x61, 1<<4|2, 16, 0)...)           // r2 = ctx->rx_queue_index
	prog = append(prog, insn(0x18, 1<<4|1, 0, int32(mapFD))...) // r1 = the map (ld_imm64, pseudo map fd)
	prog = append(prog, insn(0, 0, 0, 0)...)                    // (its second half)
	prog = append(prog, insn(0xb7, 3, 0, 2)...)                 // r3 = XDP_PASS when the slot is empty
	prog = append(prog, insn(0x85, 0, 0, 51)...)                // call bpf_redirect_map
	prog = append(prog, insn(0x95, 0, 0, 0)...)                 // exit
	license := []byte("GPL\x00")
	attr = make([]byte, 128)
	ne.PutUint32(attr[0:], bpfProgTypeXDP)
	ne.PutUint32(attr[4:], uint32(len(prog)/8))
	ne.PutUint64(attr[8:], uint64(uintptr(unsafe.Pointer(&prog[0]))))
	ne.PutUint64(attr[16:], uint64(uintptr(unsafe.Pointer(&license[0]))))
	progFD, err := bpf(bpfProgLoad, attr)
	runtime.KeepAlive(prog)
	runtime.KeepAlive(license)
	if err != nil {
		unix.Close(mapFD)
		return nil, fmt.Errorf("load the XDP program: %w: %w", ErrNotSupported, err)
	}
	attr = make([]byte, 128)
	ne.PutUint32(attr[0:], uint32(progFD))
	ne.PutUint32(attr[4:], uint32(ifindex))
	ne.PutUint32(attr[8:], bpfAttachXDP)
	ne.PutUint32(attr[12:], xdpFlagsSKBMode)
	linkFD, err := bpf(bpfLinkCreate, attr)
	if err != nil {
		unix.Close(progFD)
		unix.Close(mapFD)
		return nil, fmt.Errorf("attach the XDP program: %w: %w", ErrNotSupported, err)
	}
	return func() {
		unix.Close(linkFD)
		unix.Close(progFD)
		unix.Close(mapFD)
	}, nil
}

// TestSocketReceive steers a veth's packets to a socket with a minimal XDP
// program and receives frames sent from the peer: each arrives on the RX ring, in
// a frame the fill ring gave, byte for byte; the fill ring's frames run out and
// the kernel counts the packets it could not place.
func TestSocketReceive(t *testing.T) {
	ns := newVethNetns(t)
	const frames = 8
	s, err := openIn(t, ns, "xsk1", Config{Frames: frames, FrameSize: 2048, RingSize: 8, ZeroCopy: ZeroCopyOff, NeedWakeup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sender, xsk0, xsk1 int
	err = inNetns(ns, func() error {
		for name, index := range map[string]*int{"xsk0": &xsk0, "xsk1": &xsk1} {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			*index = ifi.Index
		}
		var err error
		sender, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return unix.Bind(sender, &unix.SockaddrLinklayer{Ifindex: xsk0})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sender)
	// The interface index means xsk1 only inside the namespace: attach there.
	var detach func()
	err = inNetns(ns, func() (err error) {
		detach, err = attachRedirect(xsk1, s.FD())
		return err
	})
	if errors.Is(err, ErrNotSupported) {
		skipOutsideCI(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer detach()

	// Half the frames to the fill ring.
	fill := s.Fill()
	idx, got := fill.Reserve(frames / 2)
	for i := range got {
		a, _ := s.UMEM().Alloc()
		fill.Set(idx+i, a)
	}
	fill.Submit(got)
	if fill.NeedsWakeup() {
		if err := s.WakeRX(); err != nil {
			t.Fatal(err)
		}
	}

	const sent = frames/2 + 2 // two more than the fill ring holds
	var want [][]byte
	for i := range sent {
		f := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 2, 0x88, 0xb5, 'w', 'e', 'i', 'r', byte(i)}
		want = append(want, f)
		if err := unix.Sendto(sender, f, 0, &unix.SockaddrLinklayer{Ifindex: xsk0, Halen: 6}); err != nil {
			t.Fatalf("send: %v", err)
		}
	}

	var received [][]byte
	rx := s.RX()
	for tries := 0; len(received) < frames/2 && tries < 500; tries++ {
		if _, err := s.Poll(10); err != nil {
			t.Fatal(err)
		}
		idx, got := rx.Peek(8)
		for i := range got {
			d := rx.Desc(idx + i)
			received = append(received, append([]byte(nil), s.UMEM().Frame(d.Addr)[:d.Len]...))
			if err := s.UMEM().Free(d.Addr); err != nil {
				t.Fatalf("free received frame %d: %v", d.Addr, err)
			}
		}
		rx.Release(got)
	}
	if len(received) != frames/2 {
		st, _ := s.Stats()
		out, _ := exec.Command("ip", "-n", ns, "-s", "link").CombinedOutput()
		t.Logf("stats %+v\n%s", st, out)
		t.Fatalf("received %d frames, want %d (the fill ring's)", len(received), frames/2)
	}
	for i, r := range received {
		if string(r) != string(want[i]) {
			t.Errorf("frame %d: % x, want % x", i, r, want[i])
		}
	}
	// The kernel may count the two packets it had no frame for after the others
	// arrived: read the counters until they show.
	var st Stats
	for tries := 0; tries < 500; tries++ {
		if st, err = s.Stats(); err != nil {
			t.Fatal(err)
		}
		if st.RxDropped+st.RxFillRingEmptyDescs >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.RxDropped < 2 {
		t.Fatalf("Stats after 2 packets more than the fill ring held: %+v, want RxDropped >= 2", st)
	}
}
