package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"weir/dataplane/mirror"
)

// MirrorConfig is the Traffic Mirroring sink: where VXLAN arrives and the sessions.
type MirrorConfig struct {
	Listen       netip.AddrPort // zero when turned off with listen: ""
	DedupeWindow time.Duration  // 0 keeps the duplicates of packets mirrored at both ends
	AmazonDNS    []netip.Addr   // Amazon DNS server addresses (add your VPC's base+2)
	// GWLBEndpoints are the GWLB endpoints (vpce-…) that are mirror targets: VXLAN
	// inside GENEVE from them is mirror traffic.
	GWLBEndpoints []uint64
	Sessions      []SessionConfig
}

// SessionConfig is one mirror session, keyed by VNI (or the catch-all).
type SessionConfig struct {
	Name         string
	VNI          uint32
	CatchAll     bool
	PacketLength int            // bytes kept from the start of the inner frame; 0 = all
	Filter       *mirror.Filter // nil: mirror everything
	ENIMAC       net.HardwareAddr
	ENIIP        netip.Addr
	InterfaceID  string
	Line         int
}

func (p *parser) mirror(n *yaml.Node, c *Config) {
	m := &c.Mirror
	p.mapping(n, "mirror", map[string]func(*yaml.Node){
		"listen": func(n *yaml.Node) {
			if n.Kind == yaml.ScalarNode && n.Value == "" {
				m.Listen = netip.AddrPort{}
				return
			}
			m.Listen = p.addrPort(n, "mirror.listen", true)
		},
		"gwlb_endpoints": func(n *yaml.Node) {
			m.GWLBEndpoints = nil
			for _, item := range p.seq(n, "mirror.gwlb_endpoints") {
				str, ok := p.scalar(item, "mirror.gwlb_endpoints")
				if !ok {
					return
				}
				hex, found := strings.CutPrefix(str, "vpce-")
				id, err := strconv.ParseUint(hex, 16, 64)
				if !found || err != nil || len(hex) > 17 {
					p.fail(item, "mirror.gwlb_endpoints: %q is not a GWLB endpoint id like vpce-0123456789abcdef0", str)
					return
				}
				m.GWLBEndpoints = append(m.GWLBEndpoints, id)
			}
		},
		"dedupe_window": func(n *yaml.Node) { m.DedupeWindow = p.duration(n, "mirror.dedupe_window", 0, 10*time.Second) },
		"amazon_dns": func(n *yaml.Node) {
			m.AmazonDNS = nil
			for _, item := range p.seq(n, "mirror.amazon_dns") {
				s, ok := p.scalar(item, "mirror.amazon_dns")
				if !ok {
					return
				}
				a, err := netip.ParseAddr(s)
				if err != nil {
					p.fail(item, "mirror.amazon_dns: %q is not an IP address", s)
					return
				}
				m.AmazonDNS = append(m.AmazonDNS, a)
			}
		},
		"sessions": func(n *yaml.Node) {
			m.Sessions = nil
			names, vnis := map[string]int{}, map[uint32]int{}
			catchAll := 0
			for i, item := range p.seq(n, "mirror.sessions") {
				where := fmt.Sprintf("mirror.sessions[%d]", i)
				s := p.session(item, where)
				if p.err != nil {
					return
				}
				switch {
				case s.CatchAll && catchAll != 0:
					p.fail(item, "%s: a second catch-all session (the first is at line %d)", where, catchAll)
				case s.CatchAll:
					catchAll = item.Line
				case vnis[s.VNI] != 0:
					p.fail(item, "%s: VNI %d is already taken by the session at line %d", where, s.VNI, vnis[s.VNI])
				default:
					vnis[s.VNI] = item.Line
				}
				if l, dup := names[s.Name]; dup {
					p.fail(item, "%s: session name %q is already used at line %d", where, s.Name, l)
				}
				names[s.Name] = item.Line
				m.Sessions = append(m.Sessions, s)
			}
		},
	})
}

func (p *parser) session(n *yaml.Node, where string) SessionConfig {
	s := SessionConfig{Line: n.Line}
	hasVNI := false
	var filterNode, filterIDNode *yaml.Node
	p.mapping(n, where, map[string]func(*yaml.Node){
		"name": func(v *yaml.Node) { s.Name = p.str(v, where+".name") },
		"vni": func(v *yaml.Node) {
			s.VNI, hasVNI = uint32(p.intRange(v, where+".vni", 0, 1<<24-1)), true
		},
		"catch_all": func(v *yaml.Node) {
			s.CatchAll = p.oneOf(v, where+".catch_all", "true", "false") == "true"
		},
		"packet_length": func(v *yaml.Node) { s.PacketLength = p.intRange(v, where+".packet_length", 0, 65535) },
		"filter":        func(v *yaml.Node) { filterNode = v },
		"filter_id":     func(v *yaml.Node) { filterIDNode = v },
		"eni_mac": func(v *yaml.Node) {
			str, ok := p.scalar(v, where+".eni_mac")
			if !ok {
				return
			}
			mac, err := net.ParseMAC(str)
			if err != nil || len(mac) != 6 {
				p.fail(v, "%s.eni_mac: %q is not a MAC address like 0a:1b:2c:3d:4e:5f", where, str)
				return
			}
			s.ENIMAC = mac
		},
		"eni_ip": func(v *yaml.Node) {
			str, ok := p.scalar(v, where+".eni_ip")
			if !ok {
				return
			}
			a, err := netip.ParseAddr(str)
			if err != nil {
				p.fail(v, "%s.eni_ip: %q is not an IP address", where, str)
				return
			}
			s.ENIIP = a
		},
		"interface_id": func(v *yaml.Node) { s.InterfaceID = p.str(v, where+".interface_id") },
	})
	if p.err != nil {
		return s
	}
	switch {
	case hasVNI == s.CatchAll:
		p.fail(n, "%s: a session needs either a vni or catch_all: true", where)
		return s
	case s.Name == "" && s.CatchAll:
		s.Name = "catch-all"
	case s.Name == "":
		s.Name = fmt.Sprintf("vni-%d", s.VNI)
	}
	if filterNode != nil {
		s.Filter = p.filter(filterNode, filterIDNode, where)
	} else if filterIDNode != nil {
		p.fail(filterIDNode, "%s.filter_id: given without a filter", where)
	}
	return s
}

// filter reads a session's filter: a path to the JSON that `aws ec2
// describe-traffic-mirror-filters` prints (relative to the config file), or the same
// fields inline.
func (p *parser) filter(n, idNode *yaml.Node, where string) *mirror.Filter {
	id := ""
	if idNode != nil {
		id = p.str(idNode, where+".filter_id")
	}
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" && n.Value != "" {
		path := n.Value
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(p.file), path)
		}
		f, err := mirror.LoadFilter(path, id)
		if err != nil {
			p.fail(n, "%s.filter: %v", where, err)
			return nil
		}
		return f
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, "%s.filter: expected the path of a filter file or a filter mapping", where)
		return nil
	}
	data, bad, msg := filterJSON(n)
	if bad != nil {
		p.fail(bad, "%s.filter: %s", where, msg)
		return nil
	}
	f, err := mirror.ParseFilterJSON(p.file, data, id)
	if err != nil {
		// Errors name this file and, for a rule, its line (data keeps the lines).
		line, first := n.Line, err
		if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
			first = j.Unwrap()[0]
		}
		var re *mirror.RuleError
		if errors.As(first, &re) {
			if rest, ok := strings.CutPrefix(re.Where, p.file+":"); ok {
				num, _, _ := strings.Cut(rest, ":")
				if l, e := strconv.Atoi(num); e == nil && l > 0 {
					line = l
				}
			}
		}
		msg := err.Error()
		if rest, ok := strings.CutPrefix(msg, fmt.Sprintf("%s:%d: ", p.file, line)); ok {
			msg = rest
		} else {
			msg = strings.TrimPrefix(msg, p.file+": ")
		}
		p.fail(&yaml.Node{Line: line}, "%s.filter: %s", where, msg)
		return nil
	}
	return f
}

// maxFilterJSON bounds the JSON an inline filter expands to (aliases repeat nodes).
const maxFilterJSON = 16 << 20

// filterJSON turns an inline filter into the JSON mirror.ParseFilterJSON reads, with
// every value on the line it has in the config file, so that the lines the filter
// parser reports are the config file's. It returns the node at fault and a message
// when n cannot be written as JSON.
func filterJSON(n *yaml.Node) (data []byte, bad *yaml.Node, msg string) {
	e := &jsonLines{line: 1}
	e.value(n)
	return e.buf, e.bad, e.msg
}

type jsonLines struct {
	buf  []byte
	line int // the line the end of buf is on
	bad  *yaml.Node
	msg  string
}

func (e *jsonLines) fail(n *yaml.Node, format string, args ...any) {
	if e.bad == nil {
		e.bad, e.msg = n, fmt.Sprintf(format, args...)
	}
}

// to starts a new line until buf ends on line (never going back).
func (e *jsonLines) to(line int) {
	for ; e.line < line; e.line++ {
		e.buf = append(e.buf, '\n')
	}
}

func (e *jsonLines) value(n *yaml.Node) {
	if e.bad != nil {
		return
	}
	if len(e.buf) > maxFilterJSON {
		e.fail(n, "too large")
		return
	}
	e.to(n.Line)
	switch n.Kind {
	case yaml.AliasNode:
		e.value(n.Alias)
	case yaml.MappingNode:
		e.buf = append(e.buf, '{')
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content) && e.bad == nil; i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch {
			case k.Kind != yaml.ScalarNode:
				e.fail(k, "a key must be a single value")
				return
			case k.ShortTag() == "!!merge":
				e.fail(k, "merge keys (<<) are not supported in a filter")
				return
			case seen[k.Value]:
				e.fail(k, "duplicate key %q", k.Value)
				return
			}
			seen[k.Value] = true
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.to(k.Line)
			e.buf, _ = appendJSON(e.buf, k.Value)
			e.buf = append(e.buf, ':')
			e.value(v)
		}
		e.buf = append(e.buf, '}')
	case yaml.SequenceNode:
		e.buf = append(e.buf, '[')
		for i, item := range n.Content {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.value(item)
		}
		e.buf = append(e.buf, ']')
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			e.fail(n, "%v", err)
			return
		}
		var err error
		if e.buf, err = appendJSON(e.buf, v); err != nil {
			e.fail(n, "%q cannot be written as JSON: %v", n.Value, err)
		}
	default:
		e.fail(n, "unexpected YAML node")
	}
}

func appendJSON(buf []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return buf, err
	}
	return append(buf, b...), nil
}
