package gwlb

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"

	"weir/dataplane/packet"
	"weir/geneve"
	"weir/sim/synth"
)

// JumboLen is the total length of the inner IP packet of a jumbo packet (see
// Config.JumboEvery): the largest inner packet GWLB carries.
const JumboLen = 8500

// SeqLen is the length of the sequence number at the start of every inner transport
// payload (TCP/UDP data, ICMP echo data), big endian.
const SeqLen = 8

// minPayload is the smallest transport payload: the sequence number and at least
// SeqLen bytes of filler, so that the last byte of a packet is never part of the
// sequence number.
const minPayload = 2 * SeqLen

// flow is one synthetic conversation. The sender goroutine owns the packet-building
// state (the Conversation); the counters are guarded by runner.mu.
type flow struct {
	synth.Conversation // 5-tuple, packet count, TCP and IP state

	idx    int
	denied bool
	aws    geneve.AWS
	hdr    []byte // GENEVE header with the AWS options, identical in both directions
	sock   int    // index of the source socket (GWLB's ephemeral port P)
	hash   uint64 // 5-tuple hash for target selection
	target int    // index into runner.targets, -1 while unassigned
	downs  uint64 // the target's downs count when the flow was put on it (sender only)

	// written under runner.mu by the sender
	first   int    // the first target, -1 while unassigned
	moves   int    // times moved off a failed target
	moveSeq uint64 // sequence number of the first packet after the first move

	// guarded by runner.mu
	sent, returned, dropped, mismatched uint64
	lostAfterMove                       uint64
}

// tupleHash is GWLB's 5-tuple flow hash (FNV-1a over protocol, addresses and ports,
// client side first, so both directions hash alike).
func tupleHash(proto uint8, a, b netip.Addr, ap, bp uint16) uint64 {
	h := fnv.New64a()
	var buf [2 + 16 + 16 + 4]byte
	buf[0] = proto
	aa, bb := a.As16(), b.As16()
	copy(buf[2:], aa[:])
	copy(buf[18:], bb[:])
	binary.BigEndian.PutUint16(buf[34:], ap)
	binary.BigEndian.PutUint16(buf[36:], bp)
	h.Write(buf[:])
	return h.Sum64()
}

// randAddrIn returns a random address inside p, avoiding the all-zeros and all-ones
// host parts when the prefix has room for them.
func randAddrIn(rng *rand.Rand, p netip.Prefix) netip.Addr { return synth.RandomAddr(rng, p) }

var (
	clientNet4 = netip.MustParsePrefix("10.0.0.0/16")
	serverNet4 = netip.MustParsePrefix("10.1.0.0/16")
	clientNet6 = netip.MustParsePrefix("fd00:1::/64")
	serverNet6 = netip.MustParsePrefix("fd00:2::/64")
)

// appendPacket appends to dst the GENEVE datagram (header, options, inner packet) of
// f's next packet, with transport payload length plen (at least minPayload; ignored when
// jumbo, which pads the inner packet to JumboLen), and advances the flow's TCP and IP
// state. The payload is seq followed by bytes of fill, built in scratch (at least
// JumboLen bytes).
func (f *flow) appendPacket(dst []byte, seq uint64, plen int, jumbo bool, fill, scratch []byte) []byte {
	if jumbo {
		plen = JumboLen - f.HeaderLen()
	}
	pl := scratch[:max(plen, minPayload)]
	binary.BigEndian.PutUint64(pl, seq)
	for n := SeqLen; n < len(pl); {
		n += copy(pl[n:], fill[int(seq%251):])
	}
	dst = append(dst, f.hdr...)
	return f.AppendNext(dst, pl)
}

var errMalformed = errors.New("malformed")

// SeqOf returns the sequence number the simulator put into the GENEVE datagram b
// (GENEVE header, options, inner IPv4 or IPv6 packet): the first SeqLen bytes of the
// inner transport payload.
func SeqOf(b []byte) (uint64, error) {
	_, inner, _, err := geneve.Decode(b)
	if err != nil {
		return 0, err
	}
	var proto uint8
	var l4 []byte
	switch inner[0] >> 4 {
	case 4:
		if len(inner) < 20 {
			return 0, errMalformed
		}
		hl := int(inner[0]&0x0f) * 4
		if hl < 20 || hl > len(inner) {
			return 0, errMalformed
		}
		proto, l4 = inner[9], inner[hl:]
	case 6:
		if len(inner) < 40 {
			return 0, errMalformed
		}
		proto, l4 = inner[6], inner[40:]
	default:
		return 0, errMalformed
	}
	var hl int
	switch proto {
	case packet.ProtoTCP:
		if len(l4) < 20 {
			return 0, errMalformed
		}
		hl = int(l4[12]>>4) * 4
	case packet.ProtoUDP, packet.ProtoICMP, packet.ProtoICMPv6:
		hl = 8
	default:
		return 0, errMalformed
	}
	if hl+SeqLen > len(l4) {
		return 0, errMalformed
	}
	return binary.BigEndian.Uint64(l4[hl:]), nil
}
