package stream

import (
	"bytes"
	"fmt"
	"testing"
)

// seg is one segment of a test stream; seq is relative to the test's ISN.
type seg struct {
	seq           uint32
	syn, fin, rst bool
	data          string
}

// result is what a test expects of a segment's View: the new bytes, the stream
// offset where they start, and the status.
type result struct {
	fresh  string
	offset uint64
	status Status
}

func newBytes(v View) (string, uint64) {
	return string(v.Buf[v.New:]), v.Offset + uint64(v.New)
}

func TestSegment(t *testing.T) {
	tests := []struct {
		name  string
		depth uint32
		segs  []seg
		want  []result
	}{
		{
			name: "in order after SYN",
			segs: []seg{{seq: 0, syn: true}, {seq: 1, data: "abc"}, {seq: 4, data: "defg"}},
			want: []result{{"", 0, Empty}, {"abc", 0, InOrder}, {"defg", 3, InOrder}},
		},
		{
			name: "SYN with data",
			segs: []seg{{seq: 0, syn: true, data: "xy"}, {seq: 3, data: "z"}},
			want: []result{{"xy", 0, InOrder}, {"z", 2, InOrder}},
		},
		{
			name: "midstream pickup",
			segs: []seg{{seq: 500, data: "mid"}, {seq: 503, data: "dle"}},
			want: []result{{"mid", 0, InOrder}, {"dle", 3, InOrder}},
		},
		{
			name: "full retransmission",
			segs: []seg{{seq: 0, syn: true}, {seq: 1, data: "abcd"}, {seq: 1, data: "abcd"}, {seq: 3, data: "cd"}, {seq: 5, data: "e"}},
			want: []result{{"", 0, Empty}, {"abcd", 0, InOrder}, {"", 0, Retransmit}, {"", 0, Retransmit}, {"e", 4, InOrder}},
		},
		{
			name: "partial overlap gives only new bytes",
			segs: []seg{{seq: 0, syn: true}, {seq: 1, data: "abcd"}, {seq: 3, data: "cdef"}},
			want: []result{{"", 0, Empty}, {"abcd", 0, InOrder}, {"ef", 4, Overlap}},
		},
		{
			name: "out of order then fill",
			segs: []seg{{seq: 0, syn: true}, {seq: 1, data: "ab"}, {seq: 5, data: "ef"}, {seq: 3, data: "cd"}, {seq: 7, data: "gh"}},
			want: []result{{"", 0, Empty}, {"ab", 0, InOrder}, {"ef", 4, OutOfOrder}, {"cd", 2, InOrder}, {"gh", 6, InOrder}},
		},
		{
			name: "a fill running into the pending range is inspected whole",
			segs: []seg{{seq: 0, syn: true}, {seq: 5, data: "ef"}, {seq: 1, data: "abcdeX"}, {seq: 7, data: "g"}},
			want: []result{{"", 0, Empty}, {"ef", 4, OutOfOrder}, {"abcdeX", 0, InOrder}, {"g", 6, InOrder}},
		},
		{
			name: "a fill running past the pending range",
			segs: []seg{{seq: 0, syn: true}, {seq: 3, data: "cd"}, {seq: 1, data: "abcdef"}, {seq: 7, data: "g"}},
			want: []result{{"", 0, Empty}, {"cd", 2, OutOfOrder}, {"abcdef", 0, InOrder}, {"g", 6, InOrder}},
		},
		{
			name: "two touching out-of-order ranges merge",
			segs: []seg{{seq: 0, syn: true}, {seq: 3, data: "cd"}, {seq: 5, data: "ef"}, {seq: 1, data: "ab"}, {seq: 7, data: "g"}},
			want: []result{{"", 0, Empty}, {"cd", 2, OutOfOrder}, {"ef", 4, OutOfOrder}, {"ab", 0, InOrder}, {"g", 6, InOrder}},
		},
		{
			name: "the nearer of two separate ranges is kept",
			segs: []seg{{seq: 0, syn: true}, {seq: 7, data: "gh"}, {seq: 3, data: "cd"}, {seq: 1, data: "ab"}, {seq: 5, data: "ef"}},
			want: []result{{"", 0, Empty}, {"gh", 6, OutOfOrder}, {"cd", 2, OutOfOrder}, {"ab", 0, InOrder}, {"ef", 4, InOrder}},
		},
		{
			name: "a gap never filled is given up on",
			segs: []seg{{seq: 0, syn: true}, {seq: 1, data: "a"},
				{seq: 3, data: "c"}, {seq: 4, data: "d"}, {seq: 5, data: "e"}, {seq: 6, data: "f"},
				{seq: 7, data: "g"}, {seq: 8, data: "h"}, {seq: 9, data: "i"}, {seq: 10, data: "j"},
				{seq: 11, data: "k"}, {seq: 2, data: "b"}, {seq: 2, data: "bc"}, {seq: 3, data: "c"}},
			want: []result{{"", 0, Empty}, {"a", 0, InOrder},
				{"c", 2, OutOfOrder}, {"d", 3, OutOfOrder}, {"e", 4, OutOfOrder}, {"f", 5, OutOfOrder},
				{"g", 6, OutOfOrder}, {"h", 7, OutOfOrder}, {"i", 8, OutOfOrder}, {"j", 9, Gap},
				{"k", 10, InOrder}, {"b", 1, OutOfOrder}, {"bc", 1, OutOfOrder}, {"", 0, Retransmit}},
		},
		{
			name: "a segment from the skipped gap into new data is inspected whole",
			segs: []seg{{seq: 0, syn: true}, {seq: 1, data: "a"},
				{seq: 3, data: "c"}, {seq: 4, data: "d"}, {seq: 5, data: "e"}, {seq: 6, data: "f"},
				{seq: 7, data: "g"}, {seq: 8, data: "h"}, {seq: 9, data: "i"}, {seq: 10, data: "j"},
				{seq: 2, data: "bcdefghijkl"}, {seq: 13, data: "m"}},
			want: []result{{"", 0, Empty}, {"a", 0, InOrder},
				{"c", 2, OutOfOrder}, {"d", 3, OutOfOrder}, {"e", 4, OutOfOrder}, {"f", 5, OutOfOrder},
				{"g", 6, OutOfOrder}, {"h", 7, OutOfOrder}, {"i", 8, OutOfOrder}, {"j", 9, Gap},
				{"bcdefghijkl", 1, Overlap}, {"m", 12, InOrder}},
		},
		{
			name: "in-order progress resets the stall count",
			segs: []seg{{seq: 0, syn: true},
				{seq: 2, data: "b"}, {seq: 2, data: "b"}, {seq: 2, data: "b"}, {seq: 2, data: "b"}, {seq: 2, data: "b"}, {seq: 2, data: "b"}, {seq: 2, data: "b"},
				{seq: 1, data: "a"},
				{seq: 4, data: "d"}, {seq: 4, data: "d"}, {seq: 4, data: "d"}, {seq: 4, data: "d"}, {seq: 4, data: "d"}, {seq: 4, data: "d"}, {seq: 4, data: "d"},
				{seq: 3, data: "c"}},
			want: []result{{"", 0, Empty},
				{"b", 1, OutOfOrder}, {"b", 1, OutOfOrder}, {"b", 1, OutOfOrder}, {"b", 1, OutOfOrder}, {"b", 1, OutOfOrder}, {"b", 1, OutOfOrder}, {"b", 1, OutOfOrder},
				{"a", 0, InOrder},
				{"d", 3, OutOfOrder}, {"d", 3, OutOfOrder}, {"d", 3, OutOfOrder}, {"d", 3, OutOfOrder}, {"d", 3, OutOfOrder}, {"d", 3, OutOfOrder}, {"d", 3, OutOfOrder},
				{"c", 2, InOrder}},
		},
		{
			name:  "depth",
			depth: 5,
			segs:  []seg{{seq: 0, syn: true}, {seq: 1, data: "abc"}, {seq: 4, data: "defg"}, {seq: 8, data: "h"}},
			want:  []result{{"", 0, Empty}, {"abc", 0, InOrder}, {"de", 3, InOrder}, {"", 0, DepthReached}},
		},
		{
			name:  "depth reached by a filled gap",
			depth: 4,
			segs:  []seg{{seq: 0, syn: true}, {seq: 3, data: "cdef"}, {seq: 1, data: "ab"}, {seq: 7, data: "g"}},
			want:  []result{{"", 0, Empty}, {"cdef", 2, OutOfOrder}, {"ab", 0, InOrder}, {"", 0, DepthReached}},
		},
		{
			name: "zero-length segments",
			segs: []seg{{seq: 0, syn: true}, {seq: 1}, {seq: 1, data: "a"}, {seq: 2}, {seq: 9}},
			want: []result{{"", 0, Empty}, {"", 0, Empty}, {"a", 0, InOrder}, {"", 0, Empty}, {"", 0, Empty}},
		},
		{
			name: "SYN retransmitted",
			segs: []seg{{seq: 0, syn: true}, {seq: 0, syn: true}, {seq: 1, data: "a"}},
			want: []result{{"", 0, Empty}, {"", 0, Empty}, {"a", 0, InOrder}},
		},
		{
			name: "FIN takes a sequence number",
			segs: []seg{{seq: 0, syn: true}, {seq: 1, data: "ab", fin: true}, {seq: 1, data: "ab", fin: true}, {seq: 3, fin: true}},
			want: []result{{"", 0, Empty}, {"ab", 0, InOrder}, {"", 0, Retransmit}, {"", 0, Empty}},
		},
		{
			// The FIN takes no sequence number here: one the receiver never accepted
			// (an insertion) must not hide the data after it.
			name: "data after an empty FIN is still inspected",
			segs: []seg{{seq: 0, syn: true}, {seq: 1, data: "ab"}, {seq: 3, fin: true}, {seq: 3, data: "c"}},
			want: []result{{"", 0, Empty}, {"ab", 0, InOrder}, {"", 0, Empty}, {"c", 2, InOrder}},
		},
		{
			name: "RST payload is not stream data",
			segs: []seg{{seq: 0, syn: true}, {seq: 1, rst: true, data: "reset"}, {seq: 1, data: "a"}},
			want: []result{{"", 0, Empty}, {"", 0, Reset}, {"a", 0, InOrder}},
		},
	}
	for _, tt := range tests {
		// Each case runs at an ordinary ISN and at ISNs that wrap 2^32 inside it.
		for _, isn := range []uint32{1000, 1<<32 - 1, 1<<32 - 3} {
			for _, tail := range []int{0, 3} {
				t.Run(fmt.Sprintf("%s/isn=%d/tail=%d", tt.name, isn, tail), func(t *testing.T) {
					d := make(Dir, Size(tail))
					scratch := make([]byte, 64)
					var sent bytes.Buffer // what the stream carried in order, for the tail check
					for i, s := range tt.segs {
						v := d.Segment(isn+s.seq, s.syn, s.fin, s.rst, []byte(s.data), tt.depth, scratch)
						got, at := newBytes(v)
						if v.New > len(v.Buf) {
							t.Fatalf("segment %d: New %d > len(Buf) %d", i, v.New, len(v.Buf))
						}
						w := tt.want[i]
						if v.Status != w.status || got != w.fresh || (got != "" && at != w.offset) {
							t.Fatalf("segment %d: got %q at %d (%v), want %q at %d (%v)", i, got, at, v.Status, w.fresh, w.offset, w.status)
						}
						if v.Status == InOrder || v.Status == Overlap {
							old := v.Buf[:v.New]
							if tail == 0 && len(old) != 0 {
								t.Fatalf("segment %d: tail %q kept with no room for one", i, old)
							}
							sent.WriteString(got)
							if s := sent.Bytes(); len(old) > len(s) || v.New > tail {
								t.Fatalf("segment %d: tail %q is longer than allowed", i, old)
							}
						}
					}
				})
			}
		}
	}
}

// matches returns the stream offsets (of their first byte) of the occurrences of pat
// in v that end in its new bytes: what a detection engine reports for the segment.
func matches(v View, pat []byte) []uint64 {
	var at []uint64
	for i := 0; i+len(pat) <= len(v.Buf); i++ {
		if i+len(pat) > v.New && bytes.Equal(v.Buf[i:i+len(pat)], pat) {
			at = append(at, v.Offset+uint64(i))
		}
	}
	return at
}

func TestSplitContent(t *testing.T) {
	const pat = "EVILSTRING"
	tests := []struct {
		name string
		tail int
		segs []string // in order, after the SYN
		want []uint64 // match offsets, over all segments
	}{
		{"whole", len(pat) - 1, []string{"xxEVILSTRINGyy"}, []uint64{2}},
		{"two segments", len(pat) - 1, []string{"xxEVIL", "STRINGyy"}, []uint64{2}},
		{"three segments", len(pat) - 1, []string{"xxEV", "ILST", "RINGyy"}, []uint64{2}},
		{"one byte a segment", len(pat) - 1, []string{"E", "V", "I", "L", "S", "T", "R", "I", "N", "G"}, []uint64{0}},
		{"two matches", len(pat) - 1, []string{"EVILSTRINGEVIL", "STRING"}, []uint64{0, 10}},
		{"tail too short misses it", 3, []string{"xxEVIL", "STRINGyy"}, nil},
		{"no tail misses it", 0, []string{"xxEVIL", "STRINGyy"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := make(Dir, Size(tt.tail))
			scratch := make([]byte, 256)
			seq := uint32(1<<32 - 8)
			d.Segment(seq, true, false, false, nil, 0, scratch)
			seq++
			var got []uint64
			for _, s := range tt.segs {
				v := d.Segment(seq, false, false, false, []byte(s), 0, scratch)
				got = append(got, matches(v, []byte(pat))...)
				// A retransmission must not report the match again.
				v = d.Segment(seq, false, false, false, []byte(s), 0, scratch)
				got = append(got, matches(v, []byte(pat))...)
				seq += uint32(len(s))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("matches at %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOverlapKeepsTail(t *testing.T) {
	// A partial retransmission extends the stream: its new bytes follow the tail.
	d := make(Dir, Size(4))
	scratch := make([]byte, 64)
	d.Segment(0, true, false, false, nil, 0, scratch)
	d.Segment(1, false, false, false, []byte("abcdef"), 0, scratch)
	v := d.Segment(4, false, false, false, []byte("defgh"), 0, scratch)
	if string(v.Buf) != "cdefgh" || v.New != 4 || v.Offset != 2 || v.Status != Overlap {
		t.Errorf("got Buf %q New %d Offset %d %v, want \"cdefgh\" 4 2 overlap", v.Buf, v.New, v.Offset, v.Status)
	}
}

func TestShortScratchDropsTail(t *testing.T) {
	d := make(Dir, Size(4))
	d.Segment(0, true, false, false, nil, 0, nil)
	d.Segment(1, false, false, false, []byte("abcd"), 0, nil)
	v := d.Segment(5, false, false, false, []byte("efgh"), 0, make([]byte, 5))
	if string(v.Buf) != "efgh" || v.New != 0 || v.Offset != 4 {
		t.Errorf("got Buf %q New %d Offset %d, want the segment alone at 4", v.Buf, v.New, v.Offset)
	}
}

func TestSize(t *testing.T) {
	tests := []struct{ tail, want int }{{-1, headerLen}, {0, headerLen}, {9, headerLen + 9}, {255, headerLen + 255}, {1000, headerLen + 255}}
	for _, tt := range tests {
		if got := Size(tt.tail); got != tt.want {
			t.Errorf("Size(%d) = %d, want %d", tt.tail, got, tt.want)
		}
	}
}

func TestTooSmallDir(t *testing.T) {
	v := Dir(make([]byte, 3)).Segment(1, false, false, false, []byte("ab"), 0, nil)
	if v.Status != OutOfOrder || string(v.Buf) != "ab" {
		t.Errorf("a Dir too small for its header gave %q %v, want the payload alone", v.Buf, v.Status)
	}
}

func TestStatusString(t *testing.T) {
	for s := Status(0); s <= numStatus; s++ {
		if s.String() == "" || (s < numStatus && s.String() == "unknown") {
			t.Errorf("Status(%d) has no name", s)
		}
	}
}

func TestSegmentAllocs(t *testing.T) {
	d := make(Dir, Size(16))
	scratch := make([]byte, 2048)
	payload := bytes.Repeat([]byte("x"), 1400)
	seq := uint32(1)
	d.Segment(0, true, false, false, nil, 0, scratch)
	allocs := testing.AllocsPerRun(1000, func() {
		d.Segment(seq, false, false, false, payload, 0, scratch)
		d.Segment(seq, false, false, false, payload, 0, scratch) // retransmission
		d.Segment(seq+2800, false, false, false, payload, 0, scratch)
		seq += uint32(len(payload))
	})
	if allocs != 0 {
		t.Errorf("Segment allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkSegment(b *testing.B) {
	for _, tail := range []int{0, 63} {
		b.Run(fmt.Sprintf("tail=%d", tail), func(b *testing.B) {
			d := make(Dir, Size(tail))
			scratch := make([]byte, 2048)
			payload := bytes.Repeat([]byte("x"), 1400)
			seq := uint32(1)
			d.Segment(0, true, false, false, nil, 0, scratch)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				d.Segment(seq, false, false, false, payload, 0, scratch)
				seq += uint32(len(payload))
			}
		})
	}
}

func TestSideRecord(t *testing.T) {
	// A flow's side record holds both directions; clearing it starts them afresh.
	n := Size(8)
	side := make([]byte, 2*n)
	client, server := Dir(side[:n:n]), Dir(side[n:])
	scratch := make([]byte, 64)
	client.Segment(100, true, false, false, nil, 0, scratch)
	server.Segment(5000, true, false, false, nil, 0, scratch)
	client.Segment(101, false, false, false, []byte("GET /"), 0, scratch)
	v := server.Segment(5001, false, false, false, []byte("HTTP/1.1"), 0, scratch)
	if string(v.Buf) != "HTTP/1.1" || v.New != 0 || v.Offset != 0 {
		t.Errorf("server view %q New %d Offset %d: the client's data leaked into it", v.Buf, v.New, v.Offset)
	}
	if seq, off, ok := client.Next(); seq != 106 || off != 5 || !ok {
		t.Errorf("client.Next() = %d, %d, %v; want 106, 5, true", seq, off, ok)
	}
	clear(side)
	if _, _, ok := client.Next(); ok {
		t.Error("a cleared record still reads as started")
	}
	if _, _, ok := Dir(side[:3]).Next(); ok {
		t.Error("a record too short for a Dir reads as started")
	}
}
