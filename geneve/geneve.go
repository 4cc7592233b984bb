// Package geneve decodes and encodes GENEVE (RFC 8926) headers as AWS Gateway Load
// Balancer sends them: version 0, an IPv4 or IPv6 inner packet with no Ethernet
// header, and the GWLB's own options (class 0x0108). Headers are typed byte slices
// read in place, so decoding allocates nothing.
package geneve

import "encoding/binary"

// Port is the IANA UDP port of GENEVE and the one GWLB sends to.
const Port = 6081

// HeaderLen is the length of the fixed part of a GENEVE header.
const HeaderLen = 8

// MaxOptionsLen is the largest options area the 6-bit Opt Len field can describe.
const MaxOptionsLen = 63 * 4

// Protocol types (EtherTypes) of the GENEVE payload.
const (
	ProtoIPv4     uint16 = 0x0800
	ProtoIPv6     uint16 = 0x86DD
	ProtoEthernet uint16 = 0x6558 // Transparent Ethernet Bridging
)

// AWS GWLB option class and types. Each GWLB option carries an 8-byte (ids) or
// 4-byte (cookie) value.
const (
	ClassAWS            uint16 = 0x0108
	AWSTypeEndpointID   uint8  = 1
	AWSTypeAttachmentID uint8  = 2
	AWSTypeFlowCookie   uint8  = 3
)

// Header is a GENEVE header including its options, as found on the wire.
//
//	 0                   1                   2                   3
//	|Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//	|        Virtual Network Identifier (VNI)       |    Reserved   |
//	|                    Variable-Length Options                    |
//
// Accessors assume len(h) >= HeaderLen; Decode guarantees it.
type Header []byte

// Version is the 2-bit version field; only 0 is defined.
func (h Header) Version() uint8 { return h[0] >> 6 }

// OptionsLen is the length in bytes of the options area.
func (h Header) OptionsLen() int { return int(h[0]&0x3f) * 4 }

// OAM reports the O bit: the packet carries control traffic.
func (h Header) OAM() bool { return h[1]&0x80 != 0 }

// Critical reports the C bit: at least one option is critical.
func (h Header) Critical() bool { return h[1]&0x40 != 0 }

// ProtocolType is the EtherType of the payload.
func (h Header) ProtocolType() uint16 { return binary.BigEndian.Uint16(h[2:4]) }

// VNI is the 24-bit virtual network identifier; GWLB sends 0.
func (h Header) VNI() uint32 { return binary.BigEndian.Uint32(h[4:8]) >> 8 }

// Len is the length of the header including options.
func (h Header) Len() int { return HeaderLen + h.OptionsLen() }

// Options is the options area of the header.
func (h Header) Options() Options { return Options(h[HeaderLen:h.Len()]) }

// Option is one TLV option including its 4-byte option header.
//
//	|          Option Class         |      Type     |R|R|R| Length  |
//	|                 Variable-Length Option Data                   |
type Option []byte

// Class is the option class; 0x0108 is AWS.
func (o Option) Class() uint16 { return binary.BigEndian.Uint16(o[0:2]) }

// Type is the option type; its high bit marks a critical option.
func (o Option) Type() uint8 { return o[2] }

// Critical reports whether the receiver must understand the option to process the packet.
func (o Option) Critical() bool { return o[2]&0x80 != 0 }

// Data is the option's value.
func (o Option) Data() []byte { return o[4:] }

// Options is a sequence of options. Walk it with Next; never assume an order or a count.
type Options []byte

// Next splits off the first option. It returns ReasonOptionOverrun when the option's
// length runs past the options area.
func (o Options) Next() (opt Option, rest Options, err error) {
	if len(o) < 4 {
		return nil, nil, ReasonOptionOverrun
	}
	n := 4 + int(o[3]&0x1f)*4
	if n > len(o) {
		return nil, nil, ReasonOptionOverrun
	}
	return Option(o[:n]), o[n:], nil
}

// AWS holds the GWLB options of one packet. Present tells which were found.
type AWS struct {
	EndpointID   uint64 // GWLB endpoint ENI id (the vpce-… id as a number)
	AttachmentID uint64 // attachment id; 0 when GWLB sends none
	FlowCookie   uint32 // per-flow cookie that GWLB changes when a 5-tuple is reused
	Present      uint8  // bit (1 << type) for each AWS option found
}

// Has reports whether the option of AWS type t was present.
func (a *AWS) Has(t uint8) bool { return a.Present&(1<<t) != 0 }

// Decode validates a GENEVE datagram (the UDP payload) and returns its header, its
// payload and the AWS options it carries. Options are walked in order; unknown options
// are skipped and stay in the header, so a reply that copies the header keeps them.
// The payload's IP version must agree with the protocol type.
func Decode(b []byte) (h Header, payload []byte, aws AWS, err error) {
	if len(b) == 0 {
		return nil, nil, aws, ReasonEmpty
	}
	if len(b) < HeaderLen {
		return nil, nil, aws, ReasonTruncated
	}
	h = Header(b)
	if h.Version() != 0 {
		return nil, nil, aws, ReasonVersion
	}
	if h.Len() > len(b) {
		return nil, nil, aws, ReasonOptionsLen
	}
	opts := h.Options()
	for len(opts) > 0 {
		var opt Option
		opt, opts, err = opts.Next()
		if err != nil {
			return nil, nil, aws, err
		}
		if opt.Class() != ClassAWS {
			continue
		}
		d := opt.Data()
		switch t := opt.Type(); t {
		case AWSTypeEndpointID, AWSTypeAttachmentID:
			if len(d) < 8 {
				return nil, nil, aws, ReasonAWSOption
			}
			v := binary.BigEndian.Uint64(d)
			if t == AWSTypeEndpointID {
				aws.EndpointID = v
			} else {
				aws.AttachmentID = v
			}
			aws.Present |= 1 << t
		case AWSTypeFlowCookie:
			if len(d) < 4 {
				return nil, nil, aws, ReasonAWSOption
			}
			aws.FlowCookie = binary.BigEndian.Uint32(d)
			aws.Present |= 1 << t
		}
	}
	payload = b[h.Len():]
	h = h[:h.Len()]
	switch h.ProtocolType() {
	case ProtoIPv4:
		if len(payload) == 0 {
			return nil, nil, aws, ReasonNoPayload
		}
		if payload[0]>>4 != 4 {
			return nil, nil, aws, ReasonInnerMismatch
		}
	case ProtoIPv6:
		if len(payload) == 0 {
			return nil, nil, aws, ReasonNoPayload
		}
		if payload[0]>>4 != 6 {
			return nil, nil, aws, ReasonInnerMismatch
		}
	case ProtoEthernet:
		if len(payload) < 14 {
			return nil, nil, aws, ReasonNoPayload
		}
	default:
		return nil, nil, aws, ReasonProtocol
	}
	return h, payload, aws, nil
}

// AppendOption appends one option. len(data) must be a multiple of 4 and at most 124.
func AppendOption(dst []byte, class uint16, typ uint8, data []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, class)
	dst = append(dst, typ, byte(len(data)/4)&0x1f)
	return append(dst, data...)
}

// AppendHeader appends a GENEVE header with the given options area (already encoded,
// a multiple of 4 bytes, at most MaxOptionsLen).
func AppendHeader(dst []byte, proto uint16, vni uint32, options []byte) []byte {
	dst = append(dst, byte(len(options)/4)&0x3f, 0)
	dst = binary.BigEndian.AppendUint16(dst, proto)
	dst = binary.BigEndian.AppendUint32(dst, vni<<8)
	return append(dst, options...)
}

// AppendAWSOptions appends the GWLB options in the order GWLB sends them: endpoint
// id, attachment id, flow cookie.
func AppendAWSOptions(dst []byte, a AWS) []byte {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], a.EndpointID)
	dst = AppendOption(dst, ClassAWS, AWSTypeEndpointID, v[:])
	binary.BigEndian.PutUint64(v[:], a.AttachmentID)
	dst = AppendOption(dst, ClassAWS, AWSTypeAttachmentID, v[:])
	binary.BigEndian.PutUint32(v[:4], a.FlowCookie)
	return AppendOption(dst, ClassAWS, AWSTypeFlowCookie, v[:4])
}

// AppendAWSHeader appends a complete GWLB-style GENEVE header: version 0, VNI 0, the
// three AWS options.
func AppendAWSHeader(dst []byte, proto uint16, a AWS) []byte {
	start := len(dst)
	dst = AppendHeader(dst, proto, 0, nil)
	dst = AppendAWSOptions(dst, a)
	dst[start] = byte((len(dst)-start-HeaderLen)/4) & 0x3f
	return dst
}
