// Package gwlb simulates an AWS Gateway Load Balancer in front of weir targets.
//
// Run sends synthetic traffic to the targets as GWLB does: IPv4 (or IPv6) UDP
// datagrams to the target's GENEVE port, from the GWLB's address (Config.Local) and an
// ephemeral source port P that is fixed per flow, carrying a GENEVE header (version 0,
// VNI 0, protocol 0x0800 or 0x86DD, the three AWS options) and a real inner IPv4 or
// IPv6 packet with valid checksums. It listens on Local:ListenPort (6081) for what the
// targets return, and checks that every returned datagram is byte-identical to the one
// sent, came from the target the flow was sent to and from source port P. Packets the
// target does not return are counted as dropped.
//
// Like GWLB it health-checks targets over HTTP (2xx and 3xx are healthy) and hashes
// each new flow's 5-tuple onto the healthy targets; a flow then stays on its target.
// What happens to a target's existing flows when it turns unhealthy follows GWLB's
// target_failover attribute (Config.Failover): with NoRebalance (AWS's default) they
// keep going to it; with Rebalance they, and only they, are rehashed over the healthy
// targets mid-stream, keeping their GENEVE header (endpoint, attachment, cookie) and
// source port, and stay on their new target when the old one recovers.
//
// Everything runs unprivileged on ordinary UDP sockets. Choosing addresses:
//
//   - Local must differ from the targets' addresses when they share a host, because
//     both sides use port 6081 (the GWLB listens on Local:6081 for returns, the target
//     on target:6081): on loopback use for example 127.0.0.2 for the GWLB and
//     127.0.0.1 for weir. Use a specific Local, not 0.0.0.0, when a target on the
//     same host binds the ListenPort.
//   - A target returns a packet from target:P to Local:ListenPort, where P is the
//     source port it came from; Local's ephemeral ports P do not collide with the
//     target's own sockets as long as the addresses differ.
//   - The outer packets are IPv4 like GWLB's (IPv6 works if Local and the targets are
//     IPv6). Jumbo packets need an MTU of at least JumboLen+60 on the path (GWLB
//     requires 8500-byte inner packets; loopback's MTU is 65536).
package gwlb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"weir/dataplane/packet"
	"weir/geneve"
	"weir/sim/synth"
)

// Target is one appliance behind the simulated GWLB.
type Target struct {
	Addr      netip.AddrPort // appliance GENEVE address, port usually 6081
	HealthURL string         // "" = always healthy
}

// IPv4Only is an IPv6Share value that makes every flow IPv4 (a zero IPv6Share means
// the default, 0.5).
const IPv4Only = -1.0

// Failover is GWLB's target_failover attribute: what happens to the existing flows of
// a target that turns unhealthy.
type Failover string

const (
	// NoRebalance keeps sending a target's existing flows to it after it turns
	// unhealthy (AWS's default: they go on until the target is deregistered or the
	// flows time out); only new flows avoid it.
	NoRebalance Failover = "no_rebalance"
	// Rebalance rehashes the existing flows of a target that turns unhealthy over the
	// healthy targets, from their next packet on (mid-stream, without a new SYN). Flows
	// on other targets do not move, and moved flows do not move back when the target
	// recovers.
	Rebalance Failover = "rebalance"
)

// Config describes a simulation run. Zero values mean the documented defaults.
type Config struct {
	Targets []Target
	// Local is the GWLB's address: the source of the GENEVE datagrams (sockets bound to
	// Local:0, one ephemeral port per socket) and the address of the reply listener.
	// Invalid = 0.0.0.0. It must be of the targets' address family.
	Local      netip.Addr
	ListenPort uint16 // reply listener port; default 6081

	Flows          int // synthetic flows (default 100)
	PacketsPerFlow int // default 10; TCP: SYN, SYN-ACK, data..., FIN-ACK; directions alternate
	// ActiveFlows is how many flows are open at once (default 1000, at most Flows).
	// Packets are sent round-robin over the open flows; a finished flow is replaced by
	// a new one.
	ActiveFlows int
	Rate        int // packets per second over all flows; 0 = as fast as the socket allows
	// IPv6Share is the fraction of flows with IPv6 inner packets: 0 = default 0.5,
	// negative (IPv4Only) = none, 1 = all.
	IPv6Share  float64
	Protos     []string // subset of "tcp", "udp", "icmp" (ICMP or ICMPv6 by family; "icmpv6" is an alias); default all
	JumboEvery int      // every Nth packet overall has a JumboLen-byte inner packet; 0 = never
	Endpoints  int      // distinct GWLB endpoint ENI ids (default 2), each with its own attachment id
	// DeniedSources, when set, makes every 10th flow (the first, the 11th, ...) use a
	// client address from one of these prefixes (the flow's family follows the
	// prefix), so that ACL tests have traffic to deny.
	DeniedSources []netip.Prefix
	Ports         []uint16 // server ports for TCP and UDP (default 22, 23, 53, 80, 443, 8080)
	Seed          int64    // seeds flows, addresses, ports and sizes (same seed, same flows)
	// SourcePorts is the number of source sockets (ephemeral ports P); a flow always
	// sends from the same one. Default 32 (at most Flows).
	SourcePorts int
	// ReplyTimeout is how long to wait for outstanding replies after the last send
	// (default 1 s). A packet not returned within ReplyTimeout of being sent is counted
	// as dropped; if it still returns later, it also counts as mismatched ("late").
	ReplyTimeout time.Duration
	// MaxOutstanding bounds the packets sent and not yet returned or expired; the
	// sender waits when it is reached (default 100000). With Rate 0 the sender outruns
	// a target's socket buffer and the excess is lost (counted as Dropped); a small
	// value (a few hundred) makes a full-speed run closed-loop and lossless against a
	// target that returns everything, at the cost of stalling for ReplyTimeout when
	// that many packets are denied at once.
	MaxOutstanding int

	// Health checks: GET HealthURL every HealthInterval (default 1 s) with a
	// HealthTimeout (default 2 s); 200-399 passes. A target becomes healthy after
	// HealthyThreshold (default 2) consecutive passes and unhealthy after
	// UnhealthyThreshold (default 2) consecutive failures. Unlike AWS, the first check
	// decides the initial state on its own, so a run does not wait several intervals
	// before it starts. Run waits for every target's first check and then for at least
	// one healthy target before sending (bounded by ctx).
	HealthInterval     time.Duration
	HealthTimeout      time.Duration
	HealthyThreshold   int
	UnhealthyThreshold int
	// Failover is NoRebalance (the default, "" means it) or Rebalance.
	Failover Failover

	PerFlow bool // fill Report.Flows
	// Progress, if non-nil, is called about once a second from another goroutine while
	// sending and draining, with a report without Flows.
	Progress func(Report)
}

// Latency holds send-to-return latency percentiles in microseconds, over a uniform
// sample of at most 100000 returned packets.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Report is the outcome of a run (or a progress snapshot).
type Report struct {
	Sent       uint64 `json:"sent"`
	Returned   uint64 `json:"returned"`   // returned byte-identical, from the right target and port
	Dropped    uint64 `json:"dropped"`    // sent and not returned (within ReplyTimeout / by the end)
	Mismatched uint64 `json:"mismatched"` // returned datagrams that failed a check, or unknown ones
	Unhealthy  uint64 `json:"unhealthy"`  // not sent because no target was healthy
	// Outstanding is sent packets still waiting for their return (progress reports;
	// 0 in the final report, where they count as Dropped).
	Outstanding uint64 `json:"outstanding"`
	SendErrors  uint64 `json:"send_errors"` // failed socket writes (not counted as sent)
	Jumbo       uint64 `json:"jumbo"`       // jumbo packets sent
	// SentBytes and ReturnedBytes count GENEVE datagrams (UDP payloads).
	SentBytes     uint64 `json:"sent_bytes"`
	ReturnedBytes uint64 `json:"returned_bytes"`
	// DeniedSent and DeniedReturned count the packets of DeniedSources flows.
	DeniedSent     uint64 `json:"denied_sent"`
	DeniedReturned uint64 `json:"denied_returned"`
	// Failover is Config.Failover.
	Failover Failover `json:"failover"`
	// Rehashed counts flow moves off a target that turned unhealthy (Rebalance); a flow
	// whose new target fails too moves again and counts again. MovedFlows counts the
	// flows that moved at least once, and Moves breaks the moves down by old and new
	// target.
	Rehashed   uint64 `json:"rehashed"`
	MovedFlows uint64 `json:"moved_flows"`
	Moves      []Move `json:"moves,omitempty"`
	// MovedFlowsLost counts the moved flows that lost at least one packet sent after
	// their first move (to the new target), and LostAfterMove those packets. Packets
	// sent to the old target before the move are not in them: they are in Dropped.
	MovedFlowsLost uint64 `json:"moved_flows_lost"`
	LostAfterMove  uint64 `json:"lost_after_move"`
	// WrongTarget counts returned packets that came from the address of a target other
	// than the one they were sent to (also in Mismatched, reason wrong_target). Targets
	// are told apart by address: a target replies from its address and the source
	// port P the packet came from, not from its GENEVE port.
	WrongTarget uint64 `json:"wrong_target"`
	// SentToUnhealthy counts packets of existing flows sent to a target that was
	// unhealthy at the time (NoRebalance).
	SentToUnhealthy uint64 `json:"sent_to_unhealthy"`
	// MismatchReasons breaks Mismatched down: malformed, unknown, late_or_duplicate,
	// wrong_target, wrong_source_addr, wrong_source_port, bytes_differ.
	MismatchReasons map[string]uint64 `json:"mismatch_reasons,omitempty"`
	LatencyUS       Latency           `json:"latency_us"`
	// Targets is keyed by Target.Addr.String().
	Targets  map[string]TargetReport `json:"targets"`
	Flows    []FlowReport            `json:"flows,omitempty"` // when Config.PerFlow
	Elapsed  time.Duration           `json:"-"`               // from the first send to the end of draining
	ElapsedS float64                 `json:"elapsed_s"`       // Elapsed in seconds
	PPS      float64                 `json:"pps"`             // Sent / Elapsed
}

// Move counts the flows moved from one target to another (Report.Moves).
type Move struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Flows uint64 `json:"flows"`
}

// TargetReport is one target's share of a run.
type TargetReport struct {
	Sent           uint64 `json:"sent"`
	Returned       uint64 `json:"returned"`
	Dropped        uint64 `json:"dropped"`
	Mismatched     uint64 `json:"mismatched"`
	Flows          int    `json:"flows"` // flows assigned to it (at the end)
	Healthy        bool   `json:"healthy"`
	HealthChecks   uint64 `json:"health_checks"`
	HealthFailures uint64 `json:"health_failures"`
	MovedOut       uint64 `json:"moved_out"`      // flows moved off it (Rebalance)
	MovedIn        uint64 `json:"moved_in"`       // flows moved onto it (Rebalance)
	SentUnhealthy  uint64 `json:"sent_unhealthy"` // packets sent to it while unhealthy (NoRebalance)
}

// FlowReport is one flow. Src is the client (initiator) and Dst the server; for ICMP,
// SrcPort is the echo identifier and DstPort 0.
type FlowReport struct {
	Proto       string     `json:"proto"` // tcp, udp, icmp, icmpv6
	Src         netip.Addr `json:"src"`
	Dst         netip.Addr `json:"dst"`
	SrcPort     uint16     `json:"src_port"`
	DstPort     uint16     `json:"dst_port"`
	Endpoint    uint64     `json:"endpoint"`
	Attachment  uint64     `json:"attachment"`
	Cookie      uint32     `json:"cookie"`
	SourcePort  uint16     `json:"source_port"`  // the GWLB's outer UDP source port P
	Target      string     `json:"target"`       // the final target; "" if never sent
	FirstTarget string     `json:"first_target"` // the target of its first packet; "" if never sent
	Moved       bool       `json:"moved"`        // moved off a target that turned unhealthy
	Moves       int        `json:"moves"`        // times it moved
	// LostAfterMove counts its packets sent after its first move and not returned.
	LostAfterMove uint64 `json:"lost_after_move"`
	Denied        bool   `json:"denied"` // client address from DeniedSources
	Sent          uint64 `json:"sent"`
	Returned      uint64 `json:"returned"`
	Dropped       uint64 `json:"dropped"`
	Mismatched    uint64 `json:"mismatched"`
}

const maxLatencySamples = 100000

// progressEvery is the period of Config.Progress calls (a variable for tests).
var progressEvery = time.Second

var defaultPorts = []uint16{22, 23, 53, 80, 443, 8080}

func (c *Config) setDefaults() error {
	if len(c.Targets) == 0 {
		return errors.New("gwlbsim: no targets")
	}
	if !c.Local.IsValid() {
		c.Local = netip.IPv4Unspecified()
	}
	c.Local = c.Local.Unmap()
	seen := map[netip.AddrPort]bool{}
	for i, t := range c.Targets {
		if !t.Addr.IsValid() || t.Addr.Port() == 0 {
			return fmt.Errorf("gwlbsim: target %d: invalid address %v", i, t.Addr)
		}
		a := netip.AddrPortFrom(t.Addr.Addr().Unmap(), t.Addr.Port())
		if a.Addr().Is4() != c.Local.Is4() {
			return fmt.Errorf("gwlbsim: target %v and local address %v differ in family", a, c.Local)
		}
		if seen[a] {
			return fmt.Errorf("gwlbsim: duplicate target %v", a)
		}
		seen[a] = true
		c.Targets[i].Addr = a
	}
	if c.ListenPort == 0 {
		c.ListenPort = geneve.Port
	}
	if c.Flows < 0 || c.PacketsPerFlow < 0 || c.Rate < 0 || c.JumboEvery < 0 || c.Endpoints < 0 ||
		c.ActiveFlows < 0 || c.SourcePorts < 0 || c.MaxOutstanding < 0 ||
		c.HealthyThreshold < 0 || c.UnhealthyThreshold < 0 {
		return errors.New("gwlbsim: negative count in config")
	}
	if c.Flows == 0 {
		c.Flows = 100
	}
	if c.PacketsPerFlow == 0 {
		c.PacketsPerFlow = 10
	}
	if c.ActiveFlows == 0 {
		c.ActiveFlows = 1000
	}
	c.ActiveFlows = min(c.ActiveFlows, c.Flows)
	switch {
	case c.IPv6Share == 0:
		c.IPv6Share = 0.5
	case c.IPv6Share < 0:
		c.IPv6Share = 0
	case c.IPv6Share > 1 || math.IsNaN(c.IPv6Share):
		return fmt.Errorf("gwlbsim: IPv6Share %v out of range", c.IPv6Share)
	}
	if len(c.Protos) == 0 {
		c.Protos = []string{"tcp", "udp", "icmp"}
	}
	for _, p := range c.Protos {
		switch p {
		case "tcp", "udp", "icmp", "icmpv6":
		default:
			return fmt.Errorf("gwlbsim: unknown protocol %q (want tcp, udp or icmp)", p)
		}
	}
	if c.Endpoints == 0 {
		c.Endpoints = 2
	}
	for _, p := range c.DeniedSources {
		if !p.IsValid() {
			return errors.New("gwlbsim: invalid denied source prefix")
		}
	}
	if len(c.Ports) == 0 {
		c.Ports = defaultPorts
	}
	if c.SourcePorts == 0 {
		c.SourcePorts = 32
	}
	c.SourcePorts = min(c.SourcePorts, c.Flows)
	if c.ReplyTimeout <= 0 {
		c.ReplyTimeout = time.Second
	}
	if c.MaxOutstanding == 0 {
		c.MaxOutstanding = 100000
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = time.Second
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = 2 * time.Second
	}
	if c.HealthyThreshold == 0 {
		c.HealthyThreshold = 2
	}
	if c.UnhealthyThreshold == 0 {
		c.UnhealthyThreshold = 2
	}
	switch c.Failover {
	case "":
		c.Failover = NoRebalance
	case NoRebalance, Rebalance:
	default:
		return fmt.Errorf("gwlbsim: unknown failover %q (want rebalance or no_rebalance)", c.Failover)
	}
	return nil
}

type target struct {
	addr netip.AddrPort
	key  string
	url  string

	healthy atomic.Bool
	downs   atomic.Uint64 // times it turned from healthy to unhealthy
	first   chan struct{} // closed after the first health check

	// guarded by runner.mu
	sent, returned, dropped, mismatched uint64
	flows                               int
	checks, failures                    uint64
	movedOut, movedIn, sentUnhealthy    uint64
}

// setHealthy records a health decision.
func (t *target) setHealthy(ok bool) {
	if t.healthy.Swap(ok) && !ok {
		t.downs.Add(1)
	}
}

type pend struct {
	seq    uint64
	buf    []byte
	f      *flow
	t      *target
	port   uint16 // source port P the packet left from
	at     time.Time
	pooled bool
}

type runner struct {
	cfg     Config
	rng     *rand.Rand // sender only
	fill    []byte
	payload []byte // scratch for a packet's transport payload, sender only
	socks   []*net.UDPConn
	ports   []uint16
	ln      *net.UDPConn
	targets []*target
	eps     []geneve.AWS // endpoint and attachment ids
	active  map[synth.Tuple]bool
	pool    sync.Pool
	healthy []int  // scratch for pick
	seq     uint64 // next sequence number, sender only

	mu       sync.Mutex
	cond     *sync.Cond
	pending  map[uint64]pend
	seqBase  uint64
	nextSeq  uint64 // sequence numbers below it have been sent
	oldest   uint64 // sweep position
	waiting  bool
	lastSend time.Time
	start    time.Time
	rep      Report // counters; Targets, Flows, latency filled by snapshot
	reasons  map[string]uint64
	lat      []float64
	latN     uint64
	latRng   *rand.Rand
	flows    []*flow // when PerFlow
	moves    map[[2]int]uint64
	recvErr  error
}

// testSendHook, when set, is called by the sender before each packet with the number
// of packets generated so far, counting this one (tests use it to act at a point of
// the run).
var testSendHook func(k uint64)

// Run simulates the GWLB until every flow is sent and the replies are in (or
// ReplyTimeout has passed since the last send), or until ctx is done. It returns the
// report so far together with any error, including ctx.Err().
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.Targets = slices.Clone(cfg.Targets)
	if err := cfg.setDefaults(); err != nil {
		return Report{}, err
	}
	r := &runner{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6777_6c62_7369_6d31)),
		latRng:  rand.New(rand.NewPCG(uint64(cfg.Seed), 2)),
		active:  map[synth.Tuple]bool{},
		pending: map[uint64]pend{},
		reasons: map[string]uint64{},
		moves:   map[[2]int]uint64{},
	}
	r.cond = sync.NewCond(&r.mu)
	r.pool.New = func() any { b := make([]byte, 0, 2048); return &b }
	r.fill = make([]byte, 4096)
	for i := range r.fill {
		r.fill[i] = byte(r.rng.Uint32())
	}
	r.payload = make([]byte, JumboLen)
	// Sequence numbers start at a time-derived value so that a late return from an
	// earlier run cannot match a packet of this one.
	r.seqBase = uint64(time.Now().UnixNano())
	r.seq, r.nextSeq, r.oldest = r.seqBase, r.seqBase, r.seqBase
	for i := 0; i < cfg.Endpoints; i++ {
		r.eps = append(r.eps, geneve.AWS{EndpointID: r.rng.Uint64(), AttachmentID: r.rng.Uint64()})
	}
	for _, t := range cfg.Targets {
		tt := &target{addr: t.Addr, key: t.Addr.String(), url: t.HealthURL, first: make(chan struct{})}
		r.targets = append(r.targets, tt)
	}

	network := "udp4"
	if cfg.Local.Is6() {
		network = "udp6"
	}
	ln, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.Local, cfg.ListenPort)))
	if err != nil {
		return Report{}, fmt.Errorf("gwlbsim: reply listener: %w", err)
	}
	r.ln = ln
	_ = ln.SetReadBuffer(8 << 20)
	defer ln.Close()
	for i := 0; i < cfg.SourcePorts; i++ {
		c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.Local, 0)))
		if err != nil {
			for _, c := range r.socks {
				c.Close()
			}
			return Report{}, fmt.Errorf("gwlbsim: source socket: %w", err)
		}
		_ = c.SetWriteBuffer(1 << 20)
		r.socks = append(r.socks, c)
		r.ports = append(r.ports, c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	}
	defer func() {
		for _, c := range r.socks {
			c.Close()
		}
	}()

	hc := newHealthClient(cfg.HealthTimeout)
	defer hc.CloseIdleConnections()
	// Background goroutines stop with bg.
	bg, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		stop()
		ln.Close()
		wg.Wait()
	}()
	for _, t := range r.targets {
		if t.url == "" {
			t.setHealthy(true)
			close(t.first)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.health(bg, hc, t)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.receive()
	}()
	defer context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})()

	if err := r.waitHealthy(ctx); err != nil {
		return r.final(), err
	}

	r.mu.Lock()
	r.start = time.Now()
	r.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.sweep(bg)
	}()
	if cfg.Progress != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(progressEvery)
			defer t.Stop()
			for {
				select {
				case <-bg.Done():
					return
				case <-t.C:
					cfg.Progress(r.snapshot(false))
				}
			}
		}()
	}

	r.send(ctx)
	r.drain(ctx)

	stop()
	ln.Close()
	wg.Wait()
	rep := r.final()
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if r.recvErr != nil {
		return rep, fmt.Errorf("gwlbsim: reply listener: %w", r.recvErr)
	}
	if rep.Sent == 0 && rep.SendErrors > 0 {
		return rep, errors.New("gwlbsim: every send failed")
	}
	return rep, nil
}

// newFlow creates flow number idx with a 5-tuple not used by any open flow.
func (r *runner) newFlow(idx int) *flow {
	cfg := &r.cfg
	rng := r.rng
	f := &flow{Conversation: synth.Conversation{Packets: cfg.PacketsPerFlow}, idx: idx, target: -1, first: -1}
	for try := 0; ; try++ {
		proto := cfg.Protos[rng.IntN(len(cfg.Protos))]
		f.denied = len(cfg.DeniedSources) > 0 && idx%10 == 0
		if f.denied {
			p := cfg.DeniedSources[rng.IntN(len(cfg.DeniedSources))]
			f.Client = randAddrIn(rng, p)
			f.V6 = f.Client.Is6()
		} else {
			f.V6 = rng.Float64() < cfg.IPv6Share
			if f.V6 {
				f.Client = randAddrIn(rng, clientNet6)
			} else {
				f.Client = randAddrIn(rng, clientNet4)
			}
		}
		if f.V6 {
			f.Server = randAddrIn(rng, serverNet6)
		} else {
			f.Server = randAddrIn(rng, serverNet4)
		}
		f.PickTransport(rng, proto, cfg.Ports)
		if !r.active[f.Tuple()] || try >= 100 {
			break
		}
	}
	r.active[f.Tuple()] = true
	ep := r.eps[rng.IntN(len(r.eps))]
	f.aws = geneve.AWS{EndpointID: ep.EndpointID, AttachmentID: ep.AttachmentID, FlowCookie: rng.Uint32()}
	proto := geneve.ProtoIPv4
	if f.V6 {
		proto = geneve.ProtoIPv6
	}
	f.hdr = geneve.AppendAWSHeader(nil, proto, f.aws)
	f.sock = idx % len(r.socks)
	f.hash = tupleHash(f.Proto, f.Client, f.Server, f.ClientPort, f.ServerPort)
	f.RandomizeState(rng)
	if r.cfg.PerFlow {
		r.mu.Lock()
		r.flows = append(r.flows, f)
		r.mu.Unlock()
	}
	return f
}

// payloadLen picks the transport payload length of the next packet of f.
func (r *runner) payloadLen(f *flow) int {
	switch f.Proto {
	case packet.ProtoTCP:
		if f.TCPFlags()&(packet.TCPSyn|packet.TCPFin) != 0 {
			return minPayload
		}
		if f.FromClient() {
			return minPayload + r.rng.IntN(200)
		}
		return minPayload + r.rng.IntN(1200)
	case packet.ProtoUDP:
		return minPayload + r.rng.IntN(500)
	default:
		return 56 // like ping
	}
}

// send sends every packet of every flow, round-robin over the open flows.
func (r *runner) send(ctx context.Context) {
	cfg := &r.cfg
	active := make([]*flow, 0, cfg.ActiveFlows)
	made := 0
	for made < cfg.Flows && len(active) < cfg.ActiveFlows {
		active = append(active, r.newFlow(made))
		made++
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var k uint64 // packets generated so far
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Second / time.Duration(cfg.Rate)
	}
	start := time.Now()
	for i := 0; len(active) > 0; {
		if ctx.Err() != nil {
			return
		}
		if interval > 0 {
			// Pace: packet k is due at start + k*interval; sleep only when ahead by
			// more than a timer's resolution.
			due := start.Add(time.Duration(k) * interval)
			if d := time.Until(due); d > 200*time.Microsecond {
				timer.Reset(d)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
		}
		k++
		if testSendHook != nil {
			testSendHook(k)
		}
		f := active[i]
		r.sendOne(ctx, f, cfg.JumboEvery > 0 && k%uint64(cfg.JumboEvery) == 0)
		if !f.Done() {
			i++
		} else {
			delete(r.active, f.Tuple())
			if made < cfg.Flows {
				active[i] = r.newFlow(made)
				made++
				i++
			} else {
				active[i] = active[len(active)-1]
				active = active[:len(active)-1]
			}
		}
		if i >= len(active) {
			i = 0
		}
	}
}

// pick returns the index of f's target, assigning or moving f when needed, or -1 when
// no target is healthy, and whether that target is unhealthy (an existing flow kept on
// it by NoRebalance). A new flow is hashed onto the healthy targets. An assigned
// flow stays on its target, except with Rebalance when the target has turned
// unhealthy since the flow was put on it: then it is hashed onto the other healthy
// targets (or stays, if there are none and its target is healthy again).
func (r *runner) pick(f *flow) (ti int, unhealthy bool) {
	if f.target >= 0 {
		t := r.targets[f.target]
		if r.cfg.Failover != Rebalance {
			return f.target, !t.healthy.Load()
		}
		// Load downs before healthy: a target that fails in between is seen as
		// failed by the next packet.
		if d := t.downs.Load(); d == f.downs && t.healthy.Load() {
			return f.target, false
		}
	}
	r.healthy = r.healthy[:0]
	for i, t := range r.targets {
		if i != f.target && t.healthy.Load() {
			r.healthy = append(r.healthy, i)
		}
	}
	if len(r.healthy) == 0 {
		if f.target >= 0 {
			t := r.targets[f.target]
			if d := t.downs.Load(); t.healthy.Load() {
				f.downs = d // recovered and the only healthy one: stay
				return f.target, false
			}
		}
		return -1, false
	}
	n := r.healthy[f.hash%uint64(len(r.healthy))]
	to := r.targets[n]
	f.downs = to.downs.Load()
	r.mu.Lock()
	if from := f.target; from >= 0 {
		r.targets[from].flows--
		r.targets[from].movedOut++
		to.movedIn++
		r.moves[[2]int{from, n}]++
		r.rep.Rehashed++
		if f.moves == 0 {
			r.rep.MovedFlows++
			f.moveSeq = r.seq // the next packet is the first after the move
		}
		f.moves++
	} else {
		f.first = n
	}
	to.flows++
	f.target = n // written under r.mu for snapshot; read here without it (sender only)
	r.mu.Unlock()
	return n, false
}

func (r *runner) sendOne(ctx context.Context, f *flow, jumbo bool) {
	ti, unhealthy := r.pick(f)
	if ti < 0 {
		f.Skip() // GWLB drops it; keep the flow's packet count
		r.mu.Lock()
		r.rep.Unhealthy++
		r.mu.Unlock()
		return
	}
	t := r.targets[ti]
	plen := r.payloadLen(f)
	var buf []byte
	var bp *[]byte
	if !jumbo {
		bp = r.pool.Get().(*[]byte)
		buf = (*bp)[:0]
	}

	seq := r.seq
	r.seq++
	buf = f.appendPacket(buf, seq, plen, jumbo, r.fill, r.payload)
	if bp != nil {
		*bp = buf
	}

	r.mu.Lock()
	for len(r.pending) >= r.cfg.MaxOutstanding && ctx.Err() == nil {
		r.waiting = true
		r.cond.Wait()
	}
	r.waiting = false
	if ctx.Err() != nil {
		r.mu.Unlock()
		if bp != nil {
			r.pool.Put(bp)
		}
		return
	}
	now := time.Now()
	r.pending[seq] = pend{seq: seq, buf: buf, f: f, t: t, port: r.ports[f.sock], at: now, pooled: bp != nil}
	r.nextSeq = seq + 1
	r.count(f, t, buf, jumbo, unhealthy, +1)
	r.lastSend = now
	r.mu.Unlock()

	if _, err := r.socks[f.sock].WriteToUDPAddrPort(buf, t.addr); err != nil {
		r.mu.Lock()
		if _, ok := r.pending[seq]; ok {
			delete(r.pending, seq)
			r.count(f, t, buf, jumbo, unhealthy, -1)
		}
		r.rep.SendErrors++
		r.mu.Unlock()
	}
}

// count adds (d=+1) or removes (d=-1) a sent packet; r.mu held.
func (r *runner) count(f *flow, t *target, buf []byte, jumbo, unhealthy bool, d int) {
	u := uint64(d) // wraps to subtract for -1
	if unhealthy {
		r.rep.SentToUnhealthy += u
		t.sentUnhealthy += u
	}
	r.rep.Sent += u
	r.rep.SentBytes += uint64(len(buf)) * u
	if jumbo {
		r.rep.Jumbo += u
	}
	if f.denied {
		r.rep.DeniedSent += u
	}
	f.sent += u
	t.sent += u
}

// release frees a pending slot; r.mu held.
func (r *runner) release(p pend) {
	if p.pooled {
		b := p.buf[:0]
		r.pool.Put(&b)
	}
	if r.waiting {
		r.cond.Signal()
	}
}

func (r *runner) mismatch(reason string, p *pend) {
	r.rep.Mismatched++
	r.reasons[reason]++
	if p != nil {
		p.f.mismatched++
		p.t.mismatched++
	}
}

// receive reads returned datagrams until the listener is closed.
func (r *runner) receive() {
	buf := make([]byte, 1<<16)
	for {
		n, from, err := r.ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.mu.Lock()
				r.recvErr = err
				r.mu.Unlock()
			}
			return
		}
		r.match(buf[:n], from, time.Now())
	}
}

func (r *runner) match(b []byte, from netip.AddrPort, now time.Time) {
	seq, err := SeqOf(b)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.mismatch("malformed", nil)
		return
	}
	p, ok := r.pending[seq]
	if !ok {
		if seq >= r.seqBase && seq < r.nextSeq {
			r.mismatch("late_or_duplicate", nil)
		} else {
			r.mismatch("unknown", nil)
		}
		return
	}
	delete(r.pending, seq)
	defer r.release(p)
	switch {
	case from.Addr().Unmap() != p.t.addr.Addr():
		if r.isTarget(from.Addr().Unmap()) {
			r.rep.WrongTarget++
			r.mismatch("wrong_target", &p)
		} else {
			r.mismatch("wrong_source_addr", &p)
		}
	case from.Port() != p.port:
		r.mismatch("wrong_source_port", &p)
	case !bytes.Equal(b, p.buf):
		r.mismatch("bytes_differ", &p)
	default:
		r.rep.Returned++
		r.rep.ReturnedBytes += uint64(len(b))
		if p.f.denied {
			r.rep.DeniedReturned++
		}
		p.f.returned++
		p.t.returned++
		us := float64(now.Sub(p.at).Nanoseconds()) / 1e3
		r.latN++
		if len(r.lat) < maxLatencySamples {
			r.lat = append(r.lat, us)
		} else if j := r.latRng.Uint64N(r.latN); j < maxLatencySamples {
			r.lat[j] = us
		}
	}
}

// isTarget reports whether a is the address of one of the targets.
func (r *runner) isTarget(a netip.Addr) bool {
	for _, t := range r.targets {
		if t.addr.Addr() == a {
			return true
		}
	}
	return false
}

// drop counts a pending packet as dropped; r.mu held, p already removed.
func (r *runner) drop(p pend) {
	r.rep.Dropped++
	p.f.dropped++
	p.t.dropped++
	if p.f.moves > 0 && p.seq >= p.f.moveSeq {
		if p.f.lostAfterMove == 0 {
			r.rep.MovedFlowsLost++
		}
		p.f.lostAfterMove++
		r.rep.LostAfterMove++
	}
	r.release(p)
}

// sweep expires packets outstanding for longer than ReplyTimeout.
func (r *runner) sweep(ctx context.Context) {
	every := min(r.cfg.ReplyTimeout/4, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		r.mu.Lock()
		for r.oldest < r.nextSeq {
			p, ok := r.pending[r.oldest]
			if ok {
				if now.Sub(p.at) < r.cfg.ReplyTimeout {
					break
				}
				delete(r.pending, r.oldest)
				r.drop(p)
			}
			r.oldest++
		}
		r.mu.Unlock()
	}
}

// drain waits until nothing is outstanding or ReplyTimeout has passed since the last
// send.
func (r *runner) drain(ctx context.Context) {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		r.mu.Lock()
		n, last := len(r.pending), r.lastSend
		r.mu.Unlock()
		if n == 0 || time.Since(last) >= r.cfg.ReplyTimeout {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// final counts what is still outstanding as dropped and returns the final report.
// Every goroutine but the caller has stopped.
func (r *runner) final() Report {
	r.mu.Lock()
	for seq, p := range r.pending {
		delete(r.pending, seq)
		r.drop(p)
	}
	r.mu.Unlock()
	return r.snapshot(true)
}

// snapshot returns the report so far; flows adds Report.Flows (when PerFlow).
func (r *runner) snapshot(flows bool) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.rep
	rep.Outstanding = uint64(len(r.pending))
	if len(r.reasons) > 0 {
		rep.MismatchReasons = make(map[string]uint64, len(r.reasons))
		for k, v := range r.reasons {
			rep.MismatchReasons[k] = v
		}
	}
	rep.Targets = make(map[string]TargetReport, len(r.targets))
	for _, t := range r.targets {
		rep.Targets[t.key] = TargetReport{
			Sent: t.sent, Returned: t.returned, Dropped: t.dropped, Mismatched: t.mismatched,
			Flows: t.flows, Healthy: t.healthy.Load(), HealthChecks: t.checks, HealthFailures: t.failures,
			MovedOut: t.movedOut, MovedIn: t.movedIn, SentUnhealthy: t.sentUnhealthy,
		}
	}
	rep.Failover = r.cfg.Failover
	rep.Moves = nil
	for k, n := range r.moves {
		rep.Moves = append(rep.Moves, Move{From: r.targets[k[0]].key, To: r.targets[k[1]].key, Flows: n})
	}
	slices.SortFunc(rep.Moves, func(a, b Move) int {
		if c := strings.Compare(a.From, b.From); c != 0 {
			return c
		}
		return strings.Compare(a.To, b.To)
	})
	if len(r.lat) > 0 {
		s := slices.Clone(r.lat)
		slices.Sort(s)
		pct := func(p float64) float64 {
			i := int(math.Ceil(p*float64(len(s)))) - 1
			return s[max(0, min(i, len(s)-1))]
		}
		rep.LatencyUS = Latency{P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: s[len(s)-1]}
	}
	for _, f := range r.flows {
		if !flows {
			break
		}
		fr := FlowReport{
			Proto: f.ProtoName(), Src: f.Client, Dst: f.Server, SrcPort: f.ClientPort, DstPort: f.ServerPort,
			Endpoint: f.aws.EndpointID, Attachment: f.aws.AttachmentID, Cookie: f.aws.FlowCookie,
			SourcePort: r.ports[f.sock], Denied: f.denied,
			Sent: f.sent, Returned: f.returned, Dropped: f.dropped, Mismatched: f.mismatched,
			Moved: f.moves > 0, Moves: f.moves, LostAfterMove: f.lostAfterMove,
		}
		if ti := f.target; ti >= 0 {
			fr.Target = r.targets[ti].key
		}
		if ti := f.first; ti >= 0 {
			fr.FirstTarget = r.targets[ti].key
		}
		rep.Flows = append(rep.Flows, fr)
	}
	if !r.start.IsZero() {
		rep.Elapsed = time.Since(r.start)
		rep.ElapsedS = rep.Elapsed.Seconds()
		if rep.ElapsedS > 0 {
			rep.PPS = float64(rep.Sent) / rep.ElapsedS
		}
	}
	return rep
}
