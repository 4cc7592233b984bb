package mirrorsim

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"

	"weir/geneve"
	"weir/vxlan"
)

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

const (
	etherTypeIPv4 uint16 = 0x0800
	etherTypeIPv6 uint16 = 0x86dd
	etherTypeVLAN uint16 = 0x8100
	etherTypeQinQ uint16 = 0x88a8
)

// FirstSourcePort and NumSourcePorts are the outer UDP source ports: a flow's port is
// FirstSourcePort + hash % NumSourcePorts (before any fallback). A real Traffic
// Mirroring capture shows ports 0xff80-0xffff; they also lie above Linux's ephemeral
// range, so they rarely collide with local sockets.
const (
	FirstSourcePort = 0xff80
	NumSourcePorts  = 0x80
)

// RouterMAC returns (a copy of) the inner MAC of the side that is not the ENI: the
// VPC router's, 06:00:00:00:00:01.
func RouterMAC() net.HardwareAddr { return net.HardwareAddr(bytes.Clone(routerMAC[:])) }

var routerMAC = [6]byte{0x06, 0, 0, 0, 0, 0x01}

// prefixLen is the VXLAN header and the inner Ethernet header in front of the inner
// IP packet.
const prefixLen = vxlan.HeaderLen + 14

// SeqLen is the length of the frame number at the start of every inner transport
// payload that has one (TCP data, UDP, ICMP echo data), big endian. Handshake and FIN
// segments carry no payload.
const SeqLen = 8

// putPrefix writes the VXLAN header and the inner Ethernet header into b[:prefixLen].
func putPrefix(b []byte, vni uint32, src, dst *[6]byte, etherType uint16) {
	vxlan.AppendHeader(b[:0], vni)
	copy(b[8:14], dst[:])
	copy(b[14:20], src[:])
	binary.BigEndian.PutUint16(b[20:22], etherType)
}

// tupleHash hashes a 5-tuple the same way in both directions: FNV-1a over the
// protocol and the two (address, port) endpoints in ascending order.
func tupleHash(proto uint8, a netip.Addr, ap uint16, b netip.Addr, bp uint16) uint64 {
	if c := a.Compare(b); c > 0 || c == 0 && ap > bp {
		a, b, ap, bp = b, a, bp, ap
	}
	h := fnvAdd(fnvOffset, proto)
	aa, bb := a.As16(), b.As16()
	for _, c := range aa {
		h = fnvAdd(h, c)
	}
	h = fnvAdd(fnvAdd(h, byte(ap>>8)), byte(ap))
	for _, c := range bb {
		h = fnvAdd(h, c)
	}
	return fnvAdd(fnvAdd(h, byte(bp>>8)), byte(bp))
}

// macHash hashes a non-IP frame by EtherType and its two MACs, in both directions
// alike.
func macHash(etherType uint16, x, y []byte) uint64 {
	if string(x) > string(y) {
		x, y = y, x
	}
	h := fnvAdd(fnvAdd(fnvOffset, byte(etherType>>8)), byte(etherType))
	for _, c := range x {
		h = fnvAdd(h, c)
	}
	for _, c := range y {
		h = fnvAdd(h, c)
	}
	return h
}

const fnvOffset uint64 = 14695981039346656037

func fnvAdd(h uint64, c byte) uint64 { return (h ^ uint64(c)) * 1099511628211 }

// hashPort maps a flow hash onto the outer source ports.
func hashPort(h uint64) uint16 { return FirstSourcePort + uint16(h%NumSourcePorts) }

// frameTuple reads the IP addresses, protocol and ports (TCP and UDP only; 0 for
// others and for non-first fragments) of an Ethernet frame, skipping up to two VLAN
// tags. ok is false for non-IP and truncated frames; etherType is the innermost
// EtherType read.
func frameTuple(frame []byte) (src, dst netip.Addr, proto uint8, sp, dp uint16, etherType uint16, ok bool) {
	if len(frame) < 14 {
		return
	}
	etherType = binary.BigEndian.Uint16(frame[12:14])
	p := frame[14:]
	for i := 0; i < 2 && (etherType == etherTypeVLAN || etherType == etherTypeQinQ) && len(p) >= 4; i++ {
		etherType = binary.BigEndian.Uint16(p[2:4])
		p = p[4:]
	}
	var l4 []byte
	switch etherType {
	case etherTypeIPv4:
		if len(p) < 20 || p[0]>>4 != 4 {
			return
		}
		hl := int(p[0]&0x0f) * 4
		src = netip.AddrFrom4([4]byte(p[12:16]))
		dst = netip.AddrFrom4([4]byte(p[16:20]))
		proto = p[9]
		if hl >= 20 && hl <= len(p) && binary.BigEndian.Uint16(p[6:8])&0x1fff == 0 {
			l4 = p[hl:]
		}
	case etherTypeIPv6:
		if len(p) < 40 || p[0]>>4 != 6 {
			return
		}
		src = netip.AddrFrom16([16]byte(p[8:24]))
		dst = netip.AddrFrom16([16]byte(p[24:40]))
		proto = p[6]
		l4 = p[40:]
	default:
		return
	}
	if (proto == protoTCP || proto == protoUDP) && len(l4) >= 4 {
		sp, dp = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
	}
	return src, dst, proto, sp, dp, etherType, true
}

// headerLens returns the inner IP and transport header lengths of packet i of f.
func (f *flow) headerLens(i int) (ipHL, l4HL int) {
	ipHL = 20
	if f.v6 {
		ipHL = 40
	}
	switch {
	case f.proto != protoTCP:
		l4HL = 8
	case i < 2:
		l4HL = 24 // SYN and SYN-ACK carry an MSS option
	default:
		l4HL = 20
	}
	return ipHL, l4HL
}

// tcpFlags returns the flags of packet i of a TCP flow: SYN, SYN-ACK, PSH-ACK with
// data..., FIN-ACK.
func (f *flow) tcpFlags(i int) byte {
	switch {
	case i == 0:
		return tcpSYN
	case i == 1:
		return tcpSYN | tcpACK
	case i == f.packets-1:
		return tcpFIN | tcpACK
	default:
		return tcpPSH | tcpACK
	}
}

// appendPacket appends the inner IP packet of packet f.next, with transport payload
// length plen (ignored for TCP handshake and FIN segments, which carry none; at least
// SeqLen otherwise), and advances the flow's TCP and IP state. seq is the frame number
// put at the start of the payload; fill supplies the rest. Even packets go from
// client to server, odd ones back.
func (f *flow) appendPacket(dst []byte, seq uint64, plen int, fill []byte) []byte {
	i := f.next
	c2s := i%2 == 0
	ipHL, l4HL := f.headerLens(i)
	var flags byte
	if f.proto == protoTCP {
		flags = f.tcpFlags(i)
		if flags&(tcpSYN|tcpFIN) != 0 {
			plen = 0
		}
	}
	if plen != 0 && plen < SeqLen {
		plen = SeqLen
	}
	total := ipHL + l4HL + plen

	off := len(dst)
	dst = append(dst, make([]byte, total)...)
	pkt := dst[off:]
	ip, l4, pl := pkt[:ipHL], pkt[ipHL:ipHL+l4HL], pkt[ipHL+l4HL:]
	if plen > 0 {
		binary.BigEndian.PutUint64(pl, seq)
		for n := SeqLen; n < len(pl); {
			n += copy(pl[n:], fill[int(seq%251):])
		}
	}

	src, dstA := f.cli, f.srv
	sp, dp := f.cport, f.sport
	if !c2s {
		src, dstA = f.srv, f.cli
		sp, dp = f.sport, f.cport
	}

	if f.v6 {
		label := f.clabel
		if !c2s {
			label = f.slabel
		}
		binary.BigEndian.PutUint32(ip[0:], 6<<28|label&0xfffff)
		binary.BigEndian.PutUint16(ip[4:], uint16(l4HL+plen))
		ip[6] = f.proto
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
		ip[9] = f.proto
		s, d := src.As4(), dstA.As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
		binary.BigEndian.PutUint16(ip[10:], ^fold(geneve.Checksum(0, ip)))
	}

	seg := pkt[ipHL:]
	switch f.proto {
	case protoTCP:
		binary.BigEndian.PutUint16(l4[0:], sp)
		binary.BigEndian.PutUint16(l4[2:], dp)
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
		case f.proto == protoICMP && c2s:
			typ = 8 // echo request
		case f.proto == protoICMP:
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
		if f.proto == protoICMP {
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
