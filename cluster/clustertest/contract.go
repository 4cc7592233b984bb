package clustertest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"weir/cluster"
)

// Message is one message a Recorder received.
type Message struct {
	From string
	Data []byte
}

// Recorder is a cluster.Handler that keeps what it is given.
type Recorder struct {
	mu       sync.Mutex
	changed  chan struct{}
	messages []Message
	joined   []string
	left     []string
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{changed: make(chan struct{})} }

func (r *Recorder) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// HandleMessage keeps a copy of msg.
func (r *Recorder) HandleMessage(from string, msg []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages = append(r.messages, Message{From: from, Data: bytes.Clone(msg)})
	r.notify()
}

// PeerJoined keeps name.
func (r *Recorder) PeerJoined(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.joined = append(r.joined, name)
	r.notify()
}

// PeerLeft keeps name.
func (r *Recorder) PeerLeft(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.left = append(r.left, name)
	r.notify()
}

// Messages returns what was received so far.
func (r *Recorder) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.messages)
}

// Joined and Left return the peers announced so far, in order.
func (r *Recorder) Joined() []string { r.mu.Lock(); defer r.mu.Unlock(); return slices.Clone(r.joined) }

// Left returns the peers announced gone so far, in order.
func (r *Recorder) Left() []string { r.mu.Lock(); defer r.mu.Unlock(); return slices.Clone(r.left) }

// WaitFor returns once cond holds (checked at each change and every 50ms), or false
// after timeout.
func (r *Recorder) WaitFor(timeout time.Duration, cond func(*Recorder) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if cond(r) {
			return true
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-deadline.C:
			return cond(r)
		}
	}
}

// Has reports whether a message from from with exactly data was received.
func (r *Recorder) Has(from string, data []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.messages, func(m Message) bool { return m.From == from && bytes.Equal(m.Data, data) })
}

// WaitPeers waits until every transport lists all the others as peers.
func WaitPeers(t testing.TB, ts []cluster.Transport, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		bad := ""
		for i, tr := range ts {
			var want []string
			for j, o := range ts {
				if j != i {
					want = append(want, o.LocalName())
				}
			}
			slices.Sort(want)
			got := slices.Sorted(slices.Values(tr.Peers()))
			if !slices.Equal(got, want) {
				bad = fmt.Sprintf("%s has peers %q, want %q", tr.LocalName(), got, want)
				break
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, bad)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, bounded by the deadline
	}
}

// Contract tests the cluster.Transport contract on at least three connected
// transports, rs[i] being ts[i]'s handler: distinct names, every peer listed and
// announced, broadcasts (up to cluster.MaxDatagram) reaching every peer with the
// sender's name, reliable messages of 1 MiB arriving whole, and errors for an
// unknown peer and an oversize message. Broadcasts are repeated until they arrive,
// so a lossy transport passes too.
func Contract(t *testing.T, ts []cluster.Transport, rs []*Recorder, timeout time.Duration) {
	t.Helper()
	if len(ts) < 3 || len(ts) != len(rs) {
		t.Fatalf("Contract needs 3 or more transports, each with its recorder")
	}
	names := map[string]bool{}
	for _, tr := range ts {
		if names[tr.LocalName()] || tr.LocalName() == "" {
			t.Fatalf("node name %q empty or used twice", tr.LocalName())
		}
		names[tr.LocalName()] = true
	}
	WaitPeers(t, ts, timeout)
	for i, r := range rs {
		ok := r.WaitFor(timeout, func(r *Recorder) bool {
			for j, o := range ts {
				if j != i && !slices.Contains(r.Joined(), o.LocalName()) {
					return false
				}
			}
			return true
		})
		if !ok {
			t.Errorf("%s: PeerJoined for %q, want every peer", ts[i].LocalName(), r.Joined())
		}
	}

	// Broadcast: a small message and one of MaxDatagram bytes from each node.
	for i, tr := range ts {
		for _, size := range []int{1, cluster.MaxDatagram} {
			msg := bytes.Repeat([]byte{byte(i + 1)}, size)
			msg[0] = byte(size)
			deadline := time.Now().Add(timeout)
			for {
				tr.Broadcast(msg)
				done := true
				for j, r := range rs {
					if j != i && !r.WaitFor(100*time.Millisecond, func(r *Recorder) bool { return r.Has(tr.LocalName(), msg) }) {
						done = false
					}
				}
				if done {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("a %d-byte broadcast from %s did not reach every peer in %s", size, tr.LocalName(), timeout)
				}
			}
		}
	}
	// Oversize broadcasts are not sent.
	before := len(rs[1].Messages())
	ts[0].Broadcast(make([]byte, cluster.MaxDatagram+1))

	// SendTo: 1 MiB, whole, to one peer only.
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := ts[1].SendTo(ts[2].LocalName(), big); err != nil {
		t.Fatalf("SendTo 1 MiB: %v", err)
	}
	if !rs[2].WaitFor(timeout, func(r *Recorder) bool { return r.Has(ts[1].LocalName(), big) }) {
		t.Fatalf("a 1 MiB SendTo from %s did not reach %s", ts[1].LocalName(), ts[2].LocalName())
	}
	small := []byte("hello")
	if err := ts[2].SendTo(ts[0].LocalName(), small); err != nil {
		t.Fatalf("SendTo: %v", err)
	}
	if !rs[0].WaitFor(timeout, func(r *Recorder) bool { return r.Has(ts[2].LocalName(), small) }) {
		t.Fatal("a SendTo did not arrive")
	}
	if err := ts[0].SendTo("no-such-node", small); !errors.Is(err, cluster.ErrUnknownPeer) {
		t.Errorf("SendTo(unknown) = %v, want ErrUnknownPeer", err)
	}
	if err := ts[0].SendTo(ts[1].LocalName(), make([]byte, cluster.MaxReliable+1)); !errors.Is(err, cluster.ErrTooLarge) {
		t.Errorf("SendTo(MaxReliable+1) = %v, want ErrTooLarge", err)
	}
	for _, m := range rs[1].Messages()[before:] {
		if len(m.Data) > cluster.MaxDatagram {
			t.Errorf("a broadcast of %d bytes was delivered, over MaxDatagram", len(m.Data))
		}
	}
	for j, r := range rs {
		for _, m := range r.Messages() {
			if m.From == ts[j].LocalName() {
				t.Errorf("%s received its own message", m.From)
			}
		}
	}
}
