package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/dataplane/flow"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

var (
	gwlb      = netip.MustParseAddr("192.0.2.1")
	appliance = netip.MustParseAddr("192.0.2.2")
)

// innerTCP builds a valid IPv4 (or IPv6) TCP packet with gopacket.
func innerTCP(t testing.TB, src, dst string, sport, dport uint16, flags uint8, payload int) []byte {
	t.Helper()
	s, d := net.ParseIP(src), net.ParseIP(dst)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Window: 1000,
		SYN: flags&packet.TCPSyn != 0, ACK: flags&packet.TCPAck != 0, FIN: flags&packet.TCPFin != 0, RST: flags&packet.TCPRst != 0}
	var net gopacket.SerializableLayer
	if s.To4() != nil {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: s, DstIP: d}
		tcp.SetNetworkLayerForChecksum(ip)
		net = ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: s, DstIP: d}
		tcp.SetNetworkLayerForChecksum(ip)
		net = ip
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		net, tcp, gopacket.Payload(make([]byte, payload)))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gwlbDatagram(inner []byte, endpoint uint64, cookie uint32) []byte {
	proto := geneve.ProtoIPv4
	if inner[0]>>4 == 6 {
		proto = geneve.ProtoIPv6
	}
	b := geneve.AppendAWSHeader(nil, proto, geneve.AWS{EndpointID: endpoint, AttachmentID: 9, FlowCookie: cookie})
	return append(b, inner...)
}

func newTestPipeline(pol *policy.Policy, allowed []netip.Prefix, maxFlows int) (*Pipeline, *flow.Table, *[]flow.Record) {
	var ended []flow.Record
	table := flow.NewTable(flow.Config{MaxFlows: maxFlows}, pol, func(r *flow.Record) { ended = append(ended, *r) })
	p := NewPipeline(&GeneveDecode{AllowedSources: allowed}, InnerDecode{}, &Track{Table: table})
	return p, table, &ended
}

func load(b *Batch, datagrams [][]byte, src netip.Addr, now int64) {
	b.N = len(datagrams)
	b.Now = now
	for i, d := range datagrams {
		s := &b.Slots[i]
		s.Reset()
		s.Buf = d
		s.Encap = EncapGeneve
		s.Outer = geneve.Outer{Src: src, Dst: appliance, SrcPort: uint16(40000 + i), DstPort: geneve.Port}
	}
}

func TestPipelineVerdicts(t *testing.T) {
	pol := &policy.Policy{Default: policy.Allow, Rules: []policy.Rule{
		{Action: policy.Drop, Proto: 6, DstPort: policy.PortRange{Lo: 23, Hi: 23}},
		{Action: policy.Drop, Proto: policy.AnyProto, Src: netip.MustParsePrefix("203.0.113.0/24")},
	}}
	p, table, _ := newTestPipeline(pol, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, 1000)
	w := p.NewWorker()
	b := NewBatch(8)

	syn := innerTCP(t, "10.0.0.1", "10.1.0.1", 1234, 80, packet.TCPSyn, 0)
	synAck := innerTCP(t, "10.1.0.1", "10.0.0.1", 80, 1234, packet.TCPSyn|packet.TCPAck, 0)
	telnet := innerTCP(t, "10.0.0.1", "10.1.0.1", 1235, 23, packet.TCPSyn, 0)
	denied := innerTCP(t, "203.0.113.5", "10.1.0.1", 1236, 443, packet.TCPSyn, 0)
	v6 := innerTCP(t, "fd00:1::1", "fd00:2::1", 1237, 443, packet.TCPSyn, 100)
	bad := gwlbDatagram(syn, 1, 1)
	bad[0] |= 0x80 // version 2
	load(b, [][]byte{
		gwlbDatagram(syn, 1, 1), gwlbDatagram(synAck, 1, 1), gwlbDatagram(telnet, 1, 2),
		gwlbDatagram(denied, 1, 3), gwlbDatagram(v6, 2, 4), bad,
	}, gwlb, 1e9)
	w.Process(b)

	want := []Verdict{VerdictReturn, VerdictReturn, VerdictDrop, VerdictDrop, VerdictReturn, VerdictDrop}
	for i, v := range want {
		if b.Slots[i].Verdict != v {
			t.Errorf("slot %d: verdict %d, want %d", i, b.Slots[i].Verdict, v)
		}
	}
	if b.Slots[0].Flow.FlowID != b.Slots[1].Flow.FlowID || !b.Slots[0].Flow.ToServer || b.Slots[1].Flow.ToServer {
		t.Errorf("SYN and SYN-ACK should share one flow in opposite directions: %+v %+v", b.Slots[0].Flow, b.Slots[1].Flow)
	}
	if got := table.Active(); got != 4 {
		t.Errorf("active flows %d, want 4", got)
	}

	// A datagram from outside gwlb.allowed_sources is dropped before decoding.
	load(b, [][]byte{gwlbDatagram(syn, 1, 1)}, netip.MustParseAddr("198.51.100.7"), 2e9)
	w.Process(b)
	if b.Slots[0].Verdict != VerdictDrop {
		t.Error("datagram from a source outside allowed_sources was not dropped")
	}

	tot := p.Totals()
	for _, c := range []struct {
		a    Action
		want uint64
	}{{ActionAllow, 3}, {ActionDrop, 2}, {ActionMalformed, 1}, {ActionSourceDenied, 1}} {
		if got := tot.Packet(EncapGeneve, c.a); got != c.want {
			t.Errorf("packets %s = %d, want %d", c.a, got, c.want)
		}
	}
	if tot.GeneveErr[geneve.ReasonVersion] != 1 {
		t.Errorf("bad_version errors = %d, want 1", tot.GeneveErr[geneve.ReasonVersion])
	}
}

// TestPolicyStickyPerFlow: the verdict is decided at the first packet and kept even
// when a later packet of the same flow, in the other direction, would match a rule.
func TestPolicyStickyPerFlow(t *testing.T) {
	pol := &policy.Policy{Default: policy.Allow, Rules: []policy.Rule{
		{Action: policy.Drop, Proto: policy.AnyProto, Src: netip.MustParsePrefix("10.1.0.0/16")},
	}}
	p, _, _ := newTestPipeline(pol, nil, 100)
	w := p.NewWorker()
	b := NewBatch(2)
	out := innerTCP(t, "10.0.0.1", "10.1.0.1", 1000, 80, packet.TCPSyn, 0)
	back := innerTCP(t, "10.1.0.1", "10.0.0.1", 80, 1000, packet.TCPSyn|packet.TCPAck, 0)
	load(b, [][]byte{gwlbDatagram(out, 1, 1), gwlbDatagram(back, 1, 1)}, gwlb, 1)
	w.Process(b)
	if b.Slots[0].Verdict != VerdictReturn || b.Slots[1].Verdict != VerdictReturn {
		t.Errorf("reply of an allowed flow dropped by a rule matching only the reply: %d %d", b.Slots[0].Verdict, b.Slots[1].Verdict)
	}
}

// benchBatch is a batch of 64 datagrams over 16 flows, both directions, v4 and v6.
func benchBatch(tb testing.TB) [][]byte {
	var ds [][]byte
	for i := range 64 {
		f := i % 16
		cli, srv := fmt.Sprintf("10.0.0.%d", f+1), "10.1.0.1"
		if f%4 == 3 {
			cli, srv = fmt.Sprintf("fd00:1::%x", f+1), "fd00:2::1"
		}
		var inner []byte
		if (i/16)%2 == 0 {
			inner = innerTCP(tb, cli, srv, uint16(1000+f), 443, packet.TCPAck, 1300)
		} else {
			inner = innerTCP(tb, srv, cli, 443, uint16(1000+f), packet.TCPAck, 1300)
		}
		ds = append(ds, gwlbDatagram(inner, uint64(f%2+1), uint32(f)))
	}
	return ds
}

// TestHotPathAllocs is the allocation budget of the hot path: decoding, flow
// lookup and policy for a whole batch allocate nothing.
func TestHotPathAllocs(t *testing.T) {
	pol := &policy.Policy{Default: policy.Allow, Rules: []policy.Rule{
		{Action: policy.Drop, Proto: 6, DstPort: policy.PortRange{Lo: 23, Hi: 23}},
	}}
	p, _, _ := newTestPipeline(pol, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, 1<<16)
	w := p.NewWorker()
	ds := benchBatch(t)
	b := NewBatch(len(ds))
	now := int64(1)
	allocs := testing.AllocsPerRun(200, func() {
		now += 1000
		load(b, ds, gwlb, now)
		w.Process(b)
	})
	if allocs != 0 {
		t.Errorf("hot path allocates %.1f times per batch, want 0", allocs)
	}
	if got := p.Totals().Packet(EncapGeneve, ActionAllow); got < 64*200 {
		t.Errorf("only %d packets allowed; the benchmark batch is not exercising the path", got)
	}
}

func BenchmarkPipelineBatch(b *testing.B) {
	pol := &policy.Policy{Default: policy.Allow, Rules: []policy.Rule{
		{Action: policy.Drop, Proto: 6, DstPort: policy.PortRange{Lo: 23, Hi: 23}},
		{Action: policy.Drop, Proto: policy.AnyProto, Src: netip.MustParsePrefix("203.0.113.0/24")},
	}}
	p, _, _ := newTestPipeline(pol, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, 1<<16)
	w := p.NewWorker()
	ds := benchBatch(b)
	batch := NewBatch(len(ds))
	var bytes int
	for _, d := range ds {
		bytes += len(d)
	}
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		load(batch, ds, gwlb, int64(i))
		w.Process(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ds)), "ns/pkt")
}

func TestStalled(t *testing.T) {
	p := NewPipeline()
	a, b, replay := p.NewWorker(), p.NewWorker(), p.NewWorker()
	_ = replay // never beats: not checked
	now := time.Now()
	if _, _, stalled := p.Stalled(now.Add(time.Hour), time.Second); stalled {
		t.Fatal("stalled before any worker beat")
	}
	a.Heartbeat()
	b.Heartbeat()
	if w, d, stalled := p.Stalled(time.Now(), time.Second); stalled {
		t.Fatalf("worker %d stalled for %s right after beating", w, d)
	}
	a.StopHeartbeat() // a ended: only b is checked
	w, d, stalled := p.Stalled(time.Now().Add(5*time.Second), time.Second)
	if !stalled || w != b.ID || d < 5*time.Second || d > time.Minute {
		t.Fatalf("Stalled = %d, %s, %v; want worker %d, 5s or a little more", w, d, stalled, b.ID)
	}
	b.StopHeartbeat()
	if w, _, stalled := p.Stalled(time.Now().Add(time.Hour), time.Second); stalled {
		t.Fatalf("worker %d stalled after stopping", w)
	}
}
