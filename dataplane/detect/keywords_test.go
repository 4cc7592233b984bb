package detect

import (
	"slices"
	"strings"
	"testing"
)

// Each case loads rules, plays a scenario and checks which sids alerted on which
// packet.
func TestKeywords(t *testing.T) {
	const c, s = "10.0.0.1", "192.0.2.80"
	for _, tc := range []struct {
		name  string
		rules string
		play  func(h *harness) [][]uint32
		want  [][]uint32
	}{
		{
			name:  "content",
			rules: `alert tcp any any -> any any (msg:"x"; content:"evil"; sid:1;)`,
			play: func(h *harness) [][]uint32 {
				x := h.tcp(c, s, 40000, 80)
				x.handshake()
				return sids(x.seg(true, "PA", []byte("an evil thing")), x.seg(true, "PA", []byte("a good thing")))
			},
			want: [][]uint32{{1}, nil},
		},
		{
			name:  "nocase with hex",
			rules: `alert tcp any any -> any any (msg:"x"; content:"|41|bC"; nocase; sid:2;)`,
			play: func(h *harness) [][]uint32 {
				x := h.tcp(c, s, 40000, 80)
				x.handshake()
				return sids(x.seg(true, "PA", []byte("xxaBcxx")), x.seg(true, "PA", []byte("xxa-bcxx")))
			},
			want: [][]uint32{{2}, nil},
		},
		{
			name:  "offset and depth",
			rules: `alert udp any any -> any any (msg:"x"; content:"AB"; offset:2; depth:3; sid:3;)`,
			play: func(h *harness) [][]uint32 {
				x := h.udp(c, s, 40000, 9999)
				// AB at 2 (in), at 3 (ends at 5 = offset+depth: in), at 4 (out), at 0 (before offset).
				return sids(x.dgram(true, []byte("xxABxxx")), x.dgram(true, []byte("xxxABxx")),
					x.dgram(true, []byte("xxxxABx")), x.dgram(true, []byte("ABxxxxx")))
			},
			want: [][]uint32{{3}, {3}, nil, nil},
		},
		{
			name: "distance and within, relative at the buffer's end",
			rules: `alert udp any any -> any any (msg:"x"; content:"GET"; content:"HTTP"; distance:1; within:10; sid:4;)
alert udp any any -> any any (msg:"y"; content:"END"; content:"Z"; distance:0; sid:5;)`,
			play: func(h *harness) [][]uint32 {
				x := h.udp(c, s, 40000, 9999)
				return sids(x.dgram(true, []byte("GET /a HTTP/1.1")), x.dgram(true, []byte("GET /aaaaaaaaaaaaaaa HTTP/1.1")),
					x.dgram(true, []byte("GETHTTP")), x.dgram(true, []byte("xxEND")), x.dgram(true, []byte("ENDZ")))
			},
			want: [][]uint32{{4}, nil, nil, nil, {5}},
		},
		{
			name:  "backtracking to a later occurrence",
			rules: `alert udp any any -> any any (msg:"x"; content:"ab"; content:"cd"; distance:0; within:2; sid:6;)`,
			play: func(h *harness) [][]uint32 {
				x := h.udp(c, s, 40000, 9999)
				return sids(x.dgram(true, []byte("ab--abcd")), x.dgram(true, []byte("ab--ab-cd")))
			},
			want: [][]uint32{{6}, nil},
		},
		{
			name:  "negated content",
			rules: `alert udp any any -> any any (msg:"x"; content:"user"; content:!"admin"; sid:7;)`,
			play: func(h *harness) [][]uint32 {
				x := h.udp(c, s, 40000, 9999)
				return sids(x.dgram(true, []byte("user bob")), x.dgram(true, []byte("user admin")))
			},
			want: [][]uint32{{7}, nil},
		},
		{
			name: "pcre, relative pcre",
			rules: `alert udp any any -> any any (msg:"x"; pcre:"/id=\d{3}\b/i"; sid:8;)
alert udp any any -> any any (msg:"y"; content:"key"; pcre:"/^=[a-f]+/R"; sid:9;)`,
			play: func(h *harness) [][]uint32 {
				x := h.udp(c, s, 40000, 9999)
				return sids(x.dgram(true, []byte("ID=123 ok")), x.dgram(true, []byte("id=1234")),
					x.dgram(true, []byte("key=beef")), x.dgram(true, []byte("key: =beef")))
			},
			want: [][]uint32{{8}, nil, {9}, nil},
		},
		{
			name: "flow direction and established",
			rules: `alert tcp any any -> any any (msg:"x"; flow:to_server,established; content:"q"; sid:10;)
alert tcp any any -> any any (msg:"y"; flow:to_client; content:"r"; sid:11;)
alert tcp any any -> any any (msg:"z"; flow:not_established; flags:S; sid:12;)`,
			play: func(h *harness) [][]uint32 {
				x := h.tcp(c, s, 40000, 80)
				syn := sids(x.seg(true, "S", nil))
				x.seg(false, "SA", nil)
				x.seg(true, "A", nil)
				return append(syn, sids(x.seg(true, "PA", []byte("q")), x.seg(false, "PA", []byte("r")), x.seg(false, "PA", []byte("q")))...)
			},
			want: [][]uint32{{12}, {10}, {11}, nil},
		},
		{
			name: "flags, dsize, ttl, ip_proto",
			rules: `alert tcp any any -> any any (msg:"a"; flags:SF,12; sid:13;)
alert udp any any -> any any (msg:"b"; dsize:>5; sid:14;)
alert ip any any -> any any (msg:"c"; ttl:<5; sid:15;)
alert ip any any -> any any (msg:"d"; ip_proto:17; dsize:1; sid:16;)`,
			play: func(h *harness) [][]uint32 {
				x := h.tcp(c, s, 40000, 80)
				y := h.udp(c, s, 40001, 53)
				out := sids(x.seg(true, "SF", nil), x.seg(true, "S", nil), y.dgram(true, []byte("123456")), y.dgram(true, []byte("1")))
				y.clientTTL = 3
				return append(out, sids(y.dgram(true, []byte("12")))...)
			},
			want: [][]uint32{{13}, nil, {14}, {16}, {15}},
		},
		{
			name: "itype and icode, v4 and v6",
			rules: `alert icmp any any -> any any (msg:"echo"; itype:8; icode:0; sid:17;)
alert icmp any any -> any any (msg:"echo6"; itype:128; sid:18;)`,
			play: func(h *harness) [][]uint32 {
				return sids(h.icmp(c, s, 8, 0, 64), h.icmp(c, s, 0, 0, 64), h.icmp("2001:db8::1", "2001:db8::2", 128, 0, 64))
			},
			want: [][]uint32{{17}, nil, {18}},
		},
		{
			name: "flowbits across directions",
			rules: `alert tcp any any -> any any (msg:"login"; flow:to_server; content:"LOGIN"; flowbits:set,logged; flowbits:noalert; sid:19;)
alert tcp any any -> any any (msg:"ok after login"; flow:to_client; content:"OK"; flowbits:isset,logged; sid:20;)
alert tcp any any -> any any (msg:"ok before login"; flow:to_client; content:"OK"; flowbits:isnotset,logged; sid:21;)`,
			play: func(h *harness) [][]uint32 {
				x := h.tcp(c, s, 40000, 143)
				x.handshake()
				return sids(x.seg(false, "PA", []byte("OK ready")), x.seg(true, "PA", []byte("a LOGIN b")), x.seg(false, "PA", []byte("OK done")))
			},
			want: [][]uint32{{21}, nil, {20}},
		},
		{
			name: "threshold limit, threshold, both; detection_filter",
			rules: `alert udp any any -> any 1 (msg:"limit"; content:"x"; threshold:type limit, track by_src, count 2, seconds 60; sid:22;)
alert udp any any -> any 2 (msg:"threshold"; content:"x"; threshold:type threshold, track by_src, count 3, seconds 60; sid:23;)
alert udp any any -> any 3 (msg:"both"; content:"x"; threshold:type both, track by_dst, count 2, seconds 60; sid:24;)
alert udp any any -> any 4 (msg:"filter"; content:"x"; detection_filter:track by_src, count 2, seconds 60; sid:25;)`,
			play: func(h *harness) [][]uint32 {
				var out [][]uint32
				for port := uint16(1); port <= 4; port++ {
					x := h.udp(c, s, 40000, port)
					for range 6 {
						out = append(out, sids(x.dgram(true, []byte("x")))...)
					}
				}
				return out
			},
			want: [][]uint32{{22}, {22}, nil, nil, nil, nil, nil, nil, {23}, nil, nil, {23}, nil, {24}, nil, nil, nil, nil, nil, nil, {25}, {25}, {25}, {25}},
		},
		{
			name: "pass stops inspection of the flow",
			rules: `pass tcp any any -> any 22 (msg:"ssh ok"; content:"SSH-"; sid:26;)
alert tcp any any -> any any (msg:"x"; content:"bad"; sid:27;)`,
			play: func(h *harness) [][]uint32 {
				x := h.tcp(c, s, 40000, 22)
				x.handshake()
				y := h.tcp(c, s, 40001, 23)
				y.handshake()
				return sids(x.seg(true, "PA", []byte("SSH-2.0 bad")), x.seg(true, "PA", []byte("bad")), y.seg(true, "PA", []byte("bad")))
			},
			want: [][]uint32{nil, nil, {27}},
		},
		{
			name: "addresses, negation, groups, <>",
			rules: `alert udp $HOME_NET any -> !$HOME_NET 53 (msg:"out"; content:"q"; sid:28;)
alert udp [192.0.2.0/24,!192.0.2.7] any <> any [1000:1010] (msg:"bi"; content:"q"; sid:29;)`,
			play: func(h *harness) [][]uint32 {
				return sids(h.udp("10.1.1.1", "8.8.8.8", 4000, 53).dgram(true, []byte("q")),
					h.udp("10.1.1.1", "10.2.2.2", 4000, 53).dgram(true, []byte("q")),
					h.udp("198.51.100.1", "192.0.2.5", 1005, 7000).dgram(true, []byte("q")),
					h.udp("198.51.100.1", "192.0.2.7", 1005, 7000).dgram(true, []byte("q")))
			},
			want: [][]uint32{{28}, nil, {29}, nil},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.rules, Options{})
			got := tc.play(h)
			if !equalSteps(got, tc.want) {
				t.Errorf("alerts by packet:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

// sids collects the sids each packet raised.
func sids(perPacket ...[]uint32) [][]uint32 { return perPacket }

func equalSteps(a, b [][]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// A rule's metadata becomes EVE's alert.metadata: an object of arrays, keys in
// the rule's order, repeated keys gathered.
func TestMetadataJSON(t *testing.T) {
	got := string(metadataJSON([]string{"attack_target Client_Endpoint", "signature_severity Major",
		"attack_target Server", `tag "quoted"`}))
	want := `{"attack_target":["Client_Endpoint","Server"],"signature_severity":["Major"],"tag":["\"quoted\""]}`
	if got != want {
		t.Fatalf("metadataJSON = %s\nwant %s", got, want)
	}
	if metadataJSON(nil) != nil {
		t.Fatal("no metadata must give no object")
	}
}

// startswith, endswith and bsize on the sticky buffers, as ET's DNS and TLS rules
// use them.
func TestAnchorsAndBsize(t *testing.T) {
	h := newHarness(t, `alert dns any any -> any any (msg:"ddns"; dns.query; content:".duckdns.org"; nocase; endswith; sid:1;)
alert dns any any -> any any (msg:"short"; dns.query; bsize:<8; sid:2;)
alert tls any any -> any any (msg:"pool"; tls.sni; content:"pool."; startswith; sid:3;)
alert udp any any -> any any (msg:"payload ends"; content:"END"; endswith; sid:4;)`, Options{})
	q := func(name string) []byte { return dnsQueryBytes(name) }
	x := h.udp("10.0.0.1", "192.0.2.53", 4000, 53)
	got := sids(x.dgram(true, q("a.DuckDNS.org")), x.dgram(true, q("a.duckdns.org.evil")), x.dgram(true, q("ab.io")))
	if want := [][]uint32{{1}, nil, {2}}; !equalSteps(got, want) {
		t.Errorf("dns: %v, want %v", got, want)
	}
	y := h.udp("10.0.0.1", "192.0.2.9", 4001, 9999)
	got = sids(y.dgram(true, []byte("the END")), y.dgram(true, []byte("the END.")))
	if want := [][]uint32{{4}, nil}; !equalSteps(got, want) {
		t.Errorf("payload endswith: %v, want %v", got, want)
	}
	for _, tc := range []struct {
		sni  string
		want []uint32
	}{{"pool.example", []uint32{3}}, {"mypool.example", nil}} {
		z := h.tcp("10.0.0.1", "192.0.2.80", 40000+uint16(len(tc.sni)), 443)
		z.handshake()
		if got := z.seg(true, "PA", clientHello(t, tc.sni)); !slices.Equal(got, tc.want) {
			t.Errorf("sni %s: %v, want %v", tc.sni, got, tc.want)
		}
	}
}

// dnsQueryBytes is a DNS query for name's A record, built by hand.
func dnsQueryBytes(name string) []byte {
	b := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range strings.Split(name, ".") {
		b = append(append(b, byte(len(l))), l...)
	}
	return append(b, 0, 0, 1, 0, 1)
}

// isdataat, as ET uses it: absolute, relative, and negated relative (the content
// ends the buffer).
func TestIsDataAt(t *testing.T) {
	h := newHarness(t, `alert udp any any -> any 1 (msg:"abs"; content:"x"; isdataat:9; sid:1;)
alert udp any any -> any 2 (msg:"rel"; content:"key="; isdataat:4,relative; sid:2;)
alert udp any any -> any 3 (msg:"ends"; content:"END"; isdataat:!1,relative; sid:3;)`, Options{})
	send := func(port uint16, data string) []uint32 {
		return h.udp("10.0.0.1", "192.0.2.9", 4000, port).dgram(true, []byte(data))
	}
	got := sids(send(1, "x123456789"), send(1, "x12345678"),
		send(2, "key=1234"), send(2, "key=123"),
		send(3, "the END"), send(3, "the END!"))
	if want := [][]uint32{{1}, nil, {2}, nil, {3}, nil}; !equalSteps(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
}
