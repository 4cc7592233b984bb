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
	DefaultMaxFlows       = 1 << 20
	DefaultTCPTimeout     = 350 * time.Second // GWLB's TCP idle timeout
	DefaultOtherTimeout   = 120 * time.Second // GWLB's idle timeout for everything else
	DefaultClosedTimeout  = 5 * time.Second
	DefaultJournalRefresh = 10 * time.Second
	// MaxTableFlows is the most flows a table holds (larger MaxFlows are cut to it):
	// index slots keep at least 5 tag bits.
	MaxTableFlows = maxShards << 21
)

const (
	maxShards     = 64  // power of two
	minShardFlows = 128 // fewer shards for small tables, so eviction stays close to a global LRU
	initShardCap  = 64  // a shard's first slab; it doubles up to the shard's limit
	pendingCap    = 16  // records a packet worker's outbox holds; more drop the oldest
	bgPendingCap  = 32  // records housekeeping collects per lock hold
	journalCap    = 256 // journal events buffered per shard
	evictLogEvery = int64(10 * time.Second)
	idBits        = 53 - nodeBits // flow ids stay below 2^53, exact in JSON numbers
	idMask        = 1<<idBits - 1 // the per-node part of a flow id
	nodeBits      = 16            // fleets: ids from name hashes collide rarely (0.2% for 16 nodes)
	distBits      = 5
	distMax       = 1<<distBits - 1
)

// intervalScan is how many slab entries Interval looks at per lock hold (a variable
// for tests).
var intervalScan = 1024

// Classes of flows. Each has its own LRU list in a shard, so that every list holds
// entries with one timeout and Expire stops at the first entry of a list that is not
// idle long enough, and so that eviction can pick the kind of flow it ends: flows
// nobody answered go first, so that a flood of spoofed SYNs ends its own flows and
// not the established ones.
const (
	classTCP      = iota // TCP answered, not closed: TCPTimeout
	classOther           // not TCP, answered: OtherTimeout
	classClosed          // TCP closed: ClosedTimeout
	classTCPNew          // TCP, StateNew (only the client seen): TCPTimeout
	classOtherNew        // not TCP, StateNew: OtherTimeout
	numClasses
)

const (
	finToServer = 1 << iota
	finToClient
)

// key is a flow's key as stored: pointer-free (so the GC never scans the slab) and
// 2-byte aligned, so that its 46 bytes leave no padding in entry.
type key struct {
	lo, hi         [16]byte // As16 of the endpoints
	scope          [8]byte  // little endian
	loPort, hiPort uint16
	proto          uint8
	kinds          uint8 // addrKind of lo | addrKind of hi << 2
}

// Address kinds in key.kinds and entry.tun.
const (
	kindNone = iota
	kind4
	kind6
)

func addrKind(a netip.Addr) uint8 {
	switch {
	case a.Is4():
		return kind4
	case a.IsValid():
		return kind6
	}
	return kindNone
}

func unpackAddr(b *[16]byte, kind uint8) netip.Addr {
	switch kind {
	case kind4:
		return netip.AddrFrom4([4]byte(b[12:]))
	case kind6:
		return netip.AddrFrom16(*b)
	}
	return netip.Addr{}
}

// entry is one flow in a shard's slab, 152 bytes: fields are ordered so that none is
// padded, counters are packed, and a tunnel's IPv4 addresses are kept inline (other
// tunnel addresses go to the shard's tun6 side array). The hash is not kept: it is
// recomputed from the key when the entry leaves the index.
type entry struct {
	key     key
	session uint16 // Meta.Session of the first packet
	last    int64  // newest packet, unix ns
	start   int64
	id      uint64 // never 0 while the entry is live
	// Per direction (0 to the server, 1 to the client): bytes in the low 56 bits of
	// b, packets in p plus the high 8 bits of b (2^40 packets, 2^56 bytes).
	b                  [2]uint64
	awsEndpoint        uint64
	awsAttachment      uint64
	p                  [2]uint32
	prev, next         int32 // LRU list of the class (next also links the free list)
	rule               int32
	awsCookie          uint32
	vni                uint32 // tunnel of the first packet, from here on
	tunSrc, tunDst     [4]byte
	tunSport, tunDport uint16
	tcpFlags           [2]uint8 // union of flags seen each way
	action             policy.Action
	direction          uint8 // Meta.Direction of the first packet
	awsPresent         uint8
	st                 uint8 // state | fins<<2 | stClientIsLo
	tun                uint8 // encap | src kind<<2 | dst kind<<4 | tunSide
	class              uint8
}

// Bits of entry.st and entry.tun.
const (
	stState        = 3
	stFinShift     = 2
	stClientIsLo   = 1 << 4
	stImported     = 1 << 5 // installed by Import and no packet seen here since
	stSeenToServer = 1 << 6
	stSeenToClient = 1 << 7

	tunEncap = 3
	tunSide  = 1 << 6 // the tunnel addresses are in shard.tun6
)

const bytesMask = 1<<56 - 1

func (e *entry) state() State       { return State(e.st & stState) }
func (e *entry) setState(s State)   { e.st = e.st&^stState | uint8(s) }
func (e *entry) fins() uint8        { return e.st >> stFinShift & 3 }
func (e *entry) clientIsLo() bool   { return e.st&stClientIsLo != 0 }
func (e *entry) pkts(d int) uint64  { return uint64(e.p[d]) | e.b[d]>>56<<32 }
func (e *entry) bytes(d int) uint64 { return e.b[d] & bytesMask }

func (e *entry) setAWS(a *geneve.AWS) {
	e.awsEndpoint, e.awsAttachment, e.awsCookie, e.awsPresent = a.EndpointID, a.AttachmentID, a.FlowCookie, a.Present
}

func (e *entry) aws() geneve.AWS {
	return geneve.AWS{EndpointID: e.awsEndpoint, AttachmentID: e.awsAttachment, FlowCookie: e.awsCookie, Present: e.awsPresent}
}

func (e *entry) hasCookie() bool { return e.awsPresent&(1<<geneve.AWSTypeFlowCookie) != 0 }

// setTunnel stores t in entry i of s.
func (s *shard) setTunnel(i int32, t *Tunnel) {
	e := &s.slab[i]
	sk, dk := addrKind(t.Src), addrKind(t.Dst)
	e.tun = t.Encap&tunEncap | sk<<2 | dk<<4
	e.vni, e.tunSport, e.tunDport = t.VNI, t.SrcPort, t.DstPort
	if sk != kind6 && dk != kind6 {
		if sk == kind4 {
			e.tunSrc = t.Src.As4()
		}
		if dk == kind4 {
			e.tunDst = t.Dst.As4()
		}
		return
	}
	if s.tun6 == nil {
		s.tun6 = make([][2][16]byte, cap(s.slab))
	}
	e.tun |= tunSide
	s.tun6[i] = [2][16]byte{t.Src.As16(), t.Dst.As16()}
}

// tunnel returns the tunnel stored in entry i of s.
func (s *shard) tunnel(i int32) Tunnel {
	e := &s.slab[i]
	t := Tunnel{Encap: e.tun & tunEncap, SrcPort: e.tunSport, DstPort: e.tunDport, VNI: e.vni}
	sk, dk := e.tun>>2&3, e.tun>>4&3
	if e.tun&tunSide != 0 {
		a := &s.tun6[i]
		t.Src, t.Dst = unpackAddr(&a[0], sk), unpackAddr(&a[1], dk)
		return t
	}
	if sk == kind4 {
		t.Src = netip.AddrFrom4(e.tunSrc)
	}
	if dk == kind4 {
		t.Dst = netip.AddrFrom4(e.tunDst)
	}
	return t
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

// outbox holds the records of one kind of emitter.
type outbox struct {
	pending []pend // guarded by shard.mu
	// mu serialises the onEnd and OnInterval calls of this outbox; emitting is only
	// touched with it held, so records stay valid during the calls while shard.mu is
	// free for packets.
	mu       sync.Mutex
	emitting []pend
}

const (
	outPacket = iota
	outBackground
)

// pend is a record waiting, in a shard, to be handed to OnInterval and/or onEnd.
type pend struct {
	rec      Record
	delta    Delta
	hasDelta bool // hand rec and delta to OnInterval
	ended    bool // then hand rec to onEnd
}

// slot is one open-addressing index slot, 4 bytes so that the index, at most half
// full, costs 8 bytes a flow. From the low bits: the slab index plus one
// (Table.idxBits bits, 0 marks an empty slot); the distance from the slot to the
// entry's home slot (distBits, distMax meaning "that or more": look it up), so that
// removal can shift entries back without reading the slab; and bits 32.. of the
// key's hash as a tag that spares most slab reads on a probe.
type slot uint32

// shard is one lock's worth of the table: a slab of entries, a linear-probing index
// into it (at most half full, so probes end), one LRU list per timeout class, and
// the buffers that carry ended flows to onEnd after the lock is released.
type shard struct {
	mu     sync.Mutex
	t      *Table
	credit Credit // scratch for Table.SetEnding's function, under mu
	slots  []slot
	mask   uint32
	slab   []entry       // len is the high-water mark; cap grows up to limit
	ival   []ival        // beside slab, len cap(slab); nil without OnInterval
	tun6   [][2][16]byte // beside slab, len cap(slab); nil until a tunnel address is not IPv4
	side   []byte        // beside slab, Config.SideSize bytes an entry
	free   int32         // free list through entry.next, -1 when empty
	n      int           // live entries
	peer   int           // live entries Imported and not carried here since (stImported)
	limit  int
	head   [numClasses]int32 // most recently seen
	tail   [numClasses]int32 // least recently seen
	seq    uint64            // flows created, for ids
	num    uint64            // the shard's index in the table
	// Records not yet handed to onEnd or OnInterval, apart for packet workers and
	// for housekeeping (Expire, Flush, Interval), so that a packet worker never waits
	// for housekeeping, which may be waiting for room in its output queue.
	out [2]outbox // outPacket, outBackground

	// journal holds events not yet delivered; guarded by mu. jflush asks the packet
	// worker that unlocks mu to deliver. jmu serialises deliveries of jout.
	journal []FlowState
	jflush  bool
	jmu     sync.Mutex
	jout    []FlowState

	turned packet.Packet // a midstream packet turned round for the Decider; guarded by mu

	_ [64]byte // keep neighbouring shards' locks off one cache line
}

// Table is the flow table. It is safe for concurrent use: flows are sharded by a
// hash of their key, each shard behind its own mutex.
type Table struct {
	ending    atomic.Pointer[func(id uint64, c *Credit)] // SetEnding
	shards    []shard
	shift     uint // shard = hash >> shift
	shardBits uint
	idxBits   uint // slot bits holding the slab index
	idxMask   uint32
	lowMask   uint32 // slot bits below the tag
	seed      [7]uint64
	idBase    uint64 // random, so that a restarted node does not repeat its ids
	node      uint64 // Config.NodeID << idBits
	timeout   [numClasses]int64
	decide    Decider
	onEnd     func(*Record)
	onIval    func(*Record, *Delta) // nil: no interval counters
	log       *slog.Logger
	maxFlows  int
	sideSize  int
	sideRec   func(side []byte, r *Record)

	journalFn    func(int, []FlowState)
	midDrop      bool
	refresh      int64
	journalLost  atomic.Uint64
	lost         atomic.Uint64 // records dropped by a packet worker, see shard.end
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
	cfg.MaxFlows = min(cfg.MaxFlows, MaxTableFlows)
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
		sideSize:  max(cfg.SideSize, 0),
		sideRec:   cfg.SideRecord,
		journalFn: cfg.Journal,
		midDrop:   cfg.Midstream == MidstreamDrop,
	}
	t.shift = 64 - t.shardBits
	t.idxBits = uint(bits.Len(uint((cfg.MaxFlows + n - 1) / n)))
	t.idxMask = 1<<t.idxBits - 1
	t.lowMask = 1<<(t.idxBits+distBits) - 1
	if cfg.JournalRefresh <= 0 {
		cfg.JournalRefresh = DefaultJournalRefresh
	}
	t.refresh = int64(cfg.JournalRefresh)
	t.timeout[classTCP] = int64(cfg.TCPTimeout)
	t.timeout[classOther] = int64(cfg.OtherTimeout)
	t.timeout[classClosed] = int64(cfg.ClosedTimeout)
	t.timeout[classTCPNew] = int64(cfg.TCPTimeout)
	t.timeout[classOtherNew] = int64(cfg.OtherTimeout)
	for i := range t.seed {
		t.seed[i] = rand.Uint64() | 1
	}
	t.idBase = rand.Uint64() & idMask
	t.node = uint64(cfg.NodeID&MaxNodeID) << idBits
	t.lastEvictLog.Store(math.MinInt64)
	for i := range t.shards {
		s := &t.shards[i]
		s.t = t
		s.num = uint64(i)
		s.limit = cfg.MaxFlows / n
		if i < cfg.MaxFlows%n {
			s.limit++
		}
		s.limit = max(s.limit, 1)
		s.free = -1
		s.resize(min(s.limit, initShardCap))
		s.head = [numClasses]int32{-1, -1, -1, -1, -1}
		s.tail = s.head
		s.out[outPacket].pending = make([]pend, 0, pendingCap)
		s.out[outPacket].emitting = make([]pend, 0, pendingCap)
		if cfg.Journal != nil {
			s.journal = make([]FlowState, 0, journalCap)
			s.jout = make([]FlowState, 0, journalCap)
		}
	}
	return t
}

// KeyOf returns the key of p's flow in tunnel scope scope, and whether p's source is
// the key's Lo endpoint.
func KeyOf(scope uint64, p *packet.Packet) (k Key, srcIsLo bool) {
	if srcIsLo = lessEq(p.Src, p.SrcPort, p.Dst, p.DstPort); srcIsLo {
		return Key{Scope: scope, Proto: p.Proto, Lo: p.Src, Hi: p.Dst, LoPort: p.SrcPort, HiPort: p.DstPort}, true
	}
	return Key{Scope: scope, Proto: p.Proto, Lo: p.Dst, Hi: p.Src, LoPort: p.DstPort, HiPort: p.SrcPort}, false
}

// lessEq reports whether endpoint (a, ap) sorts before or equal to (b, bp).
func lessEq(a netip.Addr, ap uint16, b netip.Addr, bp uint16) bool {
	c := a.Compare(b)
	return c < 0 || (c == 0 && ap <= bp)
}

// keyOf returns the stored key of a flow in canonical order (the order of KeyOf,
// computed on the packed form), and whether src is lo.
func keyOf(k *key, scope uint64, proto uint8, src, dst netip.Addr, sport, dport uint16) bool {
	sa, da := src.As16(), dst.As16()
	sk, dk := addrKind(src), addrKind(dst)
	be := binary.BigEndian
	srcIsLo := true
	if sk != dk {
		srcIsLo = sk < dk
	} else if s0, d0 := be.Uint64(sa[:8]), be.Uint64(da[:8]); s0 != d0 {
		srcIsLo = s0 < d0
	} else if s1, d1 := be.Uint64(sa[8:]), be.Uint64(da[8:]); s1 != d1 {
		srcIsLo = s1 < d1
	} else {
		srcIsLo = sport <= dport
	}
	k.proto = proto
	if srcIsLo {
		k.lo, k.hi, k.loPort, k.hiPort, k.kinds = sa, da, sport, dport, sk|dk<<2
	} else {
		k.lo, k.hi, k.loPort, k.hiPort, k.kinds = da, sa, dport, sport, dk|sk<<2
	}
	binary.LittleEndian.PutUint64(k.scope[:], scope)
	return srcIsLo
}

// eq compares keys field by field: inlined, cheaper than a memequal call.
func (k *key) eq(o *key) bool {
	return k.lo == o.lo && k.hi == o.hi && k.scope == o.scope && k.loPort == o.loPort &&
		k.hiPort == o.hiPort && k.proto == o.proto && k.kinds == o.kinds
}

// public returns k as a Key.
func (k *key) public() Key {
	return Key{Scope: binary.LittleEndian.Uint64(k.scope[:]), Proto: k.proto,
		Lo: unpackAddr(&k.lo, k.kinds&3), Hi: unpackAddr(&k.hi, k.kinds>>2),
		LoPort: k.loPort, HiPort: k.hiPort}
}

// mix is the wyhash mixing step: the folded 128-bit product.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash is a keyed hash of k; the seeds are random per table. The top bits pick the
// shard, the low 32 bits the home slot, bits 32.. the slot tag.
func (t *Table) hash(k *key) uint64 {
	le := binary.LittleEndian
	a := mix(le.Uint64(k.lo[:8])^t.seed[0], le.Uint64(k.lo[8:])^t.seed[1])
	b := mix(le.Uint64(k.hi[:8])^t.seed[2], le.Uint64(k.hi[8:])^t.seed[3])
	c := mix(le.Uint64(k.scope[:])^t.seed[4],
		(uint64(k.kinds)<<40|uint64(k.proto)<<32|uint64(k.loPort)<<16|uint64(k.hiPort))^t.seed[5])
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
	var k key
	srcIsLo := keyOf(&k, scope, p.Proto, p.Src, p.Dst, p.SrcPort, p.DstPort)
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
			s.end(i, EndTimeout, outPacket)
			ended = true
		case restarts(e, p, aws, srcIsLo == e.clientIsLo(), now):
			s.end(i, EndForced, outPacket)
			ended = true
		default:
			res = t.update(s, i, p, srcIsLo, length, aws, now)
			flush := s.jflush
			s.mu.Unlock()
			if flush {
				t.deliver(s, false)
			}
			return res
		}
	}
	if t.midDrop && p.Proto == packet.ProtoTCP && p.TCPFlags&packet.TCPSyn == 0 {
		// Midstream, dropped: no flow for it.
		if i >= 0 {
			s.remove(i)
		}
		flush := s.jflush
		s.mu.Unlock()
		if flush {
			t.deliver(s, false)
		}
		if ended {
			t.emit(s)
		}
		return Result{Action: policy.Drop, Midstream: true}
	}
	replaced := i >= 0
	if replaced {
		s.unlink(i) // reused in place: same key, same index slot
		s.n--
	} else {
		if s.n >= s.limit {
			evicted = t.evict(s, now)
			ended = true
		}
		i = s.alloc()
		s.insert(h, i)
	}
	res = t.create(s, i, &k, p, srcIsLo, length, m, now)
	res.Replaced = replaced
	flush := s.jflush
	s.mu.Unlock()

	if flush {
		t.deliver(s, false)
	}
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
	s, i, qSrcIsLo := t.findLocked(scope, q.Proto, q.Src, q.Dst, q.SrcPort, q.DstPort)
	defer s.mu.Unlock()
	if i < 0 {
		return Result{}, false
	}
	e := &s.slab[i]
	if now-e.last > t.timeout[e.class] {
		return Result{}, false
	}
	toServer := qSrcIsLo != e.clientIsLo() // the error travels back towards the quoted sender
	imported := e.st&stImported != 0
	if imported {
		s.peer--
	}
	e.st &^= stImported
	e.count(toServer, length, 0)
	s.countIval(i, toServer, length, now)
	e.last = max(e.last, now)
	if imported && t.journalFn != nil {
		s.note(i, JournalChanged) // carried here from now on: peers must learn it, as update tells them
	}
	s.touch(i)
	return Result{Action: e.action, FlowID: e.id, ToServer: toServer, Handle: s.handle(i)}, true
}

// restarts reports whether p, a packet of e's 5-tuple sent toServer at now, starts
// a new flow: a TCP SYN without ACK on a closing or closed flow, or with a GWLB flow
// cookie other than the flow's (GWLB reused the 5-tuple for a new flow). A bare SYN
// from the old server on a closing or closed flow is a new connection the other way
// round, and its sender becomes the new flow's client. But a SYN from a side that
// has sent none in the flow, received before the flow's newest packet, is the
// flow's own opening SYN processed late (the other direction reached another worker
// first, and ran ahead to its FIN): it joins the flow.
func restarts(e *entry, p *packet.Packet, aws *geneve.AWS, toServer bool, now int64) bool {
	if p.Proto != packet.ProtoTCP || p.TCPFlags&(packet.TCPSyn|packet.TCPAck|packet.TCPRst) != packet.TCPSyn {
		return false
	}
	if e.state() >= StateClosing {
		d := 1
		if toServer {
			d = 0
		}
		return e.tcpFlags[d]&packet.TCPSyn != 0 || now >= e.last
	}
	return aws != nil && aws.Has(geneve.AWSTypeFlowCookie) && e.hasCookie() && aws.FlowCookie != e.awsCookie
}

// create fills slab entry i (unlinked, indexed under k's hash) as a new flow
// started by p. Its client is p's sender, unless p is a TCP packet that does not
// open a connection (the flow was missed, evicted, or comes from another node): then
// the sender of a SYN-ACK is the server, else the side with the well-known port (or
// the lower one), and the Decider sees the packet turned round, as the client sent
// it.
func (t *Table) create(s *shard, i int32, k *key, p *packet.Packet, srcIsLo bool, length int, m *Meta, now int64) Result {
	e := &s.slab[i]
	if e.st&stImported != 0 { // a peer's flow ended here and its slot reused in place
		s.peer--
	}
	*e = entry{key: *k, start: now, last: now, rule: policy.NoRule}
	midstream := p.Proto == packet.ProtoTCP && p.TCPFlags&(packet.TCPSyn|packet.TCPAck) != packet.TCPSyn
	toServer := !midstream || !senderIsServer(p)
	if srcIsLo == toServer {
		e.st = stClientIsLo
	}
	e.id = t.nextID(s)
	if t.decide != nil {
		q := p
		if !toServer {
			s.turned = *p // in the shard, so that the Decider's pointer does not allocate
			q = &s.turned
			q.Src, q.Dst, q.SrcPort, q.DstPort = p.Dst, p.Src, p.DstPort, p.SrcPort
		}
		a, r := t.decide.Decide(q)
		e.action, e.rule = a, int32(r)
	}
	if m != nil {
		if m.AWS != nil {
			e.setAWS(m.AWS)
		}
		e.direction, e.session = m.Direction, m.Session
		if !toServer { // the record keeps the client's direction; this packet is the server's
			e.direction = oppositeDirection(m.Direction)
		}
		if m.Tunnel != (Tunnel{}) {
			s.setTunnel(i, &m.Tunnel)
		}
	}
	e.count(toServer, length, p.TCPFlags)
	if sz := s.t.sideSize; sz > 0 {
		clear(s.side[int(i)*sz : int(i+1)*sz])
	}
	if s.ival != nil {
		s.ival[i] = ival{}
		s.countIval(i, toServer, length, now)
	}
	e.advance(p.TCPFlags, toServer)
	e.class = classOf(e)
	s.link(i)
	s.n++
	if t.journalFn != nil {
		s.note(i, JournalCreated)
	}
	return Result{Action: e.action, FlowID: e.id, Created: true, ToServer: toServer, Handle: s.handle(i),
		Midstream: midstream, State: e.state(), Packets: 1}
}

// senderIsServer guesses, for a TCP packet that does not open its connection,
// whether its sender is the server.
func senderIsServer(p *packet.Packet) bool {
	if p.TCPFlags&(packet.TCPSyn|packet.TCPAck) == packet.TCPSyn|packet.TCPAck {
		return true
	}
	sp, dp := p.SrcPort, p.DstPort
	if (sp < 1024) != (dp < 1024) {
		return sp < 1024
	}
	return sp < dp
}

// oppositeDirection is the mirror direction of the other side's packets.
func oppositeDirection(d uint8) uint8 {
	switch d {
	case DirectionIngress:
		return DirectionEgress
	case DirectionEgress:
		return DirectionIngress
	}
	return d
}

// update accounts p on live entry i.
func (t *Table) update(s *shard, i int32, p *packet.Packet, srcIsLo bool, length int, aws *geneve.AWS, now int64) Result {
	e := &s.slab[i]
	toServer := srcIsLo == e.clientIsLo()
	e.count(toServer, length, p.TCPFlags)
	s.countIval(i, toServer, length, now)
	st := e.st
	if st&stImported != 0 {
		s.peer--
	}
	e.st &^= stImported
	e.advance(p.TCPFlags, toServer)
	kind := JournalKind(255)
	if aws != nil {
		if t.journalFn != nil && e.aws() != *aws {
			kind = JournalChanged
		}
		e.setAWS(aws)
	}
	if t.journalFn != nil {
		if e.st&stState != st&stState || st&stImported != 0 {
			kind = JournalChanged // an imported flow now carried here is journaled from here on
		} else if kind != JournalChanged && now/t.refresh > e.last/t.refresh {
			kind = JournalRefreshed // the first packet of a period: at most one a period
		}
	}
	e.last = max(e.last, now)
	e.start = min(e.start, now) // a packet processed late (another worker) may be the first
	if kind != 255 {
		s.note(i, kind)
	}
	if c := classOf(e); c != e.class {
		s.unlink(i)
		e.class = c
		s.link(i)
	} else {
		s.touch(i)
	}
	return Result{Action: e.action, FlowID: e.id, ToServer: toServer, Handle: s.handle(i),
		State: e.state(), Packets: e.pkts(0) + e.pkts(1)}
}

// Credit adds c to h's flow as if its packets had been tracked: its counters, its
// flow-log interval, its last-packet time (so that it does not expire while the
// kernel answers it) and, at most once per JournalRefresh, a refresh event for
// peers. TCP flags and state are left alone: the packets a backend answers itself
// carry no SYN, FIN or RST. It reports false when the flow has ended (its counts
// are then dropped: the record is out).
func (t *Table) Credit(h Handle, c *Credit) bool {
	s, i := t.lock(h)
	if s == nil {
		return false
	}
	t.creditLocked(s, i, c)
	return true
}

// CreditFunc is Credit with the credit filled by fill, called with the flow's
// shard locked (only while the flow is live): a backend that also takes
// credits in SetEnding's function can hand each one over exactly once. fill
// must not call into the table.
func (t *Table) CreditFunc(h Handle, fill func(c *Credit)) bool {
	s, i := t.lock(h)
	if s == nil {
		return false
	}
	s.credit = Credit{}
	fill(&s.credit)
	t.creditLocked(s, i, &s.credit)
	return true
}

// creditLocked applies c to live entry i of s, whose lock the caller holds,
// and unlocks it.
func (t *Table) creditLocked(s *shard, i int32, c *Credit) {
	e := &s.slab[i]
	last := e.last
	if !s.apply(i, c) {
		s.mu.Unlock()
		return
	}
	refresh := t.journalFn != nil && c.Last/t.refresh > last/t.refresh
	if e.st&stImported != 0 {
		s.peer--
		e.st &^= stImported
	}
	s.touch(i)
	flush := false
	if refresh {
		s.note(i, JournalRefreshed)
		flush = s.jflush
	}
	s.mu.Unlock()
	if flush {
		t.deliver(s, false)
	}
}

// apply adds c to live entry i's counters and interval and reports whether it
// moved the entry's last-packet time.
func (s *shard) apply(i int32, c *Credit) bool {
	e := &s.slab[i]
	for d := range 2 {
		n := c.Packets[d]
		if n == 0 {
			continue
		}
		p := uint64(e.p[d]) + n
		e.p[d] = uint32(p)
		e.b[d] += p>>32<<56 + c.Bytes[d]
		if s.ival != nil {
			v := &s.ival[i]
			first := c.Last
			if c.First != 0 {
				first = min(c.First, c.Last)
			}
			if v.pkts[d] == 0 {
				v.first[d], v.last[d] = first, c.Last
			} else {
				v.first[d] = min(v.first[d], first)
				v.last[d] = max(v.last[d], c.Last)
			}
			v.pkts[d] += n
			v.bytes[d] += c.Bytes[d]
		}
	}
	if c.Packets == [2]uint64{} || c.Last <= e.last {
		return false
	}
	e.last = c.Last
	return true
}

// SetEnding sets (nil clears) a function the table calls, with the flow's shard
// locked, as each flow it tracked ends (closed and lingered, timed out,
// evicted, replaced by a new connection, flushed), before its record is made:
// it fills c (zero on entry) with traffic of flow id the table never saw,
// which is added to the flow first. A backend that answers flows' packets in
// the kernel (the XDP fast path) takes such a flow out there and reports what
// it answered since its last Credit, so that no record misses a packet. It must
// be quick and must not call into the table.
func (t *Table) SetEnding(f func(id uint64, c *Credit)) {
	if f == nil {
		t.ending.Store(nil)
		return
	}
	t.ending.Store(&f)
}

func (e *entry) count(toServer bool, length int, flags uint8) {
	d := 1
	if toServer {
		d = 0
	}
	if e.p[d]++; e.p[d] == 0 {
		e.b[d] += 1 << 56
	}
	e.b[d] += uint64(length)
	e.tcpFlags[d] |= flags
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

// advance moves the protocol state for a packet with TCP flags f in the given
// direction. A flow is established once both directions have been seen.
func (e *entry) advance(f uint8, toServer bool) {
	seen := uint8(stSeenToClient)
	if toServer {
		seen = stSeenToServer
	}
	e.st |= seen
	both := e.st&(stSeenToServer|stSeenToClient) == stSeenToServer|stSeenToClient
	st := e.state()
	if e.key.proto != packet.ProtoTCP {
		if both && st == StateNew {
			e.setState(StateEstablished)
		}
		return
	}
	switch {
	case f&packet.TCPRst != 0:
		e.setState(StateClosed)
	case f&packet.TCPFin != 0:
		fin := uint8(finToClient)
		if toServer {
			fin = finToServer
		}
		e.st |= fin << stFinShift
		if e.fins() == finToServer|finToClient {
			e.setState(StateClosed)
		} else if st < StateClosing {
			e.setState(StateClosing)
		}
	case both && st == StateNew:
		e.setState(StateEstablished)
	}
}

func classOf(e *entry) uint8 {
	st := e.state()
	if e.key.proto != packet.ProtoTCP {
		if st == StateNew {
			return classOtherNew
		}
		return classOther
	}
	switch st {
	case StateNew:
		return classTCPNew
	case StateClosed:
		return classClosed
	}
	return classTCP
}

// nextID returns a flow id unique in the fleet: the node id in the top bits below
// 2^53, then the shard's sequence number and the shard index, offset by the table's
// random base, modulo 2^43; never 0.
func (t *Table) nextID(s *shard) uint64 {
	for {
		s.seq++
		if id := t.node | (t.idBase+(s.seq<<t.shardBits|s.num))&idMask; id != 0 {
			return id
		}
	}
}

// evictOrder lists the classes eviction takes from, in groups of equal rank: within a
// group the least recently seen flow goes.
var evictOrder = [...][2]int8{{classTCPNew, classOtherNew}, {classClosed, -1}, {classTCP, classOther}}

// evict ends one flow of a full shard: one idle past its timeout if a list's tail
// is, else the least recently seen of the first non-empty group of evictOrder
// (unanswered, then closed, then the rest). It reports whether it forced a flow out.
func (t *Table) evict(s *shard, now int64) bool {
	for c := range numClasses {
		if i := s.tail[c]; i >= 0 && now-s.slab[i].last > t.timeout[c] {
			s.end(i, EndTimeout, outPacket)
			s.remove(i)
			return false
		}
	}
	best := int32(-1)
	for _, g := range evictOrder {
		for _, c := range g {
			if c < 0 {
				continue
			}
			if i := s.tail[c]; i >= 0 && (best < 0 || s.slab[i].last < s.slab[best].last) {
				best = i
			}
		}
		if best >= 0 {
			break
		}
	}
	s.end(best, EndForced, outPacket)
	s.remove(best)
	t.evicted.Add(1)
	t.evictedLog.Add(1)
	return true
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
	t.log.Warn("flow table full: evicting flows, unanswered ones first",
		"evicted", t.evictedLog.Swap(0), "max_flows", t.maxFlows)
}

// end appends the record of live entry i, ending with reason, to the shard's outbox
// box, with its interval traffic not yet reported, if any.
func (s *shard) end(i int32, reason EndReason, box int) {
	if f := s.t.ending.Load(); f != nil && s.slab[i].st&stImported == 0 {
		s.credit = Credit{}
		(*f)(s.slab[i].id, &s.credit)
		s.apply(i, &s.credit)
	}
	if s.t.journalFn != nil && s.slab[i].st&stImported == 0 {
		s.note(i, JournalEnded)
	}
	if s.slab[i].st&stImported != 0 {
		return // a peer reports it; nothing was seen here
	}
	p := s.add(box)
	p.ended = true
	s.record(&p.rec, i)
	p.rec.Reason = reason
	if s.ival != nil {
		p.hasDelta = s.takeDelta(&p.delta, i)
	}
}

// add appends a zero record to outbox box and returns it. A full packet outbox (its
// records are being emitted by another worker, and more ended meanwhile) drops its
// oldest record rather than grow; housekeeping never fills its own.
func (s *shard) add(box int) *pend {
	o := &s.out[box]
	if len(o.pending) == cap(o.pending) {
		copy(o.pending, o.pending[1:])
		o.pending = o.pending[:len(o.pending)-1]
		s.t.lost.Add(1)
	}
	o.pending = append(o.pending, pend{})
	return &o.pending[len(o.pending)-1]
}

// interval appends the record of live entry i with its interval traffic to the
// shard's background outbox.
func (s *shard) interval(i int32) {
	p := s.add(outBackground)
	p.hasDelta = true
	s.record(&p.rec, i)
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

// record fills r from live entry i; Reason is left zero.
func (s *shard) record(r *Record, i int32) {
	e := &s.slab[i]
	k := e.key.public()
	r.ID = e.id
	r.Proto = k.Proto
	if e.clientIsLo() {
		r.Src, r.SrcPort, r.Dst, r.DstPort = k.Lo, k.LoPort, k.Hi, k.HiPort
	} else {
		r.Src, r.SrcPort, r.Dst, r.DstPort = k.Hi, k.HiPort, k.Lo, k.LoPort
	}
	r.Start = time.Unix(0, e.start)
	r.End = time.Unix(0, e.last)
	r.PktsToServer, r.PktsToClient = e.pkts(0), e.pkts(1)
	r.BytesToServer, r.BytesToClient = e.bytes(0), e.bytes(1)
	r.State = e.state()
	r.TCPFlagsToServer, r.TCPFlagsToClient = e.tcpFlags[0], e.tcpFlags[1]
	r.Action = e.action
	r.Rule = int(e.rule)
	r.AWS = e.aws()
	r.Tunnel = s.tunnel(i)
	r.Direction = e.direction
	r.Session = e.session
	r.Alerts = 0
	if sz := s.t.sideSize; sz > 0 && s.t.sideRec != nil {
		s.t.sideRec(s.side[int(i)*sz:int(i+1)*sz:int(i+1)*sz], r)
	}
}

// emit hands the shard's records ended by packet workers to OnInterval and onEnd.
// It may wait for another packet worker's emit, whose records the receiver never
// waits for (Record.Background false), but never for housekeeping's.
func (t *Table) emit(s *shard) {
	o := &s.out[outPacket]
	o.mu.Lock()
	t.drain(s, outPacket)
	o.mu.Unlock()
}

// drain hands the records of the shard's outbox box to OnInterval and onEnd; the
// outbox's mu must be held, s.mu not.
func (t *Table) drain(s *shard, box int) {
	o := &s.out[box]
	s.mu.Lock()
	o.pending, o.emitting = o.emitting[:0], o.pending
	s.mu.Unlock()
	for i := range o.emitting {
		p := &o.emitting[i]
		p.rec.Background = box == outBackground
		if p.hasDelta {
			t.onIval(&p.rec, &p.delta)
		}
		if p.ended {
			t.onEnd(&p.rec)
		}
	}
	clear(o.emitting)
	o.emitting = o.emitting[:0]
}

// lockBackground locks the shard's background outbox for Expire, Flush or Interval,
// allocating its buffers on first use, so that tables pay for them only once
// housekeeping runs.
func (s *shard) lockBackground() *outbox {
	o := &s.out[outBackground]
	o.mu.Lock()
	if o.emitting == nil {
		o.emitting = make([]pend, 0, bgPendingCap)
		s.mu.Lock()
		o.pending = make([]pend, 0, bgPendingCap)
		s.mu.Unlock()
	}
	return o
}

// note appends a journal event of kind k for live entry i; the journal must be on.
func (s *shard) note(i int32, k JournalKind) {
	if len(s.journal) == cap(s.journal) {
		s.t.journalLost.Add(1)
		s.jflush = true
		return
	}
	s.journal = s.journal[:len(s.journal)+1]
	s.state(&s.journal[len(s.journal)-1], i, k)
	if len(s.journal) >= cap(s.journal)/2 {
		s.jflush = true
	}
}

// state fills f from live entry i.
func (s *shard) state(f *FlowState, i int32, k JournalKind) {
	e := &s.slab[i]
	key := e.key.public()
	*f = FlowState{Kind: k, ID: e.id, Scope: key.Scope, Proto: key.Proto,
		Src: key.Lo, SrcPort: key.LoPort, Dst: key.Hi, DstPort: key.HiPort,
		Start: e.start, Last: e.last, State: e.state(), Action: e.action, Rule: int(e.rule),
		AWS: e.aws(), Direction: e.direction, Session: e.session}
	if !e.clientIsLo() {
		f.Src, f.SrcPort, f.Dst, f.DstPort = key.Hi, key.HiPort, key.Lo, key.LoPort
	}
	if e.tun != 0 {
		f.Tunnel = s.tunnel(i)
	}
}

// deliver hands the shard's journal events to Config.Journal. A packet worker
// (wait false) does not wait for another delivery in progress: the events stay
// buffered for the next one.
func (t *Table) deliver(s *shard, wait bool) {
	if wait {
		s.jmu.Lock()
	} else if !s.jmu.TryLock() {
		return
	}
	s.mu.Lock()
	s.journal, s.jout = s.jout[:0], s.journal
	s.jflush = false
	s.mu.Unlock()
	if len(s.jout) > 0 {
		t.journalFn(int(s.num), s.jout)
	}
	clear(s.jout)
	s.jmu.Unlock()
}

// FlushJournal delivers every shard's buffered journal events now. Expire, Flush
// and Interval do it too; a journal consumer that wants its events sooner calls it
// periodically from a goroutine of its own.
func (t *Table) FlushJournal() {
	if t.journalFn == nil {
		return
	}
	for i := range t.shards {
		t.deliver(&t.shards[i], true)
	}
}

// JournalLost returns how many journal events were dropped because a shard's buffer
// was full.
func (t *Table) JournalLost() uint64 { return t.journalLost.Load() }

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
		o := s.lockBackground()
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
					if len(o.pending) == cap(o.pending) {
						more = true
						break classes
					}
					prev := e.prev
					s.end(i, reason, outBackground)
					s.remove(i)
					total++
					i = prev
				}
			}
			s.mu.Unlock()
			t.drain(s, outBackground)
			if t.journalFn != nil {
				t.deliver(s, true)
			}
			if !more {
				break
			}
		}
		o.mu.Unlock()
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
		o := s.lockBackground()
		for pos := 0; ; {
			s.mu.Lock()
			stop := min(len(s.slab), pos+intervalScan)
			for ; pos < stop && len(o.pending) < cap(o.pending); pos++ {
				if s.ival[pos].pkts == [2]uint64{} || s.slab[pos].id == 0 {
					continue
				}
				s.interval(int32(pos))
				total++
			}
			done := pos >= len(s.slab)
			s.mu.Unlock()
			t.drain(s, outBackground)
			if t.journalFn != nil {
				t.deliver(s, true)
			}
			if done {
				break
			}
		}
		o.mu.Unlock()
	}
	return total
}

// Import installs f, a flow learned from a peer (its journal, or a state transfer),
// without asking the Decider: the flow keeps f's id, orientation, verdict, rule,
// TCP state, GWLB options, tunnel and times, with no traffic counted. Packets of
// either direction then find it (Result.Created false). A flow that ends without a
// packet seen here ends silently: no record, no journal event, since its owner
// reports it; one that carried traffic here ends with a record of that traffic.
//
// If f's flow is already in the table, the newer Last wins: an older f is ignored,
// a newer one replaces the flow's state (its local counters stay). f.Kind
// JournalEnded removes the flow if it is f's (same id) and was only imported, so
// that replaying a peer's journal in order mirrors its table. Import reports
// whether it changed the table. It may evict a flow, as TrackMeta does.
func (t *Table) Import(f *FlowState) bool {
	if f.ID == 0 {
		return false // 0 marks a free entry
	}
	var k key
	srcIsLo := keyOf(&k, f.Scope, f.Proto, f.Src, f.Dst, f.SrcPort, f.DstPort)
	h := t.hash(&k)
	s := &t.shards[h>>t.shift]
	s.mu.Lock()
	i := s.find(h, &k)
	if f.Kind == JournalEnded {
		ok := i >= 0 && s.slab[i].id == f.ID && s.slab[i].st&stImported != 0
		if ok {
			s.remove(i)
		}
		s.mu.Unlock()
		return ok
	}
	ended := false
	var old entry
	if i >= 0 {
		if f.Last < s.slab[i].last {
			s.mu.Unlock()
			return false
		}
		old = s.slab[i]
		s.unlink(i)
	} else {
		if s.n >= s.limit {
			t.evict(s, f.Last)
			ended = true
		}
		i = s.alloc()
		s.insert(h, i)
		s.n++
		s.peer++
		old.st = stImported
		if s.ival != nil {
			s.ival[i] = ival{}
		}
		if sz := t.sideSize; sz > 0 {
			clear(s.side[int(i)*sz : int(i+1)*sz])
		}
	}
	e := &s.slab[i]
	*e = entry{key: k, id: f.ID, start: f.Start, last: f.Last, action: f.Action, rule: int32(f.Rule),
		direction: f.Direction, session: f.Session, st: old.st&(stImported|stSeenToServer|stSeenToClient) | uint8(f.State)&stState,
		p: old.p, b: old.b, tcpFlags: old.tcpFlags}
	if srcIsLo {
		e.st |= stClientIsLo
	}
	if old.id != 0 && srcIsLo != (old.st&stClientIsLo != 0) { // the peer saw the other side start it
		// Everything kept per direction turns round with the orientation.
		e.p[0], e.p[1], e.b[0], e.b[1] = e.p[1], e.p[0], e.b[1], e.b[0]
		e.tcpFlags[0], e.tcpFlags[1] = e.tcpFlags[1], e.tcpFlags[0]
		seen := old.st & (stSeenToServer | stSeenToClient)
		e.st &^= stSeenToServer | stSeenToClient
		if seen&stSeenToServer != 0 {
			e.st |= stSeenToClient
		}
		if seen&stSeenToClient != 0 {
			e.st |= stSeenToServer
		}
		if s.ival != nil {
			v := &s.ival[i]
			v.pkts[0], v.pkts[1], v.bytes[0], v.bytes[1] = v.pkts[1], v.pkts[0], v.bytes[1], v.bytes[0]
			v.first[0], v.first[1], v.last[0], v.last[1] = v.first[1], v.first[0], v.last[1], v.last[0]
		}
	}
	e.st |= stSeenToServer
	if f.State != StateNew {
		e.st |= stSeenToClient
	}
	if f.State == StateClosed {
		e.st |= (finToServer | finToClient) << stFinShift
	}
	e.setAWS(&f.AWS)
	if f.Tunnel != (Tunnel{}) {
		s.setTunnel(i, &f.Tunnel)
	}
	e.class = classOf(e)
	s.link(i)
	s.mu.Unlock()
	if ended {
		t.emit(s)
	}
	return true
}

// handle returns the handle of live entry i.
func (s *shard) handle(i int32) Handle {
	return Handle{id: s.slab[i].id, shard: uint32(s.num), idx: i}
}

// lock locks h's shard and returns it with h's slab index, or returns nil (nothing
// locked) when h's flow is gone.
func (t *Table) lock(h Handle) (*shard, int32) {
	if h.id == 0 || int(h.shard) >= len(t.shards) {
		return nil, -1
	}
	s := &t.shards[h.shard]
	s.mu.Lock()
	if int(h.idx) >= len(s.slab) || s.slab[h.idx].id != h.id {
		s.mu.Unlock()
		return nil, -1
	}
	return s, h.idx
}

// SetAction changes the verdict of h's flow, both ways, from its next packet on; it
// reports false when the flow has ended. The rule index is left as it was.
func (t *Table) SetAction(h Handle, a policy.Action) bool {
	s, i := t.lock(h)
	if s == nil {
		return false
	}
	changed := s.slab[i].action != a
	s.slab[i].action = a
	flush := false
	if changed && t.journalFn != nil {
		s.note(i, JournalChanged)
		flush = s.jflush
	}
	s.mu.Unlock()
	if flush {
		t.deliver(s, false)
	}
	return true
}

// Find returns the flow p belongs to, as TrackMeta would, without counting p or
// creating a flow: detection uses it for a datagram rebuilt from fragments whose
// packets were counted as they came. ok is false when there is no such flow.
func (t *Table) Find(scope uint64, p *packet.Packet) (r Result, ok bool) {
	s, i, srcIsLo := t.findLocked(scope, p.Proto, p.Src, p.Dst, p.SrcPort, p.DstPort)
	defer s.mu.Unlock()
	if i < 0 {
		return Result{}, false
	}
	e := &s.slab[i]
	return Result{Action: e.action, FlowID: e.id, ToServer: srcIsLo == e.clientIsLo(), Handle: s.handle(i)}, true
}

// findLocked looks the 5-tuple up in scope and returns its shard, locked (the
// caller unlocks it), the flow's entry (-1: none), and whether src is the key's
// low side.
func (t *Table) findLocked(scope uint64, proto uint8, src, dst netip.Addr, sport, dport uint16) (*shard, int32, bool) {
	var k key
	srcIsLo := keyOf(&k, scope, proto, src, dst, sport, dport)
	h := t.hash(&k)
	s := &t.shards[h>>t.shift]
	s.mu.Lock()
	return s, s.find(h, &k), srcIsLo
}

// RecordOf fills r with h's flow as it stands (as its record would be if it ended
// now, Reason left zero) and reports whether the flow still exists.
func (t *Table) RecordOf(h Handle, r *Record) bool {
	s, i := t.lock(h)
	if s == nil {
		return false
	}
	s.record(r, i)
	s.mu.Unlock()
	return true
}

// WithSide calls f with h's side record (Config.SideSize bytes, zero when the flow
// was created) and reports whether the flow still exists; f is not called when it
// does not. f runs with the flow's shard locked, so that detection state stays
// consistent with packets of other workers: it must be quick, must not call into
// the table, and must not keep side after it returns. A closure that does not
// escape costs no allocation.
func (t *Table) WithSide(h Handle, f func(side []byte)) bool {
	s, i := t.lock(h)
	if s == nil {
		return false
	}
	sz := t.sideSize
	f(s.side[int(i)*sz : int(i+1)*sz : int(i+1)*sz])
	s.mu.Unlock()
	return true
}

// Counts returns, in one pass, the number of flows in the table and how many of
// them were learned from peers (Import) and have carried no packet here since (the
// rest are this node's own).
func (t *Table) Counts() (active, imported int) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		active += s.n
		imported += s.peer
		s.mu.Unlock()
	}
	return active, imported
}

// Active returns the number of flows in the table.
func (t *Table) Active() int {
	n, _ := t.Counts()
	return n
}

// Imported returns how many flows were learned from peers and not carried here.
func (t *Table) Imported() int {
	_, n := t.Counts()
	return n
}

// Lost returns how many flow records were dropped, not handed to onEnd: packet
// workers ended more flows of a shard (evictions, restarts) than its outbox holds
// while another worker was emitting the shard's records.
func (t *Table) Lost() uint64 { return t.lost.Load() }

// Evicted returns how many flows have been evicted because the table was full.
func (t *Table) Evicted() uint64 { return t.evicted.Load() }

// ---- shard internals; all need s.mu held ----

// find returns the slab index of k's entry, or -1.
func (s *shard) find(h uint64, k *key) int32 {
	tag, im, lm := s.t.tag(h), s.t.idxMask, s.t.lowMask
	for i := uint32(h) & s.mask; ; i = (i + 1) & s.mask {
		sl := uint32(s.slots[i])
		if sl == 0 {
			return -1
		}
		if sl&^lm == tag && s.slab[sl&im-1].key.eq(k) {
			return int32(sl&im) - 1
		}
	}
}

// tag returns the tag bits of a slot for hash h.
func (t *Table) tag(h uint64) uint32 { return uint32(h>>32) << (t.idxBits + distBits) }

// mkSlot returns the slot for slab index i at distance d from its home.
func (s *shard) mkSlot(tag uint32, d uint32, i int32) slot {
	return slot(tag | min(d, distMax)<<s.t.idxBits | uint32(i+1))
}

// insert indexes slab entry i under hash h.
func (s *shard) insert(h uint64, i int32) {
	j, d := uint32(h)&s.mask, uint32(0)
	for s.slots[j] != 0 {
		j, d = (j+1)&s.mask, d+1
	}
	s.slots[j] = s.mkSlot(s.t.tag(h), d, i)
}

// unindex removes slab entry i from the index, shifting later entries of its probe
// run back so that no tombstones are needed.
func (s *shard) unindex(i int32) {
	mask, im, lm := s.mask, s.t.idxMask, s.t.lowMask
	hole := uint32(s.t.hash(&s.slab[i].key)) & mask
	for uint32(s.slots[hole])&im != uint32(i+1) {
		hole = (hole + 1) & mask
	}
	for j := hole; ; {
		j = (j + 1) & mask
		sl := uint32(s.slots[j])
		if sl == 0 {
			break
		}
		d := sl >> s.t.idxBits & distMax
		if d == distMax { // too far to tell: ask the entry
			d = (j - uint32(s.t.hash(&s.slab[sl&im-1].key))) & mask
		}
		home := (j - d) & mask
		// sl may fill the hole unless its home lies cyclically in (hole, j].
		if hole <= j {
			if hole < home && home <= j {
				continue
			}
		} else if hole < home || home <= j {
			continue
		}
		s.slots[hole] = s.mkSlot(sl&^lm, (hole-home)&mask, int32(sl&im)-1)
		hole = j
	}
	s.slots[hole] = 0
}

// alloc returns an unused slab index; the shard must not be full. When the slab is
// used up it doubles (up to the limit), on the packet path: amortised, a flow costs
// one more copy, and only the shards that fill pay the memory.
func (s *shard) alloc() int32 {
	if i := s.free; i >= 0 {
		s.free = s.slab[i].next
		return i
	}
	if len(s.slab) == cap(s.slab) {
		s.resize(min(2*cap(s.slab), s.limit))
	}
	s.slab = s.slab[:len(s.slab)+1]
	return int32(len(s.slab) - 1)
}

// resize gives the shard room for n entries: the slab and its side arrays are
// copied, the index (a power of two, at least twice n) is rebuilt from the live
// entries. Slab indices stay valid.
func (s *shard) resize(n int) {
	slab := make([]entry, len(s.slab), n)
	copy(slab, s.slab)
	s.slab = slab
	if s.t.onIval != nil {
		s.ival = grow(s.ival, n)
	}
	if s.tun6 != nil {
		s.tun6 = grow(s.tun6, n)
	}
	if s.t.sideSize > 0 {
		s.side = grow(s.side, n*s.t.sideSize)
	}
	size := 1 << bits.Len(uint(2*n-1))
	s.slots = make([]slot, size)
	s.mask = uint32(size - 1)
	for i := range s.slab {
		if s.slab[i].id != 0 {
			s.insert(s.t.hash(&s.slab[i].key), int32(i))
		}
	}
}

// grow returns a copy of a side array with length n.
func grow[T any](a []T, n int) []T {
	b := make([]T, n)
	copy(b, a)
	return b
}

// remove drops live entry i: off its list, out of the index, onto the free list.
func (s *shard) remove(i int32) {
	if s.slab[i].st&stImported != 0 {
		s.peer--
	}
	s.unlink(i)
	s.unindex(i)
	s.slab[i] = entry{next: s.free}
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
