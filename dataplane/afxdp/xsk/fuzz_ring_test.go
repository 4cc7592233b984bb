package xsk

import (
	"encoding/binary"
	"testing"
)

// FuzzRing runs random sequences of operations on both sides of a user-produced
// ring (fill) and a kernel-produced ring (RX), from a random starting index, and
// checks that every entry produced is consumed exactly once, in order, and that
// the producer never runs more than a ring's size ahead of the consumer.
//
// Input: 4 bytes starting index, 1 byte ring size (log2, 0..7), then one byte an
// operation: the low 2 bits choose it, the rest is its count.
func FuzzRing(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 3, 0x10, 0x11, 0x12, 0x13})
	f.Add([]byte{0xfb, 0xff, 0xff, 0xff, 2, 0x1c, 0x1d, 0x1c, 0x0d, 0x22, 0x0f, 0x13, 0x07})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 5 {
			return
		}
		start := binary.LittleEndian.Uint32(in)
		size := uint32(1) << (in[4] % 8)
		ops := in[5:]

		kf := newFakeKernel(size, addrEntry, start)
		fill, err := newFillRing(kf.mem, kf.off, size, true)
		if err != nil {
			t.Fatal(err)
		}
		kr := newFakeKernel(size, descEntry, start)
		rx, err := newRxRing(kr.mem, kr.off, size, true)
		if err != nil {
			t.Fatal(err)
		}

		var fillNext, fillWant uint64 // written by user space, expected by the kernel
		var rxNext, rxWant uint64     // written by the kernel, expected by user space
		var rxPeeked uint32           // peeked, not released
		for _, op := range ops {
			n := uint32(op >> 2)
			switch op & 3 {
			case 0: // user space fills: reserve n, write, submit half of what it holds
				idx, got := fill.Reserve(n)
				if got > n || got > size {
					t.Fatalf("Reserve(%d) got %d on a %d-ring", n, got, size)
				}
				for i := range got {
					fill.Set(idx+i, fillNext)
					fillNext++
				}
				fill.Submit((got + 1) / 2)
			case 1: // the kernel consumes the fill ring
				for _, a := range kf.consume(n) {
					if a != fillWant {
						t.Fatalf("kernel consumed %d, want %d", a, fillWant)
					}
					fillWant++
				}
				// Everything reserved is eventually submitted.
				fill.Submit(n)
			case 2: // the kernel produces on the RX ring
				vals := make([]uint64, n)
				for i := range vals {
					vals[i] = rxNext + uint64(i)
				}
				rxNext += uint64(kr.produce(vals))
			case 3: // user space consumes the RX ring, releasing some of what it peeked
				idx, got := rx.Peek(n)
				if got > n {
					t.Fatalf("Peek(%d) got %d", n, got)
				}
				for i := range got {
					if a := rx.Desc(idx + i).Addr; a != rxWant {
						t.Fatalf("user space consumed %d, want %d", a, rxWant)
					}
					rxWant++
				}
				rxPeeked += got
				rxPeeked -= rx.Release(rxPeeked / 2)
			}
			if d := kf.prod() - kf.cons(); d > size {
				t.Fatalf("fill ring: producer %d ahead of consumer by %d > size %d", kf.prod(), d, size)
			}
			if d := kr.prod() - kr.cons(); d > size {
				t.Fatalf("RX ring: producer %d ahead of consumer by %d > size %d", kr.prod(), d, size)
			}
			if fillWant > fillNext || rxWant > rxNext {
				t.Fatalf("consumed more than produced: fill %d/%d, RX %d/%d", fillWant, fillNext, rxWant, rxNext)
			}
		}
		// Drain both: what is left arrives, in order.
		fill.Submit(size)
		for _, a := range kf.consume(size) {
			if a != fillWant {
				t.Fatalf("drain: kernel consumed %d, want %d", a, fillWant)
			}
			fillWant++
		}
		if fillWant != fillNext {
			t.Fatalf("fill: %d written, %d consumed", fillNext, fillWant)
		}
		rx.Release(rxPeeked)
		for {
			idx, got := rx.Peek(size)
			if got == 0 {
				break
			}
			for i := range got {
				if a := rx.Desc(idx + i).Addr; a != rxWant {
					t.Fatalf("drain: user space consumed %d, want %d", a, rxWant)
				}
				rxWant++
			}
			rx.Release(got)
		}
		if rxWant != rxNext {
			t.Fatalf("RX: %d produced, %d consumed", rxNext, rxWant)
		}
	})
}
