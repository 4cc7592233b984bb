// Package mirror holds what a VPC Traffic Mirroring target needs besides the VXLAN
// decoder: AWS Traffic Mirror filters (which packets AWS sends us, so that we can
// tell what we should and should not be seeing), telling the direction of a mirrored
// packet from the mirrored ENI's point of view, and suppressing the second copy of a
// packet when both ends of a flow are mirrored.
package mirror

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"weir/dataplane/packet"
)

// Direction is the direction of a mirrored packet as seen by the mirrored ENI.
type Direction uint8

const (
	DirUnknown Direction = iota
	DirIngress           // into the ENI
	DirEgress            // out of the ENI
)

func (d Direction) String() string {
	switch d {
	case DirIngress:
		return "ingress"
	case DirEgress:
		return "egress"
	}
	return "unknown"
}

// MarshalText writes the AWS TrafficDirection spelling.
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads "ingress" or "egress" (AWS's lowercase TrafficDirection), so
// that config decoders (yaml.v3, encoding/json) accept the AWS spelling.
func (d *Direction) UnmarshalText(b []byte) error {
	switch string(b) {
	case "ingress":
		*d = DirIngress
	case "egress":
		*d = DirEgress
	default:
		return fmt.Errorf("bad TrafficDirection %q (want ingress or egress)", b)
	}
	return nil
}

// RuleAction is what a matching filter rule does. The zero value is no action: a
// rule must say accept or reject.
type RuleAction uint8

const (
	Accept RuleAction = iota + 1 // mirror the packet
	Reject                       // do not mirror it
)

func (a RuleAction) String() string {
	switch a {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("RuleAction(%d)", uint8(a))
}

// MarshalText writes the AWS RuleAction spelling.
func (a RuleAction) MarshalText() ([]byte, error) {
	if a != Accept && a != Reject {
		return nil, fmt.Errorf("bad RuleAction %d", uint8(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText reads "accept" or "reject" (AWS's lowercase RuleAction).
func (a *RuleAction) UnmarshalText(b []byte) error {
	switch string(b) {
	case "accept":
		*a = Accept
	case "reject":
		*a = Reject
	default:
		return fmt.Errorf("bad RuleAction %q (want accept or reject)", b)
	}
	return nil
}

// AllProtocols in Rule.Protocol matches every protocol (AWS: Protocol absent).
const AllProtocols = -1

// Rule numbers AWS accepts.
const (
	MinRuleNumber = 1
	MaxRuleNumber = 32766
)

// PortRange is an inclusive port range (AWS FromPort..ToPort).
type PortRange struct{ From, To uint16 }

// Contains reports whether port is in the range.
func (r *PortRange) Contains(port uint16) bool { return port >= r.From && port <= r.To }

func (r *PortRange) String() string { return fmt.Sprintf("%d-%d", r.From, r.To) }

// Rule is one Traffic Mirror filter rule.
type Rule struct {
	Number    int        // RuleNumber, 1..32766; lowest first
	Action    RuleAction // RuleAction
	Direction Direction  // TrafficDirection; NewFilter fills it in from the list when zero
	Protocol  int        // IANA protocol number 0..255, or AllProtocols
	// Src and Dst are SourceCidrBlock and DestinationCidrBlock: both required, both
	// IPv4 or both IPv6. A rule never matches a packet of the other family.
	Src, Dst netip.Prefix
	// SrcPorts and DstPorts are SourcePortRange and DestinationPortRange; nil matches
	// every port. Only allowed with Protocol 6 (TCP) or 17 (UDP).
	SrcPorts, DstPorts *PortRange
	// Where names the rule in errors and logs, e.g.
	// "filters/web.json:12: tmf-0123 egress rule 100". NewFilter fills it in when
	// empty.
	Where string
}

// matches reports whether p matches every criterion of r. It does not allocate.
func (r *Rule) matches(p *packet.Packet) bool {
	if r.Protocol != AllProtocols && r.Protocol != int(p.Proto) {
		return false
	}
	// Prefix.Contains is false across families, and for an invalid prefix.
	if !r.Src.Contains(p.Src) || !r.Dst.Contains(p.Dst) {
		return false
	}
	if r.SrcPorts != nil || r.DstPorts != nil {
		// Port ranges only describe TCP and UDP, and a non-first fragment has no
		// transport header to read them from.
		if p.Proto != packet.ProtoTCP && p.Proto != packet.ProtoUDP || p.Fragment {
			return false
		}
		if r.SrcPorts != nil && !r.SrcPorts.Contains(p.SrcPort) ||
			r.DstPorts != nil && !r.DstPorts.Contains(p.DstPort) {
			return false
		}
	}
	return true
}

// Filter is an AWS Traffic Mirror filter.
type Filter struct {
	ID          string // TrafficMirrorFilterId
	Description string
	// Ingress and Egress are the rule lists, sorted by Number ascending, Numbers
	// unique within each list.
	Ingress, Egress []Rule
	// AmazonDNS is set when NetworkServices holds "amazon-dns": traffic with the
	// Amazon DNS servers is then mirrored whatever the rules say.
	AmazonDNS bool
}

// DNSPort is the port of Amazon DNS traffic.
const DNSPort = 53

// Mirrored reports whether AWS would mirror p, travelling in direction d as seen by
// the mirrored ENI, through filter f.
//
//   - Traffic with an Amazon DNS server — TCP or UDP to port 53 of an address in dns,
//     or from port 53 of one, or a non-first fragment of TCP or UDP to or from one
//     (those addresses serve nothing but DNS) — is decided by the filter's network
//     services alone: mirrored iff f.AmazonDNS ("all traffic related to that network
//     service will be mirrored", whatever the rules say). dns holds the addresses:
//     169.254.169.253, fd00:ec2::253 and the VPC's base address + 2, as configured.
//   - Otherwise the rule list of direction d decides: lowest Number first, the first
//     rule that matches decides (Accept: true, Reject: false); no match: false.
//   - DirUnknown (the direction could not be told) is mirrored if either list would
//     mirror the packet: a packet AWS sent us is never judged unexpected just because
//     we could not tell its direction.
//
// A rule matches when the protocol is equal (AllProtocols matches all), both CIDRs
// contain the addresses (never across families) and, if the rule has a port range,
// the packet is TCP or UDP, not a non-first fragment, and its ports are in range.
// A nil f mirrors nothing. Mirrored does not allocate.
func (f *Filter) Mirrored(p *packet.Packet, d Direction, dns []netip.Addr) bool {
	if f == nil {
		return false
	}
	if isAmazonDNS(p, dns) {
		return f.AmazonDNS
	}
	switch d {
	case DirIngress:
		return decide(f.Ingress, p)
	case DirEgress:
		return decide(f.Egress, p)
	}
	return decide(f.Ingress, p) || decide(f.Egress, p)
}

func decide(rules []Rule, p *packet.Packet) bool {
	for i := range rules {
		if rules[i].matches(p) {
			return rules[i].Action == Accept
		}
	}
	return false
}

func isAmazonDNS(p *packet.Packet, dns []netip.Addr) bool {
	if len(dns) == 0 || p.Proto != packet.ProtoTCP && p.Proto != packet.ProtoUDP {
		return false
	}
	toDNS := p.DstPort == DNSPort || p.Fragment
	fromDNS := p.SrcPort == DNSPort || p.Fragment
	if !toDNS && !fromDNS {
		return false
	}
	src, dst := p.Src.Unmap(), p.Dst.Unmap()
	for _, a := range dns {
		a = a.Unmap()
		if toDNS && a == dst || fromDNS && a == src {
			return true
		}
	}
	return false
}

// RuleError is a filter that AWS would not accept, or that weir cannot read. Where
// names the rule (or the filter), Msg says what is wrong.
type RuleError struct {
	Where string
	Msg   string
}

func (e *RuleError) Error() string {
	if e.Where == "" {
		return e.Msg
	}
	return e.Where + ": " + e.Msg
}

// NewFilter validates rules given by other means than AWS JSON (the same field names
// inline in YAML config), fills in an empty Where ("ID ingress rule N") and a zero
// Direction (from the list the rule is in), and returns the filter with both lists
// copied and sorted by Number. Every problem found is reported: one *RuleError, or
// several joined with errors.Join.
func NewFilter(id string, ingress, egress []Rule, amazonDNS bool) (*Filter, error) {
	f := &Filter{ID: id, AmazonDNS: amazonDNS}
	var errs []error
	f.Ingress, errs = checkRules(id, DirIngress, ingress, errs)
	f.Egress, errs = checkRules(id, DirEgress, egress, errs)
	if err := joinErrors(errs); err != nil {
		return nil, err
	}
	return f, nil
}

func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

// listName is the AWS name of the rule list of direction d.
func listName(d Direction) string {
	if d == DirEgress {
		return "EgressFilterRules"
	}
	return "IngressFilterRules"
}

// checkRules validates and sorts a copy of the rules of list dir.
func checkRules(id string, dir Direction, rules []Rule, errs []error) ([]Rule, []error) {
	if len(rules) == 0 {
		return nil, errs
	}
	out := slices.Clone(rules)
	seen := make(map[int]string, len(out))
	for i := range out {
		r := &out[i]
		if r.Where == "" {
			r.Where = ruleName(id, dir, r.Number, i)
		}
		if r.Direction == DirUnknown {
			r.Direction = dir
		}
		if msg := checkRule(r, dir); msg != "" {
			errs = append(errs, &RuleError{Where: r.Where, Msg: msg})
			continue
		}
		if other, dup := seen[r.Number]; dup {
			errs = append(errs, &RuleError{Where: r.Where,
				Msg: fmt.Sprintf("duplicate %s RuleNumber %d (also %s)", dir, r.Number, other)})
			continue
		}
		seen[r.Number] = r.Where
		r.Src, r.Dst = r.Src.Masked(), r.Dst.Masked()
	}
	slices.SortStableFunc(out, func(a, b Rule) int { return a.Number - b.Number })
	return out, errs
}

// ruleName names rule i of list dir when nothing better is known.
func ruleName(id string, dir Direction, number, i int) string {
	var b strings.Builder
	if id != "" {
		b.WriteString(id)
		b.WriteByte(' ')
	}
	if number >= MinRuleNumber && number <= MaxRuleNumber {
		fmt.Fprintf(&b, "%s rule %d", dir, number)
	} else {
		fmt.Fprintf(&b, "%s[%d]", listName(dir), i)
	}
	return b.String()
}

// checkRule returns what is wrong with r, which is listed under dir, or "".
func checkRule(r *Rule, dir Direction) string {
	var msgs []string
	bad := func(format string, args ...any) { msgs = append(msgs, fmt.Sprintf(format, args...)) }

	switch {
	case r.Number == 0:
		bad("missing RuleNumber (%d-%d)", MinRuleNumber, MaxRuleNumber)
	case r.Number < MinRuleNumber || r.Number > MaxRuleNumber:
		bad("RuleNumber %d out of range %d-%d", r.Number, MinRuleNumber, MaxRuleNumber)
	}
	switch r.Action {
	case Accept, Reject:
	case 0:
		bad("missing RuleAction (accept or reject)")
	default:
		bad("bad RuleAction %d (want accept or reject)", uint8(r.Action))
	}
	switch r.Direction {
	case dir:
	case DirIngress, DirEgress:
		bad("TrafficDirection %s but listed under %s", r.Direction, listName(dir))
	default:
		bad("bad TrafficDirection %d (want ingress or egress)", uint8(r.Direction))
	}
	protoOK := r.Protocol == AllProtocols || r.Protocol >= 0 && r.Protocol <= 255
	if !protoOK {
		bad("Protocol %d not 0-255", r.Protocol)
	}
	if !r.Src.IsValid() {
		bad("missing or bad SourceCidrBlock")
	}
	if !r.Dst.IsValid() {
		bad("missing or bad DestinationCidrBlock")
	}
	msgs = checkCross(r, protoOK, msgs)
	return strings.Join(msgs, "; ")
}

// checkCross appends what is wrong between the fields of r, given that each field
// alone is valid (or, for the protocol, protoOK says whether it is; an invalid
// prefix is left out).
func checkCross(r *Rule, protoOK bool, msgs []string) []string {
	bad := func(format string, args ...any) { msgs = append(msgs, fmt.Sprintf(format, args...)) }
	if r.Src.IsValid() && r.Dst.IsValid() && r.Src.Addr().Is4() != r.Dst.Addr().Is4() {
		bad("SourceCidrBlock %s is %s but DestinationCidrBlock %s is %s",
			r.Src, family(r.Src), r.Dst, family(r.Dst))
	}
	for _, pr := range []struct {
		name string
		r    *PortRange
	}{{"SourcePortRange", r.SrcPorts}, {"DestinationPortRange", r.DstPorts}} {
		if pr.r == nil {
			continue
		}
		if pr.r.From > pr.r.To {
			bad("%s FromPort %d > ToPort %d", pr.name, pr.r.From, pr.r.To)
		}
		switch {
		case !protoOK, r.Protocol == int(packet.ProtoTCP), r.Protocol == int(packet.ProtoUDP):
		case r.Protocol == AllProtocols:
			bad("%s needs Protocol 6 (TCP) or 17 (UDP), not all protocols", pr.name)
		default:
			bad("%s needs Protocol 6 (TCP) or 17 (UDP), not %d", pr.name, r.Protocol)
		}
	}
	return msgs
}

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// LoadFilter reads a filter from a JSON file; see ParseFilterJSON.
func LoadFilter(path, id string) (*Filter, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseFilterJSON(path, data, id)
}

// The JSON shapes of `aws ec2 describe-traffic-mirror-filters`. Fields not named here
// (Tags, TrafficMirrorFilterRuleId, ...) are ignored. Rules stay raw so that each is
// decoded on its own and its errors name it.
type jsonDoc struct {
	TrafficMirrorFilters []json.RawMessage
}

type jsonFilter struct {
	TrafficMirrorFilterId string
	Description           string
	IngressFilterRules    []json.RawMessage
	EgressFilterRules     []json.RawMessage
	NetworkServices       []string
}

type jsonRule struct {
	RuleNumber           *int
	RuleAction           *string
	TrafficDirection     *string
	Protocol             *int
	SourceCidrBlock      *string
	DestinationCidrBlock *string
	SourcePortRange      *jsonPortRange
	DestinationPortRange *jsonPortRange
}

type jsonPortRange struct {
	FromPort, ToPort *int
}

// ParseFilterJSON reads the output of `aws ec2 describe-traffic-mirror-filters`
// ({"TrafficMirrorFilters": [...]}), or one filter object of it, or a document with
// one filter under "TrafficMirrorFilter" (what create-traffic-mirror-filter and
// modify-traffic-mirror-filter-network-services print), as is. name is the
// file name for errors. When the document holds several filters, id selects one (an
// empty id is then an error that lists the ids); when it holds one, a non-empty id
// must be its id. Only the selected filter is validated.
//
// Invalid JSON is reported as "name:LINE:COL: ..."; problems with a rule as
// *RuleError whose Where is "name:LINE: ID DIRECTION rule NUMBER", every problem
// found (several are joined with errors.Join).
func ParseFilterJSON(name string, data []byte, id string) (*Filter, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, jsonError(name, data, err)
	}
	var raw json.RawMessage
	if _, ok := lookup(top, "TrafficMirrorFilters"); ok {
		var doc jsonDoc
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, jsonError(name, data, err)
		}
		filterIDs := make([]string, len(doc.TrafficMirrorFilters))
		for i, fr := range doc.TrafficMirrorFilters {
			var f struct{ TrafficMirrorFilterId any }
			json.Unmarshal(fr, &f) // errors surface when the filter is decoded
			filterIDs[i], _ = f.TrafficMirrorFilterId.(string)
		}
		switch {
		case len(filterIDs) == 0:
			return nil, fmt.Errorf("%s: no filter in TrafficMirrorFilters", name)
		case id == "" && len(filterIDs) == 1:
			raw = doc.TrafficMirrorFilters[0]
		case id == "":
			return nil, fmt.Errorf("%s: %d filters (%s): say which", name, len(filterIDs), strings.Join(filterIDs, ", "))
		default:
			i := slices.Index(filterIDs, id)
			if i < 0 {
				return nil, fmt.Errorf("%s: no filter %s (it holds %s)", name, id, strings.Join(filterIDs, ", "))
			}
			if j := slices.Index(filterIDs[i+1:], id); j >= 0 {
				return nil, fmt.Errorf("%s: filter %s is listed twice", name, id)
			}
			raw = doc.TrafficMirrorFilters[i]
		}
	} else if one, ok := lookup(top, "TrafficMirrorFilter"); ok {
		raw = one // what create-traffic-mirror-filter prints
	} else {
		_, in := lookup(top, "IngressFilterRules")
		_, eg := lookup(top, "EgressFilterRules")
		_, fid := lookup(top, "TrafficMirrorFilterId")
		if !in && !eg && !fid {
			return nil, fmt.Errorf("%s: not a Traffic Mirror filter: no TrafficMirrorFilters, TrafficMirrorFilterId, IngressFilterRules or EgressFilterRules", name)
		}
		raw = data
	}

	var jf jsonFilter
	if err := json.Unmarshal(raw, &jf); err != nil {
		where := name
		if jf.TrafficMirrorFilterId != "" {
			where += ": " + jf.TrafficMirrorFilterId
		}
		return nil, &RuleError{Where: where, Msg: typeMessage(err)}
	}
	if id != "" && jf.TrafficMirrorFilterId != id {
		return nil, fmt.Errorf("%s: holds filter %q, not %s", name, jf.TrafficMirrorFilterId, id)
	}

	var lines *ruleLines // found at the first rule
	var errs []error
	f := &Filter{ID: jf.TrafficMirrorFilterId, Description: jf.Description}
	for _, s := range jf.NetworkServices {
		if s == "amazon-dns" {
			f.AmazonDNS = true
			continue
		}
		errs = append(errs, &RuleError{Where: filterName(name, f.ID),
			Msg: fmt.Sprintf("unknown NetworkServices value %q (want amazon-dns)", s)})
	}
	for _, list := range []struct {
		dir   Direction
		raws  []json.RawMessage
		rules *[]Rule
	}{{DirIngress, jf.IngressFilterRules, &f.Ingress}, {DirEgress, jf.EgressFilterRules, &f.Egress}} {
		rules := make([]Rule, 0, len(list.raws))
		for i, rr := range list.raws {
			r, msg := ruleFromJSON(rr, list.dir)
			r.Where = ruleName(f.ID, list.dir, r.Number, i)
			if lines == nil {
				lines = findRuleLines(data, raw)
			}
			if line := lines.line(list.dir, i); line > 0 {
				r.Where = fmt.Sprintf("%s:%d: %s", name, line, r.Where)
			} else {
				r.Where = name + ": " + r.Where
			}
			if msg != "" {
				errs = append(errs, &RuleError{Where: r.Where, Msg: msg})
				continue
			}
			rules = append(rules, r)
		}
		// checkRules finds duplicates and sorts.
		*list.rules, errs = checkRules(f.ID, list.dir, rules, errs)
	}
	if err := joinErrors(errs); err != nil {
		return nil, err
	}
	return f, nil
}

func filterName(name, id string) string {
	if id == "" {
		return name
	}
	return name + ": " + id
}

// lookup finds key in m as encoding/json would: exact match first, then any case.
func lookup(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// ruleFromJSON converts one AWS rule object and returns everything wrong with it:
// its fields one by one as JSON (presence, spelling, range), then checkCross.
func ruleFromJSON(raw json.RawMessage, dir Direction) (r Rule, msg string) {
	var jr jsonRule
	if err := json.Unmarshal(raw, &jr); err != nil {
		// The rule number, if readable, still names the rule.
		var n struct{ RuleNumber int }
		json.Unmarshal(raw, &n)
		r.Number = n.RuleNumber
		return r, typeMessage(err)
	}
	var msgs []string
	bad := func(format string, args ...any) { msgs = append(msgs, fmt.Sprintf(format, args...)) }

	switch {
	case jr.RuleNumber == nil:
		bad("missing RuleNumber (%d-%d)", MinRuleNumber, MaxRuleNumber)
	case *jr.RuleNumber < MinRuleNumber || *jr.RuleNumber > MaxRuleNumber:
		bad("RuleNumber %d out of range %d-%d", *jr.RuleNumber, MinRuleNumber, MaxRuleNumber)
		r.Number = *jr.RuleNumber
	default:
		r.Number = *jr.RuleNumber
	}
	if jr.RuleAction == nil {
		bad("missing RuleAction (accept or reject)")
	} else if err := r.Action.UnmarshalText([]byte(*jr.RuleAction)); err != nil {
		bad("%v", err)
	}
	if jr.TrafficDirection == nil {
		bad("missing TrafficDirection (%s)", dir)
	} else if err := r.Direction.UnmarshalText([]byte(*jr.TrafficDirection)); err != nil {
		bad("%v", err)
	} else if r.Direction != dir {
		bad("TrafficDirection %s but listed under %s", r.Direction, listName(dir))
	}
	r.Protocol = AllProtocols
	protoOK := true
	if jr.Protocol != nil {
		r.Protocol = *jr.Protocol
		if protoOK = r.Protocol >= 0 && r.Protocol <= 255; !protoOK {
			bad("Protocol %d not 0-255 (leave Protocol out for all protocols)", r.Protocol)
		}
	}
	cidr := func(field string, s *string) netip.Prefix {
		if s == nil {
			bad("missing %s", field)
			return netip.Prefix{}
		}
		p, err := netip.ParsePrefix(*s)
		if err != nil {
			bad("bad %s %q: want a CIDR block such as 10.0.0.0/16 or 2001:db8::/32", field, *s)
		}
		return p
	}
	r.Src = cidr("SourceCidrBlock", jr.SourceCidrBlock)
	r.Dst = cidr("DestinationCidrBlock", jr.DestinationCidrBlock)
	ports := func(field string, j *jsonPortRange) *PortRange {
		if j == nil {
			return nil
		}
		ok := true
		for _, e := range []struct {
			name string
			v    *int
		}{{"FromPort", j.FromPort}, {"ToPort", j.ToPort}} {
			switch {
			case e.v == nil:
				bad("%s: missing %s", field, e.name)
				ok = false
			case *e.v < 0 || *e.v > 65535:
				bad("%s: %s %d out of range 0-65535", field, e.name, *e.v)
				ok = false
			}
		}
		if !ok {
			return nil
		}
		return &PortRange{From: uint16(*j.FromPort), To: uint16(*j.ToPort)}
	}
	r.SrcPorts = ports("SourcePortRange", jr.SourcePortRange)
	r.DstPorts = ports("DestinationPortRange", jr.DestinationPortRange)
	msgs = checkCross(&r, protoOK, msgs)
	return r, strings.Join(msgs, "; ")
}

// typeMessage turns a decoding error of a filter or rule object into a message.
func typeMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("%s: want %s, got JSON %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return fmt.Sprintf("want an object, got JSON %s", te.Value)
	}
	return err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "uint16":
		return "an integer"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return goKind
}

// jsonError reports a syntax or top-level type error with the file position.
func jsonError(name string, data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := position(data, se.Offset)
		return fmt.Errorf("%s:%d:%d: invalid JSON: %w", name, line, col, err)
	case errors.As(err, &te):
		line, col := position(data, te.Offset)
		return fmt.Errorf("%s:%d:%d: %s", name, line, col, typeMessage(err))
	}
	return fmt.Errorf("%s: %w", name, err)
}

// position converts the offset encoding/json reports (bytes read when the error
// was found, so the bad byte is the one before it) into a 1-based line and column.
func position(data []byte, offset int64) (line, col int) {
	off := int(offset) - 1
	off = max(0, min(off, len(data)))
	before := data[:off]
	line = 1 + bytes.Count(before, []byte{'\n'})
	col = off - bytes.LastIndexByte(before, '\n')
	return line, col
}

// ruleLines holds the line of each rule of the selected filter.
type ruleLines struct {
	ingress, egress []int
}

func (l *ruleLines) line(d Direction, i int) int {
	s := l.ingress
	if d == DirEgress {
		s = l.egress
	}
	if i < len(s) {
		return s[i]
	}
	return 0
}

// findRuleLines finds the lines of the rules of filter raw (an exact copy of part
// of data, or data itself) by walking raw with a token decoder. It returns what it
// found: nothing when raw cannot be located or walked.
func findRuleLines(data, raw []byte) *ruleLines {
	l := &ruleLines{}
	base := bytes.Index(data, raw)
	if base < 0 {
		return l
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	next := func() int { // offset of the next value, past separators
		o := int(dec.InputOffset())
		for o < len(raw) && strings.IndexByte(" \t\r\n,:", raw[o]) >= 0 {
			o++
		}
		return o
	}
	lineAt, lineOff := 1, 0 // rules come in file order: count lines incrementally
	lineOf := func(o int) int {
		lineAt += bytes.Count(data[lineOff:base+o], []byte{'\n'})
		lineOff = base + o
		return lineAt
	}
	const (
		inFilter = iota // the filter object: its rule lists are wanted
		inList          // a rule list: its elements are the rules
		inOther         // anything else
	)
	var walk func(tok json.Token, role int, lines *[]int) bool
	walk = func(tok json.Token, role int, lines *[]int) bool {
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return false
				}
				key, _ := kt.(string)
				child, list := inOther, (*[]int)(nil)
				if role == inFilter && strings.EqualFold(key, "IngressFilterRules") {
					child, list = inList, &l.ingress
				} else if role == inFilter && strings.EqualFold(key, "EgressFilterRules") {
					child, list = inList, &l.egress
				}
				vt, err := dec.Token()
				if err != nil || !walk(vt, child, list) {
					return false
				}
			}
		case json.Delim('['):
			for dec.More() {
				o := next()
				vt, err := dec.Token()
				if err != nil {
					return false
				}
				if role == inList {
					*lines = append(*lines, lineOf(o))
				}
				if !walk(vt, inOther, nil) {
					return false
				}
			}
		default:
			return true
		}
		_, err := dec.Token() // the closing delimiter
		return err == nil
	}
	if tok, err := dec.Token(); err == nil {
		walk(tok, inFilter, nil)
	}
	return l
}
