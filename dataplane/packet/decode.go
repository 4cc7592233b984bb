package packet

// MaxExtHeaders is how many IPv6 extension headers Decode walks before it gives up
// with ReasonExtHeader. RFC 8200 section 4.1 recommends each type at most once
// (Destination Options twice), which is fewer than this.
const MaxExtHeaders = 8

// Decode decodes the IP packet b, its version taken from the first nibble, into p.
// It resets p first and never allocates; b is only read and is not retained.
//
// IPv4 options are skipped by IHL, and bytes after the total length (link padding)
// are ignored. IPv6 extension headers (Hop-by-Hop, Routing, Fragment, Destination
// Options, AH) are walked to the transport protocol; ESP and No Next Header end the
// walk with Proto set to them and no ports. A non-first fragment (non-zero fragment
// offset, v4 or v6) sets Fragment and has no ports; a first fragment is decoded like
// a whole packet. Checksums are not verified.
//
// TCP and UDP set the ports, TCP also TCPFlags. ICMP (protocol 1) and ICMPv6
// (protocol 58) set ICMPType and ICMPCode; an echo request or reply sets both ports
// to its identifier; an error (v4 destination unreachable, time exceeded, parameter
// problem; v6 destination unreachable, packet too big, time exceeded, parameter
// problem) decodes the packet it quotes into Quote, which stays invalid if the quote
// is truncated or malformed (not an error). Other protocols leave the ports zero.
//
// On error the result is a Reason. p then holds what was decoded before the fault
// (for example Family, Src and Dst when the TCP header is bad) and zero after it.
func (p *Packet) Decode(b []byte) error {
	*p = Packet{}
	if len(b) == 0 {
		return ReasonEmpty
	}
	switch b[0] >> 4 {
	case IPv4Version:
		return p.decodeIPv4(b)
	case IPv6Version:
		return p.decodeIPv6(b)
	}
	return ReasonVersion
}

// DecodeEthernet decodes an Ethernet II frame: it skips the Ethernet header and up
// to two VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8) and decodes the IPv4 or IPv6
// packet that follows, as Decode does. Length is still that of the IP packet. Another
// EtherType is ReasonNotIP; an IP version that does not match the EtherType is
// ReasonVersion. It resets p first and never allocates.
func (p *Packet) DecodeEthernet(b []byte) error {
	*p = Packet{}
	typ, b, ok := EthernetPayload(b)
	if !ok {
		return ReasonEthernetHeader
	}
	var version uint8
	switch typ {
	case EtherTypeIPv4:
		version = IPv4Version
	case EtherTypeIPv6:
		version = IPv6Version
	default:
		return ReasonNotIP
	}
	if len(b) == 0 {
		return ReasonEmpty
	}
	if b[0]>>4 != version {
		return ReasonVersion
	}
	if version == IPv4Version {
		return p.decodeIPv4(b)
	}
	return p.decodeIPv6(b)
}

func (p *Packet) decodeIPv4(b []byte) error {
	if len(b) < IPv4MinimumSize {
		return ReasonIPv4Header
	}
	ip := IPv4(b)
	hl := ip.HeaderLength()
	if hl < IPv4MinimumSize || hl > len(b) {
		return ReasonIPv4Header
	}
	p.Family = IPv4Version
	p.Proto = ip.Protocol()
	p.TTL = ip.TTL()
	p.Src = ip.SourceAddress()
	p.Dst = ip.DestinationAddress()
	tl := int(ip.TotalLength())
	if tl < hl || tl > len(b) {
		return ReasonIPv4Length
	}
	p.Length = tl
	if off := ip.FragmentOffset(); off != 0 || ip.More() {
		p.FragmentID = uint32(ip.ID())
		if off != 0 {
			p.Fragment = true
			return nil
		}
		p.FirstFragment = true
	}
	return p.decodeTransport(b[hl:tl])
}

func (p *Packet) decodeIPv6(b []byte) error {
	if len(b) < IPv6MinimumSize {
		return ReasonIPv6Header
	}
	ip := IPv6(b)
	p.Family = IPv6Version
	p.TTL = ip.HopLimit()
	p.Src = ip.SourceAddress()
	p.Dst = ip.DestinationAddress()
	n := IPv6MinimumSize + int(ip.PayloadLength())
	if n > len(b) {
		return ReasonIPv6Length
	}
	p.Length = n
	proto, payload, fh, ok := walkIPv6(ip.NextHeader(), b[IPv6MinimumSize:n])
	p.Proto = proto
	if !ok {
		return ReasonExtHeader
	}
	if fh != nil && (fh.FragmentOffset() != 0 || fh.More()) {
		p.FragmentID = fh.ID()
		if fh.FragmentOffset() != 0 {
			p.Fragment = true
			return nil
		}
		p.FirstFragment = true
	}
	return p.decodeTransport(payload)
}

// walkIPv6 follows the IPv6 extension header chain that starts with protocol next
// at b. It returns the protocol after the last extension header (or the one the
// last header named, if it failed), the bytes from that header on, and the fragment
// header if there is one. For a non-first fragment the walk stops at the fragment
// header and payload is nil. ok is false if a header is truncated or there are more
// than MaxExtHeaders.
func walkIPv6(next uint8, b []byte) (proto uint8, payload []byte, frag IPv6Fragment, ok bool) {
	for n := 0; ; n++ {
		switch next {
		case ProtoHopByHop, ProtoRouting, ProtoFragment, ProtoDestination, ProtoAH:
		default:
			return next, b, frag, true
		}
		// All of these are at least 8 bytes long.
		if n == MaxExtHeaders || len(b) < IPv6ExtMinimumSize {
			return next, nil, nil, false
		}
		var l int
		switch next {
		case ProtoFragment:
			frag = IPv6Fragment(b[:IPv6FragmentSize])
			if frag.FragmentOffset() != 0 {
				return frag.NextHeader(), nil, frag, true
			}
			l = IPv6FragmentSize
		case ProtoAH:
			l = IPv6AH(b).Length()
		default:
			l = IPv6Ext(b).Length()
		}
		if l > len(b) {
			return next, nil, nil, false
		}
		// Every extension header starts with its next header byte.
		next, b = b[0], b[l:]
	}
}

// decodeTransport decodes the transport header at b, the IP payload, for p.Proto.
func (p *Packet) decodeTransport(b []byte) error {
	switch p.Proto {
	case ProtoTCP:
		if len(b) < TCPMinimumSize {
			return ReasonTCPHeader
		}
		t := TCP(b)
		if off := t.DataOffset(); off < TCPMinimumSize || off > len(b) {
			return ReasonTCPHeader
		}
		p.SrcPort = t.SourcePort()
		p.DstPort = t.DestinationPort()
		p.TCPFlags = t.Flags()
		p.Seq = t.SequenceNumber()
		p.Payload = nonEmpty(b[t.DataOffset():])
	case ProtoUDP:
		if len(b) < UDPMinimumSize {
			return ReasonUDPHeader
		}
		u := UDP(b)
		l := int(u.Length())
		if l > len(b) && p.FirstFragment {
			l = len(b) // the UDP length covers the whole datagram, the fragment only its start
		}
		if l < UDPMinimumSize || l > len(b) {
			return ReasonUDPHeader
		}
		p.SrcPort = u.SourcePort()
		p.DstPort = u.DestinationPort()
		p.Payload = nonEmpty(b[UDPMinimumSize:l])
	case ProtoICMP, ProtoICMPv6:
		if len(b) < ICMPMinimumSize {
			return ReasonICMPHeader
		}
		m := ICMP(b)
		p.ICMPType = m.Type()
		p.ICMPCode = m.Code()
		if len(b) > ICMPEchoSize {
			p.Payload = b[ICMPEchoSize:]
		}
		switch {
		case isEcho(p.Proto, m.Type()):
			if len(b) < ICMPEchoSize {
				return ReasonICMPHeader
			}
			p.SrcPort = m.Ident()
			p.DstPort = m.Ident()
		case isError(p.Proto, m.Type()) && len(b) >= ICMPEchoSize:
			if p.Proto == ProtoICMP {
				p.Quote.decode(IPv4Version, m.Payload())
			} else {
				p.Quote.decode(IPv6Version, m.Payload())
			}
		}
	case ProtoIPIP, ProtoIPv6, ProtoGRE:
		p.tunnel = b
	}
	return nil
}

// isEcho reports whether an ICMP (proto 1) or ICMPv6 (58) message of type typ is an
// echo request or reply.
func isEcho(proto, typ uint8) bool {
	if proto == ProtoICMP {
		return typ == ICMPv4Echo || typ == ICMPv4EchoReply
	}
	return typ == ICMPv6EchoRequest || typ == ICMPv6EchoReply
}

// isError reports whether an ICMP (proto 1) or ICMPv6 (58) message of type typ is an
// error that quotes the packet that caused it.
func isError(proto, typ uint8) bool {
	if proto == ProtoICMP {
		return typ == ICMPv4DstUnreachable || typ == ICMPv4TimeExceeded ||
			typ == ICMPv4ParamProblem
	}
	return typ >= ICMPv6DstUnreachable && typ <= ICMPv6ParamProblem
}

// decode decodes into q, which must be zero, the packet quoted by an ICMP error
// (family 4) or an ICMPv6 error (family 6): its IP header, extension headers
// included, and the start of its transport header. A quote is usually cut short, so
// its own lengths are not checked against the data; but if the IP header, an
// extension header or the bytes needed for the ports (4 for TCP and UDP, 8 for an
// ICMP echo) are missing, q stays invalid.
func (q *Quote) decode(family uint8, b []byte) {
	var ipHdr []byte // the quoted IPv4 or IPv6 header, for its addresses
	var proto uint8
	var frag bool
	if family == IPv4Version {
		if len(b) < IPv4MinimumSize || b[0]>>4 != IPv4Version {
			return
		}
		ip := IPv4(b)
		hl := ip.HeaderLength()
		if hl < IPv4MinimumSize || hl > len(b) {
			return
		}
		ipHdr, proto, frag, b = b, ip.Protocol(), ip.FragmentOffset() != 0, b[hl:]
	} else {
		if len(b) < IPv6MinimumSize || b[0]>>4 != IPv6Version {
			return
		}
		var ok bool
		var fh IPv6Fragment
		ipHdr = b
		proto, b, fh, ok = walkIPv6(IPv6(b).NextHeader(), b[IPv6MinimumSize:])
		if !ok {
			return
		}
		frag = fh != nil && fh.FragmentOffset() != 0
	}
	var sport, dport uint16
	if !frag { // a non-first fragment has no ports
		switch proto {
		case ProtoTCP, ProtoUDP:
			if len(b) < 4 {
				return
			}
			// TCP and UDP both start with the two ports.
			sport, dport = UDP(b).SourcePort(), UDP(b).DestinationPort()
		case ProtoICMP, ProtoICMPv6:
			if len(b) < ICMPMinimumSize {
				return
			}
			if m := ICMP(b); isEcho(proto, m.Type()) {
				if len(b) < ICMPEchoSize {
					return
				}
				sport, dport = m.Ident(), m.Ident()
			}
		}
	}
	if family == IPv4Version {
		q.Src, q.Dst = IPv4(ipHdr).SourceAddress(), IPv4(ipHdr).DestinationAddress()
	} else {
		q.Src, q.Dst = IPv6(ipHdr).SourceAddress(), IPv6(ipHdr).DestinationAddress()
	}
	q.Valid, q.Proto, q.SrcPort, q.DstPort = true, proto, sport, dport
}

// nonEmpty is b, or nil when b is empty, so that "no payload" has one form.
func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
