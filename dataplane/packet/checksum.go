package packet

import "encoding/binary"

// Checksum adds b to the running one's-complement sum of the Internet checksum
// (RFC 1071). Fold and complement the result to get the checksum field; b of odd
// length is padded with a zero byte, so only the last piece of a sum may be odd.
func Checksum(sum uint32, b []byte) uint32 {
	s := uint64(sum)
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		s += v>>32 + v&0xffffffff
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s>>32 != 0 {
		s = s&0xffffffff + s>>32
	}
	return uint32(s)
}

// FoldChecksum folds a running sum to 16 bits and complements it: the value of a
// checksum field.
func FoldChecksum(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
