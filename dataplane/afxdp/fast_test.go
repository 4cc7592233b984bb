package afxdp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/dataplane"
	"weir/dataplane/afxdp/xdp"
	"weir/dataplane/afxdp/xsk"
	"weir/dataplane/flow"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

// fastInner is one inner packet of a test flow.
type fastInner struct {
	proto         layers.IPProtocol
	src, dst      net.IP
	sport, dport  uint16
	syn, fin, rst bool
	payload       int
	ipOptions     bool
}

func (f fastInner) bytes(t testing.TB) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: f.proto, SrcIP: f.src, DstIP: f.dst}
	if f.ipOptions {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}} // NOPs, end
	}
	var l4 gopacket.SerializableLayer
	switch f.proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(f.sport), DstPort: layers.TCPPort(f.dport),
			SYN: f.syn, FIN: f.fin, RST: f.rst, ACK: !f.syn || f.fin, PSH: f.payload > 0, Window: 1000}
		tcp.SetNetworkLayerForChecksum(ip)
		l4 = tcp
	default:
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.sport), DstPort: layers.UDPPort(f.dport)}
		udp.SetNetworkLayerForChecksum(ip)
		l4 = udp
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, l4, gopacket.Payload(bytes.Repeat([]byte{0xab}, f.payload))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (f fastInner) reversed() fastInner {
	f.src, f.dst, f.sport, f.dport = f.dst, f.src, f.dport, f.sport
	return f
}

// fastRig is a backend with the fast path on one end of a veth pair and the
// GWLB's sockets on the other.
type fastRig struct {
	t          *testing.T
	b          *Backend
	table      *flow.Table
	send, recv *net.UDPConn
	stop       func() error

	mu    sync.Mutex
	ended []flow.Record
	sent  int
}

func newFastRig(t *testing.T) *fastRig {
	weirNS, gwlbNS := newVethPair(t, 1)
	r := &fastRig{t: t}
	r.table = flow.NewTable(flow.Config{MaxFlows: 1024}, &policy.Policy{Default: policy.Allow}, func(rec *flow.Record) {
		r.mu.Lock()
		r.ended = append(r.ended, *rec)
		r.mu.Unlock()
	})
	p := dataplane.NewPipeline(&dataplane.GeneveDecode{}, dataplane.InnerDecode{}, &dataplane.Track{Table: r.table})
	r.b = newIn(t, weirNS, Config{Interface: "afx0", ZeroCopy: xsk.ZeroCopyAuto, FastPath: true, Flows: r.table, FastFlows: 64})
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := runIn(ctx, weirNS, r.b, p)
	stopped := false
	r.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("Run did not return within 10 s of ctx ending")
		}
	}
	t.Cleanup(func() { r.stop() })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run not ready within 10 s")
	}
	if err := inNetns(gwlbNS, func() (err error) {
		if r.send, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(gwlbAddr, gwlbPort))); err != nil {
			return err
		}
		r.recv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(gwlbAddr, geneve.Port)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.send.Close(); r.recv.Close() })
	return r
}

// exchange sends each inner packet in GENEVE, one at a time, and waits for
// its reply, byte for byte the datagram sent.
func (r *fastRig) exchange(pkts ...fastInner) {
	r.t.Helper()
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(applianceAddr, geneve.Port))
	buf := make([]byte, 9000)
	for i, p := range pkts {
		d := append(geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 0xe1, AttachmentID: 9, FlowCookie: 7}), p.bytes(r.t)...)
		if _, err := r.send.WriteTo(d, to); err != nil {
			r.t.Fatalf("send %d: %v", i, err)
		}
		r.sent++
		r.recv.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := r.recv.Read(buf)
		if err != nil {
			r.t.Fatalf("packet %d of %d (%d sent in all): no reply: %v", i, len(pkts), r.sent, err)
		}
		if !bytes.Equal(buf[:n], d) {
			r.t.Fatalf("packet %d: the reply is not the datagram sent", i)
		}
	}
}

// waitFast waits until the fast path's stats satisfy ok.
func (r *fastRig) waitFast(what string, ok func(FastStats) bool) FastStats {
	r.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		st, on := r.b.FastStats()
		if on && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("fast path: %s not reached in 3 s: %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *fastRig) xdpCounters() xdp.Counters {
	r.t.Helper()
	c, err := r.b.XDPCounters()
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

var (
	fastClient = net.IPv4(10, 1, 0, 1)
	fastServer = net.IPv4(10, 2, 0, 1)
)

// TestFastPathFlow follows a TCP flow through the wired fast path: its first
// packets go through the pipeline, then its keys go into the program, which
// answers the rest; the FIN both ways takes the keys out again, the last ACK
// comes up to user space, and the flow's record counts every packet and byte
// each way, as if all had been tracked.
func TestFastPathFlow(t *testing.T) {
	r := newFastRig(t)
	c2s := fastInner{proto: layers.IPProtocolTCP, src: fastClient, dst: fastServer, sport: 30000, dport: 443}
	s2c := c2s.reversed()
	syn, synAck := c2s, s2c
	syn.syn, synAck.syn = true, true
	var wantPkts, wantBytes [2]uint64
	count := func(dir int, p fastInner) {
		wantPkts[dir]++
		wantBytes[dir] += uint64(len(p.bytes(t)))
	}
	exchange := func(dir int, p fastInner) { r.exchange(p); count(dir, p) }

	exchange(0, syn)
	exchange(1, synAck)
	for i := range FastAfter {
		d := c2s
		d.payload = 100 + i
		exchange(0, d)
	}
	r.waitFast("the flow's two keys in", func(s FastStats) bool { return s.Flows == 1 && s.Added == 1 })
	before := r.xdpCounters()
	const answered = 200
	for i := range answered {
		d, dir := c2s, 0
		if i%2 == 1 {
			d, dir = s2c, 1
		}
		d.payload = i % 300
		exchange(dir, d)
	}
	after := r.xdpCounters()
	if n := after.FastPath - before.FastPath; n != answered {
		t.Errorf("the program answered %d packets, want all %d (redirected %d)", n, answered, after.Redirected-before.Redirected)
	}

	// FIN both ways closes the flow: its keys go, the last ACK comes up.
	fin, finAck := c2s, s2c
	fin.fin, finAck.fin = true, true
	exchange(0, fin)
	exchange(1, finAck)
	st := r.waitFast("the closed flow out", func(s FastStats) bool { return s.Flows == 0 && s.Removed == 1 })
	before = r.xdpCounters()
	exchange(0, c2s)
	if after := r.xdpCounters(); after.FastPath != before.FastPath || after.Redirected != before.Redirected+1 {
		t.Errorf("the ACK after the close: fast %d redirected %d, want it redirected to user space",
			after.FastPath-before.FastPath, after.Redirected-before.Redirected)
	}
	if st.Evicted != 0 || st.Errors != 0 || st.Full != 0 {
		t.Errorf("fast path stats %+v", st)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	r.table.Flush(time.Now().UnixNano())
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ended) != 1 {
		t.Fatalf("%d records, want the one flow's", len(r.ended))
	}
	rec := r.ended[0]
	got := [2][2]uint64{{rec.PktsToServer, rec.PktsToClient}, {rec.BytesToServer, rec.BytesToClient}}
	if want := [2][2]uint64{wantPkts, wantBytes}; got != want {
		t.Errorf("record packets %v bytes %v, want %v and %v", got[0], got[1], want[0], want[1])
	}
	if rec.State != flow.StateClosed {
		t.Errorf("record state %v, want closed", rec.State)
	}
}

// TestFastPathOneWayAndFlush: a flow seen one way has only that way's key
// put in, so that the other side's first packet still reaches the flow table
// (which then counts the flow established and adds the second key); a flush
// (a reload) takes every flow out with its counts credited, and the flow's
// next packets bring it back.
func TestFastPathOneWayAndFlush(t *testing.T) {
	r := newFastRig(t)
	c2s := fastInner{proto: layers.IPProtocolUDP, src: fastClient, dst: fastServer, sport: 5000, dport: 53, payload: 40}
	var wantPkts [2]uint64
	send := func(dir, n int) {
		p := c2s
		if dir == 1 {
			p = c2s.reversed()
		}
		for range n {
			r.exchange(p)
			wantPkts[dir]++
		}
	}
	send(0, FastAfter+1)
	r.waitFast("one key in", func(s FastStats) bool { return s.Flows == 1 })
	before := r.xdpCounters()
	send(0, 20)
	send(1, 1) // the server's first packet: to user space
	mid := r.xdpCounters()
	if mid.FastPath-before.FastPath != 20 || mid.Redirected-before.Redirected != 1 {
		t.Errorf("one way: fast %d redirected %d, want 20 and the server's first packet",
			mid.FastPath-before.FastPath, mid.Redirected-before.Redirected)
	}
	var rec flow.Record
	res, ok := r.table.Find(0xe1, mustPacket(t, c2s.bytes(t)))
	if !ok || !r.table.RecordOf(res.Handle, &rec) || rec.State != flow.StateEstablished {
		t.Fatalf("flow %v state %v, want established", ok, rec.State)
	}
	// The second key goes in at the server's next packets.
	deadline := time.Now().Add(3 * time.Second)
	for {
		b := r.xdpCounters()
		send(1, 1)
		if a := r.xdpCounters(); a.FastPath > b.FastPath {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server's packets never took the fast path")
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := r.b.FlushFast(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	st, _ := r.b.FastStats()
	if st.Flows != 0 || st.Removed != 1 {
		t.Errorf("after the flush: %+v, want no flows, one removed", st)
	}
	// Credited at once: the record counts every packet so far.
	if !r.table.RecordOf(res.Handle, &rec) || rec.PktsToServer != wantPkts[0] || rec.PktsToClient != wantPkts[1] {
		t.Errorf("after the flush the record counts %d/%d packets, want %v", rec.PktsToServer, rec.PktsToClient, wantPkts)
	}
	send(0, 1)
	r.waitFast("the flow back in", func(s FastStats) bool { return s.Flows == 1 && s.Added == 2 })
}

func mustPacket(t testing.TB, b []byte) *packet.Packet {
	t.Helper()
	var p packet.Packet
	if err := p.Decode(b); err != nil {
		t.Fatal(err)
	}
	return &p
}

// TestFastPathOffer: a worker asks for a flow once it has carried FastAfter
// packets, for its packet's direction alone until both were seen, at most
// once per fastRetry; never for a flow the program could not answer or the
// policy drops; and asks to take a closed flow out. The hot path, a packet
// that asks nothing, allocates nothing.
func TestFastPathOffer(t *testing.T) {
	pol := &policy.Policy{Default: policy.Allow, Rules: []policy.Rule{{Action: policy.Drop, Proto: policy.AnyProto, DstPort: policy.PortRange{Lo: 23, Hi: 23}}}}
	table := flow.NewTable(flow.Config{MaxFlows: 1024}, pol, func(*flow.Record) {})
	pl := dataplane.NewPipeline(&dataplane.GeneveDecode{}, dataplane.InnerDecode{}, &dataplane.Track{Table: table})
	w := pl.NewWorker()
	reqs := make(chan fastRequest, 4)
	o := &fastOffer{reqs: reqs, maxFrame: 1000, asked: make([]fastAsk, fastAsked), dropped: new(atomic.Uint64), flushes: new(atomic.Uint32)}
	b := dataplane.NewBatch(1)
	lens := []uint32{0}
	now := time.Now().UnixNano()
	var datagram []byte
	process := func(p []byte, frameLen uint32) {
		t.Helper()
		datagram = append(geneve.AppendAWSHeader(datagram[:0], geneve.ProtoIPv4, geneve.AWS{EndpointID: 0xe1, AttachmentID: 9, FlowCookie: 7}), p...)
		s := &b.Slots[0]
		s.Reset()
		s.Buf, s.Encap = datagram, dataplane.EncapGeneve
		s.Outer = geneve.Outer{Src: gwlbAddr, Dst: applianceAddr, SrcPort: gwlbPort, DstPort: geneve.Port}
		b.N, b.Now, lens[0] = 1, now, frameLen
		w.Process(b)
		o.offer(b, lens)
	}
	drain := func() []fastRequest {
		var got []fastRequest
		for {
			select {
			case r := <-reqs:
				got = append(got, r)
			default:
				return got
			}
		}
	}
	offer := func(p []byte, frameLen uint32) []fastRequest {
		t.Helper()
		process(p, frameLen)
		return drain()
	}
	c2s := fastInner{proto: layers.IPProtocolUDP, src: fastClient, dst: fastServer, sport: 5000, dport: 53, payload: 10}
	fwd, rev := c2s.bytes(t), c2s.reversed().bytes(t)
	for i := 1; i < FastAfter; i++ {
		if got := offer(fwd, 100); len(got) != 0 {
			t.Fatalf("packet %d: asked %+v before FastAfter packets", i, got)
		}
	}
	ep := uint64(0xe1)
	kc := xdp.FastKeyOf(ep, netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1"), 17, 5000, 53).WithCookie(7)
	ks := xdp.FastKeyOf(ep, netip.MustParseAddr("10.2.0.1"), netip.MustParseAddr("10.1.0.1"), 17, 53, 5000).WithCookie(7)
	got := offer(fwd, 100)
	if len(got) != 1 || got[0].op != fastAdd || got[0].both || got[0].dir != 0 || got[0].keys != [2]xdp.FastKey{kc, ks} {
		t.Fatalf("packet %d: %+v, want one add of the client's key", FastAfter, got)
	}
	if got := offer(fwd, 100); len(got) != 0 {
		t.Errorf("asked again within fastRetry: %+v", got)
	}
	if n := testing.AllocsPerRun(100, func() { offer(fwd, 100) }); n != 0 {
		t.Errorf("a packet that asks nothing allocates %.1f times", n)
	}
	now += int64(fastRetry)
	if got := offer(fwd, 100); len(got) != 1 {
		t.Errorf("after fastRetry: %+v, want the flow asked for again", got)
	}
	got = offer(rev, 100)
	if len(got) != 1 || !got[0].both || got[0].dir != 1 || got[0].keys != [2]xdp.FastKey{kc, ks} {
		t.Errorf("the server's first packet: %+v, want both keys asked for, client's first", got)
	}

	// Never offered: too long a frame, IPv4 options, ICMP, a dropped flow.
	long := c2s
	long.sport = 5001
	withOpts := c2s
	withOpts.sport, withOpts.ipOptions = 5002, true
	denied := c2s
	denied.sport, denied.dport = 5003, 23
	for _, tc := range []struct {
		name     string
		p        fastInner
		frameLen uint32
	}{{"long frame", long, 1001}, {"ip options", withOpts, 100}, {"denied", denied, 100}} {
		for range FastAfter + 2 {
			if got := offer(tc.p.bytes(t), tc.frameLen); len(got) != 0 {
				t.Errorf("%s: asked %+v", tc.name, got)
				break
			}
		}
	}

	// A closed TCP flow is asked out; a full queue drops the ask, which the
	// next packet repeats.
	tc := fastInner{proto: layers.IPProtocolTCP, src: fastClient, dst: fastServer, sport: 6000, dport: 443}
	syn, synAck := tc, tc.reversed()
	syn.syn, synAck.syn = true, true
	offer(syn.bytes(t), 100)
	offer(synAck.bytes(t), 100)
	for range FastAfter {
		offer(tc.bytes(t), 100)
	}
	fin := tc
	fin.fin = true
	if got := offer(fin.bytes(t), 100); len(got) != 0 {
		t.Errorf("FIN one way (closing): %+v, want nothing asked", got)
	}
	for range cap(reqs) {
		reqs <- fastRequest{}
	}
	finAck := tc.reversed()
	finAck.fin = true
	process(finAck.bytes(t), 100) // closed, but the queue is full: dropped
	if o.dropped.Load() != 1 {
		t.Errorf("dropped %d asks, want 1", o.dropped.Load())
	}
	if got := drain(); len(got) != cap(reqs) {
		t.Fatalf("%d requests queued, want the %d fillers", len(got), cap(reqs))
	}
	got = offer(tc.bytes(t), 100)
	if len(got) != 1 || got[0].op != fastRemove {
		t.Errorf("the ACK after the dropped ask: %+v, want the closed flow asked out", got)
	}

	// A flush (reload) forgets what the workers asked: they ask again at once.
	got = offer(fwd, 100)
	if len(got) != 0 {
		t.Fatalf("asked %+v within fastRetry", got)
	}
	o.flushes.Add(1)
	if got := offer(fwd, 100); len(got) != 1 {
		t.Errorf("after a flush: %+v, want the flow asked for again", got)
	}
}
