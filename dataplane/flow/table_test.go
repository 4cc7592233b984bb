package flow

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

const sec = int64(time.Second)

var (
	client  = netip.MustParseAddr("10.0.0.1")
	server  = netip.MustParseAddr("10.0.0.200")
	router  = netip.MustParseAddr("10.0.0.254")
	client6 = netip.MustParseAddr("2001:db8::1")
	server6 = netip.MustParseAddr("2001:db8::2")
)

func tcp(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, flags uint8) *packet.Packet {
	return &packet.Packet{Family: family(src), Proto: packet.ProtoTCP, Src: src, Dst: dst,
		SrcPort: sport, DstPort: dport, TCPFlags: flags}
}

func udp(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) *packet.Packet {
	return &packet.Packet{Family: family(src), Proto: packet.ProtoUDP, Src: src, Dst: dst,
		SrcPort: sport, DstPort: dport}
}

func echo(src, dst netip.Addr, id uint16, typ uint8) *packet.Packet {
	return &packet.Packet{Family: family(src), Proto: packet.ProtoICMP, Src: src, Dst: dst,
		SrcPort: id, DstPort: id, ICMPType: typ}
}

// unreachable is an ICMP destination unreachable from src to dst quoting q.
func unreachable(src, dst netip.Addr, q *packet.Packet) *packet.Packet {
	return &packet.Packet{Family: family(src), Proto: packet.ProtoICMP, Src: src, Dst: dst,
		ICMPType: 3, ICMPCode: 3, Quote: packet.Quote{Valid: true, Proto: q.Proto,
			Src: q.Src, Dst: q.Dst, SrcPort: q.SrcPort, DstPort: q.DstPort}}
}

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return 4
	}
	return 6
}

func reverse(p *packet.Packet, flags uint8) *packet.Packet {
	r := *p
	r.Src, r.Dst, r.SrcPort, r.DstPort, r.TCPFlags = p.Dst, p.Src, p.DstPort, p.SrcPort, flags
	return &r
}

func withFlags(p *packet.Packet, flags uint8) *packet.Packet {
	r := *p
	r.TCPFlags = flags
	return &r
}

func cookie(c uint32) *geneve.AWS {
	return &geneve.AWS{EndpointID: 0xe1, AttachmentID: 0xa1, FlowCookie: c,
		Present: 1<<geneve.AWSTypeEndpointID | 1<<geneve.AWSTypeAttachmentID | 1<<geneve.AWSTypeFlowCookie}
}

// sink collects ended flows.
type sink struct {
	mu   sync.Mutex
	recs []Record
}

func (s *sink) onEnd(r *Record) {
	s.mu.Lock()
	s.recs = append(s.recs, *r)
	s.mu.Unlock()
}

func (s *sink) take() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recs
	s.recs = nil
	return r
}

// counting wraps a Decider and counts its calls.
type counting struct {
	d     Decider
	calls atomic.Int64
}

func (c *counting) Decide(p *packet.Packet) (policy.Action, int) {
	c.calls.Add(1)
	if c.d == nil {
		return policy.Allow, policy.NoRule
	}
	return c.d.Decide(p)
}

func newTest(tb testing.TB, cfg Config) (*Table, *sink, *counting) {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxFlows == 0 {
		cfg.MaxFlows = 1 << 12 // the default's 1M entries are slow to allocate in each test
	}
	s := &sink{}
	d := &counting{}
	return NewTable(cfg, d, s.onEnd), s, d
}

// lookup returns the record of p's flow.
func lookup(t *Table, scope uint64, p *packet.Packet) (Record, bool) {
	var k key
	keyOf(&k, scope, p.Proto, p.Src, p.Dst, p.SrcPort, p.DstPort)
	h := t.hash(&k)
	s := &t.shards[h>>t.shift]
	s.mu.Lock()
	defer s.mu.Unlock()
	var r Record
	if i := s.find(h, &k); i >= 0 {
		s.record(&r, i)
		return r, true
	}
	return r, false
}

func TestKeyOf(t *testing.T) {
	for _, p := range []*packet.Packet{
		tcp(client, 40000, server, 443, 0),
		tcp(server, 40000, client, 443, 0),
		udp(client6, 5353, server6, 53),
		udp(client, 53, client, 5353), // same address, ports decide
		echo(client, server, 7, 8),
	} {
		k1, lo1 := KeyOf(9, p)
		k2, lo2 := KeyOf(9, reverse(p, 0))
		if k1 != k2 {
			t.Errorf("%v: keys differ by direction: %+v %+v", p.Src, k1, k2)
		}
		if lo1 == lo2 && p.Src != p.Dst {
			t.Errorf("%v: srcIsLo same both ways", p.Src)
		}
		if c := k1.Lo.Compare(k1.Hi); c > 0 || (c == 0 && k1.LoPort > k1.HiPort) {
			t.Errorf("key not canonical: %+v", k1)
		}
		if k1.Scope != 9 || k1.Proto != p.Proto {
			t.Errorf("scope/proto lost: %+v", k1)
		}
		if k3, _ := KeyOf(10, p); k3 == k1 {
			t.Errorf("scope not part of the key")
		}
	}
}

func TestBothDirectionsShareEntry(t *testing.T) {
	tb, sk, _ := newTest(t, Config{MaxFlows: DefaultMaxFlows})
	syn := tcp(client, 40000, server, 443, packet.TCPSyn)
	r1 := tb.Track(1, syn, 60, nil, 1*sec)
	if !r1.Created || !r1.ToServer || r1.FlowID == 0 {
		t.Fatalf("first packet: %+v", r1)
	}
	r2 := tb.Track(1, reverse(syn, packet.TCPSyn|packet.TCPAck), 60, nil, 2*sec)
	if r2.Created || r2.ToServer || r2.FlowID != r1.FlowID {
		t.Fatalf("reply: %+v (first %+v)", r2, r1)
	}
	tb.Track(1, withFlags(syn, packet.TCPAck), 52, nil, 3*sec)
	tb.Track(1, withFlags(syn, packet.TCPAck|packet.TCPPsh), 552, nil, 4*sec)
	tb.Track(1, reverse(syn, packet.TCPAck|packet.TCPPsh), 1452, nil, 5*sec)
	// The same 5-tuple in another tunnel scope is another flow.
	if r := tb.Track(2, syn, 60, nil, 5*sec); !r.Created || r.FlowID == r1.FlowID {
		t.Fatalf("other scope: %+v", r)
	}
	if n := tb.Active(); n != 2 {
		t.Fatalf("Active = %d, want 2", n)
	}
	if n := tb.Flush(6 * sec); n != 2 {
		t.Fatalf("Flush = %d", n)
	}
	var got *Record
	for _, r := range sk.take() {
		if r.ID == r1.FlowID {
			got = &r
		}
	}
	if got == nil {
		t.Fatal("flow not emitted")
	}
	want := Record{
		ID: r1.FlowID, Proto: packet.ProtoTCP, Src: client, Dst: server, SrcPort: 40000, DstPort: 443,
		Start: time.Unix(1, 0), End: time.Unix(5, 0),
		PktsToServer: 3, PktsToClient: 2, BytesToServer: 60 + 52 + 552, BytesToClient: 60 + 1452,
		State: StateEstablished, Reason: EndShutdown,
		TCPFlagsToServer: packet.TCPSyn | packet.TCPAck | packet.TCPPsh,
		TCPFlagsToClient: packet.TCPSyn | packet.TCPAck | packet.TCPPsh,
		Action:           policy.Allow, Rule: policy.NoRule,
		Background: true, // emitted by Flush
	}
	if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
		t.Errorf("start/end = %v/%v, want %v/%v", got.Start, got.End, want.Start, want.End)
	}
	got.Start, got.End = want.Start, want.End
	if *got != want {
		t.Errorf("record\n got %+v\nwant %+v", *got, want)
	}
}

// The client is whoever sent the first packet, even when it is the higher endpoint.
func TestClientIsFirstSender(t *testing.T) {
	tb, sk, _ := newTest(t, Config{})
	p := udp(server6, 9999, client6, 53) // server6 > client6: the client is Hi
	tb.Track(0, p, 100, nil, sec)
	if r := tb.Track(0, reverse(p, 0), 300, nil, 2*sec); r.ToServer {
		t.Fatal("reply marked to server")
	}
	if r := tb.Track(0, p, 100, nil, 3*sec); !r.ToServer {
		t.Fatal("request marked to client")
	}
	tb.Flush(0)
	r := sk.take()[0]
	if r.Src != server6 || r.SrcPort != 9999 || r.Dst != client6 || r.DstPort != 53 {
		t.Errorf("orientation: %v:%d -> %v:%d", r.Src, r.SrcPort, r.Dst, r.DstPort)
	}
	if r.PktsToServer != 2 || r.PktsToClient != 1 || r.BytesToServer != 200 || r.BytesToClient != 300 {
		t.Errorf("counters: %+v", r)
	}
	if r.State != StateEstablished {
		t.Errorf("state %v", r.State)
	}
}

func TestTCPStateMachine(t *testing.T) {
	const (
		S = packet.TCPSyn
		A = packet.TCPAck
		F = packet.TCPFin
		R = packet.TCPRst
		P = packet.TCPPsh
	)
	type step struct {
		toServer bool
		flags    uint8
		want     State
	}
	c := func(f uint8, w State) step { return step{true, f, w} }
	s := func(f uint8, w State) step { return step{false, f, w} }
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"handshake", []step{c(S, StateNew), s(S|A, StateEstablished), c(A, StateEstablished)}},
		{"syn retransmit stays new", []step{c(S, StateNew), c(S, StateNew), c(A, StateNew)}},
		{"any server packet establishes", []step{c(A, StateNew), s(A|P, StateEstablished)}},
		{"fin then fin closes", []step{c(S, StateNew), s(S|A, StateEstablished), c(F|A, StateClosing),
			s(A, StateClosing), s(F|A, StateClosed), c(A, StateClosed)}},
		{"server fin first", []step{c(S, StateNew), s(S|A, StateEstablished), s(F|A, StateClosing),
			s(F|A, StateClosing), c(F|A, StateClosed)}},
		{"rst closes", []step{c(S, StateNew), s(R|A, StateClosed)}},
		{"rst from client mid-flow", []step{c(S, StateNew), s(S|A, StateEstablished), c(R, StateClosed)}},
		{"rst while closing", []step{c(S, StateNew), s(S|A, StateEstablished), c(F, StateClosing), s(R, StateClosed)}},
		{"first packet fin", []step{c(F|A, StateClosing), s(F|A, StateClosed)}},
		{"first packet rst", []step{c(R, StateClosed)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, _, _ := newTest(t, Config{})
			p := tcp(client, 1234, server, 80, 0)
			var id uint64
			for i, st := range tc.steps {
				q := withFlags(p, st.flags)
				if !st.toServer {
					q = reverse(p, st.flags)
				}
				r := tb.Track(0, q, 40, nil, int64(i+1)*sec)
				if i == 0 {
					id = r.FlowID
				} else if r.FlowID != id {
					t.Fatalf("step %d: flow changed", i)
				}
				e, _ := lookup(tb, 0, p)
				if e.State != st.want {
					t.Fatalf("step %d (%#x toServer=%v): state %v, want %v", i, st.flags, st.toServer, e.State, st.want)
				}
			}
		})
	}
}

func TestNonTCPState(t *testing.T) {
	tb, _, _ := newTest(t, Config{})
	for _, p := range []*packet.Packet{udp(client, 5000, server, 53), echo(client6, server6, 99, 128)} {
		tb.Track(0, p, 50, nil, sec)
		tb.Track(0, p, 50, nil, 2*sec)
		if e, _ := lookup(tb, 0, p); e.State != StateNew {
			t.Errorf("proto %d: one direction: %v", p.Proto, e.State)
		}
		tb.Track(0, reverse(p, 0), 50, nil, 3*sec)
		if e, _ := lookup(tb, 0, p); e.State != StateEstablished {
			t.Errorf("proto %d: both directions: %v", p.Proto, e.State)
		}
	}
}

func TestTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		setup   func(tb *Table, p *packet.Packet) // after the first packet at t=0
		p       *packet.Packet
		timeout time.Duration
	}{
		{name: "tcp default", p: tcp(client, 1, server, 2, packet.TCPSyn), timeout: 350 * time.Second},
		{name: "tcp established", p: tcp(client, 1, server, 2, packet.TCPSyn), timeout: 350 * time.Second,
			setup: func(tb *Table, p *packet.Packet) { tb.Track(0, reverse(p, packet.TCPSyn|packet.TCPAck), 1, nil, 0) }},
		{name: "tcp closing", p: tcp(client, 1, server, 2, packet.TCPFin), timeout: 350 * time.Second},
		{name: "tcp closed", p: tcp(client, 1, server, 2, packet.TCPSyn), timeout: 5 * time.Second,
			setup: func(tb *Table, p *packet.Packet) { tb.Track(0, reverse(p, packet.TCPRst), 1, nil, 0) }},
		{name: "udp default", p: udp(client, 1, server, 2), timeout: 120 * time.Second},
		{name: "icmp default", p: echo(client, server, 1, 8), timeout: 120 * time.Second},
		{name: "tcp custom", cfg: Config{TCPTimeout: time.Hour}, p: tcp(client, 1, server, 2, 0), timeout: time.Hour},
		{name: "udp custom", cfg: Config{OtherTimeout: 30 * time.Second}, p: udp(client6, 1, server6, 2), timeout: 30 * time.Second},
		{name: "closed custom", cfg: Config{ClosedTimeout: time.Minute}, p: tcp(client, 1, server, 2, packet.TCPRst), timeout: time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, sk, _ := newTest(t, tc.cfg)
			tb.Track(0, tc.p, 1, nil, 0)
			if tc.setup != nil {
				tc.setup(tb, tc.p)
			}
			to := int64(tc.timeout)
			if n := tb.Expire(to); n != 0 || tb.Active() != 1 {
				t.Fatalf("expired at exactly the timeout: %d", n)
			}
			if n := tb.Expire(to + 1); n != 1 || tb.Active() != 0 {
				t.Fatalf("Expire past the timeout = %d, active %d", n, tb.Active())
			}
			recs := sk.take()
			if len(recs) != 1 || recs[0].Reason != EndTimeout {
				t.Fatalf("records %+v", recs)
			}
		})
	}
}

// A packet that finds its flow idle past the timeout (Expire has not run) starts a
// new flow; the old one ends with EndTimeout.
func TestTimeoutOnLookup(t *testing.T) {
	tb, sk, dec := newTest(t, Config{})
	p := udp(client, 1, server, 2)
	r1 := tb.Track(0, p, 1, nil, 0)
	r2 := tb.Track(0, reverse(p, 0), 1, nil, 120*sec+1)
	if !r2.Created || r2.FlowID == r1.FlowID || !r2.ToServer {
		t.Fatalf("after idle timeout: %+v", r2)
	}
	recs := sk.take()
	if len(recs) != 1 || recs[0].ID != r1.FlowID || recs[0].Reason != EndTimeout {
		t.Fatalf("records %+v", recs)
	}
	if dec.calls.Load() != 2 || tb.Active() != 1 {
		t.Fatalf("decide calls %d, active %d", dec.calls.Load(), tb.Active())
	}
	tb.Flush(0)
	if r := sk.take()[0]; r.Src != server || r.PktsToServer != 1 || r.PktsToClient != 0 {
		t.Fatalf("new flow %+v", r)
	}
}

// Expire keeps refreshed flows and ends only the idle ones, with mixed timeouts.
func TestExpireMixed(t *testing.T) {
	tb, sk, _ := newTest(t, Config{MaxFlows: 100})
	var ps []*packet.Packet
	for i := range 30 {
		var p *packet.Packet
		switch i % 3 {
		case 0:
			p = tcp(client, uint16(1000+i), server, 80, packet.TCPSyn)
		case 1:
			p = udp(client, uint16(1000+i), server, 53)
		default:
			p = tcp(client, uint16(1000+i), server, 80, packet.TCPRst)
		}
		ps = append(ps, p)
		tb.Track(0, p, 1, nil, int64(i)*sec)
	}
	// Refresh the first ten at t=100 s. The closed ones among them were past their
	// 5 s: their packets end them and start new (closed) flows.
	for _, p := range ps[:10] {
		tb.Track(0, p, 1, nil, 100*sec)
	}
	if recs := sk.take(); len(recs) != 3 || recs[0].Reason != EndTimeout || recs[0].State != StateClosed {
		t.Fatalf("refresh ended %+v", recs)
	}
	// At t=200 s: closed flows (5 s) idle since <30 s end, except refreshed closed ones
	// (idle 100 s, also past 5 s); UDP idle since <30 s ends (>120 s), refreshed UDP
	// (100 s) stays; TCP (350 s) all stay.
	n := tb.Expire(200 * sec)
	want := 0
	for i := range 30 {
		switch i % 3 {
		case 1:
			if i >= 10 {
				want++
			}
		case 2:
			want++
		}
	}
	if n != want {
		t.Fatalf("Expire = %d, want %d", n, want)
	}
	if got := len(sk.take()); got != want {
		t.Fatalf("%d records", got)
	}
	if n := tb.Expire(200*sec + 350*sec); n != 30-want {
		t.Fatalf("second Expire = %d, want %d", n, 30-want)
	}
}

func TestEviction(t *testing.T) {
	var logBuf bytes.Buffer
	var logMu sync.Mutex
	cfg := Config{MaxFlows: 4, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logBuf}, nil))}
	tb, sk, _ := newTest(t, cfg)
	var ids []uint64
	for i := range 4 {
		ids = append(ids, tb.Track(0, udp(client, uint16(i), server, 53), 1, nil, int64(i+1)*sec).FlowID)
	}
	tb.Track(0, udp(client, 0, server, 53), 1, nil, 5*sec)                // flow 0 is now the most recent
	tb.Track(0, tcp(client, 1, server, 53, packet.TCPSyn), 1, nil, 6*sec) // flow 1 (UDP) is evicted
	if tb.Evicted() != 1 || tb.Active() != 4 {
		t.Fatalf("evicted %d active %d", tb.Evicted(), tb.Active())
	}
	recs := sk.take()
	if len(recs) != 1 || recs[0].ID != ids[1] || recs[0].Reason != EndForced {
		t.Fatalf("records %+v, want flow %d forced", recs, ids[1])
	}
	// LRU spans the timeout classes: the TCP flow is now newer than flows 2, 3.
	tb.Track(0, udp(client, 9, server, 53), 1, nil, 7*sec)
	tb.Track(0, udp(client, 10, server, 53), 1, nil, 8*sec)
	recs = sk.take()
	if len(recs) != 2 || recs[0].ID != ids[2] || recs[1].ID != ids[3] {
		t.Fatalf("records %+v, want flows %d %d", recs, ids[2], ids[3])
	}
	if tb.Evicted() != 3 {
		t.Fatalf("evicted %d", tb.Evicted())
	}
	// Logged once per 10 s of packet time, with the count since the last line.
	logMu.Lock()
	lines := strings.Count(logBuf.String(), "\n")
	logMu.Unlock()
	if lines != 1 {
		t.Fatalf("%d log lines:\n%s", lines, logBuf.String())
	}
	tb.Track(0, udp(client, 11, server, 53), 1, nil, 17*sec)
	logMu.Lock()
	out := logBuf.String()
	logMu.Unlock()
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, "evicted=1 ") || !strings.Contains(out, "evicted=3 ") {
		t.Fatalf("log:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// MaxFlows is split across shards and never exceeded.
func TestCapacity(t *testing.T) {
	for _, max := range []int{1, 3, 127, 128, 1000, 20000} {
		tb, sk, _ := newTest(t, Config{MaxFlows: max})
		sum := 0
		for i := range tb.shards {
			sum += tb.shards[i].limit
			if tb.shards[i].limit < 1 {
				t.Fatalf("max %d: shard %d limit %d", max, i, tb.shards[i].limit)
			}
		}
		if sum != max {
			t.Fatalf("max %d: limits sum to %d", max, sum)
		}
		n := 3 * max
		for i := range n {
			tb.Track(uint64(i), udp(client, 1, server, 2), 1, nil, int64(i))
		}
		if tb.Active() > max || tb.Active() == 0 {
			t.Fatalf("max %d: active %d", max, tb.Active())
		}
		if int(tb.Evicted())+tb.Active() != n || len(sk.take()) != int(tb.Evicted()) {
			t.Fatalf("max %d: evicted %d active %d", max, tb.Evicted(), tb.Active())
		}
	}
}

func TestFlush(t *testing.T) {
	tb, sk, _ := newTest(t, Config{MaxFlows: 2000})
	const n = 1000 // 8 shards: more than a pending buffer per shard
	for i := range n {
		tb.Track(uint64(i), tcp(client, uint16(i), server, 443, packet.TCPSyn), 1, nil, int64(i))
	}
	if got := tb.Flush(0); got != n {
		t.Fatalf("Flush = %d", got)
	}
	recs := sk.take()
	if len(recs) != n || tb.Active() != 0 {
		t.Fatalf("%d records, active %d", len(recs), tb.Active())
	}
	for _, r := range recs {
		if r.Reason != EndShutdown {
			t.Fatalf("reason %v", r.Reason)
		}
	}
	if tb.Flush(0) != 0 || tb.Expire(1<<62) != 0 {
		t.Fatal("flows left")
	}
	// The table works after a flush.
	if r := tb.Track(0, udp(client, 1, server, 2), 1, nil, 0); !r.Created {
		t.Fatal("not created after flush")
	}
}

func TestPolicySticky(t *testing.T) {
	pol := &policy.Policy{Default: policy.Allow, Rules: []policy.Rule{
		{Action: policy.Allow, Proto: int(packet.ProtoTCP), DstPort: policy.PortRange{Lo: 443, Hi: 443}},
		{Action: policy.Drop, Proto: policy.AnyProto, Dst: netip.MustParsePrefix("10.0.0.200/32")},
	}}
	dec := &counting{d: pol}
	sk := &sink{}
	tb := NewTable(Config{MaxFlows: 1024}, dec, sk.onEnd)

	drop := tcp(client, 5555, server, 22, packet.TCPSyn)
	if r := tb.Track(0, drop, 1, nil, 1); r.Action != policy.Drop {
		t.Fatalf("ssh: %v", r.Action)
	}
	// The replies, decided on their own, would get the default (allow); the verdict
	// is the flow's.
	for i := range 3 {
		if r := tb.Track(0, reverse(drop, packet.TCPSyn|packet.TCPAck), 1, nil, int64(2+i)); r.Action != policy.Drop {
			t.Fatalf("reply %d: %v", i, r.Action)
		}
		if r := tb.Track(0, withFlags(drop, packet.TCPAck), 1, nil, int64(2+i)); r.Action != policy.Drop {
			t.Fatalf("request %d: %v", i, r.Action)
		}
	}
	allow := tcp(client, 5556, server, 443, packet.TCPSyn)
	tb.Track(0, allow, 1, nil, 10)
	// The server's packets (source port 443, destination 10.0.0.1) would hit no rule
	// on their own; they keep the flow's rule.
	if r := tb.Track(0, reverse(allow, packet.TCPAck), 1, nil, 11); r.Action != policy.Allow {
		t.Fatalf("allowed reply: %v", r.Action)
	}
	// A flow started by the server side towards the client is decided on its own.
	back := udp(server, 53, client, 4000)
	if r := tb.Track(0, back, 1, nil, 12); r.Action != policy.Allow {
		t.Fatalf("reverse flow: %v", r.Action)
	}
	if r := tb.Track(0, reverse(back, 0), 1, nil, 13); r.Action != policy.Allow {
		t.Fatalf("reverse flow reply: %v", r.Action)
	}
	if n := dec.calls.Load(); n != 3 {
		t.Fatalf("Decide called %d times, want 3", n)
	}
	tb.Flush(0)
	rules := map[uint16]int{}
	for _, r := range sk.take() {
		rules[r.SrcPort] = r.Rule
		if r.SrcPort == 5555 && r.Action != policy.Drop {
			t.Errorf("record action %v", r.Action)
		}
	}
	if rules[5555] != 1 || rules[5556] != 0 || rules[53] != policy.NoRule {
		t.Fatalf("rules %v", rules)
	}
}

func TestICMPError(t *testing.T) {
	tb, sk, dec := newTest(t, Config{})
	syn := tcp(client, 40000, server, 443, packet.TCPSyn)
	f := tb.Track(7, syn, 60, nil, 1)

	// A router tells the client its SYN could not be delivered: counted to the client.
	r := tb.Track(7, unreachable(router, client, syn), 88, nil, 2)
	if r.Created || r.FlowID != f.FlowID || r.ToServer {
		t.Fatalf("error to client: %+v", r)
	}
	// A router on the other side tells the server its SYN+ACK could not be delivered:
	// counted to the server.
	r = tb.Track(7, unreachable(router, server, reverse(syn, packet.TCPSyn|packet.TCPAck)), 90, nil, 3)
	if r.Created || r.FlowID != f.FlowID || !r.ToServer {
		t.Fatalf("error to server: %+v", r)
	}
	// Unknown quoted flow (other scope): the error is a flow of its own.
	r = tb.Track(8, unreachable(router, client, syn), 88, nil, 4)
	if !r.Created || r.FlowID == f.FlowID {
		t.Fatalf("unknown quote: %+v", r)
	}
	if dec.calls.Load() != 2 || tb.Active() != 2 {
		t.Fatalf("decide calls %d active %d", dec.calls.Load(), tb.Active())
	}
	tb.Flush(0)
	for _, rec := range sk.take() {
		if rec.ID != f.FlowID {
			if rec.Proto != packet.ProtoICMP || rec.Src != router {
				t.Errorf("error flow %+v", rec)
			}
			continue
		}
		if rec.PktsToServer != 2 || rec.BytesToServer != 150 || rec.PktsToClient != 1 || rec.BytesToClient != 88 {
			t.Errorf("quoted flow counters %+v", rec)
		}
		if rec.State != StateNew || rec.TCPFlagsToClient != 0 {
			t.Errorf("the error changed TCP state: %+v", rec)
		}
	}
}

// The quoted flow's verdict applies to its ICMP errors.
func TestICMPErrorVerdict(t *testing.T) {
	pol := &policy.Policy{Rules: []policy.Rule{{Action: policy.Drop, Proto: int(packet.ProtoUDP)}}}
	tb := NewTable(Config{MaxFlows: 1024}, pol, nil)
	q := udp(client6, 1000, server6, 53)
	tb.Track(0, q, 1, nil, 0)
	if r := tb.Track(0, unreachable(server6, client6, q), 1, nil, 1); r.Action != policy.Drop || r.Created {
		t.Fatalf("%+v", r)
	}
}

func TestCookieRestart(t *testing.T) {
	tb, sk, dec := newTest(t, Config{})
	syn := tcp(client, 40000, server, 443, packet.TCPSyn)
	f1 := tb.Track(0, syn, 1, cookie(0xaaaa), 1)
	// A retransmitted SYN with the same cookie is the same flow.
	if r := tb.Track(0, syn, 1, cookie(0xaaaa), 2); r.Created || r.FlowID != f1.FlowID {
		t.Fatalf("retransmit: %+v", r)
	}
	tb.Track(0, reverse(syn, packet.TCPSyn|packet.TCPAck), 1, cookie(0xaaaa), 3)
	// A non-SYN packet with another cookie only updates the stored options.
	if r := tb.Track(0, withFlags(syn, packet.TCPAck), 1, cookie(0xbbbb), 4); r.Created {
		t.Fatalf("ack with new cookie started a flow")
	}
	if e, _ := lookup(tb, 0, syn); e.AWS != *cookie(0xbbbb) {
		t.Fatalf("stored options %+v", e.AWS)
	}
	// Packets without GWLB options keep the stored ones.
	tb.Track(0, withFlags(syn, packet.TCPAck), 1, nil, 5)
	// A SYN with a new cookie: GWLB reused the 5-tuple for a new flow.
	f2 := tb.Track(0, syn, 1, cookie(0xcccc), 6)
	if !f2.Created || f2.FlowID == f1.FlowID {
		t.Fatalf("new cookie: %+v", f2)
	}
	recs := sk.take()
	if len(recs) != 1 || recs[0].ID != f1.FlowID || recs[0].Reason != EndForced || recs[0].AWS != *cookie(0xbbbb) {
		t.Fatalf("old flow %+v", recs)
	}
	if dec.calls.Load() != 2 || tb.Active() != 1 {
		t.Fatalf("decide %d active %d", dec.calls.Load(), tb.Active())
	}
	// A SYN without stored options (or with none) is not a cookie change.
	tb2, _, _ := newTest(t, Config{})
	a := tb2.Track(0, syn, 1, nil, 1)
	if r := tb2.Track(0, syn, 1, cookie(1), 2); r.FlowID != a.FlowID {
		t.Fatal("options appearing restarted the flow")
	}
	if r := tb2.Track(0, syn, 1, nil, 3); r.FlowID != a.FlowID {
		t.Fatal("options disappearing restarted the flow")
	}
}

func TestSYNOnClosedRestarts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close []*packet.Packet
	}{
		{"closed by rst", []*packet.Packet{reverse(tcp(client, 1, server, 2, 0), packet.TCPRst|packet.TCPAck)}},
		{"closed by fins", []*packet.Packet{
			tcp(client, 1, server, 2, packet.TCPFin|packet.TCPAck),
			reverse(tcp(client, 1, server, 2, 0), packet.TCPFin|packet.TCPAck)}},
		{"closing", []*packet.Packet{tcp(client, 1, server, 2, packet.TCPFin|packet.TCPAck)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, sk, dec := newTest(t, Config{})
			syn := tcp(client, 1, server, 2, packet.TCPSyn)
			f1 := tb.Track(0, syn, 1, nil, 1)
			tb.Track(0, reverse(syn, packet.TCPSyn|packet.TCPAck), 1, nil, 2)
			for _, p := range tc.close {
				tb.Track(0, p, 1, nil, 3)
			}
			// A bare ACK does not restart.
			if r := tb.Track(0, withFlags(syn, packet.TCPAck), 1, nil, 4); r.Created {
				t.Fatal("ack restarted")
			}
			f2 := tb.Track(0, syn, 1, nil, 5)
			if !f2.Created || f2.FlowID == f1.FlowID {
				t.Fatalf("%+v", f2)
			}
			if e, _ := lookup(tb, 0, syn); e.State != StateNew || e.PktsToServer != 1 || e.PktsToClient != 0 {
				t.Fatalf("new flow entry %+v", e)
			}
			recs := sk.take()
			if len(recs) != 1 || recs[0].Reason != EndForced || recs[0].ID != f1.FlowID {
				t.Fatalf("%+v", recs)
			}
			if dec.calls.Load() != 2 {
				t.Fatalf("decide %d", dec.calls.Load())
			}
		})
	}
}

func TestFlowIDs(t *testing.T) {
	tb, _, _ := newTest(t, Config{MaxFlows: 1 << 14})
	tb.idBase = idMask - 100 // wrap around within the test
	seen := map[uint64]bool{}
	for i := range 5000 {
		id := tb.Track(uint64(i), udp(client, 1, server, 2), 1, nil, 0).FlowID
		if id == 0 || id >= 1<<53 || seen[id] {
			t.Fatalf("flow %d: bad id %d", i, id)
		}
		seen[id] = true
	}
	// Two nodes, even with the same random base, never share an id; ids carry the
	// node and stay below 2^53 at the highest node id.
	for _, nodes := range [][2]uint16{{1, 2}, {0, MaxNodeID}} {
		a, _, _ := newTest(t, Config{MaxFlows: 1 << 14, NodeID: nodes[0]})
		b, _, _ := newTest(t, Config{MaxFlows: 1 << 14, NodeID: nodes[1]})
		a.idBase, b.idBase = idMask-100, idMask-100
		ids := map[uint64]bool{}
		for i := range 5000 {
			for j, tb := range []*Table{a, b} {
				id := tb.Track(uint64(i), udp(client, 1, server, 2), 1, nil, 0).FlowID
				if id == 0 || id >= 1<<53 || ids[id] || NodeOfID(id) != nodes[j] {
					t.Fatalf("node %d flow %d: bad id %#x", nodes[j], i, id)
				}
				ids[id] = true
			}
		}
	}
	// Two tables number differently.
	tb2, _, _ := newTest(t, Config{})
	if tb2.Track(0, udp(client, 1, server, 2), 1, nil, 0).FlowID ==
		NewTable(Config{}, nil, nil).Track(0, udp(client, 1, server, 2), 1, nil, 0).FlowID {
		t.Fatal("tables share an id sequence")
	}
}

// onEnd runs without table locks: it may call back into the table.
func TestOnEndUnlocked(t *testing.T) {
	var tb *Table
	calls := 0
	tb = NewTable(Config{MaxFlows: 2, Logger: slog.New(slog.DiscardHandler)}, nil, func(r *Record) {
		calls++
		_ = tb.Active()
		_ = tb.Evicted()
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5 {
			tb.Track(0, udp(client, uint16(i), server, 2), 1, nil, int64(i))
		}
		tb.Expire(1 << 50)
		for i := range 2 {
			tb.Track(0, udp(client, uint16(i), server, 2), 1, nil, 1<<50)
		}
		tb.Flush(0)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: onEnd called with a lock held")
	}
	if calls != 7 {
		t.Fatalf("onEnd called %d times", calls)
	}
}

// The index survives random inserts and removals under heavy hash collisions.
func TestIndexRandom(t *testing.T) {
	tb, _, _ := newTest(t, Config{MaxFlows: 64})
	s := &tb.shards[0]
	if len(tb.shards) != 1 {
		t.Fatal("want one shard")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	live := map[key]int32{}
	// Few homes, probe runs wrapping around the end of the 128 slots: keys whose
	// home is one of the last 8 slots.
	hashOf := func(k key) uint64 { return tb.hash(&k) }
	var pool []key
	for n := uint64(0); len(pool) < 100; n++ {
		var k key
		binary.LittleEndian.PutUint64(k.scope[:], n)
		if uint32(hashOf(k))&s.mask >= 120 {
			pool = append(pool, k)
		}
	}
	far := 0 // slots too far from home to say how far
	for step := range 20000 {
		k := pool[rng.IntN(len(pool))]
		h := hashOf(k)
		if i, ok := live[k]; ok {
			if got := s.find(h, &k); got != i {
				t.Fatalf("step %d: find %v = %d, want %d", step, k, got, i)
			}
			s.remove(i)
			delete(live, k)
		} else if s.n < s.limit {
			if s.find(h, &k) != -1 {
				t.Fatalf("step %d: found absent %v", step, k)
			}
			i := s.alloc()
			s.insert(h, i)
			s.slab[i] = entry{key: k, class: classOther}
			s.link(i)
			s.n++
			live[k] = i
		}
		if step%97 == 0 {
			for k, i := range live {
				if got := s.find(hashOf(k), &k); got != i {
					t.Fatalf("step %d: find %v = %d, want %d", step, k, got, i)
				}
			}
			used := 0
			for _, sl := range s.slots {
				if sl != 0 {
					used++
				}
				if uint32(sl)>>tb.idxBits&distMax == distMax {
					far++
				}
			}
			if used != len(live) || s.n != len(live) {
				t.Fatalf("step %d: %d slots used, n %d, %d live", step, used, s.n, len(live))
			}
		}
	}
	if far == 0 {
		t.Fatal("no probe run long enough to saturate a slot's distance")
	}
}

// Several workers on shared flows, with Expire running: every packet is counted in
// exactly one ended flow, and ids are unique.
func TestConcurrent(t *testing.T) {
	var (
		mu   sync.Mutex
		pkts uint64
		ids  = map[uint64]bool{}
		dup  bool
	)
	tb := NewTable(Config{MaxFlows: 500, OtherTimeout: time.Millisecond, Logger: slog.New(slog.DiscardHandler)},
		nil, func(r *Record) {
			mu.Lock()
			pkts += r.PktsToServer + r.PktsToClient
			if ids[r.ID] {
				dup = true
			}
			ids[r.ID] = true
			mu.Unlock()
		})
	const workers, perWorker = 4, 20000
	var clock atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				tb.Expire(clock.Load())
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for range perWorker {
				now := clock.Add(1000)
				port := uint16(rng.IntN(1000))
				var p *packet.Packet
				switch rng.IntN(3) {
				case 0:
					p = udp(client, port, server, 53)
				case 1:
					p = reverse(udp(client, port, server, 53), 0)
				default:
					p = tcp(client6, port, server6, 443, uint8(rng.IntN(32)))
				}
				if r := tb.Track(uint64(port%3), p, 1, nil, now); r.FlowID == 0 || r.FlowID >= 1<<53 {
					t.Errorf("bad id %d", r.FlowID)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	tb.Flush(0)
	mu.Lock()
	defer mu.Unlock()
	if pkts != workers*perWorker || dup {
		t.Fatalf("packets in records %d, want %d; duplicate ids %v", pkts, workers*perWorker, dup)
	}
	if tb.Active() != 0 {
		t.Fatalf("active %d", tb.Active())
	}
}

func TestTrackAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("alloc counts")
	}
	const n = 4096
	ps := make([]*packet.Packet, 2*n)
	for i := range n {
		ps[i] = tcp(client, uint16(i), server, 443, packet.TCPAck)
		ps[n+i] = udp(client6, uint16(i), server6, 53)
	}
	aws := cookie(1)
	var ended int
	onEnd := func(*Record) { ended++ }

	// Existing flows, both directions.
	tb := NewTable(Config{MaxFlows: 4 * n}, &policy.Policy{}, onEnd)
	for _, p := range ps {
		tb.Track(0, p, 100, aws, 0)
	}
	rev := make([]*packet.Packet, len(ps))
	for j, p := range ps {
		rev[j] = reverse(p, packet.TCPAck)
	}
	i := 0
	if a := testing.AllocsPerRun(1000, func() {
		p := ps[i%len(ps)]
		if i&1 != 0 {
			p = rev[i%len(ps)]
		}
		tb.Track(0, p, 100, aws, int64(i))
		i++
	}); a != 0 {
		t.Errorf("existing flow: %v allocs", a)
	}

	// New flows in shards that are not full. Shards grow (allocating) as they fill;
	// once grown, creating flows allocates nothing.
	tb = NewTable(Config{MaxFlows: 4 * n}, &policy.Policy{}, onEnd)
	for j := range 3 * n {
		tb.Track(uint64(j), ps[0], 100, aws, 0)
	}
	tb.Flush(0)
	i = 0
	if a := testing.AllocsPerRun(len(ps)-1, func() {
		tb.Track(0, ps[i], 100, aws, int64(i))
		i++
	}); a != 0 {
		t.Errorf("new flow: %v allocs", a)
	}

	// New flows in a full table, each evicting one.
	tb = NewTable(Config{MaxFlows: n / 2, Logger: slog.New(slog.DiscardHandler)}, &policy.Policy{}, onEnd)
	for _, p := range ps[:n] {
		tb.Track(0, p, 100, aws, 0)
	}
	i = 0
	if a := testing.AllocsPerRun(1000, func() {
		tb.Track(1, ps[i%len(ps)], 100, aws, int64(i))
		i++
	}); a != 0 {
		t.Errorf("evicting: %v allocs", a)
	}
	if tb.Evicted() == 0 || ended == 0 {
		t.Fatal("nothing evicted")
	}

	// ICMP errors counted against their flow, Expire of nothing, Active.
	quoted := unreachable(router, client, ps[0])
	tb.Track(1, ps[0], 100, aws, 2000)
	if a := testing.AllocsPerRun(100, func() {
		tb.Track(1, quoted, 100, nil, 2000)
		tb.Expire(2000)
		tb.Active()
	}); a != 0 {
		t.Errorf("icmp error: %v allocs", a)
	}
}

func benchPackets(n int) []*packet.Packet {
	ps := make([]*packet.Packet, 0, 2*n)
	for i := range n {
		var p *packet.Packet
		if i%4 == 3 {
			p = udp(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 5353, server, 53)
		} else {
			p = tcp(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(i), server, 443, packet.TCPAck)
		}
		ps = append(ps, p, reverse(p, packet.TCPAck))
	}
	return ps
}

func BenchmarkTrack(b *testing.B) {
	pol := &policy.Policy{Rules: []policy.Rule{
		{Action: policy.Drop, Proto: int(packet.ProtoTCP), DstPort: policy.PortRange{Lo: 22, Hi: 22}},
		{Action: policy.Allow, Proto: policy.AnyProto, Dst: netip.MustParsePrefix("10.0.0.0/8")},
	}}
	aws := cookie(1)
	logger := slog.New(slog.DiscardHandler)

	// Existing flows, both directions, 64K flows.
	b.Run("hit", func(b *testing.B) {
		ps := benchPackets(1 << 16)
		tb := NewTable(Config{MaxFlows: 1 << 18, Logger: logger}, pol, func(*Record) {})
		for _, p := range ps {
			tb.Track(0, p, 100, aws, 0)
		}
		b.ReportAllocs()
		b.ResetTimer()
		i := 0
		for b.Loop() {
			tb.Track(0, ps[i&(len(ps)-1)], 100, aws, int64(i))
			i++
		}
	})
	// Existing flows, both directions, 1K flows: the CPU cost without cache misses.
	b.Run("hit-small", func(b *testing.B) {
		ps := benchPackets(1 << 10)
		tb := NewTable(Config{MaxFlows: 1 << 12, Logger: logger}, pol, func(*Record) {})
		for _, p := range ps {
			tb.Track(0, p, 100, aws, 0)
		}
		b.ReportAllocs()
		b.ResetTimer()
		i := 0
		for b.Loop() {
			tb.Track(0, ps[i&(len(ps)-1)], 100, aws, int64(i))
			i++
		}
	})
	// 7 of 8 packets hit a working set of 16K flows; 1 in 8 starts a new flow in a
	// full 64K table, evicting the least recently seen.
	b.Run("mix", func(b *testing.B) {
		hot := benchPackets(1 << 14)
		tb := NewTable(Config{MaxFlows: 1 << 16, Logger: logger}, pol, func(*Record) {})
		for i := range 1 << 16 {
			tb.Track(uint64(i), hot[0], 100, aws, 0)
		}
		for _, p := range hot {
			tb.Track(0, p, 100, aws, 0)
		}
		b.ReportAllocs()
		b.ResetTimer()
		i := 0
		for b.Loop() {
			if i&7 == 7 {
				tb.Track(uint64(i)|1<<40, hot[0], 100, aws, int64(i))
			} else {
				tb.Track(0, hot[i&(len(hot)-1)], 100, aws, int64(i))
			}
			i++
		}
	})
	b.Run("hit-parallel", func(b *testing.B) {
		ps := benchPackets(1 << 16)
		tb := NewTable(Config{MaxFlows: 1 << 18, Logger: logger}, pol, func(*Record) {})
		for _, p := range ps {
			tb.Track(0, p, 100, aws, 0)
		}
		var seq atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(1) * 7919)
			for pb.Next() {
				tb.Track(0, ps[i&(len(ps)-1)], 100, aws, int64(i))
				i++
			}
		})
	})
}

func ExampleTable() {
	pol := &policy.Policy{Default: policy.Allow, Rules: []policy.Rule{
		{Action: policy.Drop, Proto: int(packet.ProtoTCP), DstPort: policy.PortRange{Lo: 23, Hi: 23}},
	}}
	tb := NewTable(Config{}, pol, func(r *Record) {
		fmt.Println(r.Src, r.SrcPort, "->", r.Dst, r.DstPort, r.State, r.Reason, r.Action,
			r.PktsToServer, r.PktsToClient)
	})
	telnet := &packet.Packet{Proto: packet.ProtoTCP, Src: client, Dst: server, SrcPort: 50000, DstPort: 23,
		TCPFlags: packet.TCPSyn}
	fmt.Println(tb.Track(0, telnet, 60, nil, 0).Action)
	reply := *telnet
	reply.Src, reply.Dst, reply.SrcPort, reply.DstPort = telnet.Dst, telnet.Src, 23, 50000
	reply.TCPFlags = packet.TCPSyn | packet.TCPAck
	fmt.Println(tb.Track(0, &reply, 60, nil, 1).Action)
	tb.Flush(2)
	// Output:
	// drop
	// drop
	// 10.0.0.1 50000 -> 10.0.0.200 23 established shutdown drop 1 1
}

// TestICMPErrorNotToSender: an ICMP error addressed to anyone but the quoted
// packet's sender does not borrow the quoted flow's verdict; policy decides it.
func TestICMPErrorNotToSender(t *testing.T) {
	pol := &policy.Policy{Default: policy.Drop, Rules: []policy.Rule{
		{Action: policy.Allow, Proto: int(packet.ProtoTCP), DstPort: policy.PortRange{Lo: 443, Hi: 443}},
	}}
	tb := NewTable(Config{MaxFlows: 1024}, pol, nil)
	syn := tcp(client, 40000, server, 443, packet.TCPSyn)
	f := tb.Track(0, syn, 60, nil, 1)
	if f.Action != policy.Allow {
		t.Fatalf("flow: %+v", f)
	}
	r := tb.Track(0, unreachable(server, router, syn), 88, nil, 2)
	if !r.Created || r.FlowID == f.FlowID || r.Action != policy.Drop {
		t.Errorf("error to a third party quoting an allowed flow: %+v, want a new flow dropped by policy", r)
	}
}
