package mpm

import "slices"

// acMatcher is the Aho-Corasick candidate the q-gram filter was measured against
// (compare_test.go): an automaton over case-folded bytes, with full DFA rows for
// the shallow states (where a scan spends most of its time) and sorted sparse
// edges plus failure links for the deep ones, so that 30,000 patterns do not need
// a 256-wide row for each of their ~300,000 states. Case-sensitive patterns are
// verified exactly when their state is reached. It reuses a Matcher's patterns,
// verification and Hits.
type acMatcher struct {
	m          *Matcher
	nDense     uint32
	delta      []uint32 // nDense*256 transitions
	fail       []uint32
	childStart []uint32 // sparse state s-nDense: edges childStart[s-nDense]:childStart[s-nDense+1]
	childByte  []byte
	childNext  []uint32
	outStart   []uint32 // patterns ending at state s: outs[outStart[s]:outStart[s+1]]
	outs       []uint32
}

const acDenseDepth = 2

func buildAC(m *Matcher) *acMatcher {
	// Trie with temporary ids, edges in a map.
	type edge struct {
		from uint32
		c    byte
	}
	next := map[edge]uint32{}
	n := uint32(1)
	own := [][]uint32{nil}
	for pi, p := range m.pats {
		s := uint32(0)
		for _, c := range m.arena[p.start : p.start+p.n] {
			c = lower[c]
			t, ok := next[edge{s, c}]
			if !ok {
				t = n
				n++
				next[edge{s, c}] = t
				own = append(own, nil)
			}
			s = t
		}
		own[s] = append(own[s], uint32(pi))
	}
	children := make([][]edge, n) // edge.from reused as the child id
	for e, t := range next {
		children[e.from] = append(children[e.from], edge{t, e.c})
	}
	// Breadth-first order: new ids, depths and failure links.
	order := []uint32{0}
	newID := make([]uint32, n)
	depth := make([]int, n)
	failTmp := make([]uint32, n)
	for k := 0; k < len(order); k++ {
		u := order[k]
		slices.SortFunc(children[u], func(a, b edge) int { return int(a.c) - int(b.c) })
		for _, ch := range children[u] {
			v := ch.from
			newID[v] = uint32(len(order))
			order = append(order, v)
			depth[v] = depth[u] + 1
			if u != 0 {
				f := failTmp[u]
				for {
					if t, ok := next[edge{f, ch.c}]; ok {
						failTmp[v] = t
						break
					}
					if f == 0 {
						break
					}
					f = failTmp[f]
				}
			}
		}
	}
	a := &acMatcher{m: m, fail: make([]uint32, n)}
	for a.nDense < n && depth[order[a.nDense]] <= acDenseDepth {
		a.nDense++
	}
	a.delta = make([]uint32, int(a.nDense)*256)
	a.childStart = make([]uint32, 1, n-a.nDense+1)
	outs := make([][]uint32, n)
	for k, u := range order {
		a.fail[k] = newID[failTmp[u]]
		outs[k] = append(slices.Clone(own[u]), outs[a.fail[k]]...)
		if k == 0 {
			outs[k] = own[u]
		}
		if uint32(k) < a.nDense {
			row := a.delta[k*256 : k*256+256]
			if k != 0 {
				copy(row, a.delta[int(a.fail[k])*256:int(a.fail[k])*256+256])
			}
			for _, ch := range children[u] {
				row[ch.c] = newID[ch.from]
			}
			continue
		}
		for _, ch := range children[u] {
			a.childByte = append(a.childByte, ch.c)
			a.childNext = append(a.childNext, newID[ch.from])
		}
		a.childStart = append(a.childStart, uint32(len(a.childByte)))
	}
	a.outStart = make([]uint32, n+1)
	for k, o := range outs {
		a.outStart[k+1] = a.outStart[k] + uint32(len(o))
		a.outs = append(a.outs, o...)
	}
	return a
}

func (a *acMatcher) memoryBytes() int {
	return a.m.MemoryBytes() + 4*(cap(a.delta)+cap(a.fail)+cap(a.childStart)+cap(a.childNext)+cap(a.outStart)+cap(a.outs)) + cap(a.childByte)
}

func (a *acMatcher) scan(buf []byte, hits *Hits) {
	hits.begin(len(a.m.pats))
	s := uint32(0)
	for i, c := range buf {
		c = lower[c]
		for {
			if s < a.nDense {
				s = a.delta[s<<8|uint32(c)]
				break
			}
			k := s - a.nDense
			lo, hi := a.childStart[k], a.childStart[k+1]
			t := uint32(0)
			for j := lo; j < hi; j++ {
				if a.childByte[j] == c {
					t = a.childNext[j]
					break
				}
			}
			if t != 0 {
				s = t
				break
			}
			s = a.fail[s]
		}
		if lo, hi := a.outStart[s], a.outStart[s+1]; lo != hi {
			for _, pi := range a.outs[lo:hi] {
				a.m.verify(buf, i+1-int(a.m.pats[pi].n), pi, hits)
			}
		}
	}
}
