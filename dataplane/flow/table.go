package flow

import (
	"encoding/binary"
	"log/slog"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

// Defaults for a zero Config.
const (
	DefaultMaxFlows      = 1 << 20
	DefaultTCPTimeout    = 350 * time.Second // GWLB's TCP idle timeout
	DefaultOtherTimeout  = 120 * time.Second // GWLB's idle timeout for everything else
	DefaultClosedTimeout = 5 * time.Second
)

const (
	maxShards     = 64  // power of two
	minShardFlows = 128 // fewer shards for small tables, so eviction stays close to a global LRU
	pendingCap    = 32  // ended records buffered per shard before onEnd is called
	evictLogEvery = int64(10 * time.Second)
	idMask        = 1<<53 - 1 // flow ids stay exact in JSON numbers
)

// intervalScan is how many slab entries Interval looks at per lock hold (a variable
// for tests).
var intervalScan = 1024

// Timeout classes. Each has its own LRU list in a shard, so that every list holds
// entries with one timeout and Expire stops at the first entry of a list that is not
// idle long enough.
const (
	classTCP    = iota // TCP not closed: TCPTimeout
	classOther         // not TCP: OtherTimeout
	classClosed        // TCP closed: ClosedTimeout
	numClasses
)

const (
	finToServer = 1 << iota
	finToClient
)

// entry is one flow in a shard's slab. The fields a hit reads and writes come first.
type entry struct {
	key                                Key
	last                               int64 // newest packet, unix ns
	prev, next                         int32 // LRU list of the class (next also links the free list)
	class                              uint8
	clientIsLo                         bool // the client is (key.Lo, key.LoPort)
	state                              State
	fins                               uint8 // finToServer | finToClient seen
	tcpFlagsToServer, tcpFlagsToClient uint8
	action                             policy.Action
	direction                          uint8 // Meta.Direction of the first packet
	rule                               int32
	session                            uint16 // Meta.Session of the first packet
	id                                 uint64 // never 0 while the entry is live
	pktsToServer, pktsToClient         uint64
	bytesToServer, bytesToClient       uint64
	aws                                geneve.AWS
	hash                               uint64
	start                              int64
	tunnel                             tunnel // Meta.Tunnel of the first packet
}

// tunnel is Tunnel packed for the slab: 44 bytes instead of 64.
type tunnel struct {
	src, dst         [16]byte
	vni              uint32
	srcPort, dstPort uint16
	encap            uint8
	srcFam, dstFam   uint8 // 0 no address, 4, 6
}

func packAddr(a netip.Addr) ([16]byte, uint8) {
	switch {
	case a.Is4():
		return a.As16(), 4
	case a.IsValid():
		return a.As16(), 6
	}
	return [16]byte{}, 0
}

func unpackAddr(b *[16]byte, fam uint8) netip.Addr {
	switch fam {
	case 4:
		return netip.AddrFrom4([4]byte(b[12:]))
	case 6:
		return netip.AddrFrom16(*b)
	}
	return netip.Addr{}
}

func (p *tunnel) pack(t *Tunnel) {
	p.src, p.srcFam = packAddr(t.Src)
	p.dst, p.dstFam = packAddr(t.Dst)
	p.vni, p.srcPort, p.dstPort, p.encap = t.VNI, t.SrcPort, t.DstPort, t.Encap
}

func (p *tunnel) unpack() Tunnel {
	return Tunnel{Encap: p.encap, Src: unpackAddr(&p.src, p.srcFam), Dst: unpackAddr(&p.dst, p.dstFam),
		SrcPort: p.srcPort, DstPort: p.dstPort, VNI: p.vni}
}

// ival is a flow's traffic since the last interval record, index 0 to the server,
// 1 to the client. It lives beside the slab (only when OnInterval is set), so that
// tables without interval output do not pay for it. A live entry with no traffic
// since its last interval record, and every unused slot, has pkts all zero.
type ival struct {
	pkts  [2]uint64
	bytes [2]uint64
	first [2]int64
	last  [2]int64
}

// pend is a record waiting, in a shard, to be handed to OnInterval and/or onEnd.
type pend struct {
	rec      Record
	delta    Delta
	hasDelta bool // hand rec and delta to OnInterval
	ended    bool // then hand rec to onEnd
}

// slot is one open-addressing index slot: the low 32 bits of the key's hash and the
// slab index plus one (0 marks an empty slot).
type slot struct {
	tag uint32
	idx int32
}

// shard is one lock's worth of the table: a slab of entries, a linear-probing index
// into it (at most half full, so probes end), one LRU list per timeout class, and
// the buffers that carry ended flows to onEnd after the lock is released.
type shard struct {
	mu    sync.Mutex
	slots []slot
	mask  uint32
	slab  []entry // len is the high-water mark; cap is the shard's share of MaxFlows
	ival  []ival  // beside slab, len cap(slab); nil without OnInterval
	free  int32   // free list through entry.next, -1 when empty
	n     int     // live entries
	limit int
	head  [numClasses]int32 // most recently seen
	tail  [numClasses]int32 // least recently seen
	seq   uint64            // flows created, for ids
	num   uint64            // the shard's index in the table
	// pending holds records not yet handed to onEnd or OnInterval; guarded by mu.
	pending []pend

	// emitMu serialises the onEnd and OnInterval calls of the shard; emitting is only
	// touched with it held, so records stay valid during the calls while mu is free
	// for packets.
	emitMu   sync.Mutex
	emitting []pend

	_ [64]byte // keep neighbouring shards' locks off one cache line
}

// Table is the flow table. It is safe for concurrent use: flows are sharded by a
// hash of their key, each shard behind its own mutex.
type Table struct {
	shards    []shard
	shift     uint // shard = hash >> shift
	shardBits uint
	seed      [7]uint64
	idBase    uint64
	timeout   [numClasses]int64
	decide    Decider
	onEnd     func(*Record)
	onIval    func(*Record, *Delta) // nil: no interval counters
	log       *slog.Logger
	maxFlows  int

	evicted      atomic.Uint64
	evictedLog   atomic.Uint64 // evicted since the last log line
	lastEvictLog atomic.Int64  // now of the last log line, math.MinInt64 before any
}

// NewTable returns an empty table. decide picks each new flow's action (nil allows
// every flow); onEnd, when not nil, receives every flow that ends, with a Record
// valid only during the call. onEnd is never called with a table lock held, but it
// is called synchronously from Track, Expire, Flush and Interval, so it should be
// quick (hand the record to a queue). cfg.OnInterval is called the same way. decide,
// by contrast, runs with a shard lock held: it must be quick and must not call back
// into the table.
func NewTable(cfg Config, decide Decider, onEnd func(*Record)) *Table {
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	if cfg.TCPTimeout <= 0 {
		cfg.TCPTimeout = DefaultTCPTimeout
	}
	if cfg.OtherTimeout <= 0 {
		cfg.OtherTimeout = DefaultOtherTimeout
	}
	if cfg.ClosedTimeout <= 0 {
		cfg.ClosedTimeout = DefaultClosedTimeout
	}
	if onEnd == nil {
		onEnd = func(*Record) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := maxShards
	for n > 1 && cfg.MaxFlows/n < minShardFlows {
		n /= 2
	}
	t := &Table{
		shards:    make([]shard, n),
		shardBits: uint(bits.TrailingZeros(uint(n))),
		decide:    decide,
		onEnd:     onEnd,
		onIval:    cfg.OnInterval,
		log:       cfg.Logger,
		maxFlows:  cfg.MaxFlows,
	}
	t.shift = 64 - t.shardBits
	t.timeout[classTCP] = int64(cfg.TCPTimeout)
	t.timeout[classOther] = int64(cfg.OtherTimeout)
	t.timeout[classClosed] = int64(cfg.ClosedTimeout)
	for i := range t.seed {
		t.seed[i] = rand.Uint64() | 1
	}
	t.idBase = rand.Uint64() & idMask
	t.lastEvictLog.Store(math.MinInt64)
	for i := range t.shards {
		s := &t.shards[i]
		s.num = uint64(i)
		s.limit = cfg.MaxFlows / n
		if i < cfg.MaxFlows%n {
			s.limit++
		}
		s.limit = max(s.limit, 1)
		size := 1 << bits.Len(uint(2*s.limit-1)) // power of two >= 2*limit
		s.slots = make([]slot, size)
		s.mask = uint32(size - 1)
		s.slab = make([]entry, 0, s.limit)
		if cfg.OnInterval != nil {
			s.ival = make([]ival, s.limit)
		}
		s.free = -1
		s.head = [numClasses]int32{-1, -1, -1}
		s.tail = s.head
		s.pending = make([]pend, 0, pendingCap)
		s.emitting = make([]pend, 0, pendingCap)
	}
	return t
}

// KeyOf returns the key of p's flow in tunnel scope scope, and whether p's source is
// the key's Lo endpoint.
func KeyOf(scope uint64, p *packet.Packet) (k Key, srcIsLo bool) {
	return keyOf(scope, p.Proto, p.Src, p.Dst, p.SrcPort, p.DstPort)
}

func keyOf(scope uint64, proto uint8, src, dst netip.Addr, sport, dport uint16) (Key, bool) {
	c := src.Compare(dst)
	if c < 0 || (c == 0 && sport <= dport) {
		return Key{Scope: scope, Proto: proto, Lo: src, Hi: dst, LoPort: sport, HiPort: dport}, true
	}
	return Key{Scope: scope, Proto: proto, Lo: dst, Hi: src, LoPort: dport, HiPort: sport}, false
}

// mix is the wyhash mixing step: the folded 128-bit product.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash is a keyed hash of k; the seeds are random per table. The top bits pick the
// shard, the low 32 bits are the index tag and home slot.
func (t *Table) hash(k *Key) uint64 {
	lo, hi := k.Lo.As16(), k.Hi.As16()
	a := mix(binary.BigEndian.Uint64(lo[:8])^t.seed[0], binary.BigEndian.Uint64(lo[8:])^t.seed[1])
	b := mix(binary.BigEndian.Uint64(hi[:8])^t.seed[2], binary.BigEndian.Uint64(hi[8:])^t.seed[3])
	c := mix(k.Scope^t.seed[4], (uint64(k.Proto)<<32|uint64(k.LoPort)<<16|uint64(k.HiPort))^t.seed[5])
	return mix(a^c^t.seed[6], b^c)
}

// Track accounts one packet of length bytes seen at now (unix nanoseconds) in tunnel
// scope scope and returns the flow's verdict. aws may be nil (non-GWLB traffic). It is
// TrackMeta with a Meta holding only aws.
func (t *Table) Track(scope uint64, p *packet.Packet, length int, aws *geneve.AWS, now int64) Result {
	m := Meta{AWS: aws}
	return t.TrackMeta(scope, p, length, &m, now)
}

// TrackMeta accounts one packet of length bytes seen at now (unix nanoseconds) in
// tunnel scope scope and returns the flow's verdict. m describes the packet's
// tunnel; it may be nil, and m.AWS may be nil (non-GWLB traffic). The flow keeps the
// tunnel, session and direction of its first packet, and the newest GWLB options.
// Flows are apart when their scopes differ, even with equal 5-tuples.
//
// An ICMP error whose quoted packet belongs to a known flow is counted against that
// flow (in the direction opposite to the quoted packet) and gets its verdict.
// Otherwise the packet's own flow is found or created; a new flow's action is decided
// once, from this packet. A TCP SYN without ACK on a closing or closed flow, or
// carrying a GWLB flow cookie other than the flow's, ends the old flow (EndForced) and
// starts a new one. A flow found idle past its timeout (Expire has not run yet) ends
// with EndTimeout and the packet starts a new one.
func (t *Table) TrackMeta(scope uint64, p *packet.Packet, length int, m *Meta, now int64) Result {
	var aws *geneve.AWS
	if m != nil {
		aws = m.AWS
	}
	if p.Quote.Valid {
		if r, ok := t.trackQuoted(scope, p, length, now); ok {
			return r
		}
	}
	k, srcIsLo := KeyOf(scope, p)
	h := t.hash(&k)
	s := &t.shards[h>>t.shift]
	var res Result
	ended, evicted := false, false

	s.mu.Lock()
	i := s.find(h, &k)
	if i >= 0 {
		e := &s.slab[i]
		switch {
		case now-e.last > t.timeout[e.class]:
			s.end(i, EndTimeout)
			ended = true
		case restarts(e, p, aws):
			s.end(i, EndForced)
			ended = true
		default:
			res = t.update(s, i, p, srcIsLo, length, aws, now)
			s.mu.Unlock()
			return res
		}
		s.unlink(i) // reused in place: same key, same index slot
		s.n--
	} else {
		if s.n >= s.limit {
			t.evict(s)
			ended, evicted = true, true
		}
		i = s.alloc()
		s.insert(h, i)
	}
	res = t.create(s, i, &k, h, p, srcIsLo, length, m, now)
	s.mu.Unlock()

	if ended {
		t.emit(s)
	}
	if evicted {
		t.noteEvicted(now)
	}
	return res
}

// trackQuoted counts an ICMP error against the flow of the packet it quotes, if that
// flow is known and live.
func (t *Table) trackQuoted(scope uint64, p *packet.Packet, length int, now int64) (Result, bool) {
	q := &p.Quote
	// An error about a packet goes back to that packet's sender. One addressed to
	// anyone else is not part of the flow it quotes, and must not borrow its verdict
	// (a host behind a drop rule could otherwise send ICMP anywhere by quoting an
	// allowed flow).
	if p.Dst != q.Src {
		return Result{}, false
	}
	k, qSrcIsLo := keyOf(scope, q.Proto, q.Src, q.Dst, q.SrcPort, q.DstPort)
	h := t.hash(&k)
	s := &t.shards[h>>t.shift]
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(h, &k)
	if i < 0 {
		return Result{}, false
	}
	e := &s.slab[i]
	if now-e.last > t.timeout[e.class] {
		return Result{}, false
	}
	toServer := qSrcIsLo != e.clientIsLo // the error travels back towards the quoted sender
	e.count(toServer, length, 0)
	s.countIval(i, toServer, length, now)
	e.last = max(e.last, now)
	s.touch(i)
	return Result{Action: e.action, FlowID: e.id, ToServer: toServer}, true
}

// restarts reports whether p, a packet of e's 5-tuple, starts a new flow: a TCP SYN
// without ACK on a closing or closed flow, or with a GWLB flow cookie other than the
// flow's (GWLB reused the 5-tuple for a new flow). The direction is not checked: a
// bare SYN from the old server on a closing or closed flow is a new connection the
// other way round, and its sender becomes the new flow's client.
func restarts(e *entry, p *packet.Packet, aws *geneve.AWS) bool {
	if p.Proto != packet.ProtoTCP || p.TCPFlags&(packet.TCPSyn|packet.TCPAck|packet.TCPRst) != packet.TCPSyn {
		return false
	}
	if e.state >= StateClosing {
		return true
	}
	return aws != nil && aws.Has(geneve.AWSTypeFlowCookie) && e.aws.Has(geneve.AWSTypeFlowCookie) &&
		aws.FlowCookie != e.aws.FlowCookie
}

// create fills slab entry i (unlinked, indexed under h) as a new flow started by p.
func (t *Table) create(s *shard, i int32, k *Key, h uint64, p *packet.Packet, srcIsLo bool, length int, m *Meta, now int64) Result {
	e := &s.slab[i]
	*e = entry{key: *k, hash: h, start: now, last: now, clientIsLo: srcIsLo, rule: policy.NoRule}
	e.id = t.nextID(s)
	if t.decide != nil {
		a, r := t.decide.Decide(p)
		e.action, e.rule = a, int32(r)
	}
	if m != nil {
		if m.AWS != nil {
			e.aws = *m.AWS
		}
		e.direction, e.session = m.Direction, m.Session
		if m.Tunnel != (Tunnel{}) {
			e.tunnel.pack(&m.Tunnel)
		}
	}
	e.count(true, length, p.TCPFlags)
	if s.ival != nil {
		s.ival[i] = ival{}
		s.countIval(i, true, length, now)
	}
	e.advance(p.TCPFlags, true)
	e.class = classOf(e)
	s.link(i)
	s.n++
	return Result{Action: e.action, FlowID: e.id, Created: true, ToServer: true}
}

// update accounts p on live entry i.
func (t *Table) update(s *shard, i int32, p *packet.Packet, srcIsLo bool, length int, aws *geneve.AWS, now int64) Result {
	e := &s.slab[i]
	toServer := srcIsLo == e.clientIsLo
	e.count(toServer, length, p.TCPFlags)
	s.countIval(i, toServer, length, now)
	e.advance(p.TCPFlags, toServer)
	if aws != nil {
		e.aws = *aws
	}
	e.last = max(e.last, now)
	if c := classOf(e); c != e.class {
		s.unlink(i)
		e.class = c
		s.link(i)
	} else {
		s.touch(i)
	}
	return Result{Action: e.action, FlowID: e.id, ToServer: toServer}
}

func (e *entry) count(toServer bool, length int, flags uint8) {
	if toServer {
		e.pktsToServer++
		e.bytesToServer += uint64(length)
		e.tcpFlagsToServer |= flags
	} else {
		e.pktsToClient++
		e.bytesToClient += uint64(length)
		e.tcpFlagsToClient |= flags
	}
}

// countIval adds a packet to entry i's interval counters, if the table keeps them.
func (s *shard) countIval(i int32, toServer bool, length int, now int64) {
	if s.ival == nil {
		return
	}
	v := &s.ival[i]
	d := 1
	if toServer {
		d = 0
	}
	if v.pkts[d] == 0 {
		v.first[d], v.last[d] = now, now
	} else {
		v.first[d] = min(v.first[d], now)
		v.last[d] = max(v.last[d], now)
	}
	v.pkts[d]++
	v.bytes[d] += uint64(length)
}

// advance moves the protocol state for a packet with TCP flags f in the given direction.
func (e *entry) advance(f uint8, toServer bool) {
	if e.key.Proto != packet.ProtoTCP {
		if !toServer && e.state == StateNew {
			e.state = StateEstablished
		}
		return
	}
	switch {
	case f&packet.TCPRst != 0:
		e.state = StateClosed
	case f&packet.TCPFin != 0:
		if toServer {
			e.fins |= finToServer
		} else {
			e.fins |= finToClient
		}
		if e.fins == finToServer|finToClient {
			e.state = StateClosed
		} else if e.state < StateClosing {
			e.state = StateClosing
		}
	case !toServer && e.state == StateNew:
		e.state = StateEstablished
	}
}

func classOf(e *entry) uint8 {
	if e.key.Proto != packet.ProtoTCP {
		return classOther
	}
	if e.state == StateClosed {
		return classClosed
	}
	return classTCP
}

// nextID returns a flow id unique in the table: the shard's sequence number and the
// shard index, offset by the table's random base, modulo 2^53, never 0.
func (t *Table) nextID(s *shard) uint64 {
	for {
		s.seq++
		if id := (t.idBase + (s.seq<<t.shardBits | s.num)) & idMask; id != 0 {
			return id
		}
	}
}

// evict ends the least recently seen flow of a full shard.
func (t *Table) evict(s *shard) {
	best := int32(-1)
	for c := range numClasses {
		if i := s.tail[c]; i >= 0 && (best < 0 || s.slab[i].last < s.slab[best].last) {
			best = i
		}
	}
	s.end(best, EndForced)
	s.remove(best)
	t.evicted.Add(1)
	t.evictedLog.Add(1)
}

// noteEvicted logs evictions, at most one line per evictLogEvery of packet time.
func (t *Table) noteEvicted(now int64) {
	last := t.lastEvictLog.Load()
	if last != math.MinInt64 && now-last < evictLogEvery {
		return
	}
	if !t.lastEvictLog.CompareAndSwap(last, now) {
		return
	}
	t.log.Warn("flow table full: evicting least recently seen flows",
		"evicted", t.evictedLog.Swap(0), "max_flows", t.maxFlows)
}

// end appends the record of live entry i, ending with reason, to the shard's pending
// records, with its interval traffic not yet reported, if any.
func (s *shard) end(i int32, reason EndReason) {
	s.pending = append(s.pending, pend{ended: true})
	p := &s.pending[len(s.pending)-1]
	s.record(&p.rec, &s.slab[i])
	p.rec.Reason = reason
	if s.ival != nil {
		p.hasDelta = s.takeDelta(&p.delta, i)
	}
}

// interval appends the record of live entry i with its interval traffic to the
// shard's pending records.
func (s *shard) interval(i int32) {
	s.pending = append(s.pending, pend{hasDelta: true})
	p := &s.pending[len(s.pending)-1]
	s.record(&p.rec, &s.slab[i])
	s.takeDelta(&p.delta, i)
}

// takeDelta moves entry i's interval traffic to d, reports whether there was any,
// and resets it.
func (s *shard) takeDelta(d *Delta, i int32) bool {
	v := &s.ival[i]
	if v.pkts == [2]uint64{} {
		return false
	}
	d.PktsToServer, d.PktsToClient = v.pkts[0], v.pkts[1]
	d.BytesToServer, d.BytesToClient = v.bytes[0], v.bytes[1]
	if v.pkts[0] != 0 {
		d.FirstToServer, d.LastToServer = time.Unix(0, v.first[0]), time.Unix(0, v.last[0])
	}
	if v.pkts[1] != 0 {
		d.FirstToClient, d.LastToClient = time.Unix(0, v.first[1]), time.Unix(0, v.last[1])
	}
	*v = ival{}
	return true
}

// record fills r from live entry e; Reason is left zero.
func (s *shard) record(r *Record, e *entry) {
	r.ID = e.id
	r.Proto = e.key.Proto
	if e.clientIsLo {
		r.Src, r.SrcPort, r.Dst, r.DstPort = e.key.Lo, e.key.LoPort, e.key.Hi, e.key.HiPort
	} else {
		r.Src, r.SrcPort, r.Dst, r.DstPort = e.key.Hi, e.key.HiPort, e.key.Lo, e.key.LoPort
	}
	r.Start = time.Unix(0, e.start)
	r.End = time.Unix(0, e.last)
	r.PktsToServer, r.PktsToClient = e.pktsToServer, e.pktsToClient
	r.BytesToServer, r.BytesToClient = e.bytesToServer, e.bytesToClient
	r.State = e.state
	r.TCPFlagsToServer, r.TCPFlagsToClient = e.tcpFlagsToServer, e.tcpFlagsToClient
	r.Action = e.action
	r.Rule = int(e.rule)
	r.AWS = e.aws
	r.Tunnel = e.tunnel.unpack()
	r.Direction = e.direction
	r.Session = e.session
}

// emit hands the shard's pending records to OnInterval and onEnd, from a packet
// worker.
func (t *Table) emit(s *shard) {
	s.emitMu.Lock()
	t.drain(s, false)
	s.emitMu.Unlock()
}

// drain hands the shard's pending records to OnInterval and onEnd; s.emitMu must be
// held, s.mu not. background marks records emitted by Expire, Flush or Interval.
func (t *Table) drain(s *shard, background bool) {
	s.mu.Lock()
	s.pending, s.emitting = s.emitting[:0], s.pending
	s.mu.Unlock()
	for i := range s.emitting {
		p := &s.emitting[i]
		p.rec.Background = background
		if p.hasDelta {
			t.onIval(&p.rec, &p.delta)
		}
		if p.ended {
			t.onEnd(&p.rec)
		}
	}
	clear(s.emitting)
	s.emitting = s.emitting[:0]
}

// Expire ends the flows idle past their timeout at now and returns how many ended.
// Each shard keeps one LRU list per timeout (TCP, other, closed TCP), so the walk
// from each list's tail stops at its first entry that is not idle long enough: the
// cost is the number of flows ended plus a few per shard.
func (t *Table) Expire(now int64) int {
	return t.sweep(now, EndTimeout)
}

// Flush ends every flow with EndShutdown, for a stopping process, and returns how
// many ended. The table is empty afterwards. Records end at their last packet, so
// now is not used.
func (t *Table) Flush(now int64) int {
	return t.sweep(now, EndShutdown)
}

// sweep ends flows shard by shard, in batches that fit the pending buffer so that
// each lock is held briefly. EndTimeout ends the idle flows, any other reason all.
func (t *Table) sweep(now int64, reason EndReason) int {
	total := 0
	for si := range t.shards {
		s := &t.shards[si]
		s.emitMu.Lock()
		for {
			s.mu.Lock()
			more := false
		classes:
			for c := range numClasses {
				for i := s.tail[c]; i >= 0; {
					e := &s.slab[i]
					if reason == EndTimeout && now-e.last <= t.timeout[c] {
						break
					}
					if len(s.pending) == cap(s.pending) {
						more = true
						break classes
					}
					prev := e.prev
					s.end(i, reason)
					s.remove(i)
					total++
					i = prev
				}
			}
			s.mu.Unlock()
			t.drain(s, true)
			if !more {
				break
			}
		}
		s.emitMu.Unlock()
	}
	return total
}

// Interval hands Config.OnInterval, for every flow with traffic since its previous
// interval record, the flow's Record and that traffic as a Delta, then resets the
// flow's delta; it returns the number of records emitted. A flow that ends emits its
// remaining delta (if any) through OnInterval just before onEnd, so every packet is
// reported in exactly one Delta. The call order of records is unspecified. Without
// OnInterval it does nothing. now is not used: the deltas carry their packets' times.
//
// It walks the whole table, shard by shard, in batches that hold each lock briefly;
// packets arriving during the walk go to this interval or the next. OnInterval is
// not called with a table lock held.
func (t *Table) Interval(now int64) int {
	if t.onIval == nil {
		return 0
	}
	total := 0
	for si := range t.shards {
		s := &t.shards[si]
		s.emitMu.Lock()
		for pos := 0; ; {
			s.mu.Lock()
			stop := min(len(s.slab), pos+intervalScan)
			for ; pos < stop && len(s.pending) < cap(s.pending); pos++ {
				if s.ival[pos].pkts == [2]uint64{} || s.slab[pos].id == 0 {
					continue
				}
				s.interval(int32(pos))
				total++
			}
			done := pos >= len(s.slab)
			s.mu.Unlock()
			t.drain(s, true)
			if done {
				break
			}
		}
		s.emitMu.Unlock()
	}
	return total
}

// Active returns the number of flows in the table.
func (t *Table) Active() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// Evicted returns how many flows have been evicted because the table was full.
func (t *Table) Evicted() uint64 { return t.evicted.Load() }

// ---- shard internals; all need s.mu held ----

// find returns the slab index of k's entry, or -1.
func (s *shard) find(h uint64, k *Key) int32 {
	tag := uint32(h)
	for i := tag & s.mask; ; i = (i + 1) & s.mask {
		sl := s.slots[i]
		if sl.idx == 0 {
			return -1
		}
		if sl.tag == tag && s.slab[sl.idx-1].key == *k {
			return sl.idx - 1
		}
	}
}

// insert indexes slab entry i under hash h.
func (s *shard) insert(h uint64, i int32) {
	tag := uint32(h)
	j := tag & s.mask
	for s.slots[j].idx != 0 {
		j = (j + 1) & s.mask
	}
	s.slots[j] = slot{tag: tag, idx: i + 1}
}

// unindex removes slab entry i (hash h) from the index, shifting later entries of
// its probe run back so that no tombstones are needed.
func (s *shard) unindex(h uint64, i int32) {
	mask := s.mask
	hole := uint32(h) & mask
	for s.slots[hole].idx != i+1 {
		hole = (hole + 1) & mask
	}
	for j := hole; ; {
		j = (j + 1) & mask
		sl := s.slots[j]
		if sl.idx == 0 {
			break
		}
		home := sl.tag & mask
		// sl may fill the hole unless its home lies cyclically in (hole, j].
		if hole <= j {
			if hole < home && home <= j {
				continue
			}
		} else if hole < home || home <= j {
			continue
		}
		s.slots[hole] = sl
		hole = j
	}
	s.slots[hole] = slot{}
}

// alloc returns an unused slab index; the shard must not be full.
func (s *shard) alloc() int32 {
	if i := s.free; i >= 0 {
		s.free = s.slab[i].next
		return i
	}
	s.slab = s.slab[:len(s.slab)+1]
	return int32(len(s.slab) - 1)
}

// remove drops live entry i: off its list, out of the index, onto the free list.
func (s *shard) remove(i int32) {
	e := &s.slab[i]
	s.unlink(i)
	s.unindex(e.hash, i)
	*e = entry{next: s.free}
	s.free = i
	s.n--
}

// link puts entry i at the head of its class list.
func (s *shard) link(i int32) {
	e := &s.slab[i]
	c := e.class
	e.prev, e.next = -1, s.head[c]
	if e.next >= 0 {
		s.slab[e.next].prev = i
	} else {
		s.tail[c] = i
	}
	s.head[c] = i
}

// unlink takes entry i off its class list.
func (s *shard) unlink(i int32) {
	e := &s.slab[i]
	c := e.class
	if e.prev >= 0 {
		s.slab[e.prev].next = e.next
	} else {
		s.head[c] = e.next
	}
	if e.next >= 0 {
		s.slab[e.next].prev = e.prev
	} else {
		s.tail[c] = e.prev
	}
}

// touch moves entry i to the head of its class list.
func (s *shard) touch(i int32) {
	if s.head[s.slab[i].class] != i {
		s.unlink(i)
		s.link(i)
	}
}
