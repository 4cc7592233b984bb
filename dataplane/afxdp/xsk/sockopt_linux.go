package xsk

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// The kernel's answers to XDP_MMAP_OFFSETS and XDP_STATISTICS come in two sizes:
// kernels before 5.4 give ring offsets without the flags word (need_wakeup came
// with it), kernels before 5.9 give only the first three statistics. They are
// read as bytes and decoded here rather than trusted to a struct.
const (
	ringOffsetsV1Len = 3 * 8 // producer, consumer, desc
	ringOffsetsLen   = 4 * 8 // and flags
	mmapOffsetsV1Len = 4 * ringOffsetsV1Len
	mmapOffsetsLen   = 4 * ringOffsetsLen
	statsV1Len       = 3 * 8
	statsLen         = 6 * 8
)

// decodeMmapOffsets decodes an XDP_MMAP_OFFSETS answer of either size; hasFlags
// reports whether the rings have a flags word.
func decodeMmapOffsets(b []byte) (off unix.XDPMmapOffsets, hasFlags bool, err error) {
	var stride int
	switch len(b) {
	case mmapOffsetsLen:
		stride, hasFlags = ringOffsetsLen, true
	case mmapOffsetsV1Len:
		stride = ringOffsetsV1Len
	default:
		return off, false, fmt.Errorf("xsk: XDP_MMAP_OFFSETS answer of %d bytes, want %d or %d", len(b), mmapOffsetsLen, mmapOffsetsV1Len)
	}
	u64 := binary.NativeEndian.Uint64
	for i, r := range []*unix.XDPRingOffset{&off.Rx, &off.Tx, &off.Fr, &off.Cr} {
		e := b[i*stride : (i+1)*stride]
		r.Producer, r.Consumer, r.Desc = u64(e[0:]), u64(e[8:]), u64(e[16:])
		if hasFlags {
			r.Flags = u64(e[24:])
		}
	}
	return off, hasFlags, nil
}

// Stats are the kernel's counters for one socket (XDP_STATISTICS).
type Stats struct {
	RxDropped            uint64 // received packets dropped for lack of UMEM room or other reasons
	RxInvalidDescs       uint64 // fill ring entries the kernel refused
	TxInvalidDescs       uint64 // TX descriptors the kernel refused
	RxRingFull           uint64 // packets dropped because the RX ring was full (kernel 5.9+)
	RxFillRingEmptyDescs uint64 // times the fill ring was empty when a packet came (kernel 5.9+)
	TxRingEmptyDescs     uint64 // times a wakeup found the TX ring empty (kernel 5.9+)
}

// decodeStats decodes an XDP_STATISTICS answer of either size; the counters an
// older kernel lacks stay zero.
func decodeStats(b []byte) (Stats, error) {
	if len(b) != statsLen && len(b) != statsV1Len {
		return Stats{}, fmt.Errorf("xsk: XDP_STATISTICS answer of %d bytes, want %d or %d", len(b), statsLen, statsV1Len)
	}
	u64 := binary.NativeEndian.Uint64
	s := Stats{RxDropped: u64(b[0:]), RxInvalidDescs: u64(b[8:]), TxInvalidDescs: u64(b[16:])}
	if len(b) == statsLen {
		s.RxRingFull, s.RxFillRingEmptyDescs, s.TxRingEmptyDescs = u64(b[24:]), u64(b[32:]), u64(b[40:])
	}
	return s, nil
}
