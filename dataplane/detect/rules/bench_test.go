package rules

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// generatedRules returns n distinct rules in the shapes ET rule sets mostly use.
func generatedRules(n int) string {
	var b strings.Builder
	for i := range n {
		sid := 1_000_000 + i
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, `alert tcp $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"GEN TROJAN beacon %d"; flow:established,to_server; content:"GET /gate%d.php"; depth:20; content:"id="; distance:0; within:50; fast_pattern; classtype:trojan-activity; sid:%d; rev:1; metadata:created_at 2024_01_01;)`+"\n", i, i, sid)
		case 1:
			fmt.Fprintf(&b, `alert dns $HOME_NET any -> any any (msg:"GEN DNS query %d"; dns.query; content:"bad%d.example"; nocase; classtype:bad-unknown; sid:%d; rev:2;)`+"\n", i, i, sid)
		case 2:
			fmt.Fprintf(&b, `alert tcp any any -> [$HOME_NET,!10.%d.0.0/16] [1:1024,!80] (msg:"GEN pcre %d"; content:"|de ad be ef|"; pcre:"/^user\s+%d[a-z]{2,8}$/smi"; reference:url,example.com/%d; sid:%d; rev:1;)`+"\n", i%256, i, i, i, sid)
		case 3:
			fmt.Fprintf(&b, `alert tls $HOME_NET any -> $EXTERNAL_NET any (msg:"GEN SNI %d"; flow:established,to_server; tls.sni; content:"c2-%d.example.net"; nocase; threshold:type limit, track by_src, count 1, seconds 60; sid:%d; rev:1;)`+"\n", i, i, sid)
		default:
			fmt.Fprintf(&b, `alert tcp $EXTERNAL_NET any -> $HOME_NET 22 (msg:"GEN scan %d"; flags:S,12; dsize:0; flowbits:set,gen.%d; detection_filter:track by_src, count 5, seconds 60; sid:%d; rev:1;)`+"\n", i, i, sid)
		}
	}
	return b.String()
}

// BenchmarkParse30k parses 30,000 rules a run; ns/rule is the figure to watch.
func BenchmarkParse30k(b *testing.B) {
	const n = 30000
	text := generatedRules(n)
	vars := DefaultVars()
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		set, err := Parse(strings.NewReader(text), "gen.rules", vars)
		if err != nil {
			b.Fatal(err)
		}
		if len(set.Rules) != n {
			b.Fatalf("parsed %d rules, want %d", len(set.Rules), n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/rule")
}

func BenchmarkContains(b *testing.B) {
	r, err := ParseRule(`alert tcp [$HOME_NET,!10.1.0.0/16] [1:1024,!80] -> $EXTERNAL_NET any (sid:1;)`, DefaultVars())
	if err != nil {
		b.Fatal(err)
	}
	a := netip.MustParseAddr("10.2.3.4")
	b.ReportAllocs()
	hits := 0
	for b.Loop() {
		if r.Src.Contains(a) && r.SrcPorts.Contains(443) {
			hits++
		}
	}
	if hits == 0 {
		b.Fatal("no hits")
	}
}
