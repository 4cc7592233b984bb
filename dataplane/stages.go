package dataplane

import (
	"net/netip"
	"sync/atomic"

	"weir/dataplane/flow"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

// GeneveDecode checks a GWLB datagram's source and decodes its GENEVE header.
type GeneveDecode struct {
	// AllowedSources are the GWLB addresses (in AWS, the GWLB's subnets) that may
	// send GENEVE; empty allows every source. SetAllowedSources replaces them while
	// packets flow.
	AllowedSources []netip.Prefix

	reloaded atomic.Pointer[[]netip.Prefix] // set by SetAllowedSources; then it wins
}

// SetAllowedSources replaces AllowedSources while workers run: each batch reads the
// list once, so it sees either the old list or the new one.
func (g *GeneveDecode) SetAllowedSources(p []netip.Prefix) { g.reloaded.Store(&p) }

func (g *GeneveDecode) Process(w *Worker, b *Batch) {
	allowedSources := g.AllowedSources
	if p := g.reloaded.Load(); p != nil {
		allowedSources = *p
	}
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.done || s.Encap != EncapGeneve {
			continue
		}
		if !allowed(allowedSources, s.Outer.Src) {
			s.Drop(ActionSourceDenied)
			continue
		}
		h, inner, aws, err := geneve.Decode(s.Buf)
		if err != nil {
			if r, ok := err.(geneve.Reason); ok {
				w.local.geneveErr[r]++
			}
			s.Drop(ActionMalformed)
			continue
		}
		s.Geneve, s.Inner, s.AWS = h, inner, aws
		if h.ProtocolType() == geneve.ProtoEthernet {
			s.Frame = inner
		}
	}
}

func allowed(sources []netip.Prefix, a netip.Addr) bool {
	if len(sources) == 0 {
		return true
	}
	for _, p := range sources {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// InnerDecode decodes the tunnelled packet: an IP packet, or the IP packet of an
// Ethernet frame (mirrored traffic, GENEVE with an Ethernet payload, plain captures).
type InnerDecode struct{}

func (InnerDecode) Process(w *Worker, b *Batch) {
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.done {
			continue
		}
		var err error
		switch {
		case s.Frame != nil:
			err = s.Packet.DecodeEthernet(s.Frame)
		default:
			err = s.Packet.Decode(s.Inner)
		}
		if err != nil {
			r, _ := err.(packet.Reason)
			if r == packet.ReasonNotIP {
				s.Drop(ActionNotIP)
				continue
			}
			w.local.innerErr[s.Encap][r]++
			s.Drop(ActionMalformed)
		}
	}
}

// Track finds each packet's flow, creating it at the first packet, and sets the
// verdict the flow carries. Inline (GWLB) flows have their policy decided at
// creation, and what policy allows is returned to the GWLB. Mirrored flows live in
// their own table, keyed by session and VNI, and are never returned.
type Track struct {
	Table  *flow.Table // GWLB and plain flows
	Mirror *flow.Table // mirrored flows; may be nil when there is no mirror path
	// Fragments gives the later fragments of an inline packet its first fragment's
	// verdict; nil judges them as flows of their own.
	Fragments *Fragments
	// MergeSessions keys mirrored flows by 5-tuple alone. With duplicate
	// suppression on, a flow mirrored at both ends reaches weir through two sessions
	// (its copies in one direction survive from one ENI, the other direction's from
	// the other); keyed by session it would split in two.
	MergeSessions bool
}

func (t *Track) Process(w *Worker, b *Batch) {
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.done {
			continue
		}
		now := b.TimeOf(s)
		if s.Session != nil {
			if t.Mirror == nil { // no mirror path configured; VXLANDecode never gets here then
				s.Drop(ActionNoSession)
				continue
			}
			m := mirrorMeta(s)
			scope := uint64(1 << 63)
			if !t.MergeSessions {
				scope = mirrorScope(s)
			}
			s.Scope = scope
			s.Flow = t.Mirror.TrackMeta(scope, &s.Packet, s.Packet.Length, &m, now)
			s.action = ActionAllow
			continue
		}
		s.Scope = s.AWS.EndpointID
		if s.Packet.Fragment && t.Fragments != nil {
			// No ports to find a flow by: the first fragment decided.
			switch allow, ok := t.Fragments.Get(s.AWS.EndpointID, &s.Packet, now); {
			case !ok:
				s.Drop(ActionFragment)
			case !allow:
				s.Drop(ActionDrop)
			default:
				s.action = ActionAllow
				if s.Encap == EncapGeneve {
					s.Verdict = VerdictReturn
				}
			}
			continue
		}
		m := flow.Meta{}
		length := len(s.Inner)
		if s.Encap == EncapGeneve {
			m.AWS = &s.AWS
			m.Tunnel = flow.Tunnel{Encap: flow.EncapGeneve, Src: s.Outer.Src, Dst: s.Outer.Dst,
				SrcPort: s.Outer.SrcPort, DstPort: s.Outer.DstPort, VNI: s.Geneve.VNI()}
		} else {
			length = s.Packet.Length
		}
		s.Flow = t.Table.TrackMeta(s.AWS.EndpointID, &s.Packet, length, &m, now)
		if s.Flow.Midstream && s.Flow.FlowID == 0 { // flows.midstream: drop
			s.Drop(ActionMidstream)
			continue
		}
		if s.Packet.FirstFragment && t.Fragments != nil {
			t.Fragments.Put(s.AWS.EndpointID, &s.Packet, s.Flow.Action == policy.Allow, now)
		}
		switch s.Flow.Action {
		case policy.Drop:
			s.Drop(ActionDrop)
			continue
		case policy.IPSDrop:
			s.Drop(ActionIPSDrop)
			continue
		}
		s.action = ActionAllow
		if s.Encap == EncapGeneve {
			s.Verdict = VerdictReturn
		}
	}
}
