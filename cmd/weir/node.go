package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"weir/dataplane"
	"weir/dataplane/eve"
	"weir/dataplane/flow"
	"weir/dataplane/policy"
	"weir/dataplane/socket"
	"weir/health"
)

// node is one running appliance: dataplane, flow table, outputs, health and metrics.
type node struct {
	cfg      *Config
	log      *slog.Logger
	state    health.State
	table    *flow.Table
	eve      *eve.Writer
	pipeline *dataplane.Pipeline
	backend  *socket.Backend
	servers  []*health.Server
	hsrv     *health.Server
	msrv     *health.Server

	flowsAllowed, flowsDropped atomic.Uint64 // flows ended, by verdict

	failed chan error // the dataplane stopped on its own
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// startNode opens everything the configuration asks for and starts forwarding. Every
// listener is bound before it returns, so a bad address fails here.
func startNode(ctx context.Context, cfg *Config, log *slog.Logger) (_ *node, err error) {
	n := &node{cfg: cfg, log: log, failed: make(chan error, 1)}
	defer func() {
		if err != nil {
			n.closeOutputs()
		}
	}()
	if cfg.Outputs.EVE != "" {
		if n.eve, err = eve.Open(cfg.Outputs.EVE, 0, log); err != nil {
			return nil, err
		}
	}
	onEnd := func(r *flow.Record) {
		if r.Action == policy.Drop {
			n.flowsDropped.Add(1)
		} else {
			n.flowsAllowed.Add(1)
		}
		if n.eve != nil {
			n.eve.Flow(r)
		}
	}
	pol := cfg.Policy
	n.table = flow.NewTable(flow.Config{
		MaxFlows:      cfg.Flows.Max,
		TCPTimeout:    cfg.Flows.TCPTimeout,
		OtherTimeout:  cfg.Flows.OtherTimeout,
		ClosedTimeout: cfg.Flows.ClosedTimeout,
	}, &pol, onEnd)
	n.pipeline = dataplane.NewPipeline(
		&dataplane.GeneveDecode{AllowedSources: cfg.GWLB.AllowedSources},
		dataplane.InnerDecode{},
		&dataplane.Track{Table: n.table},
	)
	n.backend, err = socket.New(socket.Config{
		Listen:  cfg.GWLB.Listen,
		Workers: cfg.Dataplane.Workers,
		Batch:   cfg.Dataplane.Batch,
		Reply:   cfg.GWLB.Reply,
		Logger:  log,
	})
	if err != nil {
		return nil, err
	}

	reg := health.NewRegistry()
	g := dataplane.Gauges{FlowsActive: n.table.Active, FlowsEvicted: n.table.Evicted, FlowsEnded: n.flowsEnded}
	if n.eve != nil {
		g.EVEWritten, g.EVEDropped = n.eve.Written, n.eve.Dropped
	}
	reg.MustRegister(dataplane.NewCollector(n.pipeline, g))
	hmux := http.NewServeMux()
	hmux.Handle("/healthz", n.state.Handler())
	mmux := http.NewServeMux()
	mmux.Handle("/metrics", health.MetricsHandler(reg))
	if cfg.Health.Listen != "" && cfg.Health.Listen == cfg.Metrics.Listen {
		hmux.Handle("/metrics", health.MetricsHandler(reg))
		if n.hsrv, err = n.serve(cfg.Health.Listen, hmux); err != nil {
			return nil, err
		}
		n.msrv = n.hsrv
	} else {
		if cfg.Health.Listen != "" {
			if n.hsrv, err = n.serve(cfg.Health.Listen, hmux); err != nil {
				return nil, err
			}
		}
		if cfg.Metrics.Listen != "" {
			if n.msrv, err = n.serve(cfg.Metrics.Listen, mmux); err != nil {
				return nil, err
			}
		}
	}

	ctx, n.cancel = context.WithCancel(ctx)
	ready := make(chan struct{})
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		err := n.backend.Run(ctx, n.pipeline, func() {
			n.state.SetDataplaneUp(true)
			close(ready)
		})
		n.state.SetDataplaneUp(false)
		if err != nil {
			n.failed <- err
		}
	}()
	go func() {
		defer n.wg.Done()
		n.housekeep(ctx)
	}()
	select {
	case <-ready:
	case err := <-n.failed:
		n.cancel()
		n.wg.Wait()
		return nil, err
	}
	return n, nil
}

func (n *node) serve(addr string, h http.Handler) (*health.Server, error) {
	s, err := health.Serve(addr, h, n.log)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	n.servers = append(n.servers, s)
	return s, nil
}

// housekeep ends idle flows once a second.
func (n *node) housekeep(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n.table.Expire(now.UnixNano())
		}
	}
}

func (n *node) flowsEnded() (allowed, dropped uint64) {
	return n.flowsAllowed.Load(), n.flowsDropped.Load()
}

func (n *node) healthAddr() string {
	if n.hsrv == nil {
		return ""
	}
	return n.hsrv.Addr().String()
}

func (n *node) metricsAddr() string {
	if n.msrv == nil {
		return ""
	}
	return n.msrv.Addr().String()
}

// shutdown drains: health fails at once while packets keep flowing for drainDelay,
// so the load balancer moves new flows away first; then the dataplane stops, every
// flow is written out, and the listeners close.
func (n *node) shutdown(drainDelay time.Duration) {
	n.once.Do(func() {
		n.state.Drain()
		if drainDelay > 0 {
			time.Sleep(drainDelay)
		}
		n.cancel()
		n.wg.Wait()
		ended := n.table.Flush(time.Now().UnixNano())
		n.log.Info("flows flushed", "flows", ended)
		n.closeOutputs()
	})
}

func (n *node) closeOutputs() {
	for _, s := range n.servers {
		_ = s.Close()
	}
	if n.eve != nil {
		if err := n.eve.Close(); err != nil {
			n.log.Error("eve close", "err", err)
		}
	}
	if n.backend != nil && n.cancel == nil {
		n.backend.Close()
	}
}
