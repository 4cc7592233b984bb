package xdpbench

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"weir/geneve"
)

// XDP return codes (enum xdp_action).
const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)

// Offsets into struct xdp_md.
const (
	mdData    = 0
	mdDataEnd = 4
)

const license = "Dual MIT/GPL"

// Register roles kept across helper calls (R6-R9 are callee-saved).
const (
	regCtx  = asm.R6
	regData = asm.R7
	regEnd  = asm.R8
	regRes  = asm.R9
)

// Checker counters, indexes of the checker's per-CPU array.
const (
	CountGood  = 0 // a reply to one of our requests, as it should be
	CountBad   = 1 // UDP that is not such a reply
	CountOther = 2 // not IPv4 UDP, or too short to be a reply: passed to the stack
	numCounts  = 3
)

// Names of the checker's maps.
const (
	MapCounts = "counts"
	MapSample = "sample" // ARRAY[1] u32: 1 sends checked replies to the XSK instead of dropping them
	MapXSKs   = "xsks"   // XSKMAP[1]: the generator's socket on queue 0
)

// ne is the value a native-order load of b reads, so that programs compare
// packet bytes without byte swaps.
func ne16(b []byte) int32 { return int32(binary.NativeEndian.Uint16(b)) }
func ne32(b []byte) int32 { return int32(binary.NativeEndian.Uint32(b)) }
func ne64(b []byte) int64 { return int64(binary.NativeEndian.Uint64(b)) }

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// prologue loads the context, data and data_end, and jumps to short unless n
// bytes of packet are there.
func prologue(n int32, short string) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(regCtx, asm.R1),
		asm.LoadMem(regData, regCtx, mdData, asm.Word),
		asm.LoadMem(regEnd, regCtx, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R1, regData),
		asm.Add.Imm(asm.R1, n),
		asm.JGT.Reg(asm.R1, regEnd, short),
	}
}

// ReflectorSpec is the XDP_TX reflector, the in-kernel upper bound: IPv4 UDP
// to the GENEVE port goes back out of the interface it came in on with its
// MAC and IPv4 addresses swapped (the reply GWLB expects: ports, GENEVE
// header and inner packet kept; both checksums are sums over both addresses,
// so a swap leaves them valid). Everything else is passed.
func ReflectorSpec() *ebpf.ProgramSpec {
	insns := prologue(offGeneve, "pass")
	insns = append(insns,
		asm.LoadMem(asm.R1, regData, 12, asm.Half),
		asm.JNE.Imm(asm.R1, ne16(be16(0x0800)), "pass"),
		// IHL 5 only: options would move the UDP header.
		asm.LoadMem(asm.R1, regData, offOuterIP, asm.Byte),
		asm.JNE.Imm(asm.R1, 0x45, "pass"),
		asm.LoadMem(asm.R1, regData, offOuterIP+9, asm.Byte),
		asm.JNE.Imm(asm.R1, 17, "pass"),
		asm.LoadMem(asm.R1, regData, offOuterUDP+2, asm.Half),
		asm.JNE.Imm(asm.R1, ne16(be16(geneve.Port)), "pass"),
		// MACs: 4+2 bytes each.
		asm.LoadMem(asm.R1, regData, 0, asm.Word),
		asm.LoadMem(asm.R2, regData, 4, asm.Half),
		asm.LoadMem(asm.R3, regData, 6, asm.Word),
		asm.LoadMem(asm.R4, regData, 10, asm.Half),
		asm.StoreMem(regData, 0, asm.R3, asm.Word),
		asm.StoreMem(regData, 4, asm.R4, asm.Half),
		asm.StoreMem(regData, 6, asm.R1, asm.Word),
		asm.StoreMem(regData, 10, asm.R2, asm.Half),
		// IPv4 source and destination.
		asm.LoadMem(asm.R1, regData, offOuterIP+12, asm.Word),
		asm.LoadMem(asm.R2, regData, offOuterIP+16, asm.Word),
		asm.StoreMem(regData, offOuterIP+12, asm.R2, asm.Word),
		asm.StoreMem(regData, offOuterIP+16, asm.R1, asm.Word),
		asm.Mov.Imm(asm.R0, xdpTX),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	)
	return &ebpf.ProgramSpec{Name: "wb_reflect", Type: ebpf.XDP, License: license, Instructions: insns}
}

// DropSpec drops every frame: the cheapest receiver, for the generator-only
// baseline.
func DropSpec() *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{Name: "wb_drop", Type: ebpf.XDP, License: license, Instructions: asm.Instructions{
		asm.Mov.Imm(asm.R0, xdpDrop),
		asm.Return(),
	}}
}

// PassSpec passes every packet to the kernel. On the DUT's veth under the
// socket target it stands for a NIC driver: a veth receives the generator's
// xdp_frames only while an XDP program (or NAPI) is on it, and XDP_PASS builds
// the skb from the frame as a driver does.
func PassSpec() *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{Name: "wb_pass", Type: ebpf.XDP, License: license, Instructions: asm.Instructions{
		asm.Mov.Imm(asm.R0, xdpPass),
		asm.Return(),
	}}
}

// CheckerConfig is what the checker knows of the requests it sent.
type CheckerConfig struct {
	Spec      FrameSpec
	GeneveHdr []byte // the GENEVE prefix all requests share, geneveCheckedLen bytes
}

// CheckerSpec is the program on the generator's veth. It counts each frame as
// a good reply (IPv4 UDP from the DUT to the generator, a source port we send
// from to the GENEVE port, the shared GENEVE prefix, Magic at the start of the
// inner UDP or TCP payload), a bad one (any other IPv4 UDP) or other, and
// drops good and bad: counting here keeps the generator's receive cost low.
// While sample[0] is 1 it hands good and bad replies to the generator's AF_XDP
// socket instead, for the byte-by-byte check in user space.
func CheckerSpec(cfg CheckerConfig) (*ebpf.CollectionSpec, error) {
	s := cfg.Spec
	if err := s.validate(); err != nil {
		return nil, err
	}
	if len(cfg.GeneveHdr) != geneveCheckedLen {
		return nil, fmt.Errorf("xdpbench: GENEVE prefix of %d bytes, want %d", len(cfg.GeneveHdr), geneveCheckedLen)
	}
	gen, dut := s.GenIP.As4(), s.DutIP.As4()
	const minReply = offInnerL4 + udpLen + 8
	insns := prologue(minReply, "other")
	insns = append(insns,
		asm.LoadMem(asm.R1, regData, 12, asm.Half),
		asm.JNE.Imm(asm.R1, ne16(be16(0x0800)), "other"),
		asm.LoadMem(asm.R1, regData, offOuterIP+9, asm.Byte),
		asm.JNE.Imm(asm.R1, 17, "other"),
		asm.LoadMem(asm.R1, regData, offOuterIP, asm.Byte),
		asm.JNE.Imm(asm.R1, 0x45, "bad"),
		asm.LoadMem(asm.R1, regData, offOuterIP+12, asm.Word),
		asm.JNE.Imm32(asm.R1, ne32(dut[:]), "bad"),
		asm.LoadMem(asm.R1, regData, offOuterIP+16, asm.Word),
		asm.JNE.Imm32(asm.R1, ne32(gen[:]), "bad"),
		asm.LoadMem(asm.R1, regData, offOuterUDP+2, asm.Half),
		asm.JNE.Imm(asm.R1, ne16(be16(geneve.Port)), "bad"),
		asm.LoadMem(asm.R1, regData, offOuterUDP, asm.Half),
	)
	for i, p := range s.SrcPorts {
		insns = append(insns, asm.JEq.Imm(asm.R1, ne16(be16(p)), "port_ok"))
		if i == len(s.SrcPorts)-1 {
			insns = append(insns, asm.Ja.Label("bad"))
		}
	}
	// The GENEVE prefix, 8 bytes at a time, then its last 4.
	h := cfg.GeneveHdr
	first := true
	for off := 0; off+8 <= len(h); off += 8 {
		ld := asm.LoadMem(asm.R1, regData, int16(offGeneve+off), asm.DWord)
		if first {
			ld = ld.WithSymbol("port_ok")
			first = false
		}
		insns = append(insns, ld,
			asm.LoadImm(asm.R2, ne64(h[off:]), asm.DWord),
			asm.JNE.Reg(asm.R1, asm.R2, "bad"))
	}
	if rest := len(h) % 8; rest != 0 {
		if rest != 4 {
			return nil, fmt.Errorf("xdpbench: GENEVE prefix length %d", len(h))
		}
		off := len(h) - 4
		insns = append(insns,
			asm.LoadMem(asm.R1, regData, int16(offGeneve+off), asm.Word),
			asm.JNE.Imm32(asm.R1, ne32(h[off:]), "bad"))
	}
	insns = append(insns,
		// The payload of the inner UDP (8-byte header) or TCP (20, no options).
		asm.LoadMem(asm.R1, regData, offInnerIP+9, asm.Byte),
		asm.Mov.Reg(asm.R3, regData),
		asm.Add.Imm(asm.R3, offInnerL4+udpLen),
		asm.JEq.Imm(asm.R1, 17, "magic"),
		asm.JNE.Imm(asm.R1, 6, "bad"),
		asm.Add.Imm(asm.R3, tcpLen-udpLen),
		asm.Mov.Reg(asm.R4, asm.R3).WithSymbol("magic"),
		asm.Add.Imm(asm.R4, 8),
		asm.JGT.Reg(asm.R4, regEnd, "bad"),
		asm.LoadMem(asm.R1, asm.R3, 0, asm.DWord),
		asm.LoadImm(asm.R2, ne64(binary.BigEndian.AppendUint64(nil, Magic)), asm.DWord),
		asm.JNE.Reg(asm.R1, asm.R2, "bad"),

		asm.Mov.Imm(regRes, CountGood),
		asm.Ja.Label("count"),
		asm.Mov.Imm(regRes, CountBad).WithSymbol("bad"),
		asm.Ja.Label("count"),
		asm.Mov.Imm(regRes, CountOther).WithSymbol("other"),

		// counts[regRes]++ (per CPU: no atomics needed).
		asm.StoreMem(asm.RFP, -4, regRes, asm.Word).WithSymbol("count"),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapCounts),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "verdict"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),

		asm.JNE.Imm(regRes, CountOther, "sampled").WithSymbol("verdict"),
		asm.Mov.Imm(asm.R0, xdpPass),
		asm.Return(),
		asm.StoreImm(asm.RFP, -8, 0, asm.Word).WithSymbol("sampled"),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapSample),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.JEq.Imm(asm.R1, 0, "drop"),
		// To the socket on queue 0, or dropped when none is bound.
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapXSKs),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Imm(asm.R3, xdpDrop),
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpDrop).WithSymbol("drop"),
		asm.Return(),
	)
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			MapCounts: {Name: MapCounts, Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: numCounts},
			MapSample: {Name: MapSample, Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1},
			MapXSKs:   {Name: MapXSKs, Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 1},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			"wb_check": {Name: "wb_check", Type: ebpf.XDP, License: license, Instructions: insns},
		},
	}, nil
}

// GeneveCheckedPrefix returns the GENEVE prefix all of s's requests share.
func GeneveCheckedPrefix(frames [][]byte) []byte {
	return frames[0][offGeneve : offGeneve+geneveCheckedLen]
}
