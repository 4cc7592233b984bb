package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"weir/dataplane/packet"
	"weir/dataplane/policy"
)

// fragment4 turns an IPv4 packet into a fragment: id, offset in bytes, more to come.
func fragment4(ip []byte, id uint16, offset int, more bool) []byte {
	b := append([]byte(nil), ip...)
	binary.BigEndian.PutUint16(b[4:], id)
	v := uint16(offset / 8)
	if more {
		v |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], v)
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], ^uint16(foldTest(packet.Checksum(0, b[:20]))))
	return b
}

func foldTest(s uint32) uint32 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return s
}

// TestFragmentsFollowFirst: later fragments, which carry no ports, get their first
// fragment's verdict; without a first fragment they are dropped.
func TestFragmentsFollowFirst(t *testing.T) {
	pol := &policy.Policy{Default: policy.Allow, Rules: []policy.Rule{
		{Action: policy.Drop, Proto: 6, DstPort: policy.PortRange{Lo: 23, Hi: 23}},
	}}
	p, table, _ := newTestPipeline(pol, nil, 100)
	p.stages[len(p.stages)-1].(*Track).Fragments = NewFragments(1024, 30*time.Second)
	w := p.NewWorker()
	b := NewBatch(8)

	telnet := innerTCP(t, "10.0.0.1", "10.1.0.1", 1000, 23, packet.TCPSyn, 40)
	web := innerTCP(t, "10.0.0.1", "10.1.0.1", 1001, 80, packet.TCPSyn, 40)
	load(b, [][]byte{
		gwlbDatagram(fragment4(telnet, 7, 0, true), 1, 1),   // first: dropped by the port rule
		gwlbDatagram(fragment4(telnet, 7, 24, false), 1, 1), // later: must be dropped too
		gwlbDatagram(fragment4(web, 8, 0, true), 1, 2),      // first: allowed
		gwlbDatagram(fragment4(web, 8, 24, false), 1, 2),    // later: returned
		gwlbDatagram(fragment4(web, 9, 24, false), 1, 3),    // later, its first never seen
	}, gwlb, 1e9)
	w.Process(b)
	want := []struct {
		v Verdict
		a Action
	}{{VerdictDrop, ActionDrop}, {VerdictDrop, ActionDrop}, {VerdictReturn, ActionAllow}, {VerdictReturn, ActionAllow}, {VerdictDrop, ActionFragment}}
	for i, x := range want {
		if s := &b.Slots[i]; s.Verdict != x.v || s.action != x.a {
			t.Errorf("slot %d: verdict %d action %s, want %d %s", i, s.Verdict, s.action, x.v, x.a)
		}
	}
	if n := table.Active(); n != 2 {
		t.Errorf("%d flows, want 2: later fragments must not make flows of their own", n)
	}

	// Past the TTL the verdict is forgotten.
	load(b, [][]byte{gwlbDatagram(fragment4(web, 8, 48, false), 1, 2)}, gwlb, int64(1e9+31*time.Second))
	w.Process(b)
	if b.Slots[0].action != ActionFragment {
		t.Errorf("a fragment 31 s after its first: %s, want %s", b.Slots[0].action, ActionFragment)
	}
}

// TestFragmentsScoped: the same fragment id from another GWLB endpoint is another
// packet.
func TestFragmentsScoped(t *testing.T) {
	f := NewFragments(64, time.Minute)
	p := packet.Packet{Proto: 17, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.1.0.1"), FragmentID: 5}
	f.Put(1, &p, true, 0)
	if allow, ok := f.Get(1, &p, 1); !ok || !allow {
		t.Errorf("same scope: %v %v", allow, ok)
	}
	if _, ok := f.Get(2, &p, 1); ok {
		t.Error("another scope found the verdict")
	}
	q := p
	q.FragmentID = 6
	if _, ok := f.Get(1, &q, 1); ok {
		t.Error("another fragment id found the verdict")
	}
	if n := testing.AllocsPerRun(100, func() { f.Put(1, &p, false, 2); f.Get(1, &p, 3) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
