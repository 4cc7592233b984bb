// Package dataplane runs packets through weir: a backend receives a batch of datagrams,
// the pipeline's stages decode the tunnel and the inner packet, find the flow, apply
// policy and leave a verdict in each slot, and the backend sends back what is to be
// returned. Buffers belong to the backend; stages read them in place.
package dataplane

import (
	"context"

	"weir/dataplane/flow"
	"weir/dataplane/mirror"
	"weir/dataplane/packet"
	"weir/geneve"
)

// Encap is how a datagram reached us.
type Encap uint8

const (
	EncapGeneve Encap = iota // from a GWLB, UDP 6081
	EncapVXLAN               // from Traffic Mirroring, UDP 4789
	EncapNone                // not tunnelled (replayed captures of plain traffic)
	NumEncaps
)

func (e Encap) String() string { return [...]string{"geneve", "vxlan", "none"}[e] }

// Verdict is what becomes of a datagram after the pipeline.
type Verdict uint8

const (
	VerdictDrop   Verdict = iota // not sent anywhere (the zero value: fail closed)
	VerdictReturn                // sent back to where it came from, by the tunnel's reply rule
)

// Slot is one datagram of a batch and what the stages learned of it.
type Slot struct {
	// Filled by the backend.
	Buf   []byte       // the UDP payload, in the backend's memory
	Outer geneve.Outer // outer addressing as received (VXLAN inside GENEVE: the VXLAN datagram's, set by VXLANDecode)
	Encap Encap
	// Time is when the datagram was received, unix nanoseconds: the kernel's
	// receive timestamp (socket), the capture time (replay). 0 means the batch's
	// Now; stages read it through Batch.TimeOf.
	Time int64
	// PcapCnt is the datagram's number in its capture files (replay), for EVE's
	// pcap_cnt; 0 when live.
	PcapCnt uint64

	// Filled by the stages.
	Verdict Verdict
	Geneve  geneve.Header // GENEVE header with options, within Buf
	Inner   []byte        // the inner packet, within Buf
	AWS     geneve.AWS
	Packet  packet.Packet
	Flow    flow.Result
	Scope   uint64 // what Track keyed the flow by besides the 5-tuple (GWLB endpoint, mirror session)

	// Mirror path (and Ethernet payloads).
	Frame     []byte           // the inner Ethernet frame, within Buf; nil for IP payloads
	VNI       uint32           // VXLAN network identifier
	Session   *Session         // the mirror session; nil when not mirrored traffic
	Direction mirror.Direction // relative to the mirrored ENI
	CapLen    int              // bytes of Frame to record (after truncation)

	action Action // what the slot is counted as
	done   bool   // a stage settled the verdict; later stages skip the slot
}

// Settled reports whether a stage has settled the slot's verdict. Later stages skip
// settled slots.
func (s *Slot) Settled() bool { return s.done }

// Drop settles the slot as dropped, counted under a (a built-in action or one from
// RegisterAction).
func (s *Slot) Drop(a Action) { s.Verdict, s.action, s.done = VerdictDrop, a, true }

// Settle settles the slot with verdict v, counted under a: no later stage changes
// it.
func (s *Slot) Settle(v Verdict, a Action) { s.Verdict, s.action, s.done = v, a, true }

// Action is what the slot is counted as so far.
func (s *Slot) Action() Action { return s.action }

// DropMalformed lets a backend settle a datagram it could not receive whole (larger
// than its buffer) before the stages see it.
func (s *Slot) DropMalformed() { s.Drop(ActionMalformed) }

// Batch is a batch of datagrams received together. The backend sizes Slots once and
// reuses them; N says how many are in use.
type Batch struct {
	Slots []Slot
	N     int
	Now   int64 // when the batch was received, unix nanoseconds: the clock of housekeeping
}

// TimeOf is when slot s's datagram was received (Slot.Time), or the batch's Now when
// the backend did not say. A packet's own time orders it against packets other
// workers received: flows, duplicates and pcap records use it.
func (b *Batch) TimeOf(s *Slot) int64 {
	if s.Time != 0 {
		return s.Time
	}
	return b.Now
}

// NewBatch makes a batch of capacity n.
func NewBatch(n int) *Batch { return &Batch{Slots: make([]Slot, n)} }

// Reset clears what the stages learned of the slot's previous datagram.
func (s *Slot) Reset() {
	buf := s.Buf
	*s = Slot{Buf: buf}
}

// Stage is one step of the pipeline, applied to a whole batch. A stage skips slots
// that an earlier stage settled (Slot.Settled). Stages are shared by all workers:
// per-worker state lives in the Worker passed in (see WorkerStage).
type Stage interface {
	Process(w *Worker, b *Batch)
}

// WorkerStage is a Stage with state of its own in each worker (scratch buffers,
// counters): NewWorkerState makes one worker's, and the stage finds it with
// Worker.StageState while it processes a batch. Only that worker touches it, so it
// needs no locks while processing. Counts meant for scrapes are published: a state
// that is a Publisher has Publish called after each batch, on the worker, to copy
// its plain counts to atomics that Pipeline.StageStates' callers read.
type WorkerStage interface {
	Stage
	NewWorkerState() any
}

// Publisher is a worker's stage state that publishes its counts after each batch
// (the pipeline's own counters do the same: plain fields during a batch, atomics
// once per batch, so nothing shared is touched per packet).
type Publisher interface {
	Publish()
}

// Backend moves datagrams between the network and the pipeline.
type Backend interface {
	// Name says which backend and reply path is in use, for logs and the demo.
	Name() string
	// Run receives batches on each of its workers, runs the pipeline over them and
	// sends the datagrams whose verdict is VerdictReturn, until ctx ends. ready is
	// called once every socket is open.
	Run(ctx context.Context, p *Pipeline, ready func()) error
}
