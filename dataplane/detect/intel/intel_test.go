package intel

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeList writes a list file into a test's temporary directory.
func writeList(t testing.TB, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustIPs(t testing.TB, name, category string, block bool, text string) *List {
	t.Helper()
	l, err := LoadIPs(writeList(t, name, text), category, block)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustDomains(t testing.TB, name, category string, block bool, text string) *List {
	t.Helper()
	l, err := LoadDomains(writeList(t, name, text), category, block)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLoadIPs(t *testing.T) {
	l := mustIPs(t, "feodo.txt", "botnet", true, `# Feodo tracker
  192.0.2.1  
198.51.100.0/24	# a whole net
10.1.2.3/8

2001:db8::1
2001:db8:1::/48 # v6 net
::ffff:203.0.113.9
::ffff:203.0.113.0/120
`)
	if l.Name != "feodo" || l.Category != "botnet" || !l.Block || l.Kind != KindIP {
		t.Errorf("list = %+v", l)
	}
	want := []string{"192.0.2.1/32", "198.51.100.0/24", "10.0.0.0/8", "2001:db8::1/128",
		"2001:db8:1::/48", "203.0.113.9/32", "203.0.113.0/24"}
	if l.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", l.Len(), len(want))
	}
	for i, w := range want {
		if got := l.prefixes[i].String(); got != w {
			t.Errorf("entry %d = %s, want %s", i, got, w)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		domains bool
		text    string
		want    string // FILE:LINE: prefix after the directory, and a part of the message
	}{
		{"ip garbage", false, "192.0.2.1\n\nnot-an-ip\n", "bad.txt:3: \"not-an-ip\" is not an IP address"},
		{"ip bad prefix", false, "# c\n10.0.0.0/33\n", "bad.txt:2: \"10.0.0.0/33\" is not an IP prefix"},
		{"ip zone", false, "fe80::1%eth0\n", "bad.txt:1: \"fe80::1%eth0\" is not an IP address"},
		{"ip comment without space", false, "192.0.2.1#x\n", "bad.txt:1: \"192.0.2.1#x\""},
		{"ip domain", false, "evil.com\n", "bad.txt:1: \"evil.com\" is not an IP address"},
		{"domain space inside", true, "ok.com\nevil .com\n", "bad.txt:2: \"evil .com\" is not a domain name"},
		{"domain empty label", true, "a..b\n", "bad.txt:1: \"a..b\" is not a domain name: empty label"},
		{"domain only dot", true, ".\n", "bad.txt:1: \".\" is not a domain name"},
		{"domain leading dot", true, ".evil.com\n", "empty label"},
		{"domain two trailing dots", true, "evil.com..\n", "empty label"},
		{"domain star alone", true, "*\n", "byte '*'"},
		{"domain star inside", true, "a.*.com\n", "byte '*'"},
		{"domain url", true, "http://evil.com/x\n", "byte ':'"},
		{"domain ip ok but v6", true, "2001:db8::1\n", "byte ':'"},
		{"domain unicode", true, "bücher.de\n", "punycode"},
		{"domain long label", true, strings.Repeat("a", 64) + ".com\n", "label longer than 63"},
		{"domain too long", true, strings.Repeat("abcdefghi.", 26) + "com\n", "length 263 not in 1..253"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeList(t, "bad.txt", tt.text)
			var err error
			if tt.domains {
				_, err = LoadDomains(path, "c", false)
			} else {
				_, err = LoadIPs(path, "c", false)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), path+":") {
				t.Fatalf("err = %q, want it to start with %s: and contain %q", err, path, tt.want)
			}
		})
	}
	if _, err := LoadIPs(filepath.Join(t.TempDir(), "missing"), "c", false); !os.IsNotExist(err) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestLoadDomains(t *testing.T) {
	l := mustDomains(t, "dom.list", "malware", false, "# comment\nEvil.COM\n*.tracker.net.  # wildcard\n\tfoo_bar-1.example\r\nlast.tld")
	want := []string{"evil.com", "tracker.net", "foo_bar-1.example", "last.tld"}
	if fmt.Sprint(l.domains) != fmt.Sprint(want) || l.Kind != KindDomain || l.Name != "dom" {
		t.Fatalf("domains = %q, kind %v, name %q; want %q", l.domains, l.Kind, l.Name, want)
	}
}

func TestMatchIP(t *testing.T) {
	// Lists given in this order: a non-blocking wide list, a blocking narrow one
	// inside it, a second non-blocking list repeating some of the first.
	wide := mustIPs(t, "wide.txt", "scan", false, "10.0.0.0/8\n2001:db8::/32\n0.0.0.0/32\n255.255.255.255\n")
	block := mustIPs(t, "block.txt", "c2", true, "10.1.0.0/16\n10.1.2.3\n2001:db8:0:1::/64\n::ffff:172.16.0.0/108\n")
	dup := mustIPs(t, "dup.txt", "dup", false, "10.0.0.0/8\n10.2.0.0/16\n192.0.2.0/31\n::/0\n")
	s := NewSet(wide, nil, block, dup)
	tests := []struct {
		addr string
		want *List
	}{
		{"10.0.0.0", wide},
		{"10.0.255.255", wide},
		{"10.1.0.0", block}, // blocking list wins where it overlaps
		{"10.1.2.3", block},
		{"10.1.255.255", block},
		{"10.2.0.0", wide}, // first list wins among non-blocking
		{"10.255.255.255", wide},
		{"11.0.0.0", nil},
		{"9.255.255.255", nil},
		{"0.0.0.0", wide},
		{"0.0.0.1", nil},
		{"255.255.255.255", wide},
		{"255.255.255.254", nil},
		{"192.0.2.0", dup},
		{"192.0.2.1", dup},
		{"192.0.2.2", nil},
		{"172.16.0.0", block}, // a v4-mapped prefix in the file is IPv4
		{"172.31.255.255", block},
		{"172.32.0.0", nil},
		{"::ffff:10.1.2.3", block}, // a v4-mapped address is matched as IPv4
		{"::ffff:11.0.0.1", nil},
		{"2001:db8::", wide},
		{"2001:db8:0:1::", block},
		{"2001:db8:0:1:ffff:ffff:ffff:ffff", block},
		{"2001:db8:0:2::", wide},
		{"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", wide},
		{"2001:db9::", dup}, // only ::/0 covers it
		{"::", dup},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", dup},
	}
	for _, tt := range tests {
		got, ok := s.MatchIP(netip.MustParseAddr(tt.addr))
		if got != tt.want || ok != (tt.want != nil) {
			t.Errorf("MatchIP(%s) = %v, %v; want %v", tt.addr, name(got), ok, name(tt.want))
		}
	}
	if _, ok := s.MatchIP(netip.Addr{}); ok {
		t.Error("the zero Addr matched")
	}
	for _, empty := range []*Set{NewSet(), {}} {
		if _, ok := empty.MatchIP(netip.MustParseAddr("10.0.0.1")); ok {
			t.Error("an empty set matched an IPv4 address")
		}
		if _, ok := empty.MatchIP(netip.MustParseAddr("2001:db8::1")); ok {
			t.Error("an empty set matched an IPv6 address")
		}
		if _, ok := empty.MatchDomain([]byte("evil.com")); ok {
			t.Error("an empty set matched a name")
		}
	}
}

func name(l *List) string {
	if l == nil {
		return "<nil>"
	}
	return l.Name
}

// TestMatchIPAgainstLinear checks the merged ranges against a linear scan over
// every prefix, for addresses at and around each prefix's edges.
func TestMatchIPAgainstLinear(t *testing.T) {
	var lists []*List
	for i, text := range []string{
		"10.0.0.0/8\n10.0.0.0/9\n10.128.0.0/9\n10.64.0.0/10\n192.168.0.0/16\n2001:db8::/32\n2001:db8::/33\n",
		"10.64.0.0/12\n10.64.1.0/24\n10.200.0.0/13\n192.168.1.1\n2001:db8:8000::/33\n",
		"10.64.1.128/25\n10.0.0.0/8\n0.0.0.0/0\n2001:db8::/32\n",
		"192.168.0.0/17\n10.64.1.130/31\n",
	} {
		lists = append(lists, mustIPs(t, fmt.Sprint(i), "c", i == 1 || i == 3, text))
	}
	s := NewSet(lists...)
	linear := func(a netip.Addr) *List {
		var best *List
		bi := 0
		for i, l := range lists {
			for _, p := range l.prefixes {
				if p.Contains(a) && (best == nil || l.Block && !best.Block || l.Block == best.Block && i < bi) {
					best, bi = l, i
				}
			}
		}
		return best
	}
	for _, l := range lists {
		for _, p := range l.prefixes {
			lo, hi := prefixRange(p)
			for _, x := range []u128{lo, hi, lo.prev(), hi.next()} {
				var a netip.Addr
				if p.Addr().Is4() {
					a = netip.AddrFrom4([4]byte{byte(x.lo >> 24), byte(x.lo >> 16), byte(x.lo >> 8), byte(x.lo)})
				} else {
					var b [16]byte
					for i := range 8 {
						b[i], b[8+i] = byte(x.hi>>(56-8*i)), byte(x.lo>>(56-8*i))
					}
					a = netip.AddrFrom16(b)
				}
				got, _ := s.MatchIP(a)
				if want := linear(a); got != want {
					t.Errorf("MatchIP(%s) = %s, linear scan says %s", a, name(got), name(want))
				}
			}
		}
	}
	v4, v6, _ := s.Sizes()
	if v4 == 0 || v6 == 0 {
		t.Errorf("sizes %d %d", v4, v6)
	}
}

func TestMatchDomain(t *testing.T) {
	info := mustDomains(t, "info.txt", "info", false, "evil.com\nads.example.org\n*.Tracker.NET\n")
	block := mustDomains(t, "block.txt", "c2", true, "c2.evil.com\nx.y.z.dga.\n")
	s := NewSet(info, block)
	tests := []struct {
		name string
		want *List
	}{
		{"evil.com", info},
		{"EVIL.COM", info},
		{"evil.com.", info},
		{"a.evil.com", info},
		{"a.b.c.Evil.Com", info},
		{"notevil.com", nil},
		{"evil.com.au", nil},
		{"com", nil},
		{"vil.com", nil},
		{"c2.evil.com", block}, // the blocking list wins over the parent on the other
		{"x.c2.evil.com", block},
		{"ads.example.org", info},
		{"example.org", nil},
		{"tracker.net", info},
		{"cdn.tracker.net", info},
		{"x.y.z.dga", block},
		{"y.z.dga", nil},
		{"", nil},
		{".", nil},
		{strings.Repeat("a.", 130) + "evil.com", nil}, // longer than a name can be
		{strings.Repeat("a.", 120) + "evil.com", info},
	}
	for _, tt := range tests {
		got, ok := s.MatchDomain([]byte(tt.name))
		if got != tt.want || ok != (tt.want != nil) {
			t.Errorf("MatchDomain(%q) = %s, %v; want %s", tt.name, name(got), ok, name(tt.want))
		}
	}
	// A name in two non-blocking lists reports the first given.
	other := mustDomains(t, "other.txt", "o", false, "evil.com\n")
	if got, _ := NewSet(other, info).MatchDomain([]byte("a.evil.com")); got != other {
		t.Errorf("duplicate: got %s, want other", name(got))
	}
	if got, _ := NewSet(info, other).MatchDomain([]byte("a.evil.com")); got != info {
		t.Errorf("duplicate: got %s, want info", name(got))
	}
}

func TestMatchAllocs(t *testing.T) {
	ips := mustIPs(t, "ips.txt", "c", true, "10.0.0.0/8\n2001:db8::/32\n")
	doms := mustDomains(t, "d.txt", "c", true, "evil.com\n")
	s := NewSet(ips, doms)
	v4, v6, v4m := netip.MustParseAddr("10.9.8.7"), netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("::ffff:10.0.0.1")
	name := []byte("Deep.Sub.EVIL.com.")
	miss := []byte("www.example.org")
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := s.MatchIP(v4); !ok {
			panic("v4")
		}
		if _, ok := s.MatchIP(v6); !ok {
			panic("v6")
		}
		if _, ok := s.MatchIP(v4m); !ok {
			panic("v4-mapped")
		}
		if _, ok := s.MatchDomain(name); !ok {
			panic("domain")
		}
		if _, ok := s.MatchDomain(miss); ok {
			panic("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("matching allocates %v times per run", allocs)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte("# c\n192.0.2.1\n10.0.0.0/8 # x\n2001:db8::/32\n"), false)
	f.Add([]byte("evil.com\n*.Tracker.net.\n\n# c\n"), true)
	f.Add([]byte("::ffff:1.2.3.4/120\r\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, domains bool) {
		l := &List{Name: "f", Block: true}
		var err error
		if domains {
			l.domains, err = parseDomains("f", data)
		} else {
			l.prefixes, err = parseIPs("f", data)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error without FILE:LINE: %v", err)
			}
			return
		}
		s := NewSet(l)
		for _, p := range l.prefixes {
			if got, ok := s.MatchIP(p.Addr()); !ok || got != l {
				t.Fatalf("%s does not match its own list", p)
			}
		}
		for _, d := range l.domains {
			if got, ok := s.MatchDomain([]byte(strings.ToUpper(d))); !ok || got != l {
				t.Fatalf("%q does not match its own list", d)
			}
		}
	})
}
