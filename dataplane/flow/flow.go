// Package flow is the flow table: one entry for both directions of a flow, scoped by
// tunnel identity, with TCP state, GWLB idle timeouts and a bounded size.
package flow

import (
	"log/slog"
	"net/netip"
	"time"

	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

// Key identifies a flow in both directions: the two endpoints are stored in canonical
// order, (Lo, LoPort) not greater than (Hi, HiPort).
type Key struct {
	Scope          uint64 // tunnel identity: the GWLB endpoint ENI id
	Proto          uint8
	Lo, Hi         netip.Addr
	LoPort, HiPort uint16
}

// State is a flow's protocol state, named as Suricata's EVE flow.state.
type State uint8

const (
	StateNew         State = iota // one direction seen (TCP: SYN sent)
	StateEstablished              // both directions seen (TCP: handshake answered)
	StateClosing                  // TCP: a FIN seen
	StateClosed                   // TCP: FIN both ways, or RST
)

func (s State) String() string {
	switch s {
	case StateEstablished:
		return "established"
	case StateClosing:
		return "closing"
	case StateClosed:
		return "closed"
	}
	return "new"
}

// EndReason says why a flow record was emitted, named as Suricata's flow.reason.
type EndReason uint8

const (
	EndTimeout  EndReason = iota // idle past its timeout (or closed and lingered)
	EndForced                    // evicted because the table was full, or replaced
	EndShutdown                  // the process is stopping
)

func (r EndReason) String() string {
	switch r {
	case EndForced:
		return "forced"
	case EndShutdown:
		return "shutdown"
	}
	return "timeout"
}

// Record is a flow as handed to outputs when it ends, or to Config.OnInterval while it
// lives: a copy, valid during the call. Src/Dst are oriented as the flow's first
// packet (the client). In a record of a live flow (Table.Interval), End is the flow's
// latest packet so far, State its current state, and Reason is zero and meaningless.
type Record struct {
	ID                           uint64
	Proto                        uint8
	Src, Dst                     netip.Addr
	SrcPort, DstPort             uint16
	Start, End                   time.Time // first and last packet
	PktsToServer, PktsToClient   uint64
	BytesToServer, BytesToClient uint64
	State                        State
	Reason                       EndReason
	TCPFlagsToServer             uint8 // union of flags seen client to server
	TCPFlagsToClient             uint8
	Action                       policy.Action // ACL verdict decided at the first packet
	Rule                         int           // index of the matching rule or policy.NoRule
	AWS                          geneve.AWS    // newest GWLB options seen on the flow
	// Background is set when Expire, Flush or Interval emitted the record, on a
	// housekeeping goroutine: the receiver may wait for room in its queue rather than
	// drop. Records emitted while tracking a packet (evictions, restarts) must not
	// block the packet worker.
	Background bool
	Tunnel     Tunnel // outer addressing of the flow's first packet
	Direction  uint8  // mirror direction of the client's packets (Meta.Direction of the first packet)
	Session    uint16 // mirror session index of the first packet (0 = none)
	Alerts     uint32 // alerts raised on the flow (Table.NoteAlert)
}

// Encapsulations in Tunnel.Encap.
const (
	EncapNone   uint8 = iota // not tunnelled, or unknown
	EncapGeneve              // GENEVE (GWLB)
	EncapVXLAN               // VXLAN (VPC Traffic Mirroring)
)

// Mirror directions in Meta.Direction and Record.Direction, relative to the mirrored ENI.
const (
	DirectionUnknown uint8 = iota
	DirectionIngress       // towards the ENI
	DirectionEgress        // from the ENI
)

// Tunnel is the outer addressing of a tunnelled packet. Addresses are kept without
// their zone.
type Tunnel struct {
	Encap            uint8 // EncapNone, EncapGeneve or EncapVXLAN
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	VNI              uint32
}

// Meta is what the pipeline knows of a packet besides its inner headers.
type Meta struct {
	AWS       *geneve.AWS // GWLB options, nil if none
	Tunnel    Tunnel
	Direction uint8  // mirror direction of this packet relative to the mirrored ENI: 0 unknown, 1 ingress, 2 egress
	Session   uint16 // mirror session index (0 = none)
}

// Delta is a flow's traffic within one aggregation interval (see Table.Interval).
type Delta struct {
	PktsToServer, PktsToClient, BytesToServer, BytesToClient uint64
	// First and last packet each way within the interval; zero when no packet that way.
	FirstToServer, LastToServer, FirstToClient, LastToClient time.Time
}

// Decider decides a new flow's action from its first packet; *policy.Policy is one.
type Decider interface {
	Decide(p *packet.Packet) (policy.Action, int)
}

// Config bounds the table. Zero durations take the GWLB defaults.
type Config struct {
	// MaxFlows bounds the table. A new flow in a full shard evicts one: a flow idle
	// past its timeout, else the least recently seen unanswered flow (StateNew),
	// else closed, else any. Memory grows with the flows, up to this bound.
	MaxFlows      int
	TCPTimeout    time.Duration // default 350 s, GWLB's TCP idle timeout
	OtherTimeout  time.Duration // default 120 s, GWLB's idle timeout for the rest
	ClosedTimeout time.Duration // default 5 s: how long a closed TCP flow lingers for stray segments
	// NodeID (0..MaxNodeID; higher bits are ignored) goes in the top bits of the flow
	// ids this table hands out, so that nodes of a fleet with different NodeIDs never
	// give one flow_id to two flows. Ids stay below 2^53.
	NodeID uint16
	// SideSize is the size in bytes of a per-flow side record that later stages
	// (detection) keep beside the table's entry; see Table.WithSide. 0: none.
	SideSize int
	// SideRecord, when set, adds to an ended or reported flow's record what its side
	// record holds (detection's alert count): it runs with the flow's shard locked,
	// as WithSide's callbacks do.
	SideRecord func(side []byte, r *Record)
	// Journal, when not nil, receives per shard, in order and in batches, what a peer
	// needs to know to take the flows over (see FlowState): each flow created, each
	// change of its TCP state, verdict (SetAction) or GWLB options, a refresh of its
	// last packet time at most once per JournalRefresh, and its end. events are valid
	// only during the call. It is called without table locks, often from a packet
	// worker, so it must not block: copy the events to a queue and drop when it is
	// full. Events are collected under the shard lock into a bounded buffer; those
	// that find it full, while another call delivers, are counted in JournalLost.
	// Flows installed by Import are not journaled until they carry traffic here.
	Journal func(shard int, events []FlowState)
	// JournalRefresh bounds the refresh events of a flow; default 10 s.
	JournalRefresh time.Duration
	// Midstream says what becomes of a TCP packet without SYN that matches no flow
	// (its flow was evicted, expired, or began on another node): MidstreamAllow
	// (default) creates the flow, oriented by the best evidence of who is the server;
	// MidstreamDrop drops it and creates nothing. Result.Midstream marks both.
	Midstream MidstreamMode
	Logger    *slog.Logger // for eviction notices (rate-limited); nil means slog.Default()
	// OnInterval, when not nil, receives each flow's traffic per aggregation interval:
	// from Table.Interval for live flows, and once more, just before onEnd, for a
	// flow that ends with traffic not yet reported. r and d are valid only during the
	// call; it is never called with a table lock held, but synchronously from Track,
	// Expire, Flush and Interval, so it should be quick (hand the record to a queue).
	// When nil, the table keeps no per-interval counters.
	OnInterval func(r *Record, d *Delta)
}

// MidstreamMode is Config.Midstream (flows.midstream).
type MidstreamMode uint8

const (
	MidstreamAllow MidstreamMode = iota
	MidstreamDrop
)

func (m MidstreamMode) String() string {
	if m == MidstreamDrop {
		return "drop"
	}
	return "allow"
}

// JournalKind says what a journal event reports.
type JournalKind uint8

const (
	JournalCreated   JournalKind = iota // a new flow
	JournalChanged                      // TCP state, verdict or GWLB options changed
	JournalRefreshed                    // only Last moved
	JournalEnded                        // the flow ended here
)

func (k JournalKind) String() string {
	switch k {
	case JournalChanged:
		return "changed"
	case JournalRefreshed:
		return "refreshed"
	case JournalEnded:
		return "ended"
	}
	return "created"
}

// FlowState is a flow as a peer needs it to carry on where this node stopped: the
// journal reports it, Table.Import installs it, so that a peer can replay a journal.
// Src/Dst are oriented client to server. Counters are not part of it: each node
// reports the traffic it saw.
type FlowState struct {
	Kind             JournalKind
	ID               uint64
	Scope            uint64 // tunnel scope, as given to TrackMeta
	Proto            uint8
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Start, Last      int64 // first and newest packet, unix ns
	State            State
	Action           policy.Action
	Rule             int
	AWS              geneve.AWS
	Tunnel           Tunnel
	Direction        uint8
	Session          uint16
}

// MaxNodeID is the largest Config.NodeID.
const MaxNodeID = 1<<nodeBits - 1

// NodeOfID returns the Config.NodeID of the table that gave out flow id id.
func NodeOfID(id uint64) uint16 { return uint16(id >> idBits) }

// Result is what Track tells the pipeline about the packet it accounted.
type Result struct {
	Action   policy.Action
	FlowID   uint64
	Created  bool // this packet started the flow
	ToServer bool // the packet goes client to server
	Handle   Handle
	// Midstream is set when no flow matched a TCP packet that does not open a
	// connection (anything but a bare SYN). With MidstreamDrop and no SYN flag, no
	// flow was created: FlowID is 0 and Action drop. Otherwise the flow was created
	// from it, and ToServer says which side it took the sender for.
	Midstream bool
	// State is the flow's state after this packet, and Packets the packets it
	// has carried both ways so far, this one included: what a backend that
	// can answer a flow's packets itself (the XDP fast path) decides by.
	State   State
	Packets uint64
	// Replaced says that this packet ended a flow with the same key (a SYN
	// restarting a closing flow, another GWLB flow cookie, an idle timeout
	// Expire had not run for) before creating this one: a backend answering
	// the old flow's packets itself must stop.
	Replaced bool
}

// Credit is traffic a flow carried that the pipeline never saw, because a
// backend answered it in the kernel (the AF_XDP backend's XDP fast path):
// Table.Credit adds it to the flow as if its packets had been tracked.
type Credit struct {
	// Packets and Bytes per direction: index 0 client to server, 1 server to
	// client. Bytes count as TrackMeta's length does (the inner packet).
	Packets, Bytes [2]uint64
	// Last is the newest of the packets, unix ns. First, when not zero, is
	// the earliest they can be (the previous credit's time): the flow-log
	// interval's first-packet time is taken from it.
	First, Last int64
}

// Handle names a flow for Table.SetAction and Table.WithSide after TrackMeta
// returned: it finds the flow's entry without a lookup, and carries the flow id, so
// a handle to a flow that has since ended (its entry perhaps reused) does nothing.
// The zero Handle names no flow.
type Handle struct {
	id    uint64
	shard uint32
	idx   int32
}

// FlowID returns the id of the flow h names.
func (h Handle) FlowID() uint64 { return h.id }
