// Package packet decodes the inner packet a tunnel carries: IPv4 (with options), IPv6
// (walking extension headers), TCP, UDP, ICMP and ICMPv6, into a fixed struct without
// allocating. Headers are typed byte slices (header.go) read in place.
package packet

import "net/netip"

// IANA protocol numbers used here.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// TCP flag bits as in the TCP header's flags byte.
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPPsh uint8 = 0x08
	TCPAck uint8 = 0x10
)

// Packet is one decoded inner IP packet. Decode overwrites every field, so a Packet
// can be reused for each packet of a batch. See Decode for what each protocol sets.
type Packet struct {
	Family   uint8      // 4 or 6
	Proto    uint8      // transport protocol (after IPv6 extension headers)
	TTL      uint8      // IPv4 TTL, IPv6 hop limit
	Src, Dst netip.Addr // IP addresses
	// SrcPort and DstPort are TCP/UDP ports. For ICMP and ICMPv6 echo request and
	// reply both hold the echo identifier, so that a ping and its replies share a flow;
	// for other ICMP messages both are 0.
	SrcPort, DstPort   uint16
	TCPFlags           uint8
	Seq                uint32 // TCP sequence number, for stream inspection
	ICMPType, ICMPCode uint8
	// Length is the IP packet's own length: the IPv4 total length, or 40 + the IPv6
	// payload length. Bytes the link added after it (padding) are not counted.
	Length   int
	Fragment bool // a non-first fragment: no transport header to read, ports are 0
	// FragmentID identifies the packet a fragment belongs to (the IPv4
	// Identification or the IPv6 fragment header's), and FirstFragment marks the
	// first fragment of a fragmented packet (offset 0, more to come): it carries the
	// ports, the later fragments (Fragment) do not.
	FragmentID    uint32
	FirstFragment bool
	// Quote holds the packet quoted by an ICMP or ICMPv6 error (destination
	// unreachable, time exceeded, parameter problem, packet too big), in the direction
	// it was originally sent, so that the error counts against that flow.
	Quote Quote
	// Payload is the transport payload, within the decoded buffer (no copy): the
	// TCP segment's data after its options, the UDP datagram's data (cut to the UDP
	// length), or an ICMP/ICMPv6 message's body after its first 8 bytes (after the
	// identifier and sequence of an echo, the quoted packet of an error). Nil for
	// fragments after the first, other protocols, and bodiless messages. It is what
	// detection matches content against.
	Payload []byte

	// tunnel is the IP payload of an IP-in-IP or GRE packet (protocols 4, 41, 47),
	// kept for Tunnelled; nil for every other protocol.
	tunnel []byte
}

// Quote is the addressing of the packet inside an ICMP error. Valid is false, and
// every field zero, when the message is no such error or its quote is too short to
// hold the quoted IP header (with extension headers) and the ports it needs.
type Quote struct {
	Valid            bool
	Proto            uint8
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}
