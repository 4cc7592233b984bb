package flow

import (
	"encoding/binary"
	"log/slog"
	"net/netip"
	"sync"
	"testing"

	"weir/dataplane/packet"
	"weir/dataplane/policy"
)

func TestSetAction(t *testing.T) {
	tb, sk, _ := newTest(t, Config{MaxFlows: 1})
	syn := tcp(client, 40000, server, 443, packet.TCPSyn)
	r := tb.Track(0, syn, 60, nil, 1)
	if r.Handle.FlowID() != r.FlowID || r.Action != policy.Allow {
		t.Fatalf("created: %+v", r)
	}
	if !tb.SetAction(r.Handle, policy.Drop) {
		t.Fatal("SetAction on a live flow failed")
	}
	if a := tb.Track(0, reverse(syn, packet.TCPSyn|packet.TCPAck), 60, nil, 2); a.Action != policy.Drop || a.Handle != r.Handle {
		t.Fatalf("to client after SetAction: %+v", a)
	}
	if a := tb.Track(0, withFlags(syn, packet.TCPAck), 60, nil, 3); a.Action != policy.Drop {
		t.Fatalf("to server after SetAction: %+v", a)
	}
	// Another flow takes the only entry: the old handle is stale.
	other := tb.Track(0, udp(client, 1, server, 53), 60, nil, 4)
	if recs := sk.take(); len(recs) != 1 || recs[0].Action != policy.Drop {
		t.Fatalf("ended: %+v", recs)
	}
	if other.Handle.idx != r.Handle.idx || tb.SetAction(r.Handle, policy.Allow) {
		t.Fatal("stale handle accepted")
	}
	if tb.SetAction(Handle{}, policy.Drop) || tb.WithSide(Handle{}, func([]byte) {}) {
		t.Fatal("zero handle accepted")
	}
	if a := tb.Track(0, udp(client, 1, server, 53), 60, nil, 5); a.Action != policy.Allow {
		t.Fatalf("other flow changed: %+v", a)
	}
}

func TestWithSide(t *testing.T) {
	const size = 16
	tb, _, _ := newTest(t, Config{MaxFlows: 1 << 14, SideSize: size})
	const n = 5000 // enough to grow every shard
	hs := make([]Handle, n)
	pkt := func(i int) *packet.Packet {
		return tcp(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), uint16(i), server, 443, packet.TCPSyn)
	}
	for i := range n {
		hs[i] = tb.Track(0, pkt(i), 1, nil, 1).Handle
		ok := tb.WithSide(hs[i], func(side []byte) {
			if len(side) != size || cap(side) != size || [size]byte(side) != [size]byte{} {
				t.Fatalf("flow %d: side %v (cap %d) not zero", i, side, cap(side))
			}
			binary.LittleEndian.PutUint64(side, uint64(i))
		})
		if !ok {
			t.Fatalf("flow %d: WithSide failed", i)
		}
	}
	for i := range n {
		tb.WithSide(hs[i], func(side []byte) {
			if v := binary.LittleEndian.Uint64(side); v != uint64(i) {
				t.Fatalf("flow %d: side holds %d after growth", i, v)
			}
		})
	}
	// A flow restarted on its entry gets a zero side record and a new handle.
	tb.Track(0, reverse(pkt(7), packet.TCPRst), 1, nil, 2)
	r := tb.Track(0, pkt(7), 1, nil, 3)
	if !r.Created || r.Handle.idx != hs[7].idx {
		t.Fatalf("restart: %+v", r)
	}
	called := false
	if tb.WithSide(hs[7], func([]byte) { called = true }) || called {
		t.Fatal("stale handle reached the new flow's side record")
	}
	tb.WithSide(r.Handle, func(side []byte) {
		if [size]byte(side) != [size]byte{} {
			t.Fatalf("restarted flow: side %v", side)
		}
	})
}

// Workers update one flow's side record under the shard lock: no update is lost.
func TestWithSideConcurrent(t *testing.T) {
	tb := NewTable(Config{MaxFlows: 64, SideSize: 8, Logger: slog.New(slog.DiscardHandler)}, nil, nil)
	p := udp(client, 1, server, 53)
	h := tb.Track(0, p, 1, nil, 0).Handle
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10000 {
				tb.WithSide(h, func(side []byte) {
					binary.LittleEndian.PutUint64(side, binary.LittleEndian.Uint64(side)+1)
				})
				if i%100 == 0 {
					tb.Track(0, reverse(p, 0), 1, nil, int64(w))
				}
			}
		}()
	}
	wg.Wait()
	tb.WithSide(h, func(side []byte) {
		if v := binary.LittleEndian.Uint64(side); v != 40000 {
			t.Fatalf("count %d, want 40000", v)
		}
	})
}

func TestHandleAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("alloc counts")
	}
	tb := NewTable(Config{MaxFlows: 64, SideSize: 32, Logger: slog.New(slog.DiscardHandler)}, nil, nil)
	h := tb.Track(0, udp(client, 1, server, 53), 1, nil, 0).Handle
	var sum byte
	if a := testing.AllocsPerRun(1000, func() {
		tb.SetAction(h, policy.Drop)
		tb.WithSide(h, func(side []byte) { side[0]++; sum += side[0] })
	}); a != 0 {
		t.Errorf("SetAction, WithSide: %v allocs", a)
	}
}

// SideRecord puts what the side record holds into the flow's record when it ends.
func TestSideRecordFillsRecord(t *testing.T) {
	tb, s, _ := newTest(t, Config{SideSize: 4, SideRecord: func(side []byte, r *Record) {
		r.Alerts = binary.LittleEndian.Uint32(side)
	}})
	p := tcp(netip.MustParseAddr("10.0.0.1"), 1000, server, 443, packet.TCPSyn)
	h := tb.Track(0, p, 60, nil, 1).Handle
	tb.WithSide(h, func(side []byte) { binary.LittleEndian.PutUint32(side, 3) })
	q := tcp(netip.MustParseAddr("10.0.0.2"), 1000, server, 443, packet.TCPSyn)
	tb.Track(0, q, 60, nil, 1)
	tb.Flush(2)
	got := map[netip.Addr]uint32{}
	for _, r := range s.take() {
		got[r.Src] = r.Alerts
	}
	if got[p.Src] != 3 || got[q.Src] != 0 || len(got) != 2 {
		t.Fatalf("alerts by client: %v, want 10.0.0.1: 3, 10.0.0.2: 0", got)
	}
}

func TestRecordOf(t *testing.T) {
	tb, _, _ := newTest(t, Config{})
	p := tcp(netip.MustParseAddr("10.0.0.1"), 1000, server, 443, packet.TCPSyn)
	h := tb.Track(0, p, 60, nil, 1).Handle
	tb.Track(0, reverse(p, packet.TCPSyn|packet.TCPAck), 70, nil, 2)
	var r Record
	if !tb.RecordOf(h, &r) || r.PktsToServer != 1 || r.PktsToClient != 1 || r.BytesToClient != 70 || r.Src != p.Src {
		t.Fatalf("RecordOf: %+v", r)
	}
	tb.Flush(3)
	if tb.RecordOf(h, &r) {
		t.Fatal("RecordOf found an ended flow")
	}
}

func TestFind(t *testing.T) {
	tb, _, _ := newTest(t, Config{})
	p := tcp(netip.MustParseAddr("10.0.0.1"), 1000, server, 443, packet.TCPSyn)
	created := tb.Track(0, p, 60, nil, 1)
	r, ok := tb.Find(0, p)
	if !ok || r.FlowID != created.FlowID || !r.ToServer || r.Handle != created.Handle {
		t.Fatalf("Find = %+v, %v; created %+v", r, ok, created)
	}
	if r, ok := tb.Find(0, reverse(p, packet.TCPAck)); !ok || r.ToServer {
		t.Fatalf("Find reply = %+v, %v", r, ok)
	}
	var rec Record
	tb.RecordOf(created.Handle, &rec)
	if rec.PktsToServer != 1 || rec.PktsToClient != 0 {
		t.Fatalf("Find counted a packet: %+v", rec)
	}
	if _, ok := tb.Find(1, p); ok {
		t.Fatal("Find crossed scopes")
	}
}
