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

// Record is a flow as handed to outputs when it ends: a copy, owned by the receiver.
// Src/Dst are oriented as the flow's first packet (the client).
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
}

// Decider decides a new flow's action from its first packet; *policy.Policy is one.
type Decider interface {
	Decide(p *packet.Packet) (policy.Action, int)
}

// Config bounds the table. Zero durations take the GWLB defaults.
type Config struct {
	MaxFlows      int           // at most this many flows; the least recently seen is evicted
	TCPTimeout    time.Duration // default 350 s, GWLB's TCP idle timeout
	OtherTimeout  time.Duration // default 120 s, GWLB's idle timeout for the rest
	ClosedTimeout time.Duration // default 5 s: how long a closed TCP flow lingers for stray segments
	Logger        *slog.Logger  // for eviction notices (rate-limited); nil means slog.Default()
}

// Result is what Track tells the pipeline about the packet it accounted.
type Result struct {
	Action   policy.Action
	FlowID   uint64
	Created  bool // this packet started the flow
	ToServer bool // the packet goes client to server
}
