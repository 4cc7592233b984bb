package detect

import (
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/dataplane"
	"weir/dataplane/detect/defrag"
	"weir/dataplane/detect/rules"
	"weir/dataplane/eve"
	"weir/dataplane/flow"
	"weir/dataplane/policy"
)

// harness runs packets, as replay does (no tunnel), through decode, flow tracking
// and a detection stage built from rule text, and keeps the alerts.
type harness struct {
	t      testing.TB
	table  *flow.Table
	stage  *Stage
	p      *dataplane.Pipeline
	w      *dataplane.Worker
	mu     sync.Mutex
	alerts []eve.Alert
	now    int64
	passed bool // the last packet was not dropped
}

func newHarness(t testing.TB, text string, opts Options) *harness {
	t.Helper()
	set, err := rules.Parse(strings.NewReader(text), "test.rules", rules.DefaultVars())
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if len(set.Skipped) != 0 {
		t.Fatalf("skipped: %v", set.Skipped)
	}
	eng, skips := Compile(set, opts, NewFlowbits())
	if len(skips) != 0 {
		t.Fatalf("compile skipped: %v", skips)
	}
	h := &harness{t: t, now: 1e18}
	h.table = flow.NewTable(flow.Config{MaxFlows: 1 << 12, SideSize: SideSize(eng), SideRecord: SideRecord,
		Logger: slog.New(slog.DiscardHandler)}, policy.NewLive(&policy.Policy{Default: policy.Allow}), nil)
	h.stage = NewStage(eng)
	h.stage.Inline = h.table
	h.stage.Defrag = defrag.New(defrag.Config{})
	h.stage.Tunnels = flow.NewTable(flow.Config{MaxFlows: 1 << 10, SideSize: SideSize(eng), SideRecord: SideRecord,
		Logger: slog.New(slog.DiscardHandler)}, nil, nil)
	h.stage.SimulateIPS = true
	h.stage.Alert = func(a *eve.Alert) {
		h.mu.Lock()
		h.alerts = append(h.alerts, *a)
		h.mu.Unlock()
	}
	h.p = dataplane.NewPipeline(dataplane.InnerDecode{}, &dataplane.Track{Table: h.table}, h.stage)
	h.w = h.p.NewWorker()
	return h
}

// send runs one IP packet through and returns the sids of the alerts it raised;
// h.passed says whether the packet passed (was not dropped).
func (h *harness) send(ip []byte) (sids []uint32) {
	h.t.Helper()
	h.mu.Lock()
	n := len(h.alerts)
	h.mu.Unlock()
	b := dataplane.NewBatch(1)
	b.Slots[0].Buf, b.Slots[0].Inner, b.Slots[0].Encap = ip, ip, dataplane.EncapNone
	h.now += 1e6
	b.N, b.Now = 1, h.now
	h.w.Process(b)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range h.alerts[n:] {
		sids = append(sids, a.SignatureID)
	}
	h.passed = b.Slots[0].Action() == dataplane.ActionAllow
	return sids
}

// conv is one TCP or UDP conversation between a client and a server.
type conv struct {
	h              *harness
	client, server net.IP
	cport, sport   uint16
	udp            bool
	cseq, sseq     uint32
	clientTTL      uint8
}

func (h *harness) tcp(client, server string, cport, sport uint16) *conv {
	return &conv{h: h, client: net.ParseIP(client), server: net.ParseIP(server), cport: cport, sport: sport,
		cseq: 1000, sseq: 5000, clientTTL: 64}
}

func (h *harness) udp(client, server string, cport, sport uint16) *conv {
	c := h.tcp(client, server, cport, sport)
	c.udp = true
	return c
}

// handshake opens the TCP connection.
func (c *conv) handshake() {
	c.h.t.Helper()
	c.seg(true, "S", nil)
	c.seg(false, "SA", nil)
	c.seg(true, "A", nil)
}

// seg sends a TCP segment with flags from "SAFRPU" and data, advancing the
// sender's sequence number; toServer says which way.
func (c *conv) seg(toServer bool, flags string, data []byte) []uint32 {
	c.h.t.Helper()
	tcp := &layers.TCP{Window: 1000, SYN: strings.Contains(flags, "S"), ACK: strings.Contains(flags, "A"),
		FIN: strings.Contains(flags, "F"), RST: strings.Contains(flags, "R"), PSH: strings.Contains(flags, "P"),
		URG: strings.Contains(flags, "U")}
	src, dst := c.client, c.server
	seq, ack := &c.cseq, &c.sseq
	if toServer {
		tcp.SrcPort, tcp.DstPort = layers.TCPPort(c.cport), layers.TCPPort(c.sport)
	} else {
		src, dst = dst, src
		seq, ack = ack, seq
		tcp.SrcPort, tcp.DstPort = layers.TCPPort(c.sport), layers.TCPPort(c.cport)
	}
	tcp.Seq, tcp.Ack = *seq, *ack
	*seq += uint32(len(data))
	if tcp.SYN || tcp.FIN {
		*seq++
	}
	return c.h.send(serialize(c.h.t, src, dst, c.clientTTL, tcp, data))
}

// at sends a TCP segment at an explicit sequence number (retransmissions, out of
// order), to the server.
func (c *conv) at(seq uint32, data []byte) []uint32 {
	tcp := &layers.TCP{Window: 1000, ACK: true, PSH: true, Seq: seq, Ack: c.sseq,
		SrcPort: layers.TCPPort(c.cport), DstPort: layers.TCPPort(c.sport)}
	return c.h.send(serialize(c.h.t, c.client, c.server, c.clientTTL, tcp, data))
}

// dgram sends a UDP datagram.
func (c *conv) dgram(toServer bool, data []byte) []uint32 {
	u := &layers.UDP{SrcPort: layers.UDPPort(c.cport), DstPort: layers.UDPPort(c.sport)}
	src, dst := c.client, c.server
	if !toServer {
		src, dst = dst, src
		u.SrcPort, u.DstPort = u.DstPort, u.SrcPort
	}
	return c.h.send(serialize(c.h.t, src, dst, c.clientTTL, u, data))
}

// ping sends an ICMP (or ICMPv6) echo request with the given type and code.
func (h *harness) icmp(client, server string, typ, code uint8, ttl uint8) []uint32 {
	src, dst := net.ParseIP(client), net.ParseIP(server)
	var l gopacket.SerializableLayer
	if src.To4() != nil {
		l = &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: 7, Seq: 1}
	} else {
		l = &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	}
	return h.send(serialize(h.t, src, dst, ttl, l, []byte("ping-data")))
}

func serialize(t testing.TB, src, dst net.IP, ttl uint8, l4 gopacket.SerializableLayer, data []byte) []byte {
	t.Helper()
	type csum interface {
		SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
	}
	var ip gopacket.SerializableLayer
	var proto layers.IPProtocol
	switch l4.(type) {
	case *layers.TCP:
		proto = layers.IPProtocolTCP
	case *layers.UDP:
		proto = layers.IPProtocolUDP
	case *layers.ICMPv4:
		proto = layers.IPProtocolICMPv4
	case *layers.ICMPv6:
		proto = layers.IPProtocolICMPv6
	}
	if src.To4() != nil {
		v4 := &layers.IPv4{Version: 4, TTL: ttl, Protocol: proto, SrcIP: src, DstIP: dst}
		if c, ok := l4.(csum); ok {
			c.SetNetworkLayerForChecksum(v4)
		}
		ip = v4
	} else {
		v6 := &layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: proto, SrcIP: src, DstIP: dst}
		if c, ok := l4.(csum); ok {
			c.SetNetworkLayerForChecksum(v6)
		}
		ip = v6
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, l4, gopacket.Payload(data)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
