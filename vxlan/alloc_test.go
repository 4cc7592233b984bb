package vxlan_test

import (
	"testing"

	"weir/vxlan"
)

var (
	sinkHeader vxlan.Header
	sinkFrame  []byte
	sinkErr    error
	sinkBool   bool
	sinkVNI    uint32
)

// TestZeroAllocs holds the per-packet calls to no allocation: Decode on accepted and
// rejected datagrams, the accessors, and AppendHeader into a buffer with room.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	good := datagram(5569041, innerFrame(t, 1400))
	noFlag := datagram(5569041, innerFrame(t, 0))
	noFlag[0] = 0
	bad := [][]byte{nil, {}, good[:5], good[:12], noFlag}
	buf := make([]byte, 0, 64)

	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Decode", func() {
			sinkHeader, sinkFrame, sinkErr = vxlan.Decode(good)
			sinkVNI = sinkHeader.VNI()
			sinkBool = sinkHeader.ReservedNonZero() || sinkHeader.HasVNI()
		}},
		{"Decode errors", func() {
			for _, b := range bad {
				sinkHeader, sinkFrame, sinkErr = vxlan.Decode(b)
			}
		}},
		{"AppendHeader", func() { buf = vxlan.AppendHeader(buf[:0], 5569041) }},
	} {
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.name, n)
		}
	}
}
