// Package fakenet is an in-memory network of cluster sync transports for tests:
// datagrams (Broadcast) may be lost or delayed, reliable messages (SendTo) are only
// delayed; each node receives in order on a goroutine of its own, as a transport
// calls its handler.
package fakenet

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Handler receives a node's messages and membership changes (*flowsync.Syncer is one).
type Handler interface {
	HandleMessage(from string, msg []byte)
	PeerJoined(name string)
	PeerLeft(name string)
}

// Network connects Nodes.
type Network struct {
	mu      sync.Mutex
	nodes   map[string]*Node
	loss    float64
	delay   time.Duration
	rng     *rand.Rand
	Lost    atomic.Uint64 // datagrams lost on purpose or because an inbox was full
	Carried atomic.Uint64 // messages delivered
}

// New returns a network losing the fraction loss of datagrams and delaying every
// message by delay.
func New(loss float64, delay time.Duration, seed uint64) *Network {
	return &Network{nodes: map[string]*Node{}, loss: loss, delay: delay, rng: rand.New(rand.NewPCG(seed, 1))}
}

// SetLoss changes the datagram loss rate.
func (n *Network) SetLoss(loss float64) {
	n.mu.Lock()
	n.loss = loss
	n.mu.Unlock()
}

type message struct {
	from string
	data []byte
	at   time.Time
}

// Node is one member's Transport.
type Node struct {
	net   *Network
	name  string
	h     Handler
	inbox chan message
	done  chan struct{}
	wg    sync.WaitGroup
	muted atomic.Bool
}

// Add makes a node that is not yet alive: Attach makes it so.
func (n *Network) Add(name string) *Node {
	return &Node{net: n, name: name, inbox: make(chan message, 1<<14), done: make(chan struct{})}
}

// Attach gives the node its handler and makes it alive: the others' handlers hear
// PeerJoined.
func (nd *Node) Attach(h Handler) {
	nd.h = h
	nd.wg.Add(1)
	go nd.run()
	n := nd.net
	n.mu.Lock()
	others := make([]*Node, 0, len(n.nodes))
	for _, o := range n.nodes {
		others = append(others, o)
	}
	n.nodes[nd.name] = nd
	n.mu.Unlock()
	for _, o := range others {
		o.h.PeerJoined(nd.name)
	}
}

// Leave takes the node off the network: it receives nothing more, and the others
// hear PeerLeft.
func (nd *Node) Leave() {
	n := nd.net
	n.mu.Lock()
	if n.nodes[nd.name] != nd {
		n.mu.Unlock()
		return
	}
	delete(n.nodes, nd.name)
	others := make([]*Node, 0, len(n.nodes))
	for _, o := range n.nodes {
		others = append(others, o)
	}
	n.mu.Unlock()
	close(nd.done)
	nd.wg.Wait()
	for _, o := range others {
		o.h.PeerLeft(nd.name)
	}
}

// Mute makes the node drop everything it receives while it stays alive (a hung
// peer).
func (nd *Node) Mute(on bool) { nd.muted.Store(on) }

func (nd *Node) run() {
	defer nd.wg.Done()
	for {
		select {
		case <-nd.done:
			return
		case m := <-nd.inbox:
			if d := time.Until(m.at); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-nd.done:
					t.Stop()
					return
				}
			}
			if nd.muted.Load() {
				continue
			}
			nd.net.Carried.Add(1)
			nd.h.HandleMessage(m.from, m.data)
		}
	}
}

// LocalName implements the transport.
func (nd *Node) LocalName() string { return nd.name }

// Peers implements the transport: the alive nodes but this one.
func (nd *Node) Peers() []string {
	n := nd.net
	n.mu.Lock()
	defer n.mu.Unlock()
	p := make([]string, 0, len(n.nodes))
	for name := range n.nodes {
		if name != nd.name {
			p = append(p, name)
		}
	}
	return p
}

// Broadcast implements the transport: best effort, never blocking.
func (nd *Node) Broadcast(msg []byte) {
	n := nd.net
	at := time.Now().Add(n.delay)
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, o := range n.nodes {
		if name == nd.name {
			continue
		}
		if n.loss > 0 && n.rng.Float64() < n.loss {
			n.Lost.Add(1)
			continue
		}
		select {
		case o.inbox <- message{from: nd.name, data: append([]byte(nil), msg...), at: at}:
		default:
			n.Lost.Add(1)
		}
	}
}

// ErrNoPeer is SendTo's error for a node not on the network.
var ErrNoPeer = errors.New("fakenet: no such peer")

// SendTo implements the transport: reliable, waiting for room in the peer's inbox.
func (nd *Node) SendTo(peer string, msg []byte) error {
	n := nd.net
	n.mu.Lock()
	o := n.nodes[peer]
	n.mu.Unlock()
	if o == nil {
		return ErrNoPeer
	}
	select {
	case o.inbox <- message{from: nd.name, data: append([]byte(nil), msg...), at: time.Now().Add(n.delay)}:
		return nil
	case <-o.done:
		return ErrNoPeer
	}
}
