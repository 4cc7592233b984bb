package xsk

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// alwaysNeedWakeup stands in for the flags word of a ring whose kernel cannot say
// when it needs waking (no need_wakeup support or not requested): such a ring needs
// a wakeup every time.
var alwaysNeedWakeup uint32 = unix.XDP_RING_NEED_WAKEUP

// ring is the index logic shared by the four rings, over any memory: mmapped
// kernel memory in a Socket, a Go slice in the tests' fake kernel.
type ring struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	mask     uint32
	size     uint32

	// cachedProd and cachedCons are this side's view of the two indexes. Its own
	// index runs ahead of the shared word by what is reserved (or peeked) and not
	// yet submitted (or released); the other side's is a possibly stale copy,
	// reloaded only when it cannot answer a request, so that the cache line holding
	// the other side's index is not pulled over on every call.
	cachedProd, cachedCons uint32
	// published is the value this side last stored in its own shared index, so
	// that Submit and Release need not read it back.
	published uint32
}

// addrEntry and descEntry are the entry sizes of the fill and completion rings
// (a frame address) and of the RX and TX rings (a descriptor).
const (
	addrEntry = 8
	descEntry = int(unsafe.Sizeof(unix.XDPDesc{}))
)

// newRing lays a ring of size entries of entrySize bytes over mem at the offsets
// the kernel reported. hasFlags is false when the kernel has no flags word.
// Offsets outside mem or misaligned are an error, never a fault later.
func newRing(mem []byte, off unix.XDPRingOffset, size uint32, entrySize int, hasFlags bool) (ring, error) {
	if size == 0 || size&(size-1) != 0 {
		return ring{}, fmt.Errorf("xsk: ring size %d is not a power of two", size)
	}
	n := uint64(len(mem))
	word := func(name string, o uint64) (*uint32, error) {
		if o%4 != 0 || o > n || n-o < 4 {
			return nil, fmt.Errorf("xsk: ring %s offset %d outside the %d-byte mapping or misaligned", name, o, n)
		}
		return (*uint32)(unsafe.Pointer(&mem[o])), nil
	}
	var r ring
	var err error
	if r.producer, err = word("producer", off.Producer); err != nil {
		return ring{}, err
	}
	if r.consumer, err = word("consumer", off.Consumer); err != nil {
		return ring{}, err
	}
	r.flags = &alwaysNeedWakeup
	if hasFlags {
		if r.flags, err = word("flags", off.Flags); err != nil {
			return ring{}, err
		}
	}
	descLen := uint64(size) * uint64(entrySize)
	if off.Desc%8 != 0 || off.Desc > n || n-off.Desc < descLen {
		return ring{}, fmt.Errorf("xsk: ring descriptors at %d (%d bytes) outside the %d-byte mapping or misaligned", off.Desc, descLen, n)
	}
	r.size, r.mask = size, size-1
	r.cachedProd = atomic.LoadUint32(r.producer)
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r, nil
}

// entries returns the address of the entry array, checked by newRing.
func (r *ring) entries(mem []byte, off unix.XDPRingOffset) unsafe.Pointer {
	return unsafe.Pointer(&mem[off.Desc])
}

// NeedsWakeup reports whether the kernel asked to be woken (XDP_RING_NEED_WAKEUP)
// before it will look at this ring again: a Kick for TX, a WakeRX or Poll for the
// fill ring. Without need_wakeup it is always true.
func (r *ring) NeedsWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// Size is the ring's number of entries.
func (r *ring) Size() uint32 { return r.size }

// producerRing is user space's side of a ring it fills: the fill and TX rings.
type producerRing struct{ ring }

// Reserve claims up to n free entries, starting at index idx; got may be less
// than n (zero when the ring is full). Write entries idx..idx+got-1, then Submit.
// Indexes wrap; the entry accessors mask them.
func (r *producerRing) Reserve(n uint32) (idx, got uint32) {
	free := r.free()
	if free < n {
		// Refresh the consumer index only when the cached one cannot answer.
		r.cachedCons = atomic.LoadUint32(r.consumer)
		free = r.free()
	}
	got = min(n, free)
	idx = r.cachedProd
	r.cachedProd += got
	return idx, got
}

// Outstanding is how many submitted entries the kernel has not consumed yet.
func (r *producerRing) Outstanding() uint32 {
	return r.published - atomic.LoadUint32(r.consumer)
}

func (r *producerRing) free() uint32 {
	used := r.cachedProd - r.cachedCons
	if used > r.size {
		// Only a consumer index running ahead of the producer gets here: give
		// nothing rather than overwrite entries.
		return 0
	}
	return r.size - used
}

// Submit hands the next n reserved entries to the kernel, in the order they were
// reserved, and returns how many it handed over: n is limited to what is reserved
// and not yet submitted.
func (r *producerRing) Submit(n uint32) uint32 {
	n = min(n, r.cachedProd-r.published)
	r.published += n
	// The entry writes before this store are visible to the kernel once it loads
	// the new producer index.
	atomic.StoreUint32(r.producer, r.published)
	return n
}

// consumerRing is user space's side of a ring the kernel fills: the RX and
// completion rings.
type consumerRing struct{ ring }

// Peek returns up to n filled entries, starting at index idx; got may be less than
// n (zero when the ring is empty). Read entries idx..idx+got-1, then Release.
func (r *consumerRing) Peek(n uint32) (idx, got uint32) {
	avail := r.cachedProd - r.cachedCons
	if avail == 0 {
		// Refresh the producer index only when nothing cached is left.
		r.cachedProd = atomic.LoadUint32(r.producer)
		avail = min(r.cachedProd-r.cachedCons, r.size)
	}
	got = min(n, avail)
	idx = r.cachedCons
	r.cachedCons += got
	return idx, got
}

// Release gives the next n peeked entries back to the kernel and returns how many
// it gave: n is limited to what is peeked and not yet released. Read the entries
// before releasing them: the kernel may overwrite them from then on.
func (r *consumerRing) Release(n uint32) uint32 {
	n = min(n, r.cachedCons-r.published)
	r.published += n
	atomic.StoreUint32(r.consumer, r.published)
	return n
}

// FillRing gives the kernel free UMEM frames to receive into.
type FillRing struct {
	producerRing
	addrs []uint64
}

// Set writes the frame address of reserved entry idx.
func (r *FillRing) Set(idx uint32, addr uint64) { r.addrs[idx&r.mask] = addr }

// CompletionRing returns the frames of sent TX descriptors.
type CompletionRing struct {
	consumerRing
	addrs []uint64
}

// Addr reads the frame address of peeked entry idx.
func (r *CompletionRing) Addr(idx uint32) uint64 { return r.addrs[idx&r.mask] }

// RxRing holds the descriptors of received packets.
type RxRing struct {
	consumerRing
	descs []unix.XDPDesc
}

// Desc reads peeked descriptor idx: Addr is the packet's UMEM address (past any
// headroom), Len its length.
func (r *RxRing) Desc(idx uint32) unix.XDPDesc { return r.descs[idx&r.mask] }

// TxRing takes the descriptors of packets to send.
type TxRing struct {
	producerRing
	descs []unix.XDPDesc
}

// Desc returns reserved descriptor idx, to be filled in place.
func (r *TxRing) Desc(idx uint32) *unix.XDPDesc { return &r.descs[idx&r.mask] }

func newFillRing(mem []byte, off unix.XDPRingOffset, size uint32, hasFlags bool) (*FillRing, error) {
	r, err := newRing(mem, off, size, addrEntry, hasFlags)
	if err != nil {
		return nil, err
	}
	r.published = r.cachedProd
	return &FillRing{producerRing{r}, unsafe.Slice((*uint64)(r.entries(mem, off)), size)}, nil
}

func newCompletionRing(mem []byte, off unix.XDPRingOffset, size uint32, hasFlags bool) (*CompletionRing, error) {
	r, err := newRing(mem, off, size, addrEntry, hasFlags)
	if err != nil {
		return nil, err
	}
	r.published = r.cachedCons
	return &CompletionRing{consumerRing{r}, unsafe.Slice((*uint64)(r.entries(mem, off)), size)}, nil
}

func newRxRing(mem []byte, off unix.XDPRingOffset, size uint32, hasFlags bool) (*RxRing, error) {
	r, err := newRing(mem, off, size, descEntry, hasFlags)
	if err != nil {
		return nil, err
	}
	r.published = r.cachedCons
	return &RxRing{consumerRing{r}, unsafe.Slice((*unix.XDPDesc)(r.entries(mem, off)), size)}, nil
}

func newTxRing(mem []byte, off unix.XDPRingOffset, size uint32, hasFlags bool) (*TxRing, error) {
	r, err := newRing(mem, off, size, descEntry, hasFlags)
	if err != nil {
		return nil, err
	}
	r.published = r.cachedProd
	return &TxRing{producerRing{r}, unsafe.Slice((*unix.XDPDesc)(r.entries(mem, off)), size)}, nil
}
