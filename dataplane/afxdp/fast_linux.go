package afxdp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"weir/dataplane"
	"weir/dataplane/afxdp/xdp"
	"weir/dataplane/flow"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

// The XDP fast path, wired (Suricata's "bypass"): once a GWLB flow the policy
// allows has carried FastAfter packets through the pipeline, its workers ask
// the fast path's goroutine to put its keys in the program's fast_flows map,
// and from then on the program answers the flow's packets itself. Packets that
// change the flow's TCP state (SYN, FIN, RST) and any shape the program does
// not take still come up, so the flow table keeps the flow's state; the
// goroutine reads the map's counters once a second and credits them to the
// flow (Table.Credit), so records, flow logs, expiry and peers see every
// packet. Keys go when the flow closes, ends, or on a reload.
//
// Only a backend told that nothing else needs each packet (Config.FastPath:
// detection off) does this: the fast path hides packets from every stage.

// FastAfter is how many packets a flow carries through the pipeline before
// its keys go into the XDP program: short flows (a DNS query and its answer)
// would cost two map updates and two deletes for nothing.
const FastAfter = 8

// DefaultFastFlows is Config.FastFlows when 0: the flows answered in XDP at
// once. The map holds four keys a flow (two a flow, doubled because an LRU
// map evicts before it is full), about 120 bytes each.
const DefaultFastFlows = 65536

// fastReadEvery is how often the counters are read and credited.
const fastReadEvery = time.Second

// fastRetry is how long a worker waits before asking again for a flow it
// asked for: while the keys go in, packets keep coming up.
const fastRetry = time.Second

// fastRequests bounds the requests waiting for the fast path's goroutine; a
// worker never waits for room (the flow's next packets ask again).
const fastRequests = 4096

// fastAsked is the size of a worker's table of recent requests (a power of 2).
const fastAsked = 4096

type fastOp uint8

const (
	fastAdd    fastOp = iota // put the flow's keys in (the packet's direction; both once both were seen)
	fastRemove               // the flow closed: take its keys out and credit what they counted
)

// fastRequest is a worker's request about one flow.
type fastRequest struct {
	op     fastOp
	both   bool  // fastAdd: both directions, else keys[dir] alone
	dir    uint8 // the direction of the packet that asked: 0 to the server, 1 to the client
	handle flow.Handle
	keys   [2]xdp.FastKey // [0] client to server, [1] server to client
}

// fastAsk is one entry of a worker's table of recent requests.
type fastAsk struct {
	id    uint64
	at    int64
	flush uint32 // fastPath.flushes when asked
	op    fastOp
	both  bool
}

// fastOffer is the worker's side: which returned slots of a batch to offer.
type fastOffer struct {
	reqs     chan<- fastRequest
	maxFrame uint32 // the longest frame the program answers
	asked    []fastAsk
	dropped  *atomic.Uint64 // requests that found the queue full
	flushes  *atomic.Uint32 // flushes so far: what was asked before one is asked again
}

// offer asks for the flows of batch b's returned GENEVE slots that the
// program could answer from now on. lens are the slots' frame lengths.
func (o *fastOffer) offer(b *dataplane.Batch, lens []uint32) {
	flushes := o.flushes.Load()
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		r := &s.Flow
		if s.Verdict != dataplane.VerdictReturn || s.Encap != dataplane.EncapGeneve || s.Session != nil ||
			r.FlowID == 0 || r.Action != policy.Allow || r.Packets < FastAfter {
			continue
		}
		op := fastAdd
		if r.State == flow.StateClosed {
			op = fastRemove
		} else if lens[i] > o.maxFrame || !fastShape(s) {
			continue
		}
		both := r.State != flow.StateNew // both directions seen
		a := &o.asked[r.FlowID&(fastAsked-1)]
		if a.id == r.FlowID && a.op == op && a.both == both && a.flush == flushes &&
			b.Now-a.at < int64(fastRetry) && b.Now >= a.at {
			continue
		}
		*a = fastAsk{id: r.FlowID, at: b.Now, flush: flushes, op: op, both: both}
		req := fastRequest{op: op, both: both, handle: r.Handle}
		p := &s.Packet
		fwd := fastKeyOf(s.AWS.EndpointID, p.Src, p.Dst, p.Proto, p.SrcPort, p.DstPort)
		rev := fastKeyOf(s.AWS.EndpointID, p.Dst, p.Src, p.Proto, p.DstPort, p.SrcPort)
		if h := s.Geneve; h.OptionsLen() == 4*xdp.FastOptWordsGWLB && len(h) >= geneve.HeaderLen+4*xdp.FastOptWordsGWLB {
			// GWLB's layout: the third option's data, as the program keys it.
			fwd.Cookie = [4]byte(h[geneve.HeaderLen+28 : geneve.HeaderLen+32])
			rev.Cookie = fwd.Cookie
		}
		if r.ToServer {
			req.keys = [2]xdp.FastKey{fwd, rev}
		} else {
			req.keys, req.dir = [2]xdp.FastKey{rev, fwd}, 1
		}
		select {
		case o.reqs <- req:
		default:
			o.dropped.Add(1)
			a.id = 0 // ask again with the next packet
		}
	}
}

// fastKeyOf is the key the program builds for a packet from src to dst: an
// inner IPv6 packet's is IPv6 whatever its addresses (xdp.FastKeyOf would
// take an IPv4-mapped one for IPv4, and panic on a mapped source with a plain
// IPv6 destination).
func fastKeyOf(endpointID uint64, src, dst netip.Addr, proto uint8, sport, dport uint16) xdp.FastKey {
	if src.Is4() && dst.Is4() {
		return xdp.FastKeyOf(endpointID, src, dst, proto, sport, dport)
	}
	k := xdp.FastKey{Family: 6, Proto: proto, Src: src.As16(), Dst: dst.As16()}
	binary.BigEndian.PutUint64(k.Endpoint[:], endpointID)
	binary.BigEndian.PutUint16(k.SrcPort[:], sport)
	binary.BigEndian.PutUint16(k.DstPort[:], dport)
	return k
}

// fastShape reports whether the program's fast path takes a datagram like
// slot s's (see package xdp): TCP or UDP, not a fragment, inside GENEVE whose
// first option is the endpoint id, with IP as payload and no IPv4 options or
// IPv6 extension headers.
func fastShape(s *dataplane.Slot) bool {
	p := &s.Packet
	if p.Fragment || p.FirstFragment || (p.Proto != packet.ProtoTCP && p.Proto != packet.ProtoUDP) {
		return false
	}
	h := s.Geneve
	if len(h) < geneve.HeaderLen+12 || h.Version() != 0 {
		return false
	}
	switch h.OptionsLen() / 4 {
	case xdp.FastOptWordsEndpoint:
	case xdp.FastOptWordsGWLB:
		if len(h) < geneve.HeaderLen+4*xdp.FastOptWordsGWLB || h[8+12+3]&0x1f != 2 || h[8+24+3]&0x1f != 1 {
			return false
		}
	default:
		return false
	}
	o := geneve.Option(h[geneve.HeaderLen:])
	if o.Class() != geneve.ClassAWS || o.Type() != geneve.AWSTypeEndpointID || o[3]&0x1f != 2 {
		return false
	}
	in := s.Inner
	switch h.ProtocolType() {
	case geneve.ProtoIPv4:
		return len(in) > 0 && in[0] == 0x45
	case geneve.ProtoIPv6:
		return len(in) > 6 && (in[6] == packet.ProtoTCP || in[6] == packet.ProtoUDP)
	}
	return false
}

// fastFlow is a flow whose keys are in the program's map.
type fastFlow struct {
	handle flow.Handle
	keys   [2]xdp.FastKey
	in     [2]bool             // the key is in the map
	seen   [2]xdp.FastCounters // what it had counted at the last read, credited
	read   [2]bool             // the key turned up in the current read
	since  int64               // unix ns of the last credit (the earliest a new packet can be)
	credit flow.Credit         // counted, not yet credited
}

// fastKeyRef finds a key's flow and direction.
type fastKeyRef struct {
	f   *fastFlow
	dir uint8
}

// FastStats are the fast path's counters.
type FastStats struct {
	Flows    int    // flows whose keys are in the program's map now
	Added    uint64 // flows put in
	Removed  uint64 // flows taken out: closed, ended, flushed by a reload
	Evicted  uint64 // keys the map's LRU dropped before weir took them out (their counts since the last read are lost)
	Full     uint64 // requests turned away because Config.FastFlows flows were in (a waiting flow asks again each second)
	Dropped  uint64 // requests lost to a full queue (the flow's next packets ask again)
	Errors   uint64 // failed map operations
	Credited uint64 // packets credited to flows
}

// fastPath owns the program's fast_flows map while Run runs. Its goroutine
// serves requests and reads the map; the flow table calls ending (with a
// shard locked) as flows end. mu guards the registry (byID, byKey and the
// flows in it). Lock order: a flow table shard, then mu; so nothing holding
// mu calls into the table: credits are handed over after it is released.
type fastPath struct {
	coll  *ebpf.Collection
	flows *flow.Table
	max   int
	reqs  chan fastRequest
	flush chan chan struct{}
	rec   flow.Record // serve's, reused
	b     *Backend

	mu      sync.Mutex
	byID    map[uint64]*fastFlow
	byKey   map[xdp.FastKey]fastKeyRef
	reader  xdp.FastReader
	stale   []xdp.FastKey
	credits []fastCredit // taken under mu, handed to the table after

	flushes                                                    atomic.Uint32
	count                                                      atomic.Int64
	added, removed, evicted, full, dropped, errors, creditedPk atomic.Uint64
}

func newFastPath(b *Backend, coll *ebpf.Collection) *fastPath {
	max := b.cfg.FastFlows
	if max == 0 {
		max = DefaultFastFlows
	}
	return &fastPath{
		coll: coll, flows: b.cfg.Flows, max: max, b: b,
		reqs:  make(chan fastRequest, fastRequests),
		flush: make(chan chan struct{}),
		byID:  map[uint64]*fastFlow{},
		byKey: map[xdp.FastKey]fastKeyRef{},
	}
}

// fastCredit is a credit due to a flow, collected under fastPath.mu.
type fastCredit struct {
	h flow.Handle
	c flow.Credit
}

// fastMapEntries is the program's fast_flows size for at most flows flows.
func fastMapEntries(flows int) int { return 4 * flows }

func (fp *fastPath) offerer(frags bool) *fastOffer {
	o := &fastOffer{reqs: fp.reqs, maxFrame: maxFrameData, asked: make([]fastAsk, fastAsked), dropped: &fp.dropped, flushes: &fp.flushes}
	if frags {
		o.maxFrame = xdp.FastFragsMax
	}
	return o
}

func (fp *fastPath) stats() FastStats {
	return FastStats{Flows: int(fp.count.Load()), Added: fp.added.Load(), Removed: fp.removed.Load(),
		Evicted: fp.evicted.Load(), Full: fp.full.Load(), Dropped: fp.dropped.Load(), Errors: fp.errors.Load(),
		Credited: fp.creditedPk.Load()}
}

// run serves requests and reads the counters until ctx ends; the caller then
// calls finish, once the program is detached.
func (fp *fastPath) run(ctx context.Context) {
	tick := time.NewTicker(fastReadEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-fp.reqs:
			fp.serve(&r)
		case <-tick.C:
			fp.readAll()
		case done := <-fp.flush:
			fp.takeAll()
			fp.flushes.Add(1)
			close(done)
		}
	}
}

func (fp *fastPath) serve(r *fastRequest) {
	id := r.handle.FlowID()
	if r.op == fastAdd {
		// Asked before the flow closed or ended, served after: nothing to
		// put in (the remove may have gone already). Checked before mu is
		// taken (the table's lock comes first); a flow that ends between
		// the check and the keys going in is found ended at the next read.
		if !fp.flows.RecordOf(r.handle, &fp.rec) || fp.rec.State == flow.StateClosed {
			return
		}
	}
	fp.mu.Lock()
	f := fp.byID[id]
	switch {
	case r.op == fastRemove:
		if f != nil {
			fp.take(f)
		}
	case f == nil && len(fp.byID) >= fp.max:
		fp.full.Add(1)
	default:
		added := f == nil
		if added {
			f = &fastFlow{handle: r.handle, keys: r.keys, since: time.Now().UnixNano()}
			fp.byID[id] = f
		}
		fp.addKeys(f, r)
		if added { // counted once its keys are in
			fp.count.Store(int64(len(fp.byID)))
			fp.added.Add(1)
		}
	}
	fp.mu.Unlock()
	fp.handOver()
}

// addKeys puts the keys r asks for of f in the map. fp.mu is held.
func (fp *fastPath) addKeys(f *fastFlow, r *fastRequest) {
	for d := range 2 {
		if f.in[d] || (!r.both && d != int(r.dir)) {
			continue
		}
		if ref, ok := fp.byKey[f.keys[d]]; ok && ref.f != f {
			// A flow that ended in the table (not yet found so by a read)
			// still holds the key: it goes first, its counts credited.
			fp.take(ref.f)
		}
		added, err := xdp.AddFast(fp.coll, f.keys[d])
		if err != nil {
			fp.errors.Add(1)
			continue
		}
		f.seen[d] = xdp.FastCounters{}
		if !added {
			// A key there already (left by a flow that ended in between)
			// keeps its counts: only new ones are credited.
			if c, ok, err := xdp.ReadFast(fp.coll, f.keys[d]); err == nil && ok {
				f.seen[d] = c
			}
		}
		f.in[d] = true
		fp.byKey[f.keys[d]] = fastKeyRef{f, uint8(d)}
	}
}

// handOver gives the table the credits taken under mu; mu is not held.
func (fp *fastPath) handOver() {
	fp.mu.Lock()
	credits := fp.credits
	fp.credits = nil
	fp.mu.Unlock()
	for i := range credits {
		fp.flows.Credit(credits[i].h, &credits[i].c)
	}
}

// clock converts the program's CLOCK_MONOTONIC times to unix ns.
type clock struct{ offset int64 }

func newClock() clock {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return clock{time.Now().UnixNano() - ts.Nano()}
}

func (c clock) unix(mono uint64) int64 { return int64(mono) + c.offset }

// add records in f.credit what key dir counted beyond f.seen.
func (f *fastFlow) add(dir uint8, c *xdp.FastCounters, clk clock) {
	s := &f.seen[dir]
	if c.Packets < s.Packets { // a new entry under the same key
		*s = xdp.FastCounters{}
	}
	if c.Packets > s.Packets {
		f.credit.Packets[dir] += c.Packets - s.Packets
		f.credit.Bytes[dir] += c.Bytes - s.Bytes
		f.credit.Last = max(f.credit.Last, clk.unix(c.LastSeen))
	}
	*s = *c
}

// pending moves f's counted traffic into a credit for the table. fp.mu is
// held.
func (fp *fastPath) pending(f *fastFlow) flow.Credit {
	c := f.credit
	c.First = f.since
	if c.Last != 0 {
		f.since = c.Last
	}
	fp.creditedPk.Add(c.Packets[0] + c.Packets[1])
	f.credit = flow.Credit{}
	return c
}

// readAll reads every key's counters and credits the deltas; it takes out the
// keys of flows found ended and counts the keys the map dropped.
func (fp *fastPath) readAll() {
	clk := newClock()
	fp.mu.Lock()
	fp.stale = fp.stale[:0]
	err := fp.reader.ReadAll(fp.coll, func(k *xdp.FastKey, c *xdp.FastCounters) {
		ref, ok := fp.byKey[*k]
		if !ok {
			fp.stale = append(fp.stale, *k)
			return
		}
		ref.f.read[ref.dir] = true
		ref.f.add(ref.dir, c, clk)
	})
	if err != nil {
		fp.mu.Unlock()
		fp.errors.Add(1)
		fp.b.log.Warn("afxdp: reading the XDP fast path's counters", "err", err)
		return
	}
	flows := make([]*fastFlow, 0, len(fp.byID))
	for _, f := range fp.byID {
		for d := range 2 {
			if f.in[d] && !f.read[d] {
				// The LRU dropped it: its packets come up again, and ask
				// for it again.
				fp.evicted.Add(1)
				f.in[d], f.seen[d] = false, xdp.FastCounters{}
				delete(fp.byKey, f.keys[d])
			}
			f.read[d] = false
		}
		flows = append(flows, f)
	}
	for i := range fp.stale {
		_, _, _ = xdp.TakeFast(fp.coll, fp.stale[i])
	}
	fp.mu.Unlock()
	fp.handOver()
	// Each flow's credit is taken under the table's lock for it (then mu),
	// so that it and the table's ending, which takes what is counted when
	// the flow ends, never both take it.
	for _, f := range flows {
		var gone bool
		live := fp.flows.CreditFunc(f.handle, func(c *flow.Credit) {
			fp.mu.Lock()
			if gone = fp.byID[f.handle.FlowID()] != f; !gone {
				*c = fp.pending(f)
			}
			fp.mu.Unlock()
		})
		if !live {
			// Ended without the table's ending finding it (it ended while
			// its keys went in): take it out; its counts are lost.
			fp.mu.Lock()
			if fp.byID[f.handle.FlowID()] == f {
				fp.take(f)
			}
			fp.credits = fp.credits[:0]
			fp.mu.Unlock()
		}
	}
}

// take removes f's keys and forgets f; what they counted since the last read
// is queued in fp.credits for handOver. fp.mu is held.
func (fp *fastPath) take(f *fastFlow) {
	c := fp.takeCredit(f)
	fp.credits = append(fp.credits, fastCredit{f.handle, c})
}

// takeCredit removes f's keys, forgets f and returns what it counted since
// the last credit. fp.mu is held.
func (fp *fastPath) takeCredit(f *fastFlow) flow.Credit {
	clk := newClock()
	for d := range 2 {
		if !f.in[d] {
			continue
		}
		c, ok, err := xdp.TakeFast(fp.coll, f.keys[d])
		if err != nil {
			fp.errors.Add(1)
		} else if ok {
			f.add(uint8(d), &c, clk)
		}
		delete(fp.byKey, f.keys[d])
		f.in[d] = false
	}
	delete(fp.byID, f.handle.FlowID())
	fp.count.Store(int64(len(fp.byID)))
	fp.removed.Add(1)
	return fp.pending(f)
}

// ending is the flow table's SetEnding function: a flow in the fast path that
// ends in the table (closed, timed out, evicted, replaced by a new connection)
// is taken out at once, and what it counted goes into its record.
func (fp *fastPath) ending(id uint64, c *flow.Credit) {
	fp.mu.Lock()
	if f := fp.byID[id]; f != nil {
		*c = fp.takeCredit(f)
	}
	fp.mu.Unlock()
}

// takeAll takes every flow out, crediting what it counted.
func (fp *fastPath) takeAll() {
	fp.mu.Lock()
	for _, f := range fp.byID {
		fp.take(f)
	}
	fp.stale = fp.stale[:0]
	_ = fp.reader.ReadAll(fp.coll, func(k *xdp.FastKey, _ *xdp.FastCounters) { fp.stale = append(fp.stale, *k) })
	for i := range fp.stale {
		_, _, _ = xdp.TakeFast(fp.coll, fp.stale[i])
	}
	fp.mu.Unlock()
	fp.handOver()
}

// Flush takes every flow out of the XDP fast path, crediting what it
// counted: their next packets go through the pipeline again (and come back
// to the fast path if it still allows them). A reload calls it, so that the
// new configuration judges every flow's packets. It waits at most timeout.
func (b *Backend) FlushFast(timeout time.Duration) error {
	b.mu.Lock()
	fp := b.fast
	b.mu.Unlock()
	if fp == nil {
		return nil
	}
	done := make(chan struct{})
	select {
	case fp.flush <- done:
	case <-time.After(timeout):
		return fmt.Errorf("afxdp: the fast path did not take the flush within %v", timeout)
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("afxdp: the fast path's flush took longer than %v", timeout)
	}
}

// FastStats returns the fast path's counters; ok is false when it is off.
func (b *Backend) FastStats() (FastStats, bool) {
	b.mu.Lock()
	fp := b.fast
	b.mu.Unlock()
	if fp == nil {
		return FastStats{}, false
	}
	return fp.stats(), true
}
