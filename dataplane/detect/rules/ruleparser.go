package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// option is one rule option as written: name lowercased, value with its quotes.
type option struct {
	name, value string
	hasValue    bool
}

// ruleParser parses rules one at a time, reusing its scratch space.
type ruleParser struct {
	res  *resolver
	opts []option

	r    *Rule
	sid  uint32   // the rule's sid, found before anything else, for messages
	buf  Buffer   // the sticky buffer content and pcre apply to
	last int      // index in r.Matches of the last content, -1 if none
	seen []string // single-use options given so far
}

func newRuleParser(res *resolver) *ruleParser { return &ruleParser{res: res} }

// appProtos are protocols Suricata knows and weir does not: rules naming them are
// skipped. Any other unknown protocol is a syntax error.
var appProtos = map[string]bool{
	"http": true, "http1": true, "http2": true, "ftp": true, "ftp-data": true, "smb": true,
	"dcerpc": true, "ssh": true, "smtp": true, "imap": true, "pop3": true, "nfs": true,
	"ntp": true, "tftp": true, "ike": true, "ikev2": true, "krb5": true, "dhcp": true,
	"snmp": true, "sip": true, "rfb": true, "mqtt": true, "rdp": true, "modbus": true,
	"dnp3": true, "enip": true, "pgsql": true, "telnet": true, "websocket": true,
	"ldap": true, "doh2": true, "quic": true, "bittorrent-dht": true, "sctp": true,
	"pkthdr": true, "template": true, "ssl": true, "irc": true, "ipv4": true, "ipv6": true,
	"ip4": true, "ip6": true, "mdns": true, "pop": true, "nntp": true, "jabber": true,
}

func (p *ruleParser) parse(text string) (*Rule, error) {
	p.sid, p.buf, p.last, p.seen = 0, BufferPayload, -1, p.seen[:0]
	if len(text) > MaxRuleLen {
		return nil, fmt.Errorf("rule is longer than %d bytes", MaxRuleLen)
	}
	text = strings.TrimSpace(text)
	open := strings.IndexByte(text, '(')
	if open < 0 {
		return nil, errors.New("rule has no options: missing (")
	}
	close := strings.LastIndexByte(text, ')')
	if close < open {
		return nil, errors.New("rule options do not end in )")
	}
	if rest := strings.TrimSpace(text[close+1:]); rest != "" {
		return nil, fmt.Errorf("text after the rule's closing ): %q", rest)
	}
	var err error
	p.opts, err = splitOptions(text[open+1:close], p.opts[:0])
	if err != nil {
		return nil, err
	}
	for _, o := range p.opts {
		if o.name == "sid" {
			if n, err := strconv.ParseUint(strings.TrimSpace(o.value), 10, 32); err == nil {
				p.sid = uint32(n)
			}
			break
		}
	}
	r := &Rule{Raw: text, GID: 1}
	p.r = r
	if err := p.header(text[:open]); err != nil {
		return nil, err
	}
	for _, o := range p.opts {
		kw, ok := keywords[o.name]
		if !ok {
			return nil, &SkipError{Keyword: o.name}
		}
		if kw.once {
			for _, s := range p.seen {
				if s == kw.name {
					return nil, fmt.Errorf("%s given twice", o.name)
				}
			}
			p.seen = append(p.seen, kw.name)
		}
		if kw.needsValue && !o.hasValue {
			return nil, fmt.Errorf("%s needs a value", o.name)
		}
		if !kw.needsValue && kw.noValue && o.hasValue {
			return nil, fmt.Errorf("%s takes no value", o.name)
		}
		if err := kw.parse(p, o); err != nil {
			var skip *SkipError
			if errors.As(err, &skip) {
				return nil, err
			}
			return nil, fmt.Errorf("%s: %w", o.name, err)
		}
	}
	return r, p.finish()
}

func (p *ruleParser) header(h string) error {
	fields, err := headerFields(h)
	if err != nil {
		return err
	}
	if len(fields) != 7 {
		return fmt.Errorf("rule header %q: want action proto src sport dir dst dport, got %d fields", strings.TrimSpace(h), len(fields))
	}
	r := p.r
	switch a := strings.ToLower(fields[0]); a {
	case "alert":
		r.Action = ActionAlert
	case "drop":
		r.Action = ActionDrop
	case "reject", "rejectsrc", "rejectdst", "rejectboth":
		r.Action = ActionReject
	case "pass":
		r.Action = ActionPass
	case "config":
		return &SkipError{Keyword: "config", Reason: "config rules are not supported"}
	default:
		return fmt.Errorf("unknown action %q", fields[0])
	}
	switch proto := strings.ToLower(fields[1]); proto {
	case "ip":
		r.Proto = ProtoIP
	case "tcp", "tcp-pkt", "tcp-stream":
		if proto != "tcp" {
			return &SkipError{Keyword: proto, Reason: "protocol " + proto + " is not supported"}
		}
		r.Proto = ProtoTCP
	case "udp":
		r.Proto = ProtoUDP
	case "icmp", "icmpv4", "icmpv6":
		r.Proto = ProtoICMP
	case "dns":
		r.Proto = ProtoDNS
	case "tls":
		r.Proto = ProtoTLS
	default:
		if appProtos[proto] {
			return &SkipError{Keyword: proto, Reason: "protocol " + proto + " is not supported"}
		}
		return fmt.Errorf("unknown protocol %q", fields[1])
	}
	switch fields[4] {
	case "->":
	case "<>":
		r.Bidirectional = true
	case "=>":
		return &SkipError{Keyword: "=>", Reason: "transactional rules (=>) are not supported"}
	default:
		return fmt.Errorf("invalid direction %q: want -> or <>", fields[4])
	}
	if r.Src, err = p.res.addrSet(fields[2]); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if r.SrcPorts, err = p.res.portSet(fields[3]); err != nil {
		return fmt.Errorf("source port: %w", err)
	}
	if r.Dst, err = p.res.addrSet(fields[5]); err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	if r.DstPorts, err = p.res.portSet(fields[6]); err != nil {
		return fmt.Errorf("destination port: %w", err)
	}
	return nil
}

// headerFields splits a header at white space outside brackets, so lists may
// contain spaces.
func headerFields(h string) ([]string, error) {
	var fields []string
	depth, start := 0, -1
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '[':
			depth++
		case c == ']':
			depth--
			if depth < 0 {
				return nil, errors.New("rule header: unbalanced ]")
			}
		case (c == ' ' || c == '\t') && depth == 0:
			if start >= 0 {
				fields = append(fields, h[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if depth != 0 {
		return nil, errors.New("rule header: unbalanced [")
	}
	if start >= 0 {
		fields = append(fields, h[start:])
	}
	return fields, nil
}

// splitOptions splits "name:value; name; ..." at semicolons that are neither
// escaped nor inside quotes. Every option, the last too, must end in ;.
func splitOptions(body string, opts []option) ([]option, error) {
	i := 0
	for {
		for i < len(body) && isSpace(body[i]) {
			i++
		}
		if i == len(body) {
			return opts, nil
		}
		start := i
		for i < len(body) && body[i] != ':' && body[i] != ';' {
			i++
		}
		name := strings.ToLower(strings.TrimSpace(body[start:i]))
		if name == "" {
			return nil, fmt.Errorf("empty option at %q", clip(body[start:]))
		}
		if strings.ContainsAny(name, " \t\"()") {
			return nil, fmt.Errorf("invalid option name %q", clip(name))
		}
		if i == len(body) {
			return nil, fmt.Errorf("option %q does not end in ;", name)
		}
		if body[i] == ';' {
			opts = append(opts, option{name: name})
			i++
			continue
		}
		i++ // ':'
		vstart := i
		inQuote := false
		for ; i < len(body); i++ {
			c := body[i]
			if c == '\\' {
				i++
				continue
			}
			if c == '"' {
				inQuote = !inQuote
			}
			if c == ';' && !inQuote {
				break
			}
		}
		if i >= len(body) {
			if inQuote {
				return nil, fmt.Errorf("option %q: unterminated quoted value", name)
			}
			return nil, fmt.Errorf("option %q does not end in ;", name)
		}
		opts = append(opts, option{name: name, value: strings.TrimSpace(body[vstart:i]), hasValue: true})
		i++
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// unquote strips a value's quotes, if any, and its escapes: \" \; \\ \: stand for
// the character; any other backslash is kept.
func unquote(v string) (string, error) {
	if strings.HasPrefix(v, `"`) {
		if !endsInQuote(v) {
			return "", fmt.Errorf("unterminated quoted value %s", clip(v))
		}
		v = v[1 : len(v)-1]
	}
	if !strings.Contains(v, `\`) {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && strings.IndexByte(`";\:`, v[i+1]) >= 0 {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String(), nil
}

// endsInQuote reports whether v, which starts with a quote, ends in another
// quote that no backslash escapes.
func endsInQuote(v string) bool {
	if len(v) < 2 || v[len(v)-1] != '"' {
		return false
	}
	n := 0
	for i := len(v) - 2; i >= 1 && v[i] == '\\'; i-- {
		n++
	}
	return n%2 == 0
}

// finish checks what needs the whole rule.
func (p *ruleParser) finish() error {
	r := p.r
	if r.SID == 0 {
		return errors.New("rule has no sid")
	}
	if r.Priority == 0 {
		r.Priority = 3
	}
	for _, m := range r.Matches {
		switch m.Buffer {
		case BufferDNSQuery:
			if r.Proto != ProtoDNS && r.Proto != ProtoUDP && r.Proto != ProtoTCP && r.Proto != ProtoIP {
				return fmt.Errorf("dns.query in a %s rule", r.Proto)
			}
		case BufferTLSSNI:
			if r.Proto != ProtoTLS && r.Proto != ProtoTCP && r.Proto != ProtoIP {
				return fmt.Errorf("tls.sni in a %s rule", r.Proto)
			}
		}
	}
	return nil
}
