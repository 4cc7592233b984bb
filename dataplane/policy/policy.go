// Package policy is the inline ACL: an ordered rule list, first match wins, with a
// default action. It is evaluated once, at a flow's first packet, and the flow keeps
// the verdict.
package policy

import (
	"net/netip"
	"strconv"

	"weir/dataplane/packet"
)

// Action is what happens to a flow's packets.
type Action uint8

const (
	Allow Action = iota
	Drop
	// IPSDrop is a flow blocked by detection in ips mode: a drop rule matched one
	// of its packets, and every later packet of the flow is dropped.
	IPSDrop
	MaxAction = IPSDrop
)

func (a Action) String() string {
	switch a {
	case Drop:
		return "drop"
	case IPSDrop:
		return "ips_drop"
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

// Ports is a list of port ranges, set up when the policy is loaded; a port
// matches when it is in any of them.
type Ports []PortRange

// Contains reports whether p is in one of the ranges.
func (ps Ports) Contains(p uint16) bool {
	for _, r := range ps {
		if p >= r.Lo && p <= r.Hi {
			return true
		}
	}
	return false
}

// Rule is one ACL entry. Zero-valued prefixes and ranges match everything.
//
// A port is matched by SrcPort (DstPort), a single range, unless SrcPorts
// (DstPorts) lists ranges: then a port in any of them matches, and SrcPort
// (DstPort) is not looked at. The configuration sets one or the other.
type Rule struct {
	Action             Action
	Proto              int // IANA number, or AnyProto
	Src, Dst           netip.Prefix
	SrcPort, DstPort   PortRange
	SrcPorts, DstPorts Ports
	Name               string // optional: names the rule in logs and EVE (weir.rule)
	Line               int    // config line, for logs
}

// HasPorts reports whether the rule looks at ports (so only matches TCP and UDP).
func (r *Rule) HasPorts() bool {
	return !r.SrcPort.Any() || !r.DstPort.Any() || len(r.SrcPorts) != 0 || len(r.DstPorts) != 0
}

// Label names the rule at index i: its name, or "rules[i]" when it has none.
func (r *Rule) Label(i int) string {
	if r.Name != "" {
		return r.Name
	}
	return "rules[" + strconv.Itoa(i) + "]"
}

func portMatch(one PortRange, list Ports, p uint16) bool {
	if len(list) != 0 {
		return list.Contains(p)
	}
	return one.Contains(p)
}

// Policy is the ACL.
type Policy struct {
	Default Action
	Rules   []Rule
	// RuleBase is the number Decide gives Rules[0] (the others follow): a policy
	// loaded again numbers its rules past the ones before, so a number names one
	// rule for the life of the process, and a flow decided before a reload keeps its
	// rule's name. 0 for the first policy.
	RuleBase int
}

// NoRule is the rule index Decide returns when the default action applied.
const NoRule = -1

// Decide returns the action for a flow whose first packet is p, and the number of
// the rule that matched, RuleBase plus its index (NoRule for the default). Ports are compared only for TCP and UDP.
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
		if r.HasPorts() {
			if p.Proto != packet.ProtoTCP && p.Proto != packet.ProtoUDP {
				continue
			}
			if !portMatch(r.SrcPort, r.SrcPorts, p.SrcPort) || !portMatch(r.DstPort, r.DstPorts, p.DstPort) {
				continue
			}
		}
		return r.Action, pol.RuleBase + i
	}
	return pol.Default, NoRule
}
