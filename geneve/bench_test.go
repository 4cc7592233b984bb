package geneve_test

import (
	"fmt"
	"testing"

	"weir/geneve"
)

// BenchmarkDecode decodes a GWLB datagram as it arrives: three AWS options and a
// 1400-byte IPv4 inner packet.
func BenchmarkDecode(b *testing.B) {
	dg := gwlbPacket(geneve.ProtoIPv4, innerIPv4(b, 1400-40))
	b.ReportAllocs()
	for b.Loop() {
		sinkHeader, sinkPayload, sinkAWS, sinkErr = geneve.Decode(dg)
	}
	if sinkErr != nil {
		b.Fatal(sinkErr)
	}
}

// BenchmarkPutReplyHeaders writes the outer reply headers, whose UDP checksum reads
// the whole datagram.
func BenchmarkPutReplyHeaders(b *testing.B) {
	for _, size := range []int{1400, 8500} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			dg := make([]byte, size)
			copy(dg, gwlbPacket(geneve.ProtoIPv4, innerIPv4(b, size-40-40)))
			hdr := make([]byte, geneve.ReplyHeaderLen)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				geneve.PutReplyHeaders(hdr, testOuter, dg, 1)
			}
		})
	}
}

func BenchmarkAppendAWSHeader(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = geneve.AppendAWSHeader(buf[:0], geneve.ProtoIPv4, testAWS)
	}
}
