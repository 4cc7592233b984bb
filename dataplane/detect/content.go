package detect

import (
	"bytes"
	"regexp"
	"sync"

	"weir/dataplane/detect/rules"
)

// cmatch is a content or pcre compiled for inspection.
type cmatch struct {
	pattern  []byte // nocase: lower-cased
	folded   bool   // nocase
	negated  bool
	endsWith bool // must end where the buffer ends
	dataAt   bool // isdataat: offset (relative or not) is a position that must hold data
	re       *regexp.Regexp
	relative bool // distance/within, or pcre's R: from the end of the previous match
	// Window: absolute offset/depth (hasDepth), or relative distance/within.
	offset, depth, distance, within int
	hasDepth, hasWithin             bool
}

// chain is the matches of one buffer, in rule order.
type chain struct {
	buffer rules.Buffer
	ms     []cmatch
	// relAfter[i] says whether a match after i is relative: only then is it worth
	// trying the later occurrences of match i (backtracking), as Suricata does.
	relAfter []bool
	// needPos says whether a pcre must report where it matched (a relative match
	// follows it); otherwise it runs without allocating.
	needPos []bool
}

func compileChain(buffer rules.Buffer, ms []rules.Match) chain {
	c := chain{buffer: buffer}
	for _, m := range ms {
		cm := cmatch{negated: m.Negated}
		switch m.Kind {
		case rules.MatchContent:
			cm.pattern, cm.folded, cm.endsWith = m.Pattern, m.Nocase, m.EndsWith
			if m.Nocase {
				cm.pattern = lowerASCII(m.Pattern) // nocase folds ASCII letters only, as Suricata
			}
			cm.relative = m.HasDistance || m.HasWithin
			cm.offset, cm.depth, cm.hasDepth = m.Offset, m.Depth, m.HasDepth
			cm.distance, cm.within, cm.hasWithin = m.Distance, m.Within, m.HasWithin
		case rules.MatchPCRE:
			cm.re, cm.relative = m.Regexp, m.Relative
		case rules.MatchIsDataAt:
			cm.dataAt, cm.offset, cm.relative = true, m.Offset, m.Relative
		}
		c.ms = append(c.ms, cm)
	}
	c.relAfter = make([]bool, len(c.ms))
	c.needPos = make([]bool, len(c.ms))
	rel := false
	for i := len(c.ms) - 1; i >= 0; i-- {
		c.relAfter[i] = rel
		c.needPos[i] = rel
		rel = rel || c.ms[i].relative
	}
	return c
}

// maxSteps bounds the occurrences tried while backtracking over one chain, as
// Suricata bounds its inspection recursion: a crafted payload cannot make a rule
// cost more than this.
const maxSteps = 3000

// view is a buffer to inspect: for the TCP stream, a window of it that starts at
// stream offset base, of which the bytes from fresh on were not inspected before.
type view struct {
	buf   []byte
	base  int // stream offset of buf[0]; 0 for packet buffers
	fresh int // a match must end after buf[fresh] to be new
}

// matchChain reports whether the chain matches v, with at least one positive
// match ending in v's fresh bytes.
func matchChain(c *chain, v *view) bool {
	steps := 0
	return matchFrom(c, v, 0, 0, -1, &steps)
}

// matchFrom matches c.ms[i:] with the previous match ending at prevEnd (an index
// into v.buf) and the furthest positive match so far ending at maxEnd.
func matchFrom(c *chain, v *view, i, prevEnd, maxEnd int, steps *int) bool {
	if i == len(c.ms) {
		if maxEnd < 0 {
			// Only negated matches: new when the buffer has new bytes. An empty
			// payload matches no content rule, as in Suricata.
			return len(v.buf) > v.fresh
		}
		return maxEnd > v.fresh
	}
	m := &c.ms[i]
	if m.re != nil {
		return matchPCRE(c, v, i, prevEnd, maxEnd, steps)
	}
	if m.dataAt {
		// Suricata: absolute, byte N exists; relative, N bytes follow the
		// previous match. Before the view, the stream had data.
		pos := m.offset - v.base
		if m.relative {
			pos = prevEnd + m.offset - 1
		}
		if (pos < len(v.buf)) == m.negated {
			return false
		}
		return matchFrom(c, v, i+1, prevEnd, maxEnd, steps)
	}
	lo, hi := window(m, v, prevEnd)
	if m.endsWith {
		// One place it can be: the buffer's end.
		at := len(v.buf) - len(m.pattern)
		found := at >= lo && at >= 0 && len(v.buf) <= hi && equalAt(v.buf[at:], m.pattern, m.folded)
		switch {
		case m.negated && found, !m.negated && !found:
			return false
		case m.negated:
			return matchFrom(c, v, i+1, prevEnd, maxEnd, steps)
		}
		return matchFrom(c, v, i+1, len(v.buf), len(v.buf), steps)
	}
	if m.negated && !m.relative && m.hasDepth && m.offset < v.base {
		// Its window starts before this view of the stream: whether the content
		// was there is not known here, so the rule cannot match.
		return false
	}
	if m.negated {
		if lo < hi && hi-lo >= len(m.pattern) && index(v.buf[lo:hi], m.pattern, m.folded) >= 0 {
			return false
		}
		return matchFrom(c, v, i+1, prevEnd, maxEnd, steps)
	}
	for lo < hi && hi-lo >= len(m.pattern) {
		*steps++
		if *steps > maxSteps {
			return false
		}
		at := index(v.buf[lo:hi], m.pattern, m.folded)
		if at < 0 {
			return false
		}
		end := lo + at + len(m.pattern)
		if matchFrom(c, v, i+1, end, max(maxEnd, end), steps) {
			return true
		}
		if !c.relAfter[i] && end > v.fresh {
			return false // a later occurrence changes nothing for what follows
		}
		lo += at + 1
	}
	return false
}

// window is the part of v.buf that match m may occupy, [lo, hi).
func window(m *cmatch, v *view, prevEnd int) (lo, hi int) {
	hi = len(v.buf)
	if m.relative {
		lo = prevEnd + m.distance
		if m.hasWithin {
			hi = min(hi, prevEnd+m.distance+m.within)
		}
	} else {
		// offset and depth count from the start of the buffer: of the stream, for
		// stream inspection.
		lo = m.offset - v.base
		if m.hasDepth {
			hi = min(hi, m.offset+m.depth-v.base)
		}
	}
	return max(lo, 0), hi
}

func matchPCRE(c *chain, v *view, i, prevEnd, maxEnd int, steps *int) bool {
	m := &c.ms[i]
	lo := 0
	if m.relative {
		lo = min(prevEnd, len(v.buf))
	}
	// The regexp reads bytes of 0x80 and above as one character each, as PCRE
	// does (rules.PCREInput); the copy that takes comes from a pool.
	b := v.buf[lo:]
	if hasHighByte(b) {
		p := pcreInputs.Get().(*[]byte)
		*p = rules.PCREInput(*p, b)
		b = *p
		defer pcreInputs.Put(p)
	}
	if m.negated {
		if m.re.Match(b) {
			return false
		}
		return matchFrom(c, v, i+1, prevEnd, maxEnd, steps)
	}
	if !c.needPos[i] && v.fresh == 0 {
		return m.re.Match(b) && matchFrom(c, v, i+1, prevEnd, max(maxEnd, len(v.buf)), steps)
	}
	// Positions cost an allocation (regexp's FindIndex): ask first, without
	// allocating, whether there is a match at all, which is rare.
	if !m.re.Match(b) {
		return false
	}
	// Try the matches in turn: the leftmost may lie in bytes inspected before
	// (the stream's kept tail) where a later one is new, or a relative match
	// after it may need a later one. They are found in one pass over b, so that
	// anchors (^, \b) keep their meaning: cutting b at a later start would move
	// them.
	for _, loc := range m.re.FindAllIndex(b, maxPCREMatches) {
		*steps++
		if *steps > maxSteps {
			return false
		}
		end := lo + rules.PCREOffset(b, loc[1])
		if matchFrom(c, v, i+1, end, max(maxEnd, end), steps) {
			return true
		}
	}
	return false
}

// maxPCREMatches bounds the matches of one pcre tried in one buffer.
const maxPCREMatches = 64

// pcreInputs holds the buffers PCREInput copies into, so that matching a pcre
// against binary payload allocates nothing once warm.
var pcreInputs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func hasHighByte(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// index is bytes.Index, or for folded (nocase) patterns, already lower case, an
// ASCII case-insensitive search.
func index(s, pattern []byte, folded bool) int {
	if !folded {
		return bytes.Index(s, pattern)
	}
	if len(pattern) == 0 {
		return 0
	}
	first := pattern[0]
	upper := first
	if 'a' <= first && first <= 'z' {
		upper = first - 'a' + 'A'
	}
	for i := 0; i+len(pattern) <= len(s); i++ {
		// Skip to the next byte that can start the pattern.
		j := bytes.IndexByte(s[i:len(s)-len(pattern)+1], first)
		if upper != first {
			if k := bytes.IndexByte(s[i:len(s)-len(pattern)+1], upper); k >= 0 && (j < 0 || k < j) {
				j = k
			}
		}
		if j < 0 {
			return -1
		}
		i += j
		if equalFold(s[i:i+len(pattern)], pattern) {
			return i
		}
	}
	return -1
}

// equalAt compares s with pattern (lower case when folded), of the same length.
func equalAt(s, pattern []byte, folded bool) bool {
	if folded {
		return equalFold(s, pattern)
	}
	return bytes.Equal(s, pattern)
}

// equalFold compares s with the lower-case pattern p, ASCII case-insensitively.
func equalFold(s, p []byte) bool {
	for i, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != p[i] {
			return false
		}
	}
	return true
}

// lowerASCII is b with ASCII letters lower-cased and every other byte as it is
// (bytes.ToLower would decode UTF-8 and change bytes >= 0x80).
func lowerASCII(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}
