package rules

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustRule(t *testing.T, text string) *Rule {
	t.Helper()
	r, err := ParseRule(text, DefaultVars())
	if err != nil {
		t.Fatalf("ParseRule(%q): %v", text, err)
	}
	return r
}

// hdr wraps options in a minimal header.
func hdr(opts string) string { return `alert tcp any any -> any any (` + opts + `)` }

func TestParseRuleOptions(t *testing.T) {
	tests := []struct {
		name string
		rule string
		ok   func(r *Rule) bool
	}{
		{"msg escapes", hdr(`msg:"a \"quoted\" \; semi \\ back \: colon"; sid:1;`),
			func(r *Rule) bool { return r.Msg == `a "quoted" ; semi \ back : colon` }},
		{"sid rev gid defaults", hdr(`sid:7;`),
			func(r *Rule) bool { return r.SID == 7 && r.Rev == 0 && r.GID == 1 && r.Priority == 3 }},
		{"sid rev gid", hdr(`sid:7; rev:3; gid:2;`),
			func(r *Rule) bool { return r.SID == 7 && r.Rev == 3 && r.GID == 2 }},
		{"classtype", hdr(`classtype:trojan-activity; sid:1;`),
			func(r *Rule) bool {
				return r.Classtype == "trojan-activity" && r.Category == "A Network Trojan was detected" && r.Priority == 1
			}},
		{"priority overrides classtype (after)", hdr(`classtype:trojan-activity; priority:4; sid:1;`),
			func(r *Rule) bool { return r.Priority == 4 }},
		{"priority overrides classtype (before)", hdr(`priority:4; classtype:trojan-activity; sid:1;`),
			func(r *Rule) bool { return r.Priority == 4 && r.Category != "" }},
		{"reference metadata", hdr(`reference:url,example.com/a; reference:cve,2021-44228; metadata:created_at 2024_01_01, signature_severity Major; sid:1;`),
			func(r *Rule) bool {
				return len(r.References) == 2 && r.References[1] == "cve,2021-44228" &&
					len(r.Metadata) == 2 && r.Metadata[1] == "signature_severity Major"
			}},
		{"content hex mixed", hdr(`content:"GET|20|/a|0d 0a|"; sid:1;`),
			func(r *Rule) bool { return string(r.Matches[0].Pattern) == "GET /a\r\n" }},
		{"content hex spaces", hdr(`content:"|41 42  43|"; sid:1;`),
			func(r *Rule) bool { return string(r.Matches[0].Pattern) == "ABC" }},
		{"content escapes", hdr(`content:"a\;b\"c\\d\:e"; sid:1;`),
			func(r *Rule) bool { return string(r.Matches[0].Pattern) == `a;b"c\d:e` }},
		{"content with semicolon in hex", hdr(`content:"|3b|x"; sid:1;`),
			func(r *Rule) bool { return string(r.Matches[0].Pattern) == ";x" }},
		{"negated content", hdr(`content:!"evil"; sid:1;`),
			func(r *Rule) bool { return r.Matches[0].Negated && string(r.Matches[0].Pattern) == "evil" }},
		{"negated content spaced", hdr(`content: ! "evil"; sid:1;`),
			func(r *Rule) bool { return r.Matches[0].Negated }},
		{"nocase with hex", hdr(`content:"|41|bc"; nocase; sid:1;`),
			func(r *Rule) bool { return r.Matches[0].Nocase && string(r.Matches[0].Pattern) == "Abc" }},
		{"offset depth", hdr(`content:"abc"; offset:2; depth:10; sid:1;`),
			func(r *Rule) bool {
				m := r.Matches[0]
				return m.HasOffset && m.Offset == 2 && m.HasDepth && m.Depth == 10 && !m.HasDistance && !m.HasWithin
			}},
		{"distance within", hdr(`content:"a"; content:"bc"; distance:-1; within:5; sid:1;`),
			func(r *Rule) bool {
				m := r.Matches[1]
				return m.HasDistance && m.Distance == -1 && m.HasWithin && m.Within == 5 && !r.Matches[0].HasWithin
			}},
		{"modifiers apply to the latest content", hdr(`content:"a"; content:"b"; nocase; sid:1;`),
			func(r *Rule) bool { return !r.Matches[0].Nocase && r.Matches[1].Nocase }},
		{"fast_pattern", hdr(`content:"a"; content:"bcd"; fast_pattern; sid:1;`),
			func(r *Rule) bool { return !r.Matches[0].FastPattern && r.Matches[1].FastPattern }},
		{"fast_pattern only", hdr(`content:"bcd"; fast_pattern:only; sid:1;`),
			func(r *Rule) bool { return r.Matches[0].FastPattern }},
		{"fast_pattern chop", hdr(`content:"bcdef"; fast_pattern:1,3; sid:1;`),
			func(r *Rule) bool { return r.Matches[0].FastPattern }},
		{"rawbytes ignored", hdr(`content:"x"; rawbytes; sid:1;`),
			func(r *Rule) bool { return len(r.Matches) == 1 }},
		{"pcre flags", hdr(`pcre:"/^abc.d$/smi"; sid:1;`),
			func(r *Rule) bool {
				re := r.Matches[0].Regexp
				return r.Matches[0].Kind == MatchPCRE && re.MatchString("x\nABC\nD\ny")
			}},
		{"pcre relative negated", hdr(`content:"a"; pcre:!"/b+/R"; sid:1;`),
			func(r *Rule) bool { return r.Matches[1].Relative && r.Matches[1].Negated && r.Matches[1].Regexp != nil }},
		{"pcre unquoted", hdr(`pcre:/a\;b/; sid:1;`),
			func(r *Rule) bool { return r.Matches[0].Regexp.MatchString("a;b") }},
		{"pcre dollar matches before final newline", hdr(`pcre:"/abc$/"; sid:1;`),
			func(r *Rule) bool {
				re := r.Matches[0].Regexp
				return re.MatchString("abc\n") && re.MatchString("abc") && !re.MatchString("abc\nx")
			}},
		{"pcre E dollar end only", hdr(`pcre:"/abc$/E"; sid:1;`),
			func(r *Rule) bool { return !r.Matches[0].Regexp.MatchString("abc\n") }},
		{"pcre x strips space and comments", hdr("pcre:\"/a b # comment\n c\\ d [ ]/x\"; sid:1;"),
			func(r *Rule) bool {
				re := r.Matches[0].Regexp
				return re.MatchString("abc d ") && !re.MatchString("a bc d ")
			}},
		{"pcre \\s includes vertical tab", hdr(`pcre:"/a\s[\sb]/"; sid:1;`),
			func(r *Rule) bool { return r.Matches[0].Regexp.MatchString("a\x0b\x0b") }},
		{"pcre \\Q..\\E is literal, in x mode too", hdr(`pcre:"/\Qa $b\E c/x"; sid:1;`),
			func(r *Rule) bool {
				re := r.Matches[0].Regexp
				return re.MatchString("a $bc") && !re.MatchString("a $b c")
			}},
		{"pcre unterminated \\Q", hdr(`pcre:"/a\Q$/"; sid:1;`),
			func(r *Rule) bool { return r.Matches[0].Regexp.MatchString("a$") }},
		{"pcre G ungreedy", hdr(`pcre:"/a.+b/G"; sid:1;`),
			func(r *Rule) bool {
				return string(r.Matches[0].Regexp.Find([]byte("axbxb"))) == "axb"
			}},
		{"flow", hdr(`flow:established,to_server,only_stream; sid:1;`),
			func(r *Rule) bool {
				return r.Flow == Flow{ToServer: true, Established: true, OnlyStream: true}
			}},
		{"flow aliases", hdr(`flow:from_server,stateless,no_stream; sid:1;`),
			func(r *Rule) bool { return r.Flow == Flow{ToClient: true, Stateless: true, NoStream: true} }},
		{"flags exact", hdr(`flags:SA; sid:1;`),
			func(r *Rule) bool { return r.Flags == Flags{Set: true, Mode: FlagsExact, Bits: 0x12} }},
		{"flags plus mask", hdr(`flags:S+,CE; sid:1;`),
			func(r *Rule) bool { return r.Flags == Flags{Set: true, Mode: FlagsAll, Bits: 0x02, Ignore: 0xc0} }},
		{"flags any", hdr(`flags:*FR; sid:1;`),
			func(r *Rule) bool { return r.Flags == Flags{Set: true, Mode: FlagsAny, Bits: 0x05} }},
		{"flags not", hdr(`flags:!PU; sid:1;`),
			func(r *Rule) bool { return r.Flags == Flags{Set: true, Mode: FlagsNot, Bits: 0x28} }},
		{"flags legacy 12", hdr(`flags:S12; sid:1;`),
			func(r *Rule) bool { return r.Flags.Bits == 0xc2 }},
		{"flags zero", hdr(`flags:0; sid:1;`),
			func(r *Rule) bool { return r.Flags == Flags{Set: true} }},
		{"flags legacy mask 12", hdr(`flags:S,12; sid:1;`),
			func(r *Rule) bool { return r.Flags.Ignore == 0xc0 }},
		{"dsize eq", hdr(`dsize:10; sid:1;`),
			func(r *Rule) bool { return r.Dsize == IntCmp{Set: true, Op: IntEq, A: 10} }},
		{"dsize lt", hdr(`dsize:<10; sid:1;`),
			func(r *Rule) bool { return r.Dsize == IntCmp{Set: true, Op: IntLt, A: 10} }},
		{"dsize gt", hdr(`dsize:>300; sid:1;`),
			func(r *Rule) bool { return r.Dsize == IntCmp{Set: true, Op: IntGt, A: 300} }},
		{"dsize range", hdr(`dsize:10<>20; sid:1;`),
			func(r *Rule) bool { return r.Dsize == IntCmp{Set: true, Op: IntRange, A: 10, B: 20} }},
		{"dsize ne", hdr(`dsize:!0; sid:1;`),
			func(r *Rule) bool { return r.Dsize == IntCmp{Set: true, Op: IntNe, A: 0} }},
		{"dsize le ge", hdr(`dsize:<=5; ttl:>=64; sid:1;`),
			func(r *Rule) bool {
				return r.Dsize == IntCmp{Set: true, Op: IntLe, A: 5} && r.TTL == IntCmp{Set: true, Op: IntGe, A: 64}
			}},
		{"itype icode", `alert icmp any any -> any any (itype:8; icode:>0; sid:1;)`,
			func(r *Rule) bool {
				return r.Proto == ProtoICMP && r.Itype == IntCmp{Set: true, A: 8} && r.Icode == IntCmp{Set: true, Op: IntGt}
			}},
		{"ip_proto name", `alert ip any any -> any any (ip_proto:gre; sid:1;)`,
			func(r *Rule) bool { return r.IPProto == IntCmp{Set: true, A: 47} }},
		{"ip_proto negated name", `alert ip any any -> any any (ip_proto:!ipv6-icmp; sid:1;)`,
			func(r *Rule) bool { return r.IPProto == IntCmp{Set: true, Op: IntNe, A: 58} }},
		{"ip_proto number lt", `alert ip any any -> any any (ip_proto:<6; sid:1;)`,
			func(r *Rule) bool { return r.IPProto == IntCmp{Set: true, Op: IntLt, A: 6} }},
		{"flowbits set isset", hdr(`flowbits:set,a.b; flowbits:isset,c; sid:1;`),
			func(r *Rule) bool {
				return len(r.Flowbits) == 2 && r.Flowbits[0].Op == FlowbitSet && r.Flowbits[0].Names[0] == "a.b" &&
					r.Flowbits[1].Op == FlowbitIsSet
			}},
		{"flowbits or list", hdr(`flowbits:isset,a|b|c; sid:1;`),
			func(r *Rule) bool { f := r.Flowbits[0]; return f.Any && len(f.Names) == 3 && f.Names[2] == "c" }},
		{"flowbits unset toggle noalert", hdr(`flowbits:unset,a; flowbits:toggle,b; flowbits:noalert; sid:1;`),
			func(r *Rule) bool {
				return r.NoAlert && len(r.Flowbits) == 3 && r.Flowbits[1].Op == FlowbitToggle && r.Flowbits[2].Op == FlowbitNoAlert
			}},
		{"noalert", hdr(`noalert; sid:1;`),
			func(r *Rule) bool { return r.NoAlert }},
		{"threshold limit", hdr(`threshold: type limit, track by_src, count 1, seconds 60; sid:1;`),
			func(r *Rule) bool {
				return r.Threshold == Threshold{Set: true, Type: ThresholdLimit, Track: TrackBySrc, Count: 1, Seconds: 60}
			}},
		{"threshold both by_dst any order", hdr(`threshold:seconds 5,count 10,track by_dst,type both; sid:1;`),
			func(r *Rule) bool {
				return r.Threshold == Threshold{Set: true, Type: ThresholdBoth, Track: TrackByDst, Count: 10, Seconds: 5}
			}},
		{"threshold threshold", hdr(`threshold:type threshold, track by_src, count 3, seconds 1; sid:1;`),
			func(r *Rule) bool { return r.Threshold.Type == ThresholdThreshold && r.Threshold.Count == 3 }},
		{"detection_filter", hdr(`detection_filter:track by_dst, count 5, seconds 30; sid:1;`),
			func(r *Rule) bool {
				return r.DetectionFilter == Threshold{Set: true, Type: ThresholdThreshold, Track: TrackByDst, Count: 5, Seconds: 30} && !r.Threshold.Set
			}},
		{"sticky buffers", `alert dns any any -> any any (content:"a"; dns.query; content:"evil.com"; nocase; pkt_data; content:"z"; sid:1;)`,
			func(r *Rule) bool {
				return r.Matches[0].Buffer == BufferPayload && r.Matches[1].Buffer == BufferDNSQuery &&
					r.Matches[1].Nocase && r.Matches[2].Buffer == BufferPayload
			}},
		{"legacy dns_query", `alert udp any any -> any 53 (dns_query; content:"x"; sid:1;)`,
			func(r *Rule) bool { return r.Matches[0].Buffer == BufferDNSQuery }},
		{"tls.sni pcre", `alert tls any any -> any any (tls.sni; pcre:"/\.evil\.com$/"; sid:1;)`,
			func(r *Rule) bool { return r.Proto == ProtoTLS && r.Matches[0].Buffer == BufferTLSSNI }},
		{"legacy tls_sni", `alert tcp any any -> any 443 (tls_sni; content:"x"; sid:1;)`,
			func(r *Rule) bool { return r.Matches[0].Buffer == BufferTLSSNI }},
		{"options spaced, uppercase name", hdr(` MSG : "x" ;  sid : 9 ; `),
			func(r *Rule) bool { return r.Msg == "x" && r.SID == 9 }},
		{"semicolon in quoted msg unescaped", hdr(`msg:"a;b"; sid:1;`),
			func(r *Rule) bool { return r.Msg == "a;b" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRule(t, tt.rule)
			if !tt.ok(r) {
				t.Errorf("ParseRule(%q) = %+v", tt.rule, r)
			}
		})
	}
}

func TestParseRuleHeader(t *testing.T) {
	tests := []struct {
		rule   string
		action Action
		proto  Proto
		bidir  bool
	}{
		{`alert ip any any -> any any (sid:1;)`, ActionAlert, ProtoIP, false},
		{`drop tcp any any <> any any (sid:1;)`, ActionDrop, ProtoTCP, true},
		{`reject udp any any -> any any (sid:1;)`, ActionReject, ProtoUDP, false},
		{`rejectsrc udp any any -> any any (sid:1;)`, ActionReject, ProtoUDP, false},
		{`rejectboth tcp any any -> any any (sid:1;)`, ActionReject, ProtoTCP, false},
		{`pass icmp any any -> any any (sid:1;)`, ActionPass, ProtoICMP, false},
		{`alert icmpv6 any any -> any any (sid:1;)`, ActionAlert, ProtoICMP, false},
		{`alert icmpv4 any any -> any any (sid:1;)`, ActionAlert, ProtoICMP, false},
		{`alert dns any any -> any any (sid:1;)`, ActionAlert, ProtoDNS, false},
		{`alert tls any any -> any any (sid:1;)`, ActionAlert, ProtoTLS, false},
		{"alert\ttcp [1.1.1.1, 2.2.2.2] any ->  any  any   (sid:1;)", ActionAlert, ProtoTCP, false},
	}
	for _, tt := range tests {
		r := mustRule(t, tt.rule)
		if r.Action != tt.action || r.Proto != tt.proto || r.Bidirectional != tt.bidir {
			t.Errorf("%q: got %v %v bidir=%v, want %v %v %v", tt.rule, r.Action, r.Proto, r.Bidirectional, tt.action, tt.proto, tt.bidir)
		}
		if r.Raw != tt.rule && r.Raw != strings.TrimSpace(tt.rule) {
			t.Errorf("%q: Raw = %q", tt.rule, r.Raw)
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := []struct{ rule, want string }{
		{`alert tcp any any -> any any`, "missing ("},
		{`alert tcp any any -> any any (sid:1;) x`, "after the rule's closing"},
		{`alert tcp any any -> any (sid:1;)`, "got 6 fields"},
		{`alert tcp any any <- any any (sid:1;)`, "invalid direction"},
		{`bogus tcp any any -> any any (sid:1;)`, `unknown action "bogus"`},
		{`alert foo any any -> any any (sid:1;)`, `unknown protocol "foo"`},
		{`alert tcp 1.2.3.999 any -> any any (sid:1;)`, "invalid address"},
		{`alert tcp 10.0.0.0/33 any -> any any (sid:1;)`, "prefix length"},
		{`alert tcp any 70000 -> any any (sid:1;)`, "invalid port"},
		{`alert tcp any 90:80 -> any any (sid:1;)`, "90 is above 80"},
		{`alert tcp any : -> any any (sid:1;)`, "invalid port range"},
		{`alert tcp [1.1.1.1,!1.1.1.1] any -> any any (sid:1;)`, "matches nothing"},
		{`alert tcp any [80,!80] -> any any (sid:1;)`, "match nothing"},
		{`alert tcp !any any -> any any (sid:1;)`, "negation of any"},
		{`alert tcp $NOPE any -> any any (sid:1;)`, "undefined variable $NOPE"},
		{`alert tcp $HTTP_PORTS any -> any any (sid:1;)`, "is a port variable"},
		{`alert tcp any $HOME_NET -> any any (sid:1;)`, "is an address variable"},
		{`alert tcp [1.1.1.1 any -> any any (sid:1;)`, "unbalanced ["},
		{`alert tcp [$EXTERNAL_NET,10.1.1.1] any -> any any (sid:1;)`, "overlapping entry"},
		{`alert tcp any [$SHELLCODE_PORTS,80] -> any any (sid:1;)`, "overlapping entry"},
		{`alert tcp 1.1.1.5-1.1.1.1 any -> any any (sid:1;)`, "invalid address range"},
		{`alert tcp 1.1.1.1-::1 any -> any any (sid:1;)`, "invalid address range"},
		{`alert tcp 1.1.1.1-x any -> any any (sid:1;)`, "invalid address range"},
		{hdr(`msg:"x";`), "no sid"},
		{hdr(`sid:0;`), "sid 0"},
		{hdr(`sid:x;`), "not a number"},
		{hdr(`sid:1; sid:2;`), "sid given twice"},
		{hdr(`sid:1; msg:"a"; msg:"b";`), "msg given twice"},
		{hdr(`sid:1`), `"sid" does not end in ;`},
		{hdr(`msg:"abc; sid:1;`), "unterminated"},
		{hdr(`sid:1; :x;`), "empty option"},
		{hdr(`sid:1; content;`), "content needs a value"},
		{hdr(`sid:1; nocase:1;`), "takes no value"},
		{hdr(`sid:1; classtype:nope;`), `unknown classtype "nope"`},
		{hdr(`sid:1; priority:0;`), "priority"},
		{hdr(`sid:1; reference:nocomma;`), "type,id"},
		{hdr(`sid:5; content:"";`), "sid 5: content: empty content"},
		{hdr(`sid:1; content:"|4|";`), "odd number of hex digits"},
		{hdr(`sid:1; content:"|4g|";`), "invalid hex character"},
		{hdr(`sid:1; content:"|41";`), "unterminated |hex|"},
		{hdr(`sid:1; content:"a\x";`), `invalid escape \x`},
		{hdr(`sid:1; content:"a"b"c";`), `unescaped "`},
		{hdr(`sid:1; content:"` + strings.Repeat("a", MaxContentLen+1) + `";`), "longer than 4096"},
		{hdr(`sid:1; nocase;`), "nocase needs a preceding content"},
		{hdr(`sid:1; depth:3;`), "depth needs a preceding content"},
		{hdr(`sid:1; pcre:"/a/"; within:3;`), "within needs a preceding content"},
		{hdr(`sid:1; content:"a"; nocase; nocase;`), "nocase given twice"},
		{hdr(`sid:1; content:"abcd"; depth:3;`), "depth 3 is smaller than the content's length 4"},
		{hdr(`sid:1; content:"abcd"; within:2;`), "within 2 is smaller"},
		{hdr(`sid:1; content:"a"; offset:-1;`), "out of range"},
		{hdr(`sid:1; content:"a"; depth:70000;`), "out of range"},
		{hdr(`sid:1; content:"a"; offset:1; offset:2;`), "offset given twice"},
		{hdr(`sid:1; content:"a"; offset:1; distance:2;`), "absolute (offset, depth) and relative"},
		{hdr(`sid:1; content:"a"; fast_pattern; content:"b"; fast_pattern;`), "more than one content"},
		{hdr(`sid:1; content:"ab"; fast_pattern:1,5;`), "offset,length"},
		{hdr(`sid:1; content:"ab"; dns.query; nocase;`), "another buffer"},
		{hdr(`sid:1; pcre:"abc";`), `want "/regex/flags"`},
		{hdr(`sid:1; pcre:"/abc/q";`), "unknown pcre flag"},
		{hdr(`sid:1; flow:to_server,to_client;`), "to_server and to_client"},
		{hdr(`sid:1; flow:established,stateless;`), "conflicting"},
		{hdr(`sid:1; flow:only_stream,no_stream;`), "only_stream and no_stream"},
		{hdr(`sid:1; flow:sideways;`), "unknown flow option"},
		{hdr(`sid:1; flow:established,established;`), "given twice"},
		{hdr(`sid:1; flags:SX;`), "unknown flag"},
		{hdr(`sid:1; flags:+*S;`), "more than one modifier"},
		{hdr(`sid:1; flags:SS;`), "given twice"},
		{hdr(`sid:1; flags:0S;`), "0 (no flags) with other flags"},
		{hdr(`sid:1; flags:S,;`), "empty mask"},
		{hdr(`sid:1; flags:+;`), "no flags"},
		{hdr(`sid:1; dsize:abc;`), "want a number from 0 to 65535"},
		{hdr(`sid:1; dsize:70000;`), "want a number"},
		{hdr(`sid:1; dsize:<0;`), "matches nothing"},
		{hdr(`sid:1; dsize:5<>6;`), "empty range"},
		{hdr(`sid:1; ttl:256;`), "0 to 255"},
		{hdr(`sid:1; itype:-1;`), "0 to 255"},
		{hdr(`sid:1; ip_proto:nosuch;`), "want a number"},
		{hdr(`sid:1; ip_proto:1<>5;`), "ip_proto takes"},
		{hdr(`sid:1; flowbits:frob,a;`), `unknown command "frob"`},
		{hdr(`sid:1; flowbits:set;`), "set needs a name"},
		{hdr(`sid:1; flowbits:set,a|b;`), "only isset and isnotset"},
		{hdr(`sid:1; flowbits:isset,a||b;`), "invalid flowbit name"},
		{hdr(`sid:1; flowbits:noalert,x;`), "noalert takes no name"},
		{hdr(`sid:1; threshold:type limit, track by_src, count 1;`), "missing seconds"},
		{hdr(`sid:1; threshold:track by_src, count 1, seconds 1;`), "missing type"},
		{hdr(`sid:1; threshold:type sometimes, track by_src, count 1, seconds 1;`), "unknown type"},
		{hdr(`sid:1; threshold:type limit, track by_ip, count 1, seconds 1;`), "unknown track"},
		{hdr(`sid:1; threshold:type limit, track by_src, count x, seconds 1;`), "want a number"},
		{hdr(`sid:1; threshold:type limit, track by_src, count 0, seconds 1;`), "count must be at least 1"},
		{hdr(`sid:1; threshold:type limit, track by_src, count 1, seconds 1, type both;`), "type given twice"},
		{hdr(`sid:1; detection_filter:type limit, track by_src, count 1, seconds 1;`), "takes no type"},
		{hdr(`sid:1; threshold:type limit, track by_src, count 1, seconds 1; threshold:type limit, track by_src, count 1, seconds 1;`), "threshold given twice"},
		{`alert udp any any -> any any (tls.sni; content:"x"; sid:1;)`, "tls.sni in a udp rule"},
		{`alert tls any any -> any any (dns.query; content:"x"; sid:1;)`, "dns.query in a tls rule"},
		{`alert icmp any any -> any any (dns.query; content:"x"; sid:1;)`, "dns.query in a icmp rule"},
	}
	for _, tt := range tests {
		_, err := ParseRule(tt.rule, DefaultVars())
		var perr *Error
		if !errors.As(err, &perr) {
			if tt.want == "unsupported" {
				continue
			}
			t.Errorf("ParseRule(%q) = %v (%T), want *Error containing %q", clip(tt.rule), err, err, tt.want)
			continue
		}
		if !strings.Contains(perr.Error(), tt.want) {
			t.Errorf("ParseRule(%q) = %q, want it to contain %q", clip(tt.rule), perr.Error(), tt.want)
		}
	}
}

func TestParseRuleSkips(t *testing.T) {
	tests := []struct{ rule, keyword, reason string }{
		{`alert http any any -> any any (sid:1;)`, "http", "protocol"},
		{`alert smb any any -> any any (sid:1;)`, "smb", "protocol"},
		{`config tcp any any -> any any (sid:1;)`, "config", ""},
		{`alert tcp any any => any any (sid:1;)`, "=>", ""},
		{hdr(`sid:1; http.uri; content:"x";`), "http.uri", ""},
		{hdr(`sid:1; content:"x"; byte_test:1,>,2,0;`), "byte_test", ""},
		{hdr(`sid:1; content:"x"; isdataat:nbytes,relative;`), "isdataat", "variables"},
		{hdr(`sid:1; tag:session,10,packets;`), "tag", ""},
		{hdr(`sid:1; app-layer-event:tls.x;`), "app-layer-event", ""},
		{hdr(`sid:1; target:dest_ip;`), "target", ""},
		{hdr(`sid:1; stream_size:server,>,10;`), "stream_size", ""},
		{hdr(`sid:1; content:"x"; http_uri;`), "http_uri", ""},
		{hdr(`sid:1; pcre:"/x/U";`), "pcre flag U", ""},
		{hdr(`sid:1; pcre:"/x/B";`), "pcre flag B", ""},
		{hdr(`sid:1; pcre:"/x/P";`), "pcre flag P", ""},
		{hdr(`sid:1; pcre:"/x/O";`), "pcre flag O", ""},
		{hdr(`sid:1; pcre:"/x/A";`), "pcre flag A", ""},
		{hdr(`sid:1; pcre:"/(a)\1/";`), "pcre", "backreference"},
		{hdr(`sid:1; pcre:"/a(?=b)/";`), "pcre", "not supported by RE2"},
		{hdr(`sid:1; pcre:"/(?<!a)b/";`), "pcre", "lookbehind"},
		{hdr(`sid:1; pcre:"/a++/";`), "pcre", "possessive"},
		{hdr(`sid:1; pcre:"/a\Z/";`), "pcre", `\Z`},
		{hdr(`sid:1; pcre:"/(?>a)/";`), "pcre", "(?>"},
		{hdr(`sid:1; pcre:"/\xff/";`), "pcre", "UTF-8"},
		{hdr(`sid:1; pcre:"/\cA/";`), "pcre", "RE2 cannot compile"},
		{hdr(`sid:1; pcre:"/[\200]/";`), "pcre", "octal"},
		{hdr(`sid:1; pcre:"/\p{L}/";`), "pcre", `\p`},
		{hdr("sid:1; pcre:\"/\\Qa\xffb\\E/\";"), "pcre", "non-ASCII"},
		{hdr(`sid:1; flow:established,only_frag;`), "flow:only_frag", ""},
		{hdr(`sid:1; threshold:type limit, track by_rule, count 1, seconds 1;`), "threshold", "by_rule"},
		{hdr(`sid:1; detection_filter:track by_both, count 1, seconds 1;`), "detection_filter", "by_both"},
		{hdr(`sid:1; content:"x"; byte_extract:1,0,v; content:"y"; distance:v;`), "byte_extract", ""},
	}
	for _, tt := range tests {
		_, err := ParseRule(tt.rule, DefaultVars())
		var skip *SkipError
		if !errors.As(err, &skip) {
			t.Errorf("ParseRule(%q) = %v, want a *SkipError", tt.rule, err)
			continue
		}
		if skip.Keyword != tt.keyword || !strings.Contains(skip.Reason, tt.reason) {
			t.Errorf("ParseRule(%q) skip = %q / %q, want %q / %q", tt.rule, skip.Keyword, skip.Reason, tt.keyword, tt.reason)
		}
	}
}

func TestAddrSemantics(t *testing.T) {
	vars := DefaultVars()
	if err := vars.Merge(map[string]string{
		"NESTED":   "[$HOME_NET,![10.1.0.0/16,10.2.0.0/16]]",
		"V6":       "[2001:db8::/32, ::1]",
		"MASKED":   "10.0.0.0/255.255.0.0",
		"UNMASKED": "10.9.9.9/8",
	}); err != nil {
		t.Fatal(err)
	}
	res := newResolver(vars)
	tests := []struct {
		expr string
		addr string
		want bool
	}{
		{"any", "8.8.8.8", true},
		{"any", "2001:db8::1", true},
		{"1.2.3.4", "1.2.3.4", true},
		{"1.2.3.4", "1.2.3.5", false},
		{"::ffff:1.2.3.4", "1.2.3.4", true},
		{"1.2.3.0/24", "1.2.3.200", true},
		{"1.2.3.0/24", "1.2.4.1", false},
		{"$HOME_NET", "192.168.1.1", true},
		{"$HOME_NET", "172.20.0.1", true},
		{"$HOME_NET", "8.8.8.8", false},
		{"$EXTERNAL_NET", "8.8.8.8", true},
		{"$EXTERNAL_NET", "10.1.1.1", false},
		{"$EXTERNAL_NET", "2001:db8::1", true},
		{"!$HOME_NET", "10.1.1.1", false},
		{"!$HOME_NET", "11.1.1.1", true},
		{"!$EXTERNAL_NET", "10.1.1.1", true},
		{"!$EXTERNAL_NET", "11.1.1.1", false},
		{"[$HOME_NET,!192.168.1.0/24]", "192.168.2.1", true},
		{"[$HOME_NET,!192.168.1.0/24]", "192.168.1.1", false},
		{"[$HOME_NET,!192.168.1.0/24]", "8.8.8.8", false},
		{"[!10.0.0.0/8]", "10.0.0.1", false},
		{"[!10.0.0.0/8]", "11.0.0.1", true},
		{"[!10.0.0.0/8,!11.0.0.0/8]", "11.0.0.1", false},
		{"![10.0.0.0/8,11.0.0.0/8]", "11.0.0.1", false},
		{"![10.0.0.0/8,11.0.0.0/8]", "12.0.0.1", true},
		{"[1.1.1.1,[2.2.2.2,[3.3.3.3]]]", "3.3.3.3", true},
		{"[1.1.1.1,[2.2.2.2,[3.3.3.3]]]", "4.4.4.4", false},
		{"$NESTED", "10.3.0.1", true},
		{"$NESTED", "10.2.0.1", false},
		{"$NESTED", "8.8.8.8", false},
		{"[$EXTERNAL_NET]", "8.8.8.8", true},
		{"[$EXTERNAL_NET,!8.8.8.8]", "8.8.8.8", false},
		{"[$EXTERNAL_NET,!8.8.8.8]", "8.8.4.4", true},
		{"[$EXTERNAL_NET,!8.8.8.8]", "10.0.0.1", false},
		{"$V6", "2001:db8:1::5", true},
		{"$V6", "::1", true},
		{"$V6", "::2", false},
		{"$MASKED", "10.0.200.1", true},
		{"$MASKED", "10.1.0.1", false},
		{"$UNMASKED", "10.200.0.1", true},
		{"[any,!1.1.1.1]", "1.1.1.1", false},
		{"[any,!1.1.1.1]", "1.1.1.2", true},
		{"1.1.1.1-1.1.1.5", "1.1.1.0", false},
		{"1.1.1.1-1.1.1.5", "1.1.1.1", true},
		{"1.1.1.1-1.1.1.5", "1.1.1.5", true},
		{"1.1.1.1-1.1.1.5", "1.1.1.6", false},
		{"[10.0.0.0-10.255.255.255]", "10.9.8.7", true},
		{"0.0.0.0-255.255.255.255", "200.1.1.1", true},
		{"2001:db8::ff-2001:db8::1:0", "2001:db8::1:0", true},
		{"2001:db8::ff-2001:db8::1:0", "2001:db8::fe", false},
		{"[$EXTERNAL_NET,1.1.1.1]", "1.1.1.1", true},
		{"[$EXTERNAL_NET,1.1.1.1]", "10.0.0.1", false},
	}
	for _, tt := range tests {
		s, err := res.addrSet(tt.expr)
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		if got := s.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("%s contains %s = %v, want %v (set %+v)", tt.expr, tt.addr, got, tt.want, s)
		}
	}
}

func TestAddrRangePrefixes(t *testing.T) {
	tests := []struct {
		lo, hi string
		want   string
	}{
		{"1.1.1.1", "1.1.1.5", "[1.1.1.1/32 1.1.1.2/31 1.1.1.4/31]"},
		{"10.0.0.0", "10.255.255.255", "[10.0.0.0/8]"},
		{"0.0.0.0", "255.255.255.255", "[0.0.0.0/0]"},
		{"1.2.3.4", "1.2.3.4", "[1.2.3.4/32]"},
		{"::", "::3", "[::/126]"},
		{"::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "254"},
	}
	for _, tt := range tests {
		ps, err := parseAddrRange(tt.lo, tt.hi)
		if err != nil {
			t.Errorf("%s-%s: %v", tt.lo, tt.hi, err)
			continue
		}
		got := fmt.Sprint(ps)
		if !strings.HasPrefix(tt.want, "[") {
			got = fmt.Sprint(len(ps))
		}
		if got != tt.want {
			t.Errorf("%s-%s = %s, want %s", tt.lo, tt.hi, got, tt.want)
		}
	}
}

func TestPortSemantics(t *testing.T) {
	res := newResolver(DefaultVars())
	tests := []struct {
		expr string
		port uint16
		want bool
	}{
		{"any", 0, true},
		{"80", 80, true},
		{"80", 81, false},
		{"1024:", 1024, true},
		{"1024:", 65535, true},
		{"1024:", 1023, false},
		{":1023", 0, true},
		{":1023", 1024, false},
		{"100:200", 150, true},
		{"100:200", 201, false},
		{"!80", 80, false},
		{"!80", 443, true},
		{"![80,443]", 443, false},
		{"![80,443]", 8080, true},
		{"[1:1024,!80]", 80, false},
		{"[1:1024,!80]", 81, true},
		{"[1:1024,!80]", 2000, false},
		{"[!80,!81]", 81, false},
		{"[!80,!81]", 82, true},
		{"$HTTP_PORTS", 80, true},
		{"$SHELLCODE_PORTS", 80, false},
		{"$SHELLCODE_PORTS", 81, true},
		{"$FILE_DATA_PORTS", 143, true},
		{"$FILE_DATA_PORTS", 80, true},
		{"$FILE_DATA_PORTS", 25, false},
		{"[$SIP_PORTS,[6000:6010,!6005]]", 6005, false},
		{"[$SIP_PORTS,[6000:6010,!6005]]", 5061, true},
		{"[$SIP_PORTS, 6000]", 6000, true},
		{"[$SHELLCODE_PORTS,443]", 80, false},
		{"[$SHELLCODE_PORTS,443]", 443, true},
	}
	for _, tt := range tests {
		s, err := res.portSet(tt.expr)
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		if got := s.Contains(tt.port); got != tt.want {
			t.Errorf("%s contains %d = %v, want %v (set %+v)", tt.expr, tt.port, got, tt.want, s)
		}
	}
}

func TestContainsDoesNotAllocate(t *testing.T) {
	r := mustRule(t, `alert tcp [$HOME_NET,!10.1.0.0/16] [1:1024,!80] -> $EXTERNAL_NET any (sid:1;)`)
	a := netip.MustParseAddr("10.2.3.4")
	hit := 0
	allocs := testing.AllocsPerRun(1000, func() {
		if r.Src.Contains(a) && r.SrcPorts.Contains(443) && !r.Dst.Contains(a) {
			hit++
		}
	})
	if allocs != 0 {
		t.Errorf("Contains allocates %v times a call", allocs)
	}
	if hit == 0 {
		t.Error("Contains gave the wrong answer")
	}
}

func TestVars(t *testing.T) {
	if err := DefaultVars().Check(); err != nil {
		t.Fatalf("default vars: %v", err)
	}
	tests := []struct {
		name      string
		overrides map[string]string
		want      string // error substring; "" for none
	}{
		{"cycle", map[string]string{"A": "$B", "B": "[1.1.1.1,$A]"}, "variable cycle: $A -> $B -> $A"},
		{"self cycle", map[string]string{"A": "!$A"}, "variable cycle: $A -> $A"},
		{"port cycle", map[string]string{"A_PORTS": "$B_PORTS", "B_PORTS": "$A_PORTS"}, "variable cycle"},
		{"undefined", map[string]string{"A": "[$HOME_NET,$NOPE]"}, "undefined variable $NOPE"},
		{"bad value", map[string]string{"HOME_NET": "10.0.0.300"}, "invalid address"},
		{"bad port", map[string]string{"HTTP_PORTS": "[80,x]"}, "invalid port"},
		{"bad name", map[string]string{"A B": "1.1.1.1"}, "invalid name"},
		{"ok with $", map[string]string{"$HOME_NET": "10.0.0.0/8"}, ""},
		{"ok port", map[string]string{"MY_PORTS": "[80,8080:8090]"}, ""},
	}
	for _, tt := range tests {
		v := DefaultVars()
		before := v.Addr["HOME_NET"]
		err := v.Merge(tt.overrides)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Merge = %v, want %q", tt.name, err, tt.want)
		}
		if v.Addr["HOME_NET"] != before {
			t.Errorf("%s: failed Merge changed the vars", tt.name)
		}
	}

	v := DefaultVars()
	if err := v.Merge(map[string]string{"HOME_NET": "10.0.0.0/8", "HTTP_PORTS": "[80,8080]", "WEB_PORT": "81", "SSH_PORTS": "2222"}); err != nil {
		t.Fatal(err)
	}
	if v.Port["HTTP_PORTS"] != "[80,8080]" || v.Port["WEB_PORT"] != "81" || v.Port["SSH_PORTS"] != "2222" || v.Addr["HOME_NET"] != "10.0.0.0/8" {
		t.Errorf("Merge placed variables wrongly: %+v", v)
	}
	r, err := ParseRule(`alert tcp $EXTERNAL_NET any -> $HOME_NET $HTTP_PORTS (sid:1;)`, v)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Src.Contains(netip.MustParseAddr("192.168.1.1")) || r.Dst.Contains(netip.MustParseAddr("192.168.1.1")) || !r.DstPorts.Contains(8080) {
		t.Errorf("overrides not applied: %+v", r)
	}
}

func TestParseLines(t *testing.T) {
	text := "# comment\n" +
		"\n" +
		"   # indented comment\n" +
		"# alert tcp any any -> any any (sid:99; bogus\n" +
		"alert tcp any any -> any any (msg:\"one\"; \\\n" +
		"  content:\"a\"; \\\n" +
		"  sid:1;)\n" +
		"alert http any any -> any any (sid:2;)\r\n" +
		"alert tcp any any -> any any (sid:3;)" // no final newline
	set, err := Parse(strings.NewReader(text), "x.rules", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != 2 || set.Rules[0].SID != 1 || set.Rules[0].Line != 5 || set.Rules[1].SID != 3 || set.Rules[1].Line != 9 {
		t.Fatalf("rules = %+v", set.Rules)
	}
	if set.Rules[0].File != "x.rules" || !strings.Contains(set.Rules[0].Raw, `content:"a";`) {
		t.Errorf("rule 1 = %+v", set.Rules[0])
	}
	if len(set.Skipped) != 1 || set.Skipped[0].String() != `x.rules:8: sid 2: skipped: http: protocol http is not supported` {
		t.Errorf("skipped = %v", set.Skipped)
	}

	errTests := []struct{ text, want string }{
		{"alert tcp any any -> any any (sid:1;)\n\nalert tcp any any -> any any (sid:1;)\n", "f:3: duplicate sid 1:1 (first at f:1)"},
		{"alert tcp any any -> any any (sid:1;)\nalert tcp any any -> any any (sid:1; gid:2;)\n", ""},
		{"\n\nalert tcp any any -> any any (sid:4; depth:1;)\n", "f:3: sid 4: depth: depth needs a preceding content"},
		{"alert tcp any any -> any any (\\\nsid:4; \\\nnocase;)\n", "f:1: sid 4: nocase"},
		{"alert tcp any any -> any any (content:\"" + strings.Repeat("a", MaxRuleLen) + "\"; sid:1;)\n", "f:1: line is longer than 65536 bytes"},
		{"\nalert tcp any any -> any any (msg:\"" + strings.Repeat("a", MaxRuleLen/2) + "\"; \\\n content:\"" + strings.Repeat("b", MaxRuleLen/2) + "\"; sid:1;)\n", "f:2: rule is longer than 65536 bytes"},
		{"alert tcp any any -> any any (msg:\"a\\\"; sid:1;)\n", "f:1: option \"msg\": unterminated"},
	}
	for _, tt := range errTests {
		_, err := Parse(strings.NewReader(tt.text), "f", DefaultVars())
		if tt.want == "" {
			if err != nil {
				t.Errorf("Parse(%q) = %v", clip(tt.text), err)
			}
			continue
		}
		var perr *Error
		if !errors.As(err, &perr) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want %q", clip(tt.text), err, tt.want)
		}
	}
}

func TestFileSizeLimit(t *testing.T) {
	defer func(old int64) { fileSizeLimit = old }(fileSizeLimit)
	fileSizeLimit = 100
	text := strings.Repeat("# comment line\n", 10) // 150 bytes
	_, err := Parse(strings.NewReader(text), "big", nil)
	if err == nil || !strings.Contains(err.Error(), "big:7: file is larger than 100 bytes") {
		t.Errorf("Parse of a big stream: %v", err)
	}
	path := filepath.Join(t.TempDir(), "big.rules")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, load := range []func() error{
		func() error { _, err := ParseFile(path, nil); return err },
		func() error { _, err := LoadGlobs([]string{path}, nil); return err },
	} {
		if err := load(); err == nil || !strings.Contains(err.Error(), "file is larger than 100 bytes") {
			t.Errorf("loading a big file: %v", err)
		}
	}
	if _, err := Parse(strings.NewReader(text[:90]), "small", nil); err != nil {
		t.Errorf("Parse of a small stream: %v", err)
	}
}

func TestSkipAndErrorStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{Skip{File: "a.rules", Line: 3, SID: 9, Keyword: "byte_test"}.String(), `a.rules:3: sid 9: skipped: unsupported keyword "byte_test"`},
		{Skip{File: "a.rules", Line: 3, SID: 9, Keyword: "pcre", Reason: "why"}.String(), `a.rules:3: sid 9: skipped: pcre: why`},
		{(&Error{File: "a.rules", Line: 2, Msg: "bad"}).Error(), "a.rules:2: bad"},
		{(&Error{Msg: "bad"}).Error(), "bad"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestLoadGlobs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("a.rules", "alert tcp any any -> any any (sid:1;)\n")
	write("b.rules", "alert tcp any any -> any any (sid:2;)\nalert http any any -> any any (sid:3;)\n")
	dup := write("dup.other", "\nalert tcp any any -> any any (sid:2;)\n")

	set, err := LoadGlobs([]string{filepath.Join(dir, "*.rules"), filepath.Join(dir, "a.rules")}, DefaultVars())
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != 2 || set.Rules[0].SID != 1 || set.Rules[1].SID != 2 || len(set.Skipped) != 1 {
		t.Errorf("set = %+v", set)
	}

	_, err = LoadGlobs([]string{filepath.Join(dir, "*.rules"), dup}, DefaultVars())
	if err == nil || !strings.Contains(err.Error(), dup+":2: duplicate sid 1:2 (first at "+filepath.Join(dir, "b.rules")+":1)") {
		t.Errorf("duplicate across files: %v", err)
	}
	_, err = LoadGlobs([]string{filepath.Join(dir, "*.nothing")}, DefaultVars())
	if err == nil || !strings.Contains(err.Error(), "*.nothing") {
		t.Errorf("empty glob: %v", err)
	}
	_, err = LoadGlobs([]string{filepath.Join(dir, "[")}, DefaultVars())
	if err == nil {
		t.Error("bad glob: no error")
	}
	if _, err := ParseFile(filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("ParseFile of a missing file: no error")
	}
}

func TestParseTestdata(t *testing.T) {
	set, err := ParseFile("testdata/et.rules", DefaultVars())
	if err != nil {
		t.Fatal(err)
	}
	skipped := map[string]bool{}
	for _, s := range set.Skipped {
		skipped[s.Keyword] = true
	}
	for _, kw := range []string{"http.uri", "byte_test", "tag", "http", "pcre flag U", "pcre"} {
		if !skipped[kw] {
			t.Errorf("no rule skipped for %q; skipped: %v", kw, set.Skipped)
		}
	}
	// Every supported keyword is exercised by some rule in the file.
	used := map[string]bool{}
	for _, r := range set.Rules {
		opts, err := splitOptions(r.Raw[strings.IndexByte(r.Raw, '(')+1:strings.LastIndexByte(r.Raw, ')')], nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range opts {
			used[o.name] = true
		}
	}
	for _, kw := range Keywords() {
		if !used[kw] {
			t.Errorf("testdata/et.rules has no parsed rule using %q", kw)
		}
	}
	if len(set.Rules) != 34 || len(set.Skipped) != 7 {
		t.Errorf("parsed %d rules and skipped %d, want 34 and 7", len(set.Rules), len(set.Skipped))
	}
	for _, r := range set.Rules {
		if err := checkRule(r); err != nil {
			t.Errorf("%s:%d: %v", r.File, r.Line, err)
		}
	}
}

// checkRule checks a parsed rule's invariants.
func checkRule(r *Rule) error {
	switch {
	case r.SID == 0 || r.GID == 0:
		return errors.New("sid or gid 0")
	case r.Priority < 1 || r.Priority > 255:
		return errors.New("priority out of range")
	case r.Src.Any && (len(r.Src.Include) > 0 || len(r.Src.Exclude) > 0),
		r.Dst.Any && (len(r.Dst.Include) > 0 || len(r.Dst.Exclude) > 0),
		!r.Src.Any && len(r.Src.Include) == 0 && len(r.Src.Exclude) == 0,
		!r.Dst.Any && len(r.Dst.Include) == 0 && len(r.Dst.Exclude) == 0:
		return errors.New("inconsistent address set")
	case (r.Classtype == "") != (r.Category == ""):
		return errors.New("classtype without category")
	}
	for _, ps := range []PortSet{r.SrcPorts, r.DstPorts} {
		if ps.Any && (len(ps.Include) > 0 || len(ps.Exclude) > 0) || !ps.Any && len(ps.Include) == 0 && len(ps.Exclude) == 0 {
			return errors.New("inconsistent port set")
		}
		for _, pr := range append(ps.Include, ps.Exclude...) {
			if pr.Lo > pr.Hi {
				return errors.New("port range upside down")
			}
		}
	}
	fast := 0
	for _, m := range r.Matches {
		if m.FastPattern {
			fast++
		}
		switch m.Kind {
		case MatchContent:
			if len(m.Pattern) == 0 || len(m.Pattern) > MaxContentLen || m.Regexp != nil {
				return errors.New("bad content")
			}
			if m.HasDepth && m.Depth < len(m.Pattern) || m.HasWithin && m.Within < len(m.Pattern) {
				return errors.New("depth or within below the content's length")
			}
			if (m.HasOffset || m.HasDepth) && (m.HasDistance || m.HasWithin) {
				return errors.New("absolute and relative modifiers")
			}
		case MatchPCRE:
			if m.Regexp == nil || m.Pattern != nil {
				return errors.New("bad pcre")
			}
		case MatchIsDataAt:
			if m.Regexp != nil || m.Pattern != nil || m.Offset < 0 {
				return errors.New("bad isdataat")
			}
		default:
			return errors.New("bad match kind")
		}
		if m.Buffer > BufferTLSSNI {
			return errors.New("bad buffer")
		}
	}
	if fast > 1 {
		return errors.New("more than one fast_pattern")
	}
	for _, f := range r.Flowbits {
		if f.Op != FlowbitNoAlert && len(f.Names) == 0 {
			return errors.New("flowbit without a name")
		}
	}
	if r.Threshold.Set && (r.Threshold.Count < 1 || r.Threshold.Seconds < 1) {
		return errors.New("bad threshold")
	}
	if r.Action > ActionPass || r.Proto > ProtoTLS {
		return errors.New("bad action or proto")
	}
	return nil
}

func TestKeywords(t *testing.T) {
	kws := Keywords()
	for _, want := range []string{"content", "pcre", "dns.query", "tls.sni", "flowbits", "threshold"} {
		found := false
		for _, k := range kws {
			found = found || k == want
		}
		if !found {
			t.Errorf("Keywords() lacks %q", want)
		}
	}
	if len(Classtypes) < 40 {
		t.Errorf("%d classtypes, want Suricata's ~40+", len(Classtypes))
	}
}

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		hdr(`msg:"x\;y"; content:"|41 42|"; nocase; depth:4; sid:1;`),
		`alert tcp [$HOME_NET,!10.0.0.0/8] [1:1024,!80] <> $EXTERNAL_NET any (flow:established,to_server; pcre:"/a$/smiR"; sid:2;)`,
		`alert dns any any -> any any (dns.query; content:"x"; flowbits:isset,a|b; threshold:type limit,track by_src,count 1,seconds 1; sid:3;)`,
	} {
		f.Add(s)
	}
	vars := DefaultVars()
	f.Fuzz(func(t *testing.T, text string) {
		r, err := ParseRule(text, vars)
		if err != nil {
			var perr *Error
			var skip *SkipError
			if !errors.As(err, &perr) && !errors.As(err, &skip) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if r != nil {
				t.Fatal("rule and error")
			}
			return
		}
		if err := checkRule(r); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("# c\nalert tcp any any -> any any (sid:1; \\\n content:\"a\";)\nalert http any any -> any any (sid:2;)\n"))
	f.Add([]byte("alert tcp any any -> any any (sid:1;)\nalert tcp any any -> any any (sid:1;)\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse(bytes.NewReader(data), "f", DefaultVars())
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		seen := map[sidKey]bool{}
		for _, r := range set.Rules {
			if seen[sidKey{r.GID, r.SID}] {
				t.Fatal("duplicate sid accepted")
			}
			seen[sidKey{r.GID, r.SID}] = true
			if err := checkRule(r); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzVars(f *testing.F) {
	f.Add("[$HOME_NET,!10.1.0.0/16]", "[$HTTP_PORTS,1000:2000,!1500]")
	f.Add("!$EXTERNAL_NET", ":1023")
	f.Fuzz(func(t *testing.T, addr, port string) {
		v := DefaultVars()
		if err := v.Merge(map[string]string{"FUZZ": addr, "FUZZ_PORTS": port}); err != nil {
			return
		}
		res := newResolver(v)
		a, err := res.addrSet("$FUZZ")
		if err != nil {
			return
		}
		if a.Any && len(a.Include)+len(a.Exclude) > 0 {
			t.Fatal("Any with prefixes")
		}
		a.Contains(netip.MustParseAddr("10.1.2.3"))
		p, err := res.portSet("$FUZZ_PORTS")
		if err != nil {
			return
		}
		for _, r := range append(p.Include, p.Exclude...) {
			if r.Lo > r.Hi {
				t.Fatal("port range upside down")
			}
		}
	})
}

// encodeContent writes data as a content value the way rule writers do: printable
// bytes as they are (escaping " ; \ :), the rest as |hex| runs, spaced by spaced.
func encodeContent(data []byte, spaced bool) string {
	var b strings.Builder
	b.WriteByte('"')
	inHex := false
	for _, c := range data {
		printable := c >= 0x20 && c < 0x7f && c != '|'
		if printable == inHex {
			b.WriteByte('|')
			inHex = !inHex
		}
		switch {
		case inHex:
			if spaced {
				b.WriteByte(' ')
			}
			// Upper-case high nibble, lower-case low: both cases must decode.
			b.WriteByte("0123456789ABCDEF"[c>>4])
			b.WriteByte("0123456789abcdef"[c&15])
		case strings.IndexByte(`";\:`, c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	if inHex {
		b.WriteByte('|')
	}
	b.WriteByte('"')
	return b.String()
}

func TestContentRoundTrip(t *testing.T) {
	tests := [][]byte{[]byte("a"), []byte(`GET "x";\:`), {0, 0xff, '|', 'a', '\n'}, bytes.Repeat([]byte{0x90}, MaxContentLen)}
	for _, data := range tests {
		for _, spaced := range []bool{false, true} {
			got, err := decodeContent(encodeContent(data, spaced))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("decodeContent(encode(%q)) = %q, %v", clip(string(data)), clip(string(got)), err)
			}
		}
	}
}

// FuzzContent checks that any bytes, written as a rule writer would, decode back,
// and that decoding arbitrary text never panics.
func FuzzContent(f *testing.F) {
	f.Add([]byte("GET /a"), `"|41 42|c\;"`)
	f.Add([]byte{0, '|', '"', 0xff}, `"a|4`)
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		if out, err := decodeContent(text); err == nil && (len(out) == 0 || len(out) > MaxContentLen) {
			t.Fatalf("decodeContent(%q) = %d bytes", text, len(out))
		}
		if len(data) == 0 || len(data) > MaxContentLen {
			return
		}
		got, err := decodeContent(encodeContent(data, len(data)%2 == 0))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %q: %q, %v", data, got, err)
		}
	})
}

func TestAnchorsAndBsize(t *testing.T) {
	r, err := ParseRule(`alert dns any any -> any any (msg:"x"; dns.query; content:"evil"; startswith; content:".com"; endswith; bsize:<64; sid:1;)`, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := r.Matches[0], r.Matches[1]
	if !a.StartsWith || !a.HasOffset || a.Offset != 0 || !a.HasDepth || a.Depth != 4 || !b.EndsWith || b.StartsWith {
		t.Errorf("matches %+v %+v", a, b)
	}
	if len(r.Bsize) != 1 || r.Bsize[0].Buffer != BufferDNSQuery || r.Bsize[0].Size != (IntCmp{Set: true, Op: IntLt, A: 64}) {
		t.Errorf("bsize %+v", r.Bsize)
	}
	for _, bad := range []string{
		`alert tcp any any -> any any (msg:"x"; content:"a"; startswith; offset:1; sid:1;)`,
		`alert tcp any any -> any any (msg:"x"; content:"a"; depth:3; startswith; sid:1;)`,
		`alert tcp any any -> any any (msg:"x"; content:"a"; endswith; endswith; sid:1;)`,
		`alert tcp any any -> any any (msg:"x"; startswith; sid:1;)`,
	} {
		var e *Error
		if _, err := ParseRule(bad, nil); !errors.As(err, &e) {
			t.Errorf("%s: %v, want a syntax error", bad, err)
		}
	}
	var s *SkipError
	if _, err := ParseRule(`alert tcp any any -> any any (msg:"x"; content:"a"; bsize:10; sid:1;)`, nil); !errors.As(err, &s) || s.Keyword != "bsize" {
		t.Errorf("bsize on the payload: %v, want a skip", err)
	}
}

func TestParseByteOrderMark(t *testing.T) {
	set, err := Parse(strings.NewReader("\ufeffalert tcp any any -> any any (msg:\"x\"; sid:1;)\n"), "bom.rules", nil)
	if err != nil || len(set.Rules) != 1 {
		t.Fatalf("a file starting with a byte-order mark: %v", err)
	}
}

// Parse reports every syntax error of a file (up to MaxErrors), not only the first.
func TestParseReportsEveryError(t *testing.T) {
	text := `alert tcp any any -> any any (msg:"a"; classtype:nope; sid:1;)
alert tcp any any -> any any (msg:"ok"; sid:2;)
alert tcp any any -> any any (msg:"b"; content:; sid:3;)
alert tcp any any -> any any (msg:"dup"; sid:2;)
`
	_, err := Parse(strings.NewReader(text), "f.rules", nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"f.rules:1: ", "f.rules:3: ", "f.rules:4: duplicate sid 1:2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 1 {
		t.Errorf("errors.As finds %+v, want the first error", e)
	}
	var many strings.Builder
	for i := range MaxErrors + 5 {
		fmt.Fprintf(&many, "alert tcp any any -> any any (msg:\"x\"; classtype:nope; sid:%d;)\n", i+1)
	}
	_, err = Parse(strings.NewReader(many.String()), "f.rules", nil)
	if n := strings.Count(err.Error(), "\n") + 1; n != MaxErrors {
		t.Errorf("%d errors reported, want %d", n, MaxErrors)
	}
}
