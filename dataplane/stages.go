package dataplane

import (
	"net/netip"

	"weir/dataplane/flow"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

// GeneveDecode checks a GWLB datagram's source and decodes its GENEVE header.
type GeneveDecode struct {
	// AllowedSources are the GWLB addresses (in AWS, the GWLB's subnets) that may
	// send GENEVE; empty allows every source.
	AllowedSources []netip.Prefix
}

func (g *GeneveDecode) Process(w *Worker, b *Batch) {
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.done || s.Encap != EncapGeneve {
			continue
		}
		if !g.allowed(s.Outer.Src) {
			s.drop(ActionSourceDenied)
			continue
		}
		h, inner, aws, err := geneve.Decode(s.Buf)
		if err != nil {
			if r, ok := err.(geneve.Reason); ok {
				w.local.geneveErr[r]++
			}
			s.drop(ActionMalformed)
			continue
		}
		s.Geneve, s.Inner, s.AWS = h, inner, aws
	}
}

func (g *GeneveDecode) allowed(a netip.Addr) bool {
	if len(g.AllowedSources) == 0 {
		return true
	}
	for _, p := range g.AllowedSources {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// InnerDecode decodes the tunnelled packet.
type InnerDecode struct{}

func (InnerDecode) Process(w *Worker, b *Batch) {
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.done {
			continue
		}
		var err error
		if s.Geneve != nil && s.Geneve.ProtocolType() == geneve.ProtoEthernet {
			err = s.Packet.DecodeEthernet(s.Inner)
		} else {
			err = s.Packet.Decode(s.Inner)
		}
		if err != nil {
			if r, ok := err.(packet.Reason); ok {
				w.local.innerErr[r]++
			}
			s.drop(ActionMalformed)
		}
	}
}

// Track finds each packet's flow in the table, creating it (and deciding its policy)
// at the first packet, and sets the verdict the flow carries: inline traffic that
// policy allows is returned to the GWLB.
type Track struct {
	Table *flow.Table
}

func (t *Track) Process(w *Worker, b *Batch) {
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.done {
			continue
		}
		s.Flow = t.Table.Track(s.AWS.EndpointID, &s.Packet, len(s.Inner), &s.AWS, b.Now)
		if s.Flow.Action == policy.Drop {
			s.drop(ActionDrop)
			continue
		}
		s.action = ActionAllow
		if s.Encap == EncapGeneve {
			s.Verdict = VerdictReturn
		}
	}
}
