package config

import (
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"weir/internal/echo"
)

// DetectConfig is the detect section: Suricata rules, threat intel and the
// detectors that need no rules.
type DetectConfig struct {
	// Rules are rule files, globs allowed; relative ones are read from the
	// configuration file's folder. RuleLines are the lines they were given on.
	Rules     []string
	RuleLines []int
	// File is the configuration file the section was read from, for errors about
	// the files it names (FILE:LINE of the key).
	File string
	// Vars override or add Suricata address and port groups (HOME_NET, HTTP_PORTS, ...).
	Vars     map[string]string
	VarLines map[string]int // the line of each of Vars
	Mode     string         // ids | ips
	// StreamDepth is how many bytes of each direction of a TCP stream are inspected
	// in stream order (Suricata's stream.reassembly.depth).
	StreamDepth int64
	// AlertPacket writes the packet (base64) in each alert.
	AlertPacket bool
	Intel       []IntelList
	PortScan    struct {
		Ports, Hosts   int // distinct destination ports / hosts from one source in Window; 0 = off
		Window, Repeat time.Duration
	}
	SYNFlood struct {
		HalfOpen       int // half-open connections to one destination in Window; 0 = off
		Window, Repeat time.Duration
	}
}

// IntelList is one threat-intel file.
type IntelList struct {
	Path     string
	Type     string // ip | domain
	Category string
	Block    bool // action: drop (inline, ips mode)
	Line     int
}

// Enabled reports whether the section asks for any detection.
func (d *DetectConfig) Enabled() bool {
	return len(d.Rules) != 0 || len(d.Intel) != 0 || d.PortScan.Ports != 0 || d.PortScan.Hosts != 0 || d.SYNFlood.HalfOpen != 0
}

func defaultDetect(d *DetectConfig) {
	d.Mode = "ids"
	d.StreamDepth = 1 << 20
	d.PortScan.Window, d.PortScan.Repeat = time.Minute, 5*time.Minute
	d.SYNFlood.Window, d.SYNFlood.Repeat = 10*time.Second, time.Minute
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (p *parser) detect(n *yaml.Node, c *Config) {
	d := &c.Detect
	d.File = p.file
	rel := func(path string) string {
		if path != "" && !filepath.IsAbs(path) {
			return filepath.Join(p.dir(), path)
		}
		return path
	}
	p.mapping(n, "detect", map[string]func(*yaml.Node){
		"rules": func(n *yaml.Node) {
			d.Rules, d.RuleLines = nil, nil
			items := []*yaml.Node{n} // one path or glob, or a list of them
			if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
				items = p.seq(n, "detect.rules")
			}
			for _, item := range items {
				s := p.str(item, "detect.rules")
				if s == "" {
					p.fail(item, "detect.rules: an empty path")
					continue
				}
				if _, err := filepath.Match(s, ""); err != nil {
					p.fail(item, "detect.rules: %s: %v", echo.Quote(s), err)
					continue
				}
				d.Rules = append(d.Rules, rel(s))
				d.RuleLines = append(d.RuleLines, item.Line)
			}
		},
		"vars": func(n *yaml.Node) {
			if n.Kind != yaml.MappingNode {
				p.fail(n, "detect.vars: expected a mapping of group names to values")
				return
			}
			d.Vars, d.VarLines = map[string]string{}, map[string]int{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if !varName.MatchString(k.Value) {
					p.fail(k, "detect.vars: %s is not a variable name (letters, digits, _)", echo.Quote(k.Value))
					continue
				}
				if _, dup := d.Vars[k.Value]; dup {
					p.fail(k, "detect.vars.%s: duplicate key", k.Value)
					continue
				}
				s, ok := p.scalar(v, "detect.vars."+k.Value)
				if ok && s == "" {
					p.fail(v, "detect.vars.%s: empty", k.Value)
				}
				d.Vars[k.Value] = s
				d.VarLines[k.Value] = k.Line
			}
		},
		"mode":         func(n *yaml.Node) { d.Mode = p.oneOf(n, "detect.mode", "ids", "ips") },
		"stream_depth": func(n *yaml.Node) { d.StreamDepth = p.size(n, "detect.stream_depth", 0) },
		"alert_packet": func(n *yaml.Node) { d.AlertPacket = p.boolean(n, "detect.alert_packet") },
		"intel": func(n *yaml.Node) {
			d.Intel = nil
			for i, item := range p.seq(n, "detect.intel") {
				where := "detect.intel[" + strconv.Itoa(i) + "]"
				l := IntelList{Line: item.Line, Type: ""}
				action := "alert"
				p.mapping(item, where, map[string]func(*yaml.Node){
					"path":     func(n *yaml.Node) { l.Path = rel(p.str(n, where+".path")) },
					"type":     func(n *yaml.Node) { l.Type = p.oneOf(n, where+".type", "ip", "domain") },
					"category": func(n *yaml.Node) { l.Category = p.str(n, where+".category") },
					"action":   func(n *yaml.Node) { action = p.oneOf(n, where+".action", "alert", "drop") },
				})
				switch {
				case l.Path == "":
					p.fail(item, "%s: path is required", where)
				case l.Type == "":
					p.fail(item, "%s: type is required (ip or domain)", where)
				}
				if l.Category == "" {
					l.Category = "Threat intel"
				}
				l.Block = action == "drop"
				d.Intel = append(d.Intel, l)
			}
		},
		"portscan": func(n *yaml.Node) {
			ps := &d.PortScan
			p.mapping(n, "detect.portscan", map[string]func(*yaml.Node){
				"ports":  func(n *yaml.Node) { ps.Ports = p.intRange(n, "detect.portscan.ports", 0, 1000) },
				"hosts":  func(n *yaml.Node) { ps.Hosts = p.intRange(n, "detect.portscan.hosts", 0, 1000) },
				"window": func(n *yaml.Node) { ps.Window = p.duration(n, "detect.portscan.window", time.Second, time.Hour) },
				"repeat": func(n *yaml.Node) { ps.Repeat = p.duration(n, "detect.portscan.repeat", time.Second, 24*time.Hour) },
			})
		},
		"synflood": func(n *yaml.Node) {
			sf := &d.SYNFlood
			p.mapping(n, "detect.synflood", map[string]func(*yaml.Node){
				"half_open": func(n *yaml.Node) { sf.HalfOpen = p.intRange(n, "detect.synflood.half_open", 0, 1<<30) },
				"window":    func(n *yaml.Node) { sf.Window = p.duration(n, "detect.synflood.window", time.Second, time.Hour) },
				"repeat":    func(n *yaml.Node) { sf.Repeat = p.duration(n, "detect.synflood.repeat", time.Second, 24*time.Hour) },
			})
		},
	})
}

func (p *parser) boolean(n *yaml.Node, where string) bool {
	switch s, _ := p.scalar(n, where); s {
	case "true":
		return true
	case "false":
		return false
	default:
		p.fail(n, "%s: %s is not true or false", where, echo.Quote(s))
	}
	return false
}
