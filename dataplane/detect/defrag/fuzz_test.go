package defrag

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"weir/dataplane/packet"
)

// FuzzAdd checks two things. stream is read as packets (a 2-byte length before
// each) given to Add: nothing may panic, and each packet Add completes must be
// consistent (IPv4: total length, no fragment bits, valid checksum; IPv6: payload
// length). data, fragmented at cuts and delivered in an
// order and with duplicates drawn from seed, must come back byte for byte.
func FuzzAdd(f *testing.F) {
	v4 := []byte{0x45, 0, 0, 28, 0, 1, 0x20, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8}
	v4last := []byte{0x45, 0, 0, 24, 0, 1, 0, 1, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 9, 10, 11, 12}
	seed := binary.BigEndian.AppendUint16(nil, uint16(len(v4)))
	seed = append(seed, v4...)
	seed = binary.BigEndian.AppendUint16(seed, uint16(len(v4last)))
	seed = append(seed, v4last...)
	f.Add(seed, []byte("a datagram worth splitting into a few fragments"), []byte{1, 3}, uint64(1), false)
	f.Add([]byte{}, []byte("sixteen bytes!!!"), []byte{1}, uint64(7), true)
	f.Fuzz(func(t *testing.T, stream, data, cuts []byte, seed uint64, v6 bool) {
		r := New(Config{MaxBytes: 1 << 18, MaxDatagrams: 4, Timeout: time.Second})
		dst := make([]byte, 0, 1<<17)
		now := int64(0)
		for len(stream) >= 2 {
			n := min(int(binary.BigEndian.Uint16(stream)), len(stream)-2)
			pkt := stream[2 : 2+n]
			stream = stream[2+n:]
			now += int64(n) * int64(time.Millisecond)
			whole, st := r.Add(dst, pkt, now)
			if (st == Complete) != (whole != nil) {
				t.Fatalf("status %v with %d bytes", st, len(whole))
			}
			if whole != nil {
				checkWhole(t, whole)
			}
		}

		if len(data) == 0 || len(data) > 8000 {
			return
		}
		var pkt []byte
		if v6 {
			pkt = make([]byte, 40, 40+len(data))
			pkt[0], pkt[6], pkt[8], pkt[24] = 0x60, 17, 1, 2
		} else {
			pkt = make([]byte, 20, 20+len(data))
			pkt[0], pkt[8], pkt[9], pkt[12], pkt[16] = 0x45, 64, 17, 1, 2
		}
		pkt = append(pkt, data...)
		if v6 {
			binary.BigEndian.PutUint16(pkt[4:6], uint16(len(data)))
		} else {
			binary.BigEndian.PutUint16(pkt[2:4], uint16(len(pkt)))
			binary.BigEndian.PutUint16(pkt[10:12], packet.FoldChecksum(packet.Checksum(0, pkt[:20])))
		}
		var at []int // cut offsets: increasing multiples of 8 inside data
		for _, c := range cuts {
			o := (len(at) + 1) * 8 * (int(c%8) + 1)
			if len(at) > 0 {
				o = at[len(at)-1] + 8*(int(c%8)+1)
			}
			if o >= len(data) {
				break
			}
			at = append(at, o)
		}
		var frags [][]byte
		if v6 {
			frags = frag6(pkt, 40, 6, uint32(seed), at...)
		} else {
			frags = frag4(pkt, at...)
		}
		if len(frags) == 1 && !v6 {
			return // an IPv4 packet in one piece is not a fragment
		}
		rnd := rand.New(rand.NewPCG(seed, 0))
		rnd.Shuffle(len(frags), func(i, j int) { frags[i], frags[j] = frags[j], frags[i] })
		r = New(Config{MaxBytes: 1 << 18, MaxDatagrams: 4, Timeout: time.Second})
		var whole []byte
		for i, fr := range frags {
			if rnd.IntN(4) == 0 && i > 0 { // a duplicate of one already sent
				if w, st := r.Add(dst, frags[rnd.IntN(i)], 0); st != Overlap || w != nil {
					t.Fatalf("duplicate: %v", st)
				}
			}
			w, st := r.Add(dst, fr, 0)
			if i < len(frags)-1 && st != Held && st != Overlap {
				t.Fatalf("fragment %d of %d: %v", i, len(frags), st)
			}
			whole = w
		}
		if !bytes.Equal(whole, pkt) {
			t.Fatalf("rebuilt\n%x\nwant\n%x", whole, pkt)
		}
	})
}

func checkWhole(t *testing.T, pkt []byte) {
	t.Helper()
	switch pkt[0] >> 4 {
	case 4:
		hl := int(pkt[0]&0x0f) * 4
		if int(binary.BigEndian.Uint16(pkt[2:4])) != len(pkt) || binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
			t.Fatalf("rebuilt IPv4 packet %x has a wrong length or fragment bits", pkt)
		}
		if packet.FoldChecksum(packet.Checksum(0, pkt[:hl])) != 0 {
			t.Fatalf("rebuilt IPv4 packet %x has a wrong checksum", pkt)
		}
	case 6:
		if int(binary.BigEndian.Uint16(pkt[4:6])) != len(pkt)-40 {
			t.Fatalf("rebuilt IPv6 packet %x has a wrong payload length", pkt)
		}
	default:
		t.Fatalf("rebuilt packet %x is neither IPv4 nor IPv6", pkt)
	}
}
