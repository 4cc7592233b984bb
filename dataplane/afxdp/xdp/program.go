package xdp

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf/asm"
)

// XDP return codes (enum xdp_action in linux/bpf.h).
const (
	actionDrop     = 1
	actionPass     = 2
	actionRedirect = 4
)

// actionTX (XDP_TX) is in fast.go, with the fast path.

// Offsets into struct xdp_md, the context the kernel hands an XDP program.
const (
	mdData         = 0
	mdDataEnd      = 4
	mdRxQueueIndex = 16
)

// Wire constants the program matches on.
const (
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherTypeVLAN  = 0x8100 // 802.1Q C-tag
	etherTypeQinQ  = 0x88a8 // 802.1ad S-tag
	ethHeaderLen   = 14
	vlanTagLen     = 4
	ipv4MinLen     = 20
	ipv6HeaderLen  = 40
	udpHeaderLen   = 8
	protoUDP       = 17
	ipv4FragMask   = 0x3fff // MF flag and fragment offset
	ipv4DstOffset  = 16
	ipv6DstOffset  = 24
	lpmKeyFullIPv4 = 32
)

// Stack slots (offsets from the frame pointer R10).
const (
	stackLPMPrefixLen = -8   // u32 prefix length of the allow-list key
	stackLPMAddr      = -4   // 4 address bytes of the allow-list key, network order
	stackCounterKey   = -12  // u32 index into counters
	stackFlagKey      = -16  // u32 index into allowed_on
	stackIPHeader     = -24  // spilled pointer to the IP header, for the destination checks and the fast path
	stackFastBytes    = -32  // fast path: the GENEVE payload length, across the map lookup
	stackFrame        = -40  // fast path: spilled pointer to the frame, for the MAC swap
	stackFastKey      = -96  // fast path: FastKey, 52 bytes (56 zeroed)
	stackUDPOffset    = -104 // fast path: u64 offset of the outer UDP header in the frame
	stackFastUDP      = -112 // fast path: the UDP payload length, for CounterFastPathBytes
)

// Register roles, kept across helper calls (R6-R9 are callee-saved).
const (
	regCtx     = asm.R6 // *xdp_md
	regIsIPv4  = asm.R7 // 1 after an IPv4 header was parsed, else 0
	regDataEnd = asm.R8 // ctx->data_end
	regCursor  = asm.R9 // the header being parsed
)

// Labels.
const (
	labelIPv6      = "ipv6"
	labelUDP       = "udp"
	labelGeneve    = "geneve"
	labelSteer     = "steer"
	labelDrop      = "drop_source"
	labelPass      = "pass"
	labelFragment  = "pass_fragment"
	labelMalformed = "pass_malformed"
	labelOversize  = "pass_oversize"
)

// program assembles the classifier. Every read of packet memory is preceded
// by a comparison of its end against data_end on the same path: the verifier
// rejects the program otherwise, and it is what keeps a truncated frame from
// being read past its end. Anything the program cannot or need not classify
// is passed to the kernel, so a parsing gap costs a trip through the normal
// stack, never a lost packet. data_end ends the first buffer of a
// multi-buffer packet, so headers are only ever read from that buffer.
func program(cfg Config) asm.Instructions {
	var b builder
	b.emit(
		asm.Mov.Reg(regCtx, asm.R1),
		asm.Mov.Imm(regIsIPv4, 0),
		asm.LoadMem(regCursor, regCtx, mdData, asm.Word),
		asm.LoadMem(regDataEnd, regCtx, mdDataEnd, asm.Word),
	)
	if cfg.FastPath {
		// The frame's start, for the MAC swap; the Ethernet check below
		// extends its checked range too, as it does the cursor's.
		b.emit(asm.StoreMem(asm.RFP, stackFrame, regCursor, asm.DWord))
		b.udpOffset(ethHeaderLen, true)
	}

	// Ethernet: the EtherType sits at offset 12.
	b.need(regCursor, ethHeaderLen, labelMalformed)
	b.emit(
		asm.Add.Imm(regCursor, 12),
		asm.LoadMem(asm.R2, regCursor, 0, asm.Half),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
	)
	// Up to two VLAN tags (QinQ), unrolled: the verifier wants bounded code,
	// and more than two tags do not occur on the links weir serves. A third
	// tag leaves R2 holding a VLAN EtherType, which is then simply passed.
	for i := range 2 {
		next := fmt.Sprintf("vlan%d_done", i)
		tagged := fmt.Sprintf("vlan%d", i)
		b.emit(
			asm.JEq.Imm(asm.R2, etherTypeVLAN, tagged),
			asm.JEq.Imm(asm.R2, etherTypeQinQ, tagged),
			asm.Ja.Label(next),
		)
		// The tag's own inner EtherType is 4 bytes on; check that its two
		// bytes are inside the frame before reading them.
		b.at(tagged)
		b.emit(asm.Add.Imm(regCursor, vlanTagLen))
		if cfg.FastPath {
			b.udpOffset(vlanTagLen, false)
		}
		b.need(regCursor, 2, labelMalformed)
		b.emit(
			asm.LoadMem(asm.R2, regCursor, 0, asm.Half),
			asm.HostTo(asm.BE, asm.R2, asm.Half),
		)
		b.at(next)
	}

	// Step over the EtherType to the network header.
	b.emit(asm.Add.Imm(regCursor, 2))
	if filtersDst(cfg.GeneveDst) || filtersDst(cfg.VXLANDst) || cfg.FastPath {
		// Kept for the destination checks, which come after the port
		// match; every callee-saved register is taken. The verifier
		// tracks a spilled packet pointer's checked range like a live one.
		b.emit(asm.StoreMem(asm.RFP, stackIPHeader, regCursor, asm.DWord))
	}
	b.emit(
		asm.JEq.Imm(asm.R2, etherTypeIPv6, labelIPv6),
		asm.JNE.Imm(asm.R2, etherTypeIPv4, labelPass),
	)

	// IPv4. The version nibble must agree with the EtherType and IHL must be
	// at least 5 words: a smaller IHL would put the UDP header inside the IP
	// header, and trusting it would let a crafted packet pick its "ports".
	b.need(regCursor, ipv4MinLen, labelMalformed)
	b.emit(
		asm.LoadMem(asm.R2, regCursor, 0, asm.Byte),
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.RSh.Imm(asm.R3, 4),
		asm.JNE.Imm(asm.R3, 4, labelMalformed),
		asm.And.Imm(asm.R2, 0x0f),
		asm.JLT.Imm(asm.R2, 5, labelMalformed),
		// Fragments go to the kernel: only the first carries the UDP header,
		// and the later ones cannot be steered consistently without
		// reassembly, which the socket path already does.
		asm.LoadMem(asm.R3, regCursor, 6, asm.Half),
		asm.HostTo(asm.BE, asm.R3, asm.Half),
		asm.And.Imm(asm.R3, ipv4FragMask),
		asm.JNE.Imm(asm.R3, 0, labelFragment),
		asm.LoadMem(asm.R3, regCursor, 9, asm.Byte),
		asm.JNE.Imm(asm.R3, protoUDP, labelPass),
		// The source address, as the allow list's LPM key: a /32 lookup
		// finds the longest configured prefix that covers it.
		asm.LoadMem(asm.R3, regCursor, 12, asm.Word),
		asm.StoreMem(asm.RFP, stackLPMAddr, asm.R3, asm.Word),
		asm.StoreImm(asm.RFP, stackLPMPrefixLen, lpmKeyFullIPv4, asm.Word),
		asm.Mov.Imm(regIsIPv4, 1),
	)
	// Skip the header with its options. A constant is added for each IHL
	// from 5 to 15: adding the variable IHL to the packet pointer is
	// pointer arithmetic the verifier allows only with CAP_PERFMON.
	for ihl := int32(5); ihl <= 15; ihl++ {
		b.emit(asm.JNE.Imm(asm.R2, ihl, fmt.Sprintf("ihl_not_%d", ihl)))
		b.emit(asm.Add.Imm(regCursor, 4*ihl))
		if cfg.FastPath {
			b.udpOffset(4*ihl, false)
		}
		b.emit(asm.Ja.Label(labelUDP))
		b.at(fmt.Sprintf("ihl_not_%d", ihl))
	}
	b.emit(asm.Ja.Label(labelMalformed)) // IHL is 4 bits: not reached

	// IPv6. Only UDP directly after the fixed header is steered; extension
	// headers (fragments included) are rare for tunnel traffic and go to
	// the kernel rather than being walked here.
	b.at(labelIPv6)
	b.need(regCursor, ipv6HeaderLen, labelMalformed)
	b.emit(
		asm.LoadMem(asm.R2, regCursor, 0, asm.Byte),
		asm.RSh.Imm(asm.R2, 4),
		asm.JNE.Imm(asm.R2, 6, labelMalformed),
		asm.LoadMem(asm.R2, regCursor, 6, asm.Byte),
		asm.JNE.Imm(asm.R2, protoUDP, labelPass),
		asm.Add.Imm(regCursor, ipv6HeaderLen),
	)
	if cfg.FastPath {
		b.udpOffset(ipv6HeaderLen, false)
	}

	// UDP: the destination port picks the tunnel; VXLAN needs only its
	// destination address checked.
	b.at(labelUDP)
	b.need(regCursor, udpHeaderLen, labelMalformed)
	b.emit(
		asm.LoadMem(asm.R2, regCursor, 2, asm.Half),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.JEq.Imm(asm.R2, int32(cfg.GenevePort), labelGeneve),
	)
	if cfg.VXLANPort == 0 {
		// No mirror listener: VXLAN belongs to the kernel (a vxlan device,
		// another program).
		b.emit(asm.Ja.Label(labelPass))
	} else {
		b.emit(asm.JNE.Imm(asm.R2, int32(cfg.VXLANPort), labelPass))
		b.checkDst(cfg.VXLANDst)
		b.emit(asm.Ja.Label(labelSteer))
	}

	// GENEVE: to another address it is passed before the allow list is
	// consulted, since traffic the host only routes is not ours to drop.
	// When the allow list is in force, only listed IPv4 sources are steered
	// and the rest dropped here, before they cost a ring slot. GWLB speaks
	// IPv4 only and the list holds IPv4 prefixes only, so an IPv6 GENEVE
	// source can never be on it.
	b.at(labelGeneve)
	b.checkDst(cfg.GeneveDst)
	accepted := labelSteer
	if cfg.FastPath {
		accepted = labelFast
	}
	b.emit(
		asm.StoreImm(asm.RFP, stackFlagKey, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapAllowedOn),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackFlagKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, accepted),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.JEq.Imm(asm.R1, 0, accepted),
		asm.JEq.Imm(regIsIPv4, 0, labelDrop),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapAllowed),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackLPMPrefixLen),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, labelDrop),
	)
	if cfg.FastPath {
		// The fast path checks the frame limit itself, first, and ends
		// at the redirect below on anything it does not answer.
		b.fastPath(cfg)
	}

	// A steered packet that would not fit the socket's frame goes to the
	// kernel: a socket without XDP_USE_SG drops it, so redirecting it would
	// lose it, while the kernel hands it to the UDP socket backend.
	if !cfg.FastPath || cfg.VXLANPort != 0 {
		// With the fast path, GENEVE reaches the redirect from there; the
		// verifier refuses code nothing reaches.
		b.at(labelSteer)
		b.maxFrame(cfg)
	}

	// Redirect to the AF_XDP socket bound on the receiving queue. The
	// XDP_PASS in the flags is what bpf_redirect_map returns when no socket
	// is bound there, so traffic falls back to the kernel (and to the socket
	// backend) instead of vanishing.
	b.at(labelRedirect)
	b.emit(
		asm.LoadMem(asm.R2, regCtx, mdRxQueueIndex, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapXSKs),
		asm.Mov.Imm(asm.R3, actionPass),
		asm.FnRedirectMap.Call(),
		asm.Mov.Reg(regCtx, asm.R0),
		asm.JEq.Imm(regCtx, actionRedirect, "count_redirected"),
	)
	b.countAndReturn(CounterNoSocket, regCtx)
	b.at("count_redirected")
	b.countAndReturn(CounterRedirected, regCtx)

	b.at(labelDrop)
	b.emit(asm.Mov.Imm(regCtx, actionDrop))
	b.countAndReturn(CounterDroppedSource, regCtx)

	b.at(labelFragment)
	b.emit(asm.Mov.Imm(regCtx, actionPass))
	b.countAndReturn(CounterPassedFragment, regCtx)

	b.at(labelMalformed)
	b.emit(asm.Mov.Imm(regCtx, actionPass))
	b.countAndReturn(CounterPassedMalformed, regCtx)

	// The verifier refuses unreachable code, so no limit means no block.
	if cfg.MaxFrame > 0 {
		b.at(labelOversize)
		b.emit(asm.Mov.Imm(regCtx, actionPass))
		b.countAndReturn(CounterPassedOversize, regCtx)
	}

	b.at(labelPass)
	b.emit(asm.Mov.Imm(regCtx, actionPass))
	b.countAndReturn(CounterPassed, regCtx)
	return b.insns
}

// maxFrame jumps to labelOversize when the packet is longer than
// cfg.MaxFrame.
func (b *builder) maxFrame(cfg Config) {
	switch {
	case cfg.MaxFrame == 0:
	case cfg.Frags:
		// Every buffer counts; data_end bounds only the first.
		b.emit(
			asm.Mov.Reg(asm.R1, regCtx),
			asm.FnXdpGetBuffLen.Call(),
			asm.JGT.Imm(asm.R0, int32(cfg.MaxFrame), labelOversize),
		)
	default:
		// Longer than MaxFrame exactly when data + MaxFrame < data_end: a
		// pointer comparison like the header bounds checks, where a length
		// would need packet pointers subtracted.
		b.emit(
			asm.LoadMem(asm.R3, regCtx, mdData, asm.Word),
			asm.Add.Imm(asm.R3, int32(cfg.MaxFrame)),
			asm.JLT.Reg(asm.R3, regDataEnd, labelOversize),
		)
	}
}

// filtersDst tells whether a configured destination restricts steering.
func filtersDst(a netip.Addr) bool { return a.IsValid() && !a.IsUnspecified() }

// checkDst jumps to labelPass unless the packet is addressed to dst (when
// dst filters at all). The family test is on regIsIPv4, a constant the
// verifier knows on each path, so it never walks an IPv6 read on an IPv4
// path whose checked range is shorter. The address is compared as words
// loaded the way the packet's are, hence the native byte order; word
// loads also keep clear of unaligned double-word access after VLAN tags.
func (b *builder) checkDst(dst netip.Addr) {
	if !filtersDst(dst) {
		return
	}
	raw, offset := dst.AsSlice(), int16(ipv6DstOffset)
	if dst.Is4() {
		offset = ipv4DstOffset
		b.emit(asm.JEq.Imm(regIsIPv4, 0, labelPass))
	} else {
		b.emit(asm.JNE.Imm(regIsIPv4, 0, labelPass))
	}
	b.emit(asm.LoadMem(asm.R1, asm.RFP, stackIPHeader, asm.DWord))
	for i := 0; i < len(raw); i += 4 {
		b.emit(
			asm.LoadMem(asm.R2, asm.R1, offset+int16(i), asm.Word),
			asm.LoadImm(asm.R3, int64(binary.NativeEndian.Uint32(raw[i:])), asm.DWord),
			asm.JNE.Reg(asm.R2, asm.R3, labelPass),
		)
	}
}

// builder accumulates instructions and attaches labels to them.
type builder struct {
	insns   asm.Instructions
	pending string // label for the next instruction emitted
	n       int    // makes generated labels unique
}

func (b *builder) emit(insns ...asm.Instruction) {
	for _, ins := range insns {
		if b.pending != "" {
			ins = ins.WithSymbol(b.pending)
			b.pending = ""
		}
		b.insns = append(b.insns, ins)
	}
}

// at labels the next instruction. An instruction carries one label, so a
// label still waiting gets a no-op jump of its own.
func (b *builder) at(name string) {
	if b.pending != "" {
		b.emit(asm.Ja.Label(name))
	}
	b.pending = name
}

// need jumps to fail unless n bytes from ptr lie inside the packet.
func (b *builder) need(ptr asm.Register, n int32, fail string) {
	b.emit(
		asm.Mov.Reg(asm.R3, ptr),
		asm.Add.Imm(asm.R3, n),
		asm.JGT.Reg(asm.R3, regDataEnd, fail),
	)
}

// lookupCounter points R0 at this CPU's slot of counter c, or jumps to the
// label it returns when the lookup fails (it never does for an index in
// range). Per-CPU slots need no atomics: an XDP program is not preempted on
// its CPU.
func (b *builder) lookupCounter(c Counter) (done string) {
	b.n++
	done = fmt.Sprintf("counter_done_%d", b.n)
	b.emit(
		asm.StoreImm(asm.RFP, stackCounterKey, int64(c), asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapCounters),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackCounterKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, done),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
	)
	return done
}

// addCounter adds the u64 at stack slot slot to per-CPU counter c.
func (b *builder) addCounter(c Counter, slot int16) {
	done := b.lookupCounter(c)
	b.emit(
		asm.LoadMem(asm.R2, asm.RFP, slot, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
	)
	b.at(done)
}

// countAndReturn bumps one per-CPU counter and returns the action in result
// (a callee-saved register, so it survives the helper call).
func (b *builder) countAndReturn(c Counter, result asm.Register) {
	done := b.lookupCounter(c)
	b.emit(
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
	)
	b.at(done)
	b.emit(asm.Mov.Reg(asm.R0, result), asm.Return())
}
