package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"weir/dataplane/policy"
)

func TestParseConfigDefaults(t *testing.T) {
	for name, data := range map[string]string{
		"empty":         "",
		"newline":       "\n",
		"comment only":  "# nothing configured\n",
		"document only": "---\n",
		"null sections": "gwlb:\nhealth:\nflows:\npolicy:\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse("test.yaml", []byte(data))
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if got, want := c.GWLB.Listen, netip.MustParseAddrPort("0.0.0.0:6081"); got != want {
				t.Errorf("gwlb.listen = %v, want %v", got, want)
			}
			if c.Health.Listen != "0.0.0.0:8080" {
				t.Errorf("health.listen = %q, want 0.0.0.0:8080", c.Health.Listen)
			}
			if c.Flows.TCPTimeout != 350*time.Second {
				t.Errorf("flows.tcp_timeout = %v, want 350s", c.Flows.TCPTimeout)
			}
			if c.Flows.OtherTimeout != 120*time.Second {
				t.Errorf("flows.other_timeout = %v, want 120s", c.Flows.OtherTimeout)
			}
			if c.GWLB.Reply != "auto" {
				t.Errorf("gwlb.reply = %q, want auto", c.GWLB.Reply)
			}
			if c.Policy.Default != policy.Allow || len(c.Policy.Rules) != 0 {
				t.Errorf("policy = %+v, want default allow and no rules", c.Policy)
			}
			if c.Outputs.EVE != "" {
				t.Errorf("outputs.eve = %q, want empty", c.Outputs.EVE)
			}
			if !reflect.DeepEqual(c, Default()) {
				t.Errorf("config of %q differs from Default():\n got %+v\nwant %+v", data, c, Default())
			}
		})
	}
}

// fullConfig sets every key weir knows; cmd/weir checks it with check-config too.
var fullConfig = mustRead("testdata/full.yaml")

func mustRead(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestParseConfigFull(t *testing.T) {
	c, err := Parse("test.yaml", []byte(fullConfig))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	check("gwlb.listen", c.GWLB.Listen, netip.MustParseAddrPort("10.0.0.5:6081"))
	check("gwlb.allowed_sources", c.GWLB.AllowedSources, []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/16"),
		netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("fd00::/8"),
	})
	check("gwlb.reply", c.GWLB.Reply, "udp")
	check("dataplane.workers", c.Dataplane.Workers, 4)
	check("dataplane.batch", c.Dataplane.Batch, 128)
	check("health.listen", c.Health.Listen, "127.0.0.1:8081")
	check("health.drain_delay", c.Health.DrainDelay, 10*time.Second)
	check("metrics.listen", c.Metrics.Listen, ":9100")
	check("flows.max", c.Flows.Max, 1000)
	check("flows.tcp_timeout", c.Flows.TCPTimeout, 6000*time.Second)
	check("flows.other_timeout", c.Flows.OtherTimeout, 60*time.Second)
	check("flows.closed_timeout", c.Flows.ClosedTimeout, 2*time.Second)
	check("outputs.eve", c.Outputs.EVE, "/var/log/weir/eve.json")
	check("outputs.eve_queue", c.Outputs.EVEQueue, 4096)
	check("outputs.pcap.reorder_window", c.Outputs.PCAP.ReorderWindow, 20*time.Millisecond)
	check("flows.midstream", c.Flows.Midstream, "drop")
	check("log.level", c.Log.Level, "debug")
	check("log.format", c.Log.Format, "json")
	check("log.file", c.Log.File, "/var/log/weir/weir.log")
	check("policy.default", c.Policy.Default, policy.Drop)
	check("cluster.bind", c.Cluster.Bind, netip.MustParseAddrPort("10.0.1.5:7946"))
	check("cluster.advertise", c.Cluster.Advertise, netip.MustParseAddrPort("192.0.2.5:7946"))
	check("cluster.node_name", c.Cluster.NodeName, "weir-a")
	check("cluster.join", c.Cluster.Join, []string{"10.0.1.6", "10.0.1.7:7946", "weir.internal", "[fd00::7]:7000"})
	check("cluster.secret_key_file", c.Cluster.SecretKeyFile, "/etc/weir/cluster.key")
	check("cluster.insecure", c.Cluster.Insecure, false)

	want := []policy.Rule{
		{
			Action: policy.Allow, Proto: 6,
			Src:     netip.MustParsePrefix("10.0.0.0/8"),
			Dst:     netip.MustParsePrefix("192.168.0.0/16"),
			DstPort: policy.PortRange{Lo: 443, Hi: 443},
			Line:    25,
		},
		{
			Action: policy.Drop, Proto: 17,
			SrcPort: policy.PortRange{Lo: 1000, Hi: 2000},
			DstPort: policy.PortRange{Lo: 53, Hi: 53},
			Line:    30,
		},
		{
			Action: policy.Allow, Proto: 58,
			Src:  netip.MustParsePrefix("fd00::/8"),
			Dst:  netip.MustParsePrefix("2001:db8::1/128"),
			Line: 34,
		},
		{Action: policy.Allow, Proto: 1, Line: 38},
		{Action: policy.Drop, Proto: policy.AnyProto, Dst: netip.MustParsePrefix("0.0.0.0/0"), Line: 40},
		{Action: policy.Allow, Proto: 47, Line: 43},
	}
	if len(c.Policy.Rules) != len(want) {
		t.Fatalf("got %d rules, want %d: %+v", len(c.Policy.Rules), len(want), c.Policy.Rules)
	}
	for i := range want {
		check(fmt.Sprintf("policy.rules[%d]", i), c.Policy.Rules[i], want[i])
	}
}

func TestParseConfigValues(t *testing.T) {
	// Values at the edges of what is accepted.
	for _, tc := range []struct {
		name, data string
		check      func(*Config) bool
	}{
		{"tcp_timeout minimum", "flows:\n  tcp_timeout: 1s\n", func(c *Config) bool { return c.Flows.TCPTimeout == time.Second }},
		{"timeout in minutes", "flows:\n  other_timeout: 2m\n", func(c *Config) bool { return c.Flows.OtherTimeout == 2*time.Minute }},
		{"port range 1-65535", "policy:\n  rules:\n    - {action: allow, proto: udp, dst_port: 1-65535}\n",
			func(c *Config) bool { return c.Policy.Rules[0].DstPort == policy.PortRange{Lo: 1, Hi: 65535} }},
		{"proto 0", "policy:\n  rules:\n    - {action: drop, proto: 0}\n", func(c *Config) bool { return c.Policy.Rules[0].Proto == 0 }},
		{"proto 255", "policy:\n  rules:\n    - {action: drop, proto: 255}\n", func(c *Config) bool { return c.Policy.Rules[0].Proto == 255 }},
		{"proto name upper case", "policy:\n  rules:\n    - {action: drop, proto: UDP}\n", func(c *Config) bool { return c.Policy.Rules[0].Proto == 17 }},
		{"v6 rule", "policy:\n  rules:\n    - {action: drop, src: \"2001:db8::/32\", dst: \"::/0\"}\n",
			func(c *Config) bool {
				r := c.Policy.Rules[0]
				return r.Src == netip.MustParsePrefix("2001:db8::/32") && r.Dst == netip.MustParsePrefix("::/0") && r.Proto == policy.AnyProto
			}},
		{"health listener off", "health:\n  listen: \"\"\n", func(c *Config) bool { return c.Health.Listen == "" }},
		{"stall check default", "", func(c *Config) bool { return c.Health.StallTimeout == 5*time.Second }},
		{"stall check off", "health:\n  stall_timeout: 0s\n", func(c *Config) bool { return c.Health.StallTimeout == 0 }},
		{"recv_buffer default", "", func(c *Config) bool { return c.Dataplane.RecvBuffer == 4<<20 }},
		{"recv_buffer 16MiB", "dataplane:\n  recv_buffer: 16MiB\n", func(c *Config) bool { return c.Dataplane.RecvBuffer == 16<<20 }},
		{"stall timeout 30s", "health:\n  stall_timeout: 30s\n", func(c *Config) bool { return c.Health.StallTimeout == 30*time.Second }},
		{"empty rule list", "policy:\n  rules: []\n", func(c *Config) bool { return len(c.Policy.Rules) == 0 }},
		{"backend default", "", func(c *Config) bool {
			d := c.Dataplane
			return d.Backend == "auto" && d.Interface == "" && d.Queues == 0 && d.ZeroCopy == "auto"
		}},
		{"afxdp keys", "dataplane:\n  backend: afxdp\n  interface: eth0\n  queues: 2\n  zerocopy: off\n", func(c *Config) bool {
			d := c.Dataplane
			return d.Backend == "afxdp" && d.Interface == "eth0" && d.Queues == 2 && d.ZeroCopy == "off"
		}},
		{"socket backend, zero-copy on", "dataplane:\n  backend: socket\n  zerocopy: on\n", func(c *Config) bool {
			return c.Dataplane.Backend == "socket" && c.Dataplane.ZeroCopy == "on"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("test.yaml", []byte(tc.data))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.data, err)
			}
			if !tc.check(c) {
				t.Errorf("Parse(%q) = %+v: wrong value", tc.data, c)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		line int
		want []string // substrings of the message
	}{
		{"unknown top-level key", "gwlb:\n  listen: 0.0.0.0:6081\nbogus: 1\n", 3,
			[]string{`unknown key "bogus"`, "gwlb"}},
		{"unknown nested key", "# weir\ngwlb:\n  lisen: 0.0.0.0:6081\n", 3,
			[]string{`unknown key "gwlb.lisen"`, "listen"}},
		{"unknown rule key", "policy:\n  rules:\n    - action: allow\n      port: 80\n", 4,
			[]string{`"policy.rules[0].port"`}},
		{"bad address", "gwlb:\n  listen: 0.0.0.0\n", 2,
			[]string{"gwlb.listen", `"0.0.0.0"`}},
		{"IPv6 gwlb.listen", "gwlb:\n  reply: raw\n  listen: \"[::]:6081\"\n", 3,
			[]string{"gwlb.listen", "IPv4"}},
		{"health.listen without port", "health:\n  listen: localhost\n", 2,
			[]string{"health.listen"}},
		{"metrics.listen bad port", "metrics:\n  listen: 0.0.0.0:http\n", 2,
			[]string{"metrics.listen"}},
		{"bad CIDR", "gwlb:\n  allowed_sources:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n", 4,
			[]string{"gwlb.allowed_sources", "10.0.0.0/33"}},
		{"bad CIDR in rule", "policy:\n  rules:\n    - action: drop\n      dst: 10.0.0.300/32\n", 4,
			[]string{"policy.rules[0].dst"}},
		{"CIDR with host bits", "policy:\n  rules:\n    - action: drop\n    - action: allow\n      src: 10.1.2.3/8\n", 5,
			[]string{"policy.rules[1].src", "host bits", "10.0.0.0/8"}},
		{"bad proto name", "policy:\n  rules:\n    - action: drop\n      proto: tcpp\n", 4,
			[]string{"policy.rules[0].proto", "tcpp"}},
		{"proto 300", "policy:\n  rules:\n    - action: drop\n      proto: 300\n", 4,
			[]string{"policy.rules[0].proto", "300"}},
		{"proto -1", "policy:\n  rules:\n    - action: drop\n      proto: -1\n", 4,
			[]string{"policy.rules[0].proto"}},
		{"port 0", "policy:\n  rules:\n    - action: drop\n      proto: tcp\n      dst_port: 0\n", 5,
			[]string{"policy.rules[0].dst_port"}},
		{"port 65536", "policy:\n  rules:\n    - action: drop\n      proto: tcp\n      src_port: 65536\n", 5,
			[]string{"policy.rules[0].src_port"}},
		{"port range 90-80", "policy:\n  rules:\n    - action: drop\n      proto: udp\n      dst_port: 90-80\n", 5,
			[]string{"policy.rules[0].dst_port", "90-80"}},
		{"port not a number", "policy:\n  rules:\n    - action: drop\n      proto: udp\n      dst_port: dns\n", 5,
			[]string{"policy.rules[0].dst_port"}},
		{"ports with proto icmp", "policy:\n  default: allow\n  rules:\n    - action: drop\n      proto: icmp\n      dst_port: 80\n", 4,
			[]string{"policy.rules[0]", "tcp or udp"}},
		{"ports without proto", "policy:\n  rules:\n    - action: drop\n      dst_port: 80\n", 3,
			[]string{"policy.rules[0]", "tcp or udp"}},
		{"rule without action", "policy:\n  rules:\n    - action: allow\n      proto: tcp\n    - proto: udp\n      dst_port: 53\n", 5,
			[]string{"policy.rules[1]", "action"}},
		{"empty rule", "policy:\n  rules:\n    - {}\n", 3,
			[]string{"policy.rules[0]", "action"}},
		{"bad action", "policy:\n  rules:\n    - action: deny\n", 3,
			[]string{"policy.rules[0].action", "deny"}},
		{"bad default", "policy:\n  default: reject\n", 2,
			[]string{"policy.default", "reject"}},
		{"src v4 dst v6", "policy:\n  rules:\n    - action: drop\n      src: 10.0.0.0/8\n      dst: \"fd00::/8\"\n", 3,
			[]string{"policy.rules[0]", "famil"}},
		{"bad duration", "flows:\n  tcp_timeout: 5 minutes\n", 2,
			[]string{"flows.tcp_timeout", "5 minutes"}},
		{"duration without unit", "health:\n  drain_delay: 30\n", 2,
			[]string{"health.drain_delay"}},
		{"recv_buffer not a size", "dataplane:\n  recv_buffer: lots\n", 2,
			[]string{"dataplane.recv_buffer", "lots"}},
		{"recv_buffer too big", "dataplane:\n  recv_buffer: 2GiB\n", 2,
			[]string{"dataplane.recv_buffer", "1GiB"}},
		{"recv_buffer too small", "dataplane:\n  recv_buffer: 1KiB\n", 2,
			[]string{"dataplane.recv_buffer", "minimum"}},
		{"stall timeout below a second", "health:\n  listen: 0.0.0.0:8080\n  stall_timeout: 200ms\n", 3,
			[]string{"health.stall_timeout", "too short"}},
		{"tcp_timeout 7000s", "flows:\n  max: 10\n  tcp_timeout: 7000s\n", 3,
			[]string{"flows.tcp_timeout", "out of range"}},
		{"other_timeout 0s", "flows:\n  other_timeout: 0s\n", 2,
			[]string{"flows.other_timeout", "out of range"}},
		{"flows.max past what a table holds", "flows:\n  max: 200000000\n", 2,
			[]string{"flows.max", "out of range"}},
		{"midstream", "flows:\n  midstream: maybe\n", 2,
			[]string{"flows.midstream", `"maybe"`, "allow, drop"}},
		{"bad backend", "dataplane:\n  backend: dpdk\n", 2,
			[]string{"dataplane.backend", `"dpdk"`, "auto, afxdp, socket"}},
		{"bad zerocopy", "dataplane:\n  zerocopy: yes\n", 2,
			[]string{"dataplane.zerocopy", `"yes"`, "auto, on, off"}},
		{"interface name too long", "dataplane:\n  interface: a-very-long-interface\n", 2,
			[]string{"dataplane.interface", "not an interface name"}},
		{"interface name with a slash", "dataplane:\n  interface: eth0/1\n", 2,
			[]string{"dataplane.interface", "not an interface name"}},
		{"queues out of range", "dataplane:\n  queues: -1\n", 2,
			[]string{"dataplane.queues", "out of range"}},
		{"bad integer", "dataplane:\n  workers: many\n", 2,
			[]string{"dataplane.workers", "many"}},
		{"integer out of range", "dataplane:\n  batch: 0\n", 2,
			[]string{"dataplane.batch", "out of range"}},
		{"bad enum", "log:\n  format: json\n  level: loud\n", 3,
			[]string{"log.level", "loud", "debug"}},
		{"bad reply mode", "gwlb:\n  reply: tcp\n", 2,
			[]string{"gwlb.reply", "tcp"}},
		{"list where a mapping is expected", "health:\n  listen: 0.0.0.0:8080\ngwlb:\n  - listen\n", 4,
			[]string{"gwlb", "expected a mapping"}},
		{"scalar where a mapping is expected", "log: debug\n", 1,
			[]string{"log", "expected a mapping"}},
		{"top level not a mapping", "- gwlb\n", 1,
			[]string{"mapping"}},
		{"mapping where a value is expected", "log:\n  level:\n    name: info\n", 3,
			[]string{"log.level", "single value"}},
		{"scalar where a list is expected", "gwlb:\n  allowed_sources: 10.0.0.0/8\n", 2,
			[]string{"gwlb.allowed_sources", "list"}},
		{"duplicate key", "log:\n  level: info\n  format: text\n  level: debug\n", 4,
			[]string{"log.level", "duplicate"}},
		{"duplicate section", "gwlb:\n  reply: raw\nlog:\n  level: info\ngwlb:\n  reply: udp\n", 5,
			[]string{"gwlb", "duplicate"}},
		{"second document", "gwlb:\n  reply: raw\n---\nbogus: 1\n", 3,
			[]string{"second YAML document"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConfigError(t, tc.data, tc.line, tc.want...)
		})
	}
}

func TestParseConfigYAMLSyntaxErrors(t *testing.T) {
	// The lines are those at fault: where yaml.v3 reports the enclosing mapping, or
	// the line before an unclosed bracket, the text is scanned for the real one.
	for _, tc := range []struct {
		name string
		data string
		line int // 0: yaml.v3 gives none; any line will do
		want string
	}{
		{"bad indentation", "gwlb:\n  listen: 0.0.0.0:6081\n reply: udp\n", 3,
			"indentation: this line is indented by 1 space, which matches no enclosing level (the lines above are indented by 0 or 2)"},
		{"tab indentation", "log:\n\tlevel: info\n", 2, "tab in indentation: YAML indents with spaces"},
		{"unclosed flow sequence", "flows:\n  max: 10\ngwlb:\n  allowed_sources: [10.0.0.0/8\nlog:\n  level: info\n", 4, "unclosed [: no ] closes it"},
		{"unclosed quote", "log:\n  level: info\n  format: \"json\n", 3, "unclosed \": the string never ends"},
		{"mapping value in a scalar", "log:\n  level: info\n  format: json: text\n", 3, "mapping values are not allowed in this context"},
		{"key without colon", "log:\n  level: info\nhealth\n", 3, "could not find expected ':'"},
		{"unknown anchor", "log: &l\n  level: info\nhealth: *h\n", 0, "unknown anchor 'h' referenced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.data))
			ce := asConfigError(t, err)
			if ce.File != "test.yaml" || ce.Line < 1 || (tc.line != 0 && ce.Line != tc.line) {
				t.Errorf("error %q: got %s:%d, want test.yaml:%d", err, ce.File, ce.Line, tc.line)
			}
			if ce.Msg != tc.want {
				t.Errorf("message %q, want %q", ce.Msg, tc.want)
			}
			if want := fmt.Sprintf("test.yaml:%d: %s", ce.Line, tc.want); err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(fullConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil {
		t.Fatalf("Load(%s): %v", good, err)
	}
	if c.Outputs.EVE != "/var/log/weir/eve.json" {
		t.Errorf("outputs.eve = %q", c.Outputs.EVE)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("log:\n  level: loud\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	ce := asConfigError(t, err)
	if ce.File != bad || ce.Line != 2 {
		t.Errorf("error %q: want file %s line 2", err, bad)
	}
	if want := bad + ":2: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want a not-exist error", err)
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{File: "a/b.yaml", Line: 12, Msg: "log.level: bad"}
	if got, want := e.Error(), "a/b.yaml:12: log.level: bad"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// checkConfigError parses data and wants a *Error at line whose message
// contains every string in want.
func checkConfigError(t *testing.T, data string, line int, want ...string) {
	t.Helper()
	c, err := Parse("test.yaml", []byte(data))
	if err == nil {
		t.Fatalf("Parse(%q) = %+v, want an error", data, c)
	}
	if c != nil {
		t.Errorf("ParseConfig returned a config with its error %v", err)
	}
	ce := asConfigError(t, err)
	if ce.File != "test.yaml" || ce.Line != line {
		t.Errorf("error %q: got %s:%d, want test.yaml:%d", err, ce.File, ce.Line, line)
	}
	prefix := fmt.Sprintf("test.yaml:%d: ", line)
	if !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("error %q does not start with %q", err, prefix)
	}
	if strings.Contains(ce.Msg, "\n") {
		t.Errorf("message %q spans lines", ce.Msg)
	}
	for _, w := range want {
		if !strings.Contains(ce.Msg, w) {
			t.Errorf("message %q does not contain %q", ce.Msg, w)
		}
	}
}

func asConfigError(t *testing.T, err error) *Error {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *Error", err, err)
	}
	return ce
}

func TestDetectRulesOnePath(t *testing.T) {
	c, err := Parse("/etc/weir/weir.yaml", []byte("detect:\n  rules: local.rules\n  mode: ips\n"))
	if err != nil || len(c.Detect.Rules) != 1 || c.Detect.Rules[0] != "/etc/weir/local.rules" || c.Detect.RuleLines[0] != 2 {
		t.Fatalf("rules: %v %v %v", c.Detect.Rules, c.Detect.RuleLines, err)
	}
	if _, err := Parse("w.yaml", []byte("detect:\n  mode: block\n")); err == nil || !strings.Contains(err.Error(), "w.yaml:2:") {
		t.Fatalf("bad mode: %v", err)
	}
}

func TestDetectErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"detect:\n  intel:\n    - {path: a.txt}\n", "w.yaml:3: detect.intel[0]: type is required"},
		{"detect:\n  intel:\n    - {type: ip}\n", "w.yaml:3: detect.intel[0]: path is required"},
		{"detect:\n  intel:\n    - {path: a.txt, type: ip, action: block}\n", "w.yaml:3: detect.intel[0].action"},
		{"detect:\n  vars:\n    HOME-NET: x\n", "w.yaml:3: detect.vars: \"HOME-NET\" is not a variable name"},
		{"detect:\n  portscan: {ports: 5000}\n", "w.yaml:2: detect.portscan.ports"},
		{"detect:\n  rules: [\"\"]\n", "w.yaml:2: detect.rules: an empty path"},
	} {
		if _, err := Parse("w.yaml", []byte(tc.yaml)); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %s...", tc.yaml, err, tc.want)
		}
	}
}
