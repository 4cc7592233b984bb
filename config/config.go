// Package config is weir's configuration model and its YAML loader: every key, its
// default and its bounds, with errors reported as FILE:LINE: message. It imports no
// backend and starts nothing; cmd/weir wires what it describes.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"weir/dataplane/flow"
	"weir/internal/echo"

	"gopkg.in/yaml.v3"

	"weir/dataplane/policy"
)

// Config is weir's configuration file. Keys and defaults are documented in README.md;
// gwlb.listen, health.listen, metrics.listen and outputs.eve are fixed by the design.
type Config struct {
	GWLB struct {
		Listen         netip.AddrPort
		AllowedSources []netip.Prefix
		Reply          string // auto | raw | udp
	}
	Dataplane struct {
		Workers    int
		Batch      int
		RecvBuffer int64 // receive buffer per socket
		// Backend is auto, afxdp or socket: auto runs afxdp where the kernel,
		// the privileges, the driver and the MTU allow it, else socket.
		Backend   string
		Interface string // afxdp: the interface tunnels arrive on; "" = found from gwlb.listen or the default route
		Queues    int    // afxdp: RX queues to bind, from queue 0; 0 = all
		ZeroCopy  string // afxdp: auto | on | off
		// FastPath lets the AF_XDP backend answer established GWLB flows in
		// its XDP program once the pipeline has seen their first packets
		// (default true); it stays off while detection is on.
		FastPath bool
	}
	Health struct {
		Listen       string
		DrainDelay   time.Duration
		StallTimeout time.Duration // a worker silent this long fails health; 0 = never
	}
	Metrics struct {
		Listen string
	}
	Flows struct {
		Max           int
		TCPTimeout    time.Duration
		OtherTimeout  time.Duration
		ClosedTimeout time.Duration
		Midstream     string // allow | drop: a TCP packet without SYN that matches no flow
	}
	Policy  policy.Policy
	Mirror  MirrorConfig
	Outputs struct {
		EVE      string
		EVEQueue int // records waiting for the disk
		PCAP     struct {
			Dir          string
			MaxFileSize  int64
			MaxFileAge   time.Duration
			MaxTotalSize int64
			Queue        int
			// ReorderWindow holds records this long so that those several workers
			// queue out of order leave in timestamp order; 0 writes them as queued.
			ReorderWindow time.Duration
		}
		FlowLog struct {
			Path      string
			Interval  time.Duration
			AccountID string
		}
	}
	Log struct {
		Level  string
		Format string
		File   string // weir's own log; "" = stderr
	}
	Cluster ClusterConfig
	Detect  DetectConfig
	AWS     AWSConfig

	file    string            // the file it was read from, for KeyError
	sources map[string]source // where the output paths were read
}

// Default is the configuration of an empty file.
func Default() *Config {
	c := &Config{}
	c.GWLB.Listen = netip.MustParseAddrPort("0.0.0.0:6081")
	c.GWLB.Reply = "auto"
	c.Dataplane.Batch = 64
	c.Dataplane.RecvBuffer = 4 << 20
	c.Dataplane.Backend = "auto"
	c.Dataplane.ZeroCopy = "auto"
	c.Dataplane.FastPath = true
	c.Health.Listen = "0.0.0.0:8080"
	c.Health.DrainDelay = 5 * time.Second
	c.Health.StallTimeout = 5 * time.Second
	c.Metrics.Listen = "0.0.0.0:9090"
	c.Flows.Max = 1 << 20
	c.Flows.TCPTimeout = 350 * time.Second
	c.Flows.OtherTimeout = 120 * time.Second
	c.Flows.ClosedTimeout = 5 * time.Second
	c.Flows.Midstream = "allow"
	c.Policy.Default = policy.Allow
	c.Mirror.Listen = netip.MustParseAddrPort("0.0.0.0:4789")
	c.Mirror.AmazonDNS = []netip.Addr{netip.MustParseAddr("169.254.169.253"), netip.MustParseAddr("fd00:ec2::253")}
	c.Outputs.PCAP.MaxFileSize = 100 << 20
	c.Outputs.PCAP.MaxFileAge = time.Hour
	c.Outputs.PCAP.MaxTotalSize = 1 << 30
	c.Outputs.PCAP.Queue = 8192
	c.Outputs.PCAP.ReorderWindow = 5 * time.Millisecond
	c.Outputs.EVEQueue = 65536
	c.Outputs.FlowLog.Interval = time.Minute
	c.Log.Level = "info"
	c.Log.Format = "auto"
	defaultDetect(&c.Detect)
	return c
}

// Error is a configuration problem at a line of a file.
type Error struct {
	File string
	Line int
	Msg  string
}

// Error returns "FILE:LINE: message", or "FILE: message" for a problem with the
// whole file (Line 0), such as its size.
func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Load reads and validates a configuration file of at most MaxConfigSize
// bytes.
func Load(path string) (*Config, error) {
	data, err := ReadFile(path, MaxConfigSize)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse validates data, naming file in errors. Unknown keys and bad values are
// errors with the line they are on.
func Parse(file string, data []byte) (*Config, error) {
	c := Default()
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil // empty file: all defaults
		}
		return nil, yamlError(file, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: file, Line: extra.Line, Msg: "a second YAML document: the configuration is one document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(file, data, err)
	}
	p := &parser{file: file}
	if len(doc.Content) == 0 {
		return c, nil
	}
	root := doc.Content[0]
	p.mapping(root, "", map[string]func(*yaml.Node){
		"gwlb": func(n *yaml.Node) {
			p.mapping(n, "gwlb", map[string]func(*yaml.Node){
				"listen": func(n *yaml.Node) { c.GWLB.Listen = p.addrPort(n, "gwlb.listen", true) },
				"allowed_sources": func(n *yaml.Node) {
					c.GWLB.AllowedSources = nil
					for _, item := range p.seq(n, "gwlb.allowed_sources") {
						if pr, ok := p.prefix(item, "gwlb.allowed_sources"); ok {
							c.GWLB.AllowedSources = append(c.GWLB.AllowedSources, pr)
						}
					}
				},
				"reply": func(n *yaml.Node) {
					c.GWLB.Reply = p.oneOf(n, "gwlb.reply", "auto", "raw", "udp")
				},
			})
		},
		"dataplane": func(n *yaml.Node) {
			p.mapping(n, "dataplane", map[string]func(*yaml.Node){
				"workers": func(n *yaml.Node) { c.Dataplane.Workers = p.intRange(n, "dataplane.workers", 0, 1024) },
				"batch":   func(n *yaml.Node) { c.Dataplane.Batch = p.intRange(n, "dataplane.batch", 1, 1024) },
				"recv_buffer": func(n *yaml.Node) {
					c.Dataplane.RecvBuffer = p.size(n, "dataplane.recv_buffer", 4<<10)
					if c.Dataplane.RecvBuffer > 1<<30 {
						p.fail(n, "dataplane.recv_buffer: %d bytes is more than the kernel's limit of 1GiB", c.Dataplane.RecvBuffer)
					}
				},
				"backend": func(n *yaml.Node) {
					c.Dataplane.Backend = p.oneOf(n, "dataplane.backend", "auto", "afxdp", "socket")
					p.remember(n, "dataplane.backend", c, c.Dataplane.Backend)
				},
				"interface": func(n *yaml.Node) { c.Dataplane.Interface = p.ifName(n, "dataplane.interface", c) },
				"queues": func(n *yaml.Node) {
					c.Dataplane.Queues = p.intRange(n, "dataplane.queues", 0, 1024)
					p.remember(n, "dataplane.queues", c, strconv.Itoa(c.Dataplane.Queues))
				},
				"zerocopy": func(n *yaml.Node) {
					c.Dataplane.ZeroCopy = p.oneOf(n, "dataplane.zerocopy", "auto", "on", "off")
					p.remember(n, "dataplane.zerocopy", c, c.Dataplane.ZeroCopy)
				},
				"fast_path": func(n *yaml.Node) { c.Dataplane.FastPath = p.boolean(n, "dataplane.fast_path") },
			})
		},
		"health": func(n *yaml.Node) {
			p.mapping(n, "health", map[string]func(*yaml.Node){
				"listen":      func(n *yaml.Node) { c.Health.Listen = p.hostPort(n, "health.listen") },
				"drain_delay": func(n *yaml.Node) { c.Health.DrainDelay = p.duration(n, "health.drain_delay", 0, time.Hour) },
				"stall_timeout": func(n *yaml.Node) {
					c.Health.StallTimeout = p.duration(n, "health.stall_timeout", 0, time.Hour)
					if c.Health.StallTimeout != 0 && c.Health.StallTimeout < time.Second {
						// Idle workers beat every 100 ms; leave room for a slow batch.
						p.fail(n, "health.stall_timeout: %s is too short (0 turns the check off, else at least 1s)", c.Health.StallTimeout)
					}
				},
			})
		},
		"metrics": func(n *yaml.Node) {
			p.mapping(n, "metrics", map[string]func(*yaml.Node){
				"listen": func(n *yaml.Node) { c.Metrics.Listen = p.hostPort(n, "metrics.listen") },
			})
		},
		"flows": func(n *yaml.Node) {
			p.mapping(n, "flows", map[string]func(*yaml.Node){
				"max": func(n *yaml.Node) { c.Flows.Max = p.intRange(n, "flows.max", 1, flow.MaxTableFlows) },
				"tcp_timeout": func(n *yaml.Node) {
					c.Flows.TCPTimeout = p.duration(n, "flows.tcp_timeout", time.Second, 6000*time.Second)
				},
				"other_timeout": func(n *yaml.Node) {
					c.Flows.OtherTimeout = p.duration(n, "flows.other_timeout", time.Second, 6000*time.Second)
				},
				"closed_timeout": func(n *yaml.Node) {
					c.Flows.ClosedTimeout = p.duration(n, "flows.closed_timeout", time.Second, time.Hour)
				},
				"midstream": func(n *yaml.Node) { c.Flows.Midstream = p.oneOf(n, "flows.midstream", "allow", "drop") },
			})
		},
		"policy": func(n *yaml.Node) {
			p.mapping(n, "policy", map[string]func(*yaml.Node){
				"default": func(n *yaml.Node) { c.Policy.Default = p.action(n, "policy.default") },
				"rules": func(n *yaml.Node) {
					c.Policy.Rules = nil
					names := map[string]int{}
					for i, item := range p.seq(n, "policy.rules") {
						r := p.rule(item, fmt.Sprintf("policy.rules[%d]", i))
						if l, dup := names[r.Name]; dup && r.Name != "" {
							p.fail(item, "policy.rules[%d]: rule name %s is already used at line %d", i, echo.Quote(r.Name), l)
						}
						names[r.Name] = item.Line
						c.Policy.Rules = append(c.Policy.Rules, r)
					}
				},
			})
		},
		"mirror": func(n *yaml.Node) { p.mirror(n, c) },
		"outputs": func(n *yaml.Node) {
			p.mapping(n, "outputs", map[string]func(*yaml.Node){
				"eve":       func(n *yaml.Node) { c.Outputs.EVE = p.path(n, "outputs.eve", c) },
				"eve_queue": func(n *yaml.Node) { c.Outputs.EVEQueue = p.intRange(n, "outputs.eve_queue", 1, 1<<24) },
				"pcap": func(n *yaml.Node) {
					pc := &c.Outputs.PCAP
					p.mapping(n, "outputs.pcap", map[string]func(*yaml.Node){
						"dir":           func(n *yaml.Node) { pc.Dir = p.path(n, "outputs.pcap.dir", c) },
						"max_file_size": func(n *yaml.Node) { pc.MaxFileSize = p.size(n, "outputs.pcap.max_file_size", 64<<10) },
						"max_file_age": func(n *yaml.Node) {
							pc.MaxFileAge = p.duration(n, "outputs.pcap.max_file_age", time.Second, 7*24*time.Hour)
						},
						"max_total_size": func(n *yaml.Node) { pc.MaxTotalSize = p.size(n, "outputs.pcap.max_total_size", 64<<10) },
						"queue":          func(n *yaml.Node) { pc.Queue = p.intRange(n, "outputs.pcap.queue", 16, 1<<20) },
						"reorder_window": func(n *yaml.Node) {
							pc.ReorderWindow = p.duration(n, "outputs.pcap.reorder_window", 0, 10*time.Second)
						},
					})
				},
				"flowlog": func(n *yaml.Node) {
					fl := &c.Outputs.FlowLog
					p.mapping(n, "outputs.flowlog", map[string]func(*yaml.Node){
						"path":       func(n *yaml.Node) { fl.Path = p.path(n, "outputs.flowlog.path", c) },
						"interval":   func(n *yaml.Node) { fl.Interval = p.duration(n, "outputs.flowlog.interval", time.Second, time.Hour) },
						"account_id": func(n *yaml.Node) { fl.AccountID = p.accountID(n, "outputs.flowlog.account_id") },
					})
				},
			})
		},
		"cluster": func(n *yaml.Node) { p.cluster(n, c) },
		"aws":     func(n *yaml.Node) { p.aws(n, c) },
		"detect":  func(n *yaml.Node) { p.detect(n, c) },
		"log": func(n *yaml.Node) {
			p.mapping(n, "log", map[string]func(*yaml.Node){
				"level":  func(n *yaml.Node) { c.Log.Level = p.oneOf(n, "log.level", "debug", "info", "warn", "error") },
				"format": func(n *yaml.Node) { c.Log.Format = p.oneOf(n, "log.format", "auto", "json", "text") },
				"file":   func(n *yaml.Node) { c.Log.File = p.path(n, "log.file", c) },
			})
		},
	})
	if p.err != nil {
		return nil, p.err
	}
	if cl := c.Cluster; cl.Bind.IsValid() && cl.SecretKeyFile == "" && !cl.Insecure {
		line := 1
		if n := findKey(root, "cluster", "bind"); n != nil {
			line = n.Line
		}
		return nil, &Error{File: file, Line: line,
			Msg: "cluster.secret_key_file: required when cluster.bind is set (or insecure: true to gossip in clear text)"}
	}
	if l, m := c.GWLB.Listen, c.Mirror.Listen; m.IsValid() && l.Port() == m.Port() &&
		(l.Addr() == m.Addr() || l.Addr().IsUnspecified() || m.Addr().IsUnspecified()) {
		line := 1
		if n := findKey(root, "mirror", "listen"); n != nil {
			line = n.Line
		} else if n := findKey(root, "gwlb", "listen"); n != nil {
			line = n.Line
		}
		return nil, &Error{File: file, Line: line,
			Msg: fmt.Sprintf("mirror.listen %s and gwlb.listen %s share a port: GENEVE and VXLAN need their own", m, l)}
	}
	return c, nil
}

// findKey returns the value node at path in a mapping tree, or nil.
func findKey(n *yaml.Node, path ...string) *yaml.Node {
	for _, k := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: ...") into FILE:LINE:
// message. Where the text shows the line at fault (syntaxProblem), that line and a
// plainer message replace yaml.v3's, whose line can be that of the enclosing
// mapping, one short of an unclosed bracket, or missing.
func yamlError(file string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ":"); ok {
			if n, e := strconv.Atoi(num); e == nil {
				line, msg = n, strings.TrimSpace(after)
			}
		}
	}
	if l, m, ok := syntaxProblem(data, msg); ok {
		line, msg = l, m
	}
	// yaml.v3 repeats anchor names and tags, which can be as long as the file.
	return &Error{File: file, Line: line, Msg: echo.Clip(msg, 4*echo.Max)}
}

// parser walks the YAML tree, keeping the first error.
type parser struct {
	file string
	err  error
}

func (p *parser) fail(n *yaml.Node, format string, args ...any) {
	if p.err == nil {
		p.err = &Error{File: p.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)}
	}
}

func (p *parser) mapping(n *yaml.Node, where string, keys map[string]func(*yaml.Node)) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		if where == "" {
			p.fail(n, "the configuration must be a mapping of sections")
		} else {
			p.fail(n, "%s: expected a mapping", where)
		}
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		full := name
		if where != "" {
			full = where + "." + name
		}
		if seen[name] {
			p.fail(k, "%s: duplicate key", echo.Clip(full, echo.Max))
			return
		}
		seen[name] = true
		f, ok := keys[name]
		if !ok {
			p.fail(k, "unknown key %s%s", echo.Quote(full), hint(name, keys))
			return
		}
		f(v)
		if p.err != nil {
			return
		}
	}
}

// hint names the known keys, so a typo is easy to fix.
func hint(name string, keys map[string]func(*yaml.Node)) string {
	var known []string
	for k := range keys {
		known = append(known, k)
	}
	slices.Sort(known)
	return " (known keys: " + strings.Join(known, ", ") + ")"
}

func (p *parser) scalar(n *yaml.Node, where string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.fail(n, "%s: expected a single value", where)
		return "", false
	}
	return n.Value, true
}

func (p *parser) str(n *yaml.Node, where string) string {
	s, _ := p.scalar(n, where)
	return s
}

// accountID reads an AWS account id for flow-log records: 12 digits, or "-" as
// AWS writes an unknown field. Flow-log records are space-separated, so nothing
// else may reach them.
func (p *parser) accountID(n *yaml.Node, where string) string {
	s, ok := p.scalar(n, where)
	if !ok || s == "-" {
		return s
	}
	if len(s) != 12 || strings.Trim(s, "0123456789") != "" {
		p.fail(n, "%s: %s is not an AWS account id (12 digits, like \"123456789012\", or \"-\")", where, echo.Quote(s))
		return ""
	}
	return s
}

// interfaceID reads an ENI id for flow-log records: eni- and hex digits (8 or 17
// in AWS's ids).
func (p *parser) interfaceID(n *yaml.Node, where string) string {
	s, ok := p.scalar(n, where)
	if !ok {
		return s
	}
	hex, found := strings.CutPrefix(s, "eni-")
	if !found || hex == "" || len(hex) > 17 || strings.Trim(hex, "0123456789abcdef") != "" {
		p.fail(n, "%s: %s is not an ENI id (eni- and hex digits, like eni-0123456789abcdef0)", where, echo.Quote(s))
		return ""
	}
	return s
}

// path reads an output path and remembers its line for Config.KeyError.
func (p *parser) path(n *yaml.Node, where string, c *Config) string {
	s := p.str(n, where)
	p.remember(n, where, c, s)
	return s
}

// remember keeps the line of key's value for Config.KeyError.
func (p *parser) remember(n *yaml.Node, key string, c *Config, value string) {
	if c.sources == nil { // set only here: a file without such keys equals Default()
		c.file, c.sources = p.file, map[string]source{}
	}
	c.sources[key] = source{line: n.Line, value: value}
}

// ifName reads a network interface name as the kernel allows it: 1 to 15 bytes,
// no '/', ':' or white space.
func (p *parser) ifName(n *yaml.Node, where string, c *Config) string {
	s, ok := p.scalar(n, where)
	if !ok {
		return ""
	}
	if s == "" || len(s) > 15 || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n") {
		p.fail(n, "%s: %s is not an interface name (1 to 15 characters, no '/', ':' or spaces)", where, echo.Quote(s))
		return ""
	}
	p.remember(n, where, c, s)
	return s
}

func (p *parser) seq(n *yaml.Node, where string) []*yaml.Node {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, "%s: expected a list", where)
		return nil
	}
	return n.Content
}

func (p *parser) oneOf(n *yaml.Node, where string, allowed ...string) string {
	s, ok := p.scalar(n, where)
	if !ok {
		return ""
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	p.fail(n, "%s: %s is not one of %s", where, echo.Quote(s), strings.Join(allowed, ", "))
	return ""
}

func (p *parser) intRange(n *yaml.Node, where string, lo, hi int) int {
	s, ok := p.scalar(n, where)
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		p.fail(n, "%s: %s is not an integer", where, echo.Quote(s))
		return 0
	}
	if v < lo || v > hi {
		p.fail(n, "%s: %d is out of range %d-%d", where, v, lo, hi)
	}
	return v
}

// size parses a byte count: 1048576, 512KiB, 100MiB, 1GiB (KB/MB/GB are taken as
// the same binary units).
func (p *parser) size(n *yaml.Node, where string, lo int64) int64 {
	s, ok := p.scalar(n, where)
	if !ok {
		return 0
	}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		p.fail(n, "%s: %s is not a size (like 100MiB or 1GiB)", where, echo.Quote(s))
		return 0
	}
	if v*mult < lo {
		p.fail(n, "%s: %s is smaller than the minimum of %d bytes", where, echo.Clip(s, echo.Max), lo)
	}
	return v * mult
}

func (p *parser) duration(n *yaml.Node, where string, lo, hi time.Duration) time.Duration {
	s, ok := p.scalar(n, where)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.fail(n, "%s: %s is not a duration (like 350s, 2m, 500ms)", where, echo.Quote(s))
		return 0
	}
	if d < lo || d > hi {
		p.fail(n, "%s: %s is out of range %s-%s", where, d, lo, hi)
	}
	return d
}

func (p *parser) addrPort(n *yaml.Node, where string, v4only bool) netip.AddrPort {
	s, ok := p.scalar(n, where)
	if !ok {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		p.fail(n, "%s: %s is not ADDRESS:PORT (like 0.0.0.0:6081)", where, echo.Quote(s))
		return ap
	}
	if v4only && !ap.Addr().Is4() {
		why := "GWLB sends GENEVE over IPv4"
		if where == "mirror.listen" {
			why = "Traffic Mirroring sends VXLAN over IPv4"
		}
		p.fail(n, "%s: %s must be an IPv4 address: %s", where, echo.Clip(ap.Addr().String(), echo.Max), why)
	}
	return ap
}

// hostPort accepts HOST:PORT as net.Listen does ("" turns the listener off).
func (p *parser) hostPort(n *yaml.Node, where string) string {
	s, ok := p.scalar(n, where)
	if !ok || s == "" {
		return s
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		p.fail(n, "%s: %s has no port (like 0.0.0.0:8080)", where, echo.Quote(s))
		return s
	}
	if port, err := strconv.Atoi(s[i+1:]); err != nil || port < 0 || port > 65535 {
		p.fail(n, "%s: %s has a bad port", where, echo.Quote(s))
	}
	return s
}

func (p *parser) prefix(n *yaml.Node, where string) (netip.Prefix, bool) {
	s, ok := p.scalar(n, where)
	if !ok {
		return netip.Prefix{}, false
	}
	if !strings.Contains(s, "/") {
		if a, err := netip.ParseAddr(s); err == nil {
			return netip.PrefixFrom(a, a.BitLen()), true
		}
	}
	pr, err := netip.ParsePrefix(s)
	if err != nil {
		p.fail(n, "%s: %s is not a CIDR (like 10.0.0.0/16 or fd00::/8)", where, echo.Quote(s))
		return pr, false
	}
	if pr.Masked() != pr {
		p.fail(n, "%s: %s has host bits set; did you mean %s?", where, pr, pr.Masked())
		return pr, false
	}
	return pr, true
}

// actionSynonyms are the words other firewalls use for allow and drop.
var actionSynonyms = map[string]string{
	"deny": "drop", "reject": "drop", "block": "drop", "discard": "drop",
	"accept": "allow", "permit": "allow", "pass": "allow",
}

func (p *parser) action(n *yaml.Node, where string) policy.Action {
	if s, ok := p.scalar(n, where); ok {
		if want, ok := actionSynonyms[strings.ToLower(s)]; ok {
			p.fail(n, "%s: %s is not allow or drop: did you mean %s?", where, echo.Quote(s), want)
			return policy.Allow
		}
	}
	if p.oneOf(n, where, "allow", "drop") == "drop" {
		return policy.Drop
	}
	return policy.Allow
}

// ruleKeySynonyms are the keys other firewalls use for a rule's fields.
var ruleKeySynonyms = map[string]string{
	"protocol": "proto", "port": "dst_port", "ports": "dst_port", "dport": "dst_port", "sport": "src_port",
	"source": "src", "destination": "dst", "src_ip": "src", "dst_ip": "dst", "source_ip": "src",
	"destination_ip": "dst", "dest": "dst", "source_port": "src_port", "destination_port": "dst_port",
	"dest_port": "dst_port", "verdict": "action",
}

var protoNames = map[string]int{"any": policy.AnyProto, "tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}

func (p *parser) rule(n *yaml.Node, where string) policy.Rule {
	r := policy.Rule{Proto: policy.AnyProto, Line: n.Line}
	hasAction := false
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if want, ok := ruleKeySynonyms[strings.ToLower(k.Value)]; ok {
				p.fail(k, "unknown key %s: did you mean %s?", echo.Quote(where+"."+k.Value), want)
				return r
			}
		}
	}
	p.mapping(n, where, map[string]func(*yaml.Node){
		"name": func(v *yaml.Node) {
			if r.Name = p.str(v, where+".name"); r.Name == "" && p.err == nil {
				p.fail(v, "%s.name: empty (leave it out for an unnamed rule)", where)
			}
		},
		"action": func(v *yaml.Node) { r.Action, hasAction = p.action(v, where+".action"), true },
		"proto": func(v *yaml.Node) {
			s, ok := p.scalar(v, where+".proto")
			if !ok {
				return
			}
			if num, ok := protoNames[strings.ToLower(s)]; ok {
				r.Proto = num
				return
			}
			num, err := strconv.Atoi(s)
			if err != nil || num < 0 || num > 255 {
				p.fail(v, "%s.proto: %s is not tcp, udp, icmp, icmpv6, any or a protocol number 0-255", where, echo.Quote(s))
				return
			}
			r.Proto = num
		},
		"src":      func(v *yaml.Node) { r.Src, _ = p.prefix(v, where+".src") },
		"dst":      func(v *yaml.Node) { r.Dst, _ = p.prefix(v, where+".dst") },
		"src_port": func(v *yaml.Node) { r.SrcPort, r.SrcPorts = p.ports(v, where+".src_port") },
		"dst_port": func(v *yaml.Node) { r.DstPort, r.DstPorts = p.ports(v, where+".dst_port") },
	})
	if p.err != nil {
		return r
	}
	if !hasAction {
		p.fail(n, "%s: a rule needs an action (allow or drop)", where)
	}
	if r.Src.IsValid() && r.Dst.IsValid() && r.Src.Addr().Is4() != r.Dst.Addr().Is4() {
		p.fail(n, "%s: src and dst are of different address families and could never match", where)
	}
	if r.HasPorts() && r.Proto != 6 && r.Proto != 17 {
		p.fail(n, "%s: ports need proto tcp or udp", where)
	}
	return r
}

// ports reads a port (N), a range (N-M), or a list of them ([80, 443, 8000-8080]),
// which goes to the rule's list of ranges.
func (p *parser) ports(n *yaml.Node, where string) (policy.PortRange, policy.Ports) {
	if n.Kind != yaml.SequenceNode {
		return p.portRange(n, where), nil
	}
	if len(n.Content) == 0 {
		p.fail(n, "%s: an empty list matches no port (leave the key out to match every port)", where)
		return policy.PortRange{}, nil
	}
	list := make(policy.Ports, 0, len(n.Content))
	for _, item := range n.Content {
		r := p.portRange(item, where)
		if p.err != nil {
			return policy.PortRange{}, nil
		}
		list = append(list, r)
	}
	return policy.PortRange{}, list
}

func (p *parser) portRange(n *yaml.Node, where string) policy.PortRange {
	s, ok := p.scalar(n, where)
	if !ok {
		return policy.PortRange{}
	}
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		p.fail(n, "%s: %s is not a port (1-65535), a range N-M or a list of them ([80, 443, 8000-8080])", where, echo.Quote(s))
		return policy.PortRange{}
	}
	return policy.PortRange{Lo: uint16(a), Hi: uint16(b)}
}
