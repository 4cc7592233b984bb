package xsk

import (
	"encoding/binary"
	"strings"
	"testing"
)

func u64s(vals ...uint64) []byte {
	b := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.NativeEndian.PutUint64(b[8*i:], v)
	}
	return b
}

func TestDecodeMmapOffsets(t *testing.T) {
	t.Run("with flags", func(t *testing.T) {
		// rx, tx, fill, completion: producer, consumer, desc, flags
		off, hasFlags, err := decodeMmapOffsets(u64s(
			0, 64, 128, 192,
			1, 65, 129, 193,
			2, 66, 130, 194,
			3, 67, 131, 195))
		if err != nil || !hasFlags {
			t.Fatalf("err %v, hasFlags %v", err, hasFlags)
		}
		if off.Rx.Flags != 192 || off.Tx.Consumer != 65 || off.Fr.Desc != 130 || off.Cr.Producer != 3 || off.Cr.Flags != 195 {
			t.Fatalf("decoded %+v", off)
		}
	})
	t.Run("before 5.4", func(t *testing.T) {
		off, hasFlags, err := decodeMmapOffsets(u64s(
			0, 64, 128,
			1, 65, 129,
			2, 66, 130,
			3, 67, 131))
		if err != nil || hasFlags {
			t.Fatalf("err %v, hasFlags %v", err, hasFlags)
		}
		if off.Tx.Desc != 129 || off.Fr.Producer != 2 || off.Cr.Consumer != 67 || off.Rx.Flags != 0 {
			t.Fatalf("decoded %+v", off)
		}
	})
	for _, n := range []int{0, 8, 95, 97, 127, 129} {
		if _, _, err := decodeMmapOffsets(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "bytes") {
			t.Errorf("%d bytes: %v, want a size error", n, err)
		}
	}
}

func TestDecodeStats(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want Stats
	}{
		{"full", u64s(1, 2, 3, 4, 5, 6), Stats{1, 2, 3, 4, 5, 6}},
		{"before 5.9", u64s(7, 8, 9), Stats{RxDropped: 7, RxInvalidDescs: 8, TxInvalidDescs: 9}},
	} {
		got, err := decodeStats(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	for _, n := range []int{0, 16, 25, 47, 49} {
		if _, err := decodeStats(make([]byte, n)); err == nil {
			t.Errorf("%d bytes: no error", n)
		}
	}
}

// FuzzMmapOffsets: any answer decodes or is refused, and rings laid over a mapping
// at any decoded offsets are either built within the mapping or refused.
func FuzzMmapOffsets(f *testing.F) {
	f.Add(u64s(0, 64, 128, 192, 0, 64, 128, 192, 0, 64, 128, 192, 0, 64, 128, 192), uint16(256))
	f.Add(u64s(0, 64, 128, 0, 64, 128, 0, 64, 128, 0, 64, 128), uint16(256))
	f.Fuzz(func(t *testing.T, in []byte, mapLen uint16) {
		off, hasFlags, err := decodeMmapOffsets(in)
		if err != nil {
			return
		}
		mem := make([]byte, int(mapLen)+8)
		for _, o := range []struct {
			entry int
			name  string
		}{{addrEntry, "fill"}, {descEntry, "rx"}} {
			ro := off.Fr
			if o.name == "rx" {
				ro = off.Rx
			}
			r, err := newRing(mem, ro, 4, o.entry, hasFlags)
			if err != nil {
				continue
			}
			// Within the mapping: using the ring must not fault.
			pr := producerRing{r}
			pr.Reserve(2)
			pr.Submit(2)
			cr := consumerRing{r}
			cr.Peek(2)
			cr.Release(2)
			_ = r.NeedsWakeup()
		}
	})
}

func FuzzStats(f *testing.F) {
	f.Add(u64s(1, 2, 3, 4, 5, 6))
	f.Add(u64s(1, 2, 3))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := decodeStats(in)
		if err != nil {
			return
		}
		if s.RxDropped != binary.NativeEndian.Uint64(in) {
			t.Fatalf("RxDropped %d from %x", s.RxDropped, in)
		}
	})
}
