package vxlan_test

import (
	"testing"

	"weir/vxlan"
)

// BenchmarkDecode decodes a Traffic Mirroring datagram as it arrives: a 1400-byte
// payload in an inner Ethernet/IPv4/TCP frame.
func BenchmarkDecode(b *testing.B) {
	dg := datagram(5569041, innerFrame(b, 1400))
	b.ReportAllocs()
	for b.Loop() {
		sinkHeader, sinkFrame, sinkErr = vxlan.Decode(dg)
	}
	if sinkErr != nil {
		b.Fatal(sinkErr)
	}
}

func BenchmarkAppendHeader(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = vxlan.AppendHeader(buf[:0], 5569041)
	}
}
