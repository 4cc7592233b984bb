package geneve

import (
	"encoding/binary"
	"net/netip"
)

// ReplyHeaderLen is the length of the outer IPv4 and UDP headers of a reply.
const ReplyHeaderLen = 20 + 8

// Outer is the outer IPv4/UDP addressing of a datagram GWLB sent us.
type Outer struct {
	Src, Dst         netip.Addr // GWLB, then appliance
	SrcPort, DstPort uint16     // GWLB's ephemeral port P, then 6081
}

// PutReplyHeaders writes into hdr (at least ReplyHeaderLen bytes) the outer IPv4 and
// UDP headers of the reply to a datagram that arrived with addressing o and GENEVE
// payload datagram: the addresses swapped, both ports kept (appliance:P to GWLB:6081),
// as GWLB requires. The GENEVE header, its options and the inner packet go out
// unchanged after these headers, so the caller sends hdr and datagram as two iovecs
// without copying the packet. The IP checksum is filled by the caller's kernel when it
// sends with IP_HDRINCL, but written here too so that the bytes are right anywhere.
func PutReplyHeaders(hdr []byte, o Outer, datagram []byte, id uint16) {
	src, dst := o.Dst.As4(), o.Src.As4()
	total := ReplyHeaderLen + len(datagram)
	ip := hdr[:20]
	ip[0] = 0x45
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	binary.BigEndian.PutUint16(ip[4:], id)
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF: GWLB never fragments
	ip[8] = 64
	ip[9] = 17
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(checksum(0, ip)))

	udp := hdr[20:28]
	binary.BigEndian.PutUint16(udp[0:], o.SrcPort)
	binary.BigEndian.PutUint16(udp[2:], o.DstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(datagram)))
	udp[6], udp[7] = 0, 0
	// The UDP checksum covers a pseudo-header whose address sum does not change when
	// the addresses swap, so it could be copied from the received datagram; sockets do
	// not hand that over, so it is computed.
	sum := checksum(0, src[:])
	sum = checksum(sum, dst[:])
	sum += 17 + uint32(8+len(datagram))
	sum = checksum(sum, udp)
	sum = checksum(sum, datagram)
	c := ^fold(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
}

// checksum adds b to the running one's-complement sum. Fold and complement the result
// for the Internet checksum; b of odd length is padded with a zero byte.
func checksum(sum uint32, b []byte) uint32 {
	var s uint64 = uint64(sum)
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		s += v >> 32
		s += v & 0xffffffff
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s>>32 != 0 {
		s = (s & 0xffffffff) + (s >> 32)
	}
	return uint32(s)
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = (s & 0xffff) + (s >> 16)
	}
	return uint16(s)
}
