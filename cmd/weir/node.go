package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"weir/cloud/aws"
	"weir/cluster"
	"weir/cluster/flowsync"
	"weir/config"
	"weir/dataplane"
	"weir/dataplane/afxdp"
	"weir/dataplane/engine"
	"weir/dataplane/flow"
	"weir/dataplane/socket"
	"weir/health"
)

// node is one running appliance: the engine fed by the socket backend, with health
// and metrics.
type node struct {
	*engine.Engine
	state   health.State
	backend *socket.Backend
	xdp     *afxdp.Backend // nil unless AF_XDP runs (beside backend)
	servers []*health.Server
	hsrv    *health.Server
	msrv    *health.Server
	cluster *cluster.Node    // nil when standalone (no cluster.bind)
	sync    *flowsync.Syncer // with cluster: shares the inline flow table
	aws     *aws.Session     // with cluster.discover or aws.lifecycle
	stopAWS context.CancelFunc

	failed chan error // the dataplane stopped on its own
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// startNode opens everything the configuration asks for and starts forwarding. Every
// listener is bound before it returns, so a bad address fails here.
func startNode(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *node, err error) {
	n := &node{failed: make(chan error, 1), stopAWS: func() {}}
	n.aws = awsSession(cfg, log)
	// A fleet node's flow table journals to the sync engine and numbers its flows
	// with the node's id, so the cluster comes first.
	var fleet engine.Fleet
	if cfg.Cluster.Bind.IsValid() {
		ccfg, err := cluster.FromConfig(cfg.Cluster)
		if err != nil {
			return nil, cfg.KeyError("cluster.secret_key_file", err)
		}
		if cfg.Cluster.Discover.Provider == "aws" {
			// Discovery runs beside the dataplane, never in its way: AWS may be
			// unreachable at start, and the list arrives when it answers.
			d := aws.NewDiscovery(n.aws, cfg.Cluster.Discover, cfg.Cluster.DiscoverPort())
			ccfg.Discovered = d.Seeds
			dctx, stop := context.WithCancel(ctx)
			n.stopAWS = stop
			go d.Run(dctx)
		}
		if n.cluster, err = cluster.New(ccfg, log); err != nil {
			n.stopAWS()
			return nil, err
		}
		fleet.NodeID = nodeID(n.cluster.LocalName())
		n.sync = flowsync.New(flowsync.Config{Transport: n.cluster, NodeID: fleet.NodeID, Logger: log})
		n.cluster.SetHandler(fleetHandler{n.sync, fleet.NodeID, log})
		n.cluster.SetSyncStatus(func() any { return n.sync.Status() })
		fleet.Journal = n.sync.Journal
	}
	if n.Engine, err = engine.NewWith(cfg, log, false, fleet); err != nil {
		if n.cluster != nil {
			_ = n.cluster.Shutdown()
		}
		n.stopAWS()
		return nil, err
	}
	defer func() {
		if err != nil {
			for _, s := range n.servers {
				_ = s.Close()
			}
			if n.cluster != nil {
				_ = n.cluster.Shutdown()
				n.sync.Close()
			}
			n.stopAWS()
			n.CloseOutputs()
		}
	}()
	if n.cluster != nil {
		// Health fails until this node holds its peers' flows: GWLB must not send it
		// a flow it cannot know (in strict mode it would drop it).
		n.state.SetSyncing("syncing flows from peers")
		if err := n.cluster.Start(); err != nil {
			n.cluster.Shutdown()
			n.cluster = nil
			return nil, fmt.Errorf("cluster.bind %s: %w", cfg.Cluster.Bind, err)
		}
		go n.startSync(len(cfg.Cluster.Join) > 0 || cfg.Cluster.Discover.Provider != "")
	}
	listeners := []socket.Listener{{Addr: cfg.GWLB.Listen, Encap: dataplane.EncapGeneve}}
	if cfg.Mirror.Listen.IsValid() {
		listeners = append(listeners, socket.Listener{Addr: cfg.Mirror.Listen, Encap: dataplane.EncapVXLAN})
	}
	// The sockets bind first: with AF_XDP they serve what XDP passes to the
	// kernel, from the moment the program is attached.
	n.backend, err = socket.New(socket.Config{
		Listeners:  listeners,
		Workers:    cfg.Dataplane.Workers,
		Batch:      cfg.Dataplane.Batch,
		Reply:      socket.ReplyMode(cfg.GWLB.Reply),
		RecvBuffer: int(cfg.Dataplane.RecvBuffer),
		Logger:     log,
	})
	if err != nil {
		return nil, err
	}
	// The fast path hides packets from the pipeline: only when no stage
	// needs to see each one.
	var fastFlows *flow.Table
	switch {
	case !cfg.Dataplane.FastPath:
	case n.Detect != nil:
		log.Info("dataplane: the XDP fast path stays off: detection inspects every packet")
	default:
		fastFlows = n.Table
	}
	if n.xdp, err = openAFXDP(cfg, log, fastFlows); err != nil {
		n.backend.Close()
		return nil, err
	}
	closeBackends := func() {
		n.backend.Close()
		if n.xdp != nil {
			n.xdp.Close()
		}
	}

	if d := cfg.Health.StallTimeout; d > 0 {
		n.state.SetStallCheck(func() (int, time.Duration, bool) { return n.Pipeline.Stalled(time.Now(), d) })
	}

	reg := health.NewRegistry()
	gauges := n.Gauges()
	gauges.SocketDrops = n.backend.Drops
	gauges.SocketRecvBuffer = n.backend.RecvBuffer
	if n.xdp != nil && fastFlows != nil {
		// The program's counters go with it at exit: the last read stands.
		var lastFast, lastFastBytes atomic.Uint64
		gauges.Offloaded = func() (uint64, uint64) {
			if x, err := n.xdp.XDPCounters(); err == nil {
				lastFast.Store(x.FastPath)
				lastFastBytes.Store(x.FastPathBytes)
			}
			return lastFast.Load(), lastFastBytes.Load()
		}
	}
	reg.MustRegister(dataplane.NewCollector(n.Pipeline, gauges))
	backend := "socket"
	if n.xdp != nil {
		backend = "afxdp"
		reg.MustRegister(afxdp.NewCollector(n.xdp))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weir_healthy",
		Help: "1 while /healthz answers 200; 0 while it answers 503 (draining, syncing flows from peers, dataplane down or a worker stalled).",
	}, func() float64 {
		if ok, _ := n.state.Healthy(); ok {
			return 1
		}
		return 0
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weir_draining",
		Help: "1 from SIGTERM or the lifecycle hook on: /healthz answers 503 while forwarding goes on for the drain delay.",
	}, func() float64 {
		if n.state.Draining() {
			return 1
		}
		return 0
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "weir_dataplane_backend",
		Help:        "1, labelled with the dataplane backend that runs (afxdp, with the socket backend beside it for what XDP passes; or socket).",
		ConstLabels: prometheus.Labels{"backend": backend},
	}, func() float64 { return 1 }))
	if dc := n.DetectCollector(); dc != nil {
		reg.MustRegister(dc)
	}
	hmux := http.NewServeMux()
	hmux.Handle("/healthz", n.state.Handler())
	hmux.Handle("/mirror", health.JSONHandler(func() any { return n.MirrorReport() }))
	if n.cluster != nil {
		sc := flowsync.NewCollector(n.sync, n.Table)
		sc.Decrypt = func() uint64 { return n.cluster.Rejected("decrypt") }
		reg.MustRegister(n.cluster.Collector(), sc)
		hmux.Handle("/cluster", n.cluster)
	}
	mmux := http.NewServeMux()
	mmux.Handle("/metrics", health.MetricsHandler(reg))
	if cfg.Health.Listen != "" && cfg.Health.Listen == cfg.Metrics.Listen {
		hmux.Handle("/metrics", health.MetricsHandler(reg))
		if n.hsrv, err = n.serve(cfg.Health.Listen, hmux); err != nil {
			closeBackends()
			return nil, err
		}
		n.msrv = n.hsrv
	} else {
		if cfg.Health.Listen != "" {
			if n.hsrv, err = n.serve(cfg.Health.Listen, hmux); err != nil {
				closeBackends()
				return nil, err
			}
		}
		if cfg.Metrics.Listen != "" {
			if n.msrv, err = n.serve(cfg.Metrics.Listen, mmux); err != nil {
				closeBackends()
				return nil, err
			}
		}
	}

	ctx, n.cancel = context.WithCancel(ctx)
	ready := make(chan struct{})
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		err := n.runDataplane(ctx, func() {
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
		n.Housekeep(ctx)
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
	s, err := health.Serve(addr, h, n.Log)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	n.servers = append(n.servers, s)
	return s, nil
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
func (n *node) shutdown(drainDelay time.Duration, skip <-chan os.Signal) {
	n.once.Do(func() {
		n.state.Drain()
		if drainDelay > 0 {
			t := time.NewTimer(drainDelay)
			select {
			case <-t.C:
			case sig := <-skip:
				n.Log.Info("drain cut short", "signal", sig.String())
			}
			t.Stop()
		}
		n.cancel()
		n.wg.Wait()
		if n.cluster != nil {
			// Peers see this node leave (not die) once it forwards no more; what it
			// journalled while draining has been sent by then.
			n.Table.FlushJournal()
			_ = n.cluster.Leave(2 * time.Second)
			_ = n.cluster.Shutdown()
			n.sync.Close()
		}
		n.stopAWS()
		ended := n.Flush(time.Now().UnixNano())
		n.Log.Info("flows flushed", "flows", ended)
		for _, s := range n.servers {
			_ = s.Close()
		}
		if err := n.CloseOutputs(); err != nil {
			n.Log.Error("closing outputs", "err", err)
		}
	})
}

// reload is what SIGHUP does: the configuration file is read again and what can
// change while packets flow is put in force, then the EVE log, the flow log and
// log.file are reopened at their paths (logrotate renamed them). A file that fails
// to load leaves the running configuration as it is; weir keeps running either
// way. The configuration comes first because reopening waits for each log's
// writer to finish its current write, which a stuck reader can hold up.
func (n *node) reload(path string, level *slog.LevelVar, logf *logFile) {
	var r engine.Reloaded
	var reloadErr error
	if path != "" {
		var next *config.Config
		if next, reloadErr = loadConfig(path, n.Log); reloadErr == nil {
			r, reloadErr = n.Apply(next)
		}
		if reloadErr != nil {
			n.Log.Error("reload failed; keeping the running configuration", "err", reloadErr)
		} else {
			for _, k := range r.Restart {
				n.Log.Warn(k+" needs a restart; keeping the running value", "key", k)
			}
			for _, w := range r.Warnings {
				n.Log.Warn(w)
			}
			if n.xdp != nil {
				if err := n.xdp.SetAllowedSources(xdpAllowedSources(n.Current())); err != nil {
					n.Log.Error("gwlb.allowed_sources not put in force in the XDP program; it keeps the old list", "err", err)
				}
				// Flows the program answers go back through the pipeline,
				// under the new configuration.
				if err := n.xdp.FlushFast(2 * time.Second); err != nil {
					n.Log.Error("the XDP fast path was not flushed", "err", err)
				}
			}
			setLevel(level, n.Current().Log.Level)
		}
	}
	if n.cluster != nil {
		// The key file is re-read (its path needs a restart): keys rotate in place.
		if f := n.Current().Cluster.SecretKeyFile; f != "" {
			if keys, err := cluster.LoadKeys(f); err != nil {
				n.Log.Error("cluster keys not reloaded; keeping the running keys", "err", err)
			} else if err := n.cluster.SetKeys(keys); err != nil {
				n.Log.Error("cluster keys not reloaded; keeping the running keys", "err", err)
			}
		}
	}
	files, err := n.ReopenOutputs()
	if err != nil {
		n.Log.Error("reopening logs; writing on to the old files", "err", err)
	}
	if logf != nil {
		if err := logf.Reopen(); err != nil {
			n.Log.Error("reopening log.file; writing on to the old file", "err", err)
		} else {
			files++
		}
	}
	// What is in force after a SIGHUP is always logged, whatever log.level says: at
	// info, or at the configured level when that is higher.
	at := max(slog.LevelInfo, level.Level())
	ctx := context.Background()
	switch {
	case path == "":
		n.Log.Log(ctx, at, "SIGHUP: logs reopened; no configuration file to reload", "files_reopened", files)
	case reloadErr != nil:
		n.Log.Log(ctx, at, "SIGHUP: logs reopened; configuration unchanged", "files_reopened", files)
	default:
		n.Log.Log(ctx, at, "reloaded", "config", path, "policy_rules", r.PolicyRules, "sessions", r.Sessions,
			"detect_rules", r.Detect.Rules, "detect_rules_skipped", len(r.Detect.Skipped), "files_reopened", files)
	}
}

// joinWait bounds how long a node with seeds waits to find a peer before it starts
// syncing alone: the first node of a new fleet has no one to pull from.
const joinWait = 10 * time.Second

// startSync starts the flow-state sync once the node has found its fleet (or
// joinWait passed, or it has no seeds to look for), and lets health pass once the
// bulk sync is done (or timed out, which flowsync logs).
func (n *node) startSync(seeds bool) {
	if seeds {
		deadline := time.Now().Add(joinWait)
		for len(n.cluster.Peers()) == 0 && time.Now().Before(deadline) && !n.state.Draining() {
			time.Sleep(100 * time.Millisecond) // polling membership, off the packet path
		}
	}
	n.sync.Start(n.Table)
	<-n.sync.Ready()
	n.state.SetSynced()
	n.Log.Info("cluster: flow table synced", "peers", len(n.cluster.Peers()), "flows", n.Table.Active())
}

// nodeID is the node's part of its flow ids, from its name: flow ids stay unique
// across the fleet as long as no two members' names hash alike, which
// fleetHandler watches for.
func nodeID(name string) uint16 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return uint16(h.Sum32() % (flow.MaxNodeID + 1))
}

// fleetHandler hands the cluster's messages to the sync engine, and warns when a
// peer's node id (from its name) equals this node's.
type fleetHandler struct {
	*flowsync.Syncer
	id  uint16
	log *slog.Logger
}

func (h fleetHandler) PeerJoined(name string) {
	if nodeID(name) == h.id {
		h.log.Error("cluster: a peer's flow ids would collide with this node's; give one of them another cluster.node_name",
			"peer", name, "node_id", h.id)
	}
	h.Syncer.PeerJoined(name)
}
