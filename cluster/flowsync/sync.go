// Package flowsync shares flow state across a weir fleet, so that when GWLB moves a dead
// node's flows to the survivors (target_failover rebalance), they already know them:
// same flow id, verdict, orientation and TCP state.
//
// How it works, in the manner of OpenBSD's pfsync:
//
//   - The flow table's journal (flow.Config.Journal = Syncer.Journal) reports each
//     flow created, changed, refreshed and ended. Journal copies the events into a
//     bounded queue and returns; when the queue is full it drops and counts (the
//     packet path never waits).
//   - A sender goroutine coalesces the queue (the newest event per flow id wins; an
//     end overrides anything) and broadcasts datagrams of up to MaxDatagram bytes
//     as soon as one is full, and at the latest Config.MaxDelay after the first
//     event was queued.
//   - A receiver decodes each datagram and imports its flows (flow.Table.Import,
//     which keeps the newer Last). Datagrams carry the sender's epoch (start time) and
//     a sequence number. The transport reorders datagrams (memberlist hands a
//     burst to the handler newest first), so a late datagram is imported as long as
//     it is at most seqWindow numbers behind the sender's newest: Import keeps the
//     newer Last, so it never rolls a flow back. Datagrams of an older epoch, numbers
//     already seen and ones further behind are dropped (counted as stale). A late
//     datagram can revive a flow whose end arrived before it: that copy carries no
//     traffic and ends silently at its idle timeout, as in the refresh race below.
//   - Loss. Datagrams are best effort. Rather than acknowledgements and a resend
//     queue per peer (conntrackd's FTFW, whose users still report lost sync when the
//     resend queue overflows or a peer restarts), each node re-announces every flow
//     it owns (flow ids carry the node id) once per Config.Refresh over the reliable
//     channel (SendTo, chunks of up to 64 KiB), paced to Config.RefreshRate flows a
//     second. A flow's state is idempotent (the newest Last wins), so whatever
//     datagrams were lost, every peer holds every live flow's state as of the last
//     refresh pass at most one period (plus the pass) later; the sender keeps no
//     per-peer state, and the cost is bounded and predictable. Flows taken over from
//     a dead node carry traffic here, so the table's own journal refresh
//     (flow.Config.JournalRefresh) re-announces them. Sequence gaps are counted
//     (Stats.Gaps) so loss is visible. One race remains: a flow that ends while its
//     refresh chunk is in flight may be re-imported by a peer after the end; that
//     copy carries no traffic and ends silently at its idle timeout.
//   - The Syncer calls the table's FlushJournal every MaxDelay/2, so that events of
//     quiet shards do not wait for the table's own housekeeping.
//   - Bulk sync. A node that starts while peers are alive asks one of them
//     (MsgBulkRequest over SendTo) for its whole table; the peer streams it in
//     chunks of Config.BulkChunk bytes (never the whole table in one buffer) and
//     ends with MsgBulkDone. Ready is closed when all chunks arrived, or after
//     Config.BulkTimeout whatever happened (logged), so health never stays 503
//     forever; if the peer leaves during the transfer another is asked. A peer that
//     cannot serve the request (it has not started syncing itself: nodes of a fleet
//     start together; or it serves two already) answers MsgBulkRefused; a refused
//     request, or one nothing answered within 4 × Config.BulkRetry (the refusal
//     itself can be lost: a peer may get the request before it knows the asker), is
//     asked again of another peer, or of all again once all were asked.
package flowsync

import (
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"time"

	"weir/dataplane/flow"
)

// Transport sends to peers; safe for concurrent use.
type Transport interface {
	LocalName() string
	Peers() []string                      // alive peers, not this node
	Broadcast(msg []byte)                 // best effort (UDP) to every alive peer; len(msg) <= MaxDatagram
	SendTo(peer string, msg []byte) error // reliable (TCP) to one peer; len(msg) <= MaxReliable
}

// Message size limits of a Transport.
const (
	MaxDatagram = 1200
	MaxReliable = 4 << 20
)

// Defaults for a zero Config.
const (
	DefaultMaxDelay    = 100 * time.Millisecond
	DefaultRefresh     = 20 * time.Second
	DefaultRefreshRate = 50000 // flows a second
	DefaultQueue       = 1 << 16
	DefaultBulkTimeout = 30 * time.Second
	DefaultBulkChunk   = 256 << 10
	DefaultBulkRetry   = 500 * time.Millisecond
)

// Config configures a Syncer.
type Config struct {
	Transport Transport
	NodeID    uint16 // the table's flow.Config.NodeID
	// MaxDelay bounds how long a journal event waits before it is sent.
	MaxDelay time.Duration
	// Refresh is the period of the re-announcement of this node's own flows; below
	// zero, none.
	Refresh time.Duration
	// RefreshRate bounds the re-announcement in flows a second.
	RefreshRate int
	// Queue bounds the journal events waiting for the sender.
	Queue int
	// BulkTimeout bounds the wait for the bulk sync at start.
	BulkTimeout time.Duration
	// BulkRetry is how often the bulk sync at start checks its request: a refused
	// one, or one unanswered for 4 × BulkRetry, is made again.
	BulkRetry time.Duration
	// BulkChunk is the size of a bulk transfer's messages (at most MaxReliable).
	BulkChunk int
	Logger    *slog.Logger
}

// Stats are the Syncer's counters, for metrics.
type Stats struct {
	MessagesIn, MessagesOut uint64 // weir_cluster_sync_messages_total{direction}
	BytesIn, BytesOut       uint64 // weir_cluster_sync_bytes_total{direction}
	FlowsIn, FlowsOut       uint64 // flow records received and sent
	FlowsImported           uint64 // records that changed the table
	Refreshed               uint64 // own flows re-announced
	QueueDropped            uint64 // journal events dropped because the queue was full
	JournalLost             uint64 // events the table itself could not journal (flow.Table.JournalLost)
	Gaps                    uint64 // datagrams missing in the peers' sequences
	Errors                  [numReasons]uint64
	BulkServed              uint64        // bulk transfers sent to joining peers
	BulkFlows               uint64        // flows received by this node's bulk sync
	BulkDuration            time.Duration // how long this node's bulk sync took (0 until done)
	BulkTimedOut            bool          // Ready closed by BulkTimeout
	BulkRefusals            uint64        // this node's bulk requests that peers refused
}

// ErrorCount returns the errors counted for reason r.
func (s *Stats) ErrorCount(r Reason) uint64 { return s.Errors[r] }

type counters struct {
	msgIn, msgOut, bytesIn, bytesOut, flowsIn, flowsOut   atomic.Uint64
	imported, refreshed, dropped, gaps, served, bulkFlows atomic.Uint64
	bulkRefused                                           atomic.Uint64
	errors                                                [numReasons]atomic.Uint64
	bulkDur                                               atomic.Int64
	bulkTimedOut                                          atomic.Bool
}

// seqWindow is how far behind a peer's newest datagram a late one is still
// imported: the transport delivers datagrams out of order (memberlist hands a burst
// of them to the handler newest first, from a queue of up to 1024).
const seqWindow = 1024

// peerSeq is what a peer's datagrams told so far: the epoch, the newest sequence
// number, and which of the seqWindow numbers up to it arrived (bit q%seqWindow).
type peerSeq struct {
	epoch, seq uint64
	base       uint64 // numbers up to base are not missed: sent before this node heard the epoch
	seen       [seqWindow / 64]uint64
}

func (p *peerSeq) has(q uint64) bool { i := q % seqWindow; return p.seen[i/64]&(1<<(i%64)) != 0 }
func (p *peerSeq) set(q uint64)      { i := q % seqWindow; p.seen[i/64] |= 1 << (i % 64) }
func (p *peerSeq) unset(q uint64)    { i := q % seqWindow; p.seen[i/64] &^= 1 << (i % 64) }

// Syncer publishes this node's flows to its peers and imports theirs.
type Syncer struct {
	cfg   Config
	tr    Transport
	log   *slog.Logger
	table *flow.Table
	epoch uint64

	// The journal queue: Journal appends to queue under qmu, the sender swaps it.
	qmu   stdsync.Mutex
	queue []flow.FlowState
	kick  chan struct{}

	sendMu stdsync.Mutex // orders sequence numbers with Broadcast
	seq    uint64

	decoders stdsync.Pool

	cmu    stdsync.Mutex // guards closed against wg.Add: no goroutine starts after Close
	closed bool

	pmu   stdsync.Mutex
	peers map[string]*peerSeq
	heard map[string]time.Time // when each peer's newest message arrived; guarded by pmu

	// Bulk sync at start.
	bmu        stdsync.Mutex
	bulkPeer   string
	bulkSess   uint64
	bulkChunks uint64
	bulkWant   int64 // chunks the peer reported, -1 until MsgBulkDone
	bulkStart  time.Time
	bulkAsked  map[string]bool
	bulkAt     time.Time // when the current request was sent
	bulkHeard  bool      // the current request was answered (a chunk or done)
	bulkNo     bool      // the current request was refused
	ready      chan struct{}
	readyOnce  stdsync.Once
	serving    atomic.Int32
	started    atomic.Bool // table is set: Start was called (table is read by the transport's goroutines)

	stop chan struct{}
	wg   stdsync.WaitGroup
	c    counters
}

// New returns a Syncer; its Journal may be given to flow.NewTable before Start.
func New(cfg Config) *Syncer {
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = DefaultMaxDelay
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.RefreshRate <= 0 {
		cfg.RefreshRate = DefaultRefreshRate
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.BulkTimeout <= 0 {
		cfg.BulkTimeout = DefaultBulkTimeout
	}
	if cfg.BulkRetry <= 0 {
		cfg.BulkRetry = DefaultBulkRetry
	}
	if cfg.BulkChunk <= 0 || cfg.BulkChunk > MaxReliable {
		cfg.BulkChunk = DefaultBulkChunk
	}
	cfg.BulkChunk = max(cfg.BulkChunk, HeaderLen+MaxRecordLen)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Syncer{cfg: cfg, tr: cfg.Transport, log: cfg.Logger, epoch: uint64(time.Now().UnixNano()),
		queue: make([]flow.FlowState, 0, cfg.Queue), kick: make(chan struct{}, 1),
		peers: map[string]*peerSeq{}, bulkAsked: map[string]bool{}, bulkWant: -1,
		ready: make(chan struct{}), stop: make(chan struct{})}
	s.decoders.New = func() any { return new(Decoder) }
	return s
}

// Start begins syncing table, which must journal to s.Journal. Call it once the
// transport has joined the fleet: if peers are alive, it asks one for the full
// table, and Ready closes when that is done or BulkTimeout passed; alone, the node
// is ready at once.
func (s *Syncer) Start(table *flow.Table) {
	s.cmu.Lock()
	closed := s.closed
	s.cmu.Unlock()
	if closed {
		return
	}
	s.table = table
	s.started.Store(true)
	s.wg.Add(2)
	go s.sender()
	go s.refresher()
	s.spawn(s.forgetter)
	s.bmu.Lock()
	s.bulkStart = time.Now()
	s.bmu.Unlock()
	if !s.askBulk() {
		s.markReady(false)
		return
	}
	s.wg.Add(2)
	go s.bulkWatch()
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(s.cfg.BulkTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			if s.markReady(true) {
				s.log.Warn("cluster sync: bulk sync timed out; serving with the flows received so far",
					"timeout", s.cfg.BulkTimeout, "flows", s.c.bulkFlows.Load())
			}
		case <-s.ready:
		case <-s.stop:
		}
	}()
}

// Close stops the goroutines; the transport must stop calling s first.
func (s *Syncer) Close() {
	s.cmu.Lock()
	if s.closed {
		s.cmu.Unlock()
		return
	}
	s.closed = true
	s.cmu.Unlock()
	close(s.stop)
	s.wg.Wait()
	s.markReady(false) // whoever waits for Ready (health) is not left waiting
}

// forgetAfter is how long a peer's sequence and last-heard time are kept after its
// last message: peers of an autoscaled fleet come and go, and a late datagram after
// PeerLeft would otherwise leave an entry for good. A live peer refreshes its flows
// well within it (Refresh).
const forgetAfter = 3 * time.Minute

// forgetter drops what is kept of peers not heard for forgetAfter.
func (s *Syncer) forgetter() {
	t := time.NewTicker(forgetAfter / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.forget(now)
		}
	}
}

func (s *Syncer) forget(now time.Time) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for p := range s.peers {
		if t, ok := s.heard[p]; !ok || now.Sub(t) > forgetAfter {
			delete(s.peers, p)
		}
	}
	for p, t := range s.heard {
		if now.Sub(t) > forgetAfter {
			delete(s.heard, p)
		}
	}
}

// spawn runs f on a goroutine Close waits for, unless Close has begun.
func (s *Syncer) spawn(f func()) bool {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// Ready is closed when the bulk sync at start completed or timed out.
func (s *Syncer) Ready() <-chan struct{} { return s.ready }

func (s *Syncer) markReady(timedOut bool) bool {
	done := false
	s.readyOnce.Do(func() {
		s.bmu.Lock()
		s.c.bulkDur.Store(int64(max(time.Since(s.bulkStart), 1)))
		s.bmu.Unlock()
		s.c.bulkTimedOut.Store(timedOut)
		close(s.ready)
		done = true
	})
	return done
}

// askBulk asks a peer not yet asked for its table; false when there is none.
func (s *Syncer) askBulk() bool {
	peers := s.tr.Peers()
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	for _, p := range peers {
		s.bmu.Lock()
		if s.bulkAsked[p] {
			s.bmu.Unlock()
			continue
		}
		s.bulkAsked[p] = true
		s.bulkPeer = p
		s.bulkSess++
		s.bulkChunks, s.bulkWant = 0, -1
		s.bulkAt, s.bulkHeard, s.bulkNo = time.Now(), false, false
		h := Header{Type: MsgBulkRequest, Node: s.cfg.NodeID, Epoch: s.epoch, Seq: s.bulkSess}
		s.bmu.Unlock()
		var e Encoder
		e.Reset(h)
		if s.send(p, e.Bytes()) {
			s.log.Info("cluster sync: bulk sync requested", "peer", p)
			return true
		}
	}
	return false
}

func (s *Syncer) send(peer string, msg []byte) bool {
	if err := s.tr.SendTo(peer, msg); err != nil {
		s.c.errors[ReasonSend].Add(1)
		s.log.Warn("cluster sync: send failed", "peer", peer, "err", err)
		return false
	}
	s.c.msgOut.Add(1)
	s.c.bytesOut.Add(uint64(len(msg)))
	return true
}

// Journal is the flow table's flow.Config.Journal: it copies events to the queue
// and never blocks; events that find the queue full are dropped and counted.
func (s *Syncer) Journal(shard int, events []flow.FlowState) {
	s.qmu.Lock()
	n := min(len(events), cap(s.queue)-len(s.queue))
	s.queue = append(s.queue, events[:n]...)
	s.qmu.Unlock()
	if n < len(events) {
		s.c.dropped.Add(uint64(len(events) - n))
	}
	if n > 0 {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Stats returns the counters.
func (s *Syncer) Stats() Stats {
	st := Stats{MessagesIn: s.c.msgIn.Load(), MessagesOut: s.c.msgOut.Load(), BytesIn: s.c.bytesIn.Load(),
		BytesOut: s.c.bytesOut.Load(), FlowsIn: s.c.flowsIn.Load(), FlowsOut: s.c.flowsOut.Load(),
		FlowsImported: s.c.imported.Load(), Refreshed: s.c.refreshed.Load(), QueueDropped: s.c.dropped.Load(),
		Gaps: s.c.gaps.Load(), BulkServed: s.c.served.Load(), BulkFlows: s.c.bulkFlows.Load(),
		BulkDuration: time.Duration(s.c.bulkDur.Load()), BulkTimedOut: s.c.bulkTimedOut.Load(),
		BulkRefusals: s.c.bulkRefused.Load()}
	if s.started.Load() {
		st.JournalLost = s.table.JournalLost()
	}
	for i := range st.Errors {
		st.Errors[i] = s.c.errors[i].Load()
	}
	return st
}

// broadcaster packs flows into datagrams and broadcasts each when full or flushed.
type broadcaster struct {
	s *Syncer
	e Encoder
}

func (b *broadcaster) add(f *flow.FlowState) {
	if b.e.Len() == 0 {
		b.e.Reset(Header{Type: MsgUpdate, Node: b.s.cfg.NodeID, Epoch: b.s.epoch})
	}
	if b.e.Append(f, MaxDatagram) {
		return
	}
	b.flush()
	b.e.Reset(Header{Type: MsgUpdate, Node: b.s.cfg.NodeID, Epoch: b.s.epoch})
	b.e.Append(f, MaxDatagram)
}

func (b *broadcaster) flush() {
	if b.e.Count() == 0 {
		return
	}
	s := b.s
	s.sendMu.Lock()
	s.seq++
	b.e.SetSeq(s.seq)
	msg := b.e.Bytes()
	s.tr.Broadcast(msg)
	s.sendMu.Unlock()
	s.c.msgOut.Add(1)
	s.c.bytesOut.Add(uint64(len(msg)))
	s.c.flowsOut.Add(uint64(b.e.Count()))
	b.e.Reset(Header{Type: MsgUpdate, Node: s.cfg.NodeID, Epoch: s.epoch})
	b.e.buf = b.e.buf[:0]
}

// sender coalesces the journal queue and broadcasts it within MaxDelay.
func (s *Syncer) sender() {
	defer s.wg.Done()
	var (
		spare   = make([]flow.FlowState, 0, s.cfg.Queue)
		pending []flow.FlowState // coalesced, in first-seen order
		index   = map[uint64]int{}
		b       = broadcaster{s: s}
		timer   = time.NewTimer(time.Hour)
		armed   bool
	)
	timer.Stop()
	flushAll := func() {
		for i := range pending {
			b.add(&pending[i])
		}
		b.flush()
		clear(pending)
		pending = pending[:0]
		clear(index)
	}
	for {
		select {
		case <-s.stop:
			return
		case <-timer.C:
			armed = false
			flushAll()
			continue
		case <-s.kick:
		}
		s.qmu.Lock()
		got := s.queue
		s.queue = spare[:0]
		s.qmu.Unlock()
		for i := range got {
			f := &got[i]
			j, ok := index[f.ID]
			switch {
			case !ok:
				index[f.ID] = len(pending)
				pending = append(pending, *f)
			case pending[j].Kind == flow.JournalEnded:
			case f.Kind == flow.JournalEnded || f.Last >= pending[j].Last:
				pending[j] = *f
			}
		}
		clear(got)
		spare = got[:0]
		// About a datagram's worth goes at once: full datagrams are broadcast as
		// they fill, the rest waits in the encoder for the timer.
		if len(pending) >= MaxDatagram/75 {
			for i := range pending {
				b.add(&pending[i])
			}
			clear(pending)
			pending = pending[:0]
			clear(index)
		}
		if (len(pending) > 0 || b.e.Count() > 0) && !armed {
			timer.Reset(s.cfg.MaxDelay)
			armed = true
		}
	}
}

// refreshChunk bounds a refresh message.
const refreshChunk = 64 << 10

// refresher re-announces this node's own flows every Refresh to every peer over the
// reliable channel, paced to RefreshRate flows a second; it also flushes the
// table's journal every MaxDelay/2.
func (s *Syncer) refresher() {
	defer s.wg.Done()
	flush := time.NewTicker(s.cfg.MaxDelay / 2)
	defer flush.Stop()
	var tick <-chan time.Time
	if s.cfg.Refresh > 0 {
		t := time.NewTicker(s.cfg.Refresh)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-flush.C:
			s.table.FlushJournal()
		case <-tick:
			s.refresh()
		}
	}
}

func (s *Syncer) refresh() {
	start, sent := time.Now(), 0
	h := Header{Type: MsgRefresh, Node: s.cfg.NodeID, Epoch: s.epoch}
	var e Encoder
	e.Reset(h)
	ok := true
	send := func() {
		if e.Count() == 0 {
			return
		}
		for _, p := range s.tr.Peers() {
			if s.send(p, e.Bytes()) {
				s.c.flowsOut.Add(uint64(e.Count()))
			}
		}
		sent += e.Count()
		e.Reset(h)
		// Pace: sent flows take sent/RefreshRate seconds at least.
		if d := time.Duration(float64(sent)/float64(s.cfg.RefreshRate)*float64(time.Second)) - time.Since(start); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-s.stop:
				ok = false
			case <-t.C:
			}
		}
	}
	s.table.Export(func(batch []flow.FlowState) bool {
		for i := range batch {
			if flow.NodeOfID(batch[i].ID) != s.cfg.NodeID {
				continue
			}
			batch[i].Kind = flow.JournalRefreshed
			if !e.Append(&batch[i], refreshChunk) {
				if send(); !ok {
					return false
				}
				e.Append(&batch[i], refreshChunk)
			}
		}
		return ok
	})
	if ok {
		send()
	}
	s.c.refreshed.Add(uint64(sent))
}

// PeerJoined is called by the transport when a peer joins. A joining peer asks for
// the table itself, so there is nothing to do.
func (s *Syncer) PeerJoined(name string) {}

// PeerLeft is called by the transport when a peer leaves: its sequence state is
// forgotten, and if it was serving this node's bulk sync, another peer is asked.
func (s *Syncer) PeerLeft(name string) {
	s.pmu.Lock()
	delete(s.peers, name)
	delete(s.heard, name) // autoscaled peers come and go: keep nothing of the gone
	s.pmu.Unlock()
	s.bmu.Lock()
	was := s.bulkPeer == name
	s.bmu.Unlock()
	if was {
		select {
		case <-s.ready:
		default:
			s.log.Warn("cluster sync: bulk sync peer left; asking another", "peer", name)
			s.spawn(func() {
				if !s.askBulk() {
					s.log.Warn("cluster sync: no peer left to bulk sync from; waiting for BulkTimeout")
				}
			})
		}
	}
}

// HandleMessage is called by the transport for each message from a peer.
func (s *Syncer) HandleMessage(from string, msg []byte) {
	s.c.msgIn.Add(1)
	s.c.bytesIn.Add(uint64(len(msg)))
	d := s.decoders.Get().(*Decoder)
	defer s.decoders.Put(d)
	h, flows, err := d.Decode(msg)
	if err != nil {
		r, _ := err.(Reason)
		s.c.errors[r].Add(1)
		return
	}
	now := time.Now()
	s.pmu.Lock()
	if s.heard == nil {
		s.heard = map[string]time.Time{}
	}
	s.heard[from] = now
	s.pmu.Unlock()
	switch h.Type {
	case MsgUpdate:
		if !s.fresh(from, &h) {
			s.c.errors[ReasonStale].Add(1)
			return
		}
		s.importFlows(flows)
	case MsgRefresh:
		s.importFlows(flows)
	case MsgBulkRequest:
		s.serveBulk(from, h.Seq)
	case MsgBulkRefused:
		s.bmu.Lock()
		ok := from == s.bulkPeer && h.Seq == s.bulkSess
		if ok {
			s.bulkNo = true
		}
		s.bmu.Unlock()
		if !ok {
			s.c.errors[ReasonStale].Add(1)
			return
		}
		s.c.bulkRefused.Add(1)
		s.log.Info("cluster sync: bulk request refused; asking again", "peer", from)
	case MsgBulkChunk:
		s.bmu.Lock()
		ok := from == s.bulkPeer && h.Seq == s.bulkSess
		s.bmu.Unlock()
		if !ok {
			s.c.errors[ReasonStale].Add(1)
			return
		}
		s.importFlows(flows)
		s.c.bulkFlows.Add(uint64(len(flows)))
		s.bmu.Lock()
		s.bulkChunks++
		s.bulkHeard, s.bulkAt = true, time.Now()
		done := s.bulkWant >= 0 && s.bulkChunks >= uint64(s.bulkWant)
		s.bmu.Unlock()
		if done {
			s.bulkDone()
		}
	case MsgBulkDone:
		chunks, _, err := DecodeDone(msg)
		if err != nil {
			s.c.errors[err.(Reason)].Add(1)
			return
		}
		s.bmu.Lock()
		ok := from == s.bulkPeer && h.Seq == s.bulkSess
		if ok {
			s.bulkWant = int64(chunks)
			s.bulkHeard, s.bulkAt = true, time.Now()
		}
		done := ok && s.bulkChunks >= chunks
		s.bmu.Unlock()
		if !ok {
			s.c.errors[ReasonStale].Add(1)
		}
		if done {
			s.bulkDone()
		}
	}
}

// bulkWatch makes the bulk request again, of another peer (or of all again once
// all were asked), when it was refused or nothing answered it in time; until Ready.
func (s *Syncer) bulkWatch() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.BulkRetry)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.ready:
			return
		case <-s.stop:
			return
		}
		s.bmu.Lock()
		// Ask again when refused, or when nothing came for a while: no answer to the
		// request, or a transfer that stalled (its peer stopped, or a send failed).
		again := s.bulkNo || time.Since(s.bulkAt) > 4*s.cfg.BulkRetry
		if again && !s.bulkNo {
			s.log.Info("cluster sync: bulk request unanswered or stalled; asking again", "peer", s.bulkPeer, "answered", s.bulkHeard)
		}
		s.bmu.Unlock()
		if !again || s.askBulk() {
			continue
		}
		s.bmu.Lock()
		clear(s.bulkAsked)
		s.bmu.Unlock()
		s.askBulk()
	}
}

func (s *Syncer) bulkDone() {
	if s.markReady(false) {
		s.log.Info("cluster sync: bulk sync done", "flows", s.c.bulkFlows.Load(),
			"duration", time.Duration(s.c.bulkDur.Load()))
	}
}

// fresh reports whether an update from peer is to be imported: not of an older
// epoch, and, of the current one, not a number already seen nor one more than
// seqWindow behind the newest. A late datagram within the window is imported:
// Import keeps the newer Last, so it cannot roll a flow back. A number is counted
// missing (Stats.Gaps) once it falls out of the window unseen.
func (s *Syncer) fresh(peer string, h *Header) bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	p := s.peers[peer]
	switch {
	case p == nil || h.Epoch > p.epoch:
		np := &peerSeq{epoch: h.Epoch, seq: h.Seq}
		if p == nil {
			// A peer heard for the first time: what it sent before is not missed,
			// but may still arrive late.
			np.base = h.Seq - 1
		} else if h.Seq > seqWindow {
			s.c.gaps.Add(h.Seq - seqWindow) // a restarted peer: from 1, behind the window
		}
		np.set(h.Seq)
		s.peers[peer] = np
		return true
	case h.Epoch < p.epoch:
		return false
	case h.Seq > p.seq:
		// The numbers up to h.Seq-seqWindow leave the window: count the unseen
		// (those after p.seq were never in it), then free the slots of the new ones.
		lo := max(int64(p.seq)-seqWindow+1, int64(p.base)+1, 1)
		hi := int64(h.Seq) - seqWindow
		var gaps uint64
		for q := lo; q <= min(hi, int64(p.seq)); q++ {
			if !p.has(uint64(q)) {
				gaps++
			}
		}
		if hi > int64(p.seq) {
			gaps += uint64(hi - int64(p.seq))
		}
		if h.Seq-p.seq >= seqWindow {
			clear(p.seen[:])
		} else {
			for q := p.seq + 1; q <= h.Seq; q++ {
				p.unset(q)
			}
		}
		if gaps > 0 {
			s.c.gaps.Add(gaps)
		}
		p.seq = h.Seq
		p.set(h.Seq)
		return true
	case p.seq-h.Seq >= seqWindow || p.has(h.Seq):
		return false // a duplicate, or too late to tell
	}
	p.set(h.Seq)
	return true
}

func (s *Syncer) importFlows(flows []flow.FlowState) {
	s.c.flowsIn.Add(uint64(len(flows)))
	if !s.started.Load() {
		return
	}
	n := 0
	for i := range flows {
		if s.table.Import(&flows[i]) {
			n++
		}
	}
	s.c.imported.Add(uint64(n))
}

// serveBulk streams the table to peer in a goroutine of its own; at most two at a
// time, so that a crowd of joining nodes cannot pile up table walks.
func (s *Syncer) serveBulk(peer string, sess uint64) {
	why := ""
	if s.serving.Add(1) > 2 {
		why = "busy"
	} else if !s.started.Load() {
		why = "not syncing yet"
	}
	if why != "" {
		s.serving.Add(-1)
		s.log.Info("cluster sync: bulk request refused", "peer", peer, "reason", why)
		s.spawn(func() {
			var e Encoder
			e.Reset(Header{Type: MsgBulkRefused, Node: s.cfg.NodeID, Epoch: s.epoch, Seq: sess})
			s.send(peer, e.Bytes())
		})
		return
	}
	if !s.spawn(func() {
		defer s.serving.Add(-1)
		h := Header{Type: MsgBulkChunk, Node: s.cfg.NodeID, Epoch: s.epoch, Seq: sess}
		var e Encoder
		e.Reset(h)
		var chunks, flows uint64
		ok := true
		flush := func() {
			if e.Count() == 0 {
				return
			}
			ok = s.send(peer, e.Bytes())
			chunks++
			flows += uint64(e.Count())
			s.c.flowsOut.Add(uint64(e.Count()))
			e.Reset(h)
		}
		s.table.Export(func(batch []flow.FlowState) bool {
			for i := range batch {
				if !e.Append(&batch[i], s.cfg.BulkChunk) {
					if flush(); !ok {
						return false
					}
					e.Append(&batch[i], s.cfg.BulkChunk)
				}
			}
			select {
			case <-s.stop:
				ok = false
			default:
			}
			return ok
		})
		if ok {
			flush()
		}
		if !ok {
			s.log.Warn("cluster sync: bulk transfer aborted", "peer", peer, "chunks", chunks)
			return
		}
		e.Reset(Header{Type: MsgBulkDone, Node: s.cfg.NodeID, Epoch: s.epoch, Seq: sess})
		e.AppendUvarint(chunks)
		e.AppendUvarint(flows)
		if s.send(peer, e.Bytes()) {
			s.c.served.Add(1)
			s.log.Info("cluster sync: bulk transfer sent", "peer", peer, "flows", flows, "chunks", chunks)
		}
	}) {
		s.serving.Add(-1) // closed: no transfer
	}
}

// PeerSync is what this node has heard from one peer.
type PeerSync struct {
	Peer           string    `json:"peer"`
	LastMessage    time.Time `json:"last_message"`
	LastMessageAgo string    `json:"last_message_ago"` // how stale this node's view of the peer's flows may be
}

// SyncStatus is the flow sync as GET /cluster shows it.
type SyncStatus struct {
	Ready           bool       `json:"ready"` // the bulk sync at start is done (or timed out)
	BulkSyncSeconds float64    `json:"bulk_sync_seconds"`
	BulkTimedOut    bool       `json:"bulk_timed_out"`
	Peers           []PeerSync `json:"peers"` // by name
	QueueDropped    uint64     `json:"queue_dropped"`
	Gaps            uint64     `json:"gaps"`
}

// Status reports the sync's state for a person: per peer, when its newest message
// arrived (an idle peer still refreshes its flows every Refresh).
func (s *Syncer) Status() SyncStatus {
	st := s.Stats()
	out := SyncStatus{BulkSyncSeconds: st.BulkDuration.Seconds(), BulkTimedOut: st.BulkTimedOut,
		QueueDropped: st.QueueDropped, Gaps: st.Gaps}
	select {
	case <-s.ready:
		out.Ready = true
	default:
	}
	now := time.Now()
	s.pmu.Lock()
	for p, t := range s.heard {
		out.Peers = append(out.Peers, PeerSync{Peer: p, LastMessage: t, LastMessageAgo: now.Sub(t).Round(time.Millisecond).String()})
	}
	s.pmu.Unlock()
	slices.SortFunc(out.Peers, func(a, b PeerSync) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}
