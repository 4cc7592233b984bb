package xdpbench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"weir/dataplane/packet"
	"weir/geneve"
)

// Fixed offsets of the frames the generator builds: Ethernet, an IPv4 header
// without options, UDP, a GWLB GENEVE header with its three AWS options, then
// the inner IPv4 packet. The reply checker (an XDP program) reads replies at
// these offsets, which every target keeps: a reply is the request with its
// addresses swapped.
const (
	offOuterIP   = 14
	offOuterUDP  = offOuterIP + 20
	offGeneve    = offOuterUDP + 8
	geneveLen    = geneve.HeaderLen + 12 + 12 + 8 // endpoint id, attachment id, flow cookie
	offInnerIP   = offGeneve + geneveLen
	offInnerL4   = offInnerIP + 20
	udpLen       = 8
	tcpLen       = 20
	markLen      = 12 // Magic, then the flow index
	minInnerData = markLen
	// geneveCheckedLen is the GENEVE prefix every request shares (everything
	// before the per-flow cookie's value), which the checker compares.
	geneveCheckedLen = geneveLen - 4
)

// Magic opens every inner transport payload, so that the checker can tell the
// generator's packets (and their replies) from anything else.
const Magic uint64 = 0x7765697262656e63 // "weirbenc"

// The GWLB ids the generator's GENEVE headers carry (arbitrary, GWLB-like).
const (
	EndpointID   uint64 = 0x0b1e55ed0000c0de
	AttachmentID uint64 = 0x00a77ac4000000e1
)

// FrameSpec describes the request frames: the two ends of the veth and the
// inner flows the GENEVE datagrams carry.
type FrameSpec struct {
	GenMAC, DutMAC net.HardwareAddr
	GenIP, DutIP   netip.Addr // IPv4
	SrcPorts       []uint16   // GWLB's outer source ports, used in turn (1 or 2)
	Flows          int        // distinct inner 5-tuples
	Payload        int        // inner transport payload bytes, at least markLen
}

func (s FrameSpec) validate() error {
	switch {
	case len(s.GenMAC) != 6 || len(s.DutMAC) != 6:
		return errors.New("xdpbench: MAC addresses must be 6 bytes")
	case !s.GenIP.Is4() || !s.DutIP.Is4():
		return errors.New("xdpbench: the outer addresses must be IPv4")
	case len(s.SrcPorts) < 1 || len(s.SrcPorts) > 2:
		return fmt.Errorf("xdpbench: %d source ports, want 1 or 2", len(s.SrcPorts))
	case s.Flows < 1 || s.Flows > 1<<16:
		return fmt.Errorf("xdpbench: %d flows, want 1 to 65536", s.Flows)
	case s.Payload < minInnerData || s.Payload > 1400:
		return fmt.Errorf("xdpbench: payload %d bytes, want %d to 1400", s.Payload, minInnerData)
	}
	for _, p := range s.SrcPorts {
		if p == 0 {
			return errors.New("xdpbench: source port 0")
		}
	}
	return nil
}

// FlowCookie is flow i's GWLB flow cookie.
func FlowCookie(i int) uint32 { return 0xc0000000 | uint32(i)*2654435761>>2 }

// BuildFrames returns one request frame per flow. Even flows carry inner UDP,
// odd flows inner TCP (ACK|PSH, mid-stream), between addresses of 10.0.0.0/16
// and 10.1.0.0/16 with ports varying by flow.
func BuildFrames(s FrameSpec) ([][]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	frames := make([][]byte, s.Flows)
	for i := range frames {
		frames[i] = buildFrame(s, i)
	}
	return frames, nil
}

func buildFrame(s FrameSpec, i int) []byte {
	tcp := i%2 == 1
	l4Len := udpLen
	proto := byte(packet.ProtoUDP)
	if tcp {
		l4Len, proto = tcpLen, packet.ProtoTCP
	}
	innerLen := 20 + l4Len + s.Payload
	total := offInnerIP + innerLen
	f := make([]byte, total)

	copy(f[0:6], s.DutMAC)
	copy(f[6:12], s.GenMAC)
	binary.BigEndian.PutUint16(f[12:], packet.EtherTypeIPv4)

	gen, dut := s.GenIP.As4(), s.DutIP.As4()
	putIPv4(f[offOuterIP:], total-offOuterIP, packet.ProtoUDP, uint16(i), gen, dut)

	udp := f[offOuterUDP:]
	binary.BigEndian.PutUint16(udp[0:], s.SrcPorts[i%len(s.SrcPorts)])
	binary.BigEndian.PutUint16(udp[2:], geneve.Port)
	binary.BigEndian.PutUint16(udp[4:], uint16(total-offOuterUDP))

	hdr := geneve.AppendAWSHeader(f[offGeneve:offGeneve:offGeneve+geneveLen], geneve.ProtoIPv4, geneve.AWS{
		EndpointID: EndpointID, AttachmentID: AttachmentID, FlowCookie: FlowCookie(i),
	})
	if len(hdr) != geneveLen {
		panic("xdpbench: GENEVE header length changed")
	}

	client := [4]byte{10, 0, byte(i >> 8), byte(i)}
	server := [4]byte{10, 1, byte(i >> 8), byte(i)}
	inner := f[offInnerIP:]
	putIPv4(inner, innerLen, proto, uint16(i), client, server)
	l4 := inner[20:]
	binary.BigEndian.PutUint16(l4[0:], uint16(20000+i))
	binary.BigEndian.PutUint16(l4[2:], uint16(80+i%7))
	data := l4[l4Len:]
	binary.BigEndian.PutUint64(data, Magic)
	binary.BigEndian.PutUint32(data[8:], uint32(i))
	for j := markLen; j < len(data); j++ {
		data[j] = byte(i + j)
	}
	ckOff := 6
	if tcp {
		binary.BigEndian.PutUint32(l4[4:], uint32(i)*1000003) // sequence
		binary.BigEndian.PutUint32(l4[8:], uint32(i)*7919)    // acknowledgement
		l4[12] = 5 << 4
		l4[13] = 0x18 // ACK|PSH
		binary.BigEndian.PutUint16(l4[14:], 65535)
		ckOff = 16
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(l4Len+s.Payload))
	}
	binary.BigEndian.PutUint16(l4[ckOff:], l4Checksum(client, server, proto, l4[:l4Len+s.Payload]))

	binary.BigEndian.PutUint16(udp[6:], l4Checksum(gen, dut, packet.ProtoUDP, f[offOuterUDP:]))
	return f
}

func putIPv4(ip []byte, totalLen int, proto byte, id uint16, src, dst [4]byte) {
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(totalLen))
	binary.BigEndian.PutUint16(ip[4:], id)
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF, as GWLB sends
	ip[8] = 64
	ip[9] = proto
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], packet.FoldChecksum(packet.Checksum(0, ip[:20])))
}

// l4Checksum is the UDP or TCP checksum of seg (its checksum field zero)
// between src and dst.
func l4Checksum(src, dst [4]byte, proto byte, seg []byte) uint16 {
	sum := packet.Checksum(0, src[:])
	sum = packet.Checksum(sum, dst[:])
	sum += uint32(proto) + uint32(len(seg))
	c := packet.FoldChecksum(packet.Checksum(sum, seg))
	if c == 0 && proto == packet.ProtoUDP {
		c = 0xffff
	}
	return c
}

// SwappedReply is the reply a reflector makes of request: MACs and IPv4
// addresses swapped, every other byte kept (both checksums stay valid, as
// sums over both addresses).
func SwappedReply(request []byte) []byte {
	r := bytes.Clone(request)
	swap(r[0:6], r[6:12])
	swap(r[offOuterIP+12:offOuterIP+16], r[offOuterIP+16:offOuterIP+20])
	return r
}

func swap(a, b []byte) {
	for i := range a {
		a[i], b[i] = b[i], a[i]
	}
}

// FlowOf returns the flow index a request or reply carries after Magic.
func FlowOf(frame []byte) (int, error) {
	if len(frame) < offInnerL4 {
		return 0, errors.New("short frame")
	}
	off := offInnerL4 + udpLen
	if frame[offInnerIP+9] == packet.ProtoTCP {
		off = offInnerL4 + tcpLen
	}
	if len(frame) < off+markLen {
		return 0, errors.New("short frame")
	}
	if binary.BigEndian.Uint64(frame[off:]) != Magic {
		return 0, errors.New("no magic")
	}
	return int(binary.BigEndian.Uint32(frame[off+8:])), nil
}

// CheckReply checks a reply against its request byte by byte and reports
// whether it is exactly the swapped request. A reply may differ from that
// only where a backend that rebuilds the outer IPv4 header may differ (weir's
// socket backend sends with IP_HDRINCL from a header it writes): the
// identification, flags, TTL and so the header checksum, which must then be
// valid. The UDP header and the whole GENEVE datagram must be the request's.
func CheckReply(request, reply []byte) (exact bool, err error) {
	want := SwappedReply(request)
	if bytes.Equal(want, reply) {
		return true, nil
	}
	if len(reply) != len(want) {
		return false, fmt.Errorf("reply is %d bytes, want %d", len(reply), len(want))
	}
	if !bytes.Equal(reply[:offOuterIP], want[:offOuterIP]) {
		return false, fmt.Errorf("the Ethernet header is % x, want % x", reply[:offOuterIP], want[:offOuterIP])
	}
	ip, wantIP := reply[offOuterIP:offOuterUDP], want[offOuterIP:offOuterUDP]
	// Version, IHL, TOS and total length; protocol; the addresses.
	for _, r := range [][2]int{{0, 4}, {9, 10}, {12, 20}} {
		if !bytes.Equal(ip[r[0]:r[1]], wantIP[r[0]:r[1]]) {
			return false, fmt.Errorf("outer IPv4 bytes %d-%d are % x, want % x", r[0], r[1]-1, ip[r[0]:r[1]], wantIP[r[0]:r[1]])
		}
	}
	if packet.FoldChecksum(packet.Checksum(0, ip)) != 0 {
		return false, errors.New("outer IPv4 header checksum is wrong")
	}
	if i := firstDiff(reply[offOuterUDP:], want[offOuterUDP:]); i >= 0 {
		return false, fmt.Errorf("UDP datagram differs at its byte %d", i)
	}
	return false, nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
