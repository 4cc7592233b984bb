package mpm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"weir/dataplane/detect/rulegen"
)

type testPattern struct {
	text   string
	nocase bool
	id     int32
}

// naive is the reference: the sorted ids whose pattern occurs in buf.
func naive(pats []testPattern, buf []byte) []int32 {
	folded := bytes.Clone(buf)
	for i, c := range folded {
		folded[i] = lower[c]
	}
	var out []int32
	for _, p := range pats {
		in, pat := buf, []byte(p.text)
		if p.nocase {
			in = folded
			pat = bytes.Clone(pat)
			for i, c := range pat {
				pat[i] = lower[c]
			}
		}
		if bytes.Contains(in, pat) {
			out = append(out, p.id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func build(t testing.TB, pats []testPattern) *Matcher {
	t.Helper()
	var b Builder
	for _, p := range pats {
		if err := b.Add([]byte(p.text), p.nocase, p.id); err != nil {
			t.Fatalf("Add(%q): %v", p.text, err)
		}
	}
	return b.Build()
}

// check scans buf and compares with the reference; it also checks that each end
// offset reported is the end of an occurrence.
func check(t testing.TB, m *Matcher, pats []testPattern, buf []byte, hits *Hits) {
	t.Helper()
	m.Scan(buf, hits)
	got := slices.Clone(hits.IDs())
	slices.Sort(got)
	got = slices.Compact(got) // an id added with two patterns that both occur comes twice
	if want := naive(pats, buf); !slices.Equal(got, want) {
		t.Fatalf("buf %q: got ids %v, want %v", buf, got, want)
	}
	byID := map[int32][]testPattern{}
	for _, p := range pats {
		byID[p.id] = append(byID[p.id], p)
	}
	for i, id := range hits.IDs() {
		end := int(hits.Ends()[i])
		ok := false
		for _, p := range byID[id] {
			if end >= len(p.text) && end <= len(buf) && equalFold(buf[end-len(p.text):end], []byte(p.text), p.nocase) {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("buf %q: id %d reported ending at %d, where none of its patterns ends", buf, id, end)
		}
	}
}

func equalFold(a, b []byte, nocase bool) bool {
	if !nocase {
		return bytes.Equal(a, b)
	}
	for i := range a {
		if lower[a[i]] != lower[b[i]] {
			return false
		}
	}
	return true
}

func TestScanTable(t *testing.T) {
	tests := []struct {
		name string
		pats []testPattern
		bufs []string
	}{
		{"overlapping", []testPattern{{"abcd", false, 1}, {"bcde", false, 2}, {"cdef", false, 3}}, []string{"abcdef", "xbcdefx", "abcde", "ab", "", "abc"}},
		{"prefixes and suffixes", []testPattern{{"he", false, 1}, {"hers", false, 2}, {"his", false, 3}, {"she", false, 4}, {"hershey", false, 5}, {"ers", false, 6}}, []string{"ushers", "hershey", "this", "h", "hershe"}},
		{"nocase and case-sensitive same bytes", []testPattern{{"Admin", false, 1}, {"Admin", true, 2}, {"admin", false, 3}, {"ADMIN", true, 4}}, []string{"ADMIN", "admin", "Admin", "aDmIn", "Admi"}},
		{"nocase changes only letters", []testPattern{{"a@b[", true, 1}, {"a`b{", true, 2}, {"\x00abc", true, 3}, {" abc", true, 4}}, []string{"A@B[", "A`B{", "a@b{", " ABC", "\x00ABC", "\x20abc"}},
		{"one byte", []testPattern{{"x", false, 1}, {"Y", true, 2}, {"\x00", false, 3}, {"\xff", true, 4}, {"y", false, 5}}, []string{"x", "y", "Y", "\x00", "\xff", "X", "abc"}},
		{"two and three bytes", []testPattern{{"ab", false, 1}, {"AB", false, 2}, {"aBc", true, 3}, {"\x00\x01", false, 4}, {" \x01", false, 5}}, []string{"ab", "AB", "ABC", "xaB", "\x00\x01", " \x01", "\x20\x21"}},
		{"at start and end", []testPattern{{"GET ", false, 1}, {"\r\n\r\n", false, 2}, {"HTTP/1.1", true, 3}}, []string{"GET / HTTP/1.1\r\n\r\n", "GET ", "\r\n\r\n", "http/1.1", "GET"}},
		{"same pattern several ids", []testPattern{{"evil", false, 1}, {"evil", false, 2}, {"evil", false, 2}, {"EVIL", true, 3}}, []string{"evil", "Evil", "xxevilxx"}},
		{"id with several patterns", []testPattern{{"foo", false, 7}, {"barbaz", false, 7}}, []string{"foo", "barbaz", "xx"}},
		{"binary", []testPattern{{"\xde\xad\xbe\xef", false, 1}, {"\xfe\xed\xfa\xce\x00", false, 2}, {"\x00\x00\x00\x00", false, 3}}, []string{"\x00\xde\xad\xbe\xef\x00", "\xfe\xed\xfa\xce\x00", "\x00\x00\x00", "\x00\x00\x00\x00\x00", "\x20\x20\x20\x20"}},
		{"repeated", []testPattern{{"aaaa", false, 1}, {"aaaaaaaa", false, 2}, {"aaa", false, 3}}, []string{"aaaa", "aaaaaaa", "aaaaaaaa", "aa"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := build(t, tc.pats)
			var hits Hits
			for _, buf := range tc.bufs {
				check(t, m, tc.pats, []byte(buf), &hits)
			}
		})
	}
}

func TestAddErrors(t *testing.T) {
	var b Builder
	for _, tc := range []struct {
		pat  []byte
		want error
	}{
		{nil, ErrEmptyPattern},
		{[]byte{}, ErrEmptyPattern},
		{make([]byte, MaxPatternLen+1), ErrPatternTooLong},
		{make([]byte, MaxPatternLen), nil},
		{[]byte("x"), nil},
	} {
		if err := b.Add(tc.pat, false, 1); !errors.Is(err, tc.want) {
			t.Errorf("Add(%d bytes) = %v, want %v", len(tc.pat), err, tc.want)
		}
	}
	m := b.Build()
	if m.Len() != 2 {
		t.Errorf("Len = %d, want 2", m.Len())
	}
	var hits Hits
	m.Scan(make([]byte, MaxPatternLen), &hits)
	if got := hits.IDs(); !slices.Equal(got, []int32{1}) {
		t.Errorf("4096 zero bytes: ids %v, want [1]", got)
	}
}

func TestEmptyMatcher(t *testing.T) {
	var b Builder
	m := b.Build()
	var hits Hits
	m.Scan([]byte("anything"), &hits)
	if len(hits.IDs()) != 0 || m.Len() != 0 {
		t.Errorf("empty matcher found %v, Len %d", hits.IDs(), m.Len())
	}
}

// randomPatterns draws patterns from a small alphabet so that they overlap, share
// prefixes and suffixes and occur in random buffers.
func randomPatterns(r *rand.Rand, n int, alphabet string) []testPattern {
	pats := make([]testPattern, n)
	for i := range pats {
		l := 1 + r.Intn(8)
		if r.Intn(4) == 0 {
			l = 1 + r.Intn(3)
		}
		b := make([]byte, l)
		for j := range b {
			b[j] = alphabet[r.Intn(len(alphabet))]
		}
		pats[i] = testPattern{string(b), r.Intn(2) == 0, int32(r.Intn(n + 1))}
	}
	return pats
}

func TestScanRandom(t *testing.T) {
	for _, alphabet := range []string{"ab", "aAbB", "abcdAB\x00 ", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\x00\x01\xff@`[{"} {
		for _, n := range []int{1, 5, 50, 500} {
			r := rand.New(rand.NewSource(int64(n) * int64(len(alphabet))))
			pats := randomPatterns(r, n, alphabet)
			m := build(t, pats)
			var hits Hits
			for range 200 {
				buf := make([]byte, r.Intn(64))
				for j := range buf {
					buf[j] = alphabet[r.Intn(len(alphabet))]
				}
				check(t, m, pats, buf, &hits)
			}
		}
	}
}

func TestScanGenerated(t *testing.T) {
	raw := rulegen.GeneratePatterns(3000, 1)
	pats := make([]testPattern, len(raw))
	for i, p := range raw {
		pats[i] = testPattern{string(p), i%3 == 0, int32(i)}
	}
	m := build(t, pats)
	var hits Hits
	found := 0
	for _, buf := range rulegen.Traffic(300, 2) {
		check(t, m, pats, buf, &hits)
		found += len(hits.IDs())
	}
	// Plant patterns at the start, middle and end of payloads.
	for i, buf := range rulegen.Traffic(100, 3) {
		p := raw[i*7]
		buf = append(append(append(slices.Clone(p), buf...), p...), raw[i*11]...)
		check(t, m, pats, buf, &hits)
		found += len(hits.IDs())
	}
	if found < 300 {
		t.Errorf("only %d hits: the test traffic does not exercise verification", found)
	}
}

func TestScanAllocs(t *testing.T) {
	raw := rulegen.GeneratePatterns(10000, 1)
	var b Builder
	for i, p := range raw {
		if err := b.Add(p, i%3 == 0, int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	m := b.Build()
	traffic := rulegen.Traffic(200, 2)
	var hits Hits
	for _, buf := range traffic { // grow hits to its working size
		m.Scan(buf, &hits)
	}
	i := 0
	if allocs := testing.AllocsPerRun(1000, func() {
		m.Scan(traffic[i%len(traffic)], &hits)
		i++
	}); allocs != 0 {
		t.Errorf("Scan allocates %.1f times per run, want 0", allocs)
	}
}

func TestConcurrentScan(t *testing.T) {
	raw := rulegen.GeneratePatterns(2000, 4)
	pats := make([]testPattern, len(raw))
	for i, p := range raw {
		pats[i] = testPattern{string(p), i%2 == 0, int32(i)}
	}
	m := build(t, pats)
	traffic := rulegen.Traffic(100, 5)
	want := make([][]int32, len(traffic))
	for i, buf := range traffic {
		want[i] = naive(pats, buf)
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			var hits Hits
			for k := range 3 * len(traffic) {
				i := (k + g*17) % len(traffic)
				m.Scan(traffic[i], &hits)
				got := slices.Clone(hits.IDs())
				slices.Sort(got)
				got = slices.Compact(got)
				if !slices.Equal(got, want[i]) {
					errs <- fmt.Errorf("goroutine %d payload %d: got %v, want %v", g, i, got, want[i])
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestHitsGenerationWrap(t *testing.T) {
	m := build(t, []testPattern{{"abcd", false, 1}})
	hits := Hits{gen: 1<<32 - 2}
	for range 4 {
		m.Scan([]byte("xxabcdxx"), &hits)
		if !slices.Equal(hits.IDs(), []int32{1}) {
			t.Fatalf("gen %d: ids %v, want [1]", hits.gen, hits.IDs())
		}
	}
}

// FuzzScan compares Scan with the reference on patterns and a buffer from the
// fuzzer: pats is a list of patterns, each a length byte (1..16 after mod) and
// the bytes, and nocase's bits say which are nocase.
func FuzzScan(f *testing.F) {
	f.Add([]byte("\x04abcd\x02bc\x01a"), []byte("xxABCDabcd"), uint64(5))
	f.Add([]byte("\x03\x00\x01\x02\x05hello"), []byte("\x00\x01\x02 HELLO"), uint64(2))
	f.Add([]byte("\x04GET \x08HTTP/1.1"), []byte("GET / HTTP/1.1\r\n"), uint64(0))
	f.Fuzz(func(t *testing.T, packed []byte, buf []byte, nocase uint64) {
		var pats []testPattern
		for len(packed) > 0 && len(pats) < 64 {
			l := int(packed[0])%16 + 1
			packed = packed[1:]
			l = min(l, len(packed))
			if l == 0 {
				break
			}
			pats = append(pats, testPattern{string(packed[:l]), nocase>>(len(pats)%64)&1 == 1, int32(len(pats) % 20)})
			packed = packed[l:]
		}
		m := build(t, pats)
		var hits Hits
		check(t, m, pats, buf, &hits)
		check(t, m, pats, buf, &hits) // a reused Hits gives the same answer
	})
}

// TestACCandidate checks the Aho-Corasick candidate of the comparison benchmark
// against the reference, so that its figures are for a correct matcher.
func TestACCandidate(t *testing.T) {
	for _, alphabet := range []string{"ab", "abcdAB\x00 "} {
		r := rand.New(rand.NewSource(int64(len(alphabet))))
		pats := randomPatterns(r, 300, alphabet)
		a := buildAC(build(t, pats))
		var hits Hits
		for range 300 {
			buf := make([]byte, r.Intn(64))
			for j := range buf {
				buf[j] = alphabet[r.Intn(len(alphabet))]
			}
			a.scan(buf, &hits)
			got := slices.Clone(hits.IDs())
			slices.Sort(got)
			if want := naive(pats, buf); !slices.Equal(slices.Compact(got), want) {
				t.Fatalf("buf %q: got %v, want %v", buf, got, want)
			}
		}
	}
}

// TestFilterSelectivity guards how the Builder picks windows: on mixed traffic
// with 10,000 rulegen patterns, few positions may pass the filters, and fewer
// still reach a pattern filed under the very window there (each costs a
// comparison). Picking the first window of each pattern and one Bloom bit gave
// 0.065 and 0.12; byte frequencies and bucket load alone 0.03 and 0.03.
func TestFilterSelectivity(t *testing.T) {
	m := benchBuilder(t, 10000).Build()
	traffic, total := benchTraffic()
	passed, compared := 0, 0
	for _, tb := range []*windowTable{&m.long, &m.short} {
		for _, buf := range traffic {
			for i := 0; i+tb.width <= len(buf); i++ {
				g := window(buf[i:], tb.width)
				x := g * hashMul
				if word, bits := probe(x, tb.wordShift); tb.filter[word]&bits != bits {
					continue
				}
				passed++
				for _, e := range tb.entries[tb.start[x>>tb.bucketShift]:tb.start[x>>tb.bucketShift+1]] {
					if e.gram == g {
						compared++
					}
				}
			}
		}
	}
	t.Logf("%.4f of positions pass the filters, %.4f comparisons per byte", float64(passed)/float64(total), float64(compared)/float64(total))
	if r := float64(passed) / float64(total); r > 0.03 {
		t.Errorf("%.3f of positions pass the filters, want at most 0.03", r)
	}
	if r := float64(compared) / float64(total); r > 0.02 {
		t.Errorf("%.3f comparisons per byte, want at most 0.02", r)
	}
}
