package applayer

import "encoding/binary"

// DNSInfo is what a caller needs besides the name to decide whether the message is a
// dns.query for a rule: Suricata 8 matches dns.query on queries (QR=0) only.
type DNSInfo struct {
	ID       uint16
	Response bool   // the QR bit
	QType    uint16 // the first question's type
}

const (
	dnsHeaderLen = 12
	// maxWireName is the RFC 1035 limit on a name's wire length, length octets and
	// the terminating zero included.
	maxWireName = 255
	// maxPointers bounds pointer chasing. Pointers must also point strictly
	// backwards, which by itself forbids loops; the bound keeps the work small.
	maxPointers = 16
)

// DNSQuery returns the name of the first question of the DNS message msg (a UDP
// payload) as Suricata's dns.query buffer shows it: labels joined by '.', no trailing
// dot, bytes as on the wire (no case folding). The name is written into out, which
// must have room for 255 bytes, and returned as a subslice of it; the root name gives
// an empty, non-nil slice. Malformed messages give a Reason.
func DNSQuery(msg, out []byte) (name []byte, info DNSInfo, err error) {
	if len(msg) < dnsHeaderLen {
		return nil, DNSInfo{}, ReasonDNSShortHeader
	}
	info.ID = binary.BigEndian.Uint16(msg[0:2])
	info.Response = msg[2]&0x80 != 0
	if binary.BigEndian.Uint16(msg[4:6]) == 0 {
		return nil, info, ReasonDNSNoQuestion
	}
	name, end, reason := dnsName(msg, dnsHeaderLen, out)
	if reason != ReasonNone {
		return nil, info, reason
	}
	if end+4 > len(msg) { // QTYPE and QCLASS
		return nil, info, ReasonDNSTruncated
	}
	info.QType = binary.BigEndian.Uint16(msg[end : end+2])
	return name, info, nil
}

// DNSQueryTCP is DNSQuery for a DNS-over-TCP stream, which starts with a two-byte
// length. When the bytes end before the message and the question is cut short, it
// returns ErrIncomplete.
func DNSQueryTCP(stream, out []byte) (name []byte, info DNSInfo, err error) {
	if len(stream) < 2 {
		return nil, DNSInfo{}, ErrIncomplete
	}
	n := int(binary.BigEndian.Uint16(stream))
	if n == 0 {
		return nil, DNSInfo{}, ReasonDNSBadTCPLength
	}
	msg := stream[2:]
	partial := len(msg) < n
	if !partial {
		msg = msg[:n]
	}
	name, info, err = DNSQuery(msg, out)
	if partial && (err == ReasonDNSShortHeader || err == ReasonDNSTruncated) {
		return nil, DNSInfo{}, ErrIncomplete
	}
	return name, info, err
}

// dnsName decodes the name at off in msg into out, following compression pointers,
// and returns the name and the offset just past it in the original position.
func dnsName(msg []byte, off int, out []byte) (name []byte, end int, reason Reason) {
	out = out[:0]
	wire := 0     // wire octets of the name so far, counted as if uncompressed
	end = -1      // set at the first pointer: where the question continues
	pointers := 0 // followed so far
	for {
		if off >= len(msg) {
			return nil, 0, ReasonDNSTruncated
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
		case 0xC0:
			if off+1 >= len(msg) {
				return nil, 0, ReasonDNSTruncated
			}
			target := (c&0x3F)<<8 | int(msg[off+1])
			if target >= off {
				return nil, 0, ReasonDNSBadPointer
			}
			if pointers++; pointers > maxPointers {
				return nil, 0, ReasonDNSPointerLoop
			}
			if end < 0 {
				end = off + 2
			}
			off = target
			continue
		default:
			return nil, 0, ReasonDNSLabelType
		}
		wire += 1 + c
		if wire > maxWireName {
			return nil, 0, ReasonDNSNameTooLong
		}
		if c == 0 {
			if end < 0 {
				end = off + 1
			}
			return out, end, ReasonNone
		}
		if off+1+c > len(msg) {
			return nil, 0, ReasonDNSTruncated
		}
		dot := 0
		if len(out) > 0 {
			dot = 1
		}
		if len(out)+dot+c > cap(out) {
			return nil, 0, ReasonDNSShortBuffer
		}
		if dot == 1 {
			out = append(out, '.')
		}
		out = append(out, msg[off+1:off+1+c]...)
		off += 1 + c
	}
}
