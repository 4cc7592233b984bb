package afxdp

import (
	"encoding/binary"
	"log/slog"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"weir/dataplane"
	"weir/dataplane/afxdp/xdp"
	"weir/dataplane/flow"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

// newFastUnit is a fastPath on a loaded (not attached) program, serving and
// reading only when the test calls it.
func newFastUnit(t *testing.T, table *flow.Table) *fastPath {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading an XDP program needs root")
	}
	spec, err := xdp.Spec(xdp.Config{GenevePort: 6081, Queues: 1, MaxFrame: 3000, FastPath: true, FastFlows: 256})
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("loading: %+v", err)
	}
	t.Cleanup(func() { coll.Close() })
	b := &Backend{cfg: Config{Flows: table, FastFlows: 64}, log: slog.New(slog.DiscardHandler)}
	return newFastPath(b, coll)
}

// hit counts n packets of size bytes on key k, as the program does.
func hit(t *testing.T, fp *fastPath, k xdp.FastKey, n, size uint64) {
	t.Helper()
	m := fp.coll.Maps[xdp.MapFastFlows]
	var c xdp.FastCounters
	if err := m.Lookup(k, &c); err != nil {
		t.Fatalf("key not in the map: %v", err)
	}
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	c.Packets += n
	c.Bytes += n * size
	c.LastSeen = uint64(ts.Nano())
	if err := m.Update(k, c, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
}

// TestFastPathKeysOfEndedFlow: a flow ends in the table while its key is in
// the map (evicted from a full table), and a new flow with the same 5-tuple
// reaches FastAfter packets before the next read notices. The new flow takes
// the key over; the old flow's clean-up must not take it from under it, nor
// count it evicted: the new flow's fast-path packets are credited to it.
func TestFastPathKeysOfEndedFlow(t *testing.T) {
	table := flow.NewTable(flow.Config{MaxFlows: 1024}, &policy.Policy{Default: policy.Allow}, func(*flow.Record) {})
	fp := newFastUnit(t, table)
	cl, sv := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1")
	p := &packet.Packet{Proto: packet.ProtoUDP, Src: cl, Dst: sv, SrcPort: 5000, DstPort: 53}
	const ep = 0xe1
	kc := xdp.FastKeyOf(ep, cl, sv, packet.ProtoUDP, 5000, 53)
	ks := xdp.FastKeyOf(ep, sv, cl, packet.ProtoUDP, 53, 5000)
	now := time.Now().UnixNano()

	a := table.Track(ep, p, 100, nil, now)
	fp.serve(&fastRequest{op: fastAdd, handle: a.Handle, keys: [2]xdp.FastKey{kc, ks}})
	// The old flow ends in the table (here: its idle timeout) without the
	// fast path being told.
	if n := table.Expire(now + int64(200*time.Second)); n != 1 {
		t.Fatalf("Expire ended %d flows", n)
	}
	b := table.Track(ep, p, 100, nil, now+int64(201*time.Second))
	if b.FlowID == a.FlowID {
		t.Fatal("same flow")
	}
	fp.serve(&fastRequest{op: fastAdd, handle: b.Handle, keys: [2]xdp.FastKey{kc, ks}})

	hit(t, fp, kc, 5, 100)
	fp.readAll()
	hit(t, fp, kc, 7, 100)
	fp.readAll()
	if _, ok, _ := xdp.ReadFast(fp.coll, kc); !ok {
		t.Error("the new flow's key was taken out of the map")
	}
	var rec flow.Record
	if !table.RecordOf(b.Handle, &rec) {
		t.Fatal("the new flow ended")
	}
	if rec.PktsToServer != 1+12 {
		t.Errorf("the new flow counts %d packets, want 13 (1 tracked, 12 answered in XDP)", rec.PktsToServer)
	}
	if st := fp.stats(); st.Evicted != 0 || st.Flows != 1 {
		t.Errorf("stats %+v, want no key evicted and the new flow in", st)
	}
}

// TestFastPathStaleAdd: an add asked before the flow closed (by another
// queue's worker, which saw its packets in the other direction) and served
// after the close's remove puts the closed flow's keys back: the program
// then answers its last ACK and anything after, which the flow table should
// see, until closed_timeout ends the flow. An add for a flow that closed or
// ended puts nothing in.
func TestFastPathStaleAdd(t *testing.T) {
	table := flow.NewTable(flow.Config{MaxFlows: 1024}, &policy.Policy{Default: policy.Allow}, func(*flow.Record) {})
	fp := newFastUnit(t, table)
	cl, sv := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1")
	const ep = 0xe1
	kc := xdp.FastKeyOf(ep, cl, sv, packet.ProtoTCP, 40000, 443)
	ks := xdp.FastKeyOf(ep, sv, cl, packet.ProtoTCP, 443, 40000)
	c2s := func(f uint8) *packet.Packet {
		return &packet.Packet{Proto: packet.ProtoTCP, Src: cl, Dst: sv, SrcPort: 40000, DstPort: 443, TCPFlags: f}
	}
	s2c := func(f uint8) *packet.Packet {
		return &packet.Packet{Proto: packet.ProtoTCP, Src: sv, Dst: cl, SrcPort: 443, DstPort: 40000, TCPFlags: f}
	}
	now := time.Now().UnixNano()
	r := table.Track(ep, c2s(packet.TCPSyn), 60, nil, now)
	table.Track(ep, s2c(packet.TCPSyn|packet.TCPAck), 60, nil, now)
	for range FastAfter {
		table.Track(ep, c2s(packet.TCPAck), 60, nil, now)
	}
	add := fastRequest{op: fastAdd, both: true, handle: r.Handle, keys: [2]xdp.FastKey{kc, ks}}
	fp.serve(&add)
	table.Track(ep, c2s(packet.TCPFin|packet.TCPAck), 60, nil, now)
	if c := table.Track(ep, s2c(packet.TCPFin|packet.TCPAck), 60, nil, now); c.State != flow.StateClosed {
		t.Fatalf("state %v, want closed", c.State)
	}
	fp.serve(&fastRequest{op: fastRemove, both: true, handle: r.Handle, keys: add.keys})
	fp.serve(&add) // the stale one
	for _, k := range add.keys {
		if _, ok, _ := xdp.ReadFast(fp.coll, k); ok {
			t.Errorf("a key of the closed flow is back in the map")
		}
	}
	if st := fp.stats(); st.Flows != 0 {
		t.Errorf("stats %+v, want no flow in", st)
	}
}

// TestFastPathOfferMappedIPv6: an inner IPv6 packet whose addresses are
// IPv4-mapped (::ffff:a.b.c.d) is keyed by the program as IPv6 (family 6,
// the 16 address bytes as on the wire); the worker's request must carry that
// key, not an IPv4 one the program never builds (the flow would hold a fast
// slot whose keys never match).
func TestFastPathOfferMappedIPv6(t *testing.T) {
	table := flow.NewTable(flow.Config{MaxFlows: 1024}, &policy.Policy{Default: policy.Allow}, func(*flow.Record) {})
	pl := dataplane.NewPipeline(&dataplane.GeneveDecode{}, dataplane.InnerDecode{}, &dataplane.Track{Table: table})
	w := pl.NewWorker()
	reqs := make(chan fastRequest, 4)
	o := &fastOffer{reqs: reqs, maxFrame: 1000, asked: make([]fastAsk, fastAsked), dropped: new(atomic.Uint64), flushes: new(atomic.Uint32)}
	src, dst := netip.MustParseAddr("::ffff:10.1.0.1"), netip.MustParseAddr("::ffff:10.2.0.1")
	in := make([]byte, 40+8+4)
	in[0] = 0x60
	binary.BigEndian.PutUint16(in[4:], 12)
	in[6], in[7] = packet.ProtoUDP, 64
	s16, d16 := src.As16(), dst.As16()
	copy(in[8:], s16[:])
	copy(in[24:], d16[:])
	binary.BigEndian.PutUint16(in[40:], 5000)
	binary.BigEndian.PutUint16(in[42:], 53)
	binary.BigEndian.PutUint16(in[44:], 12)
	d := append(geneve.AppendAWSHeader(nil, geneve.ProtoIPv6, geneve.AWS{EndpointID: 0xe1, AttachmentID: 9, FlowCookie: 7}), in...)
	b := dataplane.NewBatch(1)
	for range FastAfter {
		s := &b.Slots[0]
		s.Reset()
		s.Buf, s.Encap = d, dataplane.EncapGeneve
		s.Outer = geneve.Outer{Src: gwlbAddr, Dst: applianceAddr, SrcPort: gwlbPort, DstPort: geneve.Port}
		b.N, b.Now = 1, time.Now().UnixNano()
		w.Process(b)
		o.offer(b, []uint32{200})
	}
	var got []fastRequest
	for len(reqs) > 0 {
		got = append(got, <-reqs)
	}
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	// The program's key: family 6, the address bytes as on the wire.
	want := xdp.FastKey{Family: 6, Proto: packet.ProtoUDP, Src: s16, Dst: d16, SrcPort: [2]byte{0x13, 0x88}, DstPort: [2]byte{0, 53}, Cookie: [4]byte{0, 0, 0, 7}}
	binary.BigEndian.PutUint64(want.Endpoint[:], 0xe1)
	if got[0].keys[0] != want {
		t.Errorf("client key %+v, want the program's %+v", got[0].keys[0], want)
	}
}

// TestFastPathOfferMixedMappedIPv6: an inner IPv6 packet from an IPv4-mapped
// source to a plain IPv6 destination (the client chooses its source) must not
// crash the worker: FastKeyOf unmaps the source alone and calls As4 on the
// IPv6 destination, which panics.
func TestFastPathOfferMixedMappedIPv6(t *testing.T) {
	table := flow.NewTable(flow.Config{MaxFlows: 1024}, &policy.Policy{Default: policy.Allow}, func(*flow.Record) {})
	pl := dataplane.NewPipeline(&dataplane.GeneveDecode{}, dataplane.InnerDecode{}, &dataplane.Track{Table: table})
	w := pl.NewWorker()
	reqs := make(chan fastRequest, 4)
	o := &fastOffer{reqs: reqs, maxFrame: 1000, asked: make([]fastAsk, fastAsked), dropped: new(atomic.Uint64), flushes: new(atomic.Uint32)}
	src, dst := netip.MustParseAddr("::ffff:10.1.0.1"), netip.MustParseAddr("2001:db8::2")
	in := make([]byte, 40+8+4)
	in[0] = 0x60
	binary.BigEndian.PutUint16(in[4:], 12)
	in[6], in[7] = packet.ProtoUDP, 64
	s16, d16 := src.As16(), dst.As16()
	copy(in[8:], s16[:])
	copy(in[24:], d16[:])
	binary.BigEndian.PutUint16(in[40:], 5000)
	binary.BigEndian.PutUint16(in[42:], 53)
	binary.BigEndian.PutUint16(in[44:], 12)
	d := append(geneve.AppendAWSHeader(nil, geneve.ProtoIPv6, geneve.AWS{EndpointID: 0xe1, AttachmentID: 9, FlowCookie: 7}), in...)
	b := dataplane.NewBatch(1)
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("the worker's offer panics: %v", p)
		}
	}()
	for range FastAfter {
		s := &b.Slots[0]
		s.Reset()
		s.Buf, s.Encap = d, dataplane.EncapGeneve
		s.Outer = geneve.Outer{Src: gwlbAddr, Dst: applianceAddr, SrcPort: gwlbPort, DstPort: geneve.Port}
		b.N, b.Now = 1, time.Now().UnixNano()
		w.Process(b)
		o.offer(b, []uint32{200})
	}
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
}
