package packet

import (
	"encoding/binary"
	"net/netip"
)

// Headers are typed byte slices read in place, in the style of gVisor's
// pkg/tcpip/header: converting a []byte costs nothing and the accessors read like
// the RFC. An accessor does not check the length: the caller must first make sure
// the slice holds the header's minimum size (the *MinimumSize constants) and, for
// variable-length headers, the length the header states. A short slice panics.

// Header sizes and versions.
const (
	EthernetMinimumSize = 14 // destination, source, EtherType
	VLANTagSize         = 4  // TCI, EtherType (the TPID is the previous EtherType)
	IPv4MinimumSize     = 20 // IHL 5
	IPv4MaximumSize     = 60 // IHL 15
	IPv6MinimumSize     = 40 // fixed header
	IPv6FragmentSize    = 8  // the fragment extension header has a fixed size
	IPv6ExtMinimumSize  = 8  // every other extension header is at least 8 bytes
	TCPMinimumSize      = 20 // data offset 5
	UDPMinimumSize      = 8
	ICMPMinimumSize     = 4 // type, code, checksum
	ICMPEchoSize        = 8 // adds identifier and sequence number

	IPv4Version = 4
	IPv6Version = 6
)

// EtherTypes.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeIPv6 uint16 = 0x86dd
	EtherTypeVLAN uint16 = 0x8100 // IEEE 802.1Q customer tag
	EtherTypeQinQ uint16 = 0x88a8 // IEEE 802.1ad service tag
	EtherTypeARP  uint16 = 0x0806
)

// IPv6 extension header and other IANA protocol numbers (RFC 8200).
const (
	ProtoHopByHop    uint8 = 0
	ProtoRouting     uint8 = 43
	ProtoFragment    uint8 = 44
	ProtoESP         uint8 = 50
	ProtoAH          uint8 = 51
	ProtoNoNext      uint8 = 59
	ProtoDestination uint8 = 60
)

// More TCP flag bits (RFC 3168 and RFC 9293).
const (
	TCPUrg uint8 = 0x20
	TCPEce uint8 = 0x40
	TCPCwr uint8 = 0x80
)

// ICMP (RFC 792) message types.
const (
	ICMPv4EchoReply      uint8 = 0
	ICMPv4DstUnreachable uint8 = 3
	ICMPv4Echo           uint8 = 8
	ICMPv4TimeExceeded   uint8 = 11
	ICMPv4ParamProblem   uint8 = 12
)

// ICMPv6 (RFC 4443) message types.
const (
	ICMPv6DstUnreachable uint8 = 1
	ICMPv6PacketTooBig   uint8 = 2
	ICMPv6TimeExceeded   uint8 = 3
	ICMPv6ParamProblem   uint8 = 4
	ICMPv6EchoRequest    uint8 = 128
	ICMPv6EchoReply      uint8 = 129
)

// IPv4 flag bits as returned by IPv4.Flags.
const (
	IPv4FlagMoreFragments uint8 = 1
	IPv4FlagDontFragment  uint8 = 2
)

// Ethernet is an Ethernet II header (IEEE 802.3):
//
//	0: destination (6) | 6: source (6) | 12: EtherType (2)
type Ethernet []byte

// Destination returns the destination MAC address.
func (b Ethernet) Destination() [6]byte { return [6]byte(b[0:6]) }

// Source returns the source MAC address.
func (b Ethernet) Source() [6]byte { return [6]byte(b[6:12]) }

// Type returns the EtherType (or the TPID of a VLAN tag that follows).
func (b Ethernet) Type() uint16 { return binary.BigEndian.Uint16(b[12:]) }

// Payload returns what follows the header.
func (b Ethernet) Payload() []byte { return b[EthernetMinimumSize:] }

// VLAN is an IEEE 802.1Q tag after its TPID (which is the EtherType before it):
//
//	0: PCP (3 bits) DEI (1) VID (12) | 2: EtherType (2)
type VLAN []byte

// ID returns the 12-bit VLAN identifier.
func (b VLAN) ID() uint16 { return binary.BigEndian.Uint16(b[0:]) & 0x0fff }

// Priority returns the 3-bit priority code point.
func (b VLAN) Priority() uint8 { return b[0] >> 5 }

// Type returns the EtherType of what follows the tag.
func (b VLAN) Type() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// Payload returns what follows the tag.
func (b VLAN) Payload() []byte { return b[VLANTagSize:] }

// IPv4 is an IPv4 header (RFC 791):
//
//	 0: version (4 bits) IHL (4) | 1: TOS | 2: total length (2)
//	 4: identification (2)       | 6: flags (3 bits) fragment offset (13)
//	 8: TTL | 9: protocol        | 10: header checksum (2)
//	12: source address (4)
//	16: destination address (4)
//	20: options (IHL*4 - 20)
type IPv4 []byte

// Version returns the version nibble (4 for a valid header).
func (b IPv4) Version() uint8 { return b[0] >> 4 }

// HeaderLength returns the header length in bytes (IHL * 4), options included.
func (b IPv4) HeaderLength() int { return int(b[0]&0x0f) * 4 }

// TOS returns the type-of-service byte (DSCP and ECN).
func (b IPv4) TOS() uint8 { return b[1] }

// TotalLength returns the length of the whole packet, header included.
func (b IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// ID returns the identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// Flags returns the three flag bits (IPv4FlagMoreFragments, IPv4FlagDontFragment).
func (b IPv4) Flags() uint8 { return b[6] >> 5 }

// More reports whether the more-fragments flag is set.
func (b IPv4) More() bool { return b.Flags()&IPv4FlagMoreFragments != 0 }

// FragmentOffset returns the fragment offset in bytes (the field counts 8-byte units).
func (b IPv4) FragmentOffset() uint16 { return binary.BigEndian.Uint16(b[6:]) << 3 }

// TTL returns the time to live.
func (b IPv4) TTL() uint8 { return b[8] }

// Protocol returns the protocol of the payload.
func (b IPv4) Protocol() uint8 { return b[9] }

// Checksum returns the header checksum.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[10:]) }

// SourceAddress returns the source address.
func (b IPv4) SourceAddress() netip.Addr { return netip.AddrFrom4([4]byte(b[12:16])) }

// DestinationAddress returns the destination address.
func (b IPv4) DestinationAddress() netip.Addr { return netip.AddrFrom4([4]byte(b[16:20])) }

// Options returns the options, between the fixed header and HeaderLength.
func (b IPv4) Options() []byte { return b[IPv4MinimumSize:b.HeaderLength()] }

// Payload returns what follows the header up to the end of the slice; the caller
// trims the slice to TotalLength first.
func (b IPv4) Payload() []byte { return b[b.HeaderLength():] }

// IPv6 is the fixed IPv6 header (RFC 8200):
//
//	 0: version (4 bits) traffic class (8) flow label (20)
//	 4: payload length (2) | 6: next header | 7: hop limit
//	 8: source address (16)
//	24: destination address (16)
type IPv6 []byte

// Version returns the version nibble (6 for a valid header).
func (b IPv6) Version() uint8 { return b[0] >> 4 }

// TrafficClass returns the traffic class (DSCP and ECN).
func (b IPv6) TrafficClass() uint8 { return uint8(binary.BigEndian.Uint16(b[0:]) >> 4) }

// FlowLabel returns the 20-bit flow label.
func (b IPv6) FlowLabel() uint32 { return binary.BigEndian.Uint32(b[0:]) & 0x000fffff }

// PayloadLength returns the length of what follows the fixed header, extension
// headers included.
func (b IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// NextHeader returns the protocol of the first extension header or of the payload.
func (b IPv6) NextHeader() uint8 { return b[6] }

// HopLimit returns the hop limit.
func (b IPv6) HopLimit() uint8 { return b[7] }

// SourceAddress returns the source address.
func (b IPv6) SourceAddress() netip.Addr { return netip.AddrFrom16([16]byte(b[8:24])) }

// DestinationAddress returns the destination address.
func (b IPv6) DestinationAddress() netip.Addr {
	return netip.AddrFrom16([16]byte(b[24:40]))
}

// Payload returns what follows the fixed header up to the end of the slice; the
// caller trims the slice to IPv6MinimumSize+PayloadLength first.
func (b IPv6) Payload() []byte { return b[IPv6MinimumSize:] }

// IPv6Ext is a Hop-by-Hop Options, Routing or Destination Options extension header
// (RFC 8200 section 4), all of which share this layout:
//
//	0: next header | 1: length in 8-byte units, not counting the first 8 | 2: data
type IPv6Ext []byte

// NextHeader returns the protocol of the following header.
func (b IPv6Ext) NextHeader() uint8 { return b[0] }

// Length returns the header length in bytes: (b[1]+1) * 8.
func (b IPv6Ext) Length() int { return (int(b[1]) + 1) * 8 }

// IPv6AH is an IPsec Authentication Header (RFC 4302), which counts its length in
// 4-byte units:
//
//	0: next header | 1: length in 4-byte units minus 2 | 2: reserved (2)
//	4: SPI (4) | 8: sequence number (4) | 12: ICV
type IPv6AH []byte

// NextHeader returns the protocol of the following header.
func (b IPv6AH) NextHeader() uint8 { return b[0] }

// Length returns the header length in bytes: (b[1]+2) * 4.
func (b IPv6AH) Length() int { return (int(b[1]) + 2) * 4 }

// IPv6Fragment is the IPv6 Fragment extension header (RFC 8200 section 4.5):
//
//	0: next header | 1: reserved | 2: fragment offset (13 bits) res (2) M (1)
//	4: identification (4)
type IPv6Fragment []byte

// NextHeader returns the protocol of the fragmentable part.
func (b IPv6Fragment) NextHeader() uint8 { return b[0] }

// FragmentOffset returns the fragment offset in bytes (the field counts 8-byte units).
func (b IPv6Fragment) FragmentOffset() uint16 { return binary.BigEndian.Uint16(b[2:]) &^ 7 }

// More reports whether the M (more fragments) flag is set.
func (b IPv6Fragment) More() bool { return b[3]&1 != 0 }

// ID returns the identification field.
func (b IPv6Fragment) ID() uint32 { return binary.BigEndian.Uint32(b[4:]) }

// TCP is a TCP header (RFC 9293):
//
//	 0: source port (2) | 2: destination port (2)
//	 4: sequence number (4)
//	 8: acknowledgment number (4)
//	12: data offset (4 bits) reserved (4) | 13: flags | 14: window (2)
//	16: checksum (2) | 18: urgent pointer (2)
//	20: options (data offset*4 - 20)
type TCP []byte

// SourcePort returns the source port.
func (b TCP) SourcePort() uint16 { return binary.BigEndian.Uint16(b[0:]) }

// DestinationPort returns the destination port.
func (b TCP) DestinationPort() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// SequenceNumber returns the sequence number.
func (b TCP) SequenceNumber() uint32 { return binary.BigEndian.Uint32(b[4:]) }

// AckNumber returns the acknowledgment number.
func (b TCP) AckNumber() uint32 { return binary.BigEndian.Uint32(b[8:]) }

// DataOffset returns the header length in bytes (the data offset field * 4).
func (b TCP) DataOffset() int { return int(b[12]>>4) * 4 }

// Flags returns the flags byte (TCPFin ... TCPCwr).
func (b TCP) Flags() uint8 { return b[13] }

// WindowSize returns the receive window.
func (b TCP) WindowSize() uint16 { return binary.BigEndian.Uint16(b[14:]) }

// Checksum returns the checksum.
func (b TCP) Checksum() uint16 { return binary.BigEndian.Uint16(b[16:]) }

// UrgentPointer returns the urgent pointer.
func (b TCP) UrgentPointer() uint16 { return binary.BigEndian.Uint16(b[18:]) }

// Options returns the options, between the fixed header and DataOffset.
func (b TCP) Options() []byte { return b[TCPMinimumSize:b.DataOffset()] }

// Payload returns what follows the header.
func (b TCP) Payload() []byte { return b[b.DataOffset():] }

// UDP is a UDP header (RFC 768):
//
//	0: source port (2) | 2: destination port (2) | 4: length (2) | 6: checksum (2)
type UDP []byte

// SourcePort returns the source port.
func (b UDP) SourcePort() uint16 { return binary.BigEndian.Uint16(b[0:]) }

// DestinationPort returns the destination port.
func (b UDP) DestinationPort() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// Length returns the length of header and payload.
func (b UDP) Length() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// Checksum returns the checksum.
func (b UDP) Checksum() uint16 { return binary.BigEndian.Uint16(b[6:]) }

// Payload returns what follows the header up to the end of the slice.
func (b UDP) Payload() []byte { return b[UDPMinimumSize:] }

// ICMP is an ICMP (RFC 792) or ICMPv6 (RFC 4443) header; both share the layout.
// The second word depends on the type: identifier and sequence number for echo,
// the MTU for packet too big (v6; v4 fragmentation needed keeps it in bytes 6-7),
// the pointer for parameter problem, unused otherwise. Errors quote the offending packet after it.
//
//	0: type | 1: code | 2: checksum (2) | 4: type-specific (4) | 8: body
type ICMP []byte

// Type returns the message type.
func (b ICMP) Type() uint8 { return b[0] }

// Code returns the message code.
func (b ICMP) Code() uint8 { return b[1] }

// Checksum returns the checksum.
func (b ICMP) Checksum() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// Ident returns the echo identifier.
func (b ICMP) Ident() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// Sequence returns the echo sequence number.
func (b ICMP) Sequence() uint16 { return binary.BigEndian.Uint16(b[6:]) }

// MTU returns the next-hop MTU of an ICMPv6 packet too big message (32 bits).
func (b ICMP) MTU() uint32 { return binary.BigEndian.Uint32(b[4:]) }

// Payload returns the body after the 8-byte header: for an error, the quoted packet.
func (b ICMP) Payload() []byte { return b[ICMPEchoSize:] }
