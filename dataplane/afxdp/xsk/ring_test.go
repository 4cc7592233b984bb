package xsk

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fakeKernel is the kernel's side of one ring, over Go memory laid out as the
// kernel lays out a mapping: the two indexes and the flags word on cache lines of
// their own, then the entries.
type fakeKernel struct {
	mem   []byte
	off   unix.XDPRingOffset
	size  uint32
	entry int
}

func newFakeKernel(size uint32, entry int, start uint32) *fakeKernel {
	off := unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}
	// Backed by uint64s so that the indexes and entries are aligned.
	words := make([]uint64, (int(off.Desc)+int(size)*entry+7)/8)
	k := &fakeKernel{mem: unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8), off: off, size: size, entry: entry}
	atomic.StoreUint32(k.word(off.Producer), start)
	atomic.StoreUint32(k.word(off.Consumer), start)
	return k
}

func (k *fakeKernel) word(o uint64) *uint32 { return (*uint32)(unsafe.Pointer(&k.mem[o])) }
func (k *fakeKernel) prod() uint32          { return atomic.LoadUint32(k.word(k.off.Producer)) }
func (k *fakeKernel) cons() uint32          { return atomic.LoadUint32(k.word(k.off.Consumer)) }

func (k *fakeKernel) setNeedWakeup(on bool) {
	var v uint32
	if on {
		v = unix.XDP_RING_NEED_WAKEUP
	}
	atomic.StoreUint32(k.word(k.off.Flags), v)
}

func (k *fakeKernel) slot(idx uint32) []byte {
	o := int(k.off.Desc) + int(idx&(k.size-1))*k.entry
	return k.mem[o : o+k.entry]
}

// consume takes up to n entries user space produced, as the kernel does from the
// fill and TX rings, and returns their first eight bytes (the address).
func (k *fakeKernel) consume(n uint32) []uint64 {
	prod, cons := k.prod(), k.cons()
	var got []uint64
	for ; cons != prod && n > 0; n-- {
		got = append(got, *(*uint64)(unsafe.Pointer(&k.slot(cons)[0])))
		cons++
	}
	atomic.StoreUint32(k.word(k.off.Consumer), cons)
	return got
}

// produce writes up to len(vals) entries for user space, as the kernel does on
// the RX and completion rings, and returns how many fitted.
func (k *fakeKernel) produce(vals []uint64) int {
	prod, cons := k.prod(), k.cons()
	n := 0
	for ; n < len(vals) && prod-cons < k.size; n++ {
		*(*uint64)(unsafe.Pointer(&k.slot(prod)[0])) = vals[n]
		prod++
	}
	atomic.StoreUint32(k.word(k.off.Producer), prod)
	return n
}

func fillRingOn(t testing.TB, k *fakeKernel, hasFlags bool) *FillRing {
	t.Helper()
	r, err := newFillRing(k.mem, k.off, k.size, hasFlags)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func rxRingOn(t testing.TB, k *fakeKernel, hasFlags bool) *RxRing {
	t.Helper()
	r, err := newRxRing(k.mem, k.off, k.size, hasFlags)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestProducerRing: reserve and submit on a fill ring across the u32 wraparound
// of the indexes, with the fake kernel consuming in between; the kernel sees every
// address once, in order, and the ring never offers more than its free entries.
func TestProducerRing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start uint32
	}{
		{"from zero", 0},
		{"wrapping", 1<<32 - 5},
		{"at the top", 1<<32 - 1},
		{"mid", 1 << 31},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel(8, addrEntry, tc.start)
			r := fillRingOn(t, k, true)
			next, want := uint64(100), uint64(100)
			for round := range 6 {
				// The kernel consumed everything last round: 5 fit.
				idx, got := r.Reserve(5)
				if got != 5 {
					t.Fatalf("round %d: Reserve(5) got %d, want 5", round, got)
				}
				for i := range got {
					r.Set(idx+i, next)
					next++
				}
				if n := r.Submit(got); n != got {
					t.Fatalf("Submit(%d) = %d", got, n)
				}
				// 5 used of 8: only 3 more fit.
				if _, got := r.Reserve(5); got != 3 {
					t.Fatalf("round %d: second Reserve(5) got %d, want 3", round, got)
				}
				r.Submit(0)
				// The 3 reserved, never written: write them now and submit.
				for i := range uint32(3) {
					r.Set(idx+5+i, next)
					next++
				}
				if n := r.Submit(10); n != 3 {
					t.Fatalf("Submit(10) with 3 reserved = %d, want 3", n)
				}
				for _, a := range k.consume(100) {
					if a != want {
						t.Fatalf("round %d: kernel consumed %d, want %d", round, a, want)
					}
					want++
				}
			}
			if want != next {
				t.Fatalf("kernel consumed up to %d, produced up to %d", want, next)
			}
			if k.prod() != tc.start+6*8 {
				t.Fatalf("producer index %d, want %d", k.prod(), tc.start+6*8)
			}
		})
	}
}

// TestConsumerRing: peek and release on an RX ring across the wraparound, in
// batches smaller and larger than what is there.
func TestConsumerRing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start uint32
		batch uint32
	}{
		{"from zero, batch 3", 0, 3},
		{"wrapping, batch 3", 1<<32 - 7, 3},
		{"wrapping, batch 64", 1<<32 - 7, 64},
		{"wrapping, batch 1", 1<<32 - 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel(16, descEntry, tc.start)
			r := rxRingOn(t, k, true)
			next, want := uint64(7), uint64(7)
			for range 10 {
				vals := make([]uint64, 11)
				for i := range vals {
					vals[i] = next + uint64(i)
				}
				n := k.produce(vals)
				next += uint64(n)
				for {
					idx, got := r.Peek(tc.batch)
					if got == 0 {
						break
					}
					if got > tc.batch {
						t.Fatalf("Peek(%d) got %d", tc.batch, got)
					}
					for i := range got {
						if a := r.Desc(idx + i).Addr; a != want {
							t.Fatalf("entry %d: addr %d, want %d", idx+i, a, want)
						}
						want++
					}
					if rel := r.Release(got); rel != got {
						t.Fatalf("Release(%d) = %d", got, rel)
					}
				}
			}
			if want != next || want == 7 {
				t.Fatalf("consumed up to %d, produced up to %d", want, next)
			}
			if k.cons() != k.prod() {
				t.Fatalf("consumer index %d, producer %d after draining", k.cons(), k.prod())
			}
		})
	}
}

// TestCachedIndexes: each side reads the other side's index only when its cached
// copy cannot answer the request.
func TestCachedIndexes(t *testing.T) {
	t.Run("producer", func(t *testing.T) {
		k := newFakeKernel(8, addrEntry, 0)
		r := fillRingOn(t, k, true)
		r.Reserve(6)
		r.Submit(6)
		k.consume(6) // the kernel frees 6; the cached copy still says 2 are free
		if _, got := r.Reserve(2); got != 2 || r.cachedCons != 0 {
			t.Fatalf("Reserve(2) with 2 cached free: got %d, cachedCons %d (want 2, 0: no reload)", got, r.cachedCons)
		}
		if _, got := r.Reserve(3); got != 3 || r.cachedCons != 6 {
			t.Fatalf("Reserve(3) with 0 cached free: got %d, cachedCons %d (want 3, 6: reloaded)", got, r.cachedCons)
		}
	})
	t.Run("consumer", func(t *testing.T) {
		k := newFakeKernel(8, descEntry, 0)
		r := rxRingOn(t, k, true)
		k.produce([]uint64{1, 2, 3})
		if _, got := r.Peek(1); got != 1 {
			t.Fatalf("Peek(1) got %d", got)
		}
		k.produce([]uint64{4, 5})
		// Two cached entries left: Peek(4) gets those, without reloading.
		if _, got := r.Peek(4); got != 2 || r.cachedProd != 3 {
			t.Fatalf("Peek(4) with 2 cached: got %d, cachedProd %d (want 2, 3)", got, r.cachedProd)
		}
		// None cached: reload.
		idx, got := r.Peek(4)
		if got != 2 || r.cachedProd != 5 || r.Desc(idx).Addr != 4 {
			t.Fatalf("Peek(4) with none cached: got %d, cachedProd %d, first %d (want 2, 5, 4)", got, r.cachedProd, r.Desc(idx).Addr)
		}
		if n := r.Release(10); n != 5 || k.cons() != 5 {
			t.Fatalf("Release(10) after peeking 5 = %d, consumer %d", n, k.cons())
		}
	})
}

// TestFullAndEmpty: a full ring reserves nothing and an empty one peeks nothing,
// and a consumer index running ahead of the producer (a kernel bug) gives no
// free entries rather than a huge count.
func TestFullAndEmpty(t *testing.T) {
	k := newFakeKernel(4, addrEntry, 10)
	r := fillRingOn(t, k, true)
	if _, got := r.Reserve(9); got != 4 {
		t.Fatalf("Reserve(9) on an empty 4-ring got %d", got)
	}
	r.Submit(4)
	if _, got := r.Reserve(1); got != 0 {
		t.Fatalf("Reserve(1) on a full ring got %d", got)
	}
	atomic.StoreUint32(k.word(k.off.Consumer), 20) // past the producer (14)
	if _, got := r.Reserve(1); got != 0 {
		t.Fatalf("Reserve(1) with the consumer ahead of the producer got %d", got)
	}

	kr := newFakeKernel(4, descEntry, 1<<32-2)
	rx := rxRingOn(t, kr, true)
	if _, got := rx.Peek(4); got != 0 {
		t.Fatalf("Peek on an empty ring got %d", got)
	}
	if n := rx.Release(3); n != 0 || kr.cons() != 1<<32-2 {
		t.Fatalf("Release(3) with nothing peeked = %d, consumer %d", n, kr.cons())
	}
}

// TestNeedsWakeup follows the flags word the kernel sets, and is always true for a
// ring without one.
func TestNeedsWakeup(t *testing.T) {
	k := newFakeKernel(4, descEntry, 0)
	tx, err := newTxRing(k.mem, k.off, k.size, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, on := range []bool{false, true, false} {
		k.setNeedWakeup(on)
		if got := tx.NeedsWakeup(); got != on {
			t.Fatalf("flags need_wakeup %v: NeedsWakeup() = %v", on, got)
		}
	}
	noFlags := rxRingOn(t, k, false)
	k.setNeedWakeup(false)
	if !noFlags.NeedsWakeup() {
		t.Fatal("a ring without a flags word must always need a wakeup")
	}
}

// TestNewRingRejects offsets and sizes a kernel should never give, instead of
// faulting on them later.
func TestNewRingRejects(t *testing.T) {
	good := unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}
	mem := make([]byte, 192+8*16)
	for _, tc := range []struct {
		name string
		off  unix.XDPRingOffset
		size uint32
		want string
	}{
		{"size zero", good, 0, "power of two"},
		{"size not a power of two", good, 12, "power of two"},
		{"producer misaligned", unix.XDPRingOffset{Producer: 2, Consumer: 64, Flags: 128, Desc: 192}, 16, "producer"},
		{"consumer past the end", unix.XDPRingOffset{Producer: 0, Consumer: 1 << 40, Flags: 128, Desc: 192}, 16, "consumer"},
		{"consumer at the last byte", unix.XDPRingOffset{Producer: 0, Consumer: uint64(len(mem)) - 2, Flags: 128, Desc: 192}, 16, "consumer"},
		{"flags past the end", unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 1<<64 - 4, Desc: 192}, 16, "flags"},
		{"entries overflow the mapping", good, 32, "descriptors"},
		{"entries misaligned", unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 180}, 16, "descriptors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newRing(mem, tc.off, tc.size, addrEntry, true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("newRing: %v, want an error about %q", err, tc.want)
			}
		})
	}
	if _, err := newRing(mem, good, 16, addrEntry, true); err != nil {
		t.Fatalf("good offsets: %v", err)
	}
}

// TestRingAllocs: the per-packet ring operations allocate nothing.
func TestRingAllocs(t *testing.T) {
	kf := newFakeKernel(64, addrEntry, 0)
	fill := fillRingOn(t, kf, true)
	kr := newFakeKernel(64, descEntry, 0)
	rx := rxRingOn(t, kr, true)
	vals := make([]uint64, 32)
	var sink uint64
	allocs := testing.AllocsPerRun(100, func() {
		idx, got := fill.Reserve(32)
		for i := range got {
			fill.Set(idx+i, uint64(i))
		}
		fill.Submit(got)
		atomic.StoreUint32(kf.word(kf.off.Consumer), kf.prod()) // the kernel takes all
		kr.produce(vals)
		idx, got = rx.Peek(32)
		for i := range got {
			sink += rx.Desc(idx + i).Addr
		}
		rx.Release(got)
		_ = rx.NeedsWakeup()
	})
	if allocs != 0 {
		t.Fatalf("ring operations: %v allocations a run, want 0", allocs)
	}
	_ = sink
}

func BenchmarkFillReserveSubmit(b *testing.B) {
	k := newFakeKernel(2048, addrEntry, 0)
	r := fillRingOn(b, k, true)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		idx, got := r.Reserve(64)
		for j := range got {
			r.Set(idx+j, uint64(j))
		}
		r.Submit(got)
		if i%16 == 15 {
			atomic.StoreUint32(k.word(k.off.Consumer), k.prod())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/entry")
}

func BenchmarkRxPeekRelease(b *testing.B) {
	k := newFakeKernel(2048, descEntry, 0)
	r := rxRingOn(b, k, true)
	b.ReportAllocs()
	var sink uint64
	for b.Loop() {
		// The kernel side publishes a full ring without writing entries.
		atomic.StoreUint32(k.word(k.off.Producer), k.cons()+2048)
		for {
			idx, got := r.Peek(64)
			if got == 0 {
				break
			}
			for j := range got {
				sink += r.Desc(idx + j).Addr
			}
			r.Release(got)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2048), "ns/entry")
	_ = sink
}

// TestRingConcurrentSides runs user space and the fake kernel on two goroutines,
// as they run on two cores: the consumer sees every entry, in order, with the value
// written before it was published. Under -race this also checks the ordering: an
// entry write not ordered before the producer index store would be reported.
func TestRingConcurrentSides(t *testing.T) {
	const total = 20000
	for _, start := range []uint32{0, 1<<32 - 1000} {
		k := newFakeKernel(64, addrEntry, start)
		r := fillRingOn(t, k, true)
		done := make(chan error, 1)
		go func() {
			want := uint64(0)
			for want < total {
				got := k.consume(17)
				for _, a := range got {
					if a != want {
						done <- fmt.Errorf("kernel consumed %d, want %d", a, want)
						return
					}
					want++
				}
				if len(got) == 0 {
					runtime.Gosched()
				}
			}
			done <- nil
		}()
		for next := uint64(0); next < total; {
			idx, got := r.Reserve(min(23, uint32(total-next)))
			for i := range got {
				r.Set(idx+i, next)
				next++
			}
			r.Submit(got)
			if got == 0 {
				runtime.Gosched()
			}
		}
		if err := <-done; err != nil {
			t.Fatalf("start %d: %v", start, err)
		}
	}
}
