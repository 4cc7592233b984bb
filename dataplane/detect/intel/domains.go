package intel

import "math/rand/v2"

// domainTable is a hash set of normalized domain names, each naming its list. It
// is open addressing over one array of 8-byte slots, each a 32-bit tag of the
// name's hash and the name's index: a name not in the set (the common case, as a
// match tries every parent of a name) costs one probe sequence in that array,
// usually one cache line, and no string compare. Go's map needed several cache
// misses per lookup at a million names.
//
// Names are hashed from their last byte to their first, so that one pass over a
// name yields the hash of every parent domain on the way (see Set.MatchDomain).
type domainTable struct {
	seed  uint64
	slots []uint64 // 0: empty; else tag<<32 | (index+1)
	mask  uint64
	names []string
	lists []int32
}

func newDomainTable(n int) *domainTable {
	size := 16
	for size < 2*n { // at most half full, so probe sequences stay short
		size *= 2
	}
	return &domainTable{
		// Random per table, so that which names collide cannot be known ahead.
		seed:  rand.Uint64() | 1,
		slots: make([]uint64, size),
		mask:  uint64(size - 1),
		names: make([]string, 0, n),
		lists: make([]int32, 0, n),
	}
}

// FNV-1a's 64-bit prime; the hash is FNV-1a over the bytes in reverse, from a
// random seed, finished with a mixer so that low bits (the slot) and high bits
// (the tag) both depend on every byte.
const hashPrime = 0x100000001b3

func hashStep(h uint64, c byte) uint64 { return (h ^ uint64(c)) * hashPrime }

func hashFinish(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func (t *domainTable) hashString(name string) uint64 {
	h := t.seed
	for i := len(name) - 1; i >= 0; i-- {
		h = hashStep(h, name[i])
	}
	return hashFinish(h)
}

// store sets name's list, adding the name if it is new.
func (t *domainTable) store(name string, list int32) {
	h := t.hashString(name)
	tag := h >> 32
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			t.names = append(t.names, name)
			t.lists = append(t.lists, list)
			t.slots[i] = tag<<32 | uint64(len(t.names))
			return
		}
		if s>>32 == tag && t.names[uint32(s)-1] == name {
			t.lists[uint32(s)-1] = list
			return
		}
	}
}

// find returns the list of name, whose finished hash is h, or -1.
func (t *domainTable) find(name []byte, h uint64) int32 {
	tag := h >> 32
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			return -1
		}
		if s>>32 == tag && t.names[uint32(s)-1] == string(name) {
			return t.lists[uint32(s)-1]
		}
	}
}

func (t *domainTable) len() int {
	if t == nil {
		return 0
	}
	return len(t.names)
}
