package rulegen

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestGenerateDeterministic(t *testing.T) {
	for _, seed := range []int64{1, 2, 99} {
		if first, second := Generate(200, seed), Generate(200, seed); first != second {
			t.Errorf("seed %d: two runs differ", seed)
		}
		a, b := Traffic(50, seed), Traffic(50, seed)
		for i := range a {
			if string(a[i]) != string(b[i]) {
				t.Fatalf("seed %d: traffic %d differs", seed, i)
			}
		}
		if !slices.EqualFunc(GeneratePatterns(100, seed), GeneratePatterns(100, seed), func(x, y []byte) bool { return string(x) == string(y) }) {
			t.Errorf("seed %d: patterns differ", seed)
		}
	}
	if Generate(50, 1) == Generate(50, 2) {
		t.Error("different seeds gave the same rules")
	}
}

var (
	keywordRE = regexp.MustCompile(`; ([a-z_.]+)[:;]`)
	headRE    = regexp.MustCompile(`^alert (tcp|udp|dns|tls) \S+ any -> \S+ \S+ \(msg:"ET [^"]+"; `)
	sidRE     = regexp.MustCompile(`sid:(\d+); rev:\d+;`)
)

func TestGenerateShape(t *testing.T) {
	allowed := map[string]bool{}
	for _, k := range strings.Fields("msg sid rev classtype flow content nocase depth offset distance within fast_pattern pcre dsize flags dns.query tls.sni threshold metadata reference") {
		allowed[k] = true
	}
	const n = 2000
	lines := strings.Split(strings.TrimSuffix(Generate(n, 7), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("got %d lines, want %d", len(lines), n)
	}
	protos := map[string]int{}
	sids := map[string]bool{}
	for _, l := range lines {
		m := headRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("bad header: %s", l)
		}
		protos[m[1]]++
		if !strings.HasSuffix(l, ";)") {
			t.Errorf("rule does not end with ;): %s", l)
		}
		s := sidRE.FindStringSubmatch(l)
		if s == nil || sids[s[1]] {
			t.Errorf("missing or repeated sid: %s", l)
		} else {
			sids[s[1]] = true
		}
		for _, k := range keywordRE.FindAllStringSubmatch(l, -1) {
			if !allowed[k[1]] {
				t.Errorf("keyword %q not allowed: %s", k[1], l)
			}
		}
		if !strings.Contains(l, "content:") {
			t.Errorf("rule without content: %s", l)
		}
	}
	if other := protos["dns"] + protos["tls"]; other < n/10 || other > n/3 {
		t.Errorf("dns+tls rules = %d of %d, want about 20%%", other, n)
	}
	if protos["tcp"] < n/2 {
		t.Errorf("tcp rules = %d of %d, want most", protos["tcp"], n)
	}
}

func TestPatternLengths(t *testing.T) {
	ps := GeneratePatterns(10000, 3)
	mid, binary := 0, 0
	for _, p := range ps {
		if len(p) < 3 || len(p) > 40 {
			t.Fatalf("pattern length %d out of 3..40: %q", len(p), p)
		}
		if len(p) >= 6 && len(p) <= 20 {
			mid++
		}
		for _, c := range p {
			if c < 0x20 || c >= 0x7f {
				binary++
				break
			}
		}
	}
	if mid < len(ps)*6/10 {
		t.Errorf("%d of %d patterns are 6-20 bytes, want most", mid, len(ps))
	}
	if binary < len(ps)/10 || binary > len(ps)/2 {
		t.Errorf("%d of %d patterns have binary bytes, want 10-50%%", binary, len(ps))
	}
}

func TestTraffic(t *testing.T) {
	ps := Traffic(5000, 11)
	kinds := map[string]int{}
	for _, p := range ps {
		if len(p) < 60 || len(p) > 1460 {
			t.Fatalf("payload length %d out of 60..1460", len(p))
		}
		switch {
		case strings.HasPrefix(string(p), "HTTP/1.1 "):
			kinds["http response"]++
		case strings.Contains(string(p[:8]), " /"):
			kinds["http request"]++
		case p[0] == 22 && p[1] == 3 && p[5] == 1:
			kinds["tls hello"]++
		case p[0] == 23 && p[1] == 3:
			kinds["tls data"]++
		}
	}
	for _, k := range []string{"http response", "http request", "tls hello", "tls data"} {
		if kinds[k] < len(ps)/20 {
			t.Errorf("%s: %d of %d payloads, want at least 5%%", k, kinds[k], len(ps))
		}
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"abc", `"abc"`},
		{"a\x00\xffb", `"a|00 FF|b"`},
		{`x;"|\`, `"x|3B 22 7C 5C|"`},
		{"\x01", `"|01|"`},
	} {
		if got := quote([]byte(tc.in)); got != tc.want {
			t.Errorf("quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
