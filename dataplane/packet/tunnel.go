package packet

import "encoding/binary"

// IANA protocol numbers of tunnels that carry an IP packet.
const (
	ProtoIPIP uint8 = 4  // IPv4 in IP (RFC 2003)
	ProtoIPv6 uint8 = 41 // IPv6 in IP (RFC 2473; 6in4 per RFC 4213)
	ProtoGRE  uint8 = 47 // Generic Routing Encapsulation (RFC 2784, RFC 2890, RFC 2637)
)

// MaxTunnelDepth is how many tunnels a caller should open, one inside the other,
// before it stops and inspects the packet it has. Tunnelled opens one layer; the
// caller decodes the inner packet and may call Tunnelled again, and without a limit
// a crafted packet of nested headers would cost a decode per few bytes. Suricata
// bounds the same recursion by layers (decoder.max-layers, 16 by default, counting
// every header); 4 tunnels is more than real networks nest (GRE over IPsec over
// 6in4 is already unusual) and stays well under that.
const MaxTunnelDepth = 4

// TunnelKind is the encapsulation Tunnelled opened. The address families of the
// outer and inner packets tell 4in4 from 6in4 and so on.
type TunnelKind uint8

// Tunnel kinds.
const (
	TunnelNone TunnelKind = iota // not a tunnel protocol
	TunnelIPIP                   // IP in IP: protocol 4 or 41
	TunnelGRE                    // GRE version 0 (RFC 2784, RFC 2890)
	TunnelPPTP                   // enhanced GRE, version 1 (RFC 2637): PPP from a PPTP session
)

var tunnelKindNames = [...]string{
	TunnelNone: "none",
	TunnelIPIP: "ipip",
	TunnelGRE:  "gre",
	TunnelPPTP: "pptp",
}

// String returns the kind as a lowercase label, e.g. "gre".
func (k TunnelKind) String() string {
	if int(k) < len(tunnelKindNames) {
		return tunnelKindNames[k]
	}
	return "unknown"
}

// Tunnelled returns the IP packet carried by a packet that Decode or
// DecodeEthernet decoded without error, if its protocol is a tunnel: IPv4 or IPv6
// in IP (protocols 4 and 41) or GRE (47). inner is within the decoded buffer (no
// copy) and ends where the outer packet does; decode it with Decode, and repeat, at
// most MaxTunnelDepth times:
//
//	for depth := 0; depth < packet.MaxTunnelDepth; depth++ {
//		inner, kind, err := p.Tunnelled()
//		if kind == packet.TunnelNone || err != nil {
//			break // err, a Reason, says why a tunnel could not be opened
//		}
//		if err := p.Decode(inner); err != nil {
//			break
//		}
//	}
//
// For any other protocol kind is TunnelNone and err nil. Otherwise kind says the
// encapsulation and err, a Reason, why it cannot be opened: the outer packet is a
// fragment (ReasonTunnelFragment); it or the tunnel carries nothing (ReasonEmpty;
// for example a PPTP acknowledgment); the GRE header is malformed (ReasonGREHeader); GRE carries
// another protocol, such as ERSPAN (ReasonGREProtocol); PPP carries another
// protocol (ReasonNotIP) or is truncated (ReasonPPPHeader); a bridged Ethernet
// frame is truncated (ReasonEthernetHeader) or not IP (ReasonNotIP); or the inner
// packet's version does not match the protocol that announced it (ReasonVersion).
//
// GRE version 0 may carry a checksum (not verified), a key and a sequence number,
// and IPv4 (0x0800), IPv6 (0x86dd), PPP (0x880b) or an Ethernet frame (0x6558,
// transparent Ethernet bridging: up to MaxVLANTags VLAN tags, then IP). Version 1
// carries PPP, cut to the header's payload length. PPP may start with the address
// and control bytes 0xff 0x03 and may compress its protocol to one byte; it must
// carry IPv4 (0x0021) or IPv6 (0x0057).
//
// Tunnelled only reads p and never allocates. After Decode fails it gives
// ReasonEmpty or TunnelNone.
func (p *Packet) Tunnelled() (inner []byte, kind TunnelKind, err error) {
	switch p.Proto {
	case ProtoIPIP, ProtoIPv6:
		kind = TunnelIPIP
	case ProtoGRE:
		kind = TunnelGRE
	default:
		return nil, TunnelNone, nil
	}
	if p.Fragment || p.FirstFragment {
		return nil, kind, ReasonTunnelFragment
	}
	if len(p.tunnel) == 0 {
		return nil, kind, ReasonEmpty
	}
	switch p.Proto {
	case ProtoIPIP:
		inner, err = ipOf(IPv4Version, p.tunnel)
	case ProtoIPv6:
		inner, err = ipOf(IPv6Version, p.tunnel)
	default:
		inner, kind, err = greInner(p.tunnel)
	}
	return inner, kind, err
}

// ipOf returns b if it is a non-empty packet of IP version v.
func ipOf(v uint8, b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, ReasonEmpty
	}
	if b[0]>>4 != v {
		return nil, ReasonVersion
	}
	return b, nil
}

// ipOfEtherType returns b if it is a non-empty IP packet of the version that
// etherType names.
func ipOfEtherType(etherType uint16, b []byte) ([]byte, error) {
	switch etherType {
	case EtherTypeIPv4:
		return ipOf(IPv4Version, b)
	case EtherTypeIPv6:
		return ipOf(IPv6Version, b)
	}
	return nil, ReasonNotIP
}

// greInner opens the GRE packet b.
func greInner(b []byte) ([]byte, TunnelKind, error) {
	if len(b) < GREMinimumSize {
		return nil, TunnelGRE, ReasonGREHeader
	}
	g := GRE(b)
	kind := TunnelGRE
	switch g.Version() {
	case 0:
		// Only routing (RFC 1701 source routes) is refused, as Linux refuses it.
		// The strict-route, recursion and reserved bits are ignored, as Linux
		// ignores them (and RFC 2784 says to ignore bits 6-12): a packet the
		// endpoint decapsulates must not escape inspection by setting one.
		if g[0]&GRERouting != 0 {
			return nil, kind, ReasonGREHeader
		}
	case 1:
		kind = TunnelPPTP
		if g[0]&^GRESequence != GREKey || g[1]&^(GREAck|greVersion) != 0 || g.Protocol() != EtherTypePPP {
			return nil, kind, ReasonGREHeader
		}
	default:
		return nil, kind, ReasonGREHeader
	}
	hl := g.HeaderLength()
	if hl > len(b) {
		return nil, kind, ReasonGREHeader
	}
	payload := b[hl:]
	if kind == TunnelPPTP {
		n := int(g.PayloadLength())
		if n > len(payload) {
			return nil, kind, ReasonGREHeader
		}
		payload = payload[:n]
	}
	var inner []byte
	var err error
	switch typ := g.Protocol(); typ {
	case EtherTypeIPv4, EtherTypeIPv6:
		inner, err = ipOfEtherType(typ, payload)
	case EtherTypeTEB:
		if len(payload) == 0 {
			return nil, kind, ReasonEmpty
		}
		typ, ip, ok := EthernetPayload(payload)
		if !ok {
			return nil, kind, ReasonEthernetHeader
		}
		inner, err = ipOfEtherType(typ, ip)
	case EtherTypePPP:
		if len(payload) == 0 {
			return nil, kind, ReasonEmpty
		}
		proto, ip, ok := PPPPayload(payload)
		if !ok {
			return nil, kind, ReasonPPPHeader
		}
		inner, err = ipOfPPP(proto, ip)
	default:
		return nil, kind, ReasonGREProtocol
	}
	return inner, kind, err
}

// ipOfPPP returns b if it is a non-empty IP packet of the version that the PPP
// protocol proto names.
func ipOfPPP(proto uint16, b []byte) ([]byte, error) {
	switch proto {
	case PPPProtoIPv4:
		return ipOf(IPv4Version, b)
	case PPPProtoIPv6:
		return ipOf(IPv6Version, b)
	}
	return nil, ReasonNotIP
}

// EtherTypes (GRE protocol types) of what GRE carries besides IPv4 and IPv6.
const (
	EtherTypeTEB    uint16 = 0x6558 // transparent Ethernet bridging: an Ethernet frame
	EtherTypePPP    uint16 = 0x880b // PPP, as PPTP carries it
	EtherTypeERSPAN uint16 = 0x88be // ERSPAN type II; not opened
)

// GRE flag bits: the first byte's, then the second's (RFC 2784, RFC 2890, RFC 2637).
const (
	GREChecksum    uint8 = 0x80 // C: checksum and offset present
	GRERouting     uint8 = 0x40 // R: RFC 1701 routing present (and checksum and offset)
	GREKey         uint8 = 0x20 // K: key present
	GRESequence    uint8 = 0x10 // S: sequence number present
	GREStrictRoute uint8 = 0x08 // s: RFC 1701 strict source route

	GREAck     uint8 = 0x80 // A: acknowledgment number present (version 1)
	greVersion uint8 = 0x07
)

// GREMinimumSize is the GRE header without optional fields.
const GREMinimumSize = 4

// GRE is a GRE header (RFC 2784 with RFC 2890's key and sequence number; RFC 2637's
// enhanced version 1 for PPTP):
//
//	0: C R K S s recur (3 bits) | 1: A flags (4 bits) version (3) | 2: protocol type (2)
//	4: checksum (2) offset (2), if C or R
//	   key (4), if K; version 1: payload length (2) call ID (2)
//	   sequence number (4), if S
//	   acknowledgment number (4), if A (version 1)
//
// The optional-field accessors need the field present (and HeaderLength bytes).
type GRE []byte

// Version returns the version: 0, or 1 for PPTP.
func (b GRE) Version() uint8 { return b[1] & greVersion }

// Protocol returns the protocol type, an EtherType.
func (b GRE) Protocol() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// ChecksumPresent reports whether the checksum and offset fields are present.
func (b GRE) ChecksumPresent() bool { return b[0]&(GREChecksum|GRERouting) != 0 }

// KeyPresent reports whether the key field is present.
func (b GRE) KeyPresent() bool { return b[0]&GREKey != 0 }

// SequencePresent reports whether the sequence number is present.
func (b GRE) SequencePresent() bool { return b[0]&GRESequence != 0 }

// AckPresent reports whether the acknowledgment number is present; only version 1
// has one.
func (b GRE) AckPresent() bool { return b.Version() == 1 && b[1]&GREAck != 0 }

// keyOffset is where the key would be: after the checksum and offset, if present.
func (b GRE) keyOffset() int {
	if b.ChecksumPresent() {
		return 8
	}
	return 4
}

// sequenceOffset is where the sequence number would be.
func (b GRE) sequenceOffset() int {
	if b.KeyPresent() {
		return b.keyOffset() + 4
	}
	return b.keyOffset()
}

// ackOffset is where the acknowledgment number would be.
func (b GRE) ackOffset() int {
	if b.SequencePresent() {
		return b.sequenceOffset() + 4
	}
	return b.sequenceOffset()
}

// HeaderLength returns the header length in bytes, optional fields included
// (RFC 1701 routing entries, which Tunnelled refuses, are not counted).
func (b GRE) HeaderLength() int {
	if b.AckPresent() {
		return b.ackOffset() + 4
	}
	return b.ackOffset()
}

// Checksum returns the checksum; ChecksumPresent must be true.
func (b GRE) Checksum() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// Key returns the key; KeyPresent must be true. In version 1 it holds the payload
// length and the call ID.
func (b GRE) Key() uint32 { return binary.BigEndian.Uint32(b[b.keyOffset():]) }

// PayloadLength returns a version 1 header's payload length (the key's upper half).
func (b GRE) PayloadLength() uint16 { return binary.BigEndian.Uint16(b[b.keyOffset():]) }

// CallID returns a version 1 header's call ID (the key's lower half).
func (b GRE) CallID() uint16 { return binary.BigEndian.Uint16(b[b.keyOffset()+2:]) }

// Sequence returns the sequence number; SequencePresent must be true.
func (b GRE) Sequence() uint32 { return binary.BigEndian.Uint32(b[b.sequenceOffset():]) }

// Ack returns the acknowledgment number; AckPresent must be true.
func (b GRE) Ack() uint32 { return binary.BigEndian.Uint32(b[b.ackOffset():]) }

// Payload returns what follows the header.
func (b GRE) Payload() []byte { return b[b.HeaderLength():] }

// PPP protocol numbers (RFC 1661; RFC 1332 for IPv4, RFC 5072 for IPv6).
const (
	PPPProtoIPv4 uint16 = 0x0021
	PPPProtoIPv6 uint16 = 0x0057
)

// PPPPayload reads a PPP header (RFC 1661) at the start of b, as PPTP's GRE and
// capture link types carry it: the address and control bytes 0xff 0x03 (RFC 1662
// HDLC-like framing) if present, then the protocol, in one byte if compressed (RFC
// 1661 section 6.5: an odd first byte) or two. It returns the protocol and what
// follows it; ok is false if b is too short for the protocol field. It never
// allocates.
func PPPPayload(b []byte) (proto uint16, payload []byte, ok bool) {
	if len(b) >= 2 && b[0] == 0xff && b[1] == 0x03 {
		b = b[2:]
	}
	switch {
	case len(b) >= 1 && b[0]&1 == 1:
		return uint16(b[0]), b[1:], true
	case len(b) >= 2:
		return binary.BigEndian.Uint16(b), b[2:], true
	}
	return 0, nil, false
}
