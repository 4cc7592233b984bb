// Package detect inspects packets with Suricata rules: it compiles a parsed rule set
// (package rules) into an Engine, immutable and shared by every packet worker, and
// runs it as a pipeline stage (Stage) after flow tracking. A rule's fast pattern
// goes into a multi-pattern prefilter, so that the work per packet grows with the
// rules that can match, not with the rule count; only the rules the prefilter (or
// their lack of contents) names are checked in full. Per-flow state (flowbits,
// stream position, whether inspection passed) lives in the flow table's side
// record; alerts go to EVE, and in ips mode a drop rule blocks the flow inline.
package detect

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"weir/dataplane/detect/intel"
	"weir/dataplane/detect/rules"
	"weir/dataplane/detect/stream"
	"weir/dataplane/packet"
)

// Mode is detect.mode.
type Mode uint8

const (
	ModeIDS Mode = iota // alert only
	ModeIPS             // drop and reject rules block inline traffic
)

// Packet classes: each has its own prefilters and list of rules without contents.
const (
	classTCP = iota
	classUDP
	classICMP
	classOther
	numClasses
)

func classOf(p *packet.Packet) int {
	switch p.Proto {
	case packet.ProtoTCP:
		return classTCP
	case packet.ProtoUDP:
		return classUDP
	case packet.ProtoICMP, packet.ProtoICMPv6:
		return classICMP
	}
	return classOther
}

// classesOf is the packet classes a rule for proto can match.
func classesOf(p rules.Proto) []int {
	switch p {
	case rules.ProtoTCP, rules.ProtoTLS:
		return []int{classTCP}
	case rules.ProtoUDP:
		return []int{classUDP}
	case rules.ProtoDNS:
		return []int{classTCP, classUDP}
	case rules.ProtoICMP:
		return []int{classICMP}
	}
	return []int{classTCP, classUDP, classICMP, classOther}
}

const numBuffers = int(rules.BufferTLSSNI) + 1

// crule is a rule compiled for inspection.
type crule struct {
	r        *rules.Rule
	chains   []chain // one per buffer the rule inspects
	cond     []bitCond
	acts     []bitAct
	metadata []byte // r.Metadata as EVE's alert.metadata object; nil when none
	// tkey names the rule's threshold counters: gid and sid, so that a reload
	// that renumbers rules never hands one rule's counts to another.
	tkey uint64
	// rank orders rules as Suricata does: pass first, then drop and reject, then
	// alert; within each, rules that set flowbits before those that test them;
	// then by priority and sid.
	rank [4]int
}

// bitCond is an isset/isnotset test: all (or any) of bits set, or not.
type bitCond struct {
	bits []uint16
	any  bool
	not  bool
}

// bitAct is a set, unset or toggle.
type bitAct struct {
	op  rules.FlowbitOp
	bit uint16
}

// group is the rules of one packet class.
type group struct {
	always []int32 // rules that no prefilter names: checked for every packet
	pf     [numBuffers]*prefilter
}

// Options are what an engine runs besides its rules.
type Options struct {
	Mode     Mode
	PortScan PortScan
	SYNFlood SYNFlood
	// StreamDepth is how many bytes of each direction of a TCP stream are
	// inspected in stream order (0: none, packets only).
	StreamDepth uint32
	// AlertPacket puts the packet in each alert.
	AlertPacket bool
	// Intel is the threat-intel lists: flows to or from a listed address, DNS
	// queries and TLS server names of a listed domain alert (and block inline, in
	// ips mode, when the list says so).
	Intel *intel.Set
}

// Engine is a compiled rule set. It is immutable: a reload compiles a new one and
// the stage swaps it in.
type Engine struct {
	rules      []crule
	groups     [numClasses]group
	opts       Options
	loaded     int  // rules of the set compiled
	active     bool // something to run: rules or detectors
	streamTail int  // longest payload content - 1, capped: see Stage
	// Rules of what weir raises without rules (detectors, threat intel), by
	// e.rules index; they are in no group, so no packet makes them candidates.
	portsRule, hostsRule, synRule int32
	overlapRule                   int32 // fragments overlapping with different bytes
	intel                         *intel.Set
	intelRules                    map[*intel.List]int32
}

// Rules is the number of rules compiled.
func (e *Engine) Rules() int { return e.loaded }

// StreamTail is how many bytes before a TCP segment the engine's longest payload
// content needs kept to match across segments.
func (e *Engine) StreamTail() int { return e.streamTail }

// Mode is the engine's detect.mode.
func (e *Engine) Mode() Mode { return e.opts.Mode }

// MaxFlowbits is how many flowbit names a node can know (the side record holds a
// bit for each); rules naming more are skipped.
const MaxFlowbits = 512

// Flowbits names flowbits by bit, for every engine a stage runs: a name keeps its
// bit across reloads, so that flows keep their bits' meaning.
type Flowbits struct {
	mu    sync.Mutex
	names map[string]uint16
}

// NewFlowbits makes an empty registry.
func NewFlowbits() *Flowbits { return &Flowbits{names: map[string]uint16{}} }

func (f *Flowbits) bit(name string) (uint16, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.names[name]; ok {
		return b, true
	}
	if len(f.names) == MaxFlowbits {
		return 0, false
	}
	b := uint16(len(f.names))
	f.names[name] = b
	return b, true
}

// Compile builds an engine of the rules of set. Rules it cannot run are returned
// as skips, with the rule's place, as the parser's are.
func Compile(set *rules.Set, opts Options, bits *Flowbits) (*Engine, []rules.Skip) {
	e := &Engine{opts: opts}
	var skips []rules.Skip
	for _, r := range set.Rules {
		c, err := compileRule(r, bits)
		if err != nil {
			skips = append(skips, rules.Skip{File: r.File, Line: r.Line, SID: r.SID, Keyword: "flowbits", Reason: err.Error()})
			continue
		}
		e.rules = append(e.rules, c)
	}
	e.loaded = len(e.rules)
	e.active = e.loaded > 0 || opts.PortScan.Ports > 0 || opts.PortScan.Hosts > 0 || opts.SYNFlood.HalfOpen > 0 ||
		opts.Intel != nil && len(opts.Intel.Lists()) > 0
	slices.SortStableFunc(e.rules, func(a, b crule) int {
		for i := range a.rank {
			if c := cmp.Compare(a.rank[i], b.rank[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	var builders [numClasses][numBuffers]*prefilterBuilder
	for i := range e.rules {
		c := &e.rules[i]
		for _, m := range c.r.Matches {
			if m.Kind == rules.MatchContent && !m.Negated && m.Buffer == rules.BufferPayload {
				e.streamTail = max(e.streamTail, min(len(m.Pattern)-1, stream.MaxTail))
			}
		}
		fp, ok := fastPattern(c.r)
		for _, cl := range classesOf(c.r.Proto) {
			g := &e.groups[cl]
			if !ok {
				g.always = append(g.always, int32(i))
				continue
			}
			pb := &builders[cl][fp.Buffer]
			if *pb == nil {
				*pb = newPrefilterBuilder()
			}
			(*pb).add(fp.Pattern, fp.Nocase, int32(i))
		}
	}
	for cl := range builders {
		for b, pb := range builders[cl] {
			if pb != nil {
				e.groups[cl].pf[b] = pb.build()
			}
		}
	}
	builtin := func(sid uint32, msg, classtype, category string, priority int) int32 {
		e.rules = append(e.rules, crule{r: &rules.Rule{Action: rules.ActionAlert, GID: 1, SID: sid, Rev: 1,
			Msg: msg, Classtype: classtype, Category: category, Priority: priority}, tkey: 1<<32 | uint64(sid)})
		return int32(len(e.rules) - 1)
	}
	e.portsRule = builtin(SIDPortScanPorts, "WEIR SCAN port scan: one source, many destination ports",
		"attempted-recon", "Attempted Information Leak", 2)
	e.hostsRule = builtin(SIDPortScanHosts, "WEIR SCAN host sweep: one source, many destination hosts",
		"attempted-recon", "Attempted Information Leak", 2)
	e.synRule = builtin(SIDSYNFlood, "WEIR DOS SYN flood: many half-open connections to one destination",
		"attempted-dos", "Attempted Denial of Service", 2)
	e.overlapRule = builtin(SIDFragmentConflict, "WEIR DECODE fragments overlap with different data",
		"protocol-command-decode", "Generic Protocol Command Decode", 2)
	e.rules[e.overlapRule].r.Action = rules.ActionDrop
	if opts.Intel != nil && len(opts.Intel.Lists()) > 0 {
		e.intel, e.intelRules = opts.Intel, map[*intel.List]int32{}
		for i, l := range opts.Intel.Lists() {
			idx := builtin(SIDIntelBase+uint32(i), "WEIR INTEL "+l.Category+" ("+l.Name+" "+l.Kind.String()+" list)",
				"", l.Category, 1)
			if l.Block {
				e.rules[idx].r.Action = rules.ActionDrop
			}
			e.intelRules[l] = idx
		}
	}
	return e, skips
}

// fastPattern is the content a rule is prefiltered by: the one marked
// fast_pattern, else the longest positive content (of the payload, else of
// another buffer). A rule without one is checked for every packet of its class.
func fastPattern(r *rules.Rule) (rules.Match, bool) {
	var best rules.Match
	found := false
	for _, m := range r.Matches {
		if m.Kind != rules.MatchContent || m.Negated || len(m.Pattern) == 0 {
			continue
		}
		if m.FastPattern {
			return m, true
		}
		if !found || len(m.Pattern) > len(best.Pattern) {
			best, found = m, true
		}
	}
	return best, found
}

func compileRule(r *rules.Rule, bits *Flowbits) (crule, error) {
	c := crule{r: r}
	var byBuf [numBuffers][]rules.Match
	for _, m := range r.Matches {
		byBuf[m.Buffer] = append(byBuf[m.Buffer], m)
	}
	for b, ms := range byBuf {
		if len(ms) != 0 {
			c.chains = append(c.chains, compileChain(rules.Buffer(b), ms))
		}
	}
	sets, tests := 0, 0
	for _, fb := range r.Flowbits {
		switch fb.Op {
		case rules.FlowbitNoAlert:
			continue
		case rules.FlowbitIsSet, rules.FlowbitIsNotSet:
			bc := bitCond{any: fb.Any, not: fb.Op == rules.FlowbitIsNotSet}
			for _, n := range fb.Names {
				b, ok := bits.bit(n)
				if !ok {
					return c, fmt.Errorf("more than %d flowbit names", MaxFlowbits)
				}
				bc.bits = append(bc.bits, b)
			}
			c.cond = append(c.cond, bc)
			tests++
		default:
			for _, n := range fb.Names {
				b, ok := bits.bit(n)
				if !ok {
					return c, fmt.Errorf("more than %d flowbit names", MaxFlowbits)
				}
				c.acts = append(c.acts, bitAct{op: fb.Op, bit: b})
			}
			sets++
		}
	}
	action := 2
	switch r.Action {
	case rules.ActionPass:
		action = 0
	case rules.ActionDrop, rules.ActionReject:
		action = 1
	}
	// Suricata's flowbits order: rules that only set, then those that set and
	// test, then those that only test, then the rest, so that a chain of bits
	// set and tested on one packet holds whatever the sids.
	bitsRank := 3
	switch {
	case sets > 0 && tests == 0:
		bitsRank = 0
	case sets > 0:
		bitsRank = 1
	case tests > 0:
		bitsRank = 2
	}
	c.rank = [4]int{action, bitsRank, r.Priority, int(r.SID)}
	c.tkey = uint64(r.GID)<<32 | uint64(r.SID)
	c.metadata = metadataJSON(r.Metadata)
	return c, nil
}

// metadataJSON renders a rule's metadata ("key value" items) as Suricata's EVE
// alert.metadata: an object of arrays of values, keys in the rule's order.
func metadataJSON(items []string) []byte {
	if len(items) == 0 {
		return nil
	}
	var keys []string
	values := map[string][]string{}
	for _, kv := range items {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), " ")
		if _, ok := values[k]; !ok {
			keys = append(keys, k)
		}
		values[k] = append(values[k], strings.TrimSpace(v))
	}
	b := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(values[k])
		b = append(append(append(b, kb...), ':'), vb...)
	}
	return append(b, '}')
}
