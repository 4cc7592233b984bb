package dataplane

import (
	"sync"
	"sync/atomic"

	"weir/dataplane/packet"
	"weir/geneve"
)

// Action is the outcome a datagram is counted under in weir_packets_total.
type Action uint8

const (
	ActionAllow        Action = iota // passed policy (and, inline, was returned)
	ActionDrop                       // dropped by policy
	ActionMalformed                  // failed to decode
	ActionSourceDenied               // tunnel source not in the allowed list
	numActions
)

func (a Action) String() string {
	return [...]string{"allow", "drop", "malformed", "source_denied"}[a]
}

// Pipeline is the ordered list of stages every batch goes through.
type Pipeline struct {
	stages []Stage

	mu      sync.Mutex
	workers []*Worker
}

// NewPipeline makes a pipeline of the given stages, run in order.
func NewPipeline(stages ...Stage) *Pipeline {
	return &Pipeline{stages: stages}
}

// NewWorker makes the per-goroutine state a backend worker needs to run the
// pipeline. Its counters are summed into the pipeline's totals.
func (p *Pipeline) NewWorker() *Worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := &Worker{ID: len(p.workers), pipeline: p}
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
}

// tally is a worker's per-batch count, plain integers.
type tally struct {
	packets    [numEncaps][numActions]uint64
	bytes      [numEncaps]uint64
	geneveErr  [geneve.NumReasons]uint64
	innerErr   [packet.NumReasons]uint64
	sendErrors uint64
	returned   uint64
	dirty      bool
}

// counters is a worker's published count; read by scrapes at any time.
type counters struct {
	packets    [numEncaps][numActions]atomic.Uint64
	bytes      [numEncaps]atomic.Uint64
	geneveErr  [geneve.NumReasons]atomic.Uint64
	innerErr   [packet.NumReasons]atomic.Uint64
	sendErrors atomic.Uint64
	returned   atomic.Uint64
	_          [64]byte // keep the next worker's counters off this cache line
}

// Process runs every stage over the batch, then counts each slot's outcome.
func (w *Worker) Process(b *Batch) {
	for _, s := range w.pipeline.stages {
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
	for e := range t.packets {
		for a, v := range t.packets[e] {
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
	for r, v := range t.innerErr {
		if v != 0 {
			c.innerErr[r].Add(v)
		}
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
	Packets    [numEncaps][numActions]uint64
	Bytes      [numEncaps]uint64
	GeneveErr  [geneve.NumReasons]uint64
	InnerErr   [packet.NumReasons]uint64
	SendErrors uint64
	Returned   uint64
}

// Packet returns the packets counted under encapsulation e and action a.
func (t Totals) Packet(e Encap, a Action) uint64 { return t.Packets[e][a] }

// Totals sums every worker's published counters.
func (p *Pipeline) Totals() Totals {
	p.mu.Lock()
	ws := p.workers
	p.mu.Unlock()
	var t Totals
	for _, w := range ws {
		c := &w.counters
		for e := range c.packets {
			for a := range c.packets[e] {
				t.Packets[e][a] += c.packets[e][a].Load()
			}
			t.Bytes[e] += c.bytes[e].Load()
		}
		for r := range c.geneveErr {
			t.GeneveErr[r] += c.geneveErr[r].Load()
		}
		for r := range c.innerErr {
			t.InnerErr[r] += c.innerErr[r].Load()
		}
		t.SendErrors += c.sendErrors.Load()
		t.Returned += c.returned.Load()
	}
	return t
}
