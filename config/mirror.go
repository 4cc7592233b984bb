package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"weir/internal/echo"

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
	// AllowedSources are the addresses VXLAN may come from (the mirrored ENIs'
	// subnets); empty allows every source. They apply to the VXLAN datagram's own
	// source: on the mirror listener the sender, inside GENEVE from a mirror GWLB
	// endpoint the mirrored ENI (the GWLB itself is gwlb.allowed_sources' business).
	AllowedSources []netip.Prefix
	Sessions       []SessionConfig
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
					p.fail(item, "mirror.gwlb_endpoints: %s is not a GWLB endpoint id like vpce-0123456789abcdef0", echo.Quote(str))
					return
				}
				m.GWLBEndpoints = append(m.GWLBEndpoints, id)
			}
		},
		"allowed_sources": func(n *yaml.Node) {
			m.AllowedSources = nil
			for _, item := range p.seq(n, "mirror.allowed_sources") {
				if pr, ok := p.prefix(item, "mirror.allowed_sources"); ok {
					m.AllowedSources = append(m.AllowedSources, pr)
				}
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
					p.fail(item, "mirror.amazon_dns: %s is not an IP address", echo.Quote(s))
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
					p.fail(item, "%s: session name %s is already used at line %d", where, echo.Quote(s.Name), l)
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
				p.fail(v, "%s.eni_mac: %s is not a MAC address like 0a:1b:2c:3d:4e:5f", where, echo.Quote(str))
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
				p.fail(v, "%s.eni_ip: %s is not an IP address", where, echo.Quote(str))
				return
			}
			s.ENIIP = a
		},
		"interface_id": func(v *yaml.Node) { s.InterfaceID = p.interfaceID(v, where+".interface_id") },
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
// describe-traffic-mirror-filters` prints (relative to the config file, at most
// MaxFilterFileSize bytes), or the same fields inline.
func (p *parser) filter(n, idNode *yaml.Node, where string) *mirror.Filter {
	id := ""
	if idNode != nil {
		id = p.str(idNode, where+".filter_id")
	}
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" && n.Value != "" {
		// Longer than Linux's PATH_MAX: not a file name, and not to be repeated in
		// every error about the file's rules.
		if len(n.Value) > 4096 {
			p.fail(n, "%s.filter: %s is too long for a file name", where, echo.Quote(n.Value))
			return nil
		}
		path := n.Value
		if !filepath.IsAbs(path) {
			path = filepath.Join(p.dir(), path)
		}
		data, err := ReadFile(path, MaxFilterFileSize)
		if err == nil {
			var f *mirror.Filter
			if f, err = mirror.ParseFilter(path, data, id); err == nil {
				return f
			}
		}
		p.fail(n, "%s.filter: %v", where, err)
		return nil
	}
	m := n
	if m.Kind == yaml.AliasNode && m.Alias != nil {
		m = m.Alias // a filter shared between sessions with an anchor
	}
	if m.Kind != yaml.MappingNode {
		p.fail(n, "%s.filter: expected the path of a filter file or a filter mapping", where)
		return nil
	}
	f, err := mirror.FilterFromNode(p.file, n, id)
	if err != nil {
		// Report the first problem at its line of this file, and the others after
		// it, each with its own line.
		line := n.Line
		var re *mirror.RuleError
		if errors.As(err, &re) && re.Line > 0 {
			line = re.Line
		}
		msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("%s:%d: ", p.file, line))
		p.fail(&yaml.Node{Line: line}, "%s.filter: %s", where, msg)
		return nil
	}
	return f
}
