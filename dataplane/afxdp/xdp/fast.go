package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The fast path ("XDP bypass"): with [Config.FastPath], a GENEVE datagram
// that passed the allow list and the destination check, and that belongs to
// a flow user space put in [MapFastFlows], is answered by the program: its
// outer MACs and IP addresses are swapped in place (ports and every GENEVE
// byte kept; both checksums are sums over both addresses, so they stay
// valid) and it leaves by XDP_TX, counted in the flow's [FastCounters] and
// in CounterFastPath and CounterFastPathBytes. Anything else is redirected as
// without the fast path. It answers only while [MapFastOn] holds 1.
//
// The program answers a datagram only when all of these hold, so that a
// packet user space must see (a TCP state change, a shape it would judge
// differently) still reaches it:
//
//   - the whole UDP datagram (by its length field) within the frame, and
//     the frame not longer than Config.MaxFrame (checked first, as for
//     redirects);
//     with Config.Frags also at most [FastFragsMax] bytes in all, so that
//     it lies in the first buffer: XDP_TX of a multi-buffer packet is not
//     supported by every driver, and data_end bounds the first buffer only;
//   - GENEVE version 0, protocol type IPv4 or IPv6, and options in one of
//     the two layouts [FastOptLayouts] names: the first an AWS endpoint id
//     (class 0x0108, type 1, 8 bytes), the options' lengths filling the
//     options area exactly (an option overrunning it is user space's to
//     refuse);
//   - inner IPv4 with IHL 5 and no fragment bits, or IPv6 with TCP or UDP
//     as next header; TCP or UDP with its whole minimal header inside the
//     inner length, and that length within the UDP datagram's;
//   - TCP with none of SYN, FIN and RST, its data offset at least 5 words
//     and within the inner length; UDP with its length field at least 8 and
//     within it (what user space's decoder refuses is not answered).
const (
	// DefaultFastFlows is MapFastFlows' size when Config.FastFlows is 0.
	DefaultFastFlows = 65536
	// FastOptWordsEndpoint and FastOptWordsGWLB are the GENEVE Opt Lens
	// the fast path takes, each with its one layout of option lengths:
	// 3 words, the endpoint id alone (2 data words); 8 words, what GWLB
	// sends: the endpoint id, an 8-byte option (the attachment id) and a
	// 4-byte one (the flow cookie), of any class and type after the first.
	// The inner header's offset and the options' lengths must be read at
	// constant offsets (adding a variable to a packet pointer needs
	// CAP_PERFMON), so other layouts go to user space.
	FastOptWordsEndpoint = 3
	FastOptWordsGWLB     = 8
	// FastFragsMax is, with Config.Frags, the longest frame the fast path
	// answers: the first buffer of a driver that receives into 2 KiB
	// buffers, less XDP headroom (256) and the shared-info tailroom (320),
	// the smallest first buffer among drivers with multi-buffer XDP. The
	// program cannot measure its first buffer as a number without
	// subtracting packet pointers (CAP_PERFMON), so it bounds the whole.
	FastFragsMax = 2048 - 256 - 320
)

// maxFastFlows bounds Config.FastFlows.
const maxFastFlows = 1 << 24

// FastKey is MapFastFlows' key, one per direction of a flow, laid out
// exactly as the program builds it on its stack (52 bytes, no implicit
// padding):
//
//	offset  0  Endpoint  [8]byte   GWLB endpoint id as on the wire (big-endian)
//	offset  8  Family    uint8     inner IP version: 4 or 6
//	offset  9  Proto     uint8     inner protocol: 6 (TCP) or 17 (UDP)
//	offset 10  _         [2]byte   zero
//	offset 12  Src       [16]byte  inner source; IPv4 in the first 4 bytes, rest zero
//	offset 28  Dst       [16]byte  inner destination, likewise
//	offset 44  SrcPort   [2]byte   inner source port, network order
//	offset 46  DstPort   [2]byte   inner destination port, network order
//	offset 48  Cookie    [4]byte   GWLB's layout: the third option's data (the
//	                               flow cookie) as on the wire; zero with the
//	                               endpoint id alone
//
// The cookie is in the key because weir's flow table starts a new flow when a
// 5-tuple comes with another cookie: such a packet must reach it. Build a key
// with [FastKeyOf] and [FastKey.WithCookie].
type FastKey struct {
	Endpoint [8]byte
	Family   uint8
	Proto    uint8
	_        [2]byte
	Src      [16]byte
	Dst      [16]byte
	SrcPort  [2]byte
	DstPort  [2]byte
	Cookie   [4]byte
}

// fastKeySize is sizeof(FastKey), on the stack and in the map.
const fastKeySize = 52

// WithCookie returns k with the GWLB flow cookie c (0 for a datagram
// carrying the endpoint id alone).
func (k FastKey) WithCookie(c uint32) FastKey {
	binary.BigEndian.PutUint32(k.Cookie[:], c)
	return k
}

// FastKeyOf returns the key of one direction of a flow: packets from src:sport
// to dst:dport of protocol proto (6 or 17) inside GENEVE from the GWLB
// endpoint endpointID. An IPv4-mapped address counts as IPv4; src and dst
// must be of one family.
func FastKeyOf(endpointID uint64, src, dst netip.Addr, proto uint8, sport, dport uint16) FastKey {
	src, dst = src.Unmap(), dst.Unmap()
	k := FastKey{Family: 6, Proto: proto}
	binary.BigEndian.PutUint64(k.Endpoint[:], endpointID)
	if src.Is4() {
		k.Family = 4
		s, d := src.As4(), dst.As4()
		copy(k.Src[:], s[:])
		copy(k.Dst[:], d[:])
	} else {
		k.Src, k.Dst = src.As16(), dst.As16()
	}
	binary.BigEndian.PutUint16(k.SrcPort[:], sport)
	binary.BigEndian.PutUint16(k.DstPort[:], dport)
	return k
}

// FastCounters is MapFastFlows' value. Bytes counts the inner packet as
// weir's flow table does for GENEVE: the GENEVE payload, the UDP length less
// the UDP and GENEVE headers with options.
type FastCounters struct {
	Packets  uint64
	Bytes    uint64
	LastSeen uint64 // bpf_ktime_get_ns (CLOCK_MONOTONIC) of the last packet
}

// Offsets into FastCounters.
const (
	fastPacketsOff  = 0
	fastBytesOff    = 8
	fastLastSeenOff = 16
)

func addFastMaps(spec *ebpf.CollectionSpec, cfg Config) {
	n := cfg.FastFlows
	if n == 0 {
		n = DefaultFastFlows
	}
	spec.Maps[MapFastFlows] = &ebpf.MapSpec{
		Name:       MapFastFlows,
		Type:       ebpf.LRUHash,
		KeySize:    fastKeySize,
		ValueSize:  24,
		MaxEntries: uint32(n),
	}
	spec.Maps[MapFastOn] = &ebpf.MapSpec{
		Name:       MapFastOn,
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: 1,
	}
}

// SetFastPath turns the fast path of a loaded collection on or off. Off, the
// program redirects every datagram as without it; the flows' counters stay.
func SetFastPath(coll *ebpf.Collection, on bool) error {
	m := coll.Maps[MapFastOn]
	if m == nil {
		return fmt.Errorf("xdp: collection lacks map %q (built without FastPath?)", MapFastOn)
	}
	v := uint32(0)
	if on {
		v = 1
	}
	if err := m.Put(uint32(0), v); err != nil {
		return fmt.Errorf("xdp: setting %s: %w", MapFastOn, err)
	}
	return nil
}

// fastFlows is the collection's MapFastFlows.
func fastFlows(coll *ebpf.Collection) (*ebpf.Map, error) {
	m := coll.Maps[MapFastFlows]
	if m == nil {
		return nil, fmt.Errorf("xdp: collection lacks map %q (built without FastPath?)", MapFastFlows)
	}
	return m, nil
}

// ReadFast returns a fast flow's counters, and false when the key is not in
// the map.
func ReadFast(coll *ebpf.Collection, k FastKey) (FastCounters, bool, error) {
	m, err := fastFlows(coll)
	if err != nil {
		return FastCounters{}, false, err
	}
	var c FastCounters
	if err := m.Lookup(k, &c); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return FastCounters{}, false, nil
		}
		return FastCounters{}, false, fmt.Errorf("xdp: reading a fast flow: %w", err)
	}
	return c, true, nil
}

// AddFast puts k in the map with zero counters, so that the program answers
// its packets. It reports false, changing nothing, when k is there already.
func AddFast(coll *ebpf.Collection, k FastKey) (bool, error) {
	m, err := fastFlows(coll)
	if err != nil {
		return false, err
	}
	if err := m.Update(k, FastCounters{}, ebpf.UpdateNoExist); err != nil {
		if errors.Is(err, ebpf.ErrKeyExist) {
			return false, nil
		}
		return false, fmt.Errorf("xdp: adding a fast flow: %w", err)
	}
	return true, nil
}

// TakeFast removes k from the map and returns its counters as they were when
// it went (false when it was not there): from then on its packets go to user
// space. A packet the program is counting on another CPU at that very moment
// may still be answered and its count lost with the entry.
func TakeFast(coll *ebpf.Collection, k FastKey) (FastCounters, bool, error) {
	m, err := fastFlows(coll)
	if err != nil {
		return FastCounters{}, false, err
	}
	var c FastCounters
	err = m.LookupAndDelete(k, &c)
	if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL) {
		// Kernels before 5.14 have no lookup-and-delete for hash maps.
		if err = m.Lookup(k, &c); err == nil {
			err = m.Delete(k)
		}
	}
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		return FastCounters{}, false, nil
	case err != nil:
		return FastCounters{}, false, fmt.Errorf("xdp: removing a fast flow: %w", err)
	}
	return c, true, nil
}

// fastBatch is how many entries ReadAllFast asks the kernel for at once.
const fastBatch = 4096

// FastReader reads every entry of MapFastFlows, reusing its buffers: a
// reader allocates only while its buffers grow. The map's entries come and
// go while it reads (the program's LRU evicts, user space adds), so a read
// may miss an entry added meanwhile; each one present throughout is seen
// once.
type FastReader struct {
	keys    []FastKey
	vals    []FastCounters
	noBatch bool // the kernel refused batch lookups: iterate instead
}

// ReadAll calls f with each entry of the collection's MapFastFlows.
func (r *FastReader) ReadAll(coll *ebpf.Collection, f func(k *FastKey, c *FastCounters)) error {
	m, err := fastFlows(coll)
	if err != nil {
		return err
	}
	if !r.noBatch {
		err := r.readBatches(m, f)
		if !errors.Is(err, ebpf.ErrNotSupported) && !errors.Is(err, unix.EINVAL) {
			return err
		}
		r.noBatch = true
	}
	var k FastKey
	var c FastCounters
	it := m.Iterate()
	for it.Next(&k, &c) {
		f(&k, &c)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("xdp: reading the fast flows: %w", err)
	}
	return nil
}

func (r *FastReader) readBatches(m *ebpf.Map, f func(k *FastKey, c *FastCounters)) error {
	if len(r.keys) == 0 {
		r.keys, r.vals = make([]FastKey, fastBatch), make([]FastCounters, fastBatch)
	}
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, r.keys, r.vals, nil)
		for i := range n {
			f(&r.keys[i], &r.vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil // the end of the map
		}
		if err != nil {
			return fmt.Errorf("xdp: reading the fast flows: %w", err)
		}
	}
}

// Wire constants of the fast path.
const (
	actionTX          = 3
	genevePayloadOff  = udpHeaderLen + 8 // GENEVE fixed header
	geneveClassAWS    = 0x0108
	awsTypeEndpointID = 1
	protoTCP          = 6
	tcpMinLen         = 20
	tcpFlagsOff       = 13
	tcpFinSynRst      = 0x07
)

// Labels of the fast path.
const (
	labelFast      = "fast"
	labelRedirect  = "redirect"
	labelFastInner = "fast_inner"
	labelFastIPv6  = "fast_ipv6"
	labelFastL4    = "fast_l4"
	labelFastTCP   = "fast_tcp"
	labelFastPorts = "fast_ports"
	labelFastSwap6 = "fast_swap6"
	labelFastEth   = "fast_eth"
)

// fastPath emits the fast path, entered with regCursor at the outer UDP
// header of a GENEVE datagram that may be redirected; every way out but
// XDP_TX jumps to labelRedirect with the packet unchanged. Registers: R2
// holds the inner length less its IP header (the L4 length) once known, R4
// the GENEVE payload length, R5 the protocol type and then the inner
// protocol; the key is built at stackFastKey.
func (b *builder) fastPath(cfg Config) {
	b.at(labelFast)
	b.maxFrame(cfg)
	b.emit(
		asm.StoreImm(asm.RFP, stackFlagKey, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapFastOn),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackFlagKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, labelRedirect),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.JNE.Imm(asm.R1, 1, labelRedirect),
		// The whole datagram must be in the frame: a cut one is user
		// space's to refuse, as it does.
		asm.Mov.Reg(asm.R1, regCtx),
		asm.FnXdpGetBuffLen.Call(),
	)
	if cfg.Frags {
		b.emit(asm.JGT.Imm(asm.R0, FastFragsMax, labelRedirect))
	}
	b.need(regCursor, udpHeaderLen, labelRedirect)
	b.emit(
		asm.LoadMem(asm.R1, regCursor, 4, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.LoadMem(asm.R2, asm.RFP, stackUDPOffset, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.JGT.Reg(asm.R1, asm.R0, labelRedirect),
	)
	// The key's padding and the unused address bytes of IPv4 must be zero.
	b.emit(asm.Mov.Imm(asm.R1, 0))
	for off := int16(0); off < fastKeySize; off += 8 {
		b.emit(asm.StoreMem(asm.RFP, stackFastKey+off, asm.R1, asm.DWord))
	}

	// GENEVE header and its first option, the endpoint id: 8 + 8 + 4 + 8.
	b.need(regCursor, genevePayloadOff+12, labelRedirect)
	b.emit(
		asm.LoadMem(asm.R4, regCursor, 4, asm.Half), // UDP length
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.Mov.Reg(asm.R1, asm.R4),
		asm.Sub.Imm(asm.R1, udpHeaderLen),
		asm.StoreMem(asm.RFP, stackFastUDP, asm.R1, asm.DWord),
		// Version (the top 2 bits) 0: the byte is then the Opt Len.
		asm.LoadMem(asm.R2, regCursor, udpHeaderLen, asm.Byte),
		asm.JGT.Imm(asm.R2, 0x3f, labelRedirect),
		asm.LoadMem(asm.R5, regCursor, udpHeaderLen+2, asm.Half),
		asm.HostTo(asm.BE, asm.R5, asm.Half),
		asm.LoadMem(asm.R1, regCursor, genevePayloadOff, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.JNE.Imm(asm.R1, geneveClassAWS, labelRedirect),
		asm.LoadMem(asm.R1, regCursor, genevePayloadOff+2, asm.Byte),
		asm.JNE.Imm(asm.R1, awsTypeEndpointID, labelRedirect),
		asm.LoadMem(asm.R1, regCursor, genevePayloadOff+3, asm.Byte),
		asm.And.Imm(asm.R1, 0x1f),
		asm.JNE.Imm(asm.R1, 2, labelRedirect),
		// The id's bytes as they are: the key holds them in wire order.
		asm.LoadMem(asm.R1, regCursor, genevePayloadOff+4, asm.Word),
		asm.StoreMem(asm.RFP, stackFastKey, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, regCursor, genevePayloadOff+8, asm.Word),
		asm.StoreMem(asm.RFP, stackFastKey+4, asm.R1, asm.Word),
	)
	// Skip to the inner packet by a constant per layout, and make R4 the
	// GENEVE payload length (signed: a UDP length too short goes negative).
	b.emit(asm.JEq.Imm(asm.R2, FastOptWordsGWLB, "fast_opts_gwlb"))
	b.emit(
		asm.JNE.Imm(asm.R2, FastOptWordsEndpoint, labelRedirect),
		asm.Add.Imm(regCursor, genevePayloadOff+4*FastOptWordsEndpoint),
		asm.Sub.Imm(asm.R4, genevePayloadOff+4*FastOptWordsEndpoint),
		asm.Ja.Label(labelFastInner),
	)
	b.at("fast_opts_gwlb")
	// The second option at 12 bytes in, 2 data words; the third at 24, 1.
	b.need(regCursor, genevePayloadOff+4*FastOptWordsGWLB, labelRedirect)
	b.emit(
		asm.LoadMem(asm.R1, regCursor, genevePayloadOff+12+3, asm.Byte),
		asm.And.Imm(asm.R1, 0x1f),
		asm.JNE.Imm(asm.R1, 2, labelRedirect),
		asm.LoadMem(asm.R1, regCursor, genevePayloadOff+24+3, asm.Byte),
		asm.And.Imm(asm.R1, 0x1f),
		asm.JNE.Imm(asm.R1, 1, labelRedirect),
		// The flow cookie, as on the wire.
		asm.LoadMem(asm.R1, regCursor, genevePayloadOff+28, asm.Word),
		asm.StoreMem(asm.RFP, stackFastKey+48, asm.R1, asm.Word),
		asm.Add.Imm(regCursor, genevePayloadOff+4*FastOptWordsGWLB),
		asm.Sub.Imm(asm.R4, genevePayloadOff+4*FastOptWordsGWLB),
	)

	b.at(labelFastInner)
	b.emit(
		asm.JEq.Imm(asm.R5, etherTypeIPv6, labelFastIPv6),
		asm.JNE.Imm(asm.R5, etherTypeIPv4, labelRedirect),
	)
	// Inner IPv4: IHL 5 only (options would move L4 by a variable), not a
	// fragment (no ports to key on, and user space reassembles nothing
	// here either).
	b.need(regCursor, ipv4MinLen, labelRedirect)
	b.emit(
		asm.LoadMem(asm.R1, regCursor, 0, asm.Byte),
		asm.JNE.Imm(asm.R1, 0x45, labelRedirect),
		asm.LoadMem(asm.R1, regCursor, 6, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.And.Imm(asm.R1, ipv4FragMask),
		asm.JNE.Imm(asm.R1, 0, labelRedirect),
		asm.LoadMem(asm.R2, regCursor, 2, asm.Half), // total length
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.JSGT.Reg(asm.R2, asm.R4, labelRedirect),
		asm.Sub.Imm(asm.R2, ipv4MinLen),
		asm.LoadMem(asm.R5, regCursor, 9, asm.Byte),
		asm.StoreImm(asm.RFP, stackFastKey+8, 4, asm.Byte),
		asm.StoreMem(asm.RFP, stackFastKey+9, asm.R5, asm.Byte),
		asm.LoadMem(asm.R1, regCursor, 12, asm.Word),
		asm.StoreMem(asm.RFP, stackFastKey+12, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, regCursor, 16, asm.Word),
		asm.StoreMem(asm.RFP, stackFastKey+28, asm.R1, asm.Word),
		asm.Add.Imm(regCursor, ipv4MinLen),
		asm.Ja.Label(labelFastL4),
	)

	// Inner IPv6: TCP or UDP directly after the fixed header.
	b.at(labelFastIPv6)
	b.need(regCursor, ipv6HeaderLen, labelRedirect)
	b.emit(
		asm.LoadMem(asm.R1, regCursor, 0, asm.Byte),
		asm.RSh.Imm(asm.R1, 4),
		asm.JNE.Imm(asm.R1, 6, labelRedirect),
		asm.LoadMem(asm.R2, regCursor, 4, asm.Half), // payload length
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.Mov.Reg(asm.R1, asm.R2),
		asm.Add.Imm(asm.R1, ipv6HeaderLen),
		asm.JSGT.Reg(asm.R1, asm.R4, labelRedirect),
		asm.LoadMem(asm.R5, regCursor, 6, asm.Byte),
		asm.StoreImm(asm.RFP, stackFastKey+8, 6, asm.Byte),
		asm.StoreMem(asm.RFP, stackFastKey+9, asm.R5, asm.Byte),
	)
	for i := int16(0); i < 16; i += 4 {
		b.emit(
			asm.LoadMem(asm.R1, regCursor, 8+i, asm.Word),
			asm.StoreMem(asm.RFP, stackFastKey+12+i, asm.R1, asm.Word),
			asm.LoadMem(asm.R1, regCursor, 24+i, asm.Word),
			asm.StoreMem(asm.RFP, stackFastKey+28+i, asm.R1, asm.Word),
		)
	}
	b.emit(asm.Add.Imm(regCursor, ipv6HeaderLen))

	// L4, with R2 the length the inner header gives it.
	b.at(labelFastL4)
	b.emit(
		asm.JEq.Imm(asm.R5, protoTCP, labelFastTCP),
		asm.JNE.Imm(asm.R5, protoUDP, labelRedirect),
		asm.JSLT.Imm(asm.R2, udpHeaderLen, labelRedirect),
	)
	b.need(regCursor, udpHeaderLen, labelRedirect)
	b.emit(
		// The UDP length as user space's decoder checks it: at least the
		// header, within the inner packet.
		asm.LoadMem(asm.R1, regCursor, 4, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.JLT.Imm(asm.R1, udpHeaderLen, labelRedirect),
		asm.JSGT.Reg(asm.R1, asm.R2, labelRedirect),
		asm.Ja.Label(labelFastPorts),
	)
	// TCP: state changes (SYN, FIN, RST) go to user space's flow table.
	b.at(labelFastTCP)
	b.emit(asm.JSLT.Imm(asm.R2, tcpMinLen, labelRedirect))
	b.need(regCursor, tcpMinLen, labelRedirect)
	b.emit(
		asm.LoadMem(asm.R1, regCursor, tcpFlagsOff, asm.Byte),
		asm.And.Imm(asm.R1, tcpFinSynRst),
		asm.JNE.Imm(asm.R1, 0, labelRedirect),
		// The data offset as user space's decoder checks it: at least 5
		// words, within the inner packet.
		asm.LoadMem(asm.R1, regCursor, 12, asm.Byte),
		asm.RSh.Imm(asm.R1, 4),
		asm.JLT.Imm(asm.R1, 5, labelRedirect),
		asm.LSh.Imm(asm.R1, 2),
		asm.JSGT.Reg(asm.R1, asm.R2, labelRedirect),
	)
	b.at(labelFastPorts)
	b.emit(
		asm.LoadMem(asm.R1, regCursor, 0, asm.Half),
		asm.StoreMem(asm.RFP, stackFastKey+44, asm.R1, asm.Half),
		asm.LoadMem(asm.R1, regCursor, 2, asm.Half),
		asm.StoreMem(asm.RFP, stackFastKey+46, asm.R1, asm.Half),
		asm.StoreMem(asm.RFP, stackFastBytes, asm.R4, asm.DWord),
		asm.LoadMapPtr(asm.R1, 0).WithReference(MapFastFlows),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackFastKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, labelRedirect),
		// A hit: the cursor is not needed any more; it holds the flow's
		// counters. They are shared by the CPUs (a per-CPU value would cost
		// a copy per CPU of every entry), so the adds are atomic; a flow's
		// packets mostly arrive on one queue, so they rarely contend.
		asm.Mov.Reg(regCursor, asm.R0),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(regCursor, asm.R1, asm.DWord, fastPacketsOff),
		asm.LoadMem(asm.R2, asm.RFP, stackFastBytes, asm.DWord),
		asm.AddAtomic.Mem(regCursor, asm.R2, asm.DWord, fastBytesOff),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(regCursor, fastLastSeenOff, asm.R0, asm.DWord),
		// The reply: outer IP addresses swapped, by the family parsed.
		asm.LoadMem(asm.R1, asm.RFP, stackIPHeader, asm.DWord),
		asm.JEq.Imm(regIsIPv4, 0, labelFastSwap6),
	)
	b.swap(asm.R1, 12, 16, 4)
	b.emit(asm.Ja.Label(labelFastEth))
	b.at(labelFastSwap6)
	b.swap(asm.R1, 8, 24, 16)
	b.at(labelFastEth)
	b.emit(asm.LoadMem(asm.R1, asm.RFP, stackFrame, asm.DWord))
	b.swap(asm.R1, 0, 6, 6)
	b.addCounter(CounterFastPathBytes, stackFastUDP)
	b.emit(asm.Mov.Imm(regCtx, actionTX))
	b.countAndReturn(CounterFastPath, regCtx)
}

// udpOffset keeps at stackUDPOffset, as a number, the offset from the frame's
// start that the cursor's constant adds sum to by the outer UDP header: the
// fast path compares the datagram's end with the frame's length, and a
// pointer cannot become a number without CAP_PERFMON. set stores n, else n
// is added. It uses R1 only.
func (b *builder) udpOffset(n int32, set bool) {
	if set {
		b.emit(asm.Mov.Imm(asm.R1, n))
	} else {
		b.emit(
			asm.LoadMem(asm.R1, asm.RFP, stackUDPOffset, asm.DWord),
			asm.Add.Imm(asm.R1, n),
		)
	}
	b.emit(asm.StoreMem(asm.RFP, stackUDPOffset, asm.R1, asm.DWord))
}

// swap exchanges n bytes at ptr+a with those at ptr+b, in words and a
// trailing half word, using R2 and R3.
func (b *builder) swap(ptr asm.Register, a, c, n int16) {
	for i := int16(0); i < n; {
		size, step := asm.Word, int16(4)
		if n-i < 4 {
			size, step = asm.Half, 2
		}
		b.emit(
			asm.LoadMem(asm.R2, ptr, a+i, size),
			asm.LoadMem(asm.R3, ptr, c+i, size),
			asm.StoreMem(ptr, a+i, asm.R3, size),
			asm.StoreMem(ptr, c+i, asm.R2, size),
		)
		i += step
	}
}
