package packet

import "net/netip"

// MaxVLANTags is how many VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8) EthernetPayload
// skips: a QinQ service tag and a customer tag.
const MaxVLANTags = 2

// Outer is the addressing of a UDP datagram as it arrived: the outer headers of a
// tunnel (GENEVE, VXLAN) that every backend and the replay path read the same way.
type Outer struct {
	SrcMAC, DstMAC   [6]byte
	HasMAC           bool // set by ParseOuter; ParseUDP has no link header to read
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

// EthernetPayload skips the Ethernet II header of frame and up to MaxVLANTags VLAN
// tags, and returns the EtherType of what follows and its bytes (link padding
// included: the network header knows its own length). After more tags than that,
// etherType is the next tag's TPID, which no caller takes for IP. ok is false only
// when frame is too short for the headers it announces. It never allocates.
func EthernetPayload(frame []byte) (etherType uint16, payload []byte, ok bool) {
	if len(frame) < EthernetMinimumSize {
		return 0, nil, false
	}
	typ := Ethernet(frame).Type()
	b := Ethernet(frame).Payload()
	for range MaxVLANTags {
		if typ != EtherTypeVLAN && typ != EtherTypeQinQ {
			break
		}
		if len(b) < VLANTagSize {
			return 0, nil, false
		}
		typ = VLAN(b).Type()
		b = VLAN(b).Payload()
	}
	return typ, b, true
}

// ParseOuter reads an Ethernet frame (up to two VLAN tags) carrying an IPv4 or IPv6
// UDP datagram, as ParseUDP does, and adds the frame's MAC addresses. The IP version
// must match the EtherType. It never allocates; payload is within frame.
func ParseOuter(frame []byte) (o Outer, payload []byte, ok bool) {
	typ, ip, ok := EthernetPayload(frame)
	if !ok || len(ip) == 0 {
		return Outer{}, nil, false
	}
	switch {
	case typ == EtherTypeIPv4 && ip[0]>>4 == IPv4Version:
	case typ == EtherTypeIPv6 && ip[0]>>4 == IPv6Version:
	default:
		return Outer{}, nil, false
	}
	if o, payload, ok = ParseUDP(ip); !ok {
		return Outer{}, nil, false
	}
	o.DstMAC = Ethernet(frame).Destination()
	o.SrcMAC = Ethernet(frame).Source()
	o.HasMAC = true
	return o, payload, true
}

// ParseUDP reads an IP packet (the version from its first nibble) carrying a whole
// UDP datagram and returns its addressing and the UDP payload, cut to the UDP length.
// It takes what a kernel would deliver to a UDP socket, so that every backend sees
// the same datagrams:
//
//   - IPv4: options skipped by IHL; bytes after the total length (link padding)
//     ignored; a total length past the data refused (a truncated datagram).
//   - IPv6: Hop-by-Hop, Routing, Destination Options and AH headers walked to UDP
//     (as Decode walks them); bytes after the payload length ignored.
//   - Fragments, first or later, are refused: there is no reassembly here, and a
//     first fragment would give a cut payload. An IPv6 atomic fragment (offset 0,
//     no more fragments) is whole and taken.
//   - The UDP length must be at least 8 and within the IP payload.
//
// Checksums are not verified. It never allocates; payload is within ip.
func ParseUDP(ip []byte) (o Outer, payload []byte, ok bool) {
	var l4 []byte
	if len(ip) == 0 {
		return Outer{}, nil, false
	}
	switch ip[0] >> 4 {
	case IPv4Version:
		if len(ip) < IPv4MinimumSize {
			return Outer{}, nil, false
		}
		h := IPv4(ip)
		hl, tl := h.HeaderLength(), int(h.TotalLength())
		if hl < IPv4MinimumSize || tl < hl || tl > len(ip) || h.Protocol() != ProtoUDP ||
			h.More() || h.FragmentOffset() != 0 {
			return Outer{}, nil, false
		}
		o.Src, o.Dst = h.SourceAddress(), h.DestinationAddress()
		l4 = ip[hl:tl]
	case IPv6Version:
		if len(ip) < IPv6MinimumSize {
			return Outer{}, nil, false
		}
		h := IPv6(ip)
		n := IPv6MinimumSize + int(h.PayloadLength())
		if n > len(ip) {
			return Outer{}, nil, false
		}
		proto, rest, frag, walked := walkIPv6(h.NextHeader(), ip[IPv6MinimumSize:n])
		if !walked || proto != ProtoUDP || frag != nil && (frag.FragmentOffset() != 0 || frag.More()) {
			return Outer{}, nil, false
		}
		o.Src, o.Dst = h.SourceAddress(), h.DestinationAddress()
		l4 = rest
	default:
		return Outer{}, nil, false
	}
	if len(l4) < UDPMinimumSize {
		return Outer{}, nil, false
	}
	u := UDP(l4)
	ul := int(u.Length())
	if ul < UDPMinimumSize || ul > len(l4) {
		return Outer{}, nil, false
	}
	o.SrcPort, o.DstPort = u.SourcePort(), u.DestinationPort()
	return o, l4[UDPMinimumSize:ul], true
}
