// Package engine assembles the dataplane a configuration describes, without its
// packet I/O: the pipeline of stages, the flow tables and the outputs. weir run feeds
// it from the socket backend, weir replay from capture files, and the demo and bench
// harness from loopback.
package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"weir/config"

	"weir/dataplane"
	"weir/dataplane/detect"
	"weir/dataplane/detect/defrag"
	"weir/dataplane/eve"
	"weir/dataplane/flow"
	"weir/dataplane/flowlog"
	"weir/dataplane/mirror"
	"weir/dataplane/pcapout"
	"weir/dataplane/policy"
)

// Engine is the dataplane a configuration describes, without its packet I/O: the
// pipeline, the flow tables and the outputs. `weir run` feeds it from sockets,
// `weir replay` from capture files.
type Engine struct {
	// Config is the configuration the engine started with; Current is the one in
	// force after reloads.
	Config   *config.Config
	Log      *slog.Logger
	Pipeline *dataplane.Pipeline
	Table    *flow.Table // GWLB and plain flows, with policy
	Mirror   *flow.Table // mirrored flows; nil when no mirrored traffic can arrive
	Sessions *dataplane.Sessions
	EVE      *eve.Writer     // nil without outputs.eve
	PCAP     *pcapout.Writer // nil without outputs.pcap.dir
	FlowLog  *flowlog.Writer // nil without outputs.flowlog.path
	// Detect is the detection stage; nil when the configuration the engine
	// started with asked for no detection (enabling it then needs a restart: the
	// flow tables carry detection's side records only when it is on).
	Detect *detect.Stage

	tables                     []*flow.Table // Table, and Mirror when there is one
	flowbits                   *detect.Flowbits
	detectInfo                 atomic.Pointer[DetectInfo]
	detectReloads              [2]atomic.Uint64 // ok, failed
	ruleNames                  []string         // every policy rule's label by number (policy.RuleBase); guarded by reloadMu after New
	flowsAllowed, flowsDropped atomic.Uint64    // flows ended, by verdict
	offline                    bool
	vniLog                     vniLog

	// OnFlowEnded, when set before packets flow, sees every ended flow's record
	// after the outputs (weir replay's summary). It may run on any goroutine.
	OnFlowEnded func(*flow.Record)

	// What a reload replaces (reload.go).
	live     atomic.Pointer[config.Config] // the configuration in force
	policy   *policy.Live
	geneve   *dataplane.GeneveDecode
	reloadMu sync.Mutex // one reload at a time; guards the session bookkeeping below
	known    map[string]*knownSession
	// lastIndex is the highest session index handed out; byIndex the latest session
	// at each index (removed ones included: their flows may still be in the table).
	lastIndex uint16
	byIndex   atomic.Pointer[[]*dataplane.Session]
}

// New builds the engine. offline (weir replay) makes every output wait for
// room rather than drop: nothing is live, and nothing should be lost.
func New(cfg *config.Config, log *slog.Logger, offline bool) (_ *Engine, err error) {
	return NewWith(cfg, log, offline, Fleet{})
}

// Fleet is what a node in a fleet gives its inline flow table: the node id that
// goes into its flow ids, and where the table journals what peers must know. The
// zero Fleet is a standalone node.
type Fleet struct {
	NodeID  uint16
	Journal func(shard int, events []flow.FlowState) // must not block: the packet path calls it
}

// NewWith is New for a node of a fleet.
func NewWith(cfg *config.Config, log *slog.Logger, offline bool, fleet Fleet) (_ *Engine, err error) {
	e := &Engine{Config: cfg, Log: log, offline: offline}
	defer func() {
		if err != nil {
			e.CloseOutputs()
		}
	}()
	e.live.Store(cfg)
	list, err := e.sessionsOf(cfg)
	if err != nil {
		return nil, err
	}
	e.Sessions = dataplane.NewSessions(list)

	// The folders of the EVE and flow logs are created as the pcap writer creates
	// its own; errors are check-config's, naming the key.
	if err := cfg.MakeOutputDirs(); err != nil {
		return nil, err
	}
	e.ruleNames = ruleNames(nil, cfg.Policy.Rules)
	if cfg.Outputs.EVE != "" {
		if e.EVE, err = eve.Open(cfg.Outputs.EVE, cfg.Outputs.EVEQueue, log); err != nil {
			return nil, cfg.KeyError("outputs.eve", err)
		}
		e.EVE.SetSessionNames(e.sessionNames())
		e.EVE.SetRuleNames(e.ruleNames)
	}
	if cfg.Outputs.PCAP.Dir != "" {
		pc := cfg.Outputs.PCAP
		e.PCAP, err = pcapout.New(pcapout.Config{Dir: pc.Dir, MaxFileBytes: pc.MaxFileSize,
			MaxFileAge: pc.MaxFileAge, MaxTotalBytes: pc.MaxTotalSize, Queue: pc.Queue, ReorderWindow: pc.ReorderWindow, Logger: log})
		if err != nil {
			return nil, cfg.KeyError("outputs.pcap.dir", err)
		}
	}
	var onInterval func(*flow.Record, *flow.Delta)
	if cfg.Outputs.FlowLog.Path != "" {
		e.FlowLog, err = flowlog.Open(flowlog.Config{
			Path: cfg.Outputs.FlowLog.Path, AccountID: cfg.Outputs.FlowLog.AccountID,
			InterfaceID: e.interfaceID, Logger: log,
		})
		if err != nil {
			return nil, cfg.KeyError("outputs.flowlog.path", err)
		}
		onInterval = func(r *flow.Record, d *flow.Delta) {
			r.Background = r.Background || e.offline
			e.FlowLog.Record(r, d)
		}
	}

	tableCfg := flow.Config{
		MaxFlows:      cfg.Flows.Max,
		TCPTimeout:    cfg.Flows.TCPTimeout,
		OtherTimeout:  cfg.Flows.OtherTimeout,
		ClosedTimeout: cfg.Flows.ClosedTimeout,
		Logger:        log,
		OnInterval:    onInterval,
	}
	if cfg.Detect.Enabled() {
		e.flowbits = detect.NewFlowbits()
		eng, info, err := buildDetect(cfg, e.flowbits, log)
		if err != nil {
			return nil, err
		}
		e.detectInfo.Store(&info)
		e.Detect = detect.NewStage(eng)
		e.Detect.MidstreamDrop = cfg.Flows.Midstream == "drop"
		e.Detect.Alert = e.Alert
		tableCfg.SideSize, tableCfg.SideRecord = detect.SideSize(eng), detect.SideRecord
	}
	pol := cfg.Policy
	e.policy = policy.NewLive(&pol)
	inlineCfg := tableCfg
	inlineCfg.NodeID, inlineCfg.Journal = fleet.NodeID, fleet.Journal
	if cfg.Flows.Midstream == "drop" && !offline {
		// Replay has nothing to drop: there, as on the mirror path, drop takes
		// Suricata's meaning (stream.midstream: false): the flow is kept, and
		// detection never counts it established.
		inlineCfg.Midstream = flow.MidstreamDrop
	}
	e.Table = flow.NewTable(inlineCfg, e.policy, e.flowEnded)
	e.tables = []*flow.Table{e.Table}
	if offline || cfg.Mirror.Listen.IsValid() || len(cfg.Mirror.GWLBEndpoints) != 0 {
		// Only when mirrored traffic can arrive: a path that is off costs no memory.
		// A mirror drops nothing: a flow first seen midstream is kept, oriented by the
		// best evidence of who the server is.
		e.Mirror = flow.NewTable(tableCfg, nil, e.flowEnded)
		e.tables = append(e.tables, e.Mirror)
	}

	var dedupe *mirror.Dedupe
	if cfg.Mirror.DedupeWindow > 0 {
		dedupe = mirror.NewDedupe(cfg.Mirror.DedupeWindow, 1<<16)
	}
	e.geneve = &dataplane.GeneveDecode{AllowedSources: cfg.GWLB.AllowedSources}
	stages := []dataplane.Stage{
		e.geneve,
		&dataplane.VXLANDecode{Sessions: e.Sessions, MirrorEndpoints: cfg.Mirror.GWLBEndpoints,
			AllowedSources: cfg.Mirror.AllowedSources},
		dataplane.InnerDecode{},
		&dataplane.MirrorFilter{Dedupe: dedupe},
		&dataplane.Track{Table: e.Table, Mirror: e.Mirror, MergeSessions: dedupe != nil,
			Fragments: dataplane.NewFragments(1<<16, 30*time.Second)},
	}
	if e.Detect != nil {
		// The flows of packets inside tunnels in the traffic have a table of their
		// own, without policy: the tunnel's flow decides forwarding.
		tunnelCfg := tableCfg
		if cfg.Flows.Midstream == "drop" && !offline {
			// Strict inline: a TCP flow picked up midstream inside a tunnel is
			// dropped as one outside.
			tunnelCfg.Midstream = flow.MidstreamDrop
		}
		tunnels := flow.NewTable(tunnelCfg, nil, e.flowEnded)
		e.tables = append(e.tables, tunnels)
		e.Detect.Inline, e.Detect.Mirror, e.Detect.Tunnels = e.Table, e.Mirror, tunnels
		e.Detect.Defrag = defrag.New(defrag.Config{})
		stages = append(stages, e.Detect)
	}
	if e.PCAP != nil {
		stages = append(stages, &dataplane.Record{PCAP: e.PCAP, Wait: offline})
	}
	e.Pipeline = dataplane.NewPipeline(stages...)
	e.Pipeline.SetSessions(int(e.lastIndex))
	return e, nil
}

// interfaceID names the interface of a flow for flow logs: the mirror session's ENI,
// or the GWLB endpoint of an inline flow.
func (e *Engine) interfaceID(r *flow.Record) string {
	if r.Session != 0 {
		if x := e.sessionAt(r.Session); x != nil {
			return x.InterfaceID
		}
		return ""
	}
	if r.AWS.EndpointID != 0 {
		return eve.EndpointID(r.AWS.EndpointID)
	}
	return ""
}

func (e *Engine) flowEnded(r *flow.Record) {
	r.Background = r.Background || e.offline
	if r.Action != policy.Allow {
		e.flowsDropped.Add(1)
	} else {
		e.flowsAllowed.Add(1)
	}
	if e.EVE != nil {
		e.EVE.Flow(r)
	}
	if e.OnFlowEnded != nil {
		e.OnFlowEnded(r)
	}
}

// Alert writes an alert to the EVE log, if there is one. Like flow records, alerts
// raised on the packet path are dropped when the queue is full; in replay they wait.
func (e *Engine) Alert(a *eve.Alert) {
	if e.EVE == nil {
		return
	}
	a.Background = a.Background || e.offline
	e.EVE.Alert(a)
}

// ruleNames appends to names the labels of a policy's rules for EVE's weir.rule:
// a rule's name, or rules[N] by its index in that policy. It returns a new slice:
// the EVE writer may be reading the old one.
func ruleNames(names []string, rules []policy.Rule) []string {
	out := make([]string, len(names), len(names)+len(rules))
	copy(out, names)
	for i := range rules {
		out = append(out, rules[i].Label(i))
	}
	return out
}

// FlowsEnded is how many flows have ended, by verdict.
func (e *Engine) FlowsEnded() (allowed, dropped uint64) {
	return e.flowsAllowed.Load(), e.flowsDropped.Load()
}

// Gauges are the engine's values for the metrics collector.
func (e *Engine) Gauges() dataplane.Gauges {
	g := dataplane.Gauges{
		FlowsActive:  e.FlowsActive,
		FlowsEvicted: e.FlowsEvicted,
		FlowsLost:    e.FlowsLost,
		FlowsEnded:   e.FlowsEnded,
		Sessions:     e.Sessions.List,
	}
	if e.EVE != nil {
		for t := eve.EventType(0); t < eve.NumEventTypes; t++ {
			g.EVEEventTypes = append(g.EVEEventTypes, t.String())
		}
		g.EVEWritten = func(i int) uint64 { return e.EVE.WrittenOf(eve.EventType(i)) }
		g.EVEDropped = func(i int) uint64 { return e.EVE.DroppedOf(eve.EventType(i)) }
	}
	if e.PCAP != nil {
		g.PCAPDropped = e.PCAP.DroppedByTag
		g.PCAPLate = e.PCAP.Late
	}
	if e.FlowLog != nil {
		g.FlowLogWritten, g.FlowLogDropped = e.FlowLog.Written, e.FlowLog.Dropped
	}
	return g
}

// FlowsActive is the number of flows in the tables.
func (e *Engine) FlowsActive() int {
	n := 0
	for _, t := range e.tables {
		n += t.Active()
	}
	return n
}

// FlowsEvicted is how many flows were evicted from full tables.
func (e *Engine) FlowsEvicted() uint64 {
	var n uint64
	for _, t := range e.tables {
		n += t.Evicted()
	}
	return n
}

// FlowsLost is how many ended-flow records packet workers had to drop because
// their outbox was full (the outputs were not keeping up).
func (e *Engine) FlowsLost() uint64 {
	var n uint64
	for _, t := range e.tables {
		n += t.Lost()
	}
	return n
}

// Expire ends idle flows (and forgets fragments whose datagram never completed).
func (e *Engine) Expire(now int64) {
	for _, t := range e.tables {
		t.Expire(now)
	}
	if e.Detect != nil && e.Detect.Defrag != nil {
		e.Detect.Defrag.Expire(now)
	}
}

// Interval emits flow-log records of every flow with traffic since the last one.
func (e *Engine) Interval(now int64) {
	if e.FlowLog == nil {
		return
	}
	for _, t := range e.tables {
		t.Interval(now)
	}
}

// Flush ends every flow; their records go to the outputs.
func (e *Engine) Flush(now int64) int {
	n := 0
	for _, t := range e.tables {
		n += t.Flush(now)
	}
	return n
}

// CloseOutputs writes what the outputs hold and closes them.
func (e *Engine) CloseOutputs() error {
	var errs []error
	if e.EVE != nil {
		errs = append(errs, e.EVE.Close())
	}
	if e.PCAP != nil {
		errs = append(errs, e.PCAP.Close())
	}
	if e.FlowLog != nil {
		errs = append(errs, e.FlowLog.Close())
	}
	return errors.Join(errs...)
}

// Housekeep ends idle flows once a second and writes flow-log records each
// interval, on the wall clock, until ctx ends.
func (e *Engine) Housekeep(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	next := time.Now().Add(e.Config.Outputs.FlowLog.Interval)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.Expire(now.UnixNano())
			e.LogUnknownVNIs(now)
			if !now.Before(next) {
				e.Interval(now.UnixNano())
				next = next.Add(e.Config.Outputs.FlowLog.Interval)
			}
		}
	}
}
