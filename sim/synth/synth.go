// Package synth builds the inner IP packets of synthetic conversations for the
// traffic simulators: IPv4 or IPv6 packets carrying a TCP connection (SYN, SYN-ACK,
// PSH-ACK data..., FIN-ACK, with sequence and acknowledgement numbers that continue
// across the conversation), UDP datagrams, or ICMP/ICMPv6 echo requests and replies,
// all with valid checksums. The caller supplies each packet's transport payload and
// keeps any framing around the packet (tunnel headers, Ethernet) to itself.
package synth

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"

	"weir/dataplane/packet"
)

// Conversation is one synthetic conversation between a client (the initiator) and a
// server. Packet i goes from the client to the server when i is even and back when it
// is odd. Set the exported fields, optionally RandomizeState, then append the packets
// in order with AppendNext. The zero state starts every TCP sequence number, IPv4
// identification and IPv6 flow label at 0.
type Conversation struct {
	Proto          uint8 // packet.ProtoTCP, packet.ProtoUDP, packet.ProtoICMP or packet.ProtoICMPv6
	V6             bool  // IPv6 packets (else IPv4); Client and Server are of this family
	Client, Server netip.Addr
	// ClientPort is the client's TCP or UDP port, and the echo identifier for ICMP
	// and ICMPv6; ServerPort is 0 for ICMP and ICMPv6.
	ClientPort, ServerPort uint16
	Packets                int // packets in the conversation; from three on, TCP ends with FIN-ACK

	next     int // index of the next packet
	cli, srv side
}

// side is the per-direction state of a conversation.
type side struct {
	seq   uint32 // next TCP sequence number
	id    uint16 // next IPv4 identification
	label uint32 // IPv6 flow label (20 bits)
}

// Tuple identifies a conversation by protocol, addresses and ports (client first).
type Tuple struct {
	Proto                  uint8
	Client, Server         netip.Addr
	ClientPort, ServerPort uint16
}

// Tuple returns c's 5-tuple.
func (c *Conversation) Tuple() Tuple {
	return Tuple{c.Proto, c.Client, c.Server, c.ClientPort, c.ServerPort}
}

// ProtoName returns "tcp", "udp", "icmp" or "icmpv6" (for any other Proto).
func (c *Conversation) ProtoName() string {
	switch c.Proto {
	case packet.ProtoTCP:
		return "tcp"
	case packet.ProtoUDP:
		return "udp"
	case packet.ProtoICMP:
		return "icmp"
	default:
		return "icmpv6"
	}
}

// PickTransport sets Proto from name ("tcp", "udp"; anything else is ICMP, or ICMPv6
// when V6 is set), ClientPort to a random ephemeral port in [32768, 61000), and for TCP
// and UDP ServerPort to a random one of ports (else 0). Set V6 first.
func (c *Conversation) PickTransport(rng *rand.Rand, name string, ports []uint16) {
	c.ClientPort = uint16(32768 + rng.IntN(61000-32768))
	c.ServerPort = 0
	switch name {
	case "tcp":
		c.Proto = packet.ProtoTCP
	case "udp":
		c.Proto = packet.ProtoUDP
	default:
		c.Proto = packet.ProtoICMP
		if c.V6 {
			c.Proto = packet.ProtoICMPv6
		}
	}
	if c.Proto == packet.ProtoTCP || c.Proto == packet.ProtoUDP {
		c.ServerPort = ports[rng.IntN(len(ports))]
	}
}

// RandomizeState draws the initial TCP sequence numbers, IPv4 identifications and IPv6
// flow labels of both sides from rng.
func (c *Conversation) RandomizeState(rng *rand.Rand) {
	c.cli.seq, c.srv.seq = rng.Uint32(), rng.Uint32()
	c.cli.id, c.srv.id = uint16(rng.Uint32()), uint16(rng.Uint32())
	c.cli.label, c.srv.label = rng.Uint32()&0xfffff, rng.Uint32()&0xfffff
}

// Next returns the index of the next packet AppendNext appends.
func (c *Conversation) Next() int { return c.next }

// Done reports whether every packet of the conversation has been appended or skipped.
func (c *Conversation) Done() bool { return c.next >= c.Packets }

// Skip passes over the next packet without building it: the index advances, the TCP
// and IP state does not (as if the packet was lost before it was numbered).
func (c *Conversation) Skip() { c.next++ }

// FromClient reports whether the next packet goes from the client to the server.
func (c *Conversation) FromClient() bool { return c.next%2 == 0 }

// TCPFlags returns the TCP flags of the next packet: SYN, SYN-ACK, PSH-ACK...,
// FIN-ACK for the last one; 0 for other protocols.
func (c *Conversation) TCPFlags() uint8 {
	if c.Proto != packet.ProtoTCP {
		return 0
	}
	switch i := c.next; {
	case i == 0:
		return packet.TCPSyn
	case i == 1:
		return packet.TCPSyn | packet.TCPAck
	case i == c.Packets-1:
		return packet.TCPFin | packet.TCPAck
	default:
		return packet.TCPPsh | packet.TCPAck
	}
}

// HeaderLen returns the length of the IP and transport headers of the next packet: the
// packet's length without its payload.
func (c *Conversation) HeaderLen() int {
	ipHL, l4HL := c.headerLens()
	return ipHL + l4HL
}

func (c *Conversation) headerLens() (ipHL, l4HL int) {
	ipHL = 20
	if c.V6 {
		ipHL = 40
	}
	switch {
	case c.Proto != packet.ProtoTCP:
		l4HL = 8
	case c.next < 2:
		l4HL = 24 // SYN and SYN-ACK carry an MSS option
	default:
		l4HL = 20
	}
	return ipHL, l4HL
}

// AppendNext appends to dst the next packet of the conversation, carrying payload as
// its transport payload, and advances the conversation: the index, the sender's IPv4
// identification and, for TCP, the sender's sequence number (by the payload length,
// plus one for SYN and FIN). Every TCP segment but the SYN acknowledges all the other
// side has sent. An ICMP or ICMPv6 echo request (client) or reply (server) carries
// ClientPort as identifier and i/2+1 as sequence number. IPv4 packets have DF set and
// TTL 64, IPv6 packets hop limit 64 and the sender's flow label. It does not allocate
// when dst has room for HeaderLen()+len(payload) more bytes.
func (c *Conversation) AppendNext(dst, payload []byte) []byte {
	i := c.next
	c2s := i%2 == 0
	ipHL, l4HL := c.headerLens()
	total := ipHL + l4HL + len(payload)

	off := len(dst)
	dst = append(dst, make([]byte, total)...)
	pkt := dst[off:]
	ip, l4 := pkt[:ipHL], pkt[ipHL:ipHL+l4HL]
	copy(pkt[ipHL+l4HL:], payload)

	src, dstA := c.Client, c.Server
	sp, dp := c.ClientPort, c.ServerPort
	me, peer := &c.cli, &c.srv
	if !c2s {
		src, dstA = c.Server, c.Client
		sp, dp = c.ServerPort, c.ClientPort
		me, peer = &c.srv, &c.cli
	}

	// IP header.
	if c.V6 {
		binary.BigEndian.PutUint32(ip[0:], 6<<28|me.label&0xfffff)
		binary.BigEndian.PutUint16(ip[4:], uint16(l4HL+len(payload)))
		ip[6] = c.Proto
		ip[7] = 64
		s, d := src.As16(), dstA.As16()
		copy(ip[8:24], s[:])
		copy(ip[24:40], d[:])
	} else {
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(total))
		binary.BigEndian.PutUint16(ip[4:], me.id)
		me.id++
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = 64
		ip[9] = c.Proto
		s, d := src.As4(), dstA.As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
		binary.BigEndian.PutUint16(ip[10:], packet.FoldChecksum(packet.Checksum(0, ip)))
	}

	// Transport header.
	seg := pkt[ipHL:]
	switch c.Proto {
	case packet.ProtoTCP:
		flags := c.TCPFlags()
		binary.BigEndian.PutUint16(l4[0:], sp)
		binary.BigEndian.PutUint16(l4[2:], dp)
		binary.BigEndian.PutUint32(l4[4:], me.seq)
		if flags&packet.TCPAck != 0 {
			binary.BigEndian.PutUint32(l4[8:], peer.seq)
		}
		adv := uint32(len(payload))
		if flags&(packet.TCPSyn|packet.TCPFin) != 0 {
			adv++
		}
		me.seq += adv
		l4[12] = byte(l4HL/4) << 4
		l4[13] = flags
		binary.BigEndian.PutUint16(l4[14:], 64240) // window
		if l4HL == 24 {
			mss := uint16(1460)
			if c.V6 {
				mss = 1440
			}
			l4[20], l4[21] = 2, 4 // MSS option
			binary.BigEndian.PutUint16(l4[22:], mss)
		}
		binary.BigEndian.PutUint16(l4[16:], L4Checksum(src, dstA, packet.ProtoTCP, seg))
	case packet.ProtoUDP:
		binary.BigEndian.PutUint16(l4[0:], sp)
		binary.BigEndian.PutUint16(l4[2:], dp)
		binary.BigEndian.PutUint16(l4[4:], uint16(len(seg)))
		sum := L4Checksum(src, dstA, packet.ProtoUDP, seg)
		if sum == 0 {
			sum = 0xffff
		}
		binary.BigEndian.PutUint16(l4[6:], sum)
	case packet.ProtoICMP, packet.ProtoICMPv6:
		var typ byte
		switch {
		case c.Proto == packet.ProtoICMP && c2s:
			typ = 8 // echo request
		case c.Proto == packet.ProtoICMP:
			typ = 0 // echo reply
		case c2s:
			typ = 128
		default:
			typ = 129
		}
		l4[0] = typ
		binary.BigEndian.PutUint16(l4[4:], c.ClientPort)  // identifier
		binary.BigEndian.PutUint16(l4[6:], uint16(i/2+1)) // sequence
		var sum uint16
		if c.Proto == packet.ProtoICMP {
			sum = packet.FoldChecksum(packet.Checksum(0, seg))
		} else {
			sum = L4Checksum(src, dstA, packet.ProtoICMPv6, seg)
		}
		binary.BigEndian.PutUint16(l4[2:], sum)
	}
	c.next++
	return dst
}

// L4Checksum returns the Internet checksum of the transport segment seg (its checksum
// field zero) with the IPv4 or IPv6 pseudo-header of src, dst and proto; the family is
// src's.
func L4Checksum(src, dst netip.Addr, proto uint8, seg []byte) uint16 {
	var sum uint32
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		sum = packet.Checksum(sum, s[:])
		sum = packet.Checksum(sum, d[:])
	} else {
		s, d := src.As16(), dst.As16()
		sum = packet.Checksum(sum, s[:])
		sum = packet.Checksum(sum, d[:])
	}
	n := uint32(len(seg))
	sum += uint32(proto) + n&0xffff + n>>16
	sum = packet.Checksum(sum, seg)
	return packet.FoldChecksum(sum)
}

// RandomAddr returns a random address inside p, avoiding the all-zeros and all-ones
// host parts when the prefix has room for them (it gives up after 16 tries).
func RandomAddr(rng *rand.Rand, p netip.Prefix) netip.Addr {
	p = p.Masked()
	base := p.Addr().AsSlice()
	bits := p.Bits()
	hostBits := len(base)*8 - bits
	for try := 0; ; try++ {
		b := make([]byte, len(base))
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
			b[i] = base[i]&mask | byte(rng.Uint32())&^mask
			allZero = allZero && b[i]&^mask == 0
			allOne = allOne && b[i]&^mask == ^mask
		}
		if hostBits >= 2 && (allZero || allOne) && try < 16 {
			continue
		}
		a, _ := netip.AddrFromSlice(b)
		return a
	}
}
