// Package vxlan decodes and encodes VXLAN (RFC 7348) headers as AWS VPC Traffic
// Mirroring sends them: UDP to port 4789, flags 0x08 (the I flag), the mirror
// session's 24-bit VNI, and a full inner Ethernet frame. Headers are typed byte slices
// read in place, so decoding allocates nothing.
package vxlan

import "encoding/binary"

// Port is the IANA UDP port of VXLAN and the one Traffic Mirroring sends to.
const Port = 4789

// HeaderLen is the length of a VXLAN header.
const HeaderLen = 8

// MinFrameLen is the shortest inner frame Decode accepts: an Ethernet header.
const MinFrameLen = 14

// FlagVNI is the I flag: the VNI field is valid. It is the only flag RFC 7348 defines.
const FlagVNI uint8 = 0x08

// MaxVNI is the largest 24-bit VNI.
const MaxVNI = 1<<24 - 1

// Header is a VXLAN header as found on the wire.
//
//	 0                   1                   2                   3
//	|R|R|R|R|I|R|R|R|            Reserved                           |
//	|                VXLAN Network Identifier (VNI) |   Reserved    |
//
// Accessors assume len(h) >= HeaderLen; Decode guarantees it.
type Header []byte

// Flags is the flags byte; Traffic Mirroring sends 0x08.
func (h Header) Flags() uint8 { return h[0] }

// HasVNI reports the I flag: the VNI is valid.
func (h Header) HasVNI() bool { return h[0]&FlagVNI != 0 }

// VNI is the 24-bit VXLAN network identifier: the mirror session's VNI.
func (h Header) VNI() uint32 { return binary.BigEndian.Uint32(h[4:8]) >> 8 }

// ReservedNonZero reports whether any reserved bit is set: a flag other than I, the
// 24 bits after the flags or the last byte. RFC 7348 says senders set them to zero
// and receivers ignore them; some senders do not, so Decode accepts them and callers
// may count them.
func (h Header) ReservedNonZero() bool {
	return h[0]&^FlagVNI != 0 || h[1]|h[2]|h[3]|h[7] != 0
}

// Decode validates a VXLAN datagram (the UDP payload) and returns its header and the
// inner Ethernet frame. The I flag must be set and the frame must hold at least an
// Ethernet header; reserved bits are not checked (see Header.ReservedNonZero). h and
// frame alias b. Errors are Reason values.
func Decode(b []byte) (h Header, frame []byte, err error) {
	if len(b) == 0 {
		return nil, nil, ReasonEmpty
	}
	if len(b) < HeaderLen {
		return nil, nil, ReasonTruncated
	}
	h = Header(b[:HeaderLen])
	if !h.HasVNI() {
		return nil, nil, ReasonNoVNIFlag
	}
	if len(b)-HeaderLen < MinFrameLen {
		return nil, nil, ReasonNoFrame
	}
	return h, b[HeaderLen:], nil
}

// AppendHeader appends a VXLAN header as Traffic Mirroring writes it: flags 0x08,
// reserved fields zero, and the low 24 bits of vni.
func AppendHeader(dst []byte, vni uint32) []byte {
	return append(dst, FlagVNI, 0, 0, 0, byte(vni>>16), byte(vni>>8), byte(vni), 0)
}
