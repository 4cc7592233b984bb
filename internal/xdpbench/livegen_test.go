package xdpbench

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func TestLiveFrameValue(t *testing.T) {
	if got := LiveFrameValueSize(186); got != 8+192 {
		t.Errorf("value size for 186 bytes: %d", got)
	}
	if got := LiveFrameValueSize(192); got != 8+192 {
		t.Errorf("value size for 192 bytes: %d", got)
	}
	f := []byte{1, 2, 3, 4, 5}
	v := LiveFrameValue(f, LiveFrameValueSize(len(f)))
	if len(v) != 16 || binary.NativeEndian.Uint32(v) != 5 || !bytes.Equal(v[8:13], f) || !bytes.Equal(v[13:], []byte{0, 0, 0}) {
		t.Errorf("value % x", v)
	}
	if MaxFrameLen([][]byte{make([]byte, 3), make([]byte, 9), make([]byte, 4)}) != 9 {
		t.Error("MaxFrameLen")
	}
	if _, err := LiveGenSpec(nil); err == nil {
		t.Error("no frames accepted")
	}
	if _, err := LiveGenSpec([][]byte{make([]byte, 13)}); err == nil {
		t.Error("a 13-byte frame accepted")
	}
}

// liveGen loads the live generator's program with frames.
func liveGen(t *testing.T, frames [][]byte) (*ebpf.Program, *ebpf.Map) {
	t.Helper()
	requireRoot(t)
	spec, err := LiveGenSpec(frames)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("%+v", err)
	}
	t.Cleanup(coll.Close)
	size := LiveFrameValueSize(MaxFrameLen(frames))
	for i, f := range frames {
		if err := coll.Maps[MapGenFrames].Put(uint32(i), LiveFrameValue(f, size)); err != nil {
			t.Fatal(err)
		}
	}
	return coll.Programs["wb_gen"], coll.Maps[MapGenState]
}

func monotonicNow(t *testing.T) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return uint64(ts.Nano())
}

// While frames are due, the program turns whatever frame it is given into
// the next flow's request, round robin, lengthening or shortening it as that
// request needs (the flows alternate inner UDP and the 12 bytes longer TCP),
// and sends it; once Total are sent it drops.
func TestLiveGenProgram(t *testing.T) {
	frames := testFrames(t)
	p, state := liveGen(t, frames)
	// Started an hour ago at 1000 a second: millions due, 3 rounds to send.
	total := uint64(3 * len(frames))
	if err := state.Put(uint32(0), LiveState{Start: monotonicNow(t) - 3600e9, Rate: 1000, Total: total}); err != nil {
		t.Fatal(err)
	}
	in := bytes.Clone(frames[1]) // the longer kind
	for run := range total {
		want := frames[run%uint64(len(frames))]
		rc, out := runXDPOut(t, p, in)
		if rc != xdpTX || !bytes.Equal(out, want) {
			t.Fatalf("run %d: action %d, frame\n%x\nwant\n%x", run, rc, out, want)
		}
		in = out // as a recycled page would be
	}
	if rc, _ := runXDPOut(t, p, in); rc != xdpDrop {
		t.Fatalf("after the last frame: action %d", rc)
	}
	var st LiveState
	if err := state.Lookup(uint32(0), &st); err != nil || st.Sent != total {
		t.Fatalf("state %+v (%v), want %d sent", st, err, total)
	}
}

// The program sends no frame before it is due.
func TestLiveGenPaces(t *testing.T) {
	frames := testFrames(t)
	p, state := liveGen(t, frames)
	// Starting in an hour: nothing is due.
	if err := state.Put(uint32(0), LiveState{Start: monotonicNow(t) + 3600e9, Rate: 1e6, Total: 10}); err != nil {
		t.Fatal(err)
	}
	if rc, out := runXDPOut(t, p, frames[0]); rc != xdpDrop || !bytes.Equal(out, frames[0]) {
		t.Fatalf("before the start: action %d, frame changed %v", rc, !bytes.Equal(out, frames[0]))
	}
	// One a second from now: frame 0 is due at once, frame 1 in a second.
	if err := state.Put(uint32(0), LiveState{Start: monotonicNow(t), Rate: 1, Total: 10}); err != nil {
		t.Fatal(err)
	}
	if rc, _ := runXDPOut(t, p, frames[1]); rc != xdpTX {
		t.Fatalf("frame 0: action %d", rc)
	}
	if rc, _ := runXDPOut(t, p, frames[1]); rc != xdpDrop {
		t.Fatalf("frame 1, a second early: action %d", rc)
	}
	var st LiveState
	if err := state.Lookup(uint32(0), &st); err != nil || st.Sent != 1 {
		t.Fatalf("state %+v (%v), want 1 sent", st, err)
	}
}

// runXDPOut is runXDP for a program that may change the frame's length.
func runXDPOut(t *testing.T, p *ebpf.Program, frame []byte) (uint32, []byte) {
	t.Helper()
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
	rc, err := p.Run(opts)
	if err != nil {
		t.Fatal(err)
	}
	return rc, opts.DataOut
}
