package xsk

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNotSupported is matched (errors.Is) by the errors of Open when the kernel has
// no AF_XDP, or lacks a feature asked for (zero-copy on a driver without it), so
// that a caller can fall back to the socket backend and a test can skip.
var ErrNotSupported = errors.New("not supported")

// ZeroCopyMode chooses how the kernel moves packets between the driver and the
// UMEM.
type ZeroCopyMode int

const (
	// ZeroCopyAuto lets the kernel use zero-copy where the driver offers it and
	// copy mode otherwise; Socket.ZeroCopy reports which it picked.
	ZeroCopyAuto ZeroCopyMode = iota
	// ZeroCopyOn requires zero-copy: Open fails with ErrNotSupported without it.
	ZeroCopyOn
	// ZeroCopyOff forces copy mode, which every driver has.
	ZeroCopyOff
)

func (m ZeroCopyMode) String() string {
	switch m {
	case ZeroCopyAuto:
		return "auto"
	case ZeroCopyOn:
		return "on"
	case ZeroCopyOff:
		return "off"
	}
	return fmt.Sprintf("ZeroCopyMode(%d)", int(m))
}

// Defaults for a Config's zero fields, those of libxdp.
const (
	DefaultFrames    = 4096
	DefaultFrameSize = 4096
	DefaultRingSize  = 2048
)

// Config says what a socket binds to and how large its memory and rings are.
type Config struct {
	Ifindex int // the interface
	Queue   int // its RX/TX queue

	Frames    int // UMEM frames; 0 means DefaultFrames
	FrameSize int // bytes a frame, a power of two from 2048 to the page size; 0 means DefaultFrameSize
	RingSize  int // entries in each of the four rings, a power of two; 0 means DefaultRingSize

	ZeroCopy ZeroCopyMode
	// NeedWakeup binds with XDP_USE_NEED_WAKEUP: the kernel then sets a ring's
	// need-wakeup flag when it stops polling it, and user space makes a syscall
	// only then. Without it every ring always needs a wakeup.
	NeedWakeup bool
}

// Socket is an AF_XDP socket bound to one queue, with its own UMEM and rings.
// A Socket is used by one goroutine at a time (a worker locked to its thread).
type Socket struct {
	fd       int
	umem     *UMEM
	maps     [][]byte // the four ring mappings, unmapped by Close
	zeroCopy bool

	fill       *FillRing
	completion *CompletionRing
	rx         *RxRing
	tx         *TxRing

	pollfd [1]unix.PollFd
}

// Open creates the UMEM and the socket, sets up and maps the four rings and binds
// the socket to cfg's interface queue. The frames all start on the UMEM's free
// stack: give the fill ring some before expecting packets.
func Open(cfg Config) (*Socket, error) {
	if cfg.Frames == 0 {
		cfg.Frames = DefaultFrames
	}
	if cfg.FrameSize == 0 {
		cfg.FrameSize = DefaultFrameSize
	}
	if cfg.RingSize == 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.RingSize < 0 || cfg.RingSize > 1<<30 || cfg.RingSize&(cfg.RingSize-1) != 0 {
		return nil, fmt.Errorf("xsk: ring size %d is not a power of two", cfg.RingSize)
	}
	if cfg.Ifindex <= 0 || cfg.Queue < 0 || uint64(cfg.Queue) > 1<<32-1 {
		return nil, fmt.Errorf("xsk: interface index %d, queue %d: want a positive index and a queue from 0", cfg.Ifindex, cfg.Queue)
	}
	var bindFlags uint16
	switch cfg.ZeroCopy {
	case ZeroCopyAuto:
		// Neither flag: the kernel tries zero-copy and falls back to copy mode.
	case ZeroCopyOn:
		bindFlags |= unix.XDP_ZEROCOPY
	case ZeroCopyOff:
		bindFlags |= unix.XDP_COPY
	default:
		return nil, fmt.Errorf("xsk: unknown zero-copy mode %d", int(cfg.ZeroCopy))
	}
	if cfg.NeedWakeup {
		bindFlags |= unix.XDP_USE_NEED_WAKEUP
	}

	umem, err := NewUMEM(cfg.Frames, cfg.FrameSize)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		umem.Close()
		return nil, sysError("socket(AF_XDP)", err)
	}
	s := &Socket{fd: fd, umem: umem}
	if err := s.setup(cfg, bindFlags); err != nil {
		s.Close()
		return nil, err
	}
	s.pollfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	return s, nil
}

func (s *Socket) setup(cfg Config, bindFlags uint16) error {
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&s.umem.mem[0]))),
		Len:  uint64(len(s.umem.mem)),
		Size: uint32(cfg.FrameSize),
	}
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0); e != 0 {
		return sysError("register UMEM", e)
	}
	for _, opt := range []struct {
		name string
		opt  int
	}{
		{"fill", unix.XDP_UMEM_FILL_RING},
		{"completion", unix.XDP_UMEM_COMPLETION_RING},
		{"RX", unix.XDP_RX_RING},
		{"TX", unix.XDP_TX_RING},
	} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, opt.opt, cfg.RingSize); err != nil {
			return sysError("set "+opt.name+" ring size", err)
		}
	}

	var buf [mmapOffsetsLen]byte
	n := uint32(len(buf))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0); e != 0 {
		return sysError("get ring offsets", e)
	}
	off, hasFlags, err := decodeMmapOffsets(buf[:min(n, uint32(len(buf)))])
	if err != nil {
		return err
	}
	if cfg.NeedWakeup && !hasFlags {
		return fmt.Errorf("xsk: need_wakeup: %w by this kernel (before 5.4)", ErrNotSupported)
	}
	size := uint32(cfg.RingSize)
	mapRing := func(name string, pgoff int64, o unix.XDPRingOffset, entry int) ([]byte, error) {
		mem, err := unix.Mmap(s.fd, pgoff, int(o.Desc)+cfg.RingSize*entry,
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil, sysError("map "+name+" ring", err)
		}
		s.maps = append(s.maps, mem)
		return mem, nil
	}
	// Each ring's flags word is meaningful only with need_wakeup; without it the
	// ring says it always needs one.
	flags := hasFlags && cfg.NeedWakeup
	mem, err := mapRing("fill", unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, addrEntry)
	if err == nil {
		s.fill, err = newFillRing(mem, off.Fr, size, flags)
	}
	if err == nil {
		if mem, err = mapRing("completion", unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, addrEntry); err == nil {
			s.completion, err = newCompletionRing(mem, off.Cr, size, flags)
		}
	}
	if err == nil {
		if mem, err = mapRing("RX", unix.XDP_PGOFF_RX_RING, off.Rx, descEntry); err == nil {
			s.rx, err = newRxRing(mem, off.Rx, size, flags)
		}
	}
	if err == nil {
		if mem, err = mapRing("TX", unix.XDP_PGOFF_TX_RING, off.Tx, descEntry); err == nil {
			s.tx, err = newTxRing(mem, off.Tx, size, flags)
		}
	}
	if err != nil {
		return err
	}

	sa := &unix.SockaddrXDP{Flags: bindFlags, Ifindex: uint32(cfg.Ifindex), QueueID: uint32(cfg.Queue)}
	if err := unix.Bind(s.fd, sa); err != nil {
		if cfg.ZeroCopy == ZeroCopyOn && errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("xsk: bind interface %d queue %d: zero-copy %w by the driver: %w", cfg.Ifindex, cfg.Queue, ErrNotSupported, err)
		}
		return sysError(fmt.Sprintf("bind interface %d queue %d (%s)", cfg.Ifindex, cfg.Queue, bindFlagNames(bindFlags)), err)
	}

	switch cfg.ZeroCopy {
	case ZeroCopyOn:
		s.zeroCopy = true
	case ZeroCopyAuto:
		// XDP_OPTIONS (kernel 5.3) says what the kernel picked.
		opts, err := unix.GetsockoptInt(s.fd, unix.SOL_XDP, unix.XDP_OPTIONS)
		if err != nil {
			return sysError("get options (zero-copy or copy)", err)
		}
		s.zeroCopy = opts&unix.XDP_OPTIONS_ZEROCOPY != 0
	}
	return nil
}

func bindFlagNames(f uint16) string {
	var s string
	for _, n := range []struct {
		bit  uint16
		name string
	}{{unix.XDP_ZEROCOPY, "zerocopy"}, {unix.XDP_COPY, "copy"}, {unix.XDP_USE_NEED_WAKEUP, "need_wakeup"}} {
		if f&n.bit != 0 {
			if s != "" {
				s += ","
			}
			s += n.name
		}
	}
	if s == "" {
		return "auto"
	}
	return s
}

// sysError wraps a failed system call, adding ErrNotSupported for the errors that
// mean the kernel lacks AF_XDP or the feature.
func sysError(op string, err error) error {
	switch {
	case errors.Is(err, unix.EAFNOSUPPORT), errors.Is(err, unix.EPROTONOSUPPORT),
		errors.Is(err, unix.ENOPROTOOPT), errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("xsk: %s: %w: %w", op, ErrNotSupported, err)
	}
	return fmt.Errorf("xsk: %s: %w", op, err)
}

// FD is the socket's descriptor, for the XSKMAP entry that steers the queue's
// packets to it.
func (s *Socket) FD() int { return s.fd }

// ZeroCopy reports whether the socket is bound in zero-copy mode.
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// UMEM is the socket's packet memory.
func (s *Socket) UMEM() *UMEM { return s.umem }

// Fill, Completion, RX and TX are the socket's rings.
func (s *Socket) Fill() *FillRing             { return s.fill }
func (s *Socket) Completion() *CompletionRing { return s.completion }
func (s *Socket) RX() *RxRing                 { return s.rx }
func (s *Socket) TX() *TxRing                 { return s.tx }

// wakeupTransient are the errors of a wakeup that only mean "busy, try later";
// libxdp's xdpsock ignores them too.
func wakeupTransient(e unix.Errno) bool {
	switch e {
	case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.ENETDOWN, unix.EINTR:
		return true
	}
	return false
}

// Kick wakes the kernel to send what the TX ring holds (call it after Submit when
// TX().NeedsWakeup()). It does not block; it allocates nothing.
func (s *Socket) Kick() error {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	if wakeupTransient(e) {
		return nil
	}
	return e
}

// WakeRX wakes the kernel to receive into the frames the fill ring holds (call it
// when Fill().NeedsWakeup()). It does not block; it allocates nothing.
func (s *Socket) WakeRX() error {
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	if wakeupTransient(e) {
		return nil
	}
	return e
}

// Poll waits up to timeoutMs milliseconds (-1: no limit) for the RX ring to hold
// packets and reports whether it does. Like any wakeup it also has the kernel
// look at the fill and TX rings (in copy mode an empty TX ring then counts in
// Stats.TxRingEmptyDescs).
func (s *Socket) Poll(timeoutMs int) (bool, error) {
	s.pollfd[0].Revents = 0
	n, err := unix.Poll(s.pollfd[:], timeoutMs)
	if err != nil {
		if err == unix.EINTR {
			return false, nil
		}
		return false, err
	}
	return n > 0 && s.pollfd[0].Revents&unix.POLLIN != 0, nil
}

// Stats reads the kernel's counters for the socket.
func (s *Socket) Stats() (Stats, error) {
	var buf [statsLen]byte
	n := uint32(len(buf))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0); e != 0 {
		return Stats{}, sysError("get statistics", e)
	}
	return decodeStats(buf[:min(n, uint32(len(buf)))])
}

// Close closes the socket, which unbinds it, and unmaps its rings and UMEM. The
// rings and frames must not be used after. Closing twice is harmless.
func (s *Socket) Close() error {
	var errs []error
	if s.fd >= 0 {
		errs = append(errs, unix.Close(s.fd))
		s.fd = -1
	}
	for _, m := range s.maps {
		errs = append(errs, unix.Munmap(m))
	}
	s.maps = nil
	s.fill, s.completion, s.rx, s.tx = nil, nil, nil, nil
	if s.umem != nil {
		errs = append(errs, s.umem.Close())
	}
	return errors.Join(errs...)
}

// Err returns and clears the socket's pending error (SO_ERROR): ENETDOWN once
// the kernel unbound it because its device went away.
func (s *Socket) Err() error {
	e, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if e != 0 {
		return unix.Errno(e)
	}
	return nil
}
