package mirror

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"weir/dataplane/packet"
)

const (
	tcp   = packet.ProtoTCP
	udp   = packet.ProtoUDP
	icmp  = packet.ProtoICMP
	icmp6 = packet.ProtoICMPv6
)

func pkt(proto uint8, src string, sport uint16, dst string, dport uint16) *packet.Packet {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	fam := uint8(4)
	if s.Is6() && !s.Is4In6() {
		fam = 6
	}
	return &packet.Packet{Family: fam, Proto: proto, Src: s, Dst: d, SrcPort: sport, DstPort: dport}
}

func frag(p *packet.Packet) *packet.Packet {
	q := *p
	q.Fragment, q.SrcPort, q.DstPort = true, 0, 0
	return &q
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func ports(from, to uint16) *PortRange { return &PortRange{From: from, To: to} }

var (
	any4 = pfx("0.0.0.0/0")
	any6 = pfx("::/0")
)

// rule builds a rule matching all IPv4 traffic, to be narrowed by the caller.
func rule(n int, a RuleAction) Rule {
	return Rule{Number: n, Action: a, Protocol: AllProtocols, Src: any4, Dst: any4}
}

func with(r Rule, f func(*Rule)) Rule { f(&r); return r }

var amazonDNS = []netip.Addr{
	netip.MustParseAddr("169.254.169.253"),
	netip.MustParseAddr("fd00:ec2::253"),
	netip.MustParseAddr("10.0.0.2"), // VPC 10.0.0.0/16 base + 2
}

// TestMirrored has one case for each point of the filter semantics.
func TestMirrored(t *testing.T) {
	web := pkt(tcp, "10.0.1.5", 40000, "192.0.2.10", 443)
	dnsQ := pkt(udp, "10.0.1.5", 5353, "192.0.2.53", 53)
	ping := pkt(icmp, "10.0.1.5", 443, "192.0.2.10", 443) // echo id 443 in both "ports"
	web6 := pkt(tcp, "2001:db8::5", 40000, "2001:db8:1::10", 443)
	ping6 := pkt(icmp6, "2001:db8::5", 7, "2001:db8:1::10", 7)
	mapped := pkt(tcp, "::ffff:10.0.1.5", 40000, "::ffff:192.0.2.10", 443)
	toAmazonDNS := pkt(udp, "10.0.1.5", 40001, "169.254.169.253", 53)
	fromAmazonDNS := pkt(udp, "169.254.169.253", 53, "10.0.1.5", 40001)
	toVPCDNS := pkt(tcp, "10.0.1.5", 40002, "10.0.0.2", 53)
	toAmazonDNS6 := pkt(udp, "2001:db8::5", 40003, "fd00:ec2::253", 53)
	dnsFrag := frag(fromAmazonDNS)
	dnsAddrOtherPort := pkt(tcp, "10.0.1.5", 40004, "10.0.0.2", 80)
	pingAmazonDNS := pkt(icmp, "10.0.1.5", 9, "169.254.169.253", 9)

	acceptAll := rule(100, Accept)
	rejectAll := rule(100, Reject)
	acceptAll6 := with(acceptAll, func(r *Rule) { r.Src, r.Dst = any6, any6 })
	only := func(rs ...Rule) *Filter { return &Filter{Ingress: rs, Egress: rs} }

	for _, tc := range []struct {
		name string
		f    *Filter
		p    *packet.Packet
		d    Direction
		dns  []netip.Addr
		want bool
	}{
		// Order and first match.
		{"nil filter mirrors nothing", nil, web, DirIngress, nil, false},
		{"no rules: no match, not mirrored", &Filter{}, web, DirIngress, nil, false},
		{"no matching rule: not mirrored", only(with(acceptAll, func(r *Rule) { r.Protocol = int(udp) })), web, DirIngress, nil, false},
		{"matching accept: mirrored", only(acceptAll), web, DirIngress, nil, true},
		{"matching reject: not mirrored", only(rejectAll), web, DirIngress, nil, false},
		{"first match decides: reject before accept", only(rejectAll, with(acceptAll, func(r *Rule) { r.Number = 200 })), web, DirIngress, nil, false},
		{"first match decides: accept before reject", only(acceptAll, with(rejectAll, func(r *Rule) { r.Number = 200 })), web, DirIngress, nil, true},
		{"non-matching rule skipped, later one decides", only(
			with(rejectAll, func(r *Rule) { r.Protocol = int(udp) }),
			with(acceptAll, func(r *Rule) { r.Number = 200 })), web, DirIngress, nil, true},

		// Protocol.
		{"AllProtocols matches TCP", only(acceptAll), web, DirEgress, nil, true},
		{"AllProtocols matches UDP", only(acceptAll), dnsQ, DirEgress, nil, true},
		{"AllProtocols matches ICMP", only(acceptAll), ping, DirEgress, nil, true},
		{"protocol 6 matches TCP", only(with(acceptAll, func(r *Rule) { r.Protocol = 6 })), web, DirEgress, nil, true},
		{"protocol 6 does not match UDP", only(with(acceptAll, func(r *Rule) { r.Protocol = 6 })), dnsQ, DirEgress, nil, false},
		{"protocol 0 is a number, not all", only(with(acceptAll, func(r *Rule) { r.Protocol = 0 })), web, DirEgress, nil, false},
		{"protocol 1 matches ICMP", only(with(acceptAll, func(r *Rule) { r.Protocol = 1 })), ping, DirEgress, nil, true},

		// CIDRs.
		{"source CIDR contains", only(with(acceptAll, func(r *Rule) { r.Src = pfx("10.0.0.0/16") })), web, DirIngress, nil, true},
		{"source CIDR does not contain", only(with(acceptAll, func(r *Rule) { r.Src = pfx("10.1.0.0/16") })), web, DirIngress, nil, false},
		{"destination CIDR contains", only(with(acceptAll, func(r *Rule) { r.Dst = pfx("192.0.2.10/32") })), web, DirIngress, nil, true},
		{"destination CIDR does not contain", only(with(acceptAll, func(r *Rule) { r.Dst = pfx("192.0.2.11/32") })), web, DirIngress, nil, false},
		{"IPv4 rule never matches IPv6", only(acceptAll), web6, DirIngress, nil, false},
		{"IPv6 rule never matches IPv4", only(acceptAll6), web, DirIngress, nil, false},
		{"IPv6 rule matches IPv6", only(acceptAll6), web6, DirIngress, nil, true},
		{"IPv6 rule, ICMPv6", only(acceptAll6), ping6, DirIngress, nil, true},
		{"IPv4 rule never matches v4-mapped IPv6", only(acceptAll), mapped, DirIngress, nil, false},

		// Port ranges.
		{"destination port in range", only(with(acceptAll, func(r *Rule) { r.Protocol, r.DstPorts = 6, ports(443, 443) })), web, DirIngress, nil, true},
		{"destination port out of range", only(with(acceptAll, func(r *Rule) { r.Protocol, r.DstPorts = 6, ports(80, 442) })), web, DirIngress, nil, false},
		{"range bounds inclusive (From)", only(with(acceptAll, func(r *Rule) { r.Protocol, r.DstPorts = 6, ports(443, 500) })), web, DirIngress, nil, true},
		{"range bounds inclusive (To)", only(with(acceptAll, func(r *Rule) { r.Protocol, r.SrcPorts = 6, ports(1024, 40000) })), web, DirIngress, nil, true},
		{"source port out of range", only(with(acceptAll, func(r *Rule) { r.Protocol, r.SrcPorts = 6, ports(1, 1023) })), web, DirIngress, nil, false},
		{"both ranges must match", only(with(acceptAll, func(r *Rule) { r.Protocol, r.SrcPorts, r.DstPorts = 6, ports(1024, 65535), ports(80, 80) })), web, DirIngress, nil, false},
		{"UDP port range", only(with(acceptAll, func(r *Rule) { r.Protocol, r.DstPorts = 17, ports(53, 53) })), dnsQ, DirIngress, nil, true},
		{"port range never matches ICMP (echo id in range)", only(with(acceptAll, func(r *Rule) { r.DstPorts = ports(443, 443) })), ping, DirIngress, nil, false},
		{"port range never matches a non-first fragment", only(with(acceptAll, func(r *Rule) { r.Protocol, r.DstPorts = 6, ports(0, 65535) })), frag(web), DirIngress, nil, false},
		{"protocol-only rule matches a fragment", only(with(acceptAll, func(r *Rule) { r.Protocol = 6 })), frag(web), DirIngress, nil, true},

		// Directions.
		{"ingress uses the ingress list", &Filter{Ingress: []Rule{acceptAll}, Egress: []Rule{rejectAll}}, web, DirIngress, nil, true},
		{"egress uses the egress list", &Filter{Ingress: []Rule{acceptAll}, Egress: []Rule{rejectAll}}, web, DirEgress, nil, false},
		{"egress list only, ingress packet", &Filter{Egress: []Rule{acceptAll}}, web, DirIngress, nil, false},
		{"unknown: mirrored if the ingress list would", &Filter{Ingress: []Rule{acceptAll}, Egress: []Rule{rejectAll}}, web, DirUnknown, nil, true},
		{"unknown: mirrored if the egress list would", &Filter{Ingress: []Rule{rejectAll}, Egress: []Rule{acceptAll}}, web, DirUnknown, nil, true},
		{"unknown: not if neither would", &Filter{Ingress: []Rule{rejectAll}}, web, DirUnknown, nil, false},

		// Amazon DNS.
		{"to Amazon DNS, no amazon-dns: not mirrored despite accept", only(acceptAll), toAmazonDNS, DirEgress, amazonDNS, false},
		{"from Amazon DNS, no amazon-dns: not mirrored", only(acceptAll), fromAmazonDNS, DirIngress, amazonDNS, false},
		{"to VPC+2 DNS over TCP: not mirrored", only(acceptAll), toVPCDNS, DirEgress, amazonDNS, false},
		{"to IPv6 Amazon DNS: not mirrored", only(acceptAll6), toAmazonDNS6, DirEgress, amazonDNS, false},
		{"fragment from Amazon DNS: not mirrored", only(acceptAll), dnsFrag, DirIngress, amazonDNS, false},
		{"amazon-dns: mirrored", &Filter{Egress: []Rule{acceptAll}, AmazonDNS: true}, toAmazonDNS, DirEgress, amazonDNS, true},
		{"amazon-dns: mirrored whatever the rules say", &Filter{Egress: []Rule{rejectAll}, AmazonDNS: true}, toAmazonDNS, DirEgress, amazonDNS, true},
		{"amazon-dns: mirrored with no rules", &Filter{AmazonDNS: true}, fromAmazonDNS, DirUnknown, amazonDNS, true},
		{"amazon-dns does not mirror other traffic", &Filter{AmazonDNS: true}, web, DirEgress, amazonDNS, false},
		{"DNS server address, other port: rules decide", only(rejectAll), dnsAddrOtherPort, DirEgress, amazonDNS, false},
		{"DNS server address, other port: rules decide (accept)", only(acceptAll), dnsAddrOtherPort, DirEgress, amazonDNS, true},
		{"ICMP to DNS server address: rules decide", only(acceptAll), pingAmazonDNS, DirEgress, amazonDNS, true},
		{"port 53 elsewhere: rules decide", only(acceptAll), dnsQ, DirEgress, amazonDNS, true},
		{"no DNS addresses given: rules decide", only(acceptAll), toAmazonDNS, DirEgress, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.Mirrored(tc.p, tc.d, tc.dns); got != tc.want {
				t.Errorf("Mirrored(%+v, %s) = %v, want %v", *tc.p, tc.d, got, tc.want)
			}
		})
	}
}

func TestMirroredNoAlloc(t *testing.T) {
	f, err := ParseFilter("doc.json", []byte(describeDoc), "tmf-0a1b2c3d4e5f60718")
	if err != nil {
		t.Fatal(err)
	}
	pkts := []*packet.Packet{
		pkt(tcp, "198.51.100.7", 40000, "10.0.1.5", 443),
		pkt(udp, "10.0.1.5", 40001, "169.254.169.253", 53),
		pkt(tcp, "2001:db8::5", 40000, "2001:db8:1::10", 443),
		pkt(icmp, "10.0.1.5", 1, "192.0.2.1", 1),
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, p := range pkts {
			for _, d := range []Direction{DirIngress, DirEgress, DirUnknown} {
				f.Mirrored(p, d, amazonDNS)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("Mirrored allocates %v times per run", allocs)
	}
}

func BenchmarkMirrored(b *testing.B) {
	f, err := ParseFilter("doc.json", []byte(describeDoc), "tmf-0a1b2c3d4e5f60718")
	if err != nil {
		b.Fatal(err)
	}
	p := pkt(tcp, "10.0.1.5", 40000, "192.0.2.10", 443)
	b.ReportAllocs()
	for b.Loop() {
		f.Mirrored(p, DirEgress, amazonDNS)
	}
}

// describeDoc is what `aws ec2 describe-traffic-mirror-filters` prints: two filters,
// rules out of RuleNumber order, unknown fields (Tags, rule ids, descriptions).
const describeDoc = `{
    "TrafficMirrorFilters": [
        {
            "TrafficMirrorFilterId": "tmf-0a1b2c3d4e5f60718",
            "IngressFilterRules": [
                {
                    "TrafficMirrorFilterRuleId": "tmfr-0000000000000i200",
                    "TrafficMirrorFilterId": "tmf-0a1b2c3d4e5f60718",
                    "TrafficDirection": "ingress",
                    "RuleNumber": 200,
                    "RuleAction": "accept",
                    "Protocol": 6,
                    "DestinationPortRange": {
                        "FromPort": 443,
                        "ToPort": 443
                    },
                    "DestinationCidrBlock": "10.0.0.0/16",
                    "SourceCidrBlock": "0.0.0.0/0",
                    "Description": "HTTPS in"
                },
                {
                    "TrafficMirrorFilterRuleId": "tmfr-0000000000000i100",
                    "TrafficMirrorFilterId": "tmf-0a1b2c3d4e5f60718",
                    "TrafficDirection": "ingress",
                    "RuleNumber": 100,
                    "RuleAction": "reject",
                    "DestinationCidrBlock": "0.0.0.0/0",
                    "SourceCidrBlock": "203.0.113.0/24",
                    "Description": "scanner range"
                },
                {
                    "TrafficMirrorFilterRuleId": "tmfr-0000000000000i300",
                    "TrafficMirrorFilterId": "tmf-0a1b2c3d4e5f60718",
                    "TrafficDirection": "ingress",
                    "RuleNumber": 300,
                    "RuleAction": "accept",
                    "DestinationCidrBlock": "::/0",
                    "SourceCidrBlock": "::/0"
                }
            ],
            "EgressFilterRules": [
                {
                    "TrafficMirrorFilterRuleId": "tmfr-0000000000000e300",
                    "TrafficMirrorFilterId": "tmf-0a1b2c3d4e5f60718",
                    "TrafficDirection": "egress",
                    "RuleNumber": 300,
                    "RuleAction": "accept",
                    "Protocol": 17,
                    "SourcePortRange": {
                        "FromPort": 1024,
                        "ToPort": 65535
                    },
                    "DestinationPortRange": {
                        "FromPort": 53,
                        "ToPort": 53
                    },
                    "DestinationCidrBlock": "0.0.0.0/0",
                    "SourceCidrBlock": "10.0.0.0/16"
                },
                {
                    "TrafficMirrorFilterRuleId": "tmfr-0000000000000e100",
                    "TrafficMirrorFilterId": "tmf-0a1b2c3d4e5f60718",
                    "TrafficDirection": "egress",
                    "RuleNumber": 100,
                    "RuleAction": "accept",
                    "Protocol": 6,
                    "DestinationCidrBlock": "0.0.0.0/0",
                    "SourceCidrBlock": "10.0.0.0/16"
                }
            ],
            "NetworkServices": [
                "amazon-dns"
            ],
            "Description": "web tier",
            "Tags": [
                {
                    "Key": "Name",
                    "Value": "web-mirror"
                }
            ]
        },
        {
            "TrafficMirrorFilterId": "tmf-0fedcba9876543210",
            "IngressFilterRules": [],
            "EgressFilterRules": [],
            "NetworkServices": [],
            "Description": "empty",
            "Tags": []
        }
    ]
}
`

// lineOf returns the line of the "{" opening the rule whose id is ruleID in doc.
func lineOf(t *testing.T, doc, ruleID string) int {
	t.Helper()
	i := strings.Index(doc, `"TrafficMirrorFilterRuleId": "`+ruleID+`"`)
	if i < 0 {
		t.Fatalf("no rule %s", ruleID)
	}
	return strings.Count(doc[:i], "\n") // the "{" is on the line before
}

func TestParseFilter(t *testing.T) {
	const id = "tmf-0a1b2c3d4e5f60718"
	f, err := ParseFilter("filters/web.json", []byte(describeDoc), id)
	if err != nil {
		t.Fatal(err)
	}
	where := func(ruleID, rest string) string {
		return "filters/web.json:" + strconv.Itoa(lineOf(t, describeDoc, ruleID)) + ": " + id + " " + rest
	}
	want := &Filter{
		ID:          id,
		Description: "web tier",
		AmazonDNS:   true,
		Ingress: []Rule{
			{Number: 100, Action: Reject, Direction: DirIngress, Protocol: AllProtocols,
				Src: pfx("203.0.113.0/24"), Dst: any4, Where: where("tmfr-0000000000000i100", "ingress rule 100")},
			{Number: 200, Action: Accept, Direction: DirIngress, Protocol: 6,
				Src: any4, Dst: pfx("10.0.0.0/16"), DstPorts: ports(443, 443), Where: where("tmfr-0000000000000i200", "ingress rule 200")},
			{Number: 300, Action: Accept, Direction: DirIngress, Protocol: AllProtocols,
				Src: any6, Dst: any6, Where: where("tmfr-0000000000000i300", "ingress rule 300")},
		},
		Egress: []Rule{
			{Number: 100, Action: Accept, Direction: DirEgress, Protocol: 6,
				Src: pfx("10.0.0.0/16"), Dst: any4, Where: where("tmfr-0000000000000e100", "egress rule 100")},
			{Number: 300, Action: Accept, Direction: DirEgress, Protocol: 17,
				Src: pfx("10.0.0.0/16"), Dst: any4, SrcPorts: ports(1024, 65535), DstPorts: ports(53, 53),
				Where: where("tmfr-0000000000000e300", "egress rule 300")},
		},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got\n%s\nwant\n%s", dump(f), dump(want))
	}

	// The filter in use: what it mirrors.
	for _, tc := range []struct {
		p    *packet.Packet
		d    Direction
		want bool
	}{
		{pkt(tcp, "198.51.100.7", 40000, "10.0.1.5", 443), DirIngress, true},   // rule 200
		{pkt(tcp, "203.0.113.9", 40000, "10.0.1.5", 443), DirIngress, false},   // rule 100 first
		{pkt(tcp, "198.51.100.7", 40000, "10.0.1.5", 22), DirIngress, false},   // no match
		{pkt(tcp, "2001:db8::7", 40000, "2001:db8::5", 22), DirIngress, true},  // rule 300
		{pkt(tcp, "10.0.1.5", 40000, "198.51.100.7", 22), DirEgress, true},     // rule 100
		{pkt(udp, "10.0.1.5", 40000, "198.51.100.53", 53), DirEgress, true},    // rule 300
		{pkt(udp, "10.0.1.5", 53, "198.51.100.53", 53), DirEgress, false},      // source port
		{pkt(udp, "10.0.1.5", 40000, "169.254.169.253", 53), DirEgress, true},  // amazon-dns
		{pkt(icmp, "10.0.1.5", 1, "198.51.100.7", 1), DirEgress, false},        // no match
		{pkt(icmp, "198.51.100.7", 1, "10.0.1.5", 1), DirUnknown, false},       // neither list
		{pkt(tcp, "198.51.100.7", 40000, "10.0.1.5", 443), DirUnknown, true},   // ingress list
		{pkt(tcp, "2001:db8::5", 40000, "2001:db8::7", 443), DirEgress, false}, // v4 rules only
	} {
		if got := f.Mirrored(tc.p, tc.d, amazonDNS); got != tc.want {
			t.Errorf("Mirrored(%s:%d > %s:%d proto %d, %s) = %v, want %v",
				tc.p.Src, tc.p.SrcPort, tc.p.Dst, tc.p.DstPort, tc.p.Proto, tc.d, got, tc.want)
		}
	}

	// The other filter of the document.
	g, err := ParseFilter("filters/web.json", []byte(describeDoc), "tmf-0fedcba9876543210")
	if err != nil {
		t.Fatal(err)
	}
	if g.ID != "tmf-0fedcba9876543210" || g.Description != "empty" || g.AmazonDNS || len(g.Ingress)+len(g.Egress) != 0 {
		t.Errorf("second filter: %s", dump(g))
	}
}

// TestParseFilterShapes covers the document shapes: one filter object, a
// document of one filter with or without id, several filters.
func TestParseFilterShapes(t *testing.T) {
	one := `{"TrafficMirrorFilterId": "tmf-1", "IngressFilterRules": [{"RuleNumber": 1, "RuleAction": "accept", "TrafficDirection": "ingress", "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "0.0.0.0/0"}], "EgressFilterRules": [], "NetworkServices": [], "Tags": []}`
	for _, tc := range []struct {
		name, doc, id string
		wantID        string
		wantErr       string
	}{
		{"filter object", one, "", "tmf-1", ""},
		{"filter object, its id", one, "tmf-1", "tmf-1", ""},
		{"filter object, other id", one, "tmf-2", "", `x.json:1: holds filter "tmf-1", not tmf-2`},
		{"rules only", `{"EgressFilterRules": []}`, "", "", ""},
		{"create-traffic-mirror-filter output", `{"TrafficMirrorFilter": ` + one + `, "ClientToken": "abc"}`, "", "tmf-1", ""},
		{"document of one", `{"TrafficMirrorFilters": [` + one + `]}`, "", "tmf-1", ""},
		{"document of one, its id", `{"TrafficMirrorFilters": [` + one + `]}`, "tmf-1", "tmf-1", ""},
		{"document of one, other id", `{"TrafficMirrorFilters": [` + one + `]}`, "tmf-9", "", "x.json:1: no filter tmf-9 (it holds tmf-1)"},
		{"several, no id", describeDoc, "", "", "x.json:2: 2 filters (tmf-0a1b2c3d4e5f60718, tmf-0fedcba9876543210): say which"},
		{"several, unknown id", describeDoc, "tmf-9", "", "x.json:2: no filter tmf-9 (it holds tmf-0a1b2c3d4e5f60718, tmf-0fedcba9876543210)"},
		{"several, same id twice", `{"TrafficMirrorFilters": [` + one + `,` + one + `]}`, "tmf-1", "", "x.json:1: filter tmf-1 is listed twice"},
		{"empty document", `{"TrafficMirrorFilters": []}`, "", "", "x.json:1: no filter in TrafficMirrorFilters"},
		{"not a filter", `{"Reservations": []}`, "", "", "x.json:1: not a Traffic Mirror filter"},
		{"not an object", `[1, 2]`, "", "", "x.json:1: want an object, got an array"},
		{"filters not an array", `{"TrafficMirrorFilters": {}}`, "", "", "x.json:1:"},
		{"filter field of the wrong type", `{"TrafficMirrorFilterId": "tmf-1", "Description": 7}`, "", "", "x.json:1: tmf-1: Description: want a string, got an integer 7"},
		{"rule list of the wrong type", `{"TrafficMirrorFilterId": "tmf-1", "IngressFilterRules": {}}`, "", "", "x.json:1: tmf-1: IngressFilterRules: want an array, got an object"},
		{"empty input", ``, "", "", "x.json:1: empty: want a Traffic Mirror filter"},
		{"only a comment", "# nothing\n", "", "", "x.json:1: empty: want a Traffic Mirror filter"},
		{"syntax error", "{\n  \"TrafficMirrorFilters\": [\n    {\"TrafficMirrorFilterId\": \"tmf-1\",,}\n  ]\n}", "", "", "x.json:2: invalid JSON or YAML: did not find expected node content"},
		{"truncated", "{\n  \"TrafficMirrorFilters\": [\n", "", "", "x.json:2: invalid JSON or YAML: "},
		{"two documents", "TrafficMirrorFilterId: tmf-1\n---\nTrafficMirrorFilterId: tmf-2\n", "", "", "x.json:2: a second document"},
		{"null filters", `{"TrafficMirrorFilters": null}`, "", "", "x.json:1: no filter in TrafficMirrorFilters"},
		{"filter not an object", `{"TrafficMirrorFilters": [7]}`, "", "", "x.json:1: want a filter object, got an integer 7"},
		{"duplicate key", "{\"TrafficMirrorFilterId\": \"tmf-1\",\n \"TrafficMirrorFilterId\": \"tmf-2\"}", "", "", `x.json:2: duplicate key "TrafficMirrorFilterId"`},
		{"same key in another case", "{\"TrafficMirrorFilterId\": \"tmf-1\", \"Description\": \"a\",\n \"description\": \"b\"}", "", "", `x.json:2: duplicate key "description" (also Description)`},
		{"merge key", "base: &b {TrafficMirrorFilterId: tmf-1}\nTrafficMirrorFilter:\n  <<: *b\n", "", "", "x.json:3: merge keys (<<) are not supported"},
		{"key not a single value", "{[1]: 2, TrafficMirrorFilterId: tmf-1}", "", "", "x.json:1: a key must be a single value, not an array"},
		{"unknown anchor", "TrafficMirrorFilterId: *nowhere\n", "", "", "x.json:1: invalid JSON or YAML: unknown anchor 'nowhere' referenced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFilter("x.json", []byte(tc.doc), tc.id)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.ID != tc.wantID {
				t.Errorf("ID %q, want %q", f.ID, tc.wantID)
			}
		})
	}
}

// TestParseFilterErrors puts one bad rule (or filter) into a filter and checks
// that the error names it and says what is wrong.
func TestParseFilterErrors(t *testing.T) {
	const good = `"RuleAction": "accept", "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "0.0.0.0/0"`
	in := func(rules ...string) string {
		return `{"TrafficMirrorFilterId": "tmf-x", "IngressFilterRules": [` + strings.Join(rules, ",\n") + `]}`
	}
	ing := func(fields string) string { return `{"TrafficDirection": "ingress", ` + fields + `}` }
	for _, tc := range []struct {
		name, doc       string
		where, msg      string // both must be in the (first) RuleError
		alsoWhere, also string // and these in the whole error, when set
	}{
		{"missing RuleNumber", in(ing(good)),
			"f.json:1: tmf-x IngressFilterRules[0]", "missing RuleNumber (1-32766)", "", ""},
		{"RuleNumber 0", in(ing(`"RuleNumber": 0, ` + good)),
			"tmf-x IngressFilterRules[0]", "RuleNumber 0 out of range 1-32766", "", ""},
		{"RuleNumber 32767", in(ing(`"RuleNumber": 32767, ` + good)),
			"tmf-x IngressFilterRules[0]", "RuleNumber 32767 out of range 1-32766", "", ""},
		{"RuleNumber a string", in(ing(`"RuleNumber": "100", ` + good)),
			"tmf-x IngressFilterRules[0]", `RuleNumber: want an integer, got a string "100"`, "", ""},
		{"RuleNumber fractional", in(ing(`"RuleNumber": 1.5, ` + good)),
			"tmf-x IngressFilterRules[0]", "RuleNumber: want an integer, got a number 1.5", "", ""},
		{"duplicate RuleNumber", in(ing(`"RuleNumber": 100, `+good), ing(`"RuleNumber": 100, `+good)),
			"f.json:2: tmf-x ingress rule 100", "duplicate ingress RuleNumber 100 (also f.json:1: tmf-x ingress rule 100)", "", ""},
		{"missing RuleAction", in(ing(`"RuleNumber": 100, "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "0.0.0.0/0"`)),
			"tmf-x ingress rule 100", "missing RuleAction (accept or reject)", "", ""},
		{"bad RuleAction", in(ing(`"RuleNumber": 100, "RuleAction": "allow", "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "0.0.0.0/0"`)),
			"tmf-x ingress rule 100", `bad RuleAction "allow" (want accept or reject)`, "", ""},
		{"RuleAction is case-sensitive like AWS", in(ing(`"RuleNumber": 100, "RuleAction": "Accept", "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "0.0.0.0/0"`)),
			"tmf-x ingress rule 100", `bad RuleAction "Accept"`, "", ""},
		{"missing TrafficDirection", in(`{"RuleNumber": 100, ` + good + `}`),
			"tmf-x ingress rule 100", "missing TrafficDirection (ingress)", "", ""},
		{"bad TrafficDirection", in(`{"TrafficDirection": "inbound", "RuleNumber": 100, ` + good + `}`),
			"tmf-x ingress rule 100", `bad TrafficDirection "inbound" (want ingress or egress)`, "", ""},
		{"egress rule under IngressFilterRules", in(`{"TrafficDirection": "egress", "RuleNumber": 100, ` + good + `}`),
			"tmf-x ingress rule 100", "TrafficDirection egress but listed under IngressFilterRules", "", ""},
		{"ingress rule under EgressFilterRules", `{"TrafficMirrorFilterId": "tmf-x", "EgressFilterRules": [` + ing(`"RuleNumber": 7, `+good) + `]}`,
			"tmf-x egress rule 7", "TrafficDirection ingress but listed under EgressFilterRules", "", ""},
		{"Protocol 256", in(ing(`"RuleNumber": 100, "Protocol": 256, ` + good)),
			"tmf-x ingress rule 100", "Protocol 256 not 0-255", "", ""},
		{"Protocol -1", in(ing(`"RuleNumber": 100, "Protocol": -1, ` + good)),
			"tmf-x ingress rule 100", "Protocol -1 not 0-255 (leave Protocol out for all protocols)", "", ""},
		{"Protocol a name", in(ing(`"RuleNumber": 100, "Protocol": "tcp", ` + good)),
			"f.json:1: tmf-x ingress rule 100", `Protocol: want an integer, got a string "tcp"`, "", ""},
		{"missing SourceCidrBlock", in(ing(`"RuleNumber": 100, "RuleAction": "accept", "DestinationCidrBlock": "0.0.0.0/0"`)),
			"tmf-x ingress rule 100", "missing SourceCidrBlock", "", ""},
		{"bad SourceCidrBlock", in(ing(`"RuleNumber": 100, "RuleAction": "accept", "SourceCidrBlock": "10.0.0.300/8", "DestinationCidrBlock": "0.0.0.0/0"`)),
			"tmf-x ingress rule 100", `bad SourceCidrBlock "10.0.0.300/8"`, "", ""},
		{"bad DestinationCidrBlock prefix length", in(ing(`"RuleNumber": 100, "RuleAction": "accept", "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "10.0.0.0/33"`)),
			"tmf-x ingress rule 100", `bad DestinationCidrBlock "10.0.0.0/33"`, "", ""},
		{"DestinationCidrBlock without length", in(ing(`"RuleNumber": 100, "RuleAction": "accept", "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "10.0.0.1"`)),
			"tmf-x ingress rule 100", `bad DestinationCidrBlock "10.0.0.1"`, "", ""},
		{"CIDR families differ", in(ing(`"RuleNumber": 100, "RuleAction": "accept", "SourceCidrBlock": "10.0.0.0/8", "DestinationCidrBlock": "::/0"`)),
			"tmf-x ingress rule 100", "SourceCidrBlock 10.0.0.0/8 is IPv4 but DestinationCidrBlock ::/0 is IPv6", "", ""},
		{"port range From > To", in(ing(`"RuleNumber": 100, "Protocol": 6, "DestinationPortRange": {"FromPort": 443, "ToPort": 80}, ` + good)),
			"tmf-x ingress rule 100", "DestinationPortRange FromPort 443 > ToPort 80", "", ""},
		{"port out of range", in(ing(`"RuleNumber": 100, "Protocol": 6, "SourcePortRange": {"FromPort": 1024, "ToPort": 70000}, ` + good)),
			"tmf-x ingress rule 100", "SourcePortRange: ToPort 70000 out of range 0-65535", "", ""},
		{"negative port", in(ing(`"RuleNumber": 100, "Protocol": 6, "SourcePortRange": {"FromPort": -1, "ToPort": 80}, ` + good)),
			"tmf-x ingress rule 100", "SourcePortRange: FromPort -1 out of range 0-65535", "", ""},
		{"port range missing ToPort", in(ing(`"RuleNumber": 100, "Protocol": 17, "DestinationPortRange": {"FromPort": 53}, ` + good)),
			"tmf-x ingress rule 100", "DestinationPortRange: missing ToPort", "", ""},
		{"port range on ICMP", in(ing(`"RuleNumber": 100, "Protocol": 1, "DestinationPortRange": {"FromPort": 0, "ToPort": 8}, ` + good)),
			"tmf-x ingress rule 100", "DestinationPortRange needs Protocol 6 (TCP) or 17 (UDP), not 1", "", ""},
		{"port range on all protocols", in(ing(`"RuleNumber": 100, "SourcePortRange": {"FromPort": 0, "ToPort": 8}, ` + good)),
			"tmf-x ingress rule 100", "SourcePortRange needs Protocol 6 (TCP) or 17 (UDP), not all protocols", "", ""},
		{"rule not an object", in(`"rule"`),
			"tmf-x IngressFilterRules[0]", `want an object, got a string "rule"`, "", ""},
		{"unknown NetworkServices", `{"TrafficMirrorFilterId": "tmf-x", "NetworkServices": ["amazon-dns", "amazon-ntp"]}`,
			"f.json:1: tmf-x", `unknown NetworkServices value "amazon-ntp" (want amazon-dns)`, "", ""},
		{"several problems in one rule", in(ing(`"RuleNumber": 100, "RuleAction": "drop", "Protocol": 1, "SourcePortRange": {"FromPort": 9, "ToPort": 8}, "SourceCidrBlock": "10.0.0.0/8", "DestinationCidrBlock": "::/0"`)),
			"tmf-x ingress rule 100", `bad RuleAction "drop" (want accept or reject); SourceCidrBlock 10.0.0.0/8 is IPv4 but DestinationCidrBlock ::/0 is IPv6; SourcePortRange FromPort 9 > ToPort 8; SourcePortRange needs Protocol 6 (TCP) or 17 (UDP), not 1`, "", ""},
		{"problems in several rules", `{"TrafficMirrorFilterId": "tmf-x",
 "IngressFilterRules": [` + ing(`"RuleNumber": 1, "RuleAction": "drop", "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "0.0.0.0/0"`) + `],
 "EgressFilterRules": [{"TrafficDirection": "egress", "RuleNumber": 2, "Protocol": 300, ` + good + `}]}`,
			"f.json:2: tmf-x ingress rule 1", `bad RuleAction "drop"`, "f.json:3: tmf-x egress rule 2", "Protocol 300 not 0-255"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFilter("f.json", []byte(tc.doc), "")
			var re *RuleError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T), want a *RuleError", err, err)
			}
			if !strings.Contains(re.Where, tc.where) || !strings.Contains(re.Msg, tc.msg) {
				t.Errorf("got  %q: %q\nwant %q: %q", re.Where, re.Msg, tc.where, tc.msg)
			}
			if s := err.Error(); tc.also != "" && (!strings.Contains(s, tc.alsoWhere+": "+tc.also)) {
				t.Errorf("error %q lacks %q", s, tc.alsoWhere+": "+tc.also)
			}
		})
	}
}

// yamlDoc is describeDoc's first filter written in YAML, as the inline filters of
// weir's config are: same fields, an anchor for a rule used twice, comments.
const yamlDoc = `# web tier
TrafficMirrorFilterId: tmf-0a1b2c3d4e5f60718
Description: web tier
NetworkServices: [amazon-dns]
IngressFilterRules:
  - {RuleNumber: 200, RuleAction: accept, TrafficDirection: ingress, Protocol: 6,
     DestinationPortRange: {FromPort: 443, ToPort: 443},
     SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 10.0.0.0/16}
  - RuleNumber: 100
    RuleAction: reject
    TrafficDirection: ingress
    SourceCidrBlock: 203.0.113.0/24
    DestinationCidrBlock: 0.0.0.0/0
    Tags: [{Key: Name, Value: scanner range}]
  - {RuleNumber: 300, RuleAction: accept, TrafficDirection: ingress, SourceCidrBlock: "::/0", DestinationCidrBlock: "::/0"}
EgressFilterRules:
  - {RuleNumber: 300, RuleAction: accept, TrafficDirection: egress, Protocol: 17,
     SourcePortRange: {FromPort: 1024, ToPort: 65535}, DestinationPortRange: {FromPort: 53, ToPort: 53},
     SourceCidrBlock: 10.0.0.0/16, DestinationCidrBlock: 0.0.0.0/0}
  - &tcp {RuleNumber: 100, RuleAction: accept, TrafficDirection: egress, Protocol: 6,
          SourceCidrBlock: 10.0.0.0/16, DestinationCidrBlock: 0.0.0.0/0}
`

// TestParseFilterYAML: the same filter in YAML reads the same as in JSON, its
// rules named by their YAML lines.
func TestParseFilterYAML(t *testing.T) {
	const id = "tmf-0a1b2c3d4e5f60718"
	fromJSON, err := ParseFilter("web.json", []byte(describeDoc), id)
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := ParseFilter("web.yaml", []byte(yamlDoc), "")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]int{"ingress rule 100": 9, "ingress rule 200": 6, "ingress rule 300": 15,
		"egress rule 100": 20, "egress rule 300": 17}
	for _, l := range []struct{ j, y []Rule }{{fromJSON.Ingress, fromYAML.Ingress}, {fromJSON.Egress, fromYAML.Egress}} {
		for i := range l.j {
			name := fmt.Sprintf("%s rule %d", l.j[i].Direction, l.j[i].Number)
			if want := fmt.Sprintf("web.yaml:%d: %s %s", lines[name], id, name); l.y[i].Where != want {
				t.Errorf("Where %q, want %q", l.y[i].Where, want)
			}
			l.j[i].Where = l.y[i].Where
		}
	}
	if !reflect.DeepEqual(fromJSON, fromYAML) {
		t.Errorf("from YAML\n%s\nfrom JSON\n%s", dump(fromYAML), dump(fromJSON))
	}

	// An alias is read where it is used, and named by that line.
	doc := yamlDoc + "  - *tcp\n"
	_, err = ParseFilter("web.yaml", []byte(doc), "")
	var re *RuleError
	if !errors.As(err, &re) || re.Line != 22 || !strings.Contains(err.Error(),
		"web.yaml:22: "+id+" egress rule 100: duplicate egress RuleNumber 100 (also web.yaml:20: "+id+" egress rule 100)") {
		t.Errorf("alias used twice: %v (line %d)", err, re.Line)
	}
}

// TestFilterFromNode: a filter inside a larger YAML document reports the lines of
// that document, in RuleError.Line as well as in Where.
func TestFilterFromNode(t *testing.T) {
	const doc = `sessions:
  - vni: 7
    filter:
      TrafficMirrorFilterId: tmf-1
      EgressFilterRules:
        - {RuleNumber: 1, RuleAction: accept, TrafficDirection: egress,
           SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}
        - {RuleNumber: 1, RuleAction: accept, TrafficDirection: egress,
           SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}
        - {RuleNumber: 2, RuleAction: maybe}
`
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	n := root.Content[0].Content[1].Content[0].Content[3] // sessions[0].filter
	_, err := FilterFromNode("weir.yaml", n, "")
	var re *RuleError
	if !errors.As(err, &re) || re.Line != 10 || re.Where != "weir.yaml:10: tmf-1 egress rule 2" {
		t.Fatalf("first error %v, want one at line 10 for rule 2", err)
	}
	joined, _ := err.(interface{ Unwrap() []error })
	if joined == nil || len(joined.Unwrap()) != 2 {
		t.Fatalf("error %v: want two problems", err)
	}
	if !errors.As(joined.Unwrap()[1], &re) || re.Line != 8 || !strings.Contains(re.Msg, "duplicate egress RuleNumber 1") {
		t.Errorf("second error %v (line %d), want the duplicate at line 8", joined.Unwrap()[1], re.Line)
	}
	if _, err := FilterFromNode("weir.yaml", &yaml.Node{Kind: yaml.DocumentNode}, ""); err == nil {
		t.Error("empty document: no error")
	}
}

// TestParseFilterBounds: long values are cut in errors, problems past maxErrors
// are counted rather than listed, and YAML built to explode fails cheaply.
func TestParseFilterBounds(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	rule := func(fields string) string {
		return `{"TrafficMirrorFilterId": "tmf-1", "IngressFilterRules": [{"RuleNumber": 1, "TrafficDirection": "ingress", ` + fields + `}]}`
	}
	for _, tc := range []struct{ name, doc, id, want string }{
		{"RuleAction", rule(`"RuleAction": "` + long + `", "SourceCidrBlock": "0.0.0.0/0", "DestinationCidrBlock": "0.0.0.0/0"`), "",
			`bad RuleAction "` + long[:64] + `"… (1048576 bytes)`},
		{"CIDR", rule(`"RuleAction": "accept", "SourceCidrBlock": "` + long + `", "DestinationCidrBlock": "0.0.0.0/0"`), "",
			`bad SourceCidrBlock "` + long[:64] + `"… (1048576 bytes)`},
		{"wrong type", rule(`"RuleAction": "accept", "Protocol": "` + long + `"`), "",
			`Protocol: want an integer, got a string "` + long[:64] + `"… (1048576 bytes)`},
		{"filter id in rule names", `{"TrafficMirrorFilterId": "` + long + `", "EgressFilterRules": [{}]}`, "",
			long[:64] + "… (1048576 bytes) EgressFilterRules[0]"},
		{"id asked for", `{"TrafficMirrorFilterId": "tmf-1"}`, long,
			`holds filter "tmf-1", not ` + long[:64] + "… (1048576 bytes)"},
		{"key", "TrafficMirrorFilterId: tmf-1\n? " + long + "\n: 1\n? " + long + "\n: 2\n", "",
			`duplicate key "` + long[:64] + `"… (1048576 bytes)`},
		{"anchor", "TrafficMirrorFilterId: *" + long, "", "invalid JSON or YAML: unknown anchor '" + long[:100]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFilter("f.json", []byte(tc.doc), tc.id)
			if err == nil || !strings.Contains(err.Error(), tc.want) || len(err.Error()) > 1024 {
				t.Errorf("error of %d bytes, want it to hold %.200q and be short: %.300q", len(fmt.Sprint(err)), tc.want, fmt.Sprint(err))
			}
		})
	}

	// Many bad rules: maxErrors of them, then a count.
	bad := strings.Repeat(`{"RuleNumber": 1}, `, 1000)
	_, err := ParseFilter("f.json", []byte(`{"TrafficMirrorFilterId": "tmf-1", "EgressFilterRules": [`+bad+`{}]}`), "")
	lines := strings.Split(fmt.Sprint(err), "\n")
	if len(lines) != maxErrors+1 || lines[maxErrors] != "f.json: and 969 more problems" {
		t.Errorf("%d lines, the last %q", len(lines), lines[len(lines)-1])
	}

	// An alias bomb: each level references the one before ten times (10^9 rules
	// if expanded). The walker reads only what a filter holds, so aliases are
	// followed a bounded number of times, and a list where a rule should be fails.
	var bomb strings.Builder
	bomb.WriteString("a0: &a0 {RuleNumber: 1}\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&bomb, "a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 10), ","))
	}
	bomb.WriteString("EgressFilterRules: *a9\nIngressFilterRules: [*a9, *a9]\n")
	_, err = ParseFilter("bomb.yaml", []byte(bomb.String()), "")
	if err == nil || !strings.Contains(err.Error(), "want an object, got an array") {
		t.Errorf("alias bomb: %v", err)
	}

	// Nesting deeper than yaml.v3's limit of 10000 is a syntax error.
	for _, deep := range []string{strings.Repeat("[", 20000), "IngressFilterRules: " + strings.Repeat("{a: ", 20000)} {
		if _, err := ParseFilter("deep.json", []byte(deep), ""); err == nil || !strings.Contains(err.Error(), "exceeded max depth") {
			t.Errorf("deep nesting: %v", err)
		}
	}
}

func TestNewFilter(t *testing.T) {
	ingress := []Rule{
		{Number: 300, Action: Accept, Protocol: AllProtocols, Src: any6, Dst: any6},
		{Number: 100, Action: Reject, Direction: DirIngress, Protocol: 6, Src: pfx("203.0.113.7/24"), Dst: any4,
			DstPorts: ports(22, 22), Where: "weir.yaml:12"},
	}
	egress := []Rule{{Number: 100, Action: Accept, Protocol: AllProtocols, Src: any4, Dst: any4}}
	orig := append([]Rule(nil), ingress...)
	f, err := NewFilter("tmf-cfg", ingress, egress, true)
	if err != nil {
		t.Fatal(err)
	}
	want := &Filter{ID: "tmf-cfg", AmazonDNS: true,
		Ingress: []Rule{
			{Number: 100, Action: Reject, Direction: DirIngress, Protocol: 6, Src: pfx("203.0.113.0/24"), Dst: any4,
				DstPorts: ports(22, 22), Where: "weir.yaml:12"},
			{Number: 300, Action: Accept, Direction: DirIngress, Protocol: AllProtocols, Src: any6, Dst: any6,
				Where: "tmf-cfg ingress rule 300"},
		},
		Egress: []Rule{{Number: 100, Action: Accept, Direction: DirEgress, Protocol: AllProtocols, Src: any4, Dst: any4,
			Where: "tmf-cfg egress rule 100"}},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got\n%s\nwant\n%s", dump(f), dump(want))
	}
	if !reflect.DeepEqual(ingress, orig) {
		t.Errorf("NewFilter changed its argument: %+v", ingress)
	}
	if g, err := NewFilter("", nil, nil, false); err != nil || g.Ingress != nil || g.Egress != nil {
		t.Errorf("empty filter: %+v, %v", g, err)
	}

	base := Rule{Number: 100, Action: Accept, Protocol: AllProtocols, Src: any4, Dst: any4}
	for _, tc := range []struct {
		name         string
		ingress      []Rule
		egress       []Rule
		where, msg   string
		secondInJoin string
	}{
		{"missing RuleNumber", []Rule{with(base, func(r *Rule) { r.Number = 0 })}, nil,
			"t IngressFilterRules[0]", "missing RuleNumber (1-32766)", ""},
		{"RuleNumber out of range", nil, []Rule{with(base, func(r *Rule) { r.Number = 40000 })},
			"t EgressFilterRules[0]", "RuleNumber 40000 out of range 1-32766", ""},
		{"duplicate RuleNumber", []Rule{base, with(base, func(r *Rule) { r.Where = "weir.yaml:20" })}, nil,
			"weir.yaml:20", "duplicate ingress RuleNumber 100 (also t ingress rule 100)", ""},
		{"missing RuleAction", []Rule{with(base, func(r *Rule) { r.Action = 0 })}, nil,
			"t ingress rule 100", "missing RuleAction (accept or reject)", ""},
		{"bad RuleAction", []Rule{with(base, func(r *Rule) { r.Action = 9 })}, nil,
			"t ingress rule 100", "bad RuleAction 9 (want accept or reject)", ""},
		{"bad TrafficDirection", []Rule{with(base, func(r *Rule) { r.Direction = 7 })}, nil,
			"t ingress rule 100", "bad TrafficDirection 7 (want ingress or egress)", ""},
		{"direction mismatch", nil, []Rule{with(base, func(r *Rule) { r.Direction = DirIngress })},
			"t egress rule 100", "TrafficDirection ingress but listed under EgressFilterRules", ""},
		{"Protocol out of range", []Rule{with(base, func(r *Rule) { r.Protocol = 256 })}, nil,
			"t ingress rule 100", "Protocol 256 not 0-255", ""},
		{"Protocol negative", []Rule{with(base, func(r *Rule) { r.Protocol = -2 })}, nil,
			"t ingress rule 100", "Protocol -2 not 0-255", ""},
		{"missing CIDR", []Rule{with(base, func(r *Rule) { r.Src = netip.Prefix{} })}, nil,
			"t ingress rule 100", "missing or bad SourceCidrBlock", ""},
		{"CIDR families differ", []Rule{with(base, func(r *Rule) { r.Dst = any6 })}, nil,
			"t ingress rule 100", "SourceCidrBlock 0.0.0.0/0 is IPv4 but DestinationCidrBlock ::/0 is IPv6", ""},
		{"port range From > To", []Rule{with(base, func(r *Rule) { r.Protocol, r.SrcPorts = 17, ports(2, 1) })}, nil,
			"t ingress rule 100", "SourcePortRange FromPort 2 > ToPort 1", ""},
		{"port range on ICMPv6", []Rule{with(base, func(r *Rule) { r.Protocol, r.DstPorts = 58, ports(1, 1) })}, nil,
			"t ingress rule 100", "DestinationPortRange needs Protocol 6 (TCP) or 17 (UDP), not 58", ""},
		{"errors in both lists", []Rule{with(base, func(r *Rule) { r.Action = 0 })}, []Rule{with(base, func(r *Rule) { r.Protocol = 999 })},
			"t ingress rule 100", "missing RuleAction", "t egress rule 100: Protocol 999 not 0-255"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewFilter("t", tc.ingress, tc.egress, false)
			var re *RuleError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T), want a *RuleError", err, err)
			}
			if re.Where != tc.where || !strings.Contains(re.Msg, tc.msg) {
				t.Errorf("got  %q: %q\nwant %q: %q", re.Where, re.Msg, tc.where, tc.msg)
			}
			if tc.secondInJoin != "" && !strings.Contains(err.Error(), tc.secondInJoin) {
				t.Errorf("error %q lacks %q", err, tc.secondInJoin)
			}
		})
	}
}

func TestText(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want Direction
		ok   bool
	}{{"ingress", DirIngress, true}, {"egress", DirEgress, true}, {"Ingress", 0, false}, {"", 0, false}} {
		var d Direction
		err := d.UnmarshalText([]byte(tc.s))
		if (err == nil) != tc.ok || d != tc.want {
			t.Errorf("Direction %q: %v, %v", tc.s, d, err)
		}
		if tc.ok {
			if b, _ := d.MarshalText(); string(b) != tc.s {
				t.Errorf("MarshalText %q, want %q", b, tc.s)
			}
		}
	}
	if DirUnknown.String() != "unknown" || DirIngress.String() != "ingress" || DirEgress.String() != "egress" {
		t.Error("Direction.String")
	}
	for _, tc := range []struct {
		s    string
		want RuleAction
		ok   bool
	}{{"accept", Accept, true}, {"reject", Reject, true}, {"drop", 0, false}} {
		var a RuleAction
		err := a.UnmarshalText([]byte(tc.s))
		if (err == nil) != tc.ok || a != tc.want {
			t.Errorf("RuleAction %q: %v, %v", tc.s, a, err)
		}
		if tc.ok {
			if b, _ := a.MarshalText(); string(b) != tc.s {
				t.Errorf("MarshalText %q, want %q", b, tc.s)
			}
		}
	}
	if _, err := RuleAction(0).MarshalText(); err == nil {
		t.Error("RuleAction(0).MarshalText: no error")
	}
}

// FuzzParseFilter: any input either parses into a valid, sorted filter or fails
// with an error; it never panics.
func FuzzParseFilter(f *testing.F) {
	f.Add([]byte(describeDoc), "tmf-0a1b2c3d4e5f60718")
	f.Add([]byte(`{"IngressFilterRules": [{"RuleNumber": 1}]}`), "")
	f.Add([]byte(`{"TrafficMirrorFilters": [{}, {}]}`), "")
	f.Add([]byte(yamlDoc), "")
	f.Add([]byte("r: &r {RuleNumber: 1}\nEgressFilterRules: [*r, *r]\n<<: {a: 1}\n"), "")
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		fl, err := ParseFilter("fuzz.json", data, id)
		if err != nil {
			// Values are cut and problems counted past maxErrors, so that an error
			// stays short whatever the input.
			if n := len(err.Error()); n > 64<<10 {
				t.Fatalf("error of %d bytes", n)
			}
			return
		}
		for _, list := range [][]Rule{fl.Ingress, fl.Egress} {
			for i := range list {
				if i > 0 && list[i-1].Number >= list[i].Number {
					t.Fatalf("not sorted or duplicate: %d, %d", list[i-1].Number, list[i].Number)
				}
				if msg := checkRule(&list[i], list[i].Direction); msg != "" {
					t.Fatalf("accepted a bad rule: %s", msg)
				}
			}
		}
	})
}

func dump(f *Filter) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ID=%s Description=%q AmazonDNS=%v", f.ID, f.Description, f.AmazonDNS)
	for _, r := range append(slices.Clone(f.Ingress), f.Egress...) {
		fmt.Fprintf(&b, "\n  %s: %s %d %s proto=%d %s > %s", r.Where, r.Direction, r.Number, r.Action, r.Protocol, r.Src, r.Dst)
		if r.SrcPorts != nil {
			fmt.Fprintf(&b, " sport %s", r.SrcPorts)
		}
		if r.DstPorts != nil {
			fmt.Fprintf(&b, " dport %s", r.DstPorts)
		}
	}
	return b.String()
}
