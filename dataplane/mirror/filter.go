// Package mirror holds what a VPC Traffic Mirroring target needs besides the VXLAN
// decoder: AWS Traffic Mirror filters (which packets AWS sends us, so that we can
// tell what we should and should not be seeing), telling the direction of a mirrored
// packet from the mirrored ENI's point of view, and suppressing the second copy of a
// packet when both ends of a flow are mirrored.
package mirror

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"weir/internal/echo"

	"gopkg.in/yaml.v3"

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
		return fmt.Errorf("bad TrafficDirection %s (want ingress or egress)", echo.Quote(string(b)))
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
		return fmt.Errorf("bad RuleAction %s (want accept or reject)", echo.Quote(string(b)))
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
	Line  int // the line Where names, when known (0 when not)
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
		b.WriteString(echo.Clip(id, echo.Max))
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

// ParseFilter reads a Traffic Mirror filter document: the JSON that `aws ec2
// describe-traffic-mirror-filters` prints ({"TrafficMirrorFilters": [...]}), one
// filter object of it, or a document with one filter under "TrafficMirrorFilter"
// (what create-traffic-mirror-filter and modify-traffic-mirror-filter-network-services
// print), as is, or the same written in YAML. yaml.v3 reads both, and keeps the
// line of every value for errors. name is the file name for errors; id and the
// errors are as for FilterFromNode. A document that is empty, or followed by a
// second one, is an error.
func ParseFilter(name string, data []byte, id string) (*Filter, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &RuleError{Where: name + ":1", Line: 1, Msg: "empty: want a Traffic Mirror filter"}
		}
		return nil, syntaxError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &RuleError{Where: fmt.Sprintf("%s:%d", name, extra.Line), Line: extra.Line,
			Msg: "a second document: a filter file holds one"}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(name, err)
	}
	return FilterFromNode(name, &doc, id)
}

// syntaxError turns a yaml.v3 error ("yaml: line 3: ...") into a *RuleError at
// that line (line 1 when yaml.v3 gives none).
func syntaxError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ":"); ok {
			if n, e := strconv.Atoi(num); e == nil && n > 0 {
				line, msg = n, strings.TrimSpace(after)
			}
		}
	}
	// yaml.v3 repeats anchor names and tags, which can be as long as the file.
	return &RuleError{Where: fmt.Sprintf("%s:%d", name, line), Line: line,
		Msg: "invalid JSON or YAML: " + echo.Clip(msg, maxMessage)}
}

// FilterFromNode reads a filter from a yaml.v3 node tree: a document parsed from
// JSON or YAML (see ParseFilter for the shapes), or a mapping inside a larger
// document such as weir's configuration. Field names are AWS's, matched exactly or
// else ignoring case as encoding/json does; fields not read here (Tags,
// TrafficMirrorFilterRuleId, ...) are ignored; aliases are followed. name is the
// file the nodes come from.
//
// When the document holds several filters, id selects one (an empty id is then an
// error that lists the ids); when it holds one, a non-empty id must be its id. Only
// the selected filter is validated.
//
// Every error is a *RuleError whose Where is "name:LINE" followed, for a problem
// with a rule, by "ID DIRECTION rule NUMBER" (the Where of the rule), or for one
// with the filter, by its ID; LINE is that of the rule, the filter, or the key or
// value at fault, and is also in Line. Every problem found is reported, several
// joined with errors.Join (at most maxErrors, then a count of the others).
func FilterFromNode(name string, n *yaml.Node, id string) (*Filter, error) {
	p := &nodeParser{name: name}
	f := p.document(n, id)
	if err := p.result(); err != nil {
		return nil, err
	}
	return f, nil
}

// maxErrors bounds the problems one filter reports: a real filter has a few dozen
// rules at most, and a generated file of a million bad ones must not make an error
// message of hundreds of megabytes.
const maxErrors = 32

type nodeParser struct {
	name string
	errs []error
}

// where names line of the file, then what (if any).
func (p *nodeParser) where(line int, what string) string {
	s := p.name
	if line > 0 {
		s += ":" + strconv.Itoa(line)
	}
	if what != "" {
		s += ": " + what
	}
	return s
}

// fail reports a problem at n's line; what names the filter or rule, or is "".
func (p *nodeParser) fail(n *yaml.Node, what, format string, args ...any) {
	p.errs = append(p.errs, &RuleError{Where: p.where(n.Line, what), Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

func (p *nodeParser) result() error {
	if len(p.errs) > maxErrors {
		more := len(p.errs) - maxErrors
		p.errs = append(p.errs[:maxErrors], &RuleError{Where: p.name, Msg: fmt.Sprintf("and %d more problems", more)})
	}
	return joinErrors(p.errs)
}

// deref returns the node n stands for: the content of a document, the target of an
// alias (an alias never points at another alias).
func deref(n *yaml.Node) *yaml.Node {
	for range 2 {
		switch {
		case n == nil:
			return nil
		case n.Kind == yaml.DocumentNode && len(n.Content) == 1:
			n = n.Content[0]
		case n.Kind == yaml.DocumentNode:
			return nil
		case n.Kind == yaml.AliasNode:
			n = n.Alias
		}
	}
	return n
}

// absent reports whether a field is missing or null (encoding/json's nil).
func absent(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of n, and its value if a scalar, for "want X, got Y".
func describe(n *yaml.Node) string {
	n = deref(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "an object"
	case n.Kind == yaml.SequenceNode:
		return "an array"
	case n.Kind != yaml.ScalarNode:
		return "an unexpected YAML node"
	}
	switch tag := n.ShortTag(); tag {
	case "!!null":
		return "null"
	case "!!str":
		return "a string " + echo.Quote(n.Value)
	case "!!int":
		return "an integer " + echo.Clip(n.Value, echo.Max)
	case "!!float":
		return "a number " + echo.Clip(n.Value, echo.Max)
	case "!!bool":
		return "a boolean " + echo.Clip(n.Value, echo.Max)
	default:
		return "a value tagged " + echo.Clip(tag, echo.Max)
	}
}

// fields returns the values of keys in mapping m, nil for those absent. A key
// given twice, a merge key (<<) or a key that is not a single value is an error
// at the key's line.
func (p *nodeParser) fields(m *yaml.Node, keys ...string) []*yaml.Node {
	vals := make([]*yaml.Node, len(keys))
	seen := make(map[string]bool, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			p.fail(k, "", "a key must be a single value, not %s", describe(k))
			continue
		case k.ShortTag() == "!!merge":
			p.fail(k, "", "merge keys (<<) are not supported in a filter")
			continue
		case seen[k.Value]:
			p.fail(k, "", "duplicate key %s", echo.Quote(k.Value))
			continue
		}
		seen[k.Value] = true
		j := slices.Index(keys, k.Value)
		if j < 0 {
			j = slices.IndexFunc(keys, func(key string) bool { return strings.EqualFold(key, k.Value) })
		}
		switch {
		case j < 0: // a field weir does not use
		case vals[j] != nil:
			p.fail(k, "", "duplicate key %s (also %s)", echo.Quote(k.Value), keys[j])
		default:
			vals[j] = v
		}
	}
	return vals
}

// find returns the value of key in mapping m (exactly, else ignoring case), or nil.
func find(m *yaml.Node, key string) *yaml.Node {
	var folded *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		switch k := m.Content[i].Value; {
		case k == key:
			return m.Content[i+1]
		case folded == nil && strings.EqualFold(k, key):
			folded = m.Content[i+1]
		}
	}
	return folded
}

// list returns the items of an array field (none when absent or null), or false
// after calling bad when n is not an array.
func list(n *yaml.Node, field string, bad func(string, ...any)) ([]*yaml.Node, bool) {
	if absent(n) {
		return nil, true
	}
	if n = deref(n); n.Kind != yaml.SequenceNode {
		bad("%s: want an array, got %s", field, describe(n))
		return nil, false
	}
	return n.Content, true
}

// text returns the value of a string field, or false after calling bad when n is
// not a string. The caller checks absent first.
func text(n *yaml.Node, field string, bad func(string, ...any)) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		bad("%s: want a string, got %s", field, describe(n))
		return "", false
	}
	return n.Value, true
}

// integer returns the value of an integer field, or false after calling bad. The
// caller checks absent first.
func integer(n *yaml.Node, field string, bad func(string, ...any)) (int, bool) {
	n = deref(n)
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		bad("%s: want an integer, got %s", field, describe(n))
		return 0, false
	}
	if err := n.Decode(&v); err != nil {
		bad("%s: want an integer, got %s", field, echo.Quote(n.Value))
		return 0, false
	}
	return v, true
}

// document finds the filter in the top node and reads it.
func (p *nodeParser) document(n *yaml.Node, id string) *Filter {
	if n = deref(n); n == nil {
		p.errs = append(p.errs, &RuleError{Where: p.name, Msg: "empty: want a Traffic Mirror filter"})
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, "", "want an object, got %s", describe(n))
		return nil
	}
	top := p.fields(n, "TrafficMirrorFilters", "TrafficMirrorFilter",
		"IngressFilterRules", "EgressFilterRules", "TrafficMirrorFilterId")
	if len(p.errs) > 0 {
		return nil
	}
	switch {
	case top[0] != nil:
		if n = p.pick(top[0], id); n == nil {
			return nil
		}
	case top[1] != nil:
		n = top[1] // what create-traffic-mirror-filter prints
	case top[2] == nil && top[3] == nil && top[4] == nil:
		p.fail(n, "", "not a Traffic Mirror filter: no TrafficMirrorFilters, TrafficMirrorFilterId, IngressFilterRules or EgressFilterRules")
		return nil
	}
	return p.filter(n, id)
}

// pick returns the filter of TrafficMirrorFilters that id selects, or nil.
func (p *nodeParser) pick(n *yaml.Node, id string) *yaml.Node {
	items, ok := list(n, "TrafficMirrorFilters", func(format string, args ...any) { p.fail(deref(n), "", format, args...) })
	if !ok {
		return nil
	}
	ids := make([]string, len(items))
	for i, item := range items {
		// Errors surface when the filter is read, if it is the one selected.
		if m := deref(item); m != nil && m.Kind == yaml.MappingNode {
			if v := deref(find(m, "TrafficMirrorFilterId")); v != nil && v.Kind == yaml.ScalarNode {
				ids[i] = v.Value
			}
		}
	}
	switch {
	case len(ids) == 0:
		p.fail(deref(n), "", "no filter in TrafficMirrorFilters")
	case id == "" && len(ids) == 1:
		return items[0]
	case id == "":
		p.fail(deref(n), "", "%d filters (%s): say which", len(ids), idList(ids))
	default:
		i := slices.Index(ids, id)
		if i < 0 {
			p.fail(deref(n), "", "no filter %s (it holds %s)", echo.Clip(id, echo.Max), idList(ids))
			return nil
		}
		if j := slices.Index(ids[i+1:], id); j >= 0 {
			p.fail(items[i+1+j], "", "filter %s is listed twice", echo.Clip(id, echo.Max))
			return nil
		}
		return items[i]
	}
	return nil
}

// idList lists filter ids for an error message, the first few of them.
func idList(ids []string) string {
	const most = 10
	var b strings.Builder
	for i, id := range ids {
		if i == most {
			fmt.Fprintf(&b, ", … (%d in all)", len(ids))
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(echo.Clip(id, echo.Max))
	}
	return b.String()
}

// filter reads and validates the filter object n.
func (p *nodeParser) filter(n *yaml.Node, id string) *Filter {
	at := n // the line problems with the filter are reported at
	if n = deref(n); n == nil || n.Kind != yaml.MappingNode {
		p.fail(at, "", "want a filter object, got %s", describe(n))
		return nil
	}
	v := p.fields(n, "TrafficMirrorFilterId", "Description", "NetworkServices", "IngressFilterRules", "EgressFilterRules")
	f := &Filter{}
	var msgs []string
	bad := func(format string, args ...any) { msgs = append(msgs, fmt.Sprintf(format, args...)) }
	if !absent(v[0]) {
		f.ID, _ = text(v[0], "TrafficMirrorFilterId", bad)
	}
	if id != "" && f.ID != id {
		p.fail(at, "", "holds filter %s, not %s", echo.Quote(f.ID), echo.Clip(id, echo.Max))
		return nil
	}
	what := echo.Clip(f.ID, echo.Max)
	if !absent(v[1]) {
		f.Description, _ = text(v[1], "Description", bad)
	}
	services, _ := list(v[2], "NetworkServices", bad)
	for _, sn := range services {
		s, ok := text(sn, "NetworkServices", bad)
		switch {
		case !ok:
		case s == "amazon-dns":
			f.AmazonDNS = true
		default:
			bad("unknown NetworkServices value %s (want amazon-dns)", echo.Quote(s))
		}
	}
	for _, msg := range msgs {
		p.errs = append(p.errs, &RuleError{Where: p.where(at.Line, what), Line: at.Line, Msg: msg})
	}
	msgs = nil

	for _, l := range []struct {
		dir   Direction
		node  *yaml.Node
		rules *[]Rule
	}{{DirIngress, v[3], &f.Ingress}, {DirEgress, v[4], &f.Egress}} {
		items, _ := list(l.node, listName(l.dir), func(format string, args ...any) {
			p.fail(at, what, format, args...)
		})
		rules := make([]Rule, 0, len(items))
		lines := make(map[string]int, len(items)) // Where → line, for checkRules' errors
		for i, item := range items {
			r, msg := p.rule(item, l.dir)
			r.Where = p.where(item.Line, ruleName(f.ID, l.dir, r.Number, i))
			lines[r.Where] = item.Line
			if msg != "" {
				p.errs = append(p.errs, &RuleError{Where: r.Where, Line: item.Line, Msg: msg})
				continue
			}
			rules = append(rules, r)
		}
		// checkRules finds duplicates and sorts.
		before := len(p.errs)
		*l.rules, p.errs = checkRules(f.ID, l.dir, rules, p.errs)
		for _, err := range p.errs[before:] {
			if re, ok := err.(*RuleError); ok && re.Line == 0 {
				re.Line = lines[re.Where]
			}
		}
	}
	return f
}

// rule reads one AWS rule object, listed under dir, and returns everything wrong
// with it: its fields one by one (presence, type, spelling, range), then
// checkCross.
func (p *nodeParser) rule(n *yaml.Node, dir Direction) (r Rule, msg string) {
	if n = deref(n); n == nil || n.Kind != yaml.MappingNode {
		return r, "want an object, got " + describe(n)
	}
	v := p.fields(n, "RuleNumber", "RuleAction", "TrafficDirection", "Protocol",
		"SourceCidrBlock", "DestinationCidrBlock", "SourcePortRange", "DestinationPortRange")
	var msgs []string
	bad := func(format string, args ...any) { msgs = append(msgs, fmt.Sprintf(format, args...)) }

	if absent(v[0]) {
		bad("missing RuleNumber (%d-%d)", MinRuleNumber, MaxRuleNumber)
	} else if num, ok := integer(v[0], "RuleNumber", bad); ok {
		r.Number = num
		if num < MinRuleNumber || num > MaxRuleNumber {
			bad("RuleNumber %d out of range %d-%d", num, MinRuleNumber, MaxRuleNumber)
		}
	}
	if absent(v[1]) {
		bad("missing RuleAction (accept or reject)")
	} else if s, ok := text(v[1], "RuleAction", bad); ok {
		if err := r.Action.UnmarshalText([]byte(s)); err != nil {
			bad("%v", err)
		}
	}
	if absent(v[2]) {
		bad("missing TrafficDirection (%s)", dir)
	} else if s, ok := text(v[2], "TrafficDirection", bad); ok {
		if err := r.Direction.UnmarshalText([]byte(s)); err != nil {
			bad("%v", err)
		} else if r.Direction != dir {
			bad("TrafficDirection %s but listed under %s", r.Direction, listName(dir))
		}
	}
	r.Protocol = AllProtocols
	protoOK := true
	if !absent(v[3]) {
		r.Protocol, protoOK = integer(v[3], "Protocol", bad)
		if protoOK && (r.Protocol < 0 || r.Protocol > 255) {
			bad("Protocol %d not 0-255 (leave Protocol out for all protocols)", r.Protocol)
			protoOK = false
		}
	}
	cidr := func(field string, n *yaml.Node) netip.Prefix {
		if absent(n) {
			bad("missing %s", field)
			return netip.Prefix{}
		}
		s, ok := text(n, field, bad)
		if !ok {
			return netip.Prefix{}
		}
		pr, err := netip.ParsePrefix(s)
		if err != nil {
			bad("bad %s %s: want a CIDR block such as 10.0.0.0/16 or 2001:db8::/32", field, echo.Quote(s))
		}
		return pr
	}
	r.Src = cidr("SourceCidrBlock", v[4])
	r.Dst = cidr("DestinationCidrBlock", v[5])
	ports := func(field string, n *yaml.Node) *PortRange {
		if absent(n) {
			return nil
		}
		if n = deref(n); n.Kind != yaml.MappingNode {
			bad("%s: want an object, got %s", field, describe(n))
			return nil
		}
		pv := p.fields(n, "FromPort", "ToPort")
		var pr [2]int
		ok := true
		for i, name := range []string{"FromPort", "ToPort"} {
			if absent(pv[i]) {
				bad("%s: missing %s", field, name)
				ok = false
				continue
			}
			port, good := integer(pv[i], field+"."+name, bad)
			if good && (port < 0 || port > 65535) {
				bad("%s: %s %d out of range 0-65535", field, name, port)
				good = false
			}
			pr[i], ok = port, ok && good
		}
		if !ok {
			return nil
		}
		return &PortRange{From: uint16(pr[0]), To: uint16(pr[1])}
	}
	r.SrcPorts = ports("SourcePortRange", v[6])
	r.DstPorts = ports("DestinationPortRange", v[7])
	msgs = checkCross(&r, protoOK, msgs)
	return r, strings.Join(msgs, "; ")
}

// maxMessage bounds a message from elsewhere (yaml.v3) that may repeat input.
const maxMessage = 256
