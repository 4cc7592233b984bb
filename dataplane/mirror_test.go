package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"weir/dataplane/flow"
	"weir/dataplane/mirror"
	"weir/dataplane/packet"
	"weir/dataplane/pcapout"
	"weir/dataplane/policy"
	"weir/geneve"
	"weir/vxlan"
)

// The mirrored world of these tests: ENI A (10.0.1.5) and ENI B (10.0.2.9) talk to
// the internet (198.51.100.7) and to each other through the VPC router. AWS sends
// each mirrored frame with the ENI's IP as outer source.
var (
	eniA     = netip.MustParseAddr("10.0.1.5")
	eniB     = netip.MustParseAddr("10.0.2.9")
	nlb      = netip.MustParseAddr("10.0.200.1") // a source that is no ENI
	gwlbe    = netip.MustParseAddr("10.0.0.100") // a GWLB endpoint as mirror target
	macA     = [6]byte{0x02, 0, 0, 0, 0x0a, 0x01}
	macB     = [6]byte{0x02, 0, 0, 0, 0x0b, 0x01}
	macR     = [6]byte{0x06, 0, 0, 0, 0xff, 0x01} // the VPC router
	mirrorT0 = time.Date(2026, 11, 21, 21, 30, 48, 123456789, time.UTC).UnixNano()
)

// ipPacket builds a valid IPv4 or IPv6 TCP or UDP packet with payload bytes of data.
func ipPacket(tb testing.TB, proto layers.IPProtocol, src, dst string, sport, dport uint16, ttl uint8, payload int) []byte {
	tb.Helper()
	s, d := net.ParseIP(src), net.ParseIP(dst)
	var ip gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	if s.To4() != nil {
		v4 := &layers.IPv4{Version: 4, TTL: ttl, Protocol: proto, SrcIP: s.To4(), DstIP: d.To4()}
		ip, nl = v4, v4
	} else {
		v6 := &layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: proto, SrcIP: s, DstIP: d}
		ip, nl = v6, v6
	}
	var l4 gopacket.SerializableLayer
	switch proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), ACK: true, Seq: 7, Window: 1000}
		tcp.SetNetworkLayerForChecksum(nl)
		l4 = tcp
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		udp.SetNetworkLayerForChecksum(nl)
		l4 = udp
	default:
		tb.Fatalf("ipPacket: protocol %v", proto)
	}
	pl := make([]byte, payload)
	for i := range pl {
		pl[i] = byte(i)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, l4, gopacket.Payload(pl)); err != nil {
		tb.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func tcpPacket(tb testing.TB, src, dst string, sport, dport uint16, payload int) []byte {
	return ipPacket(tb, layers.IPProtocolTCP, src, dst, sport, dport, 64, payload)
}

// ethernet is an Ethernet frame; the type follows from the payload's IP version.
func ethernet(dst, src [6]byte, payload []byte) []byte {
	typ := uint16(0x0800)
	if len(payload) > 0 && payload[0]>>4 == 6 {
		typ = 0x86dd
	}
	return ethernetType(dst, src, typ, payload)
}

func ethernetType(dst, src [6]byte, typ uint16, payload []byte) []byte {
	f := append(dst[:], src[:]...)
	f = binary.BigEndian.AppendUint16(f, typ)
	return append(f, payload...)
}

// arp is an ARP request frame from ENI A.
func arp() []byte {
	body := []byte{0, 1, 8, 0, 6, 4, 0, 1}
	body = append(body, macA[:]...)
	body = append(body, 10, 0, 1, 5, 0, 0, 0, 0, 0, 0, 10, 0, 1, 1)
	return ethernetType([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, macA, 0x0806, body)
}

// vx is a Traffic Mirroring datagram (the UDP payload): VXLAN header, then frame.
func vx(vni uint32, frame []byte) []byte {
	return append(vxlan.AppendHeader(nil, vni), frame...)
}

// vxInGeneve is what a GWLB sends when a GWLB endpoint is the mirror target: GENEVE
// around the mirror's own IPv4/UDP datagram from the ENI to the endpoint, port 4789.
func vxInGeneve(tb testing.TB, eni netip.Addr, vni uint32, frame []byte) []byte {
	tb.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 255, Protocol: layers.IPProtocolUDP,
		SrcIP: eni.AsSlice(), DstIP: gwlbe.AsSlice()}
	udp := &layers.UDP{SrcPort: 61234, DstPort: vxlan.Port}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, udp, gopacket.Payload(vx(vni, frame))); err != nil {
		tb.Fatal(err)
	}
	return gwlbDatagram(append([]byte(nil), buf.Bytes()...), 7, 0xbeef)
}

// mirrorIn is one datagram of a test batch.
type mirrorIn struct {
	dgram []byte
	src   netip.Addr // outer source (the ENI, or for GENEVE the GWLB)
	encap Encap
	frame []byte // the inner frame, when the datagram holds one
}

// fromENI is a VXLAN datagram from eni (the outer source) carrying frame in vni.
func fromENI(eni netip.Addr, vni uint32, frame []byte) mirrorIn {
	return mirrorIn{dgram: vx(vni, frame), src: eni, encap: EncapVXLAN, frame: frame}
}

func viaGWLB(tb testing.TB, eni netip.Addr, vni uint32, frame []byte) mirrorIn {
	return mirrorIn{dgram: vxInGeneve(tb, eni, vni, frame), src: gwlb, encap: EncapGeneve, frame: frame}
}

func rawVXLAN(dgram []byte, src netip.Addr) mirrorIn {
	in := mirrorIn{dgram: dgram, src: src, encap: EncapVXLAN}
	if len(dgram) >= vxlan.HeaderLen+vxlan.MinFrameLen {
		in.frame = dgram[vxlan.HeaderLen:]
	}
	return in
}

func loadMirror(b *Batch, ins []mirrorIn, now int64) {
	b.N, b.Now = len(ins), now
	for i, in := range ins {
		s := &b.Slots[i]
		s.Reset()
		s.Buf, s.Encap = in.dgram, in.encap
		if in.encap == EncapGeneve {
			s.Outer = geneve.Outer{Src: in.src, Dst: appliance, SrcPort: uint16(40000 + i), DstPort: geneve.Port}
		} else {
			s.Outer = geneve.Outer{Src: in.src, Dst: appliance, SrcPort: uint16(50000 + i), DstPort: vxlan.Port}
		}
	}
}

// session returns a mirror session; mirrorRig numbers it and gives it a Directions
// (from eniMAC and eniIP) unless it has one.
func session(name string, vni uint32) *Session { return &Session{Name: name, VNI: vni} }

func catchAll(name string) *Session { return &Session{Name: name, CatchAll: true} }

// mirrorRig is the whole mirror pipeline: GENEVE and VXLAN decoding, inner decoding,
// the mirror filter, flow tracking and a pcap writer in a temporary directory.
type mirrorRig struct {
	p            *Pipeline
	w            *Worker
	table        *flow.Table // inline flows
	mirror       *flow.Table // mirrored flows
	ended        []flow.Record
	pcap         *pcapout.Writer
	sessions     *Sessions
	byName       map[string]*Session
	eniMAC       map[string][6]byte // by session name, for Directions
	eniIP        map[string]netip.Addr
	dedupeWindow time.Duration
	merge        bool
	queue        int
}

func (r *mirrorRig) start(tb testing.TB, list ...*Session) {
	tb.Helper()
	r.byName = map[string]*Session{}
	for i, s := range list {
		s.Index = uint16(i + 1)
		if s.Directions == nil {
			var mac net.HardwareAddr
			if m, ok := r.eniMAC[s.Name]; ok {
				mac = m[:]
			}
			s.Directions = mirror.NewDirections(mac, r.eniIP[s.Name], 0)
		}
		r.byName[s.Name] = s
	}
	r.sessions = NewSessions(list)
	r.table = flow.NewTable(flow.Config{MaxFlows: 1 << 12}, &policy.Policy{Default: policy.Allow}, nil)
	r.mirror = flow.NewTable(flow.Config{MaxFlows: 1 << 12}, nil, func(rec *flow.Record) { r.ended = append(r.ended, *rec) })
	var err error
	r.pcap, err = pcapout.New(pcapout.Config{Dir: tb.TempDir(), Queue: max(r.queue, 256), Slot: 2048})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.pcap.Close() })
	var dd *mirror.Dedupe
	if r.dedupeWindow > 0 {
		dd = mirror.NewDedupe(r.dedupeWindow, 1<<12)
	}
	r.p = NewPipeline(
		&GeneveDecode{},
		&VXLANDecode{Sessions: r.sessions, MirrorEndpoints: []uint64{7}},
		InnerDecode{},
		&MirrorFilter{Dedupe: dd},
		&Track{Table: r.table, Mirror: r.mirror, MergeSessions: r.merge},
		&Record{PCAP: r.pcap},
	)
	r.p.SetSessions(len(list))
	r.w = r.p.NewWorker()
}

// pcapRecord is one record of a pcap file.
type pcapRecord struct {
	ci   gopacket.CaptureInfo
	data []byte
}

// records closes the pcap writer and reads back every record it wrote.
func (r *mirrorRig) records(tb testing.TB) []pcapRecord {
	tb.Helper()
	if err := r.pcap.Close(); err != nil {
		tb.Fatalf("pcap Close: %v", err)
	}
	var out []pcapRecord
	for _, name := range r.pcap.Files() {
		f, err := os.Open(name)
		if err != nil {
			tb.Fatal(err)
		}
		rd, err := pcapgo.NewReader(f)
		if err != nil {
			f.Close()
			tb.Fatalf("%s: %v", name, err)
		}
		if rd.LinkType() != layers.LinkTypeEthernet {
			tb.Errorf("%s: link type %v, want Ethernet", name, rd.LinkType())
		}
		for {
			data, ci, err := rd.ReadPacketData()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			out = append(out, pcapRecord{ci, data})
		}
		f.Close()
	}
	return out
}

// mirrorWant is what should become of one datagram.
type mirrorWant struct {
	action  Action
	verdict Verdict          // VerdictDrop unless said
	session string           // the session's name; "" for none
	dir     mirror.Direction // relative to the mirrored ENI
	capLen  int              // bytes recorded when accepted; 0: the whole frame
}

func TestMirrorPipeline(t *testing.T) {
	// Frames of ENI A with the internet, and of ENI A with ENI B.
	webOut := ethernet(macR, macA, tcpPacket(t, "10.0.1.5", "198.51.100.7", 40000, 443, 100))
	webIn := ethernet(macA, macR, tcpPacket(t, "198.51.100.7", "10.0.1.5", 443, 40000, 1000))
	sshOut := ethernet(macR, macA, tcpPacket(t, "10.0.1.5", "198.51.100.7", 40001, 22, 0))
	ntpIn := ethernet(macA, macR, ipPacket(t, layers.IPProtocolUDP, "198.51.100.7", "10.0.1.5", 123, 123, 60, 48))
	dnsOut := ethernet(macR, macA, ipPacket(t, layers.IPProtocolUDP, "10.0.1.5", "169.254.169.253", 5353, 53, 64, 30))
	v6Out := ethernet(macR, macA, tcpPacket(t, "2001:db8::5", "2001:db8:1::7", 40002, 443, 10))
	secondaryOut := ethernet(macR, macA, tcpPacket(t, "10.0.1.6", "198.51.100.7", 40003, 443, 0))
	secondaryIn := ethernet(macA, macR, tcpPacket(t, "198.51.100.7", "10.0.1.6", 443, 40003, 0))
	aToB := tcpPacket(t, "10.0.1.5", "10.0.2.9", 40004, 5432, 200)
	aToBHop := ipPacket(t, layers.IPProtocolTCP, "10.0.1.5", "10.0.2.9", 40004, 5432, 63, 200) // one router later
	aToBOut := ethernet(macR, macA, aToB)
	aToBIn := ethernet(macB, macR, aToBHop)
	exact64 := ethernet(macR, macA, tcpPacket(t, "10.0.1.5", "198.51.100.7", 40005, 443, 10)) // 64 bytes

	flagsClear := vx(101, webOut)
	flagsClear[0] = 0
	reserved := vx(101, webOut)
	reserved[0] |= 0x04 // a flag other than I
	reservedTail := vx(101, webIn)
	reservedTail[7] = 0xff // the byte after the VNI

	webOnly, err := mirror.NewFilter("tmf-web", []mirror.Rule{
		{Number: 100, Action: mirror.Accept, Protocol: 17,
			Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix("10.0.0.0/16")},
	}, []mirror.Rule{
		{Number: 200, Action: mirror.Accept, Protocol: mirror.AllProtocols,
			Src: netip.MustParsePrefix("10.0.0.0/16"), Dst: netip.MustParsePrefix("0.0.0.0/0")},
		{Number: 100, Action: mirror.Reject, Protocol: 6, DstPorts: &mirror.PortRange{From: 22, To: 22},
			Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix("0.0.0.0/0")},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	acceptAll, err := mirror.NewFilter("tmf-all", nil, []mirror.Rule{
		{Number: 1, Action: mirror.Accept, Protocol: mirror.AllProtocols,
			Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix("0.0.0.0/0")},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	amazonDNS := []netip.Addr{netip.MustParseAddr("169.254.169.253")}

	type counts map[Action]uint64
	for _, tc := range []struct {
		name     string
		rig      mirrorRig
		sessions func() []*Session
		in       []mirrorIn
		want     []mirrorWant
		flows    int // mirrored flows in the table afterwards
		inline   int // inline flows
		check    func(t *testing.T, r *mirrorRig, b *Batch, tot Totals)
	}{
		{
			name:     "configured VNI accepted",
			sessions: func() []*Session { return []*Session{session("web", 101), session("db", 102)} },
			in:       []mirrorIn{fromENI(eniA, 101, webOut), fromENI(eniA, 101, webIn)},
			want: []mirrorWant{
				{action: ActionAllow, session: "web", dir: mirror.DirEgress},
				{action: ActionAllow, session: "web", dir: mirror.DirIngress},
			},
			flows: 1,
			check: func(t *testing.T, r *mirrorRig, b *Batch, tot Totals) {
				if st := tot.Sessions[1]; st.Received != 2 || st.Accepted != 2 || st.ReceivedBytes != uint64(len(webOut)+len(webIn)) {
					t.Errorf("session web: %+v, want 2 received, 2 accepted", st)
				}
				if st := tot.Sessions[2]; st != (SessionTotals{}) {
					t.Errorf("session db counted %+v, want nothing", st)
				}
				f0, f1 := b.Slots[0].Flow, b.Slots[1].Flow
				if f0.FlowID == 0 || f0.FlowID != f1.FlowID || !f0.Created || f1.Created || !f0.ToServer || f1.ToServer {
					t.Errorf("the two directions should share one flow: %+v %+v", f0, f1)
				}
				if b.Slots[0].VNI != 101 {
					t.Errorf("VNI %d, want 101", b.Slots[0].VNI)
				}
			},
		},
		{
			name:     "unknown VNI without a catch-all",
			sessions: func() []*Session { return []*Session{session("web", 101)} },
			in:       []mirrorIn{fromENI(eniA, 202, webOut), fromENI(eniA, 101, webOut)},
			want: []mirrorWant{
				{action: ActionNoSession},
				{action: ActionAllow, session: "web", dir: mirror.DirEgress},
			},
			flows: 1,
			check: func(t *testing.T, r *mirrorRig, b *Batch, tot Totals) {
				if b.Slots[0].VNI != 202 {
					t.Errorf("VNI of the dropped datagram %d, want 202", b.Slots[0].VNI)
				}
			},
		},
		{
			name:     "catch-all takes unknown VNIs",
			sessions: func() []*Session { return []*Session{catchAll("rest"), session("web", 101)} },
			in: []mirrorIn{
				fromENI(eniA, 202, webOut), fromENI(eniA, 101, webOut), fromENI(eniA, 0, webIn),
				fromENI(eniA, vxlan.MaxVNI, webIn),
			},
			want: []mirrorWant{
				{action: ActionAllow, session: "rest", dir: mirror.DirEgress},
				{action: ActionAllow, session: "web", dir: mirror.DirEgress},
				{action: ActionAllow, session: "rest", dir: mirror.DirIngress},
				{action: ActionAllow, session: "rest", dir: mirror.DirIngress},
			},
			flows: 4, // one flow, in four VNIs
		},
		{
			name: "filter by direction, rule number and protocol",
			sessions: func() []*Session {
				s := session("web", 101)
				s.Filter = webOnly
				return []*Session{s}
			},
			in: []mirrorIn{
				fromENI(eniA, 101, webOut), // egress 200 accepts
				fromENI(eniA, 101, sshOut), // egress 100 rejects before 200 accepts
				fromENI(eniA, 101, webIn),  // ingress: only UDP is mirrored
				fromENI(eniA, 101, ntpIn),  // ingress 100 accepts
				fromENI(eniA, 101, v6Out),  // no IPv6 rule: not mirrored
			},
			want: []mirrorWant{
				{action: ActionAllow, session: "web", dir: mirror.DirEgress},
				{action: ActionFiltered, session: "web", dir: mirror.DirEgress},
				{action: ActionFiltered, session: "web", dir: mirror.DirIngress},
				{action: ActionAllow, session: "web", dir: mirror.DirIngress},
				{action: ActionFiltered, session: "web", dir: mirror.DirEgress}, // by the MAC learned
			},
			flows: 2,
			check: func(t *testing.T, r *mirrorRig, b *Batch, tot Totals) {
				if st := tot.Sessions[1]; st.Received != 5 || st.Accepted != 2 || st.Rejected != 3 {
					t.Errorf("session counters %+v, want 5 received, 2 accepted, 3 rejected", st)
				}
			},
		},
		{
			name: "Amazon DNS is mirrored only when the filter says so",
			sessions: func() []*Session {
				s := session("web", 101)
				s.Filter, s.AmazonDNS = acceptAll, amazonDNS
				return []*Session{s}
			},
			in: []mirrorIn{fromENI(eniA, 101, dnsOut), fromENI(eniA, 101, webOut)},
			want: []mirrorWant{
				{action: ActionFiltered, session: "web", dir: mirror.DirEgress},
				{action: ActionAllow, session: "web", dir: mirror.DirEgress},
			},
			flows: 1,
		},
		{
			name: "truncation to packet_length",
			sessions: func() []*Session {
				s := session("web", 101)
				s.PacketLength = 64
				return []*Session{s}
			},
			in: []mirrorIn{fromENI(eniA, 101, webIn), fromENI(eniA, 101, exact64), fromENI(eniA, 101, sshOut)},
			want: []mirrorWant{
				{action: ActionAllow, session: "web", dir: mirror.DirIngress, capLen: 64},
				{action: ActionAllow, session: "web", dir: mirror.DirEgress},
				{action: ActionAllow, session: "web", dir: mirror.DirEgress},
			},
			flows: 3,
			check: func(t *testing.T, r *mirrorRig, b *Batch, tot Totals) {
				if len(exact64) != 64 || len(sshOut) >= 64 || len(webIn) < 1000 {
					t.Fatalf("test frames of %d, %d, %d bytes", len(exact64), len(sshOut), len(webIn))
				}
				if st := tot.Sessions[1]; st.Truncated != 1 || st.Accepted != 3 {
					t.Errorf("session counters %+v, want 1 truncated of 3 accepted", st)
				}
				// The flow counts the whole IP packet, not what was kept.
				r.mirror.Flush(mirrorT0 + 1)
				for _, rec := range r.ended {
					if rec.DstPort == 40000 && rec.BytesToServer+rec.BytesToClient != uint64(len(webIn)-14) {
						t.Errorf("flow bytes %d+%d, want %d", rec.BytesToServer, rec.BytesToClient, len(webIn)-14)
					}
				}
			},
		},
		{
			name:     "ARP is not IP, not malformed",
			sessions: func() []*Session { return []*Session{session("web", 101)} },
			in:       []mirrorIn{fromENI(eniA, 101, arp()), fromENI(eniA, 101, webOut)},
			want: []mirrorWant{
				{action: ActionNotIP, session: "web"},
				{action: ActionAllow, session: "web", dir: mirror.DirEgress},
			},
			flows: 1,
			check: func(t *testing.T, r *mirrorRig, b *Batch, tot Totals) {
				for e := range tot.InnerErr {
					for reason, n := range tot.InnerErr[e] {
						if n != 0 {
							t.Errorf("inner decode error %s/%v counted %d times", Encap(e), packet.Reason(reason), n)
						}
					}
				}
			},
		},
		{
			name:     "malformed VXLAN",
			sessions: func() []*Session { return []*Session{catchAll("all")} },
			in: []mirrorIn{
				rawVXLAN(flagsClear, eniA),
				rawVXLAN(nil, eniA),
				rawVXLAN(vx(101, nil)[:5], eniA),
				rawVXLAN(vx(101, webOut[:13]), eniA), // shorter than an Ethernet header
				fromENI(eniA, 101, webOut),
			},
			want: []mirrorWant{
				{action: ActionMalformed}, {action: ActionMalformed}, {action: ActionMalformed}, {action: ActionMalformed},
				{action: ActionAllow, session: "all", dir: mirror.DirEgress},
			},
			flows: 1,
			check: func(t *testing.T, r *mirrorRig, b *Batch, tot Totals) {
				for reason, want := range map[vxlan.Reason]uint64{
					vxlan.ReasonNoVNIFlag: 1, vxlan.ReasonEmpty: 1, vxlan.ReasonTruncated: 1, vxlan.ReasonNoFrame: 1,
				} {
					if got := tot.VXLANErr[reason]; got != want {
						t.Errorf("VXLANErr[%s] = %d, want %d", reason, got, want)
					}
				}
				if tot.Sessions[1].Received != 1 {
					t.Errorf("malformed datagrams counted as received by the session: %+v", tot.Sessions[1])
				}
			},
		},
		{
			name:     "reserved bits set are accepted and counted",
			sessions: func() []*Session { return []*Session{session("web", 101)} },
			in:       []mirrorIn{rawVXLAN(reserved, eniA), rawVXLAN(reservedTail, eniA), fromENI(eniA, 101, webOut)},
			want: []mirrorWant{
				{action: ActionAllow, session: "web", dir: mirror.DirEgress},
				{action: ActionAllow, session: "web", dir: mirror.DirIngress},
				{action: ActionAllow, session: "web", dir: mirror.DirEgress},
			},
			flows: 1,
			check: func(t *testing.T, r *mirrorRig, b *Batch, tot Totals) {
				if tot.VXLANReserved != 2 {
					t.Errorf("VXLANReserved = %d, want 2", tot.VXLANReserved)
				}
				for reason, n := range tot.VXLANErr {
					if n != 0 {
						t.Errorf("VXLANErr[%s] = %d, want 0", vxlan.Reason(reason), n)
					}
				}
			},
		},
		{
			// The outer source is no ENI (a load balancer in between): eni_ip tells
			// the direction, and the ENI's MAC learned from it tells that of the
			// secondary IP's packets; without eni_ip nothing can be told.
			name: "direction from eni_ip",
			rig:  mirrorRig{eniIP: map[string]netip.Addr{"a": eniA}},
			sessions: func() []*Session {
				return []*Session{session("a", 101), session("unknown", 102)}
			},
			in: []mirrorIn{
				fromENI(nlb, 101, webOut), fromENI(nlb, 101, webIn),
				fromENI(nlb, 101, secondaryOut), fromENI(nlb, 101, secondaryIn),
				fromENI(nlb, 102, webOut), fromENI(nlb, 102, webIn),
			},
			want: []mirrorWant{
				{action: ActionAllow, session: "a", dir: mirror.DirEgress},
				{action: ActionAllow, session: "a", dir: mirror.DirIngress},
				{action: ActionAllow, session: "a", dir: mirror.DirEgress},
				{action: ActionAllow, session: "a", dir: mirror.DirIngress},
				{action: ActionAllow, session: "unknown", dir: mirror.DirUnknown},
				{action: ActionAllow, session: "unknown", dir: mirror.DirUnknown},
			},
			flows: 3,
			check: func(t *testing.T, r *mirrorRig, b *Batch, tot Totals) {
				r.mirror.Flush(mirrorT0 + 1)
				for _, rec := range r.ended {
					if rec.Session == 1 && rec.Direction != flow.DirectionEgress {
						t.Errorf("flow %v:%d > %v:%d of session a: direction %d, want egress (of its first packet)",
							rec.Src, rec.SrcPort, rec.Dst, rec.DstPort, rec.Direction)
					}
				}
			},
		},
		{
			name: "direction from the outer source and from eni_mac",
			rig:  mirrorRig{eniMAC: map[string][6]byte{"b": macB}},
			sessions: func() []*Session {
				return []*Session{session("a", 101), session("b", 102)}
			},
			in: []mirrorIn{
				fromENI(eniA, 101, webOut), fromENI(eniA, 101, webIn),
				fromENI(eniB, 102, aToBIn), // to B's MAC
				fromENI(eniB, 102, ethernet(macR, macB, tcpPacket(t, "10.0.2.10", "10.0.1.5", 1, 2, 0))), // from B's MAC, a secondary IP
			},
			want: []mirrorWant{
				{action: ActionAllow, session: "a", dir: mirror.DirEgress},
				{action: ActionAllow, session: "a", dir: mirror.DirIngress},
				{action: ActionAllow, session: "b", dir: mirror.DirIngress},
				{action: ActionAllow, session: "b", dir: mirror.DirEgress},
			},
			flows: 3,
		},
		{
			name:     "dedupe: a packet mirrored at both ends is kept once",
			rig:      mirrorRig{dedupeWindow: time.Second},
			sessions: func() []*Session { return []*Session{session("a", 101), session("b", 102)} },
			in: []mirrorIn{
				fromENI(eniA, 101, aToBOut), // A's egress copy
				fromENI(eniB, 102, aToBIn),  // B's ingress copy: other VNI, MACs and TTL
				fromENI(eniA, 101, aToBOut), // A again: a retransmission, kept
				fromENI(eniA, 101, webOut),
			},
			want: []mirrorWant{
				{action: ActionAllow, session: "a", dir: mirror.DirEgress},
				{action: ActionDuplicate, session: "b", dir: mirror.DirIngress},
				{action: ActionAllow, session: "a", dir: mirror.DirEgress},
				{action: ActionAllow, session: "a", dir: mirror.DirEgress},
			},
			flows: 2,
			check: func(t *testing.T, r *mirrorRig, b *Batch, tot Totals) {
				if st := tot.Sessions[2]; st.Duplicates != 1 || st.Received != 1 || st.Accepted != 0 {
					t.Errorf("session b: %+v, want 1 received, 1 duplicate", st)
				}
				// Past the window the copy is new again.
				loadMirror(b, []mirrorIn{fromENI(eniB, 102, aToBIn)}, mirrorT0+int64(3*time.Second))
				r.w.Process(b)
				if b.Slots[0].action != ActionAllow {
					t.Errorf("copy after the window: %s, want allow", b.Slots[0].action)
				}
			},
		},
		{
			name:     "no dedupe without a window",
			sessions: func() []*Session { return []*Session{session("a", 101), session("b", 102)} },
			in:       []mirrorIn{fromENI(eniA, 101, aToBOut), fromENI(eniB, 102, aToBIn)},
			want: []mirrorWant{
				{action: ActionAllow, session: "a", dir: mirror.DirEgress},
				{action: ActionAllow, session: "b", dir: mirror.DirIngress},
			},
			flows: 2, // one flow per session
		},
		{
			name:     "equal 5-tuples merged across sessions",
			rig:      mirrorRig{merge: true},
			sessions: func() []*Session { return []*Session{session("a", 101), session("b", 102)} },
			in:       []mirrorIn{fromENI(eniA, 101, aToBOut), fromENI(eniB, 102, aToBIn), fromENI(eniA, 103, aToBOut)},
			want: []mirrorWant{
				{action: ActionAllow, session: "a", dir: mirror.DirEgress},
				{action: ActionAllow, session: "b", dir: mirror.DirIngress},
				{action: ActionNoSession},
			},
			flows: 1,
			check: func(t *testing.T, r *mirrorRig, b *Batch, tot Totals) {
				if b.Slots[0].Flow.FlowID != b.Slots[1].Flow.FlowID {
					t.Errorf("merged sessions: flows %d and %d, want one", b.Slots[0].Flow.FlowID, b.Slots[1].Flow.FlowID)
				}
			},
		},
		{
			name:     "equal 5-tuples in two VNIs of one catch-all",
			sessions: func() []*Session { return []*Session{catchAll("all")} },
			in:       []mirrorIn{fromENI(eniA, 101, webOut), fromENI(eniA, 102, webOut)},
			want: []mirrorWant{
				{action: ActionAllow, session: "all", dir: mirror.DirEgress},
				{action: ActionAllow, session: "all", dir: mirror.DirEgress},
			},
			flows: 2,
			check: func(t *testing.T, r *mirrorRig, b *Batch, tot Totals) {
				if !b.Slots[0].Flow.Created || !b.Slots[1].Flow.Created || b.Slots[0].Flow.FlowID == b.Slots[1].Flow.FlowID {
					t.Errorf("two VNIs should make two flows: %+v %+v", b.Slots[0].Flow, b.Slots[1].Flow)
				}
			},
		},
		{
			// A GWLB endpoint as mirror target: the VXLAN datagram arrives inside
			// GENEVE. It is mirror traffic, never returned to the GWLB, while inline
			// GENEVE traffic on the same listener still is.
			name: "VXLAN inside GENEVE",
			sessions: func() []*Session {
				return []*Session{session("web", 101)}
			},
			in: []mirrorIn{
				viaGWLB(t, eniA, 101, webOut),
				viaGWLB(t, eniA, 101, webIn),
				viaGWLB(t, eniA, 909, webOut),
				{dgram: gwlbDatagram(tcpPacket(t, "10.9.0.1", "10.9.0.2", 1000, 80, 0), 7, 1), src: gwlb, encap: EncapGeneve},
				{dgram: gwlbDatagram(ipPacket(t, layers.IPProtocolUDP, "10.9.0.1", "10.9.0.2", 1000, 4790, 64, 20), 7, 2), src: gwlb, encap: EncapGeneve},
				// UDP to 4789 through an endpoint that is not a mirror target is a
				// customer's own VXLAN: inline traffic, returned.
				{dgram: gwlbDatagram(ipPacket(t, layers.IPProtocolUDP, "10.9.0.1", "10.9.0.2", 1000, 4789, 64, 20), 8, 3), src: gwlb, encap: EncapGeneve},
			},
			want: []mirrorWant{
				{action: ActionAllow, session: "web", dir: mirror.DirEgress},
				{action: ActionAllow, session: "web", dir: mirror.DirIngress},
				{action: ActionNoSession},
				{action: ActionAllow, verdict: VerdictReturn},
				{action: ActionAllow, verdict: VerdictReturn},
				{action: ActionAllow, verdict: VerdictReturn},
			},
			flows:  1,
			inline: 3,
			check: func(t *testing.T, r *mirrorRig, b *Batch, tot Totals) {
				if st := tot.Sessions[1]; st.Received != 2 || st.Accepted != 2 {
					t.Errorf("session web: %+v, want 2 received and accepted", st)
				}
				r.mirror.Flush(mirrorT0 + 1)
				if len(r.ended) != 1 {
					t.Fatalf("mirror flows ended: %d, want 1", len(r.ended))
				}
				tun := r.ended[0].Tunnel
				if tun.Encap != flow.EncapVXLAN || tun.VNI != 101 || r.ended[0].Session != 1 {
					t.Errorf("mirror flow tunnel %+v session %d, want VXLAN VNI 101 of session 1", tun, r.ended[0].Session)
				}
				// The mirror's tunnel runs from the mirrored ENI, not from the GWLB.
				if tun.Src != eniA || tun.Dst != gwlbe || tun.DstPort != vxlan.Port {
					t.Errorf("mirror flow tunnel %+v, want %v > %v:%d", tun, eniA, gwlbe, vxlan.Port)
				}
			},
		},
		{
			name:     "dedupe through a GWLB endpoint",
			rig:      mirrorRig{dedupeWindow: time.Second},
			sessions: func() []*Session { return []*Session{session("a", 101), session("b", 102)} },
			in: []mirrorIn{
				viaGWLB(t, eniA, 101, aToBOut),
				viaGWLB(t, eniB, 102, aToBIn),
			},
			want: []mirrorWant{
				{action: ActionAllow, session: "a", dir: mirror.DirEgress},
				{action: ActionDuplicate, session: "b", dir: mirror.DirIngress},
			},
			flows: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.in) != len(tc.want) {
				t.Fatalf("%d datagrams, %d wants", len(tc.in), len(tc.want))
			}
			r := tc.rig
			r.start(t, tc.sessions()...)
			b := NewBatch(len(tc.in))
			loadMirror(b, tc.in, mirrorT0)
			r.w.Process(b)
			tot := r.p.Totals()

			wantPackets := [NumEncaps]counts{}
			wantSess := make([]SessionTotals, len(r.sessions.List())+1)
			type rec struct {
				data []byte
				orig int
			}
			var wantRecs []rec
			for i, w := range tc.want {
				s, in := &b.Slots[i], tc.in[i]
				if wantPackets[in.encap] == nil {
					wantPackets[in.encap] = counts{}
				}
				wantPackets[in.encap][w.action]++
				if s.action != w.action {
					t.Errorf("slot %d: action %s, want %s", i, s.action, w.action)
				}
				if s.Verdict != w.verdict {
					t.Errorf("slot %d: verdict %d, want %d", i, s.Verdict, w.verdict)
				}
				name := ""
				if s.Session != nil {
					name = s.Session.Name
				}
				if name != w.session {
					t.Errorf("slot %d: session %q, want %q", i, name, w.session)
				}
				if s.Direction != w.dir {
					t.Errorf("slot %d: direction %s, want %s", i, s.Direction, w.dir)
				}
				if w.session == "" {
					if w.action == ActionAllow && s.Flow.FlowID == 0 {
						t.Errorf("slot %d: allowed inline packet without a flow", i)
					}
					continue
				}
				st := &wantSess[r.byName[w.session].Index]
				st.Received++
				st.ReceivedBytes += uint64(len(in.frame))
				switch w.action {
				case ActionFiltered:
					st.Rejected++
				case ActionDuplicate:
					st.Duplicates++
				case ActionAllow:
					st.Accepted++
					capLen := len(in.frame)
					if w.capLen != 0 {
						capLen = w.capLen
						st.Truncated++
					}
					if s.CapLen != capLen {
						t.Errorf("slot %d: CapLen %d, want %d", i, s.CapLen, capLen)
					}
					if !bytes.Equal(s.Frame, in.frame) {
						t.Errorf("slot %d: Frame is not the inner frame", i)
					}
					if s.Flow.FlowID == 0 {
						t.Errorf("slot %d: accepted without a flow", i)
					}
					wantRecs = append(wantRecs, rec{in.frame[:capLen], len(in.frame)})
				}
			}
			for e := range NumEncaps {
				for a := range NumActions() {
					if got, want := tot.Packet(e, a), wantPackets[e][a]; got != want {
						t.Errorf("packets %s/%s = %d, want %d", e, a, got, want)
					}
				}
			}
			for i := 1; i < len(wantSess); i++ {
				if tot.Sessions[i] != wantSess[i] {
					t.Errorf("session %d totals %+v, want %+v", i, tot.Sessions[i], wantSess[i])
				}
			}
			if got := r.mirror.Active(); got != tc.flows {
				t.Errorf("mirror flows %d, want %d", got, tc.flows)
			}
			if got := r.table.Active(); got != tc.inline {
				t.Errorf("inline flows %d, want %d", got, tc.inline)
			}

			// What was accepted is in the pcap, cut to CapLen with its whole length
			// as orig_len, at the batch's time.
			recs := r.records(t)
			if len(recs) != len(wantRecs) {
				t.Fatalf("pcap holds %d records, want %d", len(recs), len(wantRecs))
			}
			for i, got := range recs {
				w := wantRecs[i]
				if !bytes.Equal(got.data, w.data) || got.ci.CaptureLength != len(w.data) || got.ci.Length != w.orig {
					t.Errorf("pcap record %d: caplen %d len %d, want %d of %d (data equal: %v)",
						i, got.ci.CaptureLength, got.ci.Length, len(w.data), w.orig, bytes.Equal(got.data, w.data))
				}
				if !got.ci.Timestamp.Equal(time.Unix(0, mirrorT0)) {
					t.Errorf("pcap record %d: time %v, want %v", i, got.ci.Timestamp, time.Unix(0, mirrorT0))
				}
			}
			if tc.check != nil {
				tc.check(t, &r, b, tot)
			}
		})
	}
}

// mirrorBenchBatch is 64 mirror datagrams: 16 flows of two ENIs, both directions,
// IPv4 and IPv6, two sessions (one filtered and truncated), a few arriving through a
// GWLB endpoint, a few mirrored at both ends.
func mirrorBenchBatch(tb testing.TB) []mirrorIn {
	var ins []mirrorIn
	for i := range 64 {
		f := i % 16
		cli, srv := "10.0.1.5", fmt.Sprintf("198.51.100.%d", f+1)
		if f%4 == 3 {
			cli, srv = "2001:db8::5", "2001:db8:1::7"
		}
		sport := uint16(40000 + f)
		var frame []byte
		if (i/16)%2 == 0 {
			frame = ethernet(macR, macA, tcpPacket(tb, cli, srv, sport, 443, 1300))
		} else {
			frame = ethernet(macA, macR, tcpPacket(tb, srv, cli, 443, sport, 1300))
		}
		vni := uint32(101 + f%2)
		switch {
		case i%16 == 5:
			ins = append(ins, viaGWLB(tb, eniA, vni, frame))
		case i%16 == 9: // the other end's copy of the previous datagram
			ins = append(ins, fromENI(eniB, 102, ins[len(ins)-1].frame))
		default:
			ins = append(ins, fromENI(eniA, vni, frame))
		}
	}
	return ins
}

func newMirrorBenchRig(tb testing.TB) *mirrorRig {
	filter, err := mirror.NewFilter("tmf-bench", nil, []mirror.Rule{
		{Number: 100, Action: mirror.Reject, Protocol: 6, DstPorts: &mirror.PortRange{From: 22, To: 22},
			Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix("0.0.0.0/0")},
		{Number: 200, Action: mirror.Accept, Protocol: mirror.AllProtocols,
			Src: netip.MustParsePrefix("10.0.0.0/16"), Dst: netip.MustParsePrefix("0.0.0.0/0")},
	}, false)
	if err != nil {
		tb.Fatal(err)
	}
	web := session("web", 101)
	web.Filter, web.PacketLength = filter, 128
	web.AmazonDNS = []netip.Addr{netip.MustParseAddr("169.254.169.253")}
	r := &mirrorRig{dedupeWindow: 100 * time.Millisecond, merge: true, queue: 1024}
	r.start(tb, web, session("db", 102), catchAll("rest"))
	return r
}

// TestMirrorHotPathAllocs is the allocation budget of the mirror path: decoding,
// filtering, dedupe, flow tracking and queueing to the pcap writer allocate
// nothing for a whole batch (drops at a full queue are fine; allocations are not).
func TestMirrorHotPathAllocs(t *testing.T) {
	r := newMirrorBenchRig(t)
	ins := mirrorBenchBatch(t)
	b := NewBatch(len(ins))
	now := mirrorT0
	run := func() {
		now += int64(time.Millisecond)
		loadMirror(b, ins, now)
		r.w.Process(b)
	}
	// Warm up: learn the ENIs' MACs, create the flows, let the pcap writer open
	// its file.
	run()
	for deadline := time.Now().Add(10 * time.Second); len(r.pcap.Files()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the pcap writer opened no file")
		}
		time.Sleep(time.Millisecond)
	}
	allocs := testing.AllocsPerRun(200, run)
	if allocs != 0 {
		t.Errorf("mirror path allocates %.1f times per batch, want 0", allocs)
	}
	tot := r.p.Totals()
	var accepted, duplicates, truncated, rejected uint64
	for _, st := range tot.Sessions {
		accepted += st.Accepted
		duplicates += st.Duplicates
		truncated += st.Truncated
		rejected += st.Rejected
	}
	if accepted == 0 || duplicates == 0 || truncated == 0 || rejected == 0 {
		t.Errorf("the batch is not exercising the path: totals %+v", tot.Sessions)
	}
	if n := tot.Packet(EncapGeneve, ActionAllow); n == 0 {
		t.Error("no VXLAN-in-GENEVE datagram accepted")
	}
	if tot.Packet(EncapGeneve, ActionAllow)+tot.Packet(EncapVXLAN, ActionAllow) != accepted {
		t.Errorf("accepted %d by session, %d by action", accepted,
			tot.Packet(EncapGeneve, ActionAllow)+tot.Packet(EncapVXLAN, ActionAllow))
	}
	if err := r.pcap.Close(); err != nil {
		t.Fatal(err)
	}
	if got := r.pcap.Written() + r.pcap.Dropped(); got != accepted {
		t.Errorf("pcap written %d + dropped %d = %d, want the %d accepted", r.pcap.Written(), r.pcap.Dropped(), got, accepted)
	}
	if r.pcap.Written() == 0 {
		t.Error("nothing reached the pcap file")
	}
	if r.table.Active() != 0 {
		t.Errorf("mirror traffic made %d inline flows", r.table.Active())
	}
}

func BenchmarkMirrorBatch(b *testing.B) {
	r := newMirrorBenchRig(b)
	ins := mirrorBenchBatch(b)
	batch := NewBatch(len(ins))
	var n int
	for _, in := range ins {
		n += len(in.dgram)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	now := mirrorT0
	for b.Loop() {
		now += int64(time.Microsecond)
		loadMirror(batch, ins, now)
		r.w.Process(batch)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ins)), "ns/pkt")
}
