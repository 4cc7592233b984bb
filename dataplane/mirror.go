package dataplane

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"weir/dataplane/flow"
	"weir/dataplane/mirror"
	"weir/dataplane/packet"
	"weir/dataplane/pcapout"
	"weir/geneve"
	"weir/vxlan"
)

// Session is a configured Traffic Mirroring session as the dataplane uses it.
type Session struct {
	Index        uint16 // 1-based; the flow key and counters use it
	Name         string
	VNI          uint32
	CatchAll     bool           // takes VNIs no other session lists
	PacketLength int            // bytes kept from the start of the inner frame; 0 = all
	Filter       *mirror.Filter // nil mirrors everything
	AmazonDNS    []netip.Addr   // Amazon DNS addresses, not mirrored unless the filter says so
	Directions   *mirror.Directions
	InterfaceID  string // the mirrored ENI (eni-...), for flow logs; "" if unknown
}

// MaxSessions is the highest Session.Index: the per-worker session counters have
// room for this many, so that a reload can add sessions without the packet workers
// resizing anything.
const MaxSessions = 1024

// Sessions finds a mirror session by VNI. The set can be replaced while packets
// flow (a configuration reload): each Lookup sees either the old set or the new
// one, never a mix, and takes no lock.
type Sessions struct {
	set atomic.Pointer[sessionSet]
}

// sessionSet is one immutable generation of the sessions.
type sessionSet struct {
	byVNI    map[uint32]*Session
	catchAll *Session
	list     []*Session
}

// NewSessions indexes sessions; see Replace.
func NewSessions(list []*Session) *Sessions {
	s := &Sessions{}
	s.Replace(list)
	return s
}

// Replace makes list the sessions from the next Lookup on. Their Index must be
// unique and in 1..MaxSessions (it panics otherwise); a session that carries on
// from the old set should keep its Index, which keys its flows and counters. A
// packet that already has its session keeps it.
func (s *Sessions) Replace(list []*Session) {
	set := &sessionSet{byVNI: make(map[uint32]*Session, len(list)), list: list}
	seen := make(map[uint16]bool, len(list))
	for _, x := range list {
		if x.Index < 1 || x.Index > MaxSessions || seen[x.Index] {
			panic(fmt.Sprintf("dataplane: session %q: index %d repeated or outside 1..%d", x.Name, x.Index, MaxSessions))
		}
		seen[x.Index] = true
		if x.CatchAll {
			set.catchAll = x
		} else {
			set.byVNI[x.VNI] = x
		}
	}
	s.set.Store(set)
}

// Lookup returns the session for vni, or nil when none takes it.
func (s *Sessions) Lookup(vni uint32) *Session {
	set := s.set.Load()
	if x, ok := set.byVNI[vni]; ok {
		return x
	}
	return set.catchAll
}

// List is the sessions, in the order given to Replace.
func (s *Sessions) List() []*Session { return s.set.Load().list }

// VXLANDecode decodes Traffic Mirroring datagrams — VXLAN on the mirror listener, or
// VXLAN inside GENEVE when the mirror target is a GWLB endpoint — and finds each one's
// session. Mirrored packets are recorded, never returned.
type VXLANDecode struct {
	Sessions *Sessions
	// MirrorEndpoints are the GWLB endpoints (their ENI ids as GENEVE option 1
	// carries them) that are Traffic Mirroring targets. Only GENEVE from these is
	// taken as mirror traffic; from any other endpoint a packet to UDP 4789 is
	// someone's own VXLAN, inspected and returned like all inline traffic.
	MirrorEndpoints []uint64
	// AllowedSources are the addresses VXLAN may come from; empty allows every
	// source. They apply to the VXLAN datagram's own source: the sender on the
	// mirror listener, the mirrored ENI inside GENEVE (the GWLB that carried it is
	// GeneveDecode's to check). Datagrams from elsewhere are dropped as
	// ActionSourceDenied.
	AllowedSources []netip.Prefix
	// TrackVNIs is how many distinct VNIs each worker counts (Pipeline.VNIs);
	// 0 is DefaultTrackVNIs.
	TrackVNIs int
}

// NewWorkerState is a worker's table of the VNIs it has seen.
func (v *VXLANDecode) NewWorkerState() any { return newVNITable(v.TrackVNIs) }

func (v *VXLANDecode) mirrorEndpoint(id uint64) bool {
	for _, e := range v.MirrorEndpoints {
		if e == id {
			return true
		}
	}
	return false
}

func (v *VXLANDecode) Process(w *Worker, b *Batch) {
	vnis, _ := w.StageState().(*vniTable)
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.done {
			continue
		}
		var dgram []byte
		var outer geneve.Outer
		switch s.Encap {
		case EncapVXLAN:
			if !allowed(v.AllowedSources, s.Outer.Src) {
				s.Drop(ActionSourceDenied)
				continue
			}
			dgram = s.Buf
		case EncapGeneve:
			// A mirror session whose target is a GWLB endpoint: the GENEVE inner
			// packet is the mirror's own IPv4/UDP datagram to 4789.
			if len(v.MirrorEndpoints) == 0 || s.Geneve.ProtocolType() != geneve.ProtoIPv4 ||
				!v.mirrorEndpoint(s.AWS.EndpointID) {
				continue
			}
			if dgram, outer = vxlanInGeneve(s.Inner); dgram == nil {
				continue
			}
			if !allowed(v.AllowedSources, outer.Src) {
				s.Drop(ActionSourceDenied)
				continue
			}
		default:
			continue
		}
		h, frame, err := vxlan.Decode(dgram)
		if err != nil {
			if r, ok := err.(vxlan.Reason); ok {
				w.local.vxlanErr[r]++
			}
			s.Drop(ActionMalformed)
			continue
		}
		if h.ReservedNonZero() {
			w.local.vxlanReserved++
		}
		if s.Encap == EncapGeneve {
			// The mirror's own addressing, from the mirrored ENI, is what tells
			// direction and duplicates apart; the GWLB's is the same for every ENI.
			// Mirrored traffic is never returned, so the reply needs no GWLB outer.
			s.Outer = outer
		}
		s.VNI = h.VNI()
		s.Frame = frame
		s.Session = v.Sessions.Lookup(s.VNI)
		if vnis != nil {
			vnis.see(s.VNI, s.Outer.Src, b.TimeOf(s), s.Session)
		}
		if s.Session == nil {
			s.Drop(ActionNoSession)
			continue
		}
		st := &w.sess[s.Session.Index]
		st.received++
		st.receivedBytes += uint64(len(frame))
	}
}

// vxlanInGeneve returns the UDP payload of an IPv4/UDP packet to the VXLAN port and
// the packet's addressing, or nil. The outer parser is the one every backend uses.
func vxlanInGeneve(ip []byte) ([]byte, geneve.Outer) {
	o, payload, ok := packet.ParseUDP(ip)
	if !ok || !o.Src.Is4() || o.DstPort != vxlan.Port {
		return nil, geneve.Outer{}
	}
	return payload, geneve.Outer{Src: o.Src, Dst: o.Dst, SrcPort: o.SrcPort, DstPort: o.DstPort}
}

// MirrorFilter applies a session's rules: the direction of each packet relative to
// the mirrored ENI, duplicate suppression, the AWS filter, and truncation to the
// session's packet length.
type MirrorFilter struct {
	Dedupe *mirror.Dedupe // nil keeps duplicates
}

func (m *MirrorFilter) Process(w *Worker, b *Batch) {
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.done || s.Session == nil {
			continue
		}
		x := s.Session
		st := &w.sess[x.Index]
		var srcMAC, dstMAC [6]byte
		copy(dstMAC[:], s.Frame[0:6])
		copy(srcMAC[:], s.Frame[6:12])
		s.Direction = x.Directions.Of(s.Outer.Src, srcMAC, dstMAC, s.Packet.Src, s.Packet.Dst)
		if m.Dedupe != nil {
			if _, ip, ok := packet.EthernetPayload(s.Frame); ok && m.Dedupe.Seen(ip, s.Outer.Src, b.TimeOf(s)) {
				st.duplicates++
				s.Drop(ActionDuplicate)
				continue
			}
		}
		if x.Filter != nil && !x.Filter.Mirrored(&s.Packet, s.Direction, x.AmazonDNS) {
			st.rejected++
			s.Drop(ActionFiltered)
			continue
		}
		s.CapLen = len(s.Frame)
		if x.PacketLength > 0 && x.PacketLength < s.CapLen {
			s.CapLen = x.PacketLength
			st.truncated++
		}
		st.accepted++
	}
}

// Record writes accepted mirrored frames, cut to the session's packet length with
// their original length kept, to the pcap writer.
type Record struct {
	PCAP *pcapout.Writer
	Wait bool // wait for room in the writer's queue (replay) instead of dropping
}

func (r *Record) Process(w *Worker, b *Batch) {
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.done || s.Session == nil || s.CapLen == 0 {
			continue
		}
		if r.Wait {
			r.PCAP.WriteWait(b.TimeOf(s), s.Frame[:s.CapLen], len(s.Frame), int(s.Session.Index))
		} else {
			r.PCAP.Write(b.TimeOf(s), s.Frame[:s.CapLen], len(s.Frame), int(s.Session.Index))
		}
	}
}

// mirrorScope keeps mirror flows apart from GWLB flows and from each other: equal
// 5-tuples in different sessions or VNIs are different flows.
func mirrorScope(s *Slot) uint64 {
	return 1<<63 | uint64(s.Session.Index)<<32 | uint64(s.VNI)
}

// mirrorMeta is the flow metadata of a mirrored packet.
func mirrorMeta(s *Slot) flow.Meta {
	return flow.Meta{
		Tunnel: flow.Tunnel{
			Encap: flow.EncapVXLAN, Src: s.Outer.Src, Dst: s.Outer.Dst,
			SrcPort: s.Outer.SrcPort, DstPort: s.Outer.DstPort, VNI: s.VNI,
		},
		Direction: uint8(s.Direction),
		Session:   s.Session.Index,
	}
}
