package afxdp

import (
	"errors"
	"net"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"weir/dataplane"
	"weir/dataplane/afxdp/xsk"
	"weir/dataplane/flow"
	"weir/dataplane/policy"
	"weir/geneve"
	"weir/vxlan"
)

func testPipeline() *dataplane.Pipeline {
	table := flow.NewTable(flow.Config{MaxFlows: 1024}, &policy.Policy{Default: policy.Allow}, func(*flow.Record) {})
	return dataplane.NewPipeline(&dataplane.GeneveDecode{}, dataplane.InnerDecode{}, &dataplane.Track{Table: table})
}

// withPort rewrites the UDP destination port of a frame outerFrame built
// (checksums are not checked on receive).
func withPort(frame []byte, port uint16) []byte {
	off := 14 + 20 // IPv4
	if frame[12] == 0x86 {
		off = 14 + 40
	}
	frame[off+2], frame[off+3] = byte(port>>8), byte(port)
	return frame
}

// TestTake: a received descriptor becomes a slot whose Buf is the UDP payload
// in the UMEM frame itself, with its encapsulation told by port; what cannot
// be a datagram of ours is settled as malformed, and a descriptor outside the
// UMEM or longer than a frame is counted invalid and takes no slot.
func TestTake(t *testing.T) {
	const frameSize = 2048
	umem, err := xsk.NewUMEM(8, frameSize)
	if err != nil {
		t.Fatal(err)
	}
	defer umem.Close()
	cfg := Config{Batch: 4, GenevePort: geneve.Port, VXLANPort: vxlan.Port}
	wk := &worker{umem: umem, batch: dataplane.NewBatch(cfg.Batch), addrs: make([]uint64, 4), lens: make([]uint32, 4),
		genevePort: cfg.GenevePort, vxlanPort: cfg.VXLANPort}
	payload := genevePayload(40)
	for _, tc := range []struct {
		name      string
		frame     []byte
		desc      func(addr uint64, n int) unix.XDPDesc
		taken     bool
		encap     dataplane.Encap
		malformed bool
	}{
		{name: "geneve", frame: outerFrame(t, "192.0.2.1", "192.0.2.2", payload), taken: true, encap: dataplane.EncapGeneve},
		{name: "geneve ipv6", frame: outerFrame(t, "2001:db8::1", "2001:db8::2", payload), taken: true, encap: dataplane.EncapGeneve},
		{name: "vxlan", frame: withPort(outerFrame(t, "192.0.2.1", "192.0.2.2", payload), vxlan.Port), taken: true, encap: dataplane.EncapVXLAN},
		{name: "other port", frame: withPort(outerFrame(t, "192.0.2.1", "192.0.2.2", payload), 53), taken: true, encap: dataplane.EncapNone, malformed: true},
		{name: "not UDP", frame: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 6, 0}, taken: true, encap: dataplane.EncapNone, malformed: true},
		{name: "outside the UMEM", frame: []byte{0},
			desc: func(uint64, int) unix.XDPDesc { return unix.XDPDesc{Addr: 8 * frameSize, Len: 60} }},
		{name: "longer than a frame", frame: []byte{0},
			desc: func(a uint64, _ int) unix.XDPDesc { return unix.XDPDesc{Addr: a + 256, Len: frameSize} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, ok := umem.Alloc()
			if !ok {
				t.Fatal("no free frame")
			}
			defer func() { umem.Free(addr) }()
			// A kernel in copy mode writes at the XDP headroom, past the frame's start.
			d := unix.XDPDesc{Addr: addr + 256, Len: uint32(len(tc.frame))}
			if tc.desc != nil {
				d = tc.desc(addr, len(tc.frame))
			}
			frame := umem.Frame(d.Addr)
			if frame != nil && int(d.Len) <= len(frame) {
				copy(frame, tc.frame)
			}
			free, invalid := umem.FreeFrames(), wk.local.invalid
			taken := wk.take(1, d, 42)
			if taken != tc.taken {
				t.Fatalf("take = %v, want %v", taken, tc.taken)
			}
			if !taken {
				if wk.local.invalid != invalid+1 {
					t.Errorf("invalid count %d, want %d", wk.local.invalid, invalid+1)
				}
				if tc.desc != nil && umem.Frame(d.Addr) != nil && umem.FreeFrames() != free+1 {
					t.Error("an invalid descriptor's frame was not given back")
				}
				if umem.Frame(d.Addr) != nil {
					addr, _ = umem.Alloc() // the deferred Free gives it back again
				}
				return
			}
			s := &wk.batch.Slots[1]
			if wk.addrs[1] != d.Addr || wk.lens[1] != d.Len {
				t.Errorf("slot frame %d/%d, want %d/%d", wk.addrs[1], wk.lens[1], d.Addr, d.Len)
			}
			if s.Encap != tc.encap || s.Settled() != tc.malformed || s.Time != 42 {
				t.Errorf("slot encap %v settled %v time %d, want %v %v 42", s.Encap, s.Settled(), s.Time, tc.encap, tc.malformed)
			}
			if tc.malformed {
				if s.Action() != dataplane.ActionMalformed {
					t.Errorf("action %v, want malformed", s.Action())
				}
				return
			}
			if string(s.Buf) != string(payload) {
				t.Errorf("Buf %x, want the UDP payload", s.Buf)
			}
			// In place: Buf is the frame's own memory.
			end := uintptr(unsafe.Pointer(&frame[0])) + uintptr(len(frame))
			if p := uintptr(unsafe.Pointer(&s.Buf[0])); p < uintptr(unsafe.Pointer(&frame[0])) || p >= end {
				t.Error("Buf is not within the UMEM frame")
			}
			if s.Outer.SrcPort != 40000 || s.Outer.DstPort == 0 || !s.Outer.Src.IsValid() {
				t.Errorf("outer %+v", s.Outer)
			}
		})
	}
}

// newTestWorker opens a copy-mode socket on a veth in a namespace of its own
// and returns a worker on it and a function that runs one batch of GENEVE
// datagrams through everything after the RX ring: slots from descriptors, the
// pipeline, the reply rewrite, the TX ring and its kick, the completion and
// fill rings.
func newTestWorker(tb testing.TB) (*worker, func()) {
	tb.Helper()
	if os.Geteuid() != 0 {
		skipOutsideCI(tb, "needs root for a namespace and AF_XDP")
	}
	ns := newNetns(tb, "a")
	ipCmd(tb, "-n", ns, "link", "add", "afx0", "type", "veth", "peer", "name", "afx1")
	ipCmd(tb, "-n", ns, "link", "set", "afx0", "up")
	ipCmd(tb, "-n", ns, "link", "set", "afx1", "up")
	var s *xsk.Socket
	err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName("afx0")
		if err != nil {
			return err
		}
		s, err = xsk.Open(xsk.Config{Ifindex: ifi.Index, ZeroCopy: xsk.ZeroCopyOff, NeedWakeup: true})
		return err
	})
	if errors.Is(err, xsk.ErrNotSupported) || errors.Is(err, unix.EPERM) {
		skipOutsideCI(tb, "the kernel refuses AF_XDP: "+err.Error())
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	const batch = 32
	cfg := Config{Batch: batch, GenevePort: geneve.Port, VXLANPort: vxlan.Port}
	wk := newWorker(0, s, testPipeline().NewWorker(), &queueCounters{}, cfg)
	frames := make([][]byte, batch)
	for i := range frames {
		frames[i] = outerFrame(tb, "192.0.2.1", "192.0.2.2",
			append(geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 1, FlowCookie: uint32(i)}), innerPacket(tb, i)...))
	}
	return wk, func() {
		wk.reap()
		wk.refill()
		for k, f := range frames {
			addr, ok := wk.umem.Alloc()
			if !ok {
				tb.Fatal("out of frames: replies are not completing")
			}
			copy(wk.umem.Frame(addr), f)
			wk.take(k, unix.XDPDesc{Addr: addr, Len: uint32(len(f))}, 1)
		}
		wk.batch.N = batch
		wk.w.Process(wk.batch)
		wk.send()
		wk.publish()
	}
}

// TestWorkerAllocs: a batch's whole turn after the RX ring allocates nothing,
// and its replies go out and complete.
func TestWorkerAllocs(t *testing.T) {
	wk, turn := newTestWorker(t)
	// The fill ring takes half the frames on the first turn; the rest carry
	// the batches, going back through the TX and completion rings.
	if n := testing.AllocsPerRun(200, turn); n != 0 {
		t.Errorf("a batch allocates %v times", n)
	}
	if want := uint64(201 * 32); wk.local.tx != want {
		t.Errorf("%d replies on the TX ring, want %d", wk.local.tx, want)
	}
}

// BenchmarkWorkerBatch is a batch of 32 GENEVE datagrams through the pipeline
// and out of a veth's TX ring (copy mode: the kick's system call copies them).
func BenchmarkWorkerBatch(b *testing.B) {
	_, turn := newTestWorker(b)
	b.ReportAllocs()
	for b.Loop() {
		turn()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*32), "ns/packet")
}

// TestKickDue: replies too few for a full kick budget are kicked when a batch
// does not fill, or after maxKickDelay full batches, so that a flood of
// dropped packets cannot hold them back; a full budget is kicked at once.
func TestKickDue(t *testing.T) {
	wk, _ := newTestWorker(t)
	wk.unkicked = 3
	for i := 1; i < maxKickDelay; i++ {
		wk.kickDue(true)
		if wk.unkicked != 3 {
			t.Fatalf("kicked after %d full batches, want after %d", i, maxKickDelay)
		}
	}
	wk.kickDue(true)
	if wk.unkicked != 0 || wk.unkickedBatches != 0 {
		t.Fatalf("not kicked after %d full batches: %d waiting", maxKickDelay, wk.unkicked)
	}
	wk.unkicked = 2
	wk.kickDue(false)
	if wk.unkicked != 0 {
		t.Fatal("not kicked after a batch that did not fill")
	}
	wk.kickDue(false) // nothing waiting: nothing to do
	if wk.unkickedBatches != 0 {
		t.Fatal("counted a batch with nothing waiting")
	}
}
