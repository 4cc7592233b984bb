package dataplane

import (
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"weir/dataplane/packet"
)

// Fragments remembers the verdict of each fragmented packet's first fragment, so
// that its later fragments, which carry no ports, get that verdict too. Judged on
// their own they would be port-less flows that port rules never match: with a
// default of allow, a packet split before its ports would slip past "drop tcp/23"
// (RFC 1858); with a default of drop, fragmented traffic the rules allow would break.
// A later fragment whose first fragment was not seen is dropped.
//
// The table is a fixed array of atomic words shared by all workers: a 24-bit tag of
// the fragment key's hash, the verdict, and the time, two slots per hash. Nothing is
// allocated or locked per packet; an entry lost to a collision drops the rest of that
// packet, never passes it.
type Fragments struct {
	slots []atomic.Uint64
	mask  uint64
	seed  uint64
	ttl   int64 // ticks
}

const (
	fragTagBits   = 24
	fragTimeBits  = 63 - fragTagBits // after the verdict bit
	fragTickShift = 24               // ticks of 2^24 ns, about 17 ms
	fragTimeMask  = 1<<fragTimeBits - 1
)

// NewFragments makes a table of about n entries whose verdicts last ttl (IPv4
// reassembly gives up after 30 s on Linux, 60 s in RFC 791).
func NewFragments(n int, ttl time.Duration) *Fragments {
	size := 1 << bits.Len(uint(max(n, 2)-1))
	return &Fragments{
		slots: make([]atomic.Uint64, size),
		mask:  uint64(size - 1),
		seed:  rand.Uint64() | 1,
		ttl:   int64(ttl) >> fragTickShift,
	}
}

// hash identifies the packet a fragment belongs to: tunnel scope, protocol,
// addresses and the fragment id.
func (f *Fragments) hash(scope uint64, p *packet.Packet) uint64 {
	s, d := p.Src.As16(), p.Dst.As16()
	h := mix(f.seed, scope)
	h = mix(h, uint64(p.Proto)<<32|uint64(p.FragmentID))
	h = mix(h, le64(s[0:8]))
	h = mix(h, le64(s[8:16]))
	h = mix(h, le64(d[0:8]))
	return mix(h, le64(d[8:16]))
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func mix(h, v uint64) uint64 {
	h ^= v
	h *= 0x9e3779b97f4a7c15
	return h ^ h>>29
}

// Put records the verdict of a first fragment.
func (f *Fragments) Put(scope uint64, p *packet.Packet, allow bool, now int64) {
	h := f.hash(scope, p)
	tag := h >> (64 - fragTagBits)
	v := tag<<(64-fragTagBits) | uint64(now>>fragTickShift)&fragTimeMask
	if allow {
		v |= 1 << fragTimeBits
	}
	i := h & f.mask
	// Take the slot already holding this packet, else the older of the two.
	a, b := &f.slots[i], &f.slots[i^1]
	switch {
	case a.Load()>>(64-fragTagBits) == tag:
	case b.Load()>>(64-fragTagBits) == tag, b.Load()&fragTimeMask < a.Load()&fragTimeMask:
		a = b
	}
	a.Store(v)
}

// Get returns the verdict recorded for the packet later fragment p belongs to, and
// whether there is one.
func (f *Fragments) Get(scope uint64, p *packet.Packet, now int64) (allow, ok bool) {
	h := f.hash(scope, p)
	tag := h >> (64 - fragTagBits)
	i := h & f.mask
	nowTicks := uint64(now>>fragTickShift) & fragTimeMask
	for _, s := range [2]*atomic.Uint64{&f.slots[i], &f.slots[i^1]} {
		v := s.Load()
		if v == 0 || v>>(64-fragTagBits) != tag {
			continue
		}
		if age := (nowTicks - v&fragTimeMask) & fragTimeMask; int64(age) > f.ttl {
			return false, false
		}
		return v&(1<<fragTimeBits) != 0, true
	}
	return false, false
}
