package stream

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzSegment checks two things. ops is read as arbitrary segments (seq, flags,
// length, depth), which must never panic, give a View whose New is past its Buf,
// put in-order bytes anywhere but where the stream stood, or pass depth.
// data is cut into segments delivered in order with retransmissions (full or
// partial, chosen by cuts): the new bytes of the results must be the stream exactly.
func FuzzSegment(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 1, 3, 0, 'a', 'b', 'c'}, []byte("hello, stream"), []byte{3, 0x81, 4, 2}, uint32(1<<32-2), uint8(4))
	f.Add([]byte{}, []byte("x"), []byte{}, uint32(0), uint8(0))
	f.Fuzz(func(t *testing.T, ops, data, cuts []byte, isn uint32, tail uint8) {
		scratch := make([]byte, Size(int(tail))+300)

		d := make(Dir, Size(int(tail)))
		for len(ops) >= 7 {
			seq := binary.BigEndian.Uint32(ops)
			flags, n, depth := ops[4], int(ops[5]), uint32(ops[6])
			ops = ops[7:]
			n = min(n, len(ops))
			_, at, _ := d.Next()
			v := d.Segment(seq, flags&1 != 0, flags&2 != 0, flags&4 != 0, ops[:n], depth, scratch)
			ops = ops[n:]
			if v.New > len(v.Buf) {
				t.Fatalf("New %d > len(Buf) %d", v.New, len(v.Buf))
			}
			if v.Status == InOrder && v.Offset+uint64(v.New) != at {
				t.Fatalf("in-order bytes at offset %d, the stream was at %d", v.Offset+uint64(v.New), at)
			}
			if depth != 0 && (v.Status == InOrder || v.Status == Overlap) && v.Offset+uint64(len(v.Buf)) > uint64(depth) {
				t.Fatalf("bytes up to offset %d inspected past depth %d", v.Offset+uint64(len(v.Buf)), depth)
			}
		}

		d = make(Dir, Size(int(tail)))
		d.Segment(isn, true, false, false, nil, 0, scratch)
		var got []byte
		sent := 0 // bytes of data sent so far
		for i := 0; sent < len(data); i++ {
			c := byte(7)
			if i < len(cuts) {
				c = cuts[i]
			}
			n := min(int(c&0x3f)+1, len(data)-sent)
			from := sent
			if c&0x80 != 0 { // start back in what was sent: a partial or full retransmission
				from = max(0, sent-int(c&0x3f))
				n = min(n+sent-from, len(data)-from)
			}
			v := d.Segment(isn+1+uint32(from), false, false, false, data[from:from+n], 0, scratch)
			if v.New > len(v.Buf) {
				t.Fatalf("New %d > len(Buf) %d", v.New, len(v.Buf))
			}
			if v.Status == OutOfOrder {
				t.Fatalf("segment at %d of an in-order stream (sent %d) is out of order", from, sent)
			}
			if fresh := v.Buf[v.New:]; len(fresh) > 0 && v.Offset+uint64(v.New) != uint64(len(got)) {
				t.Fatalf("new bytes at offset %d, want %d", v.Offset+uint64(v.New), len(got))
			}
			got = append(got, v.Buf[v.New:]...)
			sent = max(sent, from+n)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("new bytes %q, want the stream %q", got, data)
		}
	})
}
