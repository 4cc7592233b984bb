// Package mirror simulates AWS VPC Traffic Mirroring towards weir.
//
// Run sends mirrored packets as AWS does: each one is an IPv4 UDP datagram to
// Config.Target (weir's mirror listener, port 4789) from the mirrored ENI's primary
// IP, in both directions of the traffic, and from an outer source port that is a hash
// of the inner 5-tuple (the same in both directions of a flow; in 0xff80-0xffff, the
// range a real capture shows). The datagram is a VXLAN header (flags 0x08, the mirror
// session's VNI) followed by the full inner Ethernet frame. On egress (a packet
// leaving the ENI) the inner source MAC is the ENI's and the destination MAC the VPC
// router's (RouterMAC); on ingress it is the other way round.
//
// Traffic is either synthetic or replayed:
//
//   - Synthetic flows (the default) are TCP (SYN, SYN-ACK, data..., FIN), UDP and
//     ICMP echo conversations whose packets alternate direction, with valid IPv4 or
//     IPv6 headers and checksums. Each runs between an ENI and a peer in
//     198.18.0.0/15 or 2001:db8:1::/64 (flows are dealt to the ENIs round-robin,
//     and each ENI alternately connects out and is connected to), or, with
//     BothEnds, between two ENIs, and then every packet is mirrored at both ends
//     and arrives twice: as egress of the sender's ENI (its outer source, VNI and
//     MAC) and as ingress of the receiver's, with identical IP packets.
//   - With Config.PCAP every Ethernet frame of a pcap or pcapng file is sent once, as
//     captured, as mirrored from ENIs[0].
//
// Everything runs unprivileged on ordinary UDP sockets, as long as the ENI addresses
// are local: 127.0.0.x on loopback, or addresses assigned in a test namespace. The
// sender binds sockets to (ENI IP, hashed port) with SO_REUSEADDR and SO_REUSEPORT,
// on demand, and keeps at most 256 of them open. A port held by a socket without
// those options is skipped for the next free port of the range (Report.PortFallbacks).
// The target's own port is never bound. Note that a socket with SO_REUSEPORT bound to
// the ENI address can receive datagrams addressed to that address and port, so do not
// use as ENI address the address of a service that listens in 0xff80-0xffff with
// SO_REUSEPORT.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"weir/sim/synth"
	"weir/vxlan"
)

// ENI is a mirrored network interface and its mirror session's VNI.
type ENI struct {
	IP netip.Addr // primary private IPv4: the outer source, and the inner address of the ENI's side
	// MAC is the ENI's MAC; nil = 02:00 followed by the four bytes of IP. In PCAP
	// mode a nil MAC is learnt from the first frame to or from IP and reported.
	MAC net.HardwareAddr
	VNI uint32 // 24 bits; 0 = a random non-zero VNI (derived from Seed), as AWS picks one when none is set
}

// Config describes a run. Zero values mean the documented defaults.
type Config struct {
	Target netip.AddrPort // weir's mirror listener; IPv4; port 0 = 4789
	// ENIs are the mirrored interfaces, with distinct IPv4 addresses that must be
	// local. Synthetic flows are assigned to them round-robin; the inner IPv6 address
	// of an ENI is fd00:ec2::/96 followed by its IPv4 address.
	ENIs []ENI

	Flows          int // synthetic flows (default 50)
	PacketsPerFlow int // default 10; TCP: SYN, SYN-ACK, data..., FIN-ACK; directions alternate
	// Protos is a subset of "tcp", "udp", "icmp" (ICMP or ICMPv6 by family; "icmpv6"
	// is an alias); default all.
	Protos []string
	Ports  []uint16 // server ports for TCP and UDP (default 22, 23, 53, 80, 443, 8080)
	// IPv6Share is the fraction of flows with IPv6 inner packets (0 = none, 1 = all).
	IPv6Share float64
	Seed      int64 // seeds flows, addresses, ports, sizes and default VNIs
	// Rate is the datagrams sent per second (duplicates included); 0 = as fast as the
	// sockets allow.
	Rate int
	// BothEnds runs every flow between two ENIs (needs at least two) and mirrors each
	// packet at both ends: the egress copy at the sender's ENI, then the ingress copy
	// at the receiver's.
	BothEnds bool
	// PCAP, if set, is a pcap or pcapng file with Ethernet frames, sent instead of the
	// synthetic flows, each once and unmodified (MACs as captured), from ENIs[0]: as
	// ingress if the frame's IP destination is ENIs[0].IP (or its inner IPv6 address),
	// else as egress. Frames shorter than an Ethernet header or from a non-Ethernet
	// interface are skipped. Captured timestamps are ignored; Rate paces the replay.
	PCAP string

	// Progress, if non-nil, is called about once a second from another goroutine while
	// sending, with a report without Flows.
	Progress func(Report)
}

// Report is the outcome of a run (or a progress snapshot).
type Report struct {
	Sent       uint64 `json:"sent"`        // VXLAN datagrams written, duplicates included
	Frames     uint64 `json:"frames"`      // inner frames mirrored (each sent once, or twice with BothEnds)
	Duplicates uint64 `json:"duplicates"`  // second copies written (BothEnds)
	SendErrors uint64 `json:"send_errors"` // datagrams not written: failed writes or binds
	SentBytes  uint64 `json:"sent_bytes"`  // VXLAN datagram bytes (UDP payloads)
	Egress     uint64 `json:"egress"`      // datagrams sent as egress of their ENI
	Ingress    uint64 `json:"ingress"`     // datagrams sent as ingress of their ENI
	// PortFallbacks counts source sockets bound to another port than the flow's
	// hashed one, because that was in use.
	PortFallbacks uint64 `json:"port_fallbacks"`
	// SocketsOpened counts source sockets bound (the cache closes the least recently
	// used beyond 256).
	SocketsOpened uint64 `json:"sockets_opened"`
	Skipped       uint64 `json:"skipped"` // PCAP frames not sent: runts and non-Ethernet interfaces
	// ENIs has one entry per Config.ENIs entry, in order, with the MAC and VNI used.
	ENIs []ENIReport `json:"enis"`
	// Flows has the synthetic flows (final report only).
	Flows    []FlowReport  `json:"flows,omitempty"`
	Elapsed  time.Duration `json:"-"`         // from the start of sending to the last datagram
	ElapsedS float64       `json:"elapsed_s"` // Elapsed in seconds
	PPS      float64       `json:"pps"`       // Sent / Elapsed
}

// ENIReport is one ENI's share of a run.
type ENIReport struct {
	IP      netip.Addr `json:"ip"`
	MAC     string     `json:"mac"` // "" in PCAP mode when not given and not learnt
	VNI     uint32     `json:"vni"`
	Egress  uint64     `json:"egress"`  // datagrams sent as egress of this ENI
	Ingress uint64     `json:"ingress"` // datagrams sent as ingress of this ENI
}

// FlowReport is one synthetic flow. Src is the client (initiator) and Dst the server;
// for ICMP, SrcPort is the echo identifier and DstPort 0. ClientENI and ServerENI are
// the IP of the ENI on that side, "" for a peer.
type FlowReport struct {
	Proto     string     `json:"proto"` // tcp, udp, icmp, icmpv6
	Src       netip.Addr `json:"src"`
	Dst       netip.Addr `json:"dst"`
	SrcPort   uint16     `json:"src_port"`
	DstPort   uint16     `json:"dst_port"`
	Packets   uint64     `json:"packets"` // inner packets (frames) of the flow, not counting duplicates
	ClientENI string     `json:"client_eni"`
	ServerENI string     `json:"server_eni"`
}

// progressEvery is the period of Config.Progress calls (a variable for tests).
var progressEvery = time.Second

// activeFlows is how many synthetic flows are open at once; packets go round-robin
// over them, so directions and flows interleave.
const activeFlows = 64

var defaultPorts = []uint16{22, 23, 53, 80, 443, 8080}

var (
	peerNet4 = netip.MustParsePrefix("198.18.0.0/15")
	peerNet6 = netip.MustParsePrefix("2001:db8:1::/64")
	eniNet6  = netip.MustParsePrefix("fd00:ec2::/96")
)

// eniIPv6 is the inner IPv6 address of an ENI: fd00:ec2::/96 and its IPv4 address.
func eniIPv6(ip4 netip.Addr) netip.Addr {
	b := eniNet6.Addr().As16()
	a := ip4.As4()
	copy(b[12:], a[:])
	return netip.AddrFrom16(b)
}

func (c *Config) setDefaults() error {
	if !c.Target.IsValid() {
		return errors.New("mirrorsim: no target")
	}
	c.Target = netip.AddrPortFrom(c.Target.Addr().Unmap(), c.Target.Port())
	if !c.Target.Addr().Is4() {
		return fmt.Errorf("mirrorsim: target %v is not IPv4 (Traffic Mirroring sends IPv4)", c.Target)
	}
	if c.Target.Port() == 0 {
		c.Target = netip.AddrPortFrom(c.Target.Addr(), vxlan.Port)
	}
	if len(c.ENIs) == 0 {
		return errors.New("mirrorsim: no ENIs")
	}
	seen := map[netip.Addr]bool{}
	for i := range c.ENIs {
		e := &c.ENIs[i]
		e.IP = e.IP.Unmap()
		if !e.IP.Is4() || e.IP.IsUnspecified() {
			return fmt.Errorf("mirrorsim: ENI %d: address %v is not a unicast IPv4 address", i, e.IP)
		}
		if seen[e.IP] {
			return fmt.Errorf("mirrorsim: duplicate ENI address %v", e.IP)
		}
		seen[e.IP] = true
		if e.MAC != nil && len(e.MAC) != 6 {
			return fmt.Errorf("mirrorsim: ENI %v: MAC %v is not 6 bytes", e.IP, e.MAC)
		}
		if string(e.MAC) == string(routerMAC[:]) {
			return fmt.Errorf("mirrorsim: ENI %v: MAC %v is the router's", e.IP, e.MAC)
		}
		if e.VNI > vxlan.MaxVNI {
			return fmt.Errorf("mirrorsim: ENI %v: VNI %d exceeds 24 bits", e.IP, e.VNI)
		}
	}
	if c.Flows < 0 || c.PacketsPerFlow < 0 || c.Rate < 0 {
		return errors.New("mirrorsim: negative count in config")
	}
	if c.Flows == 0 {
		c.Flows = 50
	}
	if c.PacketsPerFlow == 0 {
		c.PacketsPerFlow = 10
	}
	if c.IPv6Share < 0 || c.IPv6Share > 1 || math.IsNaN(c.IPv6Share) {
		return fmt.Errorf("mirrorsim: IPv6Share %v out of range [0, 1]", c.IPv6Share)
	}
	if len(c.Protos) == 0 {
		c.Protos = []string{"tcp", "udp", "icmp"}
	}
	for _, p := range c.Protos {
		switch p {
		case "tcp", "udp", "icmp", "icmpv6":
		default:
			return fmt.Errorf("mirrorsim: unknown protocol %q (want tcp, udp or icmp)", p)
		}
	}
	if len(c.Ports) == 0 {
		c.Ports = defaultPorts
	}
	if slices.Contains(c.Ports, 0) {
		return errors.New("mirrorsim: server port 0")
	}
	if c.BothEnds && c.PCAP != "" {
		return errors.New("mirrorsim: BothEnds and PCAP exclude each other")
	}
	if c.BothEnds && len(c.ENIs) < 2 {
		return errors.New("mirrorsim: BothEnds needs at least two ENIs")
	}
	return nil
}

// eni is a mirrored interface as the sender uses it.
type eni struct {
	ip       netip.Addr
	ip6      netip.Addr // inner IPv6 address
	mac      [6]byte
	macKnown bool
	vni      uint32
	key      string

	egress, ingress uint64 // guarded by runner.mu
}

// flow is one synthetic conversation. The sender goroutine owns the packet-building
// state (the Conversation); frames is guarded by runner.mu.
type flow struct {
	synth.Conversation // 5-tuple, packet count, TCP and IP state

	cliENI, srvENI *eni   // nil for a peer
	port           uint16 // hashed outer source port

	frames uint64
}

type runner struct {
	cfg     Config
	target  netip.AddrPort
	rng     *rand.Rand // sender only
	fill    []byte
	payload []byte // scratch for a packet's transport payload, sender only
	enis    []*eni
	socks   *sockCache
	active  map[synth.Tuple]bool

	// pacing, sender only
	interval time.Duration
	due      time.Time
	timer    *time.Timer

	mu      sync.Mutex
	rep     Report // counters; ENIs, Flows and timing filled by snapshot
	flows   []*flow
	start   time.Time
	last    time.Time
	lastErr error
}

// Run sends the mirrored traffic and returns when every flow (or every frame of the
// PCAP file) has been sent, or when ctx is done. It returns the report so far together
// with any error, including ctx.Err(). It is an error if no datagram could be sent.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.ENIs = slices.Clone(cfg.ENIs)
	cfg.Protos = slices.Clone(cfg.Protos)
	cfg.Ports = slices.Clone(cfg.Ports)
	if err := cfg.setDefaults(); err != nil {
		return Report{}, err
	}
	r := &runner{
		cfg:    cfg,
		target: cfg.Target,
		rng:    rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6d69_7272_6f72_7369)),
		active: map[synth.Tuple]bool{},
	}
	vniRng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x766e_69))
	for _, c := range cfg.ENIs {
		e := &eni{ip: c.IP, ip6: eniIPv6(c.IP), vni: c.VNI, key: c.IP.String()}
		switch {
		case c.MAC != nil:
			e.mac, e.macKnown = [6]byte(c.MAC), true
		case cfg.PCAP == "":
			a := c.IP.As4()
			e.mac, e.macKnown = [6]byte{0x02, 0, a[0], a[1], a[2], a[3]}, true
		}
		if e.vni == 0 {
			e.vni = 1 + vniRng.Uint32N(vxlan.MaxVNI)
		}
		r.enis = append(r.enis, e)
	}
	// Fail early, with a useful message, on an ENI address that is not local.
	for _, e := range r.enis {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(e.ip, 0)))
		if err != nil {
			return Report{}, fmt.Errorf("mirrorsim: ENI address %v is not usable as a source (it must be local: "+
				"127.0.0.x on loopback, or an address assigned to an interface): %w", e.ip, err)
		}
		c.Close()
	}
	var capture *captureReader
	if cfg.PCAP != "" {
		var err error
		if capture, err = openCapture(cfg.PCAP); err != nil {
			return Report{}, err
		}
		defer capture.Close()
	}
	r.fill = make([]byte, 2048)
	for i := range r.fill {
		r.fill[i] = byte(r.rng.Uint32())
	}
	r.payload = make([]byte, 2048) // payloadLen is at most 2*SeqLen+1199
	r.socks = newSockCache(maxSockets, cfg.Target.Port())
	defer r.socks.close()
	if cfg.Rate > 0 {
		r.interval = time.Second / time.Duration(cfg.Rate)
		r.timer = time.NewTimer(time.Hour)
		defer r.timer.Stop()
	}

	r.mu.Lock()
	r.start = time.Now()
	r.mu.Unlock()
	r.due = r.start

	var wg sync.WaitGroup
	bg, stop := context.WithCancel(context.Background())
	defer func() {
		stop()
		wg.Wait()
	}()
	if cfg.Progress != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(progressEvery)
			defer t.Stop()
			for {
				select {
				case <-bg.Done():
					return
				case <-t.C:
					cfg.Progress(r.snapshot(false))
				}
			}
		}()
	}

	var err error
	if capture != nil {
		err = r.replay(ctx, capture)
	} else {
		r.synthetic(ctx)
	}
	stop()
	wg.Wait()
	rep := r.snapshot(true)
	if err != nil {
		return rep, err
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if rep.Sent == 0 && rep.SendErrors > 0 {
		return rep, fmt.Errorf("mirrorsim: every send failed: %w", r.lastErr)
	}
	return rep, nil
}

// pace waits until the next datagram is due; false when ctx is done.
func (r *runner) pace(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	if r.interval == 0 {
		return true
	}
	// Datagram k is due at start + k*interval; sleep only when ahead by more than a
	// timer's resolution.
	if d := time.Until(r.due); d > 200*time.Microsecond {
		r.timer.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-r.timer.C:
		}
	}
	r.due = r.due.Add(r.interval)
	return true
}

// send writes one datagram from e's address and the socket for port, and counts it.
func (r *runner) send(e *eni, port uint16, b []byte, egress, dup bool) {
	conn, _, err := r.socks.get(e.ip, port)
	if err == nil {
		_, err = conn.WriteToUDPAddrPort(b, r.target)
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.SocketsOpened, r.rep.PortFallbacks = r.socks.opened, r.socks.fallbacks
	if err != nil {
		r.rep.SendErrors++
		r.lastErr = err
		return
	}
	r.last = now
	r.rep.Sent++
	r.rep.SentBytes += uint64(len(b))
	if dup {
		r.rep.Duplicates++
	}
	if egress {
		r.rep.Egress++
		e.egress++
	} else {
		r.rep.Ingress++
		e.ingress++
	}
}

// newFlow creates synthetic flow number idx with a 5-tuple not used by any open flow.
func (r *runner) newFlow(idx int) *flow {
	cfg := &r.cfg
	rng := r.rng
	n := len(r.enis)
	f := &flow{Conversation: synth.Conversation{Packets: cfg.PacketsPerFlow}}
	for try := 0; ; try++ {
		collides := false // the peer is an ENI address
		proto := cfg.Protos[rng.IntN(len(cfg.Protos))]
		f.V6 = rng.Float64() < cfg.IPv6Share
		if cfg.BothEnds {
			a := idx % n
			b := (a + 1 + (idx/n)%(n-1)) % n
			f.cliENI, f.srvENI = r.enis[a], r.enis[b]
			f.Client, f.Server = f.cliENI.addr(f.V6), f.srvENI.addr(f.V6)
		} else {
			e := r.enis[idx%n]
			var peer netip.Addr
			if f.V6 {
				peer = synth.RandomAddr(rng, peerNet6)
			} else {
				peer = synth.RandomAddr(rng, peerNet4)
			}
			collides = r.isENI(peer)
			f.cliENI, f.srvENI = nil, nil
			if (idx/n)%2 == 0 { // the ENI connects out
				f.cliENI, f.Client, f.Server = e, e.addr(f.V6), peer
			} else { // a peer connects in
				f.srvENI, f.Client, f.Server = e, peer, e.addr(f.V6)
			}
		}
		f.PickTransport(rng, proto, cfg.Ports)
		if !r.active[f.Tuple()] && !collides || try >= 100 {
			break
		}
	}
	r.active[f.Tuple()] = true
	if f.Proto == protoTCP || f.Proto == protoUDP {
		f.port = hashPort(tupleHash(f.Proto, f.Client, f.ClientPort, f.Server, f.ServerPort))
	} else {
		f.port = hashPort(tupleHash(f.Proto, f.Client, 0, f.Server, 0))
	}
	f.RandomizeState(rng)
	r.mu.Lock()
	r.flows = append(r.flows, f)
	r.mu.Unlock()
	return f
}

// isENI reports whether a is an inner address of one of the ENIs.
func (r *runner) isENI(a netip.Addr) bool {
	for _, e := range r.enis {
		if a == e.ip || a == e.ip6 {
			return true
		}
	}
	return false
}

// addr is the ENI's inner address of the given family.
func (e *eni) addr(v6 bool) netip.Addr {
	if v6 {
		return e.ip6
	}
	return e.ip
}

// payloadLen picks the transport payload length of the next packet of f.
func (r *runner) payloadLen(f *flow) int {
	switch f.Proto {
	case protoTCP:
		if f.FromClient() {
			return 2*SeqLen + r.rng.IntN(200)
		}
		return 2*SeqLen + r.rng.IntN(1200)
	case protoUDP:
		return 2*SeqLen + r.rng.IntN(500)
	default:
		return 56 // like ping
	}
}

// synthetic sends every packet of every flow, round-robin over the open flows.
func (r *runner) synthetic(ctx context.Context) {
	cfg := &r.cfg
	active := make([]*flow, 0, min(activeFlows, cfg.Flows))
	made := 0
	for made < cfg.Flows && len(active) < cap(active) {
		active = append(active, r.newFlow(made))
		made++
	}
	buf := make([]byte, prefixLen, 2048)
	var seq uint64
	for i := 0; len(active) > 0; {
		if !r.pace(ctx) {
			return
		}
		f := active[i]
		from, to := f.cliENI, f.srvENI
		if !f.FromClient() {
			from, to = to, from
		}
		etherType := etherTypeIPv4
		if f.V6 {
			etherType = etherTypeIPv6
		}
		buf = f.appendPacket(buf[:prefixLen], seq, r.payloadLen(f), r.fill, r.payload)
		seq++
		r.mu.Lock()
		r.rep.Frames++
		f.frames++
		r.mu.Unlock()

		// The egress copy at the sender's ENI, then the ingress copy at the
		// receiver's; with one ENI per flow only one of them exists. The first copy
		// was paced above.
		dup := false
		if from != nil {
			putPrefix(buf, from.vni, &from.mac, &routerMAC, etherType)
			r.send(from, f.port, buf, true, false)
			dup = true
		}
		if to != nil {
			if dup && !r.pace(ctx) {
				return
			}
			putPrefix(buf, to.vni, &routerMAC, &to.mac, etherType)
			r.send(to, f.port, buf, false, dup)
		}

		if !f.Done() {
			i++
		} else {
			delete(r.active, f.Tuple())
			if made < cfg.Flows {
				active[i] = r.newFlow(made)
				made++
				i++
			} else {
				active[i] = active[len(active)-1]
				active = active[:len(active)-1]
			}
		}
		if i >= len(active) {
			i = 0
		}
	}
}

// replay sends the frames of a capture from ENIs[0].
func (r *runner) replay(ctx context.Context, c *captureReader) error {
	e := r.enis[0]
	buf := make([]byte, 0, 2048)
	for {
		data, ok, err := c.next()
		if err != nil {
			return err
		}
		if data == nil {
			return nil
		}
		if !ok || len(data) < 14 {
			r.mu.Lock()
			r.rep.Skipped++
			r.mu.Unlock()
			continue
		}
		egress := true
		var h uint64
		if src, dst, proto, sp, dp, _, isIP := frameTuple(data); isIP {
			h = tupleHash(proto, src, sp, dst, dp)
			switch {
			case src == e.ip || src == e.ip6:
				r.learnMAC(e, data[6:12])
			case dst == e.ip || dst == e.ip6:
				egress = false
				r.learnMAC(e, data[0:6])
			}
		} else {
			_, _, _, _, _, et, _ := frameTuple(data)
			h = macHash(et, data[0:6], data[6:12])
		}
		if !r.pace(ctx) {
			return nil
		}
		buf = vxlan.AppendHeader(buf[:0], e.vni)
		buf = append(buf, data...)
		r.mu.Lock()
		r.rep.Frames++
		r.mu.Unlock()
		r.send(e, hashPort(h), buf, egress, false)
	}
}

// learnMAC sets e's MAC from the first frame that shows it, when none was given.
func (r *runner) learnMAC(e *eni, mac []byte) {
	if e.macKnown {
		return
	}
	r.mu.Lock()
	e.mac, e.macKnown = [6]byte(mac), true
	r.mu.Unlock()
}

// snapshot returns the report so far; flows adds Report.Flows.
func (r *runner) snapshot(flows bool) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.rep
	for _, e := range r.enis {
		er := ENIReport{IP: e.ip, VNI: e.vni, Egress: e.egress, Ingress: e.ingress}
		if e.macKnown {
			er.MAC = net.HardwareAddr(e.mac[:]).String()
		}
		rep.ENIs = append(rep.ENIs, er)
	}
	if flows {
		for _, f := range r.flows {
			fr := FlowReport{
				Proto: f.ProtoName(), Src: f.Client, Dst: f.Server, SrcPort: f.ClientPort, DstPort: f.ServerPort,
				Packets: f.frames,
			}
			if f.cliENI != nil {
				fr.ClientENI = f.cliENI.key
			}
			if f.srvENI != nil {
				fr.ServerENI = f.srvENI.key
			}
			rep.Flows = append(rep.Flows, fr)
		}
	}
	if !r.last.IsZero() {
		rep.Elapsed = r.last.Sub(r.start)
		rep.ElapsedS = rep.Elapsed.Seconds()
		if rep.ElapsedS > 0 {
			rep.PPS = float64(rep.Sent) / rep.ElapsedS
		}
	}
	return rep
}
