package applayer

import (
	"crypto/tls"
	"testing"
)

// The first segment holds a whole first record with the SNI; the segment ends at
// the record boundary, or inside the next record's header. The name is there but
// is not returned (the caller only looks at the first segment).
func TestSNICutAtRecordBoundary(t *testing.T) {
	rec := clientHello(t, &tls.Config{ServerName: "evil.example"})
	stream := splitRecords(rec, 300)
	scratch := make([]byte, 1<<16)
	for _, extra := range []int{0, 1, 3, 4, 5, 6} {
		cut := stream[:5+300+extra]
		sni, err := TLSSNIReassembled(cut, scratch)
		if string(sni) != "evil.example" {
			t.Errorf("cut %d bytes into record 2: sni %q, err %v", extra, sni, err)
		}
	}
}
