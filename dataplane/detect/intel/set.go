package intel

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// Set matches addresses and domain names against many lists; the zero Set matches
// nothing. It is built once
// and then only read, so any number of goroutines may match concurrently; to
// reload lists, build a new Set and swap it in.
//
// Addresses are kept as sorted, non-overlapping ranges, each naming the list it
// reports, so a match is a binary search. Where prefixes of several lists overlap,
// the range reports a blocking list before a non-blocking one, then the list given
// first to NewSet. Domains are a hash set of names, looked up for the name and
// each parent, on a lowercase copy of the name on the stack.
type Set struct {
	lists []*List

	v4lo, v4hi []uint32
	v4list     []int32
	// v4index[k] is the first range starting at or after k<<16, so a lookup
	// searches only the ranges of its /16: a few cache lines, not twenty.
	v4index    []uint32
	v6lo, v6hi []u128
	v6list     []int32

	domains *domainTable
}

// NewSet combines lists; nil lists are skipped.
func NewSet(lists ...*List) *Set {
	s := &Set{}
	for _, l := range lists {
		if l != nil {
			s.lists = append(s.lists, l)
		}
	}
	var n4, n6, nd int
	for _, l := range s.lists {
		nd += len(l.domains)
		for _, p := range l.prefixes {
			if p.Addr().Is4() {
				n4++
			} else {
				n6++
			}
		}
	}
	v4, v6 := make([]span, 0, n4), make([]span, 0, n6)
	for i, l := range s.lists {
		for _, p := range l.prefixes {
			lo, hi := prefixRange(p)
			if p.Addr().Is4() {
				v4 = append(v4, span{lo, hi, int32(i)})
			} else {
				v6 = append(v6, span{lo, hi, int32(i)})
			}
		}
	}
	// Worst list first, so that a plain store leaves each name with its best
	// list: one table operation per entry.
	order := make([]int32, len(s.lists))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if a == b {
			return 0
		}
		if s.better(a, b) {
			return 1
		}
		return -1
	})
	s.domains = newDomainTable(nd)
	for _, i := range order {
		for _, d := range s.lists[i].domains {
			s.domains.store(d, i)
		}
	}
	r4 := s.flatten(v4)
	s.v4lo, s.v4hi, s.v4list = make([]uint32, 0, len(r4)), make([]uint32, 0, len(r4)), make([]int32, 0, len(r4))
	for _, sp := range r4 {
		s.v4lo = append(s.v4lo, uint32(sp.lo.lo))
		s.v4hi = append(s.v4hi, uint32(sp.hi.lo))
		s.v4list = append(s.v4list, sp.list)
	}
	if len(r4) > 0 {
		s.v4index = make([]uint32, 1<<16+1)
		i := 0
		for k := range s.v4index {
			for i < len(s.v4lo) && uint64(s.v4lo[i]) < uint64(k)<<16 {
				i++
			}
			s.v4index[k] = uint32(i)
		}
	}
	r6 := s.flatten(v6)
	s.v6lo, s.v6hi, s.v6list = make([]u128, 0, len(r6)), make([]u128, 0, len(r6)), make([]int32, 0, len(r6))
	for _, sp := range r6 {
		s.v6lo = append(s.v6lo, sp.lo)
		s.v6hi = append(s.v6hi, sp.hi)
		s.v6list = append(s.v6list, sp.list)
	}
	return s
}

// Lists returns the lists in the order NewSet was given them.
func (s *Set) Lists() []*List { return s.lists }

// Sizes reports how many address ranges (after merging) and domain names the
// set holds.
func (s *Set) Sizes() (v4Ranges, v6Ranges, domains int) {
	return len(s.v4lo), len(s.v6lo), s.domains.len()
}

// better reports whether list i wins over list j where both match.
func (s *Set) better(i, j int32) bool {
	bi, bj := s.lists[i].Block, s.lists[j].Block
	if bi != bj {
		return bi
	}
	return i < j
}

// MatchIP reports the list a matches, if any. IPv4-mapped IPv6 addresses are
// matched as IPv4.
func (s *Set) MatchIP(a netip.Addr) (*List, bool) {
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.Is4() {
		b := a.As4()
		x := binary.BigEndian.Uint32(b[:])
		if len(s.v4lo) == 0 {
			return nil, false
		}
		// The last range starting at or before x.
		lo, hi := int(s.v4index[x>>16]), int(s.v4index[x>>16+1])
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if s.v4lo[m] <= x {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if i := lo - 1; i >= 0 && x <= s.v4hi[i] {
			return s.lists[s.v4list[i]], true
		}
		return nil, false
	}
	if !a.Is6() {
		return nil, false
	}
	x := u128From(a)
	lo, hi := 0, len(s.v6lo)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !x.less(s.v6lo[m]) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if i := lo - 1; i >= 0 && !s.v6hi[i].less(x) {
		return s.lists[s.v6list[i]], true
	}
	return nil, false
}

// MatchDomain reports the list name (a DNS name or SNI as on the wire, any case,
// trailing dot allowed) or one of its parent domains is on, if any. When several
// match, a blocking list wins, then the list given first to NewSet.
func (s *Set) MatchDomain(name []byte) (*List, bool) {
	name = bytes.TrimSuffix(name, []byte{'.'})
	if len(name) == 0 || len(name) > maxDomain || s.domains.len() == 0 {
		return nil, false
	}
	// One pass from the last byte to the first lowercases the name into buf
	// and hashes it; at each label's start the hash covers that parent domain,
	// which is then looked up.
	var buf [maxDomain]byte
	t := s.domains
	h := t.seed
	best := int32(-1)
	for i := len(name) - 1; i >= 0; i-- {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
		h = hashStep(h, c)
		if i > 0 && name[i-1] != '.' {
			continue
		}
		if j := t.find(buf[i:len(name)], hashFinish(h)); j >= 0 && (best < 0 || s.better(j, best)) {
			best = j
		}
	}
	if best < 0 {
		return nil, false
	}
	return s.lists[best], true
}

// u128 is an IPv6 address as a number; IPv4 addresses use lo alone while the set
// is built.
type u128 struct{ hi, lo uint64 }

func u128From(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (x u128) less(y u128) bool { return x.hi < y.hi || x.hi == y.hi && x.lo < y.lo }

func (x u128) compare(y u128) int {
	if c := cmp.Compare(x.hi, y.hi); c != 0 {
		return c
	}
	return cmp.Compare(x.lo, y.lo)
}

func (x u128) next() u128 {
	if x.lo == ^uint64(0) {
		return u128{x.hi + 1, 0}
	}
	return u128{x.hi, x.lo + 1}
}

func (x u128) prev() u128 {
	if x.lo == 0 {
		return u128{x.hi - 1, ^uint64(0)}
	}
	return u128{x.hi, x.lo - 1}
}

// prefixRange gives the first and last address of a masked prefix.
func prefixRange(p netip.Prefix) (lo, hi u128) {
	if p.Addr().Is4() {
		b := p.Addr().As4()
		first := uint64(binary.BigEndian.Uint32(b[:]))
		return u128{0, first}, u128{0, first | (1<<(32-p.Bits()) - 1)}
	}
	lo = u128From(p.Addr())
	host := 128 - p.Bits()
	switch {
	case host >= 64:
		hi = u128{lo.hi | (1<<(host-64) - 1), ^uint64(0)}
		if host == 128 {
			hi.hi = ^uint64(0)
		}
	default:
		hi = u128{lo.hi, lo.lo | (1<<host - 1)}
	}
	return lo, hi
}

// span is an address range and the list it reports.
type span struct {
	lo, hi u128
	list   int32
}

// flatten turns prefixes, which are either nested or disjoint, into sorted,
// non-overlapping ranges, each reporting the best list among the prefixes that
// cover it, with neighbours of the same list merged.
func (s *Set) flatten(in []span) []span {
	// Outer prefixes before the ones they hold; equal prefixes best list first.
	slices.SortFunc(in, func(a, b span) int {
		if c := a.lo.compare(b.lo); c != 0 {
			return c
		}
		if c := b.hi.compare(a.hi); c != 0 {
			return c
		}
		if a.list == b.list {
			return 0
		}
		if s.better(a.list, b.list) {
			return -1
		}
		return 1
	})
	out := make([]span, 0, len(in))
	emit := func(lo, hi u128, list int32) {
		if n := len(out); n > 0 && out[n-1].list == list && out[n-1].hi.next() == lo {
			out[n-1].hi = hi
			return
		}
		out = append(out, span{lo, hi, list})
	}
	// The stack holds the prefixes that cover the cursor, outermost first, each
	// with the best list of itself and those around it. Everything before the
	// cursor has been emitted; done is set once the last address has been.
	type open struct {
		hi   u128
		best int32
	}
	stack := make([]open, 0, 33)
	var cursor u128
	done := false
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if done || top.hi.less(cursor) {
			return
		}
		emit(cursor, top.hi, top.best)
		if top.hi == (u128{^uint64(0), ^uint64(0)}) {
			done = true
		}
		cursor = top.hi.next()
	}
	for _, sp := range in {
		for len(stack) > 0 && stack[len(stack)-1].hi.less(sp.lo) {
			pop()
		}
		best := sp.list
		if n := len(stack); n > 0 {
			if cursor.less(sp.lo) {
				emit(cursor, sp.lo.prev(), stack[n-1].best)
			}
			if s.better(stack[n-1].best, best) {
				best = stack[n-1].best
			}
		}
		stack = append(stack, open{sp.hi, best})
		cursor = sp.lo
	}
	for len(stack) > 0 {
		pop()
	}
	return slices.Clip(out)
}
