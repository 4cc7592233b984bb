package policy

import (
	"net/netip"
	"testing"

	"weir/dataplane/packet"
)

func pkt(proto uint8, src string, sport uint16, dst string, dport uint16) *packet.Packet {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	fam := uint8(4)
	if s.Is6() {
		fam = 6
	}
	return &packet.Packet{Family: fam, Proto: proto, Src: s, Dst: d, SrcPort: sport, DstPort: dport}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func ports(lo, hi uint16) PortRange { return PortRange{Lo: lo, Hi: hi} }

const (
	tcp   = packet.ProtoTCP
	udp   = packet.ProtoUDP
	icmp  = packet.ProtoICMP
	icmp6 = packet.ProtoICMPv6
	gre   = 47
)

func TestDecide(t *testing.T) {
	allowAll := Rule{Action: Allow, Proto: AnyProto}
	dropAll := Rule{Action: Drop, Proto: AnyProto}
	web := pkt(tcp, "10.0.0.1", 40000, "192.0.2.10", 443)
	dns := pkt(udp, "10.0.0.1", 5353, "192.0.2.53", 53)
	ping := pkt(icmp, "10.0.0.1", 53, "192.0.2.10", 53) // echo: both "ports" hold the id
	web6 := pkt(tcp, "2001:db8::1", 40000, "2001:db8:1::10", 443)
	ping6 := pkt(icmp6, "2001:db8::1", 7, "2001:db8:1::10", 7)
	mapped := pkt(tcp, "::ffff:10.0.0.1", 40000, "::ffff:192.0.2.10", 443) // v4-mapped v6

	for _, tc := range []struct {
		name     string
		pol      Policy
		p        *packet.Packet
		want     Action
		wantRule int
	}{
		// Defaults.
		{"empty allows", Policy{}, web, Allow, NoRule},
		{"empty default drop", Policy{Default: Drop}, web, Drop, NoRule},
		{"no match takes default", Policy{Default: Drop, Rules: []Rule{{Action: Allow, Proto: int(udp)}}}, web, Drop, NoRule},
		{"proto 0 is a number, not any", Policy{Default: Drop, Rules: []Rule{{Action: Allow}}}, web, Drop, NoRule},

		// First match wins, and its index is returned.
		{"first of two", Policy{Rules: []Rule{dropAll, allowAll}}, web, Drop, 0},
		{"first of two reversed", Policy{Default: Drop, Rules: []Rule{allowAll, dropAll}}, web, Allow, 0},
		{"later rule index", Policy{Rules: []Rule{
			{Action: Allow, Proto: int(udp)},
			{Action: Allow, Proto: int(icmp)},
			{Action: Drop, Proto: AnyProto, Dst: pfx("192.0.2.0/24")},
			dropAll,
		}}, web, Drop, 2},
		{"specific before general", Policy{Default: Drop, Rules: []Rule{
			{Action: Drop, Proto: int(tcp), DstPort: ports(443, 443), Src: pfx("10.0.0.0/31")},
			{Action: Allow, Proto: int(tcp), DstPort: ports(443, 443)},
		}}, pkt(tcp, "10.0.0.5", 1, "192.0.2.10", 443), Allow, 1},

		// Protocols.
		{"any proto matches icmp", Policy{Default: Drop, Rules: []Rule{allowAll}}, ping, Allow, 0},
		{"any proto matches gre", Policy{Default: Drop, Rules: []Rule{allowAll}}, pkt(gre, "10.0.0.1", 0, "10.0.0.2", 0), Allow, 0},
		{"proto number matches", Policy{Rules: []Rule{{Action: Drop, Proto: int(udp)}}}, dns, Drop, 0},
		{"proto number mismatch", Policy{Rules: []Rule{{Action: Drop, Proto: int(udp)}}}, web, Allow, NoRule},
		{"icmp is not icmpv6", Policy{Rules: []Rule{{Action: Drop, Proto: int(icmp)}}}, ping6, Allow, NoRule},
		{"icmpv6 number", Policy{Rules: []Rule{{Action: Drop, Proto: int(icmp6)}}}, ping6, Drop, 0},
		{"gre number", Policy{Rules: []Rule{{Action: Drop, Proto: gre}}}, pkt(gre, "10.0.0.1", 0, "10.0.0.2", 0), Drop, 0},

		// Prefixes and families.
		{"src v4 match", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Src: pfx("10.0.0.0/8")}}}, web, Drop, 0},
		{"src v4 mismatch", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Src: pfx("10.1.0.0/16")}}}, web, Allow, NoRule},
		{"dst v4 match", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Dst: pfx("192.0.2.10/32")}}}, web, Drop, 0},
		{"src and dst both needed", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Src: pfx("10.0.0.0/8"), Dst: pfx("198.51.100.0/24")}}}, web, Allow, NoRule},
		{"src prefix is not dst", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Src: pfx("192.0.2.0/24")}}}, web, Allow, NoRule},
		{"v4 /0 never matches v6", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Src: pfx("0.0.0.0/0")}}}, web6, Allow, NoRule},
		{"v4 /0 dst never matches v6", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Dst: pfx("0.0.0.0/0")}}}, ping6, Allow, NoRule},
		{"v4 prefix never matches v4-mapped v6", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Src: pfx("10.0.0.0/8")}}}, mapped, Allow, NoRule},
		{"v6 ::/0 never matches v4", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Dst: pfx("::/0")}}}, web, Allow, NoRule},
		{"v4-mapped prefix never matches v4", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Src: pfx("::ffff:10.0.0.0/104")}}}, web, Allow, NoRule},
		{"v6 src match", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Src: pfx("2001:db8::/64")}}}, web6, Drop, 0},
		{"v6 dst match", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Dst: pfx("2001:db8:1::/48")}}}, web6, Drop, 0},
		{"v6 dst mismatch", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, Dst: pfx("2001:db8:2::/48")}}}, web6, Allow, NoRule},
		{"v4 rule skipped, v6 rule matches", Policy{Rules: []Rule{
			{Action: Allow, Proto: AnyProto, Src: pfx("0.0.0.0/0")},
			{Action: Drop, Proto: AnyProto, Src: pfx("::/0")},
		}}, web6, Drop, 1},
		{"zero prefixes match both families", Policy{Default: Drop, Rules: []Rule{{Action: Allow, Proto: int(tcp)}}}, web6, Allow, 0},

		// Ports: inclusive ranges, only for TCP and UDP.
		{"dst port exact", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, DstPort: ports(443, 443)}}}, web, Drop, 0},
		{"dst port range low edge", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, DstPort: ports(443, 500)}}}, web, Drop, 0},
		{"dst port range high edge", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, DstPort: ports(400, 443)}}}, web, Drop, 0},
		{"dst port below", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, DstPort: ports(444, 500)}}}, web, Allow, NoRule},
		{"dst port above", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, DstPort: ports(1, 442)}}}, web, Allow, NoRule},
		{"src port range", Policy{Rules: []Rule{{Action: Drop, Proto: int(tcp), SrcPort: ports(32768, 60999)}}}, web, Drop, 0},
		{"src port mismatch", Policy{Rules: []Rule{{Action: Drop, Proto: int(tcp), SrcPort: ports(1, 1023)}}}, web, Allow, NoRule},
		{"both ranges needed", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, SrcPort: ports(1, 1023), DstPort: ports(443, 443)}}}, web, Allow, NoRule},
		{"udp ports", Policy{Rules: []Rule{{Action: Drop, Proto: int(udp), DstPort: ports(53, 53)}}}, dns, Drop, 0},
		{"udp v6 ports", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, DstPort: ports(53, 53)}}}, pkt(udp, "2001:db8::1", 1000, "2001:db8::53", 53), Drop, 0},
		{"port rule skips icmp", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, DstPort: ports(53, 53)}}}, ping, Allow, NoRule},
		{"src port rule skips icmp", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, SrcPort: ports(0, 65535)}}}, ping, Allow, NoRule},
		{"port rule skips icmpv6", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, DstPort: ports(7, 7)}}}, ping6, Allow, NoRule},
		{"port rule skips gre", Policy{Rules: []Rule{{Action: Drop, Proto: AnyProto, DstPort: ports(1, 65535)}}}, pkt(gre, "10.0.0.1", 0, "10.0.0.2", 0), Allow, NoRule},
		{"port rule skipped, next matches icmp", Policy{Default: Drop, Rules: []Rule{
			{Action: Drop, Proto: AnyProto, DstPort: ports(53, 53)},
			{Action: Allow, Proto: int(icmp)},
		}}, ping, Allow, 1},
		{"full range matches port 0", Policy{Rules: []Rule{{Action: Drop, Proto: int(udp), SrcPort: ports(0, 65535)}}}, pkt(udp, "10.0.0.1", 0, "10.0.0.2", 0), Drop, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, r := tc.pol.Decide(tc.p)
			if a != tc.want || r != tc.wantRule {
				t.Errorf("Decide = %v, %d; want %v, %d", a, r, tc.want, tc.wantRule)
			}
		})
	}
}

func TestPortRange(t *testing.T) {
	for _, tc := range []struct {
		r    PortRange
		p    uint16
		any  bool
		want bool
	}{
		{PortRange{}, 0, true, true},
		{PortRange{}, 65535, true, true},
		{ports(80, 80), 80, false, true},
		{ports(80, 80), 81, false, false},
		{ports(0, 1023), 0, false, true},
		{ports(0, 1023), 1024, false, false},
		{ports(1024, 65535), 65535, false, true},
		{ports(1024, 65535), 1023, false, false},
	} {
		if tc.r.Any() != tc.any || tc.r.Contains(tc.p) != tc.want {
			t.Errorf("%+v: Any %v Contains(%d) %v; want %v %v", tc.r, tc.r.Any(), tc.p, tc.r.Contains(tc.p), tc.any, tc.want)
		}
	}
}

func TestActionString(t *testing.T) {
	if Allow.String() != "allow" || Drop.String() != "drop" {
		t.Errorf("%q %q", Allow, Drop)
	}
}

func TestDecideAllocs(t *testing.T) {
	pol := &Policy{Default: Drop, Rules: []Rule{
		{Action: Allow, Proto: int(tcp), Dst: pfx("192.0.2.0/24"), DstPort: ports(443, 443)},
		{Action: Allow, Proto: int(udp), Src: pfx("2001:db8::/32")},
	}}
	p := pkt(tcp, "10.0.0.1", 40000, "192.0.2.10", 443)
	if a := testing.AllocsPerRun(100, func() { pol.Decide(p) }); a != 0 {
		t.Errorf("%v allocs", a)
	}
}

func TestDecidePortLists(t *testing.T) {
	pol := &Policy{Default: Drop, Rules: []Rule{
		{Action: Allow, Proto: int(tcp), DstPorts: Ports{ports(80, 80), ports(443, 443), ports(8000, 8080)}},
		{Action: Allow, Proto: int(udp), SrcPorts: Ports{ports(53, 53), ports(123, 123)}, DstPort: ports(1024, 65535)},
	}}
	for _, tc := range []struct {
		p        *packet.Packet
		want     Action
		wantRule int
	}{
		{pkt(tcp, "10.0.0.1", 40000, "192.0.2.10", 80), Allow, 0},
		{pkt(tcp, "10.0.0.1", 40000, "192.0.2.10", 443), Allow, 0},
		{pkt(tcp, "10.0.0.1", 40000, "192.0.2.10", 8000), Allow, 0},
		{pkt(tcp, "10.0.0.1", 40000, "192.0.2.10", 8080), Allow, 0},
		{pkt(tcp, "10.0.0.1", 40000, "192.0.2.10", 8081), Drop, NoRule},
		{pkt(tcp, "10.0.0.1", 40000, "192.0.2.10", 81), Drop, NoRule},
		{pkt(udp, "10.0.0.1", 123, "192.0.2.10", 40000), Allow, 1},
		{pkt(udp, "10.0.0.1", 53, "192.0.2.10", 1023), Drop, NoRule},
		{pkt(udp, "10.0.0.1", 54, "192.0.2.10", 40000), Drop, NoRule},
		{pkt(icmp, "10.0.0.1", 80, "192.0.2.10", 80), Drop, NoRule}, // ports: TCP and UDP only
	} {
		if got, rule := pol.Decide(tc.p); got != tc.want || rule != tc.wantRule {
			t.Errorf("Decide(%v %d->%d) = %v, %d; want %v, %d", tc.p.Proto, tc.p.SrcPort, tc.p.DstPort, got, rule, tc.want, tc.wantRule)
		}
	}
	p := pkt(tcp, "10.0.0.1", 40000, "192.0.2.10", 8081)
	if a := testing.AllocsPerRun(100, func() { pol.Decide(p) }); a != 0 {
		t.Errorf("Decide with port lists: %v allocs", a)
	}
}

func TestRuleLabel(t *testing.T) {
	if l := (&Rule{Name: "web"}).Label(3); l != "web" {
		t.Errorf("named: %q", l)
	}
	if l := (&Rule{}).Label(3); l != "rules[3]" {
		t.Errorf("unnamed: %q", l)
	}
}
