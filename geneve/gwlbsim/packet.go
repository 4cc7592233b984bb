package gwlbsim

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"

	"weir/geneve"
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

const (
	protoICMP   uint8 = 1
	protoTCP    uint8 = 6
	protoUDP    uint8 = 17
	protoICMPv6 uint8 = 58
)

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpPSH = 0x08
	tcpACK = 0x10
)

// flow is one synthetic conversation. The sender goroutine owns the packet-building
// state; the counters are guarded by runner.mu.
type flow struct {
	idx     int
	proto   uint8 // protoTCP, protoUDP, protoICMP or protoICMPv6
	v6      bool
	denied  bool
	cli     netip.Addr // client (initiator)
	srv     netip.Addr // server
	cport   uint16     // client port; ICMP echo identifier
	sport   uint16     // server port; 0 for ICMP
	aws     geneve.AWS
	hdr     []byte // GENEVE header with the AWS options, identical in both directions
	sock    int    // index of the source socket (GWLB's ephemeral port P)
	hash    uint64 // 5-tuple hash for target selection
	packets int    // packets in the flow
	next    int    // index of the next packet to send

	cseq, sseq uint32 // next TCP sequence number of client and server
	cid, sid   uint16 // next IPv4 identification of client and server
	clabel     uint32 // IPv6 flow labels
	slabel     uint32
	target     int // index into runner.targets, -1 while unassigned

	// guarded by runner.mu
	sent, returned, dropped, mismatched uint64
}

type tupleKey struct {
	proto    uint8
	cli, srv netip.Addr
	cp, sp   uint16
}

func (f *flow) key() tupleKey {
	return tupleKey{f.proto, f.cli, f.srv, f.cport, f.sport}
}

// protoName is the name FlowReport uses.
func (f *flow) protoName() string {
	switch f.proto {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoICMP:
		return "icmp"
	default:
		return "icmpv6"
	}
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
func randAddrIn(rng *rand.Rand, p netip.Prefix) netip.Addr {
	p = p.Masked()
	base := p.Addr().AsSlice()
	bits := p.Bits()
	hostBits := len(base)*8 - bits
	for try := 0; ; try++ {
		b := make([]byte, len(base))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		allZero, allOne := true, true
		for i := range b {
			keep := 0 // prefix bits in this byte
			switch {
			case (i+1)*8 <= bits:
				keep = 8
			case i*8 < bits:
				keep = bits - i*8
			}
			mask := ^(byte(0xff) >> keep) // the prefix bits of this byte
			b[i] = base[i]&mask | b[i]&^mask
			if b[i]&^mask != 0 {
				allZero = false
			}
			if b[i]&^mask != ^mask {
				allOne = false
			}
		}
		if hostBits >= 2 && (allZero || allOne) && try < 16 {
			continue
		}
		a, _ := netip.AddrFromSlice(b)
		return a
	}
}

var (
	clientNet4 = netip.MustParsePrefix("10.0.0.0/16")
	serverNet4 = netip.MustParsePrefix("10.1.0.0/16")
	clientNet6 = netip.MustParsePrefix("fd00:1::/64")
	serverNet6 = netip.MustParsePrefix("fd00:2::/64")
)

// headerLens returns the inner IP and transport header lengths of packet i of f.
func (f *flow) headerLens(i int) (ipHL, l4HL int) {
	ipHL = 20
	if f.v6 {
		ipHL = 40
	}
	switch f.proto {
	case protoTCP:
		l4HL = 20
		if i < 2 {
			l4HL = 24 // SYN and SYN-ACK carry an MSS option
		}
	default:
		l4HL = 8
	}
	return ipHL, l4HL
}

// appendPacket appends to dst the GENEVE datagram (header, options, inner packet) of
// packet f.next, with transport payload length plen (at least minPayload; ignored when
// jumbo, which pads the inner packet to JumboLen), and advances the flow's TCP and IP
// state. fill supplies the payload bytes after the sequence number.
func (f *flow) appendPacket(dst []byte, seq uint64, plen int, jumbo bool, fill []byte) []byte {
	i := f.next
	c2s := i%2 == 0
	ipHL, l4HL := f.headerLens(i)
	if jumbo {
		plen = JumboLen - ipHL - l4HL
	}
	if plen < minPayload {
		plen = minPayload
	}
	total := ipHL + l4HL + plen

	dst = append(dst, f.hdr...)
	off := len(dst)
	dst = append(dst, make([]byte, total)...)
	pkt := dst[off:]
	ip, l4, pl := pkt[:ipHL], pkt[ipHL:ipHL+l4HL], pkt[ipHL+l4HL:]

	binary.BigEndian.PutUint64(pl, seq)
	for n := SeqLen; n < len(pl); {
		n += copy(pl[n:], fill[int(seq%251):])
	}

	src, dstA := f.cli, f.srv
	sp, dp := f.cport, f.sport
	if !c2s {
		src, dstA = f.srv, f.cli
		sp, dp = f.sport, f.cport
	}

	l4proto := f.proto
	// IP header.
	if f.v6 {
		label := f.clabel
		if !c2s {
			label = f.slabel
		}
		binary.BigEndian.PutUint32(ip[0:], 6<<28|label&0xfffff)
		binary.BigEndian.PutUint16(ip[4:], uint16(l4HL+plen))
		ip[6] = l4proto
		ip[7] = 64
		s, d := src.As16(), dstA.As16()
		copy(ip[8:24], s[:])
		copy(ip[24:40], d[:])
	} else {
		id := &f.cid
		if !c2s {
			id = &f.sid
		}
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(total))
		binary.BigEndian.PutUint16(ip[4:], *id)
		*id++
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = 64
		ip[9] = l4proto
		s, d := src.As4(), dstA.As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
		binary.BigEndian.PutUint16(ip[10:], ^fold(geneve.Checksum(0, ip)))
	}

	// Transport header.
	seg := pkt[ipHL:]
	switch l4proto {
	case protoTCP:
		binary.BigEndian.PutUint16(l4[0:], sp)
		binary.BigEndian.PutUint16(l4[2:], dp)
		var flags byte
		switch {
		case i == 0:
			flags = tcpSYN
		case i == 1:
			flags = tcpSYN | tcpACK
		case i == f.packets-1:
			flags = tcpFIN | tcpACK
		default:
			flags = tcpPSH | tcpACK
		}
		mine, theirs := &f.cseq, &f.sseq
		if !c2s {
			mine, theirs = &f.sseq, &f.cseq
		}
		binary.BigEndian.PutUint32(l4[4:], *mine)
		if flags&tcpACK != 0 {
			binary.BigEndian.PutUint32(l4[8:], *theirs)
		}
		adv := uint32(plen)
		if flags&(tcpSYN|tcpFIN) != 0 {
			adv++
		}
		*mine += adv
		l4[12] = byte(l4HL/4) << 4
		l4[13] = flags
		binary.BigEndian.PutUint16(l4[14:], 64240)
		if l4HL == 24 {
			mss := uint16(1460)
			if f.v6 {
				mss = 1440
			}
			l4[20], l4[21] = 2, 4
			binary.BigEndian.PutUint16(l4[22:], mss)
		}
		binary.BigEndian.PutUint16(l4[16:], l4Checksum(src, dstA, protoTCP, seg))
	case protoUDP:
		binary.BigEndian.PutUint16(l4[0:], sp)
		binary.BigEndian.PutUint16(l4[2:], dp)
		binary.BigEndian.PutUint16(l4[4:], uint16(len(seg)))
		c := l4Checksum(src, dstA, protoUDP, seg)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[6:], c)
	case protoICMP, protoICMPv6:
		var typ byte
		switch {
		case l4proto == protoICMP && c2s:
			typ = 8 // echo request
		case l4proto == protoICMP:
			typ = 0 // echo reply
		case c2s:
			typ = 128
		default:
			typ = 129
		}
		l4[0] = typ
		binary.BigEndian.PutUint16(l4[4:], f.cport)       // identifier
		binary.BigEndian.PutUint16(l4[6:], uint16(i/2+1)) // sequence
		var c uint16
		if l4proto == protoICMP {
			c = ^fold(geneve.Checksum(0, seg))
		} else {
			c = l4Checksum(src, dstA, protoICMPv6, seg)
		}
		binary.BigEndian.PutUint16(l4[2:], c)
	}
	f.next++
	return dst
}

// l4Checksum is the Internet checksum of seg (its checksum field zero) with the IPv4
// or IPv6 pseudo-header.
func l4Checksum(src, dst netip.Addr, proto uint8, seg []byte) uint16 {
	var sum uint32
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		sum = geneve.Checksum(sum, s[:])
		sum = geneve.Checksum(sum, d[:])
	} else {
		s, d := src.As16(), dst.As16()
		sum = geneve.Checksum(sum, s[:])
		sum = geneve.Checksum(sum, d[:])
	}
	n := uint32(len(seg))
	sum += uint32(proto) + n&0xffff + n>>16
	sum = geneve.Checksum(sum, seg)
	return ^fold(sum)
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = (s & 0xffff) + (s >> 16)
	}
	return uint16(s)
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
	case protoTCP:
		if len(l4) < 20 {
			return 0, errMalformed
		}
		hl = int(l4[12]>>4) * 4
	case protoUDP, protoICMP, protoICMPv6:
		hl = 8
	default:
		return 0, errMalformed
	}
	if hl+SeqLen > len(l4) {
		return 0, errMalformed
	}
	return binary.BigEndian.Uint64(l4[hl:]), nil
}
