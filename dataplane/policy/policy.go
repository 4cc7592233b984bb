// Package policy is the inline ACL: an ordered rule list, first match wins, with a
// default action. It is evaluated once, at a flow's first packet, and the flow keeps
// the verdict.
package policy

import (
	"net/netip"

	"weir/dataplane/packet"
)

// Action is what happens to a flow's packets.
type Action uint8

const (
	Allow Action = iota
	Drop
)

func (a Action) String() string {
	if a == Drop {
		return "drop"
	}
	return "allow"
}

// AnyProto in Rule.Proto matches every protocol.
const AnyProto = -1

// PortRange is an inclusive range; the zero value matches every port.
type PortRange struct{ Lo, Hi uint16 }

// Any reports whether the range matches every port.
func (r PortRange) Any() bool { return r.Lo == 0 && r.Hi == 0 }

// Contains reports whether p is in the range.
func (r PortRange) Contains(p uint16) bool { return r.Any() || (p >= r.Lo && p <= r.Hi) }

// Rule is one ACL entry. Zero-valued prefixes and ranges match everything.
type Rule struct {
	Action           Action
	Proto            int // IANA number, or AnyProto
	Src, Dst         netip.Prefix
	SrcPort, DstPort PortRange
	Line             int // config line, for logs
}

// Policy is the ACL.
type Policy struct {
	Default Action
	Rules   []Rule
}

// NoRule is the rule index Decide returns when the default action applied.
const NoRule = -1

// Decide returns the action for a flow whose first packet is p, and the index of the
// rule that matched (NoRule for the default). Ports are compared only for TCP and UDP.
func (pol *Policy) Decide(p *packet.Packet) (Action, int) {
	for i := range pol.Rules {
		r := &pol.Rules[i]
		if r.Proto != AnyProto && r.Proto != int(p.Proto) {
			continue
		}
		if r.Src.IsValid() && !r.Src.Contains(p.Src) {
			continue
		}
		if r.Dst.IsValid() && !r.Dst.Contains(p.Dst) {
			continue
		}
		if !r.SrcPort.Any() || !r.DstPort.Any() {
			if p.Proto != packet.ProtoTCP && p.Proto != packet.ProtoUDP {
				continue
			}
			if !r.SrcPort.Contains(p.SrcPort) || !r.DstPort.Contains(p.DstPort) {
				continue
			}
		}
		return r.Action, i
	}
	return pol.Default, NoRule
}
