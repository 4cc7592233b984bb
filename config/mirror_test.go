package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"weir/dataplane/mirror"
)

// twoFilters is what `aws ec2 describe-traffic-mirror-filters` prints for an account
// with two filters: filter_id must pick one.
const twoFilters = `{
  "TrafficMirrorFilters": [
    {
      "TrafficMirrorFilterId": "tmf-0000000000000000a",
      "Description": "web",
      "IngressFilterRules": [
        {"TrafficMirrorFilterRuleId": "tmfr-1", "TrafficMirrorFilterId": "tmf-0000000000000000a",
         "TrafficDirection": "ingress", "RuleNumber": 100, "RuleAction": "accept", "Protocol": 6,
         "DestinationPortRange": {"FromPort": 443, "ToPort": 443},
         "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "10.0.0.0/16"}
      ],
      "EgressFilterRules": [],
      "NetworkServices": [],
      "Tags": []
    },
    {
      "TrafficMirrorFilterId": "tmf-0000000000000000b",
      "Description": "db",
      "IngressFilterRules": [],
      "EgressFilterRules": [
        {"TrafficMirrorFilterRuleId": "tmfr-2", "TrafficMirrorFilterId": "tmf-0000000000000000b",
         "TrafficDirection": "egress", "RuleNumber": 200, "RuleAction": "reject", "Protocol": 17,
         "SourceCidrBlock": "10.0.0.0/16", "DestinationCidrBlock": "0.0.0.0/0"},
        {"TrafficMirrorFilterRuleId": "tmfr-3", "TrafficMirrorFilterId": "tmf-0000000000000000b",
         "TrafficDirection": "egress", "RuleNumber": 100, "RuleAction": "accept",
         "SourceCidrBlock": "10.0.0.0/16", "DestinationCidrBlock": "0.0.0.0/0"}
      ],
      "NetworkServices": ["amazon-dns"],
      "Tags": []
    }
  ]
}`

// oneFilter is a single-filter file (the shape create-traffic-mirror-filter prints
// is not used here; this is describe-traffic-mirror-filters with one filter).
const oneFilter = `{"TrafficMirrorFilters": [{
  "TrafficMirrorFilterId": "tmf-0000000000000000c",
  "IngressFilterRules": [
    {"TrafficDirection": "ingress", "RuleNumber": 10, "RuleAction": "accept",
     "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "0.0.0.0/0"}
  ],
  "EgressFilterRules": []
}]}`

// badRuleFilter has a bad egress rule 100 on line 8 (a port range with protocol ICMP).
const badRuleFilter = `{"TrafficMirrorFilters": [{
  "TrafficMirrorFilterId": "tmf-0000000000000000d",
  "IngressFilterRules": [
    {"TrafficDirection": "ingress", "RuleNumber": 10, "RuleAction": "accept",
     "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "0.0.0.0/0"}
  ],
  "EgressFilterRules": [
    {"TrafficDirection": "egress", "RuleNumber": 100, "RuleAction": "accept", "Protocol": 1,
     "DestinationPortRange": {"FromPort": 53, "ToPort": 53},
     "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "0.0.0.0/0"}
  ]
}]}`

const mirrorConfig = `# the mirror sink with every key
mirror:
  listen: 10.0.0.5:4789
  dedupe_window: 200ms
  amazon_dns: [169.254.169.253, "fd00:ec2::253", 10.0.0.2]
  sessions:
    - vni: 101
      name: web
      packet_length: 128
      eni_mac: 0A:1B:2C:3D:4E:5F
      eni_ip: 10.0.1.5
      interface_id: eni-0a1b2c3d4e5f60101
      filter:
        TrafficMirrorFilterId: tmf-0de0de0de0de0de01
        Description: inline
        NetworkServices: [amazon-dns]
        EgressFilterRules:
          - {RuleNumber: 200, RuleAction: accept, TrafficDirection: egress,
             SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}
          - {RuleNumber: 100, RuleAction: reject, TrafficDirection: egress, Protocol: 6,
             DestinationPortRange: {FromPort: 22, ToPort: 22},
             SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}
        IngressFilterRules:
          - RuleNumber: 100
            RuleAction: accept
            TrafficDirection: ingress
            Protocol: 17
            SourcePortRange: {FromPort: 1024, ToPort: 65535}
            SourceCidrBlock: "2001:db8::/32"
            DestinationCidrBlock: "::/0"
    - vni: 102
      filter: filters/aws.json
      filter_id: tmf-0000000000000000b
      eni_ip: "2001:db8::7"
    - vni: 0
      name: zero
      filter: filters/aws.json
      filter_id: tmf-0000000000000000a
    - vni: 16777215
      filter: one.json
    - catch_all: true
      packet_length: 0
outputs:
  pcap:
    dir: /var/lib/weir/pcap
    max_file_size: 512KiB
    max_file_age: 10m
    max_total_size: 1GiB
    queue: 1024
  flowlog:
    path: /var/log/weir/flows.log
    interval: 30s
    account_id: "012345678901"
`

// writeMirrorConfig writes mirrorConfig and its filter files into a new directory and
// returns the config file's path.
func writeMirrorConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "filters"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"filters/aws.json": twoFilters,
		"one.json":         oneFilter,
		"weir.yaml":        mirrorConfig,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "weir.yaml")
}

func TestParseConfigMirrorFull(t *testing.T) {
	path := writeMirrorConfig(t)
	// Run from elsewhere: relative filter paths are relative to the config file.
	t.Chdir(t.TempDir())
	c, err := Load(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	m := c.Mirror
	check("mirror.listen", m.Listen, netip.MustParseAddrPort("10.0.0.5:4789"))
	check("mirror.dedupe_window", m.DedupeWindow, 200*time.Millisecond)
	check("mirror.amazon_dns", m.AmazonDNS, []netip.Addr{
		netip.MustParseAddr("169.254.169.253"), netip.MustParseAddr("fd00:ec2::253"), netip.MustParseAddr("10.0.0.2"),
	})
	pc := c.Outputs.PCAP
	check("outputs.pcap.dir", pc.Dir, "/var/lib/weir/pcap")
	check("outputs.pcap.max_file_size", pc.MaxFileSize, int64(512<<10))
	check("outputs.pcap.max_file_age", pc.MaxFileAge, 10*time.Minute)
	check("outputs.pcap.max_total_size", pc.MaxTotalSize, int64(1<<30))
	check("outputs.pcap.queue", pc.Queue, 1024)
	fl := c.Outputs.FlowLog
	check("outputs.flowlog.path", fl.Path, "/var/log/weir/flows.log")
	check("outputs.flowlog.interval", fl.Interval, 30*time.Second)
	check("outputs.flowlog.account_id", fl.AccountID, "012345678901")

	if len(m.Sessions) != 5 {
		t.Fatalf("got %d sessions, want 5: %+v", len(m.Sessions), m.Sessions)
	}
	type want struct {
		name         string
		vni          uint32
		catchAll     bool
		packetLength int
		mac          net.HardwareAddr
		ip           netip.Addr
		ifID         string
		filterID     string // "" for no filter
		line         int
	}
	for i, w := range []want{
		{"web", 101, false, 128, net.HardwareAddr{0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f}, netip.MustParseAddr("10.0.1.5"),
			"eni-0a1b2c3d4e5f60101", "tmf-0de0de0de0de0de01", 7},
		{"vni-102", 102, false, 0, nil, netip.MustParseAddr("2001:db8::7"), "", "tmf-0000000000000000b", 31},
		{"zero", 0, false, 0, nil, netip.Addr{}, "", "tmf-0000000000000000a", 35},
		{"vni-16777215", 16777215, false, 0, nil, netip.Addr{}, "", "tmf-0000000000000000c", 39},
		{"catch-all", 0, true, 0, nil, netip.Addr{}, "", "", 41},
	} {
		s := m.Sessions[i]
		where := fmt.Sprintf("mirror.sessions[%d]", i)
		check(where+".name", s.Name, w.name)
		check(where+".vni", s.VNI, w.vni)
		check(where+".catch_all", s.CatchAll, w.catchAll)
		check(where+".packet_length", s.PacketLength, w.packetLength)
		check(where+".eni_mac", s.ENIMAC, w.mac)
		check(where+".eni_ip", s.ENIIP, w.ip)
		check(where+".interface_id", s.InterfaceID, w.ifID)
		check(where+" line", s.Line, w.line)
		switch {
		case w.filterID == "" && s.Filter != nil:
			t.Errorf("%s.filter = %+v, want none", where, s.Filter)
		case w.filterID != "" && s.Filter == nil:
			t.Errorf("%s.filter = nil, want %s", where, w.filterID)
		case w.filterID != "":
			check(where+".filter id", s.Filter.ID, w.filterID)
		}
	}

	// The inline filter: both lists, sorted by rule number, with every field.
	f := m.Sessions[0].Filter
	if f == nil {
		t.Fatal("no inline filter")
	}
	check("inline Description", f.Description, "inline")
	check("inline AmazonDNS", f.AmazonDNS, true)
	any4 := netip.MustParsePrefix("0.0.0.0/0")
	check("inline egress rules", f.Egress, []mirror.Rule{
		{Number: 100, Action: mirror.Reject, Direction: mirror.DirEgress, Protocol: 6, Src: any4, Dst: any4,
			DstPorts: &mirror.PortRange{From: 22, To: 22}, Where: f.Egress[0].Where},
		{Number: 200, Action: mirror.Accept, Direction: mirror.DirEgress, Protocol: mirror.AllProtocols, Src: any4, Dst: any4,
			Where: f.Egress[1].Where},
	})
	check("inline ingress rules", f.Ingress, []mirror.Rule{
		{Number: 100, Action: mirror.Accept, Direction: mirror.DirIngress, Protocol: 17,
			Src: netip.MustParsePrefix("2001:db8::/32"), Dst: netip.MustParsePrefix("::/0"),
			SrcPorts: &mirror.PortRange{From: 1024, To: 65535}, Where: f.Ingress[0].Where},
	})
	if !strings.Contains(f.Egress[0].Where, "egress rule 100") {
		t.Errorf("inline rule named %q, want it to say egress rule 100", f.Egress[0].Where)
	}

	// filter_id picked the second filter of the file, its rules sorted.
	b := m.Sessions[1].Filter
	if b != nil {
		check("file filter Description", b.Description, "db")
		check("file filter AmazonDNS", b.AmazonDNS, true)
		if len(b.Egress) != 2 || b.Egress[0].Number != 100 || b.Egress[1].Number != 200 || len(b.Ingress) != 0 {
			t.Errorf("file filter rules: egress %+v ingress %+v", b.Egress, b.Ingress)
		}
	}
	if a := m.Sessions[2].Filter; a != nil && (len(a.Ingress) != 1 || a.Ingress[0].Number != 100 || a.AmazonDNS) {
		t.Errorf("filter a: %+v", a)
	}
}

func TestParseConfigMirrorDefaults(t *testing.T) {
	for name, data := range map[string]string{
		"empty":           "",
		"null mirror":     "mirror:\n",
		"no sessions":     "mirror:\n  sessions: []\n",
		"null outputs":    "outputs:\n  pcap:\n  flowlog:\n",
		"pcap dir only":   "outputs:\n  pcap: {dir: /tmp/p}\n",
		"dedupe off":      "mirror:\n  dedupe_window: 0s\n",
		"default listen":  "mirror:\n  listen: 0.0.0.0:4789\n",
		"sessions absent": "mirror:\n  amazon_dns: [169.254.169.253, \"fd00:ec2::253\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse("test.yaml", []byte(data))
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			m := c.Mirror
			if got, want := m.Listen, netip.MustParseAddrPort("0.0.0.0:4789"); got != want {
				t.Errorf("mirror.listen = %v, want %v", got, want)
			}
			if want := []netip.Addr{netip.MustParseAddr("169.254.169.253"), netip.MustParseAddr("fd00:ec2::253")}; !reflect.DeepEqual(m.AmazonDNS, want) {
				t.Errorf("mirror.amazon_dns = %v, want %v", m.AmazonDNS, want)
			}
			if m.DedupeWindow != 0 || len(m.Sessions) != 0 {
				t.Errorf("mirror = %+v, want no dedupe and no sessions", m)
			}
			pc := c.Outputs.PCAP
			if pc.MaxFileSize != 100<<20 || pc.MaxFileAge != time.Hour || pc.MaxTotalSize != 1<<30 || pc.Queue != 8192 ||
				pc.ReorderWindow != 5*time.Millisecond {
				t.Errorf("outputs.pcap = %+v, want 100MiB, 1h, 1GiB, 8192, 5ms", pc)
			}
			if fl := c.Outputs.FlowLog; fl.Path != "" || fl.Interval != time.Minute || fl.AccountID != "" {
				t.Errorf("outputs.flowlog = %+v, want no path and a 1m interval", fl)
			}
		})
	}
}

func TestParseConfigMirrorValues(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		check      func(*Config) bool
	}{
		{"listener off", "mirror:\n  listen: \"\"\n", func(c *Config) bool { return c.Mirror.Listen == netip.AddrPort{} && !c.Mirror.Listen.IsValid() }},
		{"listener off, single quotes", "mirror:\n  listen: ''\n", func(c *Config) bool { return c.Mirror.Listen == netip.AddrPort{} }},
		{"listener on a port", "mirror:\n  listen: 127.0.0.1:14789\n", func(c *Config) bool { return c.Mirror.Listen == netip.MustParseAddrPort("127.0.0.1:14789") }},
		{"allowed sources", "mirror:\n  allowed_sources: [10.0.1.0/24, 10.0.2.7, \"fd00::/8\"]\n", func(c *Config) bool {
			return reflect.DeepEqual(c.Mirror.AllowedSources, []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24"),
				netip.MustParsePrefix("10.0.2.7/32"), netip.MustParsePrefix("fd00::/8")})
		}},
		{"no allowed sources", "mirror:\n  allowed_sources: []\n", func(c *Config) bool { return len(c.Mirror.AllowedSources) == 0 }},
		{"no amazon dns", "mirror:\n  amazon_dns: []\n", func(c *Config) bool { return len(c.Mirror.AmazonDNS) == 0 }},
		{"dedupe maximum", "mirror:\n  dedupe_window: 10s\n", func(c *Config) bool { return c.Mirror.DedupeWindow == 10*time.Second }},
		{"100MiB", "outputs:\n  pcap:\n    max_file_size: 100MiB\n", func(c *Config) bool { return c.Outputs.PCAP.MaxFileSize == 100<<20 }},
		{"1GiB", "outputs:\n  pcap:\n    max_file_size: 1GiB\n", func(c *Config) bool { return c.Outputs.PCAP.MaxFileSize == 1<<30 }},
		{"512KiB", "outputs:\n  pcap:\n    max_total_size: 512KiB\n", func(c *Config) bool { return c.Outputs.PCAP.MaxTotalSize == 512<<10 }},
		{"MB is MiB", "outputs:\n  pcap:\n    max_file_size: 2MB\n", func(c *Config) bool { return c.Outputs.PCAP.MaxFileSize == 2<<20 }},
		{"plain bytes", "outputs:\n  pcap:\n    max_file_size: 1048576\n", func(c *Config) bool { return c.Outputs.PCAP.MaxFileSize == 1<<20 }},
		{"space before unit", "outputs:\n  pcap:\n    max_total_size: 2 TiB\n", func(c *Config) bool { return c.Outputs.PCAP.MaxTotalSize == 2<<40 }},
		{"minimum size", "outputs:\n  pcap:\n    max_file_size: 64KiB\n", func(c *Config) bool { return c.Outputs.PCAP.MaxFileSize == 64<<10 }},
		{"max_file_age", "outputs:\n  pcap:\n    max_file_age: 1h30m\n", func(c *Config) bool { return c.Outputs.PCAP.MaxFileAge == 90*time.Minute }},
		{"reorder_window", "outputs:\n  pcap:\n    reorder_window: 50ms\n", func(c *Config) bool { return c.Outputs.PCAP.ReorderWindow == 50*time.Millisecond }},
		{"reorder_window off", "outputs:\n  pcap:\n    reorder_window: 0s\n", func(c *Config) bool { return c.Outputs.PCAP.ReorderWindow == 0 }},
		{"flowlog interval", "outputs:\n  flowlog:\n    interval: 1s\n", func(c *Config) bool { return c.Outputs.FlowLog.Interval == time.Second }},
		{"catch-all with a name", "mirror:\n  sessions:\n    - {catch_all: true, name: rest}\n", func(c *Config) bool {
			s := c.Mirror.Sessions
			return len(s) == 1 && s[0].CatchAll && s[0].Name == "rest"
		}},
		{"catch_all false with a vni", "mirror:\n  sessions:\n    - {vni: 7, catch_all: false}\n", func(c *Config) bool {
			s := c.Mirror.Sessions
			return len(s) == 1 && !s[0].CatchAll && s[0].VNI == 7 && s[0].Name == "vni-7"
		}},
		{"eni_mac with dashes", "mirror:\n  sessions:\n    - {vni: 7, eni_mac: 02-00-00-00-00-01}\n", func(c *Config) bool {
			return c.Mirror.Sessions[0].ENIMAC.String() == "02:00:00:00:00:01"
		}},
		{"packet_length maximum", "mirror:\n  sessions:\n    - {vni: 7, packet_length: 65535}\n", func(c *Config) bool {
			return c.Mirror.Sessions[0].PacketLength == 65535
		}},
		{"inline filter, one filter document", "mirror:\n  sessions:\n    - vni: 7\n      filter:\n        TrafficMirrorFilters:\n          - TrafficMirrorFilterId: tmf-1\n            IngressFilterRules: []\n          - TrafficMirrorFilterId: tmf-2\n            EgressFilterRules:\n              - {RuleNumber: 1, RuleAction: accept, TrafficDirection: egress, SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}\n      filter_id: tmf-2\n",
			func(c *Config) bool {
				f := c.Mirror.Sessions[0].Filter
				return f != nil && f.ID == "tmf-2" && len(f.Egress) == 1
			}},
		{"inline filter without rules mirrors nothing", "mirror:\n  sessions:\n    - vni: 7\n      filter: {TrafficMirrorFilterId: tmf-1}\n", func(c *Config) bool {
			f := c.Mirror.Sessions[0].Filter
			return f != nil && len(f.Ingress)+len(f.Egress) == 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("test.yaml", []byte(tc.data))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.data, err)
			}
			if !tc.check(c) {
				t.Errorf("Parse(%q): wrong value: mirror %+v outputs %+v", tc.data, c.Mirror, c.Outputs)
			}
		})
	}
}

func TestParseConfigMirrorErrors(t *testing.T) {
	const rule = "{RuleNumber: 100, RuleAction: accept, TrafficDirection: egress, SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}"
	for _, tc := range []struct {
		name string
		data string
		line int
		want []string
	}{
		{"both vni and catch_all", "mirror:\n  sessions:\n    - name: a\n      vni: 5\n      catch_all: true\n", 3,
			[]string{"mirror.sessions[0]", "either a vni or catch_all"}},
		{"neither vni nor catch_all", "mirror:\n  sessions:\n    - vni: 1\n    - name: lost\n      packet_length: 64\n", 4,
			[]string{"mirror.sessions[1]", "either a vni or catch_all"}},
		{"catch_all false alone", "mirror:\n  sessions:\n    - catch_all: false\n", 3,
			[]string{"mirror.sessions[0]", "either a vni or catch_all"}},
		{"duplicate VNI", "mirror:\n  sessions:\n    - {vni: 5, name: a}\n    - {vni: 6, name: b}\n    - {vni: 5, name: c}\n", 5,
			[]string{"mirror.sessions[2]", "VNI 5", "line 3"}},
		{"two catch-alls", "mirror:\n  sessions:\n    - catch_all: true\n    - vni: 1\n    - catch_all: true\n      name: other\n", 5,
			[]string{"mirror.sessions[2]", "catch-all", "line 3"}},
		{"duplicate names", "mirror:\n  sessions:\n    - {vni: 1, name: web}\n    - {vni: 2, name: web}\n", 4,
			[]string{"mirror.sessions[1]", `"web"`, "line 3"}},
		{"explicit name equal to a default one", "mirror:\n  sessions:\n    - {vni: 1}\n    - {vni: 2, name: vni-1}\n", 4,
			[]string{"mirror.sessions[1]", `"vni-1"`}},
		{"vni 16777216", "mirror:\n  sessions:\n    - name: big\n      vni: 16777216\n", 4,
			[]string{"mirror.sessions[0].vni", "16777216", "out of range"}},
		{"vni -1", "mirror:\n  sessions:\n    - vni: -1\n", 3,
			[]string{"mirror.sessions[0].vni", "out of range"}},
		{"vni not a number", "mirror:\n  sessions:\n    - vni: web\n", 3,
			[]string{"mirror.sessions[0].vni", `"web"`}},
		{"packet_length -1", "mirror:\n  sessions:\n    - vni: 1\n      packet_length: -1\n", 4,
			[]string{"mirror.sessions[0].packet_length", "-1", "out of range"}},
		{"packet_length 65536", "mirror:\n  sessions:\n    - vni: 1\n      packet_length: 65536\n", 4,
			[]string{"mirror.sessions[0].packet_length", "out of range"}},
		{"bad catch_all", "mirror:\n  sessions:\n    - catch_all: yes\n", 3,
			[]string{"mirror.sessions[0].catch_all", `"yes"`}},
		{"bad eni_mac", "mirror:\n  sessions:\n    - vni: 1\n      eni_mac: 0a:1b:2c:3d:4e\n", 4,
			[]string{"mirror.sessions[0].eni_mac", "0a:1b:2c:3d:4e"}},
		{"eni_mac of 8 bytes", "mirror:\n  sessions:\n    - vni: 1\n      eni_mac: 00:00:00:00:fe:80:00:00\n", 4,
			[]string{"mirror.sessions[0].eni_mac"}},
		{"bad eni_ip", "mirror:\n  sessions:\n    - vni: 1\n      eni_ip: 10.0.0.256\n", 4,
			[]string{"mirror.sessions[0].eni_ip", "10.0.0.256"}},
		{"eni_ip a CIDR", "mirror:\n  sessions:\n    - vni: 1\n      eni_ip: 10.0.0.0/24\n", 4,
			[]string{"mirror.sessions[0].eni_ip"}},
		{"filter file missing", "mirror:\n  sessions:\n    - vni: 1\n      filter: no-such-filter.json\n", 4,
			[]string{"mirror.sessions[0].filter", "no-such-filter.json"}},
		{"inline filter with a bad rule", "mirror:\n  sessions:\n    - vni: 1\n      filter:\n        TrafficMirrorFilterId: tmf-1\n        EgressFilterRules:\n          - " + rule + "\n          - {RuleNumber: 200, RuleAction: maybe, TrafficDirection: egress, SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}\n", 8,
			[]string{"mirror.sessions[0].filter", "egress rule 200", "maybe"}},
		{"inline filter, rule in the wrong list", "mirror:\n  sessions:\n    - vni: 1\n      filter:\n        IngressFilterRules:\n          - RuleNumber: 100\n            RuleAction: accept\n            TrafficDirection: egress\n            SourceCidrBlock: 0.0.0.0/0\n            DestinationCidrBlock: 0.0.0.0/0\n", 6,
			[]string{"mirror.sessions[0].filter", "ingress rule 100", "IngressFilterRules"}},
		{"inline filter, bad CIDR", "mirror:\n  sessions:\n    - vni: 1\n      filter:\n        EgressFilterRules:\n          - {RuleNumber: 7, RuleAction: reject, TrafficDirection: egress, SourceCidrBlock: 10.0.0.0/33, DestinationCidrBlock: 0.0.0.0/0}\n", 6,
			[]string{"mirror.sessions[0].filter", "egress rule 7", "10.0.0.0/33"}},
		{"inline filter, duplicate rule numbers", "mirror:\n  sessions:\n    - vni: 1\n      filter:\n        EgressFilterRules:\n          - " + rule + "\n          - " + rule + "\n", 7,
			[]string{"mirror.sessions[0].filter", "egress rule 100", "duplicate"}},
		{"inline filter, not a filter", "mirror:\n  sessions:\n    - vni: 1\n      filter: {Rules: []}\n", 4,
			[]string{"mirror.sessions[0].filter", "not a Traffic Mirror filter"}},
		{"inline filter, wrong filter_id", "mirror:\n  sessions:\n    - vni: 1\n      filter_id: tmf-2\n      filter:\n        TrafficMirrorFilterId: tmf-1\n", 6,
			[]string{"mirror.sessions[0].filter", "tmf-2"}},
		{"inline filter, unknown network service", "mirror:\n  sessions:\n    - vni: 1\n      filter:\n        TrafficMirrorFilterId: tmf-1\n        NetworkServices: [dns]\n", 5,
			[]string{"mirror.sessions[0].filter", "tmf-1", `"dns"`}},
		{"inline filter, rule number not a number", "mirror:\n  sessions:\n    - vni: 1\n      filter:\n        EgressFilterRules:\n          - " + rule + "\n          - {RuleNumber: x, RuleAction: accept}\n", 7,
			[]string{"mirror.sessions[0].filter", "EgressFilterRules[1]", "RuleNumber"}},
		{"inline filter, duplicate key", "mirror:\n  sessions:\n    - vni: 1\n      filter:\n        TrafficMirrorFilterId: tmf-1\n        TrafficMirrorFilterId: tmf-2\n", 6,
			[]string{"mirror.sessions[0].filter", "duplicate key", "TrafficMirrorFilterId"}},
		{"inline filter a list", "mirror:\n  sessions:\n    - vni: 1\n      filter: [1, 2]\n", 4,
			[]string{"mirror.sessions[0].filter", "expected"}},
		{"empty filter", "mirror:\n  sessions:\n    - vni: 1\n      filter:\n", 4,
			[]string{"mirror.sessions[0].filter", "expected"}},
		{"filter_id without filter", "mirror:\n  sessions:\n    - vni: 1\n      filter_id: tmf-0123\n", 4,
			[]string{"mirror.sessions[0].filter_id", "without a filter"}},
		{"unknown session key", "mirror:\n  sessions:\n    - vni: 1\n      priority: 5\n", 4,
			[]string{`unknown key "mirror.sessions[0].priority"`, "packet_length"}},
		{"unknown mirror key", "mirror:\n  listen: 0.0.0.0:4789\n  vni: 5\n", 3,
			[]string{`unknown key "mirror.vni"`, "sessions"}},
		{"session not a mapping", "mirror:\n  sessions:\n    - 5\n", 3,
			[]string{"mirror.sessions[0]", "mapping"}},
		{"sessions not a list", "mirror:\n  sessions: {vni: 5}\n", 2,
			[]string{"mirror.sessions", "list"}},
		{"bad size", "outputs:\n  pcap:\n    dir: /tmp\n    max_file_size: 10 parsecs\n", 4,
			[]string{"outputs.pcap.max_file_size", "10 parsecs"}},
		{"reorder_window too long", "outputs:\n  pcap:\n    reorder_window: 1m\n", 3,
			[]string{"outputs.pcap.reorder_window", "out of range"}},
		{"negative size", "outputs:\n  pcap:\n    max_total_size: -1GiB\n", 3,
			[]string{"outputs.pcap.max_total_size", "-1GiB"}},
		{"fractional size", "outputs:\n  pcap:\n    max_total_size: 1.5GiB\n", 3,
			[]string{"outputs.pcap.max_total_size"}},
		{"max_file_size below the minimum", "outputs:\n  pcap:\n    max_file_size: 1KiB\n", 3,
			[]string{"outputs.pcap.max_file_size", "minimum", "65536"}},
		{"max_total_size below the minimum", "outputs:\n  pcap:\n    max_total_size: 65535\n", 3,
			[]string{"outputs.pcap.max_total_size", "minimum"}},
		{"max_file_age 0", "outputs:\n  pcap:\n    max_file_age: 0s\n", 3,
			[]string{"outputs.pcap.max_file_age", "out of range"}},
		{"pcap queue too small", "outputs:\n  pcap:\n    queue: 8\n", 3,
			[]string{"outputs.pcap.queue", "out of range"}},
		{"unknown pcap key", "outputs:\n  pcap:\n    snaplen: 96\n", 3,
			[]string{`unknown key "outputs.pcap.snaplen"`}},
		{"flowlog interval too long", "outputs:\n  flowlog:\n    interval: 2h\n", 3,
			[]string{"outputs.flowlog.interval", "out of range"}},
		{"bad amazon_dns entry", "mirror:\n  amazon_dns:\n    - 169.254.169.253\n    - amazon\n", 4,
			[]string{"mirror.amazon_dns", `"amazon"`}},
		{"bad allowed_sources entry", "mirror:\n  allowed_sources:\n    - 10.0.1.0/24\n    - 10.0.2.1/24\n", 4,
			[]string{"mirror.allowed_sources", "host bits", "10.0.2.0/24"}},
		{"allowed_sources not a CIDR", "mirror:\n  allowed_sources: [everywhere]\n", 2,
			[]string{"mirror.allowed_sources", `"everywhere"`}},
		{"allowed_sources not a list", "mirror:\n  allowed_sources: 10.0.0.0/8\n", 2,
			[]string{"mirror.allowed_sources", "list"}},
		{"amazon_dns not a list", "mirror:\n  amazon_dns: 169.254.169.253\n", 2,
			[]string{"mirror.amazon_dns", "list"}},
		{"bad dedupe_window", "mirror:\n  dedupe_window: 11s\n", 2,
			[]string{"mirror.dedupe_window", "out of range"}},
		{"bad mirror.listen", "mirror:\n  listen: 4789\n", 2,
			[]string{"mirror.listen", `"4789"`}},
		{"IPv6 mirror.listen", "mirror:\n  listen: \"[::]:4789\"\n", 2,
			[]string{"mirror.listen", "IPv4", "VXLAN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConfigError(t, tc.data, tc.line, tc.want...)
		})
	}
}

// TestParseConfigMirrorFilterErrorLines: every problem of an inline filter is
// reported, each at its own line of the config file and none at a position of the
// JSON the filter is turned into.
func TestParseConfigMirrorFilterErrorLines(t *testing.T) {
	const data = `mirror:
  sessions:
    - vni: 1
      filter:
        TrafficMirrorFilterId: tmf-1
        IngressFilterRules:
          - {RuleNumber: 100, RuleAction: accept, TrafficDirection: ingress,
             SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}
        EgressFilterRules:
          - {RuleNumber: 100, RuleAction: accept, TrafficDirection: ingress,
             SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}
          - RuleNumber: 200
            RuleAction: maybe
            TrafficDirection: egress
            SourceCidrBlock: 0.0.0.0/0
            DestinationCidrBlock: 0.0.0.0/0
`
	_, err := Parse("test.yaml", []byte(data))
	ce := asConfigError(t, err)
	if ce.Line != 10 {
		t.Errorf("error %q at line %d, want 10 (the first bad rule)", err, ce.Line)
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"test.yaml:10: mirror.sessions[0].filter: tmf-1 egress rule 100: TrafficDirection ingress but listed under EgressFilterRules",
		`test.yaml:12: tmf-1 egress rule 200: bad RuleAction "maybe" (want accept or reject)`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("error lines\n%q\nwant\n%q", lines, want)
	}
}

// TestLoadConfigMirrorFilterFiles: filter files are found relative to the config
// file, and their errors give the config line and name the filter file's rule.
func TestLoadConfigMirrorFilterFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("two.json", twoFilters)
	write("bad.json", badRuleFilter)
	write("broken.json", "{\"TrafficMirrorFilters\": [\n  {\"TrafficMirrorFilterId\": \"tmf-1\",,}\n]}\n")
	abs := write("one.json", oneFilter)

	for _, tc := range []struct {
		name, config string
		line         int // 0: valid
		want         []string
		id           string // when valid: the filter chosen
	}{
		{"relative", "mirror:\n  sessions:\n    - {vni: 1, filter: one.json}\n", 0, nil, "tmf-0000000000000000c"},
		{"dot relative", "mirror:\n  sessions:\n    - {vni: 1, filter: ./one.json}\n", 0, nil, "tmf-0000000000000000c"},
		{"absolute", "mirror:\n  sessions:\n    - {vni: 1, filter: " + abs + "}\n", 0, nil, "tmf-0000000000000000c"},
		{"filter_id a", "mirror:\n  sessions:\n    - {vni: 1, filter: two.json, filter_id: tmf-0000000000000000a}\n", 0, nil, "tmf-0000000000000000a"},
		{"filter_id b", "mirror:\n  sessions:\n    - {vni: 1, filter_id: tmf-0000000000000000b, filter: two.json}\n", 0, nil, "tmf-0000000000000000b"},
		{"filter_id of the only filter", "mirror:\n  sessions:\n    - {vni: 1, filter: one.json, filter_id: tmf-0000000000000000c}\n", 0, nil, "tmf-0000000000000000c"},
		{"two filters, no filter_id", "mirror:\n  sessions:\n    - vni: 1\n      filter: two.json\n", 4,
			[]string{"mirror.sessions[0].filter", "tmf-0000000000000000a", "tmf-0000000000000000b", "say which"}, ""},
		{"filter_id not in the file", "mirror:\n  sessions:\n    - vni: 1\n      filter: two.json\n      filter_id: tmf-0000000000000000e\n", 4,
			[]string{"mirror.sessions[0].filter", "tmf-0000000000000000e"}, ""},
		{"filter file missing", "mirror:\n  sessions:\n    - vni: 1\n    - vni: 2\n      filter: missing.json\n", 5,
			[]string{"mirror.sessions[1].filter", filepath.Join(dir, "missing.json")}, ""},
		{"filter file with a bad rule", "# web\nmirror:\n  sessions:\n    - vni: 1\n      filter: bad.json\n", 5,
			[]string{"mirror.sessions[0].filter", filepath.Join(dir, "bad.json") + ":8:", "tmf-0000000000000000d egress rule 100",
				"DestinationPortRange needs Protocol 6 (TCP) or 17 (UDP), not 1"}, ""},
		{"filter file not JSON", "mirror:\n  sessions:\n    - vni: 1\n      filter: broken.json\n", 4,
			// yaml.v3 gives the line of the collection that went wrong (the list
			// opened on line 1), not always that of the bad token.
			[]string{"mirror.sessions[0].filter", filepath.Join(dir, "broken.json") + ":1:", "invalid JSON or YAML"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write("weir.yaml", tc.config)
			c, err := Load(path)
			if tc.line == 0 {
				if err != nil {
					t.Fatalf("LoadConfig: %v", err)
				}
				if f := c.Mirror.Sessions[0].Filter; f == nil || f.ID != tc.id {
					t.Errorf("filter %+v, want %s", f, tc.id)
				}
				return
			}
			ce := asConfigError(t, err)
			if ce.File != path || ce.Line != tc.line {
				t.Errorf("error %q: got %s:%d, want %s:%d", err, ce.File, ce.Line, path, tc.line)
			}
			if prefix := fmt.Sprintf("%s:%d: ", path, tc.line); !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			for _, w := range tc.want {
				if !strings.Contains(ce.Msg, w) {
					t.Errorf("message %q does not contain %q", ce.Msg, w)
				}
			}
		})
	}
}

func TestMirrorGWLBEndpointsAndPorts(t *testing.T) {
	c, err := Parse("test.yaml", []byte("mirror:\n  gwlb_endpoints: [vpce-0123456789abcdef0, vpce-1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{0x0123456789abcdef0, 1}; len(c.Mirror.GWLBEndpoints) != 2 ||
		c.Mirror.GWLBEndpoints[0] != want[0] || c.Mirror.GWLBEndpoints[1] != want[1] {
		t.Errorf("gwlb_endpoints = %x, want %x", c.Mirror.GWLBEndpoints, want)
	}
	for _, tc := range []struct {
		name, data string
		line       int
		want       string
	}{
		{"not vpce", "mirror:\n  gwlb_endpoints: [eni-0123]\n", 2, "mirror.gwlb_endpoints"},
		{"too long", "mirror:\n  gwlb_endpoints: [vpce-0123456789abcdef01]\n", 2, "mirror.gwlb_endpoints"},
		{"same port", "gwlb:\n  listen: 0.0.0.0:7000\nmirror:\n  listen: 10.0.0.1:7000\n", 4, "share a port"},
		{"same port, mirror default", "gwlb:\n  listen: 0.0.0.0:4789\n", 2, "share a port"},
		{"closed timeout zero", "flows:\n  closed_timeout: 0s\n", 2, "flows.closed_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.data))
			ce := asConfigError(t, err)
			if ce.Line != tc.line || !strings.Contains(ce.Msg, tc.want) {
				t.Errorf("%v: want line %d mentioning %q", err, tc.line, tc.want)
			}
		})
	}
	// Different ports, or different specific addresses, are fine.
	if _, err := Parse("test.yaml", []byte("gwlb:\n  listen: 10.0.0.1:7000\nmirror:\n  listen: 10.0.0.2:7000\n")); err != nil {
		t.Error(err)
	}
}
