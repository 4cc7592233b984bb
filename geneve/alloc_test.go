package geneve_test

import (
	"testing"

	"weir/geneve"
)

var (
	sinkHeader  geneve.Header
	sinkPayload []byte
	sinkAWS     geneve.AWS
	sinkErr     error
	sinkInt     int
)

// TestZeroAllocs holds the dataplane's per-packet calls to no allocation: Decode on
// accepted and rejected packets, an options walk, AppendAWSHeader into a buffer with
// room, and PutReplyHeaders.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	good := append(header(geneve.ProtoIPv4, optOtherClass2, optCookie, optAWSUnknown, optEndpoint, optAttachment),
		innerIPv4(t, 1400-40)...)
	bad := [][]byte{
		nil,
		good[:5],
		gwlbPacket(geneve.ProtoIPv4, nil)[:20],
		gwlbPacket(0x0806, innerIPv4(t, 0)),
		gwlbPacket(geneve.ProtoIPv6, innerIPv4(t, 0)),
		append(header(geneve.ProtoIPv4, opt{geneve.ClassAWS, geneve.AWSTypeEndpointID, nil}), innerIPv4(t, 0)...),
	}
	h, _, _, err := geneve.Decode(good)
	if err != nil {
		t.Fatal(err)
	}
	dg := gwlbPacket(geneve.ProtoIPv6, innerIPv6(t, 1400))
	hdr := make([]byte, geneve.ReplyHeaderLen)
	buf := make([]byte, 0, 128)

	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Decode", func() { sinkHeader, sinkPayload, sinkAWS, sinkErr = geneve.Decode(good) }},
		{"Decode errors", func() {
			for _, b := range bad {
				sinkHeader, sinkPayload, sinkAWS, sinkErr = geneve.Decode(b)
			}
		}},
		{"Options walk", func() {
			n := 0
			for o := h.Options(); len(o) > 0; {
				var opt geneve.Option
				opt, o, sinkErr = o.Next()
				n += len(opt.Data())
			}
			sinkInt = n
		}},
		{"AppendAWSHeader", func() { buf = geneve.AppendAWSHeader(buf[:0], geneve.ProtoIPv4, testAWS) }},
		{"PutReplyHeaders", func() { geneve.PutReplyHeaders(hdr, testOuter, dg, 42) }},
	} {
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.name, n)
		}
	}
}
