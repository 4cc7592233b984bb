package detect

import (
	"slices"

	"weir/dataplane/detect/rules"
	"weir/dataplane/packet"
)

// pkt is what the rules see of one packet: its headers, buffers and flow context.
type pkt struct {
	p           *packet.Packet
	hasFlow     bool
	toServer    bool
	established bool
	payload     view // the packet's payload
	stream      view // the TCP stream's new bytes (and the tail before them)
	useStream   bool // payload contents inspect stream, not payload
	dnsQuery    []byte
	dnsType     uint16
	hasDNS      bool
	sni         []byte
	hasSNI      bool
}

// protoMatches reports whether a rule for proto applies to p.
func protoMatches(proto rules.Proto, p *packet.Packet) bool {
	switch proto {
	case rules.ProtoIP:
		return true
	case rules.ProtoTCP:
		return p.Proto == packet.ProtoTCP
	case rules.ProtoUDP:
		return p.Proto == packet.ProtoUDP
	case rules.ProtoICMP:
		return p.Proto == packet.ProtoICMP || p.Proto == packet.ProtoICMPv6
	case rules.ProtoDNS:
		return (p.Proto == packet.ProtoTCP || p.Proto == packet.ProtoUDP) && (p.SrcPort == 53 || p.DstPort == 53)
	case rules.ProtoTLS:
		return p.Proto == packet.ProtoTCP && (isTLSPort(p.SrcPort) || isTLSPort(p.DstPort))
	}
	return false
}

func isTLSPort(port uint16) bool { return slices.Contains(rules.TLSPorts, port) }

// hasPorts reports whether p's protocol has ports for a header's port parts.
func hasPorts(p *packet.Packet) bool {
	return !p.Fragment && (p.Proto == packet.ProtoTCP || p.Proto == packet.ProtoUDP)
}

// headerMatches checks a rule's addresses and ports, either way for <>.
func headerMatches(r *rules.Rule, p *packet.Packet) bool {
	if oneWay(r, p, false) {
		return true
	}
	return r.Bidirectional && oneWay(r, p, true)
}

func oneWay(r *rules.Rule, p *packet.Packet, swap bool) bool {
	src, dst, sport, dport := p.Src, p.Dst, p.SrcPort, p.DstPort
	if swap {
		src, dst, sport, dport = dst, src, dport, sport
	}
	if !r.Src.Contains(src) || !r.Dst.Contains(dst) {
		return false
	}
	if !hasPorts(p) {
		// A rule naming ports cannot match a packet without them (ICMP, a later
		// fragment), as in Suricata.
		return r.SrcPorts.Any && r.DstPorts.Any
	}
	return r.SrcPorts.Contains(sport) && r.DstPorts.Contains(dport)
}

// flowMatches checks the flow option.
func flowMatches(f *rules.Flow, k *pkt) bool {
	if f.Stateless {
		return true
	}
	if (f.ToServer || f.ToClient || f.Established || f.NotEstablished) && !k.hasFlow {
		return false
	}
	switch {
	case f.ToServer && !k.toServer, f.ToClient && k.toServer:
		return false
	case f.Established && !k.established, f.NotEstablished && k.established:
		return false
	}
	return true
}

func flagsMatch(f *rules.Flags, flags uint8) bool {
	flags &^= f.Ignore
	switch f.Mode {
	case rules.FlagsAll:
		return flags&f.Bits == f.Bits
	case rules.FlagsAny:
		return flags&f.Bits != 0
	case rules.FlagsNot: // Suricata's !: not all of these
		return flags&f.Bits != f.Bits
	}
	return flags == f.Bits&^f.Ignore
}

func intMatches(c *rules.IntCmp, v int) bool {
	switch c.Op {
	case rules.IntEq:
		return v == c.A
	case rules.IntNe:
		return v != c.A
	case rules.IntLt:
		return v < c.A
	case rules.IntGt:
		return v > c.A
	case rules.IntLe:
		return v <= c.A
	case rules.IntGe:
		return v >= c.A
	case rules.IntRange:
		return c.A < v && v < c.B
	}
	return false
}

// packetMatches checks everything of a rule but its contents and flowbits.
func packetMatches(r *rules.Rule, k *pkt) bool {
	p := k.p
	if !protoMatches(r.Proto, p) || !headerMatches(r, p) || !flowMatches(&r.Flow, k) {
		return false
	}
	if r.Flags.Set && (p.Proto != packet.ProtoTCP || p.Fragment || !flagsMatch(&r.Flags, p.TCPFlags)) {
		return false
	}
	if r.Dsize.Set && !intMatches(&r.Dsize, len(p.Payload)) {
		return false
	}
	isICMP := p.Proto == packet.ProtoICMP || p.Proto == packet.ProtoICMPv6
	if r.Itype.Set && (!isICMP || p.Fragment || !intMatches(&r.Itype, int(p.ICMPType))) {
		return false
	}
	if r.Icode.Set && (!isICMP || p.Fragment || !intMatches(&r.Icode, int(p.ICMPCode))) {
		return false
	}
	if r.TTL.Set && !intMatches(&r.TTL, int(p.TTL)) {
		return false
	}
	if r.IPProto.Set && !intMatches(&r.IPProto, int(p.Proto)) {
		return false
	}
	return true
}
