package config

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"weir/internal/echo"

	"gopkg.in/yaml.v3"
)

// ClusterConfig is the cluster section: how this node finds the fleet and gossips
// with it. An invalid Bind (the key empty or absent) means standalone.
type ClusterConfig struct {
	Bind          netip.AddrPort // gossip and sync, TCP and UDP
	Advertise     netip.AddrPort // the address peers should use, when it differs from Bind
	NodeName      string         // "" = the hostname
	Join          []string       // seeds: IP, IP:PORT, NAME or NAME:PORT
	SecretKeyFile string         // base64 keys, one a line: the first encrypts, all decrypt
	Insecure      bool           // gossip in clear text (no key file)
	Discover      DiscoverConfig // more seeds, found with a cloud API
}

// DefaultClusterPort is the gossip port a seed without one is reached on.
const DefaultClusterPort = 7946

func (p *parser) cluster(n *yaml.Node, c *Config) {
	cl := &c.Cluster
	p.mapping(n, "cluster", map[string]func(*yaml.Node){
		"bind":      func(n *yaml.Node) { cl.Bind = p.optAddrPort(n, "cluster.bind") },
		"advertise": func(n *yaml.Node) { cl.Advertise = p.optAddrPort(n, "cluster.advertise") },
		"node_name": func(n *yaml.Node) {
			cl.NodeName = p.str(n, "cluster.node_name")
			if len(cl.NodeName) > 128 || strings.ContainsFunc(cl.NodeName, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				p.fail(n, "cluster.node_name: %s: at most 128 characters, no spaces or control characters", echo.Quote(cl.NodeName))
			}
		},
		"join": func(n *yaml.Node) {
			cl.Join = nil
			for _, item := range p.seq(n, "cluster.join") {
				s, ok := p.scalar(item, "cluster.join")
				if !ok {
					return
				}
				if _, _, err := SplitSeed(s); err != nil {
					p.fail(item, "cluster.join: %s: %v", echo.Quote(s), err)
					return
				}
				cl.Join = append(cl.Join, s)
			}
		},
		"secret_key_file": func(n *yaml.Node) {
			// A relative path is read from the configuration file's folder, as filters are.
			cl.SecretKeyFile = p.path(n, "cluster.secret_key_file", c)
			if cl.SecretKeyFile != "" && !filepath.IsAbs(cl.SecretKeyFile) {
				cl.SecretKeyFile = filepath.Join(p.dir(), cl.SecretKeyFile)
				// KeyError finds the line by the value it reports.
				p.remember(n, "cluster.secret_key_file", c, cl.SecretKeyFile)
			}
		},
		"discover": func(n *yaml.Node) { p.discover(n, &cl.Discover) },
		"insecure": func(n *yaml.Node) {
			switch s, _ := p.scalar(n, "cluster.insecure"); s {
			case "true":
				cl.Insecure = true
			case "false":
				cl.Insecure = false
			default:
				p.fail(n, "cluster.insecure: %s is not true or false", echo.Quote(s))
			}
		},
	})
	if p.err == nil && cl.Discover.Provider != "" && !cl.Bind.IsValid() {
		if d := findKey(n, "discover"); d != nil {
			p.fail(d, "cluster.discover: needs cluster.bind (discovered peers are joined through it)")
		}
	}
}

// optAddrPort reads ADDR:PORT, or "" for none.
func (p *parser) optAddrPort(n *yaml.Node, where string) netip.AddrPort {
	s, ok := p.scalar(n, where)
	if !ok || s == "" {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		p.fail(n, "%s: %s is not ADDRESS:PORT (like 10.0.1.5:7946)", where, echo.Quote(s))
	}
	return ap
}

// SplitSeed parses a cluster.join entry: an IP address, IP:PORT ([IPv6]:PORT), a DNS
// name or NAME:PORT. The port defaults to DefaultClusterPort.
func SplitSeed(s string) (host string, port int, err error) {
	host, port = s, DefaultClusterPort
	if a, e := netip.ParseAddr(s); e == nil {
		return a.String(), port, nil
	}
	if strings.Contains(s, ":") {
		h, ps, e := net.SplitHostPort(s)
		if e != nil {
			return "", 0, fmt.Errorf("not an address, HOST:PORT or a DNS name")
		}
		p, e := strconv.Atoi(ps)
		if e != nil || p < 1 || p > 65535 {
			return "", 0, fmt.Errorf("bad port %s", echo.Quote(ps))
		}
		host, port = h, p
	}
	if _, e := netip.ParseAddr(host); e == nil {
		return host, port, nil
	}
	if !validHostname(host) {
		return "", 0, fmt.Errorf("not an address, HOST:PORT or a DNS name")
	}
	return host, port, nil
}

func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// MaxKeyFileSize bounds a cluster key file.
const MaxKeyFileSize = 64 << 10

// ReadKeyFile reads a cluster key file: one base64 key a line (16, 24 or 32 bytes:
// AES-128, -192 or -256), blank lines and lines starting with # ignored. The first
// key encrypts, all decrypt. Errors name the file and the line of a bad key.
func ReadKeyFile(path string) ([][]byte, error) {
	data, err := ReadFile(path, MaxKeyFileSize)
	if err != nil {
		return nil, err
	}
	return ParseKeys(path, data)
}

// ParseKeys parses the contents of a key file, naming file in errors.
func ParseKeys(file string, data []byte) ([][]byte, error) {
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, &Error{File: file, Line: line, Msg: "not a base64 key (make one with: head -c 32 /dev/urandom | base64)"}
		}
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return nil, &Error{File: file, Line: line, Msg: fmt.Sprintf("a key of %d bytes: keys are 16, 24 or 32 bytes (AES-128, -192, -256)", l)}
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	if len(keys) == 0 {
		return nil, &Error{File: file, Msg: "no key (one base64 key a line: 16, 24 or 32 bytes)"}
	}
	return keys, nil
}

// CheckClusterKeys reads cluster.secret_key_file when the node is in a cluster and
// encrypts; errors are "FILE:LINE: cluster.secret_key_file: KEYFILE:LINE: message".
func (c *Config) CheckClusterKeys() error {
	if !c.Cluster.Bind.IsValid() || c.Cluster.SecretKeyFile == "" {
		return nil
	}
	if _, err := ReadKeyFile(c.Cluster.SecretKeyFile); err != nil {
		return c.KeyError("cluster.secret_key_file", err)
	}
	return nil
}
