package mirror

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"sync/atomic"
	"time"
)

// Dedupe suppresses the second copy of an IP packet when both ends of a flow are
// mirrored: AWS then sends each packet twice, once per mirrored ENI, with different
// outer sources (and VNIs, MACs, and TTLs if a router sits between the ENIs).
//
// It is a fixed-size table of atomic 64-bit slots, in buckets of 4, shared by all
// workers without locks. A slot packs a 24-bit tag of the packet hash, a 12-bit hash
// of the outer source and a 28-bit arrival time in units of 4.096µs (wrapping every
// ~18 minutes); the bucket is picked by other bits of the hash, so a packet is
// identified by 24 + log2(buckets) bits of its hash. A new packet takes the bucket's
// empty or oldest slot.
//
// Imperfections, all rare and all on the side of letting a duplicate through rather
// than dropping a real packet: a packet evicted by bucket pressure before its copy
// arrives is not recognised; two copies racing on two workers may both pass; the two
// outer sources may share a 12-bit tag (1 in 4096: the copy counts as a
// retransmission). A false duplicate needs a different packet with the same 24+
// hash bits within the window.
type Dedupe struct {
	slots  []atomic.Uint64
	mask   uint64 // bucket count - 1
	window uint64 // in time units; 0: disabled
}

const (
	bucketSlots = 4
	timeShift   = 12 // time unit: 1<<12 ns
	timeBits    = 28
	timeMask    = 1<<timeBits - 1
	srcBits     = 12
	srcMask     = 1<<srcBits - 1
	tagShift    = timeBits + srcBits
	// maxWindow keeps ages unambiguous: under half the time wrap (~9 minutes).
	maxWindow = 1<<(timeBits-1) - 1

	// hashBytes is how much of a packet is hashed: IP header, transport header and
	// the start of the payload tell packets apart.
	hashBytes = 128
)

// NewDedupe returns a table of slots slots (rounded up to a power of two, at least
// 64) that reports copies arriving within window of the first. window <= 0 disables
// it: Seen then always returns false. Windows over ~9 minutes are cut to that.
func NewDedupe(window time.Duration, slots int) *Dedupe {
	n := 64
	for n < slots && n < 1<<30 {
		n <<= 1
	}
	d := &Dedupe{slots: make([]atomic.Uint64, n), mask: uint64(n/bucketSlots - 1)}
	if window > 0 {
		w := (uint64(window) + 1<<timeShift - 1) >> timeShift
		d.window = min(w, maxWindow)
	}
	return d
}

// Seen reports whether IP packet ip (from its first byte) was seen within the
// window from a different outer source: then it is a mirror duplicate. Otherwise it
// records it (refreshing the time when the same source sent it before: a
// retransmission, not a mirror duplicate) and returns false. now is in nanoseconds
// (time.Now().UnixNano() or a monotonic equivalent; callers' clocks may differ by
// less than the window). The hash skips the IPv4 TTL and header checksum and the
// IPv6 hop limit, and link padding past the IP length. Seen does not allocate; a nil
// *Dedupe sees nothing.
func (d *Dedupe) Seen(ip []byte, outerSrc netip.Addr, now int64) bool {
	if d == nil || d.window == 0 {
		return false
	}
	h := hashIP(ip)
	tag := h >> tagShift // 24 bits
	if tag == 0 {
		tag = 1 // an empty slot (0) never matches
	}
	src := srcTag(outerSrc)
	t := uint64(now) >> timeShift & timeMask
	entry := tag<<tagShift | src<<timeBits | t
	base := (h & d.mask) * bucketSlots
	bucket := d.slots[base : base+bucketSlots : base+bucketSlots]

	for range 4 { // retries when another worker changed the bucket under us
		victim, victimOld, victimAge := 0, uint64(0), uint64(0)
		for i := range bucket {
			v := bucket[i].Load()
			if v == 0 {
				if victimAge != ^uint64(0) {
					victim, victimOld, victimAge = i, 0, ^uint64(0)
				}
				continue
			}
			age := (t - v) & timeMask
			if age > timeMask/2 { // stamped by a worker whose clock is ahead
				age = 0
			}
			if v>>tagShift == tag && age <= d.window {
				if v>>timeBits&srcMask != src {
					return true
				}
				bucket[i].CompareAndSwap(v, entry) // refresh; losing the race is fine
				return false
			}
			if age >= victimAge && victimAge != ^uint64(0) {
				victim, victimOld, victimAge = i, v, age
			}
		}
		if bucket[victim].CompareAndSwap(victimOld, entry) {
			return false
		}
	}
	return false
}

const (
	wyp0 = 0xa0761d6478bd642f
	wyp1 = 0xe7037ed1a0b428db
	wyp2 = 0x8ebc6af09c88c6e3
	wyp3 = 0x589965cc75374cc3
)

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashIP hashes the first bytes of an IP packet, up to hashBytes and no further than
// the IP length its header gives, with the fields a router changes zeroed.
func hashIP(ip []byte) uint64 {
	n := len(ip)
	if n > 0 {
		switch ip[0] >> 4 {
		case 4:
			if n >= 4 {
				if l := int(binary.BigEndian.Uint16(ip[2:])); l >= 20 && l < n {
					n = l
				}
			}
		case 6:
			if n >= 6 {
				// A payload length of 0 is a jumbogram: keep n.
				if pl := int(binary.BigEndian.Uint16(ip[4:])); pl > 0 && 40+pl < n {
					n = 40 + pl
				}
			}
		}
	}
	n = min(n, hashBytes)
	var buf [hashBytes + 16]byte // room to read whole 16-byte blocks
	copy(buf[:], ip[:n])
	if n > 0 {
		switch buf[0] >> 4 {
		case 4:
			buf[8], buf[10], buf[11] = 0, 0, 0 // TTL, header checksum
		case 6:
			buf[7] = 0 // hop limit
		}
	}
	h := uint64(wyp0) ^ uint64(n)*wyp3
	for i := 0; i < n; i += 16 {
		a := binary.LittleEndian.Uint64(buf[i:])
		b := binary.LittleEndian.Uint64(buf[i+8:])
		h = mix(a^wyp1, b^h^wyp2)
	}
	return mix(h^wyp0, uint64(n)^wyp1)
}

// srcTag hashes an outer source address to srcBits bits.
func srcTag(a netip.Addr) uint64 {
	b := a.Unmap().As16()
	h := mix(binary.LittleEndian.Uint64(b[:8])^wyp1, binary.LittleEndian.Uint64(b[8:])^wyp2)
	return (h ^ h>>32) & srcMask
}
