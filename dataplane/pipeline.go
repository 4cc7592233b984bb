package dataplane

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"weir/dataplane/packet"
	"weir/geneve"
	"weir/vxlan"
)

// Action is the outcome a datagram is counted under in weir_packets_total. The
// built-in actions are below; a stage in another package registers its own
// (RegisterAction), so that, say, a detection stage counts its drops as "ips_drop".
type Action uint8

const (
	ActionAllow        Action = iota // passed policy (and, inline, was returned)
	ActionDrop                       // dropped by policy
	ActionMalformed                  // failed to decode
	ActionSourceDenied               // tunnel source not in the allowed list
	ActionFiltered                   // mirrored traffic the session's filter does not mirror
	ActionDuplicate                  // the second copy of a packet mirrored at both ends
	ActionNoSession                  // mirrored traffic of a VNI no session takes
	ActionNotIP                      // mirrored frames that carry no IP packet (ARP, ...)
	ActionFragment                   // a later fragment whose first fragment was not seen
	ActionMidstream                  // a TCP packet of no known flow, without SYN, under flows.midstream: drop
	// ActionIPSDrop counts packets detection dropped inline in ips mode: the packet
	// a drop rule matched, and every later packet of its flow (Track drops those).
	ActionIPSDrop
	numBuiltinActions
)

// MaxActions bounds the actions, built-in and registered: the per-worker counters
// are fixed arrays, so that counting a packet is an index, never a map.
const MaxActions = 32

var actions = struct {
	sync.Mutex
	names [MaxActions]string
	n     atomic.Uint32
}{names: [MaxActions]string{"allow", "drop", "malformed", "source_denied", "filtered", "duplicate",
	"no_session", "not_ip", "fragment_unmatched", "midstream", "ips_drop"}}

func init() { actions.n.Store(uint32(numBuiltinActions)) }

// RegisterAction adds an action named name (a metric label value: lower case and
// underscores) and returns it; registering a name again returns the same action.
// Call it from a package's init or before building a pipeline. It panics when
// MaxActions are taken.
func RegisterAction(name string) Action {
	actions.Lock()
	defer actions.Unlock()
	n := Action(actions.n.Load())
	for a := range n {
		if actions.names[a] == name {
			return a
		}
	}
	if n == MaxActions {
		panic("dataplane: too many actions registered")
	}
	actions.names[n] = name
	actions.n.Store(uint32(n + 1))
	return n
}

// NumActions is the number of actions, built-in and registered: they are
// 0..NumActions()-1.
func NumActions() Action { return Action(actions.n.Load()) }

func (a Action) String() string {
	if a >= NumActions() {
		return "unknown"
	}
	return actions.names[a]
}

// Pipeline is the ordered list of stages every batch goes through.
type Pipeline struct {
	stages   []Stage
	sessions atomic.Int32 // the highest mirror session index in use, for per-session counters

	mu      sync.Mutex
	workers []*Worker
}

// NewPipeline makes a pipeline of the given stages, run in order.
func NewPipeline(stages ...Stage) *Pipeline {
	return &Pipeline{stages: stages}
}

// SetSessions says that session indexes up to n (at most MaxSessions) are in use,
// for the per-session counters. It may be called at any time, but before sessions
// with such indexes are handed to the stages (Sessions.Replace); the counters have
// room for MaxSessions from the start, so workers never resize them.
func (p *Pipeline) SetSessions(n int) {
	if n < 0 || n > MaxSessions {
		panic(fmt.Sprintf("dataplane: %d mirror sessions, more than %d", n, MaxSessions))
	}
	p.sessions.Store(int32(n))
}

// NewWorker makes the per-goroutine state a backend worker needs to run the
// pipeline. Its counters are summed into the pipeline's totals.
func (p *Pipeline) NewWorker() *Worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := &Worker{ID: len(p.workers), pipeline: p,
		sess: make([]sessionTally, MaxSessions+1), sessC: make([]sessionCounters, MaxSessions+1),
		stageState: make([]any, len(p.stages))}
	for i, s := range p.stages {
		if ws, ok := s.(WorkerStage); ok {
			w.stageState[i] = ws.NewWorkerState()
			if pub, ok := w.stageState[i].(Publisher); ok {
				w.publishers = append(w.publishers, pub)
			}
		}
	}
	p.workers = append(p.workers, w)
	return w
}

// Worker runs the pipeline on one goroutine. Counting happens in plain fields during
// a batch and is published to atomics once per batch, so no atomic operation and no
// shared cache line is touched per packet.
type Worker struct {
	ID       int
	pipeline *Pipeline

	local    tally
	counters counters

	stageState []any             // per stage, from WorkerStage.NewWorkerState; nil for others
	publishers []Publisher       // the stage states that publish counts after each batch
	stage      int               // the stage running now
	sess       []sessionTally    // per mirror session, indexed by Session.Index
	sessC      []sessionCounters // published

	beat atomic.Int64 // last Heartbeat, nanoseconds since epoch (monotonic); 0 = not running
}

// sessionTally counts one mirror session's packets during a batch.
type sessionTally struct {
	received, receivedBytes, accepted, rejected, truncated, duplicates uint64
}

type sessionCounters struct {
	received, receivedBytes, accepted, rejected, truncated, duplicates atomic.Uint64
}

// SessionTotals is one mirror session's counts, summed over workers.
type SessionTotals struct {
	Received, ReceivedBytes, Accepted, Rejected, Truncated, Duplicates uint64
}

// tally is a worker's per-batch count, plain integers.
type tally struct {
	packets       [NumEncaps][MaxActions]uint64
	bytes         [NumEncaps]uint64
	geneveErr     [geneve.NumReasons]uint64
	vxlanErr      [vxlan.NumReasons]uint64
	vxlanReserved uint64
	innerErr      [NumEncaps][packet.NumReasons]uint64
	sendErrors    uint64
	returned      uint64
	dirty         bool
}

// counters is a worker's published count; read by scrapes at any time.
type counters struct {
	packets       [NumEncaps][MaxActions]atomic.Uint64
	bytes         [NumEncaps]atomic.Uint64
	geneveErr     [geneve.NumReasons]atomic.Uint64
	vxlanErr      [vxlan.NumReasons]atomic.Uint64
	vxlanReserved atomic.Uint64
	innerErr      [NumEncaps][packet.NumReasons]atomic.Uint64
	sendErrors    atomic.Uint64
	returned      atomic.Uint64
	_             [64]byte // keep the next worker's counters off this cache line
}

// Process runs every stage over the batch, then counts each slot's outcome.
func (w *Worker) Process(b *Batch) {
	for i, s := range w.pipeline.stages {
		w.stage = i
		s.Process(w, b)
	}
	t := &w.local
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		t.packets[s.Encap][s.action]++
		t.bytes[s.Encap] += uint64(len(s.Buf))
	}
	t.dirty = true
	w.publish()
	for _, p := range w.publishers {
		p.Publish()
	}
}

// StageState is the running stage's state in this worker (from its
// NewWorkerState), or nil for a stage that keeps none.
func (w *Worker) StageState() any { return w.stageState[w.stage] }

// StageStates returns stage's state in every worker, for summing what the states
// publish (Publisher) at scrape time. Only what Publish wrote may be read there:
// the rest belongs to the worker.
func (p *Pipeline) StageStates(stage Stage) []any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []any
	for i, s := range p.stages {
		// Stages of a type that cannot be compared (a value holding a slice) are
		// never the one asked for; comparing them would panic.
		if reflect.TypeOf(s) != reflect.TypeOf(stage) || !reflect.TypeOf(s).Comparable() || s != stage {
			continue
		}
		for _, w := range p.workers {
			out = append(out, w.stageState[i])
		}
	}
	return out
}

// CountSent records the outcome of sending replies: n sent, failed not sent.
func (w *Worker) CountSent(n, failed int) {
	w.local.returned += uint64(n)
	w.local.sendErrors += uint64(failed)
	w.local.dirty = true
	w.publish()
}

func (w *Worker) publish() {
	t, c := &w.local, &w.counters
	if !t.dirty {
		return
	}
	na := NumActions() // the arrays have room for MaxActions; only these are in use
	for e := range t.packets {
		for a, v := range t.packets[e][:na] {
			if v != 0 {
				c.packets[e][a].Add(v)
			}
		}
		if t.bytes[e] != 0 {
			c.bytes[e].Add(t.bytes[e])
		}
	}
	for r, v := range t.geneveErr {
		if v != 0 {
			c.geneveErr[r].Add(v)
		}
	}
	for r, v := range t.vxlanErr {
		if v != 0 {
			c.vxlanErr[r].Add(v)
		}
	}
	if t.vxlanReserved != 0 {
		c.vxlanReserved.Add(t.vxlanReserved)
	}
	for e := range t.innerErr {
		for r, v := range t.innerErr[e] {
			if v != 0 {
				c.innerErr[e][r].Add(v)
			}
		}
	}
	// Sessions past the highest index in use have counted nothing: an index is in
	// use (SetSessions) before any packet can carry it.
	for i := range w.sess[:w.pipeline.sessions.Load()+1] {
		l := &w.sess[i]
		if *l == (sessionTally{}) {
			continue
		}
		sc := &w.sessC[i]
		sc.received.Add(l.received)
		sc.receivedBytes.Add(l.receivedBytes)
		sc.accepted.Add(l.accepted)
		sc.rejected.Add(l.rejected)
		sc.truncated.Add(l.truncated)
		sc.duplicates.Add(l.duplicates)
		*l = sessionTally{}
	}
	if t.sendErrors != 0 {
		c.sendErrors.Add(t.sendErrors)
	}
	if t.returned != 0 {
		c.returned.Add(t.returned)
	}
	*t = tally{}
}

// Totals is a snapshot of all workers' counters.
type Totals struct {
	Packets       [NumEncaps][MaxActions]uint64
	Bytes         [NumEncaps]uint64
	GeneveErr     [geneve.NumReasons]uint64
	VXLANErr      [vxlan.NumReasons]uint64
	VXLANReserved uint64 // VXLAN headers with reserved bits set (accepted)
	InnerErr      [NumEncaps][packet.NumReasons]uint64
	SendErrors    uint64
	Returned      uint64
	Sessions      []SessionTotals // indexed by Session.Index; 0 unused
}

// Packet returns the packets counted under encapsulation e and action a.
func (t Totals) Packet(e Encap, a Action) uint64 { return t.Packets[e][a] }

// Totals sums every worker's published counters.
func (p *Pipeline) Totals() Totals {
	p.mu.Lock()
	ws := p.workers
	p.mu.Unlock()
	var t Totals
	t.Sessions = make([]SessionTotals, p.sessions.Load()+1)
	for _, w := range ws {
		c := &w.counters
		for e := range c.packets {
			for a := range c.packets[e][:NumActions()] {
				t.Packets[e][a] += c.packets[e][a].Load()
			}
			t.Bytes[e] += c.bytes[e].Load()
		}
		for r := range c.geneveErr {
			t.GeneveErr[r] += c.geneveErr[r].Load()
		}
		for r := range c.vxlanErr {
			t.VXLANErr[r] += c.vxlanErr[r].Load()
		}
		t.VXLANReserved += c.vxlanReserved.Load()
		for e := range c.innerErr {
			for r := range c.innerErr[e] {
				t.InnerErr[e][r] += c.innerErr[e][r].Load()
			}
		}
		for i := range t.Sessions {
			sc, st := &w.sessC[i], &t.Sessions[i]
			st.Received += sc.received.Load()
			st.ReceivedBytes += sc.receivedBytes.Load()
			st.Accepted += sc.accepted.Load()
			st.Rejected += sc.rejected.Load()
			st.Truncated += sc.truncated.Load()
			st.Duplicates += sc.duplicates.Load()
		}
		t.SendErrors += c.sendErrors.Load()
		t.Returned += c.returned.Load()
	}
	return t
}

// epoch anchors heartbeats to the monotonic clock, so a wall-clock step never
// looks like a stall.
var epoch = time.Now()

// Heartbeat records that the worker is making progress. A backend calls it once per
// loop: after each batch and each time its wait for input times out, so an idle
// worker keeps beating and only one stuck inside the pipeline (or the send path)
// falls silent.
func (w *Worker) Heartbeat() { w.beat.Store(max(int64(time.Since(epoch)), 1)) }

// StopHeartbeat takes a worker that has ended out of stall checks.
func (w *Worker) StopHeartbeat() { w.beat.Store(0) }

// Stalled reports the worker that has gone longest without a heartbeat, if that is
// more than timeout at now. Workers that never beat (replay) or have stopped are
// not checked. Since idle workers beat on every receive timeout, silence alone
// means stuck: there is no need to look at the socket's queue.
func (p *Pipeline) Stalled(now time.Time, timeout time.Duration) (worker int, since time.Duration, stalled bool) {
	p.mu.Lock()
	ws := p.workers
	p.mu.Unlock()
	mono := now.Sub(epoch)
	for _, w := range ws {
		b := w.beat.Load()
		if b == 0 {
			continue
		}
		if d := mono - time.Duration(b); d > timeout && d > since {
			worker, since, stalled = w.ID, d, true
		}
	}
	return worker, since, stalled
}
