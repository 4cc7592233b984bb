package rules

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// keyword is how one supported rule option parses.
type keyword struct {
	name       string
	once       bool // given at most once a rule
	needsValue bool // name:value
	noValue    bool // bare name;
	parse      func(*ruleParser, option) error
}

// keywords are the options weir supports; a rule with any other option is
// skipped. Keywords lists them for check-config.
//
// dns.query and tls.sni (and the legacy dns_query and tls_sni, which here work
// the same way) set the buffer of the content and pcre options after them, until
// pkt_data or another buffer. dns.query is allowed in dns, udp, tcp and ip rules,
// tls.sni in tls, tcp and ip rules; Proto stays as written. rawbytes is accepted
// and ignored, as Suricata does.
var keywords = map[string]keyword{}

func init() {
	for _, k := range []keyword{
		{name: "msg", once: true, needsValue: true, parse: (*ruleParser).msg},
		{name: "sid", once: true, needsValue: true, parse: (*ruleParser).sidOpt},
		{name: "rev", once: true, needsValue: true, parse: (*ruleParser).rev},
		{name: "gid", once: true, needsValue: true, parse: (*ruleParser).gid},
		{name: "classtype", once: true, needsValue: true, parse: (*ruleParser).classtype},
		{name: "priority", once: true, needsValue: true, parse: (*ruleParser).priority},
		{name: "reference", needsValue: true, parse: (*ruleParser).reference},
		{name: "metadata", needsValue: true, parse: (*ruleParser).metadata},
		{name: "content", needsValue: true, parse: (*ruleParser).content},
		{name: "nocase", noValue: true, parse: (*ruleParser).nocase},
		{name: "offset", needsValue: true, parse: (*ruleParser).modifier},
		{name: "depth", needsValue: true, parse: (*ruleParser).modifier},
		{name: "distance", needsValue: true, parse: (*ruleParser).modifier},
		{name: "within", needsValue: true, parse: (*ruleParser).modifier},
		{name: "fast_pattern", parse: (*ruleParser).fastPattern},
		{name: "rawbytes", noValue: true, parse: (*ruleParser).rawbytes},
		{name: "startswith", noValue: true, parse: (*ruleParser).anchor},
		{name: "endswith", noValue: true, parse: (*ruleParser).anchor},
		{name: "bsize", needsValue: true, parse: (*ruleParser).bsize},
		{name: "isdataat", needsValue: true, parse: (*ruleParser).isdataat},
		{name: "pcre", needsValue: true, parse: (*ruleParser).pcre},
		{name: "flow", once: true, needsValue: true, parse: (*ruleParser).flow},
		{name: "flags", once: true, needsValue: true, parse: (*ruleParser).flags},
		{name: "dsize", once: true, needsValue: true, parse: (*ruleParser).intCmp},
		{name: "itype", once: true, needsValue: true, parse: (*ruleParser).intCmp},
		{name: "icode", once: true, needsValue: true, parse: (*ruleParser).intCmp},
		{name: "ttl", once: true, needsValue: true, parse: (*ruleParser).intCmp},
		{name: "ip_proto", once: true, needsValue: true, parse: (*ruleParser).intCmp},
		{name: "flowbits", needsValue: true, parse: (*ruleParser).flowbits},
		{name: "noalert", noValue: true, parse: func(p *ruleParser, _ option) error { p.r.NoAlert = true; return nil }},
		{name: "threshold", once: true, needsValue: true, parse: (*ruleParser).threshold},
		{name: "detection_filter", once: true, needsValue: true, parse: (*ruleParser).threshold},
		{name: "dns.query", noValue: true, parse: (*ruleParser).sticky},
		{name: "dns_query", noValue: true, parse: (*ruleParser).sticky},
		{name: "tls.sni", noValue: true, parse: (*ruleParser).sticky},
		{name: "tls_sni", noValue: true, parse: (*ruleParser).sticky},
		{name: "pkt_data", noValue: true, parse: (*ruleParser).sticky},
	} {
		keywords[k.name] = k
	}
}

// Keywords returns the rule options weir supports, sorted.
func Keywords() []string { return slices.Sorted(maps.Keys(keywords)) }

func (p *ruleParser) msg(o option) (err error) {
	p.r.Msg, err = unquote(o.value)
	return err
}

func parseUint32(v string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number from 0 to %d", v, uint32(1<<32-1))
	}
	return uint32(n), nil
}

func (p *ruleParser) sidOpt(o option) (err error) {
	if p.r.SID, err = parseUint32(o.value); err == nil && p.r.SID == 0 {
		err = errors.New("sid 0 is not allowed")
	}
	return err
}

func (p *ruleParser) rev(o option) (err error) {
	p.r.Rev, err = parseUint32(o.value)
	return err
}

func (p *ruleParser) gid(o option) (err error) {
	if p.r.GID, err = parseUint32(o.value); err == nil && p.r.GID == 0 {
		err = errors.New("gid 0 is not allowed")
	}
	return err
}

func (p *ruleParser) classtype(o option) error {
	name := strings.TrimSpace(o.value)
	c, ok := lookupClasstype(strings.ToLower(name))
	if !ok {
		return fmt.Errorf("unknown classtype %q", name)
	}
	p.r.Classtype, p.r.Category = c.Name, c.Description
	if !slices.Contains(p.seen, "priority") {
		p.r.Priority = c.Priority
	}
	return nil
}

func (p *ruleParser) priority(o option) error {
	n, err := strconv.Atoi(strings.TrimSpace(o.value))
	if err != nil || n < 1 || n > 255 {
		return fmt.Errorf("%q is not a priority from 1 to 255", o.value)
	}
	p.r.Priority = n
	return nil
}

func (p *ruleParser) reference(o option) error {
	v, err := unquote(o.value)
	if err != nil {
		return err
	}
	if typ, _, ok := strings.Cut(v, ","); !ok || strings.TrimSpace(typ) == "" {
		return fmt.Errorf("%q: want type,id", v)
	}
	p.r.References = append(p.r.References, v)
	return nil
}

func (p *ruleParser) metadata(o option) error {
	v, err := unquote(o.value)
	if err != nil {
		return err
	}
	for _, kv := range strings.Split(v, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			p.r.Metadata = append(p.r.Metadata, kv)
		}
	}
	return nil
}

func (p *ruleParser) sticky(o option) error {
	switch o.name {
	case "dns.query", "dns_query":
		p.buf = BufferDNSQuery
	case "tls.sni", "tls_sni":
		p.buf = BufferTLSSNI
	default:
		p.buf = BufferPayload
	}
	return nil
}

func (p *ruleParser) flow(o option) error {
	f := &p.r.Flow
	for _, w := range strings.Split(o.value, ",") {
		var b *bool
		switch w = strings.TrimSpace(w); w {
		case "to_server", "from_client":
			b = &f.ToServer
		case "to_client", "from_server":
			b = &f.ToClient
		case "established":
			b = &f.Established
		case "not_established":
			b = &f.NotEstablished
		case "stateless":
			b = &f.Stateless
		case "only_stream":
			b = &f.OnlyStream
		case "no_stream":
			b = &f.NoStream
		case "only_frag", "no_frag":
			return &SkipError{Keyword: "flow:" + w}
		default:
			return fmt.Errorf("unknown flow option %q", w)
		}
		if *b {
			return fmt.Errorf("%q given twice", w)
		}
		*b = true
	}
	switch {
	case f.ToServer && f.ToClient:
		return errors.New("to_server and to_client together")
	case f.Established && (f.NotEstablished || f.Stateless), f.NotEstablished && f.Stateless:
		return errors.New("conflicting established, not_established and stateless")
	case f.OnlyStream && f.NoStream:
		return errors.New("only_stream and no_stream together")
	}
	return nil
}

// tcpFlagBit maps a flags letter to its TCP flag bit (0 for none); 1 and 2 are
// the old names of CWR and ECE.
func tcpFlagBit(c byte) uint8 {
	switch c {
	case 'F', 'f':
		return 0x01
	case 'S', 's':
		return 0x02
	case 'R', 'r':
		return 0x04
	case 'P', 'p':
		return 0x08
	case 'A', 'a':
		return 0x10
	case 'U', 'u':
		return 0x20
	case 'E', 'e', '2':
		return 0x40
	case 'C', 'c', '1':
		return 0x80
	}
	return 0
}

func (p *ruleParser) flags(o option) error {
	f := Flags{Set: true}
	spec, mask, hasMask := strings.Cut(strings.TrimSpace(o.value), ",")
	spec = strings.TrimSpace(spec)
	modSeen := false
	for i := 0; i < len(spec); i++ {
		c := spec[i]
		switch c {
		case '+', '*', '!':
			if modSeen {
				return fmt.Errorf("%q: more than one modifier", o.value)
			}
			modSeen = true
			f.Mode = FlagsNot
			if c == '+' {
				f.Mode = FlagsAll
			} else if c == '*' {
				f.Mode = FlagsAny
			}
		case '0':
			if len(strings.Trim(spec, "+*!")) != 1 {
				return fmt.Errorf("%q: 0 (no flags) with other flags", o.value)
			}
		default:
			b := tcpFlagBit(c)
			if b == 0 {
				return fmt.Errorf("%q: unknown flag %q", o.value, c)
			}
			if f.Bits&b != 0 {
				return fmt.Errorf("%q: flag %q given twice", o.value, c)
			}
			f.Bits |= b
		}
	}
	if f.Bits == 0 && !strings.Contains(spec, "0") {
		return fmt.Errorf("%q: no flags", o.value)
	}
	if f.Bits == 0 && f.Mode != FlagsExact {
		return fmt.Errorf("%q: modifier with 0", o.value)
	}
	if hasMask {
		mask = strings.TrimSpace(mask)
		if mask == "" {
			return fmt.Errorf("%q: empty mask", o.value)
		}
		for i := 0; i < len(mask); i++ {
			b := tcpFlagBit(mask[i])
			if b == 0 {
				return fmt.Errorf("%q: unknown flag %q in mask", o.value, mask[i])
			}
			f.Ignore |= b
		}
	}
	p.r.Flags = f
	return nil
}

// ipProtoNames are the names ip_proto accepts (as /etc/protocols spells them).
var ipProtoNames = map[string]int{
	"hopopt": 0, "icmp": 1, "igmp": 2, "ggp": 3, "ipencap": 4, "ipip": 4, "st": 5, "tcp": 6,
	"egp": 8, "igp": 9, "pup": 12, "udp": 17, "hmp": 20, "xns-idp": 22, "rdp": 27,
	"iso-tp4": 29, "dccp": 33, "xtp": 36, "ddp": 37, "idpr-cmtp": 38, "ipv6": 41,
	"ipv6-route": 43, "ipv6-frag": 44, "idrp": 45, "rsvp": 46, "gre": 47, "esp": 50,
	"ah": 51, "skip": 57, "ipv6-icmp": 58, "icmpv6": 58, "ipv6-nonxt": 59, "ipv6-opts": 60,
	"rspf": 73, "vmtp": 81, "eigrp": 88, "ospf": 89, "ax.25": 93, "ipip6": 94, "etherip": 97,
	"encap": 98, "pim": 103, "ipcomp": 108, "vrrp": 112, "l2tp": 115, "isis": 124,
	"sctp": 132, "fc": 133, "mobility-header": 135, "udplite": 136, "mpls-in-ip": 137,
	"manet": 138, "hip": 139, "shim6": 140, "wesp": 141, "rohc": 142,
}

func (p *ruleParser) intCmp(o option) error {
	limit, dst := 255, &p.r.TTL
	switch o.name {
	case "dsize":
		limit, dst = 65535, &p.r.Dsize
	case "itype":
		dst = &p.r.Itype
	case "icode":
		dst = &p.r.Icode
	case "ip_proto":
		dst = &p.r.IPProto
	}
	c, err := parseIntCmp(o.value, limit, o.name == "ip_proto")
	if err != nil {
		return err
	}
	if o.name == "ip_proto" && (c.Op == IntRange || c.Op == IntLe || c.Op == IntGe) {
		return fmt.Errorf("%q: ip_proto takes N, !N, <N or >N", o.value)
	}
	*dst = c
	return nil
}

// parseIntCmp parses N, !N, <N, >N, <=N, >=N and A<>B (A < x < B).
func parseIntCmp(v string, limit int, names bool) (IntCmp, error) {
	s := strings.TrimSpace(v)
	num := func(t string) (int, error) {
		t = strings.TrimSpace(t)
		if names {
			if n, ok := ipProtoNames[strings.ToLower(t)]; ok {
				return n, nil
			}
		}
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > limit || t == "" || t[0] == '+' {
			return 0, fmt.Errorf("%q: want a number from 0 to %d", v, limit)
		}
		return n, nil
	}
	c := IntCmp{Set: true}
	var err error
	switch {
	case strings.Contains(s, "<>"):
		a, b, _ := strings.Cut(s, "<>")
		if c.A, err = num(a); err != nil {
			return c, err
		}
		if c.B, err = num(b); err != nil {
			return c, err
		}
		if c.A+1 >= c.B {
			return c, fmt.Errorf("%q: empty range (matches A < x < B)", v)
		}
		c.Op = IntRange
		return c, nil
	case strings.HasPrefix(s, "<="):
		c.Op, s = IntLe, s[2:]
	case strings.HasPrefix(s, ">="):
		c.Op, s = IntGe, s[2:]
	case strings.HasPrefix(s, "<"):
		c.Op, s = IntLt, s[1:]
	case strings.HasPrefix(s, ">"):
		c.Op, s = IntGt, s[1:]
	case strings.HasPrefix(s, "!"):
		c.Op, s = IntNe, s[1:]
	case strings.HasPrefix(s, "="):
		s = s[1:]
	}
	if c.A, err = num(s); err != nil {
		return c, err
	}
	if c.Op == IntLt && c.A == 0 || c.Op == IntGt && c.A == limit {
		return c, fmt.Errorf("%q matches nothing", v)
	}
	return c, nil
}

func validFlowbitName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == ',' || c == ';' || c == '|' || c == '&' || c == '"' || c >= 0x7f {
			return false
		}
	}
	return true
}

func (p *ruleParser) flowbits(o option) error {
	cmd, names, hasNames := strings.Cut(o.value, ",")
	var fb Flowbit
	switch cmd = strings.TrimSpace(cmd); cmd {
	case "set":
		fb.Op = FlowbitSet
	case "isset":
		fb.Op = FlowbitIsSet
	case "isnotset":
		fb.Op = FlowbitIsNotSet
	case "unset":
		fb.Op = FlowbitUnset
	case "toggle":
		fb.Op = FlowbitToggle
	case "noalert":
		if hasNames {
			return errors.New("noalert takes no name")
		}
		p.r.NoAlert = true
		p.r.Flowbits = append(p.r.Flowbits, Flowbit{Op: FlowbitNoAlert})
		return nil
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	names = strings.TrimSpace(names)
	if !hasNames || names == "" {
		return fmt.Errorf("%s needs a name", cmd)
	}
	if strings.Contains(names, "&") {
		// Suricata splits lists at | only: "a&b" is one bit of that name.
		return &SkipError{Keyword: o.name, Reason: "& in a flowbit name"}
	}
	or, and := strings.Contains(names, "|"), false
	if or && and {
		return fmt.Errorf("%q: mixes | and &", names)
	}
	if (or || and) && fb.Op != FlowbitIsSet && fb.Op != FlowbitIsNotSet {
		return fmt.Errorf("%q: only isset and isnotset take a list", names)
	}
	sep := "&"
	if or {
		sep, fb.Any = "|", true
	}
	for _, n := range strings.Split(names, sep) {
		n = strings.TrimSpace(n)
		if !validFlowbitName(n) {
			return fmt.Errorf("invalid flowbit name %q", n)
		}
		fb.Names = append(fb.Names, n)
	}
	p.r.Flowbits = append(p.r.Flowbits, fb)
	return nil
}

func (p *ruleParser) threshold(o option) error {
	filter := o.name == "detection_filter"
	t := Threshold{Set: true, Type: ThresholdThreshold}
	var have [4]bool // type, track, count, seconds
	for _, part := range strings.Split(o.value, ",") {
		key, val, _ := strings.Cut(strings.TrimSpace(part), " ")
		val = strings.TrimSpace(val)
		switch key {
		case "type":
			if filter {
				return errors.New("detection_filter takes no type")
			}
			switch val {
			case "limit":
				t.Type = ThresholdLimit
			case "threshold":
				t.Type = ThresholdThreshold
			case "both":
				t.Type = ThresholdBoth
			case "backoff":
				return &SkipError{Keyword: o.name, Reason: "type backoff is not supported"}
			default:
				return fmt.Errorf("unknown type %q", val)
			}
			if have[0] {
				return errors.New("type given twice")
			}
			have[0] = true
		case "track":
			switch val {
			case "by_src":
				t.Track = TrackBySrc
			case "by_dst":
				t.Track = TrackByDst
			case "by_rule", "by_both", "by_flow":
				return &SkipError{Keyword: o.name, Reason: "track " + val + " is not supported"}
			default:
				return fmt.Errorf("unknown track %q", val)
			}
			if have[1] {
				return errors.New("track given twice")
			}
			have[1] = true
		case "count", "seconds":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > 1<<30 {
				return fmt.Errorf("%s %q: want a number", key, val)
			}
			i := 2
			if key == "count" {
				t.Count = n
			} else {
				t.Seconds, i = n, 3
			}
			if have[i] {
				return fmt.Errorf("%s given twice", key)
			}
			have[i] = true
		case "multiplier":
			return &SkipError{Keyword: o.name, Reason: "multiplier (type backoff) is not supported"}
		case "unique_on":
			return &SkipError{Keyword: o.name, Reason: "unique_on is not supported"}
		default:
			return fmt.Errorf("unknown setting %q", part)
		}
	}
	switch {
	case !filter && !have[0]:
		return errors.New("missing type")
	case !have[1]:
		return errors.New("missing track")
	case !have[2]:
		return errors.New("missing count")
	case !have[3]:
		return errors.New("missing seconds")
	case t.Count == 0:
		return errors.New("count must be at least 1")
	case t.Seconds == 0:
		return errors.New("seconds must be at least 1")
	}
	if filter {
		p.r.DetectionFilter = t
	} else {
		p.r.Threshold = t
	}
	return nil
}
