package intel

import "hash/maphash"

// domainTable is a hash set of normalized domain names, each naming its list. It
// is open addressing over one array of 8-byte slots, each a 32-bit tag of the
// name's hash and the name's index: a name not in the set (the common case, as a
// match tries every parent of a name) costs one probe sequence in that array,
// usually one cache line, and no string compare. Go's map needed several cache
// misses per lookup at a million names.
type domainTable struct {
	seed  maphash.Seed
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
		seed:  maphash.MakeSeed(),
		slots: make([]uint64, size),
		mask:  uint64(size - 1),
		names: make([]string, 0, n),
		lists: make([]int32, 0, n),
	}
}

// store sets name's list, adding the name if it is new.
func (t *domainTable) store(name string, list int32) {
	h := maphash.String(t.seed, name)
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

// find returns name's list, or -1.
func (t *domainTable) find(name []byte) int32 {
	h := maphash.Bytes(t.seed, name)
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
