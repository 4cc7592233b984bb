// Package cluster makes weir instances a fleet: membership, failure detection and
// encrypted gossip with hashicorp/memberlist, and the transport the flow-state sync
// (cluster/sync) sends through.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"weir/config"
)

// Config is what a Node needs.
type Config struct {
	Bind      netip.AddrPort // gossip and sync, TCP and UDP; port 0 picks a free one
	Advertise netip.AddrPort // the address peers should use, when it differs from Bind
	NodeName  string         // "" = the hostname
	Join      []string       // seeds: IP, IP:PORT, NAME or NAME:PORT (every A/AAAA record)
	Keys      [][]byte       // AES keys (16, 24 or 32 bytes): the first encrypts, all decrypt; nil = clear text
	// Discovered, when set, returns more seeds (IP:PORT) found since, by a cloud
	// API: they are joined with Join, and those not yet members are joined when
	// they appear. It is called from the join loop and must not block.
	Discovered func() []string
}

// FromConfig turns the cluster section into a Config, reading the key file.
func FromConfig(c config.ClusterConfig) (Config, error) {
	cfg := Config{Bind: c.Bind, Advertise: c.Advertise, NodeName: c.NodeName, Join: c.Join}
	if c.SecretKeyFile != "" {
		keys, err := LoadKeys(c.SecretKeyFile)
		if err != nil {
			return Config{}, err
		}
		cfg.Keys = keys
	} else if !c.Insecure {
		return Config{}, errors.New("cluster.secret_key_file: required unless cluster.insecure is true")
	}
	return cfg, nil
}

// Failure detection, tuned for a fleet of appliances on one VPC (a few to a few
// dozen nodes, sub-millisecond RTTs), where a dead node's flows must move quickly:
//
//   - ProbeInterval 500ms: every node probes one peer (round robin) twice a second,
//     ProbeTimeout 250ms for the direct ack before 3 peers probe indirectly and a
//     TCP fallback ping is tried;
//   - SuspicionMult 3: a peer that failed a probe is suspect for
//     3 × max(1, log10(N)) × 500ms = 1.5s (N < 10), up to SuspicionMaxTimeoutMult 2
//     times that (3s) when no other node confirms the suspicion;
//   - GossipInterval 100ms to 3 nodes: a death is known fleet-wide within a few
//     hundred milliseconds of being declared.
//
// So a node that stops answering is suspected within about 1s (one probe interval
// plus the timeout) and declared dead within 1.5-3s more: DetectionTime, 4s, bounds
// it under normal load. A node that leaves gracefully is seen as left at once.
const (
	ProbeInterval  = 500 * time.Millisecond
	ProbeTimeout   = 250 * time.Millisecond
	SuspicionMult  = 3
	GossipInterval = 100 * time.Millisecond
	DetectionTime  = 4 * time.Second
)

// State of a member.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// meta is what a node gossips about itself: whether it is leaving.
const (
	metaRunning = 0
	metaLeaving = 1
)

// forget is how long a dead or left member stays in Status.
const forget = 30 * time.Minute

// Node is this instance in the fleet. It implements Transport.
type Node struct {
	syncStatus atomic.Pointer[func() any] // GET /cluster's "sync", when set
	cfg        Config
	log        *slog.Logger
	mlConf     *memberlist.Config
	ml         *memberlist.Memberlist
	name       string

	handler atomic.Pointer[Handler]
	leaving atomic.Bool

	mu      sync.Mutex
	members map[string]*member

	events eventQueue

	rejected   [numReasons]atomic.Uint64
	logLimiter rateLimiter

	cancel context.CancelFunc
	wg     sync.WaitGroup
	state  atomic.Int32 // 0 new, 1 started, 2 shut down
}

type member struct {
	node    memberlist.Node // its address (and name)
	state   string
	since   time.Time
	leaving bool
}

// New prepares a node; Start binds and joins.
func New(cfg Config, logger *slog.Logger) (*Node, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if !cfg.Bind.IsValid() {
		return nil, errors.New("cluster: no bind address")
	}
	name := cfg.NodeName
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("cluster: node name: %w", err)
		}
		name = h
	}
	if len(name) > MaxNameLen {
		return nil, fmt.Errorf("cluster: node name %q is longer than %d bytes", name, MaxNameLen)
	}
	for _, s := range cfg.Join {
		if _, _, err := config.SplitSeed(s); err != nil {
			return nil, fmt.Errorf("cluster: seed %q: %w", s, err)
		}
	}
	n := &Node{cfg: cfg, log: logger.With("component", "cluster"), name: name, members: map[string]*member{}}
	n.logLimiter.every = 10 * time.Second

	c := memberlist.DefaultLANConfig()
	c.Name = name
	c.BindAddr = cfg.Bind.Addr().String()
	c.BindPort = int(cfg.Bind.Port())
	if cfg.Advertise.IsValid() {
		c.AdvertiseAddr = cfg.Advertise.Addr().String()
		c.AdvertisePort = int(cfg.Advertise.Port())
	}
	c.ProbeInterval = ProbeInterval
	c.ProbeTimeout = ProbeTimeout
	c.SuspicionMult = SuspicionMult
	c.SuspicionMaxTimeoutMult = 2
	c.GossipInterval = GossipInterval
	c.GossipNodes = 3
	c.PushPullInterval = 15 * time.Second
	c.TCPTimeout = 5 * time.Second
	c.Delegate = (*delegate)(n)
	c.Events = (*events)(n)
	c.Logger = log.New(&logSink{n: n}, "", 0)
	if len(cfg.Keys) > 0 {
		for i, k := range cfg.Keys {
			if l := len(k); l != 16 && l != 24 && l != 32 {
				return nil, fmt.Errorf("cluster: key %d is %d bytes: keys are 16, 24 or 32 bytes", i+1, l)
			}
		}
		kr, err := memberlist.NewKeyring(cloneKeys(cfg.Keys), slices.Clone(cfg.Keys[0]))
		if err != nil {
			return nil, fmt.Errorf("cluster: keyring: %w", err)
		}
		c.Keyring = kr
		c.GossipVerifyIncoming = true
		c.GossipVerifyOutgoing = true
	}
	n.mlConf = c
	return n, nil
}

func cloneKeys(keys [][]byte) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = slices.Clone(k)
	}
	return out
}

// SetHandler sets what receives peers' messages and membership changes; call it
// before Start.
func (n *Node) SetHandler(h Handler) {
	if h == nil {
		n.handler.Store(nil)
		return
	}
	n.handler.Store(&h)
}

// Start binds the gossip port (TCP and UDP) and joins the seeds in the background,
// retrying with backoff until one answers; it never waits for them.
func (n *Node) Start() error {
	if !n.state.CompareAndSwap(0, 1) {
		return errors.New("cluster: already started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.events.start(&n.wg)
	ml, err := memberlist.Create(n.mlConf)
	if err != nil {
		cancel()
		n.events.stop()
		n.wg.Wait()
		n.state.Store(2) // stopped: Shutdown has nothing to do
		return fmt.Errorf("cluster: %w", err)
	}
	n.ml = ml
	ln := ml.LocalNode()
	n.log.Info("cluster started", "node", n.name, "addr", ln.Address(), "encrypted", n.mlConf.Keyring != nil, "seeds", len(n.cfg.Join))
	if len(n.cfg.Join) > 0 || n.cfg.Discovered != nil {
		n.wg.Add(1)
		go n.joinLoop(ctx)
	}
	return nil
}

// Addr is the address peers reach this node on (after Start).
func (n *Node) Addr() netip.AddrPort {
	if n.ml == nil {
		return netip.AddrPort{}
	}
	ln := n.ml.LocalNode()
	a, _ := netip.AddrFromSlice(ln.Addr)
	return netip.AddrPortFrom(a.Unmap(), ln.Port)
}

// joinLoop joins the seeds whenever this node knows no peer: at start, and again if
// it finds itself alone. Backoff from 1s doubles to 30s, with jitter.
func (n *Node) joinLoop(ctx context.Context) {
	defer n.wg.Done()
	backoff := time.Second
	for {
		if n.ml.NumMembers() > 1 && n.cfg.Discovered != nil {
			// A node that scaled out is joined by the nodes that find it: the
			// fleet stays one even if it was started with seeds of its own.
			if fresh := n.unknownPeers(n.discovered()); len(fresh) > 0 {
				// An instance that runs no weir (yet) is tried again at every
				// turn: quietly, as it is expected while instances boot.
				if joined, err := n.joinEach(ctx, fresh); joined > 0 {
					n.log.Info("cluster joined discovered peers", "peers", fresh, "answering", joined)
				} else {
					n.log.Debug("discovered peers do not answer", "peers", fresh, "err", errText(err))
				}
			}
		}
		var tried []string // alone: what this turn tried to join
		if n.ml.NumMembers() <= 1 {
			addrs := n.resolveSeeds(ctx)
			for _, a := range n.discovered() {
				if !slices.Contains(addrs, a) {
					addrs = append(addrs, a)
				}
			}
			tried = addrs
			if len(addrs) > 0 {
				joined, err := n.joinEach(ctx, addrs)
				if joined > 0 && n.ml.NumMembers() > 1 {
					n.log.Info("cluster joined", "seeds_answering", joined, "members", n.ml.NumMembers())
					backoff = time.Second
				} else {
					n.log.Warn("cluster join failed; retrying", "seeds", addrs, "retry_in", backoff.String(), "err", errText(err))
				}
			} else {
				n.log.Warn("cluster seeds resolve to no address but this node's, and none was discovered; retrying",
					"seeds", n.cfg.Join, "retry_in", backoff.String())
			}
		}
		wait := backoff
		if n.ml.NumMembers() > 1 {
			wait = 5 * time.Second
		} else {
			backoff = min(backoff*2, 30*time.Second)
		}
		wait += time.Duration(rand.Int64N(int64(wait / 4)))
		if !n.sleepOrDiscover(ctx, wait, tried) {
			return
		}
	}
}

// sleepOrDiscover waits d, or less when this node is alone and discovery has
// since found an address the last turn did not try: peers discovered late (the
// cloud API slow at boot) are joined at once, not at the next backoff step,
// which may come after the node has given up waiting for its fleet. False when
// ctx ends.
func (n *Node) sleepOrDiscover(ctx context.Context, d time.Duration, tried []string) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var tick <-chan time.Time
	if n.cfg.Discovered != nil && n.ml.NumMembers() <= 1 {
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-tick:
			if n.ml.NumMembers() > 1 {
				continue
			}
			for _, a := range n.discovered() {
				if !slices.Contains(tried, a) {
					return true
				}
			}
		}
	}
}

// joinEach is memberlist's Join, one address at a time until ctx ends: each
// address that accepts but never answers costs TCPTimeout, and Shutdown, which
// waits for this loop, must not wait for all of them.
func (n *Node) joinEach(ctx context.Context, addrs []string) (int, error) {
	joined := 0
	var errs []error
	for _, a := range addrs {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		k, err := n.ml.Join([]string{a})
		joined += k
		if err != nil {
			errs = append(errs, err)
		}
	}
	if joined > 0 {
		return joined, nil
	}
	return 0, errors.Join(errs...)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// discovered is what Discovered returns, without this node's own address.
func (n *Node) discovered() []string {
	if n.cfg.Discovered == nil {
		return nil
	}
	self := n.Addr()
	var out []string
	for _, s := range n.cfg.Discovered() {
		ap, err := netip.ParseAddrPort(s)
		if err != nil || ap == self || ap == n.cfg.Bind {
			continue
		}
		out = append(out, ap.String())
	}
	return out
}

// unknownPeers is the addresses in addrs no member of the fleet (alive or not
// yet forgotten) has.
func (n *Node) unknownPeers(addrs []string) []string {
	known := map[netip.AddrPort]bool{}
	for _, m := range n.ml.Members() {
		a, _ := netip.AddrFromSlice(m.Addr)
		known[netip.AddrPortFrom(a.Unmap(), m.Port)] = true
	}
	var out []string
	for _, s := range addrs {
		if ap, err := netip.ParseAddrPort(s); err == nil && !known[ap] {
			out = append(out, s)
		}
	}
	return out
}

// resolveSeeds turns the seeds into IP:PORT addresses (every A and AAAA record of a
// name), leaving out this node's own address.
func (n *Node) resolveSeeds(ctx context.Context) []string {
	self := n.Addr()
	var out []string
	for _, s := range n.cfg.Join {
		host, port, err := config.SplitSeed(s)
		if err != nil {
			continue
		}
		var ips []netip.Addr
		if a, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{a}
		} else {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
			cancel()
			if err != nil {
				n.log.Debug("cluster seed does not resolve", "seed", s, "err", err)
				continue
			}
			ips = addrs
		}
		for _, ip := range ips {
			ap := netip.AddrPortFrom(ip.Unmap(), uint16(port))
			if ap == self || ap == n.cfg.Bind {
				continue
			}
			if a := ap.String(); !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// Leave tells the fleet this node is going (peers see it as left, not dead), waiting
// up to timeout for the word to spread. Shutdown follows.
func (n *Node) Leave(timeout time.Duration) error {
	if n.state.Load() != 1 {
		return errors.New("cluster: not running")
	}
	n.leaving.Store(true)
	start := time.Now()
	// Gossip the leaving mark first, so that peers tell left from dead even if
	// the leave message itself is lost.
	if err := n.ml.UpdateNode(timeout / 2); err != nil {
		n.log.Debug("cluster leave mark not confirmed", "err", err)
	}
	err := n.ml.Leave(max(timeout-time.Since(start), 100*time.Millisecond))
	if err != nil {
		n.log.Warn("cluster leave", "err", err)
	} else {
		n.log.Info("cluster left", "node", n.name)
	}
	return err
}

// Shutdown stops gossip and closes the sockets, without telling the peers (they
// will see this node dead); Leave first for a graceful exit.
func (n *Node) Shutdown() error {
	if !n.state.CompareAndSwap(1, 2) || n.ml == nil {
		n.state.Store(2)
		return nil
	}
	n.cancel()
	err := n.ml.Shutdown()
	n.events.stop()
	n.wg.Wait()
	return err
}

// SetKeys replaces the keyring without a restart: new keys are added, keys[0]
// becomes the one that encrypts, and keys no longer listed are removed. Roll a new
// key across a fleet in three steps (see README): add it everywhere, make it first
// everywhere, remove the old one.
func (n *Node) SetKeys(keys [][]byte) error {
	kr := n.mlConf.Keyring
	if kr == nil {
		return errors.New("cluster: gossip is not encrypted (cluster.insecure); a key needs a restart")
	}
	if len(keys) == 0 {
		return errors.New("cluster: no key")
	}
	for _, k := range keys {
		if err := kr.AddKey(slices.Clone(k)); err != nil {
			return fmt.Errorf("cluster: add key: %w", err)
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return fmt.Errorf("cluster: use key: %w", err)
	}
	for _, old := range kr.GetKeys() {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, old) }) {
			if err := kr.RemoveKey(old); err != nil {
				return fmt.Errorf("cluster: remove key: %w", err)
			}
		}
	}
	n.log.Info("cluster keys set", "keys", len(keys))
	return nil
}

// LocalName is this node's name.
func (n *Node) LocalName() string { return n.name }

// Peers lists the peers that are alive (or suspect), not this node.
func (n *Node) Peers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for name, m := range n.members {
		if name != n.name && (m.state == StateAlive || m.state == StateSuspect) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func (n *Node) peerNodes() []memberlist.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []memberlist.Node
	for name, m := range n.members {
		if name != n.name && (m.state == StateAlive || m.state == StateSuspect) {
			out = append(out, m.node)
		}
	}
	return out
}

// ErrTooLarge is returned for a message over the limit.
var ErrTooLarge = errors.New("cluster: message too large")

// ErrUnknownPeer is returned by SendTo for a peer that is not alive.
var ErrUnknownPeer = errors.New("cluster: no such peer alive")

// frame prefixes msg with this node's name, which memberlist does not pass on.
func (n *Node) frame(msg []byte) []byte {
	b := make([]byte, 0, 1+len(n.name)+len(msg))
	b = append(b, byte(len(n.name)))
	b = append(b, n.name...)
	return append(b, msg...)
}

// Broadcast sends msg to every alive peer, best effort (one UDP datagram each).
func (n *Node) Broadcast(msg []byte) {
	if len(msg) > MaxDatagram || n.state.Load() != 1 {
		return
	}
	b := n.frame(msg)
	for _, p := range n.peerNodes() {
		if err := n.ml.SendBestEffort(&p, b); err != nil {
			n.log.Debug("cluster broadcast", "peer", p.Name, "err", err)
		}
	}
}

// SendTo sends msg to peer over TCP; nil means the peer received it.
func (n *Node) SendTo(peer string, msg []byte) error {
	if len(msg) > MaxReliable {
		return ErrTooLarge
	}
	if n.state.Load() != 1 {
		return errors.New("cluster: not running")
	}
	n.mu.Lock()
	m, ok := n.members[peer]
	var node memberlist.Node
	if ok {
		node = m.node
		ok = peer != n.name && (m.state == StateAlive || m.state == StateSuspect)
	}
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownPeer, peer)
	}
	return n.ml.SendReliable(&node, n.frame(msg))
}

var _ Transport = (*Node)(nil)

// delegate is memberlist's Delegate, kept off Node's method set.
type delegate Node

func (d *delegate) NodeMeta(limit int) []byte {
	if (*Node)(d).leaving.Load() {
		return []byte{metaLeaving}
	}
	return []byte{metaRunning}
}

func (d *delegate) NotifyMsg(b []byte) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return
	}
	if (*Node)(d).state.Load() == 2 {
		return // shut down: memberlist's stream handlers may still deliver
	}
	from, msg := string(b[1:1+int(b[0])]), b[1+int(b[0]):]
	if h := (*Node)(d).handler.Load(); h != nil {
		(*h).HandleMessage(from, msg)
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events is memberlist's EventDelegate. memberlist calls it holding its node
// lock, so handlers run later, in order, on the event queue's goroutine.
type events Node

func (e *events) NotifyJoin(mn *memberlist.Node) {
	n := (*Node)(e)
	if n.state.Load() == 2 {
		return // memberlist's timers outlive its Shutdown
	}
	n.mu.Lock()
	m := n.members[mn.Name]
	if m == nil {
		m = &member{}
		n.members[mn.Name] = m
	}
	m.node, m.state, m.since, m.leaving = copyNode(mn), StateAlive, time.Now(), isLeaving(mn)
	n.mu.Unlock()
	if mn.Name != n.name {
		n.log.Info("cluster peer joined", "peer", mn.Name, "addr", mn.Address())
		n.events.push(func(h Handler) { h.PeerJoined(mn.Name) }, n)
	}
}

func (e *events) NotifyLeave(mn *memberlist.Node) {
	n := (*Node)(e)
	if n.state.Load() == 2 {
		return // memberlist's timers outlive its Shutdown
	}
	n.mu.Lock()
	m := n.members[mn.Name]
	if m == nil {
		m = &member{node: copyNode(mn)}
		n.members[mn.Name] = m
	}
	m.state, m.since = StateDead, time.Now()
	if m.leaving || isLeaving(mn) {
		m.state = StateLeft
	}
	state := m.state
	n.mu.Unlock()
	if mn.Name != n.name {
		if state == StateLeft {
			n.log.Info("cluster peer left", "peer", mn.Name)
		} else {
			n.log.Warn("cluster peer dead", "peer", mn.Name, "addr", mn.Address())
		}
		n.events.push(func(h Handler) { h.PeerLeft(mn.Name) }, n)
	}
}

func (e *events) NotifyUpdate(mn *memberlist.Node) {
	n := (*Node)(e)
	if n.state.Load() == 2 {
		return // memberlist's timers outlive its Shutdown
	}
	n.mu.Lock()
	if m := n.members[mn.Name]; m != nil {
		m.node = copyNode(mn)
		m.leaving = m.leaving || isLeaving(mn)
	}
	n.mu.Unlock()
}

func isLeaving(mn *memberlist.Node) bool { return len(mn.Meta) > 0 && mn.Meta[0] == metaLeaving }

func copyNode(mn *memberlist.Node) memberlist.Node {
	c := *mn
	c.Addr = slices.Clone(mn.Addr)
	c.Meta = slices.Clone(mn.Meta)
	return c
}

// markSuspect records that this node suspects a peer (memberlist says so only in
// its log). The mark lapses when the peer refutes it, which memberlist does not
// report: after the longest suspicion a peer still listed is alive again.
func (n *Node) markSuspect(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m := n.members[name]; m != nil && m.state == StateAlive {
		m.state, m.since = StateSuspect, time.Now()
	}
}

// eventQueue runs membership handlers in order on one goroutine.
type eventQueue struct {
	mu      sync.Mutex
	q       []func()
	wake    chan struct{}
	stopped bool
	done    chan struct{}
}

func (q *eventQueue) start(wg *sync.WaitGroup) {
	q.wake, q.done = make(chan struct{}, 1), make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			q.mu.Lock()
			batch := q.q
			q.q = nil
			stopped := q.stopped
			q.mu.Unlock()
			for _, f := range batch {
				f()
			}
			if stopped && len(batch) == 0 {
				return
			}
			select {
			case <-q.wake:
			case <-q.done:
			}
		}
	}()
}

func (q *eventQueue) push(f func(Handler), n *Node) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped || q.wake == nil {
		return
	}
	q.q = append(q.q, func() {
		if h := n.handler.Load(); h != nil {
			f(*h)
		}
	})
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.stopped && q.done != nil {
		q.stopped = true
		close(q.done)
	}
}

// rateLimiter lets one log line through per interval and counts the rest.
type rateLimiter struct {
	mu         sync.Mutex
	every      time.Duration
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many lines were held back since.
func (r *rateLimiter) allow() (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		return false, 0
	}
	s := r.suppressed
	r.last, r.suppressed = now, 0
	return true, s
}
