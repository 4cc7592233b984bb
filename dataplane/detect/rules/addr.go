package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// maxGroupDepth bounds nesting of lists and variables, so hostile input cannot
// exhaust the stack.
const maxGroupDepth = 32

// Contains reports whether a is in the set. It does not allocate.
func (s *AddrSet) Contains(a netip.Addr) bool {
	if s.Any {
		return true
	}
	a = a.Unmap()
	if len(s.Include) > 0 {
		in := false
		for _, p := range s.Include {
			if p.Contains(a) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	for _, p := range s.Exclude {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// Contains reports whether p is in the set. It does not allocate.
func (s *PortSet) Contains(p uint16) bool {
	if s.Any {
		return true
	}
	if len(s.Include) > 0 {
		in := false
		for _, r := range s.Include {
			if r.Lo <= p && p <= r.Hi {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	for _, r := range s.Exclude {
		if r.Lo <= p && p <= r.Hi {
			return false
		}
	}
	return true
}

// group is a set under construction: everything (all) or the union of inc, minus
// the union of exc. It is the algebra of Suricata's address and port groups,
// restricted to what AddrSet and PortSet can hold.
type group[T any] struct {
	all      bool
	inc, exc []T
}

func (g group[T]) negate() (group[T], error) {
	switch {
	case len(g.exc) == 0 && g.all:
		return g, errors.New("negation of any matches nothing")
	case len(g.exc) == 0:
		return group[T]{all: true, exc: g.inc}, nil
	case g.all:
		return group[T]{inc: g.exc}, nil
	}
	return g, errors.New("cannot negate a group that both includes and excludes")
}

// combine is a list's value: the union of the positive entries (everything when
// there are none) minus the union of the negated ones. A union of groups with
// exclusions, (I1-E1) | (I2-E2), is (I1|I2) - (E1|E2) only when no Ek overlaps
// another entry's Ij; other unions are refused rather than approximated.
func combine[T any](pos, neg []group[T], overlaps func(a, b T) bool) (group[T], error) {
	var g group[T]
	switch {
	case len(pos) == 0:
		g.all = true
	case len(pos) == 1:
		g = group[T]{all: pos[0].all, inc: slices.Clip(pos[0].inc), exc: slices.Clip(pos[0].exc)}
	default:
		for k, p := range pos {
			for j, q := range pos {
				if j == k || len(p.exc) == 0 {
					continue
				}
				if q.all || slices.ContainsFunc(p.exc, func(e T) bool {
					return slices.ContainsFunc(q.inc, func(i T) bool { return overlaps(e, i) })
				}) {
					return g, errors.New("cannot combine a negated group with an overlapping entry in a list")
				}
			}
			g.all = g.all || p.all
			g.inc = append(g.inc, p.inc...)
			g.exc = append(g.exc, p.exc...)
		}
		if g.all {
			g.inc = nil
		}
	}
	for _, n := range neg {
		switch {
		case len(n.exc) == 0 && n.all:
			return g, errors.New("list excludes everything")
		case len(n.exc) == 0:
			g.exc = append(g.exc, n.inc...)
		case n.all && g.all && len(g.exc) == 0:
			// everything minus (everything minus E) is E.
			g = group[T]{inc: n.exc}
		default:
			return g, errors.New("cannot exclude a group that both includes and excludes")
		}
	}
	return g, nil
}

// splitList splits the inside of [...] at top-level commas.
func splitList(s string) ([]string, error) {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced ] in %q", s)
			}
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced [ in %q", s)
	}
	return append(parts, s[start:]), nil
}

// resolver parses address and port expressions, resolving variables (each once)
// and detecting cycles.
type resolver struct {
	vars  *Vars
	addrs map[string]group[netip.Prefix]
	ports map[string]group[PortRange]
	stack []string // variables being resolved, for cycle errors
}

func newResolver(v *Vars) *resolver {
	if v == nil {
		v = DefaultVars()
	}
	return &resolver{vars: v, addrs: map[string]group[netip.Prefix]{}, ports: map[string]group[PortRange]{}}
}

func (r *resolver) enter(name string) error {
	if i := slices.Index(r.stack, name); i >= 0 {
		return fmt.Errorf("variable cycle: $%s -> $%s", strings.Join(r.stack[i:], " -> $"), name)
	}
	if len(r.stack) >= maxGroupDepth {
		return errors.New("variables nested too deeply")
	}
	r.stack = append(r.stack, name)
	return nil
}

func (r *resolver) addrVar(name string) (group[netip.Prefix], error) {
	return lookupVar(r, name, r.addrs, r.vars.Addr, r.vars.Port, "a port variable, used as an address", (*resolver).addr)
}

func (r *resolver) portVar(name string) (group[PortRange], error) {
	return lookupVar(r, name, r.ports, r.vars.Port, r.vars.Addr, "an address variable, used as a port", (*resolver).port)
}

// lookupVar resolves variable name of defs with parse, once: cache keeps what it
// resolved. A name defined only in others is the other kind of variable.
func lookupVar[T any](r *resolver, name string, cache map[string]group[T], defs, others map[string]string,
	misuse string, parse func(*resolver, string, int) (group[T], error)) (group[T], error) {
	if g, ok := cache[name]; ok {
		return g, nil
	}
	val, ok := defs[name]
	if !ok {
		if _, other := others[name]; other {
			return group[T]{}, fmt.Errorf("$%s is %s", name, misuse)
		}
		return group[T]{}, fmt.Errorf("undefined variable $%s", name)
	}
	if err := r.enter(name); err != nil {
		return group[T]{}, err
	}
	g, err := parse(r, val, len(r.stack))
	r.stack = r.stack[:len(r.stack)-1]
	if err != nil {
		return g, err
	}
	cache[name] = g
	return g, nil
}

// addr parses one address expression.
func (r *resolver) addr(s string, depth int) (group[netip.Prefix], error) {
	return parseGroup(r, &addrSyntax, s, depth)
}

// addrSyntax and portSyntax are what address and port expressions have of their
// own; init sets them (their items refer back to the parsers that use them).
var (
	addrSyntax groupSyntax[netip.Prefix]
	portSyntax groupSyntax[PortRange]
)

func init() {
	addrSyntax = groupSyntax[netip.Prefix]{
		kind: "address", listKind: "address",
		item:    (*resolver).addr,
		lookup:  (*resolver).addrVar,
		overlap: prefixesOverlap,
		leaf: func(s string) (group[netip.Prefix], error) {
			if lo, hi, ok := strings.Cut(s, "-"); ok {
				ps, err := parseAddrRange(strings.TrimSpace(lo), strings.TrimSpace(hi))
				if err != nil {
					return group[netip.Prefix]{}, err
				}
				return group[netip.Prefix]{inc: ps}, nil
			}
			p, err := parsePrefix(s)
			if err != nil {
				return group[netip.Prefix]{}, err
			}
			return group[netip.Prefix]{inc: []netip.Prefix{p}}, nil
		},
	}
	portSyntax = groupSyntax[PortRange]{
		kind: "port", listKind: "ports",
		item:    (*resolver).port,
		lookup:  (*resolver).portVar,
		overlap: func(a, b PortRange) bool { return a.Lo <= b.Hi && b.Lo <= a.Hi },
		leaf: func(s string) (group[PortRange], error) {
			pr, err := parsePortRange(s)
			if err != nil {
				return group[PortRange]{}, err
			}
			return group[PortRange]{inc: []PortRange{pr}}, nil
		},
	}
}

// groupSyntax is what address and port expressions differ in; parseGroup reads
// what they share: negation, [lists] (of items, some negated), $VARS and any.
type groupSyntax[T any] struct {
	kind, listKind string // for errors: "address"/"port", and the combined list's "address"/"ports"
	item           func(r *resolver, s string, depth int) (group[T], error)
	lookup         func(r *resolver, name string) (group[T], error)
	leaf           func(s string) (group[T], error)
	overlap        func(a, b T) bool
}

func parseGroup[T any](r *resolver, syn *groupSyntax[T], s string, depth int) (group[T], error) {
	var zero group[T]
	s = strings.TrimSpace(s)
	if depth > maxGroupDepth {
		return zero, fmt.Errorf("%s groups nested too deeply", syn.kind)
	}
	switch {
	case s == "":
		return zero, fmt.Errorf("empty %s", syn.kind)
	case s[0] == '!':
		g, err := syn.item(r, s[1:], depth+1)
		if err != nil {
			return g, err
		}
		return g.negate()
	case s[0] == '[':
		if s[len(s)-1] != ']' {
			return zero, fmt.Errorf("%s list %q does not end in ]", syn.kind, s)
		}
		parts, err := splitList(s[1 : len(s)-1])
		if err != nil {
			return zero, err
		}
		var pos, neg []group[T]
		for _, p := range parts {
			p = strings.TrimSpace(p)
			negated := strings.HasPrefix(p, "!")
			if negated {
				p = p[1:]
			}
			g, err := syn.item(r, p, depth+1)
			if err != nil {
				return g, err
			}
			if negated {
				neg = append(neg, g)
			} else {
				pos = append(pos, g)
			}
		}
		g, err := combine(pos, neg, syn.overlap)
		if err != nil {
			return g, fmt.Errorf("%s %s: %w", syn.listKind, s, err)
		}
		return g, nil
	case s[0] == '$':
		return syn.lookup(r, s[1:])
	case strings.EqualFold(s, "any"):
		return group[T]{all: true}, nil
	}
	return syn.leaf(s)
}

// parseAddrRange turns the inclusive range lo-hi into the fewest prefixes that
// cover exactly it (at most 2*bits-2 of them).
func parseAddrRange(loText, hiText string) ([]netip.Prefix, error) {
	lo, err1 := netip.ParseAddr(loText)
	hi, err2 := netip.ParseAddr(hiText)
	if err1 != nil || err2 != nil || lo.Zone() != "" || hi.Zone() != "" {
		return nil, fmt.Errorf("invalid address range %s-%s", loText, hiText)
	}
	lo, hi = lo.Unmap(), hi.Unmap()
	if lo.BitLen() != hi.BitLen() || hi.Less(lo) {
		return nil, fmt.Errorf("invalid address range %s-%s", loText, hiText)
	}
	var out []netip.Prefix
	for {
		// The largest prefix that starts at lo and ends at or before hi.
		bits := lo.BitLen()
		for bits > 0 {
			p := netip.PrefixFrom(lo, bits-1)
			if p.Masked().Addr() != lo || hi.Less(lastAddr(p)) {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(lo, bits)
		out = append(out, p)
		end := lastAddr(p)
		if end == hi {
			return out, nil
		}
		lo = end.Next()
	}
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 96
	}
	for i := off + p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// parsePrefix parses an address, CIDR or address/netmask.
func parsePrefix(s string) (netip.Prefix, error) {
	addrText, bitsText, hasBits := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addrText)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid address %q", s)
	}
	a = a.Unmap()
	if !hasBits {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	bits, err := strconv.Atoi(bitsText)
	if err != nil {
		// A dotted netmask, 10.0.0.0/255.0.0.0.
		m, merr := netip.ParseAddr(bitsText)
		if merr != nil || !a.Is4() || !m.Is4() {
			return netip.Prefix{}, fmt.Errorf("invalid prefix length in %q", s)
		}
		b := m.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		ones := 0
		for v&0x80000000 != 0 {
			v <<= 1
			ones++
		}
		if v != 0 {
			return netip.Prefix{}, fmt.Errorf("netmask in %q is not contiguous", s)
		}
		bits = ones
	}
	if bits < 0 || bits > a.BitLen() || len(bitsText) > 3 && err == nil {
		return netip.Prefix{}, fmt.Errorf("invalid prefix length in %q", s)
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// port parses one port expression.
func (r *resolver) port(s string, depth int) (group[PortRange], error) {
	return parseGroup(r, &portSyntax, s, depth)
}

// parsePortRange parses N, a:b, a: or :b.
func parsePortRange(s string) (PortRange, error) {
	loText, hiText, isRange := strings.Cut(s, ":")
	num := func(t string, dflt uint16) (uint16, error) {
		t = strings.TrimSpace(t)
		if t == "" && isRange {
			return dflt, nil
		}
		n, err := strconv.ParseUint(t, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid port %q", s)
		}
		return uint16(n), nil
	}
	lo, err := num(loText, 0)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{lo, lo}, nil
	}
	if strings.TrimSpace(loText) == "" && strings.TrimSpace(hiText) == "" {
		return PortRange{}, fmt.Errorf("invalid port range %q", s)
	}
	hi, err := num(hiText, 65535)
	if err != nil {
		return PortRange{}, err
	}
	if lo > hi {
		return PortRange{}, fmt.Errorf("port range %q: %d is above %d", s, lo, hi)
	}
	return PortRange{lo, hi}, nil
}

func prefixesOverlap(a, b netip.Prefix) bool { return a.Overlaps(b) }

func prefixCovers(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// addrSet turns a group into an AddrSet, rejecting a group that matches nothing.
func (r *resolver) addrSet(s string) (AddrSet, error) {
	g, err := r.addr(s, 0)
	if err != nil {
		return AddrSet{}, err
	}
	if g.all && len(g.exc) == 0 {
		return AddrSet{Any: true}, nil
	}
	if !g.all && allCovered(g.inc, g.exc, prefixCovers) {
		return AddrSet{}, fmt.Errorf("address %s matches nothing", s)
	}
	if g.all && slices.ContainsFunc(g.exc, func(p netip.Prefix) bool { return p.Bits() == 0 && p.Addr().Is6() }) &&
		slices.ContainsFunc(g.exc, func(p netip.Prefix) bool { return p.Bits() == 0 && p.Addr().Is4() }) {
		return AddrSet{}, fmt.Errorf("address %s matches nothing", s)
	}
	return AddrSet{Include: slices.Clone(g.inc), Exclude: slices.Clone(g.exc)}, nil
}

// portSet turns a group into a PortSet, rejecting a group that matches nothing.
func (r *resolver) portSet(s string) (PortSet, error) {
	g, err := r.port(s, 0)
	if err != nil {
		return PortSet{}, err
	}
	if g.all && len(g.exc) == 0 {
		return PortSet{Any: true}, nil
	}
	inc := g.inc
	if g.all {
		inc = []PortRange{{0, 65535}}
	}
	if allCovered(inc, g.exc, func(o, i PortRange) bool { return o.Lo <= i.Lo && i.Hi <= o.Hi }) {
		return PortSet{}, fmt.Errorf("ports %s match nothing", s)
	}
	return PortSet{Include: slices.Clone(g.inc), Exclude: slices.Clone(g.exc)}, nil
}

// allCovered reports whether every element of inc lies within one element of exc
// (a cheap, conservative emptiness test).
func allCovered[T any](inc, exc []T, covers func(outer, inner T) bool) bool {
	for _, i := range inc {
		if !slices.ContainsFunc(exc, func(e T) bool { return covers(e, i) }) {
			return false
		}
	}
	return len(inc) > 0
}
