package dataplane

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync/atomic"
)

// DefaultTrackVNIs is how many distinct VNIs each worker keeps counts of when
// VXLANDecode.TrackVNIs is 0.
const DefaultTrackVNIs = 1024

// VNIStat is what the mirror path has seen of one VNI.
type VNIStat struct {
	VNI        uint32
	Session    *Session // nil: no session takes the VNI
	Packets    uint64   // datagrams whose VXLAN header decoded
	LastSource netip.Addr
	LastSeen   int64 // unix nanoseconds (capture time in replay)
}

// vniEntry is one VNI's count during a batch; only the worker touches it.
type vniEntry struct {
	vni     uint32
	packets uint64 // since the last publish
	src     netip.Addr
	seen    int64
	session *Session
	touched bool
}

// vniPublished is one VNI as scrapes read it. The worker is its only writer: the
// source, time and session are written between two increments of seq, so a reader
// that sees seq odd, or changed, reads again.
type vniPublished struct {
	seq          atomic.Uint32
	vni          atomic.Uint32
	packets      atomic.Uint64
	srcHi, srcLo atomic.Uint64
	srcBits      atomic.Uint32 // 0 no source, 32 IPv4, 128 IPv6
	seen         atomic.Int64
	session      atomic.Pointer[Session]
}

// vniTable is one worker's VNI counts: a fixed open-addressed table filled on the
// packet path with plain writes, published to atomics once per batch. It never
// grows: VNIs beyond its capacity are counted as overflow, not tracked.
type vniTable struct {
	slots    []uint16 // hash slots: index into ent plus one; 0 is empty
	shift    uint32   // 32 - log2(len(slots))
	ent      []vniEntry
	n        int
	touched  []uint16 // entries touched in this batch
	overflow uint64   // packets of untracked VNIs in this batch

	pub         []vniPublished
	pubN        atomic.Int32 // entries of pub in use
	pubOverflow atomic.Uint64
}

func newVNITable(capacity int) *vniTable {
	if capacity <= 0 {
		capacity = DefaultTrackVNIs
	}
	capacity = min(capacity, 1<<15)
	slots, bits := 2, uint32(1)
	for slots < 2*capacity {
		slots, bits = slots<<1, bits+1
	}
	return &vniTable{
		slots: make([]uint16, slots), shift: 32 - bits,
		ent: make([]vniEntry, capacity), touched: make([]uint16, 0, capacity),
		pub: make([]vniPublished, capacity),
	}
}

// see counts one datagram of vni from src. It allocates nothing.
func (t *vniTable) see(vni uint32, src netip.Addr, now int64, s *Session) {
	mask := uint32(len(t.slots) - 1)
	h := (vni * 0x9e3779b1) >> t.shift
	for {
		i := t.slots[h]
		if i == 0 {
			if t.n == len(t.ent) {
				t.overflow++
				return
			}
			t.ent[t.n] = vniEntry{vni: vni}
			t.n++
			t.slots[h] = uint16(t.n)
			i = uint16(t.n)
		}
		e := &t.ent[i-1]
		if e.vni == vni {
			e.packets++
			e.src, e.seen, e.session = src, now, s
			if !e.touched {
				e.touched = true
				t.touched = append(t.touched, i-1)
			}
			return
		}
		h = (h + 1) & mask
	}
}

// Publish copies the batch's counts to the atomics scrapes read.
func (t *vniTable) Publish() {
	for _, i := range t.touched {
		e, p := &t.ent[i], &t.pub[i]
		if int(i) >= int(t.pubN.Load()) {
			p.vni.Store(e.vni)
		}
		p.packets.Add(e.packets)
		p.seq.Add(1)
		a := e.src.As16()
		p.srcHi.Store(binary.BigEndian.Uint64(a[:8]))
		p.srcLo.Store(binary.BigEndian.Uint64(a[8:]))
		p.srcBits.Store(uint32(e.src.BitLen()))
		p.seen.Store(e.seen)
		p.session.Store(e.session)
		p.seq.Add(1)
		e.packets, e.touched = 0, false
	}
	t.touched = t.touched[:0]
	if t.pubN.Load() != int32(t.n) {
		t.pubN.Store(int32(t.n))
	}
	if t.overflow != 0 {
		t.pubOverflow.Add(t.overflow)
		t.overflow = 0
	}
}

// read returns published entry i; ok is false when the worker kept rewriting it.
func (p *vniPublished) read() (st VNIStat, ok bool) {
	for range 100 {
		s1 := p.seq.Load()
		if s1&1 != 0 {
			continue
		}
		st = VNIStat{VNI: p.vni.Load(), Packets: p.packets.Load(), LastSeen: p.seen.Load(), Session: p.session.Load()}
		var a [16]byte
		binary.BigEndian.PutUint64(a[:8], p.srcHi.Load())
		binary.BigEndian.PutUint64(a[8:], p.srcLo.Load())
		bits := p.srcBits.Load()
		if p.seq.Load() != s1 {
			continue
		}
		switch bits {
		case 32:
			st.LastSource = netip.AddrFrom16(a).Unmap()
		case 128:
			st.LastSource = netip.AddrFrom16(a)
		}
		return st, true
	}
	return st, false
}

// VNIs is what the pipeline's VXLAN decoders have seen, summed over workers, by VNI
// in ascending order: packets, the session that took them (nil for none), the
// outer source and time of the last one. overflow counts the datagrams of VNIs
// beyond a worker's tracking capacity (VXLANDecode.TrackVNIs). Safe at any time.
func (p *Pipeline) VNIs() (vnis []VNIStat, overflow uint64) {
	byVNI := map[uint32]int{}
	for _, st := range p.vniTables() {
		overflow += st.pubOverflow.Load()
		n := int(st.pubN.Load())
		for i := range st.pub[:n] {
			v, ok := st.pub[i].read()
			if !ok {
				continue
			}
			j, seen := byVNI[v.VNI]
			if !seen {
				byVNI[v.VNI] = len(vnis)
				vnis = append(vnis, v)
				continue
			}
			w := &vnis[j]
			w.Packets += v.Packets
			if v.LastSeen > w.LastSeen {
				w.LastSeen, w.LastSource, w.Session = v.LastSeen, v.LastSource, v.Session
			}
		}
	}
	slices.SortFunc(vnis, func(a, b VNIStat) int { return int(a.VNI) - int(b.VNI) })
	return vnis, overflow
}

// vniTables is every worker's VNI table.
func (p *Pipeline) vniTables() []*vniTable {
	var out []*vniTable
	for _, s := range p.stages {
		if _, ok := s.(*VXLANDecode); !ok {
			continue
		}
		for _, st := range p.StageStates(s) {
			if t, ok := st.(*vniTable); ok {
				out = append(out, t)
			}
		}
	}
	return out
}
