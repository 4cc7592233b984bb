// Package defrag reassembles IPv4 and IPv6 fragments for inspection, so that the
// detection engine sees whole datagrams (as Suricata does: dsize and content see the
// datagram, not its pieces). It does not forward anything: the inline path still
// carries each fragment on its own.
//
// Memory is bounded: at most Config.MaxDatagrams datagrams are in progress, and the
// buffers holding them, kept for reuse, never total more than Config.MaxBytes. When
// fragments overlap, the data that came first wins (whatever the policy of the host
// behind us, an overlap is worth counting: it is how evasion starts, RFC 1858 and
// RFC 5722).
package defrag

import (
	"bytes"
	"encoding/binary"
	"sync"
	"time"

	"weir/dataplane/packet"
)

const (
	// maxPayload bounds a datagram's fragmentable part: the 13-bit offset and the
	// 16-bit length fields cannot describe more.
	maxPayload = 65535
	blockSize  = 8 // fragment offsets count 8-byte blocks
	maxBlocks  = (maxPayload + blockSize) / blockSize
	// hdrRoom is kept in front of each datagram's data for the header of the rebuilt
	// packet: an IPv4 header, or IPv6's unfragmentable part (header and extension
	// headers before the Fragment header), which may not be longer.
	hdrRoom = 512
	// bufStep rounds buffer sizes, so that a buffer grown once serves the next
	// datagrams of that size without growing again.
	bufStep = 4096
)

// Status says what a fragment did. Each value is worth a counter.
type Status uint8

const (
	Held        Status = iota // kept, waiting for the rest of its datagram
	Complete                  // completed its datagram: whole holds the rebuilt packet
	Overlap                   // overlapped data already held: the first data was kept
	Timeout                   // its datagram had timed out: it starts a new one
	NoRoom                    // no datagram slot or buffer memory left: dropped
	TooBig                    // its datagram would exceed 65535 bytes: dropped with it
	Malformed                 // not a valid fragment, or one its datagram contradicts
	NotFragment               // a valid packet, but not a fragment
	// Conflict is an overlap whose bytes differ from the ones held: the first
	// data stays, but the receiver may keep either (RFC 5722 has IPv6 hosts drop
	// the datagram): an inline appliance should drop such a fragment.
	Conflict
	// NumStatus is the number of Status values.
	NumStatus
	numStatus = NumStatus
)

var statusNames = [numStatus]string{"held", "complete", "overlap", "timeout", "no_room", "too_big", "malformed", "not_fragment", "conflict"}

func (s Status) String() string {
	if s < numStatus {
		return statusNames[s]
	}
	return "unknown"
}

// Config bounds a Reassembler. A field that is zero or less takes its default.
type Config struct {
	// MaxBytes bounds the buffers holding datagrams (default 4 MiB, Linux's
	// ipfrag_high_thresh); it is raised to one largest datagram (66047 bytes) if
	// lower. Each datagram slot also takes about 1.1 KB, allocated by New.
	MaxBytes int
	// MaxDatagrams is how many datagrams may be in progress at once (default 1024).
	MaxDatagrams int
	// Timeout is how long after its first fragment a datagram may take to complete
	// (default 30 s, Linux's ipfrag_time).
	Timeout time.Duration
}

// Defaults for Config's zero fields.
const (
	DefaultMaxBytes     = 4 << 20
	DefaultMaxDatagrams = 1024
	DefaultTimeout      = 30 * time.Second
)

// Stats counts what a Reassembler did.
type Stats struct {
	Fragments   uint64 // fragments given to Add
	Datagrams   uint64 // datagrams completed
	Overlaps    uint64 // fragments that overlapped data already held
	Timeouts    uint64 // datagrams dropped unfinished after Timeout
	NoRoom      uint64 // fragments dropped for want of a slot or memory
	TooBig      uint64 // datagrams dropped for growing past 65535 bytes
	Malformed   uint64 // packets that were not valid fragments
	BufferBytes uint64 // bytes of buffer memory held now
}

// key identifies a datagram: RFC 791 (src, dst, protocol, id) for IPv4, RFC 8200
// (src, dst, id) for IPv6.
type key struct {
	scope    uint64 // the caller's: fragments of different scopes never join
	src, dst [16]byte
	id       uint32
	proto    uint8
	v6       bool
}

type datagram struct {
	key    key
	start  int64  // arrival of its first fragment, ns
	buf    []byte // hdrRoom bytes for the header, then the data
	hdrLen int    // length of the header at buf[hdrRoom-hdrLen:hdrRoom]; 0 until the offset-0 fragment
	nhPos  int    // IPv6: index in the header of the next-header byte to point past the Fragment header
	nh     uint8  // IPv6: the Fragment header's next header
	total  int    // data length, -1 until the last fragment
	maxEnd int    // end of the furthest data held
	blocks int    // blocks held
	active bool
	have   [(maxBlocks + 63) / 64]uint64 // blocks held, a bit each
}

// Reassembler rebuilds fragmented datagrams. It is safe for concurrent use.
type Reassembler struct {
	mu       sync.Mutex
	cfg      Config
	timeout  int64
	slots    []datagram
	free     []int32 // indexes of unused slots
	index    map[key]int32
	bufBytes int // sum of cap(buf) over all slots
	stats    Stats
}

// New returns a Reassembler bounded by cfg.
func New(cfg Config) *Reassembler {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxDatagrams <= 0 {
		cfg.MaxDatagrams = DefaultMaxDatagrams
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.MaxBytes = max(cfg.MaxBytes, hdrRoom+maxPayload)
	r := &Reassembler{
		cfg:     cfg,
		timeout: int64(cfg.Timeout),
		slots:   make([]datagram, cfg.MaxDatagrams),
		free:    make([]int32, cfg.MaxDatagrams),
		index:   make(map[key]int32, cfg.MaxDatagrams),
	}
	for i := range r.free {
		r.free[i] = int32(len(r.free) - 1 - i)
	}
	return r
}

// Config returns the bounds r applies, defaults filled in.
func (r *Reassembler) Config() Config { return r.cfg }

// Stats returns the counters so far.
func (r *Reassembler) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.BufferBytes = uint64(r.bufBytes)
	return s
}

// fragment is a parsed fragment.
type fragment struct {
	key    key
	hdr    []byte // the header to rebuild with (IPv4 header; IPv6 unfragmentable part)
	nhPos  int
	nh     uint8
	offset int
	more   bool
	data   []byte
}

// Add takes one raw IPv4 or IPv6 packet that is a fragment, arrived at now (ns).
// When it completes its datagram, Add appends the rebuilt, unfragmented packet to
// dst[:0] and returns it with Complete: an IPv4 packet with total length, flags,
// offset and checksum fixed; an IPv6 packet without its Fragment header, with
// payload length and next header fixed. dst should have room for 65535+512 bytes, or
// Add allocates. pkt is not kept.
func (r *Reassembler) Add(dst, pkt []byte, now int64) (whole []byte, status Status) {
	return r.AddScoped(dst, 0, pkt, now)
}

// AddScoped is Add for a fragment of scope: fragments join only with fragments of
// the same scope (the GWLB endpoint or mirror session they came through, whose
// networks may overlap another's).
func (r *Reassembler) AddScoped(dst []byte, scope uint64, pkt []byte, now int64) (whole []byte, status Status) {
	var f fragment
	st := parse(pkt, &f)
	f.key.scope = scope
	r.mu.Lock()
	defer r.mu.Unlock()
	if st == Held {
		r.stats.Fragments++
		whole, st = r.add(dst, &f, now)
	}
	switch st {
	case Complete:
		r.stats.Datagrams++
	case NoRoom:
		r.stats.NoRoom++
	case TooBig:
		r.stats.TooBig++
	case Malformed:
		r.stats.Malformed++
	}
	return whole, st
}

func (r *Reassembler) add(dst []byte, f *fragment, now int64) ([]byte, Status) {
	if f.offset == 0 && !f.more {
		// An atomic fragment (RFC 6946): whole on its own, never mixed with others.
		return rebuild(dst, f.key.v6, f.hdr, f.nhPos, f.nh, f.data), Complete
	}
	if f.offset == 0 && len(f.hdr) > hdrRoom {
		return nil, Malformed
	}
	end := f.offset + len(f.data)
	status := Held
	i, ok := r.index[f.key]
	if ok && now-r.slots[i].start > r.timeout {
		r.drop(i)
		r.stats.Timeouts++
		ok = false
		status = Timeout
	}
	if !ok {
		if i = r.take(now); i < 0 {
			return nil, NoRoom
		}
		d := &r.slots[i]
		d.key, d.start, d.active, d.total = f.key, now, true, -1
		r.index[f.key] = i
	}
	d := &r.slots[i]
	if (!f.more && (d.total >= 0 && d.total != end || d.maxEnd > end)) || (d.total >= 0 && end > d.total) {
		return nil, Malformed // contradicts the datagram's end: ignore the fragment
	}
	hdrLen := d.hdrLen
	if f.offset == 0 && hdrLen == 0 {
		hdrLen = len(f.hdr)
	}
	if max(end, d.maxEnd) > limit(f.key.v6, hdrLen) {
		r.drop(i)
		return nil, TooBig
	}
	if !r.grow(i, hdrRoom+end) {
		r.drop(i)
		return nil, NoRoom
	}
	if !f.more {
		d.total = end
	}
	d.maxEnd = max(d.maxEnd, end)
	if f.offset == 0 && d.hdrLen == 0 {
		d.hdrLen, d.nhPos, d.nh = len(f.hdr), f.nhPos, f.nh
		copy(d.buf[hdrRoom-d.hdrLen:hdrRoom], f.hdr)
	}
	if overlap, conflict := d.put(f.offset, f.data); overlap {
		r.stats.Overlaps++
		switch {
		case conflict:
			status = Conflict
		case status == Held:
			status = Overlap
		}
	}
	if d.total < 0 || d.hdrLen == 0 || d.blocks != (d.total+blockSize-1)/blockSize {
		return nil, status
	}
	whole := rebuild(dst, d.key.v6, d.buf[hdrRoom-d.hdrLen:hdrRoom], d.nhPos, d.nh, d.buf[hdrRoom:hdrRoom+d.total])
	r.drop(i)
	return whole, Complete
}

// limit is the most data a datagram may hold with a header of hdrLen (0: not known
// yet, so the smallest) and still fit the 16-bit length of the rebuilt packet.
func limit(v6 bool, hdrLen int) int {
	switch {
	case v6 && hdrLen > 0:
		return maxPayload - (hdrLen - 40)
	case v6:
		return maxPayload
	case hdrLen > 0:
		return maxPayload - hdrLen
	default:
		return maxPayload - 20
	}
}

// put copies the blocks of data at offset that d does not hold yet, and reports
// whether any were held already (an overlap: the first data stays) and whether
// any of those held bytes differ from data's (a conflict).
func (d *datagram) put(offset int, data []byte) (overlap, conflict bool) {
	end := offset + len(data)
	first, last := offset/blockSize, (end-1)/blockSize
	if !d.held(first, last) {
		// The usual case: nothing held there yet, one copy.
		for w := first / 64; w <= last/64; w++ {
			d.have[w] |= wordMask(w, first, last)
		}
		d.blocks += last - first + 1
		copy(d.buf[hdrRoom+offset:], data)
		return false, false
	}
	for b := offset / blockSize; b*blockSize < end; b++ {
		w, bit := b/64, uint64(1)<<(b%64)
		from := b*blockSize - offset
		if d.have[w]&bit != 0 {
			overlap = true
			lo := max(from, 0)
			hi := min(from+blockSize, len(data))
			held := d.buf[hdrRoom+offset+lo : hdrRoom+offset+hi]
			conflict = conflict || !bytes.Equal(held, data[lo:hi])
			continue
		}
		d.have[w] |= bit
		d.blocks++
		copy(d.buf[hdrRoom+b*blockSize:], data[from:min(from+blockSize, len(data))])
	}
	return overlap, conflict
}

// held reports whether any of blocks first..last is held.
func (d *datagram) held(first, last int) bool {
	for w := first / 64; w <= last/64; w++ {
		if d.have[w]&wordMask(w, first, last) != 0 {
			return true
		}
	}
	return false
}

// wordMask returns the bits of have[w] that stand for blocks first..last.
func wordMask(w, first, last int) uint64 {
	m := ^uint64(0)
	if lo := first - w*64; lo > 0 {
		m &= ^uint64(0) << lo
	}
	if hi := last - w*64; hi < 63 {
		m &= ^uint64(0) >> (63 - hi)
	}
	return m
}

// take returns a free slot, expiring timed-out datagrams when there is none, or -1.
func (r *Reassembler) take(now int64) int32 {
	if len(r.free) == 0 {
		r.expire(now)
	}
	if len(r.free) == 0 {
		return -1
	}
	i := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	return i
}

// grow makes slot i's buffer at least n bytes, within MaxBytes, releasing the
// buffers of unused slots if it must. The data already held is kept.
func (r *Reassembler) grow(i int32, n int) bool {
	d := &r.slots[i]
	if len(d.buf) >= n {
		return true
	}
	size := min((max(n, 2*len(d.buf))+bufStep-1)/bufStep*bufStep, hdrRoom+maxPayload)
	for j := 0; r.bufBytes-len(d.buf)+size > r.cfg.MaxBytes && j < len(r.free); j++ {
		if u := &r.slots[r.free[j]]; u.buf != nil {
			r.bufBytes -= len(u.buf)
			u.buf = nil
		}
	}
	if r.bufBytes-len(d.buf)+size > r.cfg.MaxBytes {
		return false
	}
	buf := make([]byte, size)
	copy(buf, d.buf)
	r.bufBytes += size - len(d.buf)
	d.buf = buf
	return true
}

// drop frees slot i, keeping its buffer for the next datagram.
func (r *Reassembler) drop(i int32) {
	d := &r.slots[i]
	delete(r.index, d.key)
	buf := d.buf
	*d = datagram{buf: buf}
	r.free = append(r.free, i)
}

// Expire drops the datagrams whose first fragment came more than Timeout before now
// and returns how many it dropped.
func (r *Reassembler) Expire(now int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.expire(now)
}

func (r *Reassembler) expire(now int64) int {
	n := 0
	for i := range r.slots {
		if d := &r.slots[i]; d.active && now-d.start > r.timeout {
			r.drop(int32(i))
			n++
		}
	}
	r.stats.Timeouts += uint64(n)
	return n
}

// Len returns the number of datagrams in progress.
func (r *Reassembler) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.index)
}

// rebuild appends to dst[:0] the unfragmented packet of hdr and data.
func rebuild(dst []byte, v6 bool, hdr []byte, nhPos int, nh uint8, data []byte) []byte {
	out := append(append(dst[:0], hdr...), data...)
	if v6 {
		out[nhPos] = nh
		binary.BigEndian.PutUint16(out[4:6], uint16(len(out)-40))
		return out
	}
	binary.BigEndian.PutUint16(out[2:4], uint16(len(out)))
	binary.BigEndian.PutUint16(out[6:8], binary.BigEndian.Uint16(out[6:8])&0xc000) // keep DF and the reserved bit
	out[10], out[11] = 0, 0
	binary.BigEndian.PutUint16(out[10:12], packet.FoldChecksum(packet.Checksum(0, out[:len(hdr)])))
	return out
}

// parse reads pkt into f and returns Held for a valid fragment, else NotFragment
// or Malformed.
func parse(pkt []byte, f *fragment) Status {
	if len(pkt) == 0 {
		return Malformed
	}
	switch pkt[0] >> 4 {
	case 4:
		return parse4(pkt, f)
	case 6:
		return parse6(pkt, f)
	}
	return Malformed
}

func parse4(pkt []byte, f *fragment) Status {
	if len(pkt) < 20 {
		return Malformed
	}
	hl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if hl < 20 || total < hl || total > len(pkt) {
		return Malformed
	}
	w := binary.BigEndian.Uint16(pkt[6:8])
	f.more = w&0x2000 != 0
	f.offset = int(w&0x1fff) * blockSize
	if !f.more && f.offset == 0 {
		return NotFragment
	}
	f.hdr, f.data = pkt[:hl], pkt[hl:total]
	copy(f.key.src[:], pkt[12:16])
	copy(f.key.dst[:], pkt[16:20])
	f.key.proto = pkt[9]
	f.key.id = uint32(binary.BigEndian.Uint16(pkt[4:6]))
	return checkData(f)
}

func parse6(pkt []byte, f *fragment) Status {
	if len(pkt) < 40 {
		return Malformed
	}
	n := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
	if n == 40 || n > len(pkt) {
		return Malformed // no payload (or a jumbogram), or cut short
	}
	pkt = pkt[:n]
	nhPos, pos := 6, 40
	for {
		switch pkt[nhPos] {
		case 0, 43, 60: // Hop-by-Hop, Routing, Destination Options: before the Fragment header
			if pos+2 > len(pkt) {
				return Malformed
			}
			nhPos, pos = pos, pos+(int(pkt[pos+1])+1)*8
			if pos > len(pkt) {
				return Malformed
			}
			continue
		case 44:
		default:
			return NotFragment
		}
		break
	}
	if pos+8 > len(pkt) {
		return Malformed
	}
	w := binary.BigEndian.Uint16(pkt[pos+2 : pos+4])
	f.nh, f.nhPos = pkt[pos], nhPos
	f.more = w&1 != 0
	f.offset = int(w &^ 7)
	f.hdr, f.data = pkt[:pos], pkt[pos+8:]
	copy(f.key.src[:], pkt[8:24])
	copy(f.key.dst[:], pkt[24:40])
	f.key.id = binary.BigEndian.Uint32(pkt[pos+4 : pos+8])
	f.key.v6 = true
	return checkData(f)
}

// checkData applies the rules every fragment's data must follow.
func checkData(f *fragment) Status {
	switch {
	case len(f.data) == 0 && f.more:
		return Malformed // carries nothing, promises more
	case f.more && len(f.data)%blockSize != 0:
		return Malformed // only the last fragment may end off a block boundary
	case f.offset+len(f.data) > maxPayload:
		return TooBig
	}
	return Held
}
