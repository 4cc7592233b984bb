package detect

// prefilterBuilder collects fast patterns; prefilter finds which occur in a
// buffer. (A stand-in until the multi-pattern matcher lands: it checks each
// pattern in turn.)
type prefilterBuilder struct {
	pats []fpat
}

type fpat struct {
	pattern []byte
	folded  bool
	id      int32
}

func newPrefilterBuilder() *prefilterBuilder { return &prefilterBuilder{} }

func (b *prefilterBuilder) add(pattern []byte, nocase bool, id int32) {
	p := fpat{pattern: pattern, folded: nocase, id: id}
	if nocase {
		p.pattern = lower(pattern)
	}
	b.pats = append(b.pats, p)
}

func (b *prefilterBuilder) build() *prefilter { return &prefilter{pats: b.pats} }

type prefilter struct {
	pats []fpat
}

// scan appends to ids the ids of the patterns found in buf.
func (p *prefilter) scan(buf []byte, ids []int32) []int32 {
	for i := range p.pats {
		if index(buf, p.pats[i].pattern, p.pats[i].folded) >= 0 {
			ids = append(ids, p.pats[i].id)
		}
	}
	return ids
}

func lower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}
