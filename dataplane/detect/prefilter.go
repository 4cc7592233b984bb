package detect

import "weir/dataplane/detect/mpm"

// prefilterBuilder collects the fast patterns of one packet class and buffer;
// prefilter finds which occur in a buffer, with the multi-pattern matcher, so
// that a packet costs one pass over its bytes whatever the number of rules.
type prefilterBuilder struct{ b mpm.Builder }

func newPrefilterBuilder() *prefilterBuilder { return &prefilterBuilder{} }

// add files rule id under pattern. Patterns come from parsed rules, which bound
// them (1 to 4 KiB), so Add cannot fail here.
func (b *prefilterBuilder) add(pattern []byte, nocase bool, id int32) {
	if err := b.b.Add(pattern, nocase, id); err != nil {
		panic("detect: fast pattern: " + err.Error())
	}
}

func (b *prefilterBuilder) build() *prefilter { return &prefilter{m: b.b.Build()} }

type prefilter struct{ m *mpm.Matcher }

// scan appends to ids the rules whose fast pattern occurs in buf, using hits as
// scratch.
func (p *prefilter) scan(buf []byte, hits *mpm.Hits, ids []int32) []int32 {
	p.m.Scan(buf, hits)
	return append(ids, hits.IDs()...)
}
