package defrag

import (
	"bytes"
	"testing"
)

// A fragment overlapping held data with different bytes is a Conflict: the
// receiver may keep either copy (RFC 5722 has IPv6 hosts discard the datagram),
// so an inline appliance drops that fragment, and the host then delivers only
// what was inspected. The same bytes again are a plain Overlap.
func TestOverlapConflict(t *testing.T) {
	pkt := udp6plain(t, 64) // 40 + 8 + 64
	frags := frag6(pkt, 40, 6, 77, 24)
	a, c := frags[0], frags[1]
	b := append([]byte(nil), a...)
	copy(b[48+8:], bytes.Repeat([]byte("EVIL"), 4)) // after the fragment header and UDP header
	r := newTest()
	var got []Status
	for _, f := range [][]byte{a, b, a, c} {
		_, st := r.Add(nil, f, 0)
		got = append(got, st)
	}
	if want := []Status{Held, Conflict, Overlap, Complete}; !equalStatus(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
}

func equalStatus(a, b []Status) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
