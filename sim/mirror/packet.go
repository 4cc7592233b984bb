package mirror

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"

	"weir/dataplane/packet"
	"weir/vxlan"
)

const (
	protoTCP = packet.ProtoTCP
	protoUDP = packet.ProtoUDP
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

// appendPacket appends the inner IP packet of f's next packet, with transport payload
// length plen (ignored for TCP handshake and FIN segments, which carry none; at least
// SeqLen otherwise), and advances the flow's TCP and IP state. seq is the frame number
// put at the start of the payload, built in scratch; fill supplies the rest. Even
// packets go from client to server, odd ones back.
func (f *flow) appendPacket(dst []byte, seq uint64, plen int, fill, scratch []byte) []byte {
	if f.TCPFlags()&(packet.TCPSyn|packet.TCPFin) != 0 {
		plen = 0
	}
	if plen != 0 && plen < SeqLen {
		plen = SeqLen
	}
	pl := scratch[:plen]
	if plen > 0 {
		binary.BigEndian.PutUint64(pl, seq)
		for n := SeqLen; n < len(pl); {
			n += copy(pl[n:], fill[int(seq%251):])
		}
	}
	return f.AppendNext(dst, pl)
}
