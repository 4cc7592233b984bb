package detect

import (
	"bytes"
	"encoding/binary"
	"slices"
	"sync/atomic"
	"time"

	"weir/dataplane"
	"weir/dataplane/detect/applayer"
	"weir/dataplane/detect/defrag"
	"weir/dataplane/detect/intel"
	"weir/dataplane/detect/mpm"
	"weir/dataplane/detect/rules"
	"weir/dataplane/detect/stream"
	"weir/dataplane/eve"
	"weir/dataplane/flow"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
)

// The side record a flow carries for detection (flow.Config.SideSize).
const (
	sideFlags    = 0 // sideInit, ...
	sideAlerts   = 4 // uint32, little endian: alerts raised on the flow
	sideBits     = 8 // MaxFlowbits bits
	sideHeadSize = sideBits + MaxFlowbits/8
)

// Bits of the side record's flags byte.
const (
	sideInit        = 1 << iota // the flow's first packet was inspected
	sidePass                    // a pass rule matched: no more inspection
	sideNoStream                // picked up midstream under flows.midstream: drop: never established
	sideEstablished             // TCP handshake seen (or midstream allowed); other protocols: both ways seen
	sideSyn                     // TCP: SYN seen to the server
	sideSynAck                  // TCP: SYN-ACK seen to the client
	sideSeenToServer
	sideSeenToClient
)

// MaxAlertsPerPacket bounds the alerts one packet raises, as Suricata's
// packet_alert_max.
const MaxAlertsPerPacket = 15

// Stage runs the engine over each packet the flow tracker let through: inline
// (GWLB) packets, mirrored ones and replayed ones. It must follow Track.
type Stage struct {
	// Inline and Mirror are the flow tables Track uses (Mirror may be nil); they
	// must have been made with SideSize. Tunnels holds the flows of packets inside
	// tunnels in the traffic (IP-in-IP, GRE), keyed under their tunnel's flow; nil
	// leaves tunnels unopened.
	Inline, Mirror, Tunnels *flow.Table
	// Defrag reassembles fragmented datagrams for inspection; nil inspects each
	// fragment as a packet.
	Defrag *defrag.Reassembler
	// Alert receives each alert; it must not block (the EVE writer drops when
	// full, on the packet path).
	Alert func(*eve.Alert)
	// SimulateIPS treats unencapsulated (replayed) packets as inline, as
	// Suricata's --simulate-ips: drop rules block them in ips mode.
	SimulateIPS bool
	// MidstreamDrop is flows.midstream: drop, Suricata's stream.midstream: false:
	// a TCP flow picked up midstream never becomes established.
	MidstreamDrop bool

	eng        atomic.Pointer[Engine]
	thresholds *thresholds
	an         *anomalies
	dirSize    int // stream.Size of the tail the side records have room for
}

// NewStage makes a stage that runs e (which may be nil: no rules yet).
func NewStage(e *Engine) *Stage {
	s := &Stage{thresholds: newThresholds(), an: newAnomalies(), dirSize: stream.Size(tailOf(e))}
	if e != nil {
		s.eng.Store(e)
	}
	return s
}

// SideSize is the side record the flow tables must carry for a stage started
// with e (nil: no rules yet): the flags, alert count and flowbits, and each
// direction's stream state with room for e's longest stream content.
func SideSize(e *Engine) int { return sideHeadSize + 2*stream.Size(tailOf(e)) }

// minStreamTail is the stream bytes kept at least, whatever the rules at start:
// a reload can bring in contents up to 64 bytes that match across segments.
const minStreamTail = 63

func tailOf(e *Engine) int {
	if e == nil {
		return minStreamTail
	}
	return max(e.streamTail, minStreamTail)
}

// SideRecord adds a flow's alert count to its record (flow.Config.SideRecord).
func SideRecord(side []byte, r *flow.Record) {
	r.Alerts = binary.LittleEndian.Uint32(side[sideAlerts:])
}

// StreamTail is how many bytes before a segment the flows' side records keep
// (fixed when the stage was made).
func (st *Stage) StreamTail() int { return st.dirSize - stream.Size(0) }

// SetEngine swaps in a new engine: packets after the swap see only it, flows keep
// their side records (flowbits keep their names' bits across engines that share a
// Flowbits).
func (st *Stage) SetEngine(e *Engine) { st.eng.Store(e) }

// Engine is the engine in force.
func (st *Stage) Engine() *Engine { return st.eng.Load() }

// workerState is one worker's scratch and counts.
type workerState struct {
	k      pkt
	cands  []int32
	hits   []hit
	pass   bool
	drop   bool
	est    bool // this packet completed a TCP handshake
	dnsBuf [256]byte
	tlsBuf []byte                               // a ClientHello spread over several records, joined
	inner  [packet.MaxTunnelDepth]packet.Packet // packets inside tunnels
	// A datagram rebuilt from fragments, its flow, and room to rebuild it.
	whole     packet.Packet
	wholeFlow flow.Result
	defragBuf []byte
	scratch   []byte // a stream segment with the tail before it
	mpmHits   mpm.Hits
	alert     eve.Alert
	counts    tally
	publish   published
	batches   uint32
}

type hit struct {
	rule    int32
	blocked bool
}

// tally is a worker's counts, plain; published copies them to atomics once per
// batch.
type tally struct {
	inspected, alertsAllowed, alertsBlocked, blockedFlows uint64
	tunnelled, tunnelErrors                               uint64
	defrag                                                [numDefragStatus]uint64
	stream                                                [numStreamStatus]uint64
	buckets                                               [numBuckets]uint64
	timeSum, timeCount                                    uint64 // sampled per-packet times, ns
}

const numBuckets = 12 // len(TimeBuckets) + 1 (+Inf)

// numDefragStatus is the number of defrag.Status values.
const numDefragStatus = int(defrag.NumStatus)

// numStreamStatus is the number of stream.Status values.
const numStreamStatus = int(stream.Reset) + 1

type published struct {
	inspected, alertsAllowed, alertsBlocked, blockedFlows atomic.Uint64
	tunnelled, tunnelErrors                               atomic.Uint64
	defrag                                                [numDefragStatus]atomic.Uint64
	stream                                                [numStreamStatus]atomic.Uint64
	buckets                                               [numBuckets]atomic.Uint64
	timeSum, timeCount                                    atomic.Uint64
}

// NewWorkerState implements dataplane.WorkerStage.
func (st *Stage) NewWorkerState() any {
	return &workerState{cands: make([]int32, 0, 256), hits: make([]hit, 0, MaxAlertsPerPacket),
		scratch: make([]byte, stream.MaxTail+1<<16), defragBuf: make([]byte, 0, 1<<16+512),
		tlsBuf: make([]byte, 0, 1<<16)}
}

// Publish implements dataplane.Publisher.
func (ws *workerState) Publish() {
	c, p := &ws.counts, &ws.publish
	if *c == (tally{}) {
		return
	}
	p.inspected.Add(c.inspected)
	p.alertsAllowed.Add(c.alertsAllowed)
	p.alertsBlocked.Add(c.alertsBlocked)
	p.blockedFlows.Add(c.blockedFlows)
	p.tunnelled.Add(c.tunnelled)
	p.tunnelErrors.Add(c.tunnelErrors)
	for i, v := range c.buckets {
		if v != 0 {
			p.buckets[i].Add(v)
		}
	}
	for i, v := range c.defrag {
		if v != 0 {
			p.defrag[i].Add(v)
		}
	}
	for i, v := range c.stream {
		if v != 0 {
			p.stream[i].Add(v)
		}
	}
	p.timeSum.Add(c.timeSum)
	p.timeCount.Add(c.timeCount)
	*c = tally{}
}

// Process implements dataplane.Stage.
func (st *Stage) Process(w *dataplane.Worker, b *dataplane.Batch) {
	e := st.eng.Load()
	if e == nil || !e.active {
		return
	}
	ws := w.StageState().(*workerState)
	// The time detection takes is sampled, a batch in sampleEvery, so that the
	// clock is not read per packet.
	ws.batches++
	sample := ws.batches%sampleEvery == 0
	var t0 time.Time
	n0 := ws.counts.inspected
	if sample {
		t0 = time.Now()
	}
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.Settled() {
			continue
		}
		st.inspect(e, ws, b, s)
	}
	if n := ws.counts.inspected - n0; sample && n > 0 {
		ws.counts.observe(time.Since(t0) / time.Duration(n))
	}
}

const sampleEvery = 16

// TimeBuckets are the upper bounds of weir_detect_packet_seconds.
var TimeBuckets = []time.Duration{250 * time.Nanosecond, 500 * time.Nanosecond, time.Microsecond,
	2 * time.Microsecond, 4 * time.Microsecond, 8 * time.Microsecond, 16 * time.Microsecond,
	32 * time.Microsecond, 64 * time.Microsecond, 128 * time.Microsecond, time.Millisecond}

func (t *tally) observe(d time.Duration) {
	i, _ := slices.BinarySearch(TimeBuckets, d)
	t.buckets[i]++ // the last is +Inf
	t.timeSum += uint64(d)
	t.timeCount++
}

func (st *Stage) inspect(e *Engine, ws *workerState, b *dataplane.Batch, s *dataplane.Slot) {
	ws.counts.inspected++
	table := st.Inline
	if s.Session != nil {
		table = st.Mirror
	}
	now := b.TimeOf(s)
	// Mirrored traffic is never inline, also when a mirror session's target is a
	// GWLB endpoint (VXLAN inside GENEVE).
	ips := e.opts.Mode == ModeIPS && s.Session == nil &&
		(s.Encap == dataplane.EncapGeneve || s.Encap == dataplane.EncapNone && st.SimulateIPS)
	p, res := &s.Packet, &s.Flow
	if (p.Fragment || p.FirstFragment) && st.Defrag != nil {
		// Fragments are inspected once their datagram is whole, as Suricata does:
		// dsize and contents see the datagram. The packet that completes it
		// carries the verdict.
		// Keyed by scope too: networks behind two GWLB endpoints or two mirror
		// sessions may overlap.
		scope := s.Scope << 1
		if s.Session != nil {
			scope |= 1
		}
		whole, status := st.Defrag.AddScoped(ws.defragBuf[:0], scope, ipOf(s), now)
		ws.counts.defrag[status]++
		if status == defrag.Conflict {
			// Overlapping fragments that disagree: the receiver may keep the
			// bytes detection never sees. Alert, and inline drop this one, so
			// that what the receiver can rebuild is what was inspected.
			ws.hits, ws.drop = append(ws.hits[:0], hit{rule: e.overlapRule, blocked: true}), true
			st.verdict(e, ws, s, table, p, res, 0, now, ips)
			return
		}
		if status != defrag.Complete || ws.whole.Decode(whole) != nil {
			return
		}
		p, res = &ws.whole, &ws.wholeFlow
		*res = flow.Result{}
		if table != nil {
			*res, _ = table.Find(s.Scope, p)
		}
	}
	st.inspectPacket(e, ws, table, p, res, now)
	if st.verdict(e, ws, s, table, p, res, 0, now, ips) || st.Tunnels == nil {
		return
	}
	// Tunnels inside the traffic (IP-in-IP, GRE) are opened as Suricata opens
	// them: each inner packet is inspected as a packet of its own flow, kept in
	// the tunnel table under the outer flow, so that flow keywords, flowbits and
	// stream inspection work inside the tunnel. An inner flow a drop rule blocks
	// drops its later packets; the tunnel's other flows go on. A pass on the
	// outer flow stops inspection inside it, not the inner flows' verdicts.
	inspect := !ws.pass
	outer := p
	for depth := 1; depth <= packet.MaxTunnelDepth; depth++ {
		inner, kind, err := outer.Tunnelled()
		if kind == packet.TunnelNone {
			return
		}
		ip := &ws.inner[depth-1]
		if err != nil || ip.Decode(inner) != nil {
			ws.counts.tunnelErrors++
			return
		}
		ws.counts.tunnelled++
		res := st.Tunnels.TrackMeta(res.FlowID<<3|uint64(depth), ip, ip.Length, nil, now)
		switch {
		case res.FlowID == 0 && res.Midstream: // flows.midstream: drop, inline
			if ips {
				s.Drop(dataplane.ActionMidstream)
				return
			}
		case res.Action == policy.IPSDrop && ips:
			s.Drop(dataplane.ActionIPSDrop)
			return
		}
		if !inspect {
			outer = ip
			continue
		}
		st.inspectPacket(e, ws, st.Tunnels, ip, &res, now)
		if st.verdict(e, ws, s, st.Tunnels, ip, &res, uint8(depth), now, ips) {
			return
		}
		inspect = !ws.pass
		outer = ip
	}
}

// verdict writes the alerts of what inspectPacket found and, inline in ips mode,
// drops the packet and blocks its flow when a drop rule (alerting or not) matched.
// It reports whether the slot is settled or inspection of the packet is over.
func (st *Stage) verdict(e *Engine, ws *workerState, s *dataplane.Slot, table *flow.Table, p *packet.Packet,
	res *flow.Result, depth uint8, now int64, ips bool) bool {
	if len(ws.hits) != 0 {
		st.emit(e, ws, s, table, p, res, depth, now, ips)
	}
	if ips && ws.drop {
		s.Drop(dataplane.ActionIPSDrop)
		if table != nil && table.SetAction(res.Handle, policy.IPSDrop) {
			ws.counts.blockedFlows++
		}
		return true
	}
	return false
}

// inspectPacket runs the engine over p, of the flow res names in table (none
// for a packet without flow), leaving what alerts in ws.hits.
func (st *Stage) inspectPacket(e *Engine, ws *workerState, table *flow.Table, p *packet.Packet, res *flow.Result, now int64) {
	ws.hits, ws.pass, ws.drop, ws.est = ws.hits[:0], false, false, false
	ws.k = pkt{p: p, payload: view{buf: p.Payload}}
	st.appLayer(ws, p)
	h := res.Handle
	if table == nil || h == (flow.Handle{}) ||
		!table.WithSide(h, func(side []byte) { st.inspectFlow(e, ws, p, res, side, now) }) {
		// No flow (a later fragment): packet rules only, no flowbits.
		st.run(e, ws, nil, now)
	}
}

// inspectFlow runs the engine for a packet of a flow, with the flow's side record
// (under the flow's shard lock: packets of one flow are inspected one at a time,
// in the order the table saw them).
func (st *Stage) inspectFlow(e *Engine, ws *workerState, p *packet.Packet, res *flow.Result, side []byte, now int64) {
	f := side[sideFlags]
	if f&sidePass != 0 {
		ws.pass = true
		return
	}
	toServer := res.ToServer
	syn, ack := p.TCPFlags&packet.TCPSyn != 0, p.TCPFlags&packet.TCPAck != 0
	// The first packet detection sees of the flow: not always the one that created
	// it (a first fragment waits for its datagram; a flow taken over from a fleet
	// peer was created there).
	first := f&sideInit == 0
	if first {
		f |= sideInit
		switch {
		case res.Midstream:
			if st.MidstreamDrop {
				f |= sideNoStream
			} else {
				f |= sideEstablished
			}
		case !res.Created && p.Proto == packet.ProtoTCP && !(syn && !ack):
			// The table knew the flow before this packet (imported from the peer
			// that saw its handshake): it is established.
			f |= sideEstablished
		}
	}
	switch {
	case p.Quote.Valid:
		// An ICMP error counted against the flow it quotes says nothing of its state.
	case p.Proto == packet.ProtoTCP:
		switch {
		case toServer && syn && !ack:
			f |= sideSyn
		case !toServer && syn && ack && f&sideSyn != 0:
			f |= sideSynAck
		case toServer && !syn && ack && f&sideSynAck != 0 && f&(sideEstablished|sideNoStream) == 0:
			f |= sideEstablished
			ws.est = true
		}
	default:
		if toServer {
			f |= sideSeenToServer
		} else {
			f |= sideSeenToClient
		}
		if f&(sideSeenToServer|sideSeenToClient) == sideSeenToServer|sideSeenToClient && f&sideNoStream == 0 {
			f |= sideEstablished
		}
	}
	k := &ws.k
	k.hasFlow, k.toServer, k.established = true, toServer, f&sideEstablished != 0
	if p.Proto == packet.ProtoTCP && !p.Fragment && f&sideNoStream == 0 &&
		(f&sideEstablished != 0 || p.TCPFlags&packet.TCPSyn != 0) {
		st.segment(e, ws, side, toServer)
	}
	bits := side[sideBits:sideHeadSize]
	st.run(e, ws, bits, now)
	if ws.pass {
		f |= sidePass
	} else {
		st.anomalies(e, ws, p, first, now)
	}
	side[sideFlags] = f
	if n := len(ws.hits); n > 0 {
		a := binary.LittleEndian.Uint32(side[sideAlerts:])
		binary.LittleEndian.PutUint32(side[sideAlerts:], a+uint32(n))
	}
}

// run checks the rules the prefilters name against ws.k, applying flowbits to bits
// (nil: a packet without a flow), and leaves what alerts in ws.hits.
func (st *Stage) run(e *Engine, ws *workerState, bits []byte, now int64) {
	k := &ws.k
	g := &e.groups[classOf(k.p)]
	cands := append(ws.cands[:0], g.always...)
	if pf := g.pf[rules.BufferPayload]; pf != nil {
		if k.useStream && len(k.stream.buf) != 0 {
			cands = pf.scan(k.stream.buf, &ws.mpmHits, cands)
		}
		// Packet-only rules (no_stream, dsize) see the packet's payload: scan it
		// too when the stream view does not end with it (a retransmission, whole
		// or in part, whose old bytes may differ from the ones the stream kept).
		if !k.useStream || !bytes.HasSuffix(k.stream.buf, k.payload.buf) {
			cands = pf.scan(k.payload.buf, &ws.mpmHits, cands)
		}
	}
	if pf := g.pf[rules.BufferDNSQuery]; pf != nil && k.hasDNS {
		cands = pf.scan(k.dnsQuery, &ws.mpmHits, cands)
	}
	if pf := g.pf[rules.BufferTLSSNI]; pf != nil && k.hasSNI {
		cands = pf.scan(k.sni, &ws.mpmHits, cands)
	}
	slices.Sort(cands)
	cands = slices.Compact(cands)
	ws.cands = cands
	for _, i := range cands {
		c := &e.rules[i]
		r := c.r
		if !packetMatches(r, k) || !condsMatch(c.cond, bits) || !chainsMatch(c, k) {
			continue
		}
		// A detection_filter holds the rule back entirely: no flowbits either.
		if r.DetectionFilter.Set && !st.thresholds.allow(c.tkey, &r.DetectionFilter, true, k.p.Src, k.p.Dst, now) {
			continue
		}
		if bits != nil {
			for _, a := range c.acts {
				applyBit(bits, a)
			}
		}
		if r.Action == rules.ActionPass {
			ws.pass = true
			return
		}
		// A threshold suppresses the alert and with it the drop, as in Suricata.
		if r.Threshold.Set && !st.thresholds.allow(c.tkey, &r.Threshold, false, k.p.Src, k.p.Dst, now) {
			continue
		}
		isDrop := r.Action == rules.ActionDrop || r.Action == rules.ActionReject
		ws.drop = ws.drop || isDrop
		// noalert takes the alert away, not the drop; past the alert limit,
		// later matches still drop.
		if !r.NoAlert && len(ws.hits) < MaxAlertsPerPacket {
			ws.hits = append(ws.hits, hit{rule: i, blocked: isDrop})
		}
	}
}

// segment feeds a TCP segment to its direction's stream state and sets what
// payload contents inspect: the stream's new bytes (with the tail before them),
// nothing for a retransmission, or the packet alone when it is out of order or
// past the stream depth.
func (st *Stage) segment(e *Engine, ws *workerState, side []byte, toServer bool) {
	p, k := ws.k.p, &ws.k
	off := sideHeadSize
	if !toServer {
		off += st.dirSize
	}
	d := stream.Dir(side[off : off+st.dirSize])
	v := d.Segment(p.Seq, p.TCPFlags&packet.TCPSyn != 0, p.TCPFlags&packet.TCPFin != 0, p.TCPFlags&packet.TCPRst != 0,
		p.Payload, e.opts.StreamDepth, ws.scratch)
	ws.counts.stream[v.Status]++
	switch v.Status {
	case stream.InOrder, stream.Overlap:
		k.stream, k.useStream = view{buf: v.Buf, base: int(v.Offset), fresh: v.New}, true
	case stream.Retransmit:
		k.stream, k.useStream = view{}, true // nothing new: no payload content can alert again
	case stream.OutOfOrder, stream.Gap:
		// Inspected alone, but at its place in the stream: offset and depth still
		// count from the stream's start.
		k.stream, k.useStream = view{buf: v.Buf, base: int(v.Offset)}, true
	case stream.DepthReached:
		// Past the depth: a window anchored before it cannot match here.
		k.stream, k.useStream = view{buf: p.Payload, base: int(e.opts.StreamDepth)}, true
	}
}

// anomalies runs the detectors that need no rules, on a flow's first packet and
// on the packet that completes a TCP handshake.
func (st *Stage) anomalies(e *Engine, ws *workerState, p *packet.Packet, first bool, now int64) {
	add := func(rule int32) {
		if len(ws.hits) < MaxAlertsPerPacket {
			ws.hits = append(ws.hits, hit{rule: rule})
		}
	}
	if first {
		ports, hosts := st.an.newFlow(&e.opts.PortScan, p.Src, p.Dst, p.DstPort, now)
		if ports {
			add(e.portsRule)
		}
		if hosts {
			add(e.hostsRule)
		}
		if p.Proto == packet.ProtoTCP && p.TCPFlags&(packet.TCPSyn|packet.TCPAck) == packet.TCPSyn &&
			st.an.syn(&e.opts.SYNFlood, p.Dst, true, now) {
			add(e.synRule)
		}
	}
	if ws.est {
		st.an.syn(&e.opts.SYNFlood, p.Dst, false, now)
	}
	if e.intel == nil {
		return
	}
	intelHit := func(l *intel.List) {
		ws.drop = ws.drop || l.Block // whatever the room for alerts
		if len(ws.hits) < MaxAlertsPerPacket {
			ws.hits = append(ws.hits, hit{rule: e.intelRules[l], blocked: l.Block})
		}
	}
	if first {
		// Both ends: a source on an alert-only list must not hide a destination
		// on a blocking one.
		ls, oks := e.intel.MatchIP(p.Src)
		ld, okd := e.intel.MatchIP(p.Dst)
		if oks {
			intelHit(ls)
		}
		if okd && (!oks || ld != ls) {
			intelHit(ld)
		}
	}
	if k := &ws.k; k.hasDNS {
		if l, ok := e.intel.MatchDomain(k.dnsQuery); ok {
			intelHit(l)
		}
	} else if k.hasSNI {
		if l, ok := e.intel.MatchDomain(k.sni); ok {
			intelHit(l)
		}
	}
}

// condsMatch checks isset and isnotset: isset,a&b (all set), isset,a|b (any set),
// isnotset,a&b (none set), isnotset,a|b (any not set), as Suricata reads them.
func condsMatch(conds []bitCond, bits []byte) bool {
	for i := range conds {
		c := &conds[i]
		on, off := 0, 0
		for _, b := range c.bits {
			if bits != nil && bits[b/8]&(1<<(b%8)) != 0 {
				on++
			} else {
				off++
			}
		}
		var ok bool
		switch {
		case !c.not && !c.any:
			ok = off == 0
		case !c.not && c.any:
			ok = on > 0
		case c.not && !c.any:
			ok = on == 0
		default:
			ok = off > 0
		}
		if !ok {
			return false
		}
	}
	return true
}

func applyBit(bits []byte, a bitAct) {
	m := byte(1) << (a.bit % 8)
	switch a.op {
	case rules.FlowbitSet:
		bits[a.bit/8] |= m
	case rules.FlowbitUnset:
		bits[a.bit/8] &^= m
	case rules.FlowbitToggle:
		bits[a.bit/8] ^= m
	}
}

// chainsMatch checks a rule's contents and pcres, buffer by buffer. Payload
// contents inspect the stream view, but for rules Suricata runs on packets only
// (flow:no_stream, dsize); flow:only_stream rules need the stream.
func chainsMatch(c *crule, k *pkt) bool {
	r := c.r
	for _, b := range r.Bsize {
		switch {
		case b.Buffer == rules.BufferDNSQuery && k.hasDNS && intMatches(&b.Size, len(k.dnsQuery)):
		case b.Buffer == rules.BufferTLSSNI && k.hasSNI && intMatches(&b.Size, len(k.sni)):
		default:
			return false
		}
	}
	payload := &k.payload
	switch {
	case r.Flow.OnlyStream && !k.useStream:
		return false
	case k.useStream && !r.Flow.NoStream && !r.Dsize.Set:
		payload = &k.stream
	}
	for i := range c.chains {
		ch := &c.chains[i]
		var v *view
		var tmp view
		switch ch.buffer {
		case rules.BufferPayload:
			v = payload
		case rules.BufferDNSQuery:
			if !k.hasDNS {
				return false
			}
			tmp = view{buf: k.dnsQuery}
			v = &tmp
		case rules.BufferTLSSNI:
			if !k.hasSNI {
				return false
			}
			tmp = view{buf: k.sni}
			v = &tmp
		}
		if !matchChain(ch, v) {
			return false
		}
	}
	return true
}

// emit writes the packet's alerts.
// p is the packet the rules saw: the slot's, or at depth > 0 the packet inside
// that many tunnels in it, of flow res in table.
func (st *Stage) emit(e *Engine, ws *workerState, s *dataplane.Slot, table *flow.Table, p *packet.Packet,
	res *flow.Result, depth uint8, now int64, ips bool) {
	a := &ws.alert
	var fr flow.Record
	hasFlow := table != nil && table.RecordOf(res.Handle, &fr)
	var pktCopy []byte
	if e.opts.AlertPacket {
		// The alert is queued: it must not hold the backend's buffer.
		if s.Frame != nil {
			pktCopy = append([]byte(nil), s.Frame...)
		} else {
			pktCopy = append([]byte(nil), s.Inner...)
		}
	}
	for _, h := range ws.hits {
		c := &e.rules[h.rule]
		r := c.r
		*a = eve.Alert{Metadata: c.metadata, GID: r.GID, SignatureID: r.SID, Rev: r.Rev, Severity: uint8(min(max(r.Priority, 0), 255)),
			Signature: r.Msg, Category: r.Category,
			Time: time.Unix(0, now), PcapCnt: s.PcapCnt, Proto: p.Proto, Src: p.Src, Dst: p.Dst,
			SrcPort: p.SrcPort, DstPort: p.DstPort, AWS: s.AWS, Direction: uint8(s.Direction)}
		if hasFlow {
			a.FlowID, a.ToServer = fr.ID, res.ToServer
			a.Flow = eve.FlowState{PktsToServer: fr.PktsToServer, PktsToClient: fr.PktsToClient,
				BytesToServer: fr.BytesToServer, BytesToClient: fr.BytesToClient, Start: fr.Start}
		}
		switch {
		case ws.k.hasDNS:
			a.AppProto, a.DNSQuery, a.DNSType = eve.AppProtoDNS, string(ws.k.dnsQuery), ws.k.dnsType
		case ws.k.hasSNI:
			a.AppProto, a.TLSSNI = eve.AppProtoTLS, string(ws.k.sni)
		}
		if len(s.Frame) >= 12 {
			a.HasEther = true
			a.DstMAC, a.SrcMAC = [6]byte(s.Frame[0:6]), [6]byte(s.Frame[6:12])
		}
		if pktCopy != nil {
			a.Packet, a.LinkType = pktCopy, linkRaw
			if s.Frame != nil {
				a.LinkType = linkEthernet
			}
		}
		if h.blocked && ips {
			a.Action = eve.AlertBlocked
			ws.counts.alertsBlocked++
		} else {
			ws.counts.alertsAllowed++
		}
		fillTunnel(a, s)
		if depth > 0 {
			// The tunnel object describes the outermost tunnel inside the traffic.
			o := &s.Packet
			a.InnerTunnel = eve.IPTunnel{Src: o.Src, Dst: o.Dst, Proto: o.Proto, Depth: depth}
		}
		if st.Alert != nil {
			st.Alert(a)
		}
	}
}

// ipOf is the IP packet of a slot: Inner, or the payload of its Ethernet frame.
func ipOf(s *dataplane.Slot) []byte {
	if s.Frame != nil {
		_, ip, _ := packet.EthernetPayload(s.Frame)
		return ip
	}
	return s.Inner
}

// Link types of alert packets (pcap LINKTYPE_*).
const (
	linkEthernet = 1
	linkRaw      = 101
)

// fillTunnel sets the alert's outer addressing as Track sets a flow's.
func fillTunnel(a *eve.Alert, s *dataplane.Slot) {
	switch {
	case s.Session != nil:
		a.Session = s.Session.Index
		a.Tunnel = flow.Tunnel{Encap: flow.EncapVXLAN, Src: s.Outer.Src, Dst: s.Outer.Dst,
			SrcPort: s.Outer.SrcPort, DstPort: s.Outer.DstPort, VNI: s.VNI}
	case s.Encap == dataplane.EncapGeneve:
		a.Tunnel = flow.Tunnel{Encap: flow.EncapGeneve, Src: s.Outer.Src, Dst: s.Outer.Dst,
			SrcPort: s.Outer.SrcPort, DstPort: s.Outer.DstPort, VNI: s.Geneve.VNI()}
	}
}

// appLayer finds the dns.query and tls.sni buffers of the packet: the first
// question of a DNS query (UDP or TCP, port 53), the server name of a TLS
// ClientHello that a segment to a TLS port starts with. Of a ClientHello spread
// over several segments, the name is read when it is in the first.
func (st *Stage) appLayer(ws *workerState, p *packet.Packet) {
	k := &ws.k
	if len(p.Payload) == 0 || p.Fragment {
		return
	}
	switch {
	case p.Proto == packet.ProtoUDP && (p.DstPort == 53 || p.SrcPort == 53):
		if name, info, err := applayer.DNSQuery(p.Payload, ws.dnsBuf[:]); err == nil && !info.Response {
			k.dnsQuery, k.dnsType, k.hasDNS = name, info.QType, true
		}
	case p.Proto == packet.ProtoTCP && (p.DstPort == 53 || p.SrcPort == 53):
		if name, info, err := applayer.DNSQueryTCP(p.Payload, ws.dnsBuf[:]); err == nil && !info.Response {
			k.dnsQuery, k.dnsType, k.hasDNS = name, info.QType, true
		}
	case p.Proto == packet.ProtoTCP && isTLSPort(p.DstPort) && p.Payload[0] == 0x16:
		// A ClientHello cut short (the rest in the next segment) may already hold
		// the name: the reassembling reader returns it then.
		if sni, err := applayer.TLSSNIReassembled(p.Payload, ws.tlsBuf); err == nil && sni != nil {
			k.sni, k.hasSNI = sni, true
		}
	}
}

// Totals is the stage's counts, summed over workers.
type Totals struct {
	Inspected, AlertsAllowed, AlertsBlocked, BlockedFlows uint64
	// Tunnelled counts packets opened inside tunnels in the traffic (IP-in-IP,
	// GRE); TunnelErrors tunnels that could not be opened.
	Tunnelled, TunnelErrors uint64
	// Sampled time per inspected packet: counts by TimeBuckets (and +Inf last),
	// their sum and count.
	Buckets [numBuckets]uint64
	// Defrag counts fragments by what reassembly made of them.
	Defrag [numDefragStatus]uint64
	// Stream counts TCP segments by what they were to their stream.
	Stream    [numStreamStatus]uint64
	TimeSum   time.Duration
	TimeCount uint64
}

// Totals sums what the workers published.
func (st *Stage) Totals(p *dataplane.Pipeline) Totals {
	var t Totals
	for _, s := range p.StageStates(st) {
		ws := s.(*workerState)
		t.Inspected += ws.publish.inspected.Load()
		t.AlertsAllowed += ws.publish.alertsAllowed.Load()
		t.AlertsBlocked += ws.publish.alertsBlocked.Load()
		t.BlockedFlows += ws.publish.blockedFlows.Load()
		t.Tunnelled += ws.publish.tunnelled.Load()
		t.TunnelErrors += ws.publish.tunnelErrors.Load()
		for i := range t.Buckets {
			t.Buckets[i] += ws.publish.buckets[i].Load()
		}
		for i := range t.Defrag {
			t.Defrag[i] += ws.publish.defrag[i].Load()
		}
		for i := range t.Stream {
			t.Stream[i] += ws.publish.stream[i].Load()
		}
		t.TimeSum += time.Duration(ws.publish.timeSum.Load())
		t.TimeCount += ws.publish.timeCount.Load()
	}
	return t
}
