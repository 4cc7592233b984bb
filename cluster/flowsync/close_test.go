package flowsync

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"weir/dataplane/flow"
)

// stubTransport records what is sent; its peers are fixed.
type stubTransport struct {
	mu    sync.Mutex
	peers []string
	sent  []Header
}

func (s *stubTransport) LocalName() string { return "me" }
func (s *stubTransport) Peers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.peers...)
}
func (s *stubTransport) Broadcast([]byte) {}
func (s *stubTransport) SendTo(_ string, m []byte) error {
	h, _ := DecodeHeader(m)
	s.mu.Lock()
	s.sent = append(s.sent, h)
	s.mu.Unlock()
	return nil
}

func (s *stubTransport) count(typ uint8) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, h := range s.sent {
		if h.Type == typ {
			n++
		}
	}
	return n
}

func newStubbed(cfg Config, peers ...string) (*Syncer, *stubTransport, *flow.Table) {
	tr := &stubTransport{peers: peers}
	cfg.Transport, cfg.NodeID, cfg.Logger, cfg.Refresh = tr, 1, quiet, -1
	s := New(cfg)
	tb := flow.NewTable(flow.Config{MaxFlows: 1024, NodeID: 1, Journal: s.Journal, Logger: quiet}, dropPolicy{}, nil)
	return s, tr, tb
}

// TestBulkStalledAsksAgain: the serving peer sends one chunk and its transfer then
// stops (a send failed, it died): no MsgBulkDone comes. The node asks again rather
// than waiting out BulkTimeout.
func TestBulkStalledAsksAgain(t *testing.T) {
	s, tr, tb := newStubbed(Config{BulkRetry: 20 * time.Millisecond, BulkTimeout: time.Hour}, "p")
	s.Start(tb)
	defer s.Close()
	var e Encoder
	e.Reset(Header{Type: MsgBulkChunk, Node: 2, Epoch: 1, Seq: 1})
	f := flow.FlowState{ID: 2<<37 | 1, Proto: 6, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
		SrcPort: 1000, DstPort: 443, Start: 1, Last: 2}
	e.Append(&f, MaxReliable)
	s.HandleMessage("p", e.Bytes())
	waitFor(t, 5*time.Second, "a second bulk request", func() bool { return tr.count(MsgBulkRequest) >= 2 })
}

// TestClose: Close releases whoever waits for Ready, Start after Close does
// nothing, and a message the transport still delivers after Close starts no work.
func TestClose(t *testing.T) {
	s, tr, tb := newStubbed(Config{BulkTimeout: time.Hour}, "p")
	s.Start(tb)
	s.Close()
	select {
	case <-s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("Ready not closed by Close: a waiter on it leaks")
	}
	var e Encoder
	e.Reset(Header{Type: MsgBulkRequest, Node: 2, Epoch: 1, Seq: 7})
	s.HandleMessage("p", e.Bytes())
	s.Start(tb) // no-op
	if n := tr.count(MsgBulkChunk) + tr.count(MsgBulkDone) + tr.count(MsgBulkRefused); n != 0 {
		t.Errorf("after Close: %d bulk messages sent", n)
	}
	s.Close() // twice: no panic
}

// TestForgetPeers: what is kept of a peer goes with PeerLeft, and an entry a late
// datagram brings back is forgotten once the peer has been silent long enough.
func TestForgetPeers(t *testing.T) {
	s, _, tb := newStubbed(Config{})
	s.Start(tb)
	defer s.Close()
	msg := func(seq uint64) []byte {
		var e Encoder
		e.Reset(Header{Type: MsgUpdate, Node: 2, Epoch: 1, Seq: seq})
		return e.Bytes()
	}
	for i := range 100 {
		name := "peer-" + string(rune('A'+i%26)) + string(rune('a'+i/26))
		s.HandleMessage(name, msg(1))
		s.PeerLeft(name)
		s.HandleMessage(name, msg(2)) // late
	}
	s.forget(time.Now().Add(forgetAfter + time.Second))
	s.pmu.Lock()
	h, p := len(s.heard), len(s.peers)
	s.pmu.Unlock()
	if h != 0 || p != 0 {
		t.Fatalf("after 100 peers came and went: %d heard, %d sequences kept", h, p)
	}
}
