package xdpbench

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Names of the live generator's maps.
const (
	MapGenFrames = "gen_frames" // ARRAY[flows]: each request frame, as LiveFrameValue lays it out
	MapGenState  = "gen_state"  // ARRAY[1] LiveState: the trial's pacing and the frames sent
)

// liveFrameHdr is the start of a gen_frames value: the frame's length (u32)
// and 4 bytes of padding, so that the frame's bytes start 8-aligned.
const liveFrameHdr = 8

// xdpAborted is XDP_ABORTED: the live generator's answer to a frame it cannot
// write, which the kernel then drops (and traces as an XDP exception).
const xdpAborted = 0

// LiveFrameValueSize is the size of a gen_frames value for frames of up to
// maxLen bytes.
func LiveFrameValueSize(maxLen int) int {
	return liveFrameHdr + (maxLen+7)&^7
}

// LiveFrameValue lays frame out as a gen_frames value of size bytes.
func LiveFrameValue(frame []byte, size int) []byte {
	v := make([]byte, size)
	binary.NativeEndian.PutUint32(v, uint32(len(frame)))
	copy(v[liveFrameHdr:], frame)
	return v
}

// MaxFrameLen is the length of the longest frame.
func MaxFrameLen(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n = max(n, len(f))
	}
	return n
}

// The gen_state value: the trial's pacing, which user space sets before
// each trial, and the count of frames sent, which the program keeps.
const (
	stateStart = 0  // u64: CLOCK_MONOTONIC ns at which frame 0 is due
	stateRate  = 8  // u64: frames a second
	stateTotal = 16 // u64: frames to send in all
	stateSent  = 24 // u64: frames sent so far
	stateSize  = 32
)

// LiveState is the gen_state value.
type LiveState struct{ Start, Rate, Total, Sent uint64 }

// LiveGenSpec is the live generator's program, run by BPF_PROG_TEST_RUN in
// live-frames mode, which calls it again and again with a frame from its
// page pool. It paces the trial itself: when the next frame is due (frame k
// is due k/rate after the start) it turns the frame it was given into the
// next flow's request (round robin over gen_frames: it sets the length to the
// request's, then copies the request in) and returns XDP_TX, which sends it
// out of the test run's ingress interface as an xdp_frame; otherwise it
// returns XDP_DROP, which hands the page straight back to the pool. The whole
// frame is written every time because the kernel recycles a page with
// whatever the last run left in it, and the length is set outright because a
// recycled page may or may not have had its length reset.
func LiveGenSpec(frames [][]byte) (*ebpf.CollectionSpec, error) {
	if len(frames) == 0 {
		return nil, fmt.Errorf("xdpbench: no frames")
	}
	maxLen := MaxFrameLen(frames)
	for i, f := range frames {
		if len(f) < 14 {
			return nil, fmt.Errorf("xdpbench: frame %d is %d bytes, shorter than an Ethernet header", i, len(f))
		}
	}
	insns := asm.Instructions{
		asm.Mov.Reg(regCtx, asm.R1),
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapGenState),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "abort"),
		asm.Mov.Reg(regEnd, asm.R0), // the state
		// due := (now-start)*rate/1e9 + 1: the frames due by now.
		asm.FnKtimeGetNs.Call(),
		asm.LoadMem(asm.R1, regEnd, stateStart, asm.DWord),
		asm.JLT.Reg(asm.R0, asm.R1, "drop"),
		asm.Sub.Reg(asm.R0, asm.R1),
		asm.LoadMem(asm.R1, regEnd, stateRate, asm.DWord),
		asm.Mul.Reg(asm.R0, asm.R1),
		asm.Div.Imm(asm.R0, 1e9),
		asm.Add.Imm(asm.R0, 1),
		asm.LoadMem(asm.R1, regEnd, stateSent, asm.DWord),
		asm.JGE.Reg(asm.R1, asm.R0, "drop"),
		asm.LoadMem(asm.R2, regEnd, stateTotal, asm.DWord),
		asm.JGE.Reg(asm.R1, asm.R2, "drop"),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.Add.Imm(asm.R2, 1),
		asm.StoreMem(regEnd, stateSent, asm.R2, asm.DWord),
		// The request of flow sent % flows.
		asm.Mod.Imm(asm.R1, int32(len(frames))),
		asm.StoreMem(asm.RFP, -8, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapGenFrames),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "abort"),
		asm.Mov.Reg(regData, asm.R0), // the value
		asm.LoadMem(regRes, regData, 0, asm.Word),
		// Bounds the verifier needs for the copy's length.
		asm.JGT.Imm(regRes, int32(maxLen), "abort"),
		asm.JLT.Imm(regRes, 14, "abort"),
		// The tail moves by the request's length less the current length.
		asm.LoadMem(asm.R1, regCtx, mdData, asm.Word),
		asm.LoadMem(asm.R2, regCtx, mdDataEnd, asm.Word),
		asm.Sub.Reg(asm.R2, asm.R1),
		asm.Mov.Reg(asm.R3, regRes),
		asm.Sub.Reg(asm.R3, asm.R2),
		asm.JEq.Imm(asm.R3, 0, "copy"),
		asm.Mov.Reg(asm.R1, regCtx),
		asm.Mov.Reg(asm.R2, asm.R3),
		asm.FnXdpAdjustTail.Call(),
		asm.JNE.Imm(asm.R0, 0, "abort"),
		asm.Mov.Reg(asm.R1, regCtx).WithSymbol("copy"),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, regData),
		asm.Add.Imm(asm.R3, liveFrameHdr),
		asm.Mov.Reg(asm.R4, regRes),
		asm.FnXdpStoreBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "abort"),
		asm.Mov.Imm(asm.R0, xdpTX),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpAborted).WithSymbol("abort"),
		asm.Return(),
	}
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			MapGenFrames: {Name: MapGenFrames, Type: ebpf.Array, KeySize: 4,
				ValueSize: uint32(LiveFrameValueSize(maxLen)), MaxEntries: uint32(len(frames))},
			MapGenState: {Name: MapGenState, Type: ebpf.Array, KeySize: 4, ValueSize: stateSize, MaxEntries: 1},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			"wb_gen": {Name: "wb_gen", Type: ebpf.XDP, License: license, Instructions: insns},
		},
	}, nil
}
