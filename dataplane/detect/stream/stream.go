// Package stream follows one direction of a TCP connection for detection: it keeps,
// in a few bytes of the flow's side record, where the stream stands and the last
// bytes seen, and gives the detection engine, for each segment, the bytes to inspect
// in stream order. Nothing is buffered beyond a short tail: a segment is inspected
// when it arrives, with the tail before it so that a content split across segments
// still matches.
//
// Out-of-order data is inspected alone, as a packet; one such range is remembered so
// that the stream resumes after it once the gap before it is filled. A content
// that straddles the range's end (or its start, unless the filling segment runs
// into the range) is not seen whole. Of two out-of-order ranges that do not touch,
// only the one nearer the gap is remembered. A gap still open after maxStall
// out-of-order segments (a mirror session that lost a packet) is given up: the
// stream resumes after the pending range, and data later sent into that one gap is
// still inspected, alone.
//
// As in any reassembler that keeps the first copy of a byte, data sent only to the
// inspector (an insertion: bad checksum, short TTL) can take the place of what the
// host receives; the retransmission carrying the real bytes is then reported as a
// Retransmit and not inspected again.
//
// A Dir's Segment is called for one direction's segments, with the flow's side
// record locked (flow.Table.WithSide); a flow's record holds two Dirs.
package stream

import "encoding/binary"

// Layout of a Dir: a fixed header, then the tail.
const (
	offFlags    = 0  // 1 byte, flag* bits
	offTailLen  = 1  // 1 byte, bytes of tail kept
	offStall    = 2  // 1 byte, out-of-order segments since the stream last moved
	offNext     = 4  // 4 bytes, next expected sequence number
	offStreamAt = 8  // 8 bytes, stream offset of the next expected byte
	offPendFrom = 16 // 4 bytes, first sequence number of the pending range
	offPendTo   = 20 // 4 bytes, sequence number after the pending range
	offHoleFrom = 24 // 4 bytes, first sequence number of the skipped gap
	offHoleTo   = 28 // 4 bytes, sequence number after the skipped gap
	headerLen   = 32

	// MaxTail is the most tail bytes a Dir keeps.
	MaxTail = 255
)

const (
	flagStarted = 1 << iota // the ISN (or midstream start) is known
	flagDepth               // the inspection depth was reached
	flagPending             // offPendFrom..offPendTo holds an out-of-order range
	flagFin                 // a FIN was taken in order
	flagHole                // offHoleFrom..offHoleTo holds a gap the stream skipped
)

// maxStall is how many out-of-order segments may arrive while a gap stays open
// before the stream gives up on it and resumes after the pending range. Ordinary
// reordering fills a gap within a few segments; a mirror session that lost a packet
// never will (AWS drops mirrored traffic first under congestion).
const maxStall = 8

// Size returns the bytes one direction's state needs to keep up to tail bytes of
// earlier data (tail is clamped to 0..MaxTail). For a rule set whose longest stream
// content is n bytes, tail n-1 lets a content split across segments match.
func Size(tail int) int {
	return headerLen + min(max(tail, 0), MaxTail)
}

// Status says what a segment was to the stream. Each value is worth a counter.
type Status uint8

const (
	Empty        Status = iota // no payload (or nothing but a SYN or FIN)
	InOrder                    // new bytes, in order
	Overlap                    // partly retransmitted: only the new bytes are new
	Retransmit                 // all of its bytes were seen before
	OutOfOrder                 // beyond a gap, or inside a skipped one: inspected alone
	Gap                        // out of order, and the stream gave up on the gap before it
	DepthReached               // the stream passed the inspection depth
	Reset                      // RST: its payload is not stream data
	numStatus
)

var statusNames = [numStatus]string{"empty", "in_order", "overlap", "retransmit", "out_of_order", "gap", "depth_reached", "reset"}

func (s Status) String() string {
	if s < numStatus {
		return statusNames[s]
	}
	return "unknown"
}

// View is what to inspect for one segment.
type View struct {
	// Buf is the kept tail followed by the segment's new bytes; it is the caller's
	// scratch when there is a tail, else it may alias the payload.
	Buf []byte
	// New is the index in Buf where bytes not inspected before begin: report a match
	// only if it ends after New, so that no byte sequence alerts twice.
	New int
	// Offset is the stream offset of Buf[0]: 0 is the first byte after the SYN (or
	// the first byte seen, for a stream picked up midstream).
	Offset uint64
	Status Status
}

// Dir is one direction's state, Size(tail) bytes inside a flow's side record, zero
// before the first segment. It holds no pointers: a flow table may copy or clear it.
type Dir []byte

// Valid reports whether d is large enough to be a Dir.
func (d Dir) Valid() bool { return len(d) >= headerLen }

func (d Dir) flags() byte          { return d[offFlags] }
func (d Dir) setFlags(f byte)      { d[offFlags] = f }
func (d Dir) tailCap() int         { return min(len(d)-headerLen, MaxTail) }
func (d Dir) tailLen() int         { return int(d[offTailLen]) }
func (d Dir) tail() []byte         { return d[headerLen : headerLen+d.tailLen()] }
func (d Dir) next() uint32         { return binary.LittleEndian.Uint32(d[offNext:]) }
func (d Dir) setNext(v uint32)     { binary.LittleEndian.PutUint32(d[offNext:], v) }
func (d Dir) streamAt() uint64     { return binary.LittleEndian.Uint64(d[offStreamAt:]) }
func (d Dir) setStreamAt(v uint64) { binary.LittleEndian.PutUint64(d[offStreamAt:], v) }
func (d Dir) pendFrom() uint32     { return binary.LittleEndian.Uint32(d[offPendFrom:]) }
func (d Dir) pendTo() uint32       { return binary.LittleEndian.Uint32(d[offPendTo:]) }
func (d Dir) setPend(from, to uint32) {
	binary.LittleEndian.PutUint32(d[offPendFrom:], from)
	binary.LittleEndian.PutUint32(d[offPendTo:], to)
}

// Next returns the next expected sequence number and its stream offset, and whether
// the stream has started.
func (d Dir) Next() (seq uint32, offset uint64, started bool) {
	if !d.Valid() {
		return 0, 0, false
	}
	return d.next(), d.streamAt(), d.flags()&flagStarted != 0
}

// diff is a-b in sequence space (RFC 1982 serial arithmetic), so that comparisons
// survive wraparound at 2^32.
func diff(a, b uint32) int64 { return int64(int32(a - b)) }

// Segment takes the next TCP segment of this direction, in arrival order, and
// returns what to inspect. depth is the stream offset after which inspection stops
// (0: no limit). scratch should hold Size(tail)+len(payload) bytes; when it is
// shorter, the segment is returned without the tail before it. A Dir shorter than
// Size(0) keeps no state: each segment comes back alone, as OutOfOrder.
func (d Dir) Segment(seq uint32, syn, fin, rst bool, payload []byte, depth uint32, scratch []byte) (v View) {
	if !d.Valid() {
		return View{Buf: payload, Status: OutOfOrder}
	}
	if rst {
		return View{Status: Reset}
	}
	f := d.flags()
	dataSeq := seq
	if syn {
		dataSeq++ // the SYN takes one sequence number
	}
	if syn && f&flagStarted != 0 && (dataSeq != d.next() || d.streamAt() != 0) {
		// A SYN on a started stream: the receiver takes none of its data.
		return View{Status: Empty}
	}
	if f&flagStarted == 0 {
		f = flagStarted
		d.setFlags(f)
		d.setNext(dataSeq)
		d.setStreamAt(0)
		d[offTailLen] = 0
	}
	if f&flagDepth != 0 {
		return View{Status: DepthReached}
	}
	next := d.next()
	if len(payload) == 0 {
		if fin && dataSeq == next && f&flagFin == 0 {
			// The FIN's sequence number is not taken: a FIN the receiver never
			// accepts (a bad checksum) must not shift the data that follows it.
			// After a real FIN no data comes, so nothing is lost.
			d.setFlags(f | flagFin)
		}
		return View{Status: Empty}
	}
	if len(payload) > 1<<30 {
		payload = payload[:1<<30] // keeps the sequence arithmetic below meaningful
	}
	at := d.streamAt()
	rel := diff(dataSeq, next)
	if rel > 0 {
		v = View{Buf: payload, Offset: at + uint64(rel), Status: OutOfOrder}
		d.remember(dataSeq, dataSeq+uint32(len(payload)))
		if stall := d[offStall] + 1; stall < maxStall {
			d[offStall] = stall
			return v
		}
		// Give up on the gap: the stream resumes after the pending range, and the gap
		// is remembered so that its data, if it ever comes, is still inspected.
		from, to := d.pendFrom(), d.pendTo()
		holeFrom := next
		if f&flagHole != 0 { // keep the earlier gap: the hole grows to cover both
			holeFrom = binary.LittleEndian.Uint32(d[offHoleFrom:])
		}
		binary.LittleEndian.PutUint32(d[offHoleFrom:], holeFrom)
		binary.LittleEndian.PutUint32(d[offHoleTo:], from)
		d.setNext(to)
		d.setStreamAt(at + uint64(diff(to, next)))
		d.setFlags(d.flags()&^flagPending | flagHole)
		d[offTailLen], d[offStall] = 0, 0
		v.Status = Gap
		return v
	}
	status := InOrder
	old := 0 // bytes before next kept in payload: they reach into the skipped gap
	if rel < 0 {
		hole := f&flagHole != 0 && d.inHole(dataSeq, len(payload))
		switch {
		case hole && -rel >= int64(len(payload)):
			return View{Buf: payload, Offset: at - min(at, uint64(-rel)), Status: OutOfOrder}
		case -rel >= int64(len(payload)):
			return View{Status: Retransmit}
		case hole:
			old = int(-rel)
		default:
			payload = payload[-rel:]
		}
		status = Overlap
	}
	whole := len(payload) - old
	if depth != 0 {
		if at >= uint64(depth) {
			d.setFlags(f | flagDepth)
			return View{Status: DepthReached}
		}
		if room := uint64(depth) - at; uint64(whole) > room {
			payload = payload[:old+int(room)]
		}
	}
	n := len(payload) - old
	switch tl := d.tailLen(); {
	case old > 0:
		// The segment brings its own context: it is inspected whole, tail unneeded.
		v = View{Buf: payload, Offset: at - min(at, uint64(old)), Status: status}
	case tl > 0 && len(scratch) >= tl+n:
		buf := scratch[:tl+n]
		copy(buf, d.tail())
		copy(buf[tl:], payload)
		v = View{Buf: buf, New: tl, Offset: at - uint64(tl), Status: status}
	default:
		v = View{Buf: payload, Offset: at, Status: status}
	}
	d.keepTail(v.Buf)
	next += uint32(n)
	at += uint64(n)
	if fin && n == whole && f&flagFin == 0 {
		// The whole segment was taken: its FIN follows the data (its sequence
		// number is not taken, as above).
		f |= flagFin
	}
	if f&flagPending != 0 && diff(d.pendFrom(), next) <= 0 {
		// The gap is filled: continue after the range inspected out of order. A
		// segment that filled it and ran on into that range was inspected whole:
		// trimming it to the range's start would let data sent into the gap
		// beforehand (an insertion) hide what the segment really carried.
		if skip := diff(d.pendTo(), next); skip > 0 {
			next += uint32(skip)
			at += uint64(skip)
			d[offTailLen] = 0 // the bytes before the jump are not kept
		}
		f &^= flagPending
	}
	if depth != 0 && at >= uint64(depth) {
		f |= flagDepth
	}
	d.setNext(next)
	d.setStreamAt(at)
	d.setFlags(f)
	d[offStall] = 0
	return v
}

// inHole reports whether n bytes at seq overlap the gap the stream skipped.
func (d Dir) inHole(seq uint32, n int) bool {
	from := binary.LittleEndian.Uint32(d[offHoleFrom:])
	to := binary.LittleEndian.Uint32(d[offHoleTo:])
	return diff(seq, to) < 0 && diff(seq+uint32(n), from) > 0
}

// remember records [from, to) as the pending out-of-order range, merging it with the
// one already pending when they touch, else keeping the one nearer the gap.
func (d Dir) remember(from, to uint32) {
	f := d.flags()
	if f&flagPending == 0 {
		d.setPend(from, to)
		d.setFlags(f | flagPending)
		return
	}
	pf, pt := d.pendFrom(), d.pendTo()
	switch {
	case diff(from, pt) <= 0 && diff(pf, to) <= 0: // they touch or overlap
		if diff(from, pf) < 0 {
			pf = from
		}
		if diff(to, pt) > 0 {
			pt = to
		}
		d.setPend(pf, pt)
	case diff(from, pf) < 0:
		d.setPend(from, to)
	}
}

// keepTail keeps the last bytes of buf, which ends at the stream's new end.
func (d Dir) keepTail(buf []byte) {
	c := d.tailCap()
	if c <= 0 {
		return
	}
	if len(buf) > c {
		buf = buf[len(buf)-c:]
	}
	copy(d[headerLen:], buf)
	d[offTailLen] = byte(len(buf))
}
