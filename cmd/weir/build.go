package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"weir/dataplane"
	"weir/dataplane/eve"
	"weir/dataplane/flow"
	"weir/dataplane/flowlog"
	"weir/dataplane/mirror"
	"weir/dataplane/pcapout"
	"weir/dataplane/policy"
)

// engine is the dataplane a configuration describes, without its packet I/O: the
// pipeline, the flow tables and the outputs. `weir run` feeds it from sockets,
// `weir replay` from capture files.
type engine struct {
	cfg      *Config
	log      *slog.Logger
	pipeline *dataplane.Pipeline
	table    *flow.Table // GWLB and plain flows, with policy
	mirror   *flow.Table // mirrored flows
	sessions *dataplane.Sessions
	eve      *eve.Writer
	pcap     *pcapout.Writer
	flowlog  *flowlog.Writer

	flowsAllowed, flowsDropped atomic.Uint64 // flows ended, by verdict
	offline                    bool
}

// newEngine builds the engine. offline (weir replay) makes every output wait for
// room rather than drop: nothing is live, and nothing should be lost.
func newEngine(cfg *Config, log *slog.Logger, offline bool) (_ *engine, err error) {
	e := &engine{cfg: cfg, log: log, offline: offline}
	defer func() {
		if err != nil {
			e.closeOutputs()
		}
	}()
	var list []*dataplane.Session
	for i, sc := range cfg.Mirror.Sessions {
		list = append(list, &dataplane.Session{
			Index: uint16(i + 1), Name: sc.Name, VNI: sc.VNI, CatchAll: sc.CatchAll,
			PacketLength: sc.PacketLength, Filter: sc.Filter, AmazonDNS: cfg.Mirror.AmazonDNS,
			Directions:  mirror.NewDirections(sc.ENIMAC, sc.ENIIP, 1024),
			InterfaceID: sc.InterfaceID,
		})
	}
	if len(list) == 0 {
		// No sessions configured: mirror every VNI, unfiltered.
		list = append(list, &dataplane.Session{Index: 1, Name: "default", CatchAll: true,
			AmazonDNS: cfg.Mirror.AmazonDNS, Directions: mirror.NewDirections(nil, netip.Addr{}, 1024)})
	}
	e.sessions = dataplane.NewSessions(list)

	if cfg.Outputs.EVE != "" {
		if e.eve, err = eve.Open(cfg.Outputs.EVE, 0, log); err != nil {
			return nil, err
		}
		names := make([]string, len(list)+1)
		for _, s := range list {
			names[s.Index] = s.Name
		}
		e.eve.SetSessionNames(names)
	}
	if cfg.Outputs.PCAP.Dir != "" {
		pc := cfg.Outputs.PCAP
		e.pcap, err = pcapout.New(pcapout.Config{Dir: pc.Dir, MaxFileBytes: pc.MaxFileSize,
			MaxFileAge: pc.MaxFileAge, MaxTotalBytes: pc.MaxTotalSize, Queue: pc.Queue, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("outputs.pcap: %w", err)
		}
	}
	var onInterval func(*flow.Record, *flow.Delta)
	if cfg.Outputs.FlowLog.Path != "" {
		e.flowlog, err = flowlog.Open(flowlog.Config{
			Path: cfg.Outputs.FlowLog.Path, AccountID: cfg.Outputs.FlowLog.AccountID,
			InterfaceID: e.interfaceID, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("outputs.flowlog: %w", err)
		}
		onInterval = func(r *flow.Record, d *flow.Delta) {
			r.Background = r.Background || e.offline
			e.flowlog.Record(r, d)
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
	pol := cfg.Policy
	e.table = flow.NewTable(tableCfg, &pol, e.flowEnded)
	mirrorCfg := tableCfg
	if !offline && !cfg.Mirror.Listen.IsValid() && len(cfg.Mirror.GWLBEndpoints) == 0 {
		mirrorCfg.MaxFlows = 1 // no mirrored traffic can arrive: reserve nothing for it
	}
	e.mirror = flow.NewTable(mirrorCfg, nil, e.flowEnded)

	var dedupe *mirror.Dedupe
	if cfg.Mirror.DedupeWindow > 0 {
		dedupe = mirror.NewDedupe(cfg.Mirror.DedupeWindow, 1<<16)
	}
	stages := []dataplane.Stage{
		&dataplane.GeneveDecode{AllowedSources: cfg.GWLB.AllowedSources},
		&dataplane.VXLANDecode{Sessions: e.sessions, MirrorEndpoints: cfg.Mirror.GWLBEndpoints},
		dataplane.InnerDecode{},
		&dataplane.MirrorFilter{Dedupe: dedupe},
		&dataplane.Track{Table: e.table, Mirror: e.mirror, MergeSessions: dedupe != nil,
			Fragments: dataplane.NewFragments(1<<16, 30*time.Second)},
	}
	if e.pcap != nil {
		stages = append(stages, &dataplane.Record{PCAP: e.pcap, Wait: offline})
	}
	e.pipeline = dataplane.NewPipeline(stages...)
	e.pipeline.SetSessions(len(list))
	return e, nil
}

// interfaceID names the interface of a flow for flow logs: the mirror session's ENI,
// or the GWLB endpoint of an inline flow.
func (e *engine) interfaceID(r *flow.Record) string {
	if r.Session != 0 {
		if l := e.sessions.List(); int(r.Session) <= len(l) {
			return l[r.Session-1].InterfaceID
		}
		return ""
	}
	if r.AWS.EndpointID != 0 {
		return eve.EndpointID(r.AWS.EndpointID)
	}
	return ""
}

func (e *engine) flowEnded(r *flow.Record) {
	r.Background = r.Background || e.offline
	if r.Action == policy.Drop {
		e.flowsDropped.Add(1)
	} else {
		e.flowsAllowed.Add(1)
	}
	if e.eve != nil {
		e.eve.Flow(r)
	}
}

func (e *engine) flowsEnded() (allowed, dropped uint64) {
	return e.flowsAllowed.Load(), e.flowsDropped.Load()
}

// gauges are the engine's values for the metrics collector.
func (e *engine) gauges() dataplane.Gauges {
	g := dataplane.Gauges{
		FlowsActive:  func() int { return e.table.Active() + e.mirror.Active() },
		FlowsEvicted: func() uint64 { return e.table.Evicted() + e.mirror.Evicted() },
		FlowsEnded:   e.flowsEnded,
		Sessions:     e.sessions.List(),
	}
	if e.eve != nil {
		g.EVEWritten, g.EVEDropped = e.eve.Written, e.eve.Dropped
	}
	if e.pcap != nil {
		g.PCAPDropped = e.pcap.DroppedByTag
	}
	return g
}

// expire ends idle flows; interval emits flow-log records when one is due.
func (e *engine) expire(now int64) {
	e.table.Expire(now)
	e.mirror.Expire(now)
}

func (e *engine) interval(now int64) {
	if e.flowlog == nil {
		return
	}
	e.table.Interval(now)
	e.mirror.Interval(now)
}

// flush ends every flow (their records go to the outputs) and closes the outputs.
func (e *engine) flush(now int64) int {
	n := e.table.Flush(now) + e.mirror.Flush(now)
	return n
}

func (e *engine) closeOutputs() error {
	var errs []error
	if e.eve != nil {
		errs = append(errs, e.eve.Close())
	}
	if e.pcap != nil {
		errs = append(errs, e.pcap.Close())
	}
	if e.flowlog != nil {
		errs = append(errs, e.flowlog.Close())
	}
	return errors.Join(errs...)
}
