package stream

import (
	"bytes"
	"testing"
)

// Two deliberate give-ups: the second overwrites the first hole, so the bytes
// later sent into the first gap (which the receiver accepts and delivers) are
// reported as a Retransmit and never inspected.
func TestSecondGiveUpForgetsFirstHole(t *testing.T) {
	d := make(Dir, Size(16))
	scratch := make([]byte, 4096)
	const isn = 1000
	d.Segment(isn, true, false, false, nil, 0, scratch)
	// Gap 1: bytes 0..9 withheld; 8 out-of-order segments after it.
	for i := 0; i < maxStall; i++ {
		d.Segment(isn+1+10+uint32(i)*10, false, false, false, bytes.Repeat([]byte{'x'}, 10), 0, scratch)
	}
	// The stream now stands at 90. Gap 2: bytes 90..99 withheld; 8 more.
	for i := 0; i < maxStall; i++ {
		d.Segment(isn+1+100+uint32(i)*10, false, false, false, bytes.Repeat([]byte{'y'}, 10), 0, scratch)
	}
	// Now the attack fills gap 1.
	v := d.Segment(isn+1, false, false, false, []byte("EVILEVIL!!"), 0, scratch)
	if !bytes.Contains(v.Buf, []byte("EVIL")) {
		t.Fatalf("data filling the first skipped gap not inspected: status %v, buf %q", v.Status, v.Buf)
	}
}

// A segment with SYN set on an established connection carries no data for the
// receiver (RFC 793 / RFC 5961: it gets a challenge ACK, its payload is
// dropped), but the stream takes its payload as the next bytes and then reports
// the real bytes as a Retransmit.
func TestSynMidstreamTakesData(t *testing.T) {
	d := make(Dir, Size(16))
	scratch := make([]byte, 4096)
	const isn = 5000
	d.Segment(isn, true, false, false, nil, 0, scratch)
	d.Segment(isn+1, false, false, false, []byte("GET /"), 0, scratch)
	// next is isn+6; a SYN at isn+5 puts its payload at isn+6.
	v := d.Segment(isn+5, true, false, false, []byte("harmless"), 0, scratch)
	t.Logf("SYN segment: %v %q", v.Status, v.Buf[v.New:])
	v = d.Segment(isn+6, false, false, false, []byte("EVIL/x"), 0, scratch)
	if !bytes.Contains(v.Buf, []byte("EVIL")) {
		t.Fatalf("real bytes after a mid-stream SYN not inspected: status %v, buf %q", v.Status, v.Buf)
	}
}

// An empty FIN that the receiver never accepts (bad checksum, short TTL) moves
// next by one; the real data at that sequence number then loses its first byte.
func TestFinInsertionHidesByte(t *testing.T) {
	d := make(Dir, Size(16))
	scratch := make([]byte, 4096)
	const isn = 5000
	d.Segment(isn, true, false, false, nil, 0, scratch)
	d.Segment(isn+1, false, true, false, nil, 0, scratch)
	v := d.Segment(isn+1, false, false, false, []byte("EVIL"), 0, scratch)
	if !bytes.Contains(v.Buf, []byte("EVIL")) {
		t.Fatalf("status %v, buf %q", v.Status, v.Buf)
	}
}
