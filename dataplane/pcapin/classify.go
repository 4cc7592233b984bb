package pcapin

import (
	"encoding/binary"

	"github.com/gopacket/gopacket/layers"

	"weir/dataplane"
	"weir/dataplane/packet"
	"weir/geneve"
	"weir/vxlan"
)

// Link types that carry raw IP besides LINKTYPE_RAW (101): some writers put DLT_RAW's
// value (12) in the file; 228 and 229 are raw IPv4 and raw IPv6.
const (
	linkRawDLT12 layers.LinkType = 12
	linkRawIPv4  layers.LinkType = 228
	linkRawIPv6  layers.LinkType = 229
)

// Classify fills slot s from a captured frame of the given link type, as a backend
// would from a datagram: UDP to 4789 is VXLAN and to 6081 GENEVE (Buf is the UDP
// payload, Outer its addressing); any other frame is plain traffic (Buf and Frame the
// Ethernet frame, or Buf and Inner the IP packet). It reports false for a frame that
// not even an outer header can be read from. s must have been Reset.
func Classify(s *dataplane.Slot, link layers.LinkType, data []byte) bool {
	var ip []byte
	switch link {
	case layers.LinkTypeEthernet:
		if o, payload, ok := packet.ParseOuter(data); ok && tunnelled(s, &o, payload) {
			return true
		}
		s.Encap = dataplane.EncapNone
		s.Buf, s.Frame = data, data
		return true
	case layers.LinkTypeRaw, linkRawDLT12, linkRawIPv4, linkRawIPv6:
		ip = data
	case layers.LinkTypeLinuxSLL: // 16 bytes, the protocol last
		if len(data) < 16 || !isIP(binary.BigEndian.Uint16(data[14:16])) {
			return false
		}
		ip = data[16:]
	case layers.LinkTypeLinuxSLL2: // 20 bytes, the protocol first; what tcpdump -i any writes now
		if len(data) < 20 || !isIP(binary.BigEndian.Uint16(data[0:2])) {
			return false
		}
		ip = data[20:]
	case layers.LinkTypeNull, layers.LinkTypeLoop: // BSD loopback: a 4-byte address family
		if len(data) < 4 || !isLoopbackIP(data[:4]) {
			return false
		}
		ip = data[4:]
	case layers.LinkTypePPP, layers.LinkTypePPP_HDLC:
		var ok bool
		if ip, ok = pppIP(data, link == layers.LinkTypePPP_HDLC); !ok {
			return false
		}
	case layers.LinkTypeC_HDLC: // Cisco HDLC: address, control, then an EtherType
		if len(data) < 4 || !isIP(binary.BigEndian.Uint16(data[2:4])) {
			return false
		}
		ip = data[4:]
	default:
		return false
	}
	if o, payload, ok := packet.ParseUDP(ip); ok && tunnelled(s, &o, payload) {
		return true
	}
	s.Encap = dataplane.EncapNone
	s.Buf, s.Inner = ip, ip
	return true
}

// ReadsLinkType reports whether Classify reads frames of link type link at all.
func ReadsLinkType(link layers.LinkType) bool {
	switch link {
	case layers.LinkTypeEthernet, layers.LinkTypeRaw, linkRawDLT12, linkRawIPv4, linkRawIPv6,
		layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2, layers.LinkTypeNull, layers.LinkTypeLoop,
		layers.LinkTypePPP, layers.LinkTypePPP_HDLC, layers.LinkTypeC_HDLC:
		return true
	}
	return false
}

// BSD address families of IPv4 and IPv6 as loopback headers hold them. IPv6's
// value differs between the BSDs: 24 on NetBSD and OpenBSD, 28 on FreeBSD, 30 on
// Darwin.
const (
	afInet       = 2
	afInet6BSD   = 24
	afInet6Free  = 28
	afInet6Apple = 30
)

// isLoopbackIP reports whether the 4-byte loopback header h names IPv4 or IPv6.
// LINKTYPE_NULL holds the family in the capturing host's byte order and
// LINKTYPE_LOOP in network order; as Wireshark does, both orders are tried, which
// cannot confuse the small values that are families.
func isLoopbackIP(h []byte) bool {
	for _, af := range [2]uint32{binary.LittleEndian.Uint32(h), binary.BigEndian.Uint32(h)} {
		switch af {
		case afInet, afInet6BSD, afInet6Free, afInet6Apple:
			return true
		}
	}
	return false
}

// pppIP returns the IP packet of a LINKTYPE_PPP or LINKTYPE_PPP_HDLC frame: PPP
// (optionally behind the 0xff 0x03 of HDLC-like framing, its protocol perhaps
// compressed to one byte) carrying IPv4 (0x0021) or IPv6 (0x0057); or, if cisco
// (LINKTYPE_PPP_HDLC), Cisco HDLC (address 0x0f or 0x8f, control, an EtherType).
func pppIP(data []byte, cisco bool) ([]byte, bool) {
	if cisco && len(data) >= 4 && (data[0] == 0x0f || data[0] == 0x8f) {
		return data[4:], isIP(binary.BigEndian.Uint16(data[2:4]))
	}
	proto, ip, ok := packet.PPPPayload(data)
	return ip, ok && (proto == packet.PPPProtoIPv4 || proto == packet.PPPProtoIPv6)
}

func isIP(etherType uint16) bool {
	return etherType == packet.EtherTypeIPv4 || etherType == packet.EtherTypeIPv6
}

// tunnelled fills s if o is addressed to a tunnel port.
func tunnelled(s *dataplane.Slot, o *packet.Outer, payload []byte) bool {
	switch o.DstPort {
	case vxlan.Port:
		s.Encap = dataplane.EncapVXLAN
	case geneve.Port:
		s.Encap = dataplane.EncapGeneve
	default:
		return false
	}
	s.Buf = payload
	s.Outer = geneve.Outer{Src: o.Src, Dst: o.Dst, SrcPort: o.SrcPort, DstPort: o.DstPort}
	return true
}
