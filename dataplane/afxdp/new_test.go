package afxdp

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"weir/dataplane"
	"weir/dataplane/afxdp/xsk"
	"weir/geneve"
	"weir/vxlan"
)

// TestNew: the interface must exist and have the queues asked for; the
// defaults are filled in; lo has one RX queue.
func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
		queues  int
	}{
		{name: "lo, all queues", cfg: Config{Interface: "lo"}, queues: 1},
		{name: "lo, one queue", cfg: Config{Interface: "lo", Queues: 1}, queues: 1},
		{name: "no interface", cfg: Config{}, wantErr: "no interface"},
		{name: "unknown interface", cfg: Config{Interface: "weir-nonesuch"}, wantErr: `interface "weir-nonesuch"`},
		{name: "more queues than lo has", cfg: Config{Interface: "lo", Queues: 2}, wantErr: "has 1 RX queues"},
		{name: "negative queues", cfg: Config{Interface: "lo", Queues: -1}, wantErr: "-1 queues"},
		{name: "batch too large", cfg: Config{Interface: "lo", Batch: xsk.DefaultRingSize + 1}, wantErr: "batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b.queues) != tc.queues || len(b.Stats()) != tc.queues {
				t.Errorf("%d queues, want %d", len(b.queues), tc.queues)
			}
			if b.cfg.GenevePort != geneve.Port || b.cfg.VXLANPort != vxlan.Port || b.cfg.Batch != DefaultBatch {
				t.Errorf("defaults not applied: %+v", b.cfg)
			}
			if !strings.HasPrefix(b.Name(), "afxdp (lo") || b.XDPMode() != "" {
				t.Errorf("Name %q, XDPMode %q before Run", b.Name(), b.XDPMode())
			}
		})
	}
}

// FuzzTake: any bytes as a received frame, at any length and offset, give a
// slot (whose Buf lies within the frame) or a counted invalid descriptor, and
// never a panic.
func FuzzTake(f *testing.F) {
	f.Add(outerFrame(f, "192.0.2.1", "192.0.2.2", genevePayload(8)), uint16(256), uint16(0))
	f.Add(outerFrame(f, "2001:db8::1", "2001:db8::2", genevePayload(8)), uint16(0), uint16(0))
	f.Add([]byte{1, 2, 3}, uint16(4095), uint16(100))
	const frameSize = 2048
	umem, err := xsk.NewUMEM(2, frameSize)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { umem.Close() })
	wk := &worker{umem: umem, batch: dataplane.NewBatch(1), addrs: make([]uint64, 1), lens: make([]uint32, 1),
		genevePort: geneve.Port, vxlanPort: vxlan.Port}
	f.Fuzz(func(t *testing.T, frame []byte, offset, extra uint16) {
		addr, ok := umem.Alloc()
		if !ok {
			t.Fatal("no free frame")
		}
		d := unix.XDPDesc{Addr: addr + uint64(offset), Len: uint32(len(frame)) + uint32(extra)}
		mem := umem.Frame(d.Addr)
		if mem != nil {
			copy(mem, frame)
		}
		invalid := wk.local.invalid
		if wk.take(0, d, 1) {
			s := &wk.batch.Slots[0]
			if mem == nil || int(d.Len) > len(mem) {
				t.Fatal("took a descriptor outside the UMEM")
			}
			if len(s.Buf) > 0 && !bytes.Contains(mem[:d.Len], s.Buf) {
				t.Fatal("Buf is not within the frame")
			}
			if s.Encap == dataplane.EncapNone && !s.Settled() {
				t.Fatal("a datagram of no tunnel left unsettled")
			}
			umem.Free(addr)
			return
		}
		if wk.local.invalid != invalid+1 {
			t.Fatal("an untaken descriptor not counted invalid")
		}
		// take gave back the frame when the address was inside the UMEM.
		if umem.Frame(d.Addr) == nil || (addr+uint64(offset))/frameSize != addr/frameSize {
			umem.Free(addr)
		}
	})
}
