// Package clustertest is an in-memory network of cluster.Transports for tests of
// what runs over the fleet (the flow-state sync): nodes join and leave at will,
// best-effort messages can be lost, and every message is delivered on the
// receiver's own goroutine, in order, as memberlist delivers them off the sender's.
package clustertest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

	"weir/cluster"
)

// Network connects fake nodes.
type Network struct {
	mu      sync.Mutex
	nodes   map[string]*Node
	loss    float64
	rng     *rand.Rand
	pending sync.WaitGroup // deliveries queued and not yet handled
	closed  bool
}

// NewNetwork returns an empty network; seed makes its losses repeatable.
func NewNetwork(seed uint64) *Network {
	return &Network{nodes: map[string]*Node{}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// SetLoss sets the fraction (0-1) of Broadcast datagrams lost on the way to each
// peer. SendTo never loses.
func (nw *Network) SetLoss(p float64) {
	nw.mu.Lock()
	nw.loss = p
	nw.mu.Unlock()
}

// Node is a fake member; it implements cluster.Transport.
type Node struct {
	nw      *Network
	name    string
	handler cluster.Handler

	mu    sync.Mutex
	queue []func(cluster.Handler)
	wake  chan struct{}
	done  chan struct{}
	up    bool
}

// Add joins a node named name with handler h (nil: set it with SetHandler before
// anything is sent). The others see PeerJoined(name) and it sees PeerJoined for
// each of them.
func (nw *Network) Add(name string, h cluster.Handler) *Node {
	n := &Node{nw: nw, name: name, handler: h, wake: make(chan struct{}, 1), done: make(chan struct{}), up: true}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if _, dup := nw.nodes[name]; dup || nw.closed {
		panic(fmt.Sprintf("clustertest: node %q already on the network, or the network is closed", name))
	}
	go n.run()
	for _, other := range nw.sortedNodes() {
		other.deliver(func(h cluster.Handler) { h.PeerJoined(name) })
		n.deliver(func(h cluster.Handler) { h.PeerJoined(other.name) })
	}
	nw.nodes[name] = n
	return n
}

func (nw *Network) sortedNodes() []*Node {
	out := make([]*Node, 0, len(nw.nodes))
	for _, n := range nw.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *Node) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	return out
}

// Remove takes n off the network (a leave or a crash, as peers see it): the others
// see PeerLeft, and n sends and receives nothing more.
func (n *Node) Remove() {
	nw := n.nw
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.nodes[n.name] != n {
		return
	}
	delete(nw.nodes, n.name)
	for _, other := range nw.sortedNodes() {
		other.deliver(func(h cluster.Handler) { h.PeerLeft(n.name) })
	}
	n.stop()
}

// Wait returns when every message and event sent so far has been handled.
func (nw *Network) Wait() { nw.pending.Wait() }

// Close removes every node and stops their goroutines.
func (nw *Network) Close() {
	nw.mu.Lock()
	nw.closed = true
	nodes := nw.sortedNodes()
	nw.nodes = map[string]*Node{}
	nw.mu.Unlock()
	for _, n := range nodes {
		n.stop()
	}
}

// SetHandler sets what receives n's messages and events.
func (n *Node) SetHandler(h cluster.Handler) {
	n.mu.Lock()
	n.handler = h
	n.mu.Unlock()
}

// deliver queues f for n's goroutine; the network's lock is held.
func (n *Node) deliver(f func(cluster.Handler)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.up {
		return
	}
	n.nw.pending.Add(1)
	n.queue = append(n.queue, f)
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *Node) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.up {
		n.up = false
		close(n.done)
	}
}

func (n *Node) run() {
	for {
		n.mu.Lock()
		batch, h, up := n.queue, n.handler, n.up
		n.queue = nil
		n.mu.Unlock()
		for _, f := range batch {
			if h != nil && up {
				f(h)
			}
			n.nw.pending.Done()
		}
		if !up && len(batch) == 0 {
			return
		}
		select {
		case <-n.wake:
		case <-n.done:
		}
	}
}

// LocalName is n's name.
func (n *Node) LocalName() string { return n.name }

// Peers lists the other nodes on the network.
func (n *Node) Peers() []string {
	n.nw.mu.Lock()
	defer n.nw.mu.Unlock()
	var out []string
	if n.nw.nodes[n.name] != n {
		return nil
	}
	for _, o := range n.nw.sortedNodes() {
		if o != n {
			out = append(out, o.name)
		}
	}
	return out
}

// Broadcast sends msg to every other node, each copy lost with the network's loss
// rate; messages over cluster.MaxDatagram are dropped, as the real one does.
func (n *Node) Broadcast(msg []byte) {
	if len(msg) > cluster.MaxDatagram {
		return
	}
	nw := n.nw
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.nodes[n.name] != n {
		return
	}
	for _, o := range nw.sortedNodes() {
		if o == n || nw.loss > 0 && nw.rng.Float64() < nw.loss {
			continue
		}
		m, from := slices.Clone(msg), n.name
		o.deliver(func(h cluster.Handler) { h.HandleMessage(from, m) })
	}
}

// SendTo sends msg to peer, never lost.
func (n *Node) SendTo(peer string, msg []byte) error {
	if len(msg) > cluster.MaxReliable {
		return cluster.ErrTooLarge
	}
	nw := n.nw
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.nodes[n.name] != n {
		return errors.New("clustertest: this node is off the network")
	}
	o, ok := nw.nodes[peer]
	if !ok || o == n {
		return fmt.Errorf("%w: %s", cluster.ErrUnknownPeer, peer)
	}
	m, from := slices.Clone(msg), n.name
	o.deliver(func(h cluster.Handler) { h.HandleMessage(from, m) })
	return nil
}

var _ cluster.Transport = (*Node)(nil)
