package xsk

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"

	"golang.org/x/sys/unix"
)

// minFrameSize is the kernel's smallest UMEM chunk (XDP_UMEM_MIN_CHUNK_SIZE).
const minFrameSize = 2048

// Errors Free returns; neither allocates.
var (
	ErrFrameRange = errors.New("xsk: frame address outside the UMEM")
	ErrFrameFree  = errors.New("xsk: frame is already free")
)

// UMEM is the packet memory a socket shares with the kernel: frames of one
// power-of-two size, addressed by their byte offset in the UMEM, and a stack of
// the frames user space holds free.
type UMEM struct {
	mem       []byte
	frameSize uint64
	shift     uint     // log2(frameSize)
	free      []uint64 // the free frames' addresses, a stack
	isFree    []uint64 // one bit a frame, to refuse double frees
}

// NewUMEM maps frames frames of frameSize bytes (a power of two from 2048 to the
// page size, as the kernel requires of aligned chunks), all free.
func NewUMEM(frames, frameSize int) (*UMEM, error) {
	page := os.Getpagesize()
	if frameSize < minFrameSize || frameSize > page || frameSize&(frameSize-1) != 0 {
		return nil, fmt.Errorf("xsk: frame size %d is not a power of two from %d to the page size %d", frameSize, minFrameSize, page)
	}
	// Frame addresses and the kernel's UMEM length are 64-bit, but the frame count
	// is a u32 in the kernel.
	if frames <= 0 || uint64(frames) > math.MaxUint32 || frames > (1<<62)/frameSize {
		return nil, fmt.Errorf("xsk: %d frames of %d bytes: the count must be positive and the UMEM addressable", frames, frameSize)
	}
	mem, err := unix.Mmap(-1, 0, frames*frameSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("xsk: map %d-byte UMEM: %w", frames*frameSize, err)
	}
	// Huge pages where the kernel has them (transparent, on request): the
	// frames cycle through the whole ring, and with 4 KiB pages nearly every
	// packet would cost a TLB miss. Then the memory is populated, as the
	// kernel pins it at registration anyway.
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
	if unix.Madvise(mem, unix.MADV_POPULATE_WRITE) != nil {
		for i := 0; i < len(mem); i += page {
			mem[i] = 0
		}
	}
	u := &UMEM{
		mem:       mem,
		frameSize: uint64(frameSize),
		shift:     uint(bits.TrailingZeros(uint(frameSize))),
		free:      make([]uint64, frames),
		isFree:    make([]uint64, (frames+63)/64),
	}
	// Lowest addresses on top of the stack: handed out first.
	for i := range frames {
		u.free[frames-1-i] = uint64(i) * u.frameSize
		u.isFree[i/64] |= 1 << (i % 64)
	}
	return u, nil
}

// Frames is the number of frames; FrameSize their size in bytes.
func (u *UMEM) Frames() int    { return len(u.mem) >> u.shift }
func (u *UMEM) FrameSize() int { return int(u.frameSize) }

// FreeFrames is the number of frames on the free stack.
func (u *UMEM) FreeFrames() int { return len(u.free) }

// Frame returns the UMEM bytes from addr to the end of the frame holding addr, in
// place: u.Frame(d.Addr)[:d.Len] is a received packet, and a reply rewritten in it
// is sent from the same memory. It returns nil for an address outside the UMEM.
func (u *UMEM) Frame(addr uint64) []byte {
	if addr >= uint64(len(u.mem)) {
		return nil
	}
	end := (addr | (u.frameSize - 1)) + 1
	return u.mem[addr:end:end]
}

// Alloc takes a free frame and returns its address; ok is false when none is free.
func (u *UMEM) Alloc() (addr uint64, ok bool) {
	n := len(u.free)
	if n == 0 {
		return 0, false
	}
	addr = u.free[n-1]
	u.free = u.free[:n-1]
	i := addr >> u.shift
	u.isFree[i/64] &^= 1 << (i % 64)
	return addr, true
}

// Free returns the frame holding addr (any address inside it, such as an RX
// descriptor's) to the free stack. It refuses an address outside the UMEM and a
// frame that is already free, so that a bug cannot hand one frame out twice.
func (u *UMEM) Free(addr uint64) error {
	if addr >= uint64(len(u.mem)) {
		return ErrFrameRange
	}
	i := addr >> u.shift
	bit := uint64(1) << (i % 64)
	if u.isFree[i/64]&bit != 0 {
		return ErrFrameFree
	}
	u.isFree[i/64] |= bit
	// The stack has room for every frame, so this append never grows it.
	u.free = append(u.free, i<<u.shift)
	return nil
}

// Close unmaps the UMEM. Close the socket using it first: the frames must not be
// touched after.
func (u *UMEM) Close() error {
	if u.mem == nil {
		return nil
	}
	err := unix.Munmap(u.mem)
	u.mem, u.free = nil, nil
	return err
}
