// Package rulegen generates synthetic Emerging-Threats-style Suricata rules, the
// fast patterns they would register, and mixed traffic to scan, for benchmarks of
// the detection engine. Everything is deterministic for a seed. The rules and the
// traffic draw from one vocabulary, so that some patterns occur in some payloads,
// as on a real network.
package rulegen

import (
	"fmt"
	"math/rand"
	"strings"
)

// Vocabulary shared by patterns and traffic.
var (
	words = []string{
		"gate", "panel", "admin", "login", "update", "config", "bot", "cmd", "upload",
		"download", "check", "install", "report", "task", "beacon", "api", "data",
		"stat", "load", "id", "uid", "key", "token", "session", "ver", "os", "mac",
		"host", "user", "pass", "index", "images", "static", "wp-content", "plugins",
		"news", "search", "track", "pixel", "cdn", "assets", "payload", "shell",
	}
	exts    = []string{".php", ".asp", ".aspx", ".jsp", ".cgi", ".exe", ".dll", ".bin", ".dat", ".js", ".html", ".png"}
	agents  = []string{"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36", "WinHTTP Example/1.0", "curl/7.68.0", "python-requests/2.31.0", "Go-http-client/1.1", "Wget/1.21.2", "Java/1.8.0_151", "Microsoft-CryptoAPI/10.0"}
	headers = []string{"Host: ", "User-Agent: ", "Cookie: ", "X-Session-Id: ", "Content-Type: application/octet-stream", "Accept: */*", "Accept-Encoding: gzip, deflate", "Connection: Keep-Alive", "Cache-Control: no-cache", "Referer: http://"}
	tlds    = []string{"com", "net", "org", "top", "xyz", "ru", "info", "io", "cn", "biz"}
	methods = []string{"GET", "GET", "GET", "POST", "POST", "HEAD", "PUT"}
	malware = []string{"Zeus", "Emotet", "TrickBot", "AgentTesla", "Formbook", "Lokibot", "IcedID", "Qakbot", "Remcos", "njRAT", "CobaltStrike", "Dridex", "Ursnif", "RedLine"}
)

const printable = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func pick(r *rand.Rand, s []string) string { return s[r.Intn(len(s))] }

func token(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = printable[r.Intn(len(printable))]
	}
	return string(b)
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

func domain(r *rand.Rand) string {
	return pick(r, words) + token(r, 2+r.Intn(6)) + "." + pick(r, tlds)
}

func uri(r *rand.Rand) string {
	var sb strings.Builder
	for range 1 + r.Intn(2) {
		sb.WriteString("/" + pick(r, words))
	}
	sb.WriteString(pick(r, exts))
	if r.Intn(2) == 0 {
		sb.WriteString("?" + pick(r, words) + "=" + token(r, 2+r.Intn(10)))
	}
	return sb.String()
}

// patternKind is what a generated content looks like, which decides how a rule
// uses it (buffer, protocol, modifiers).
type patternKind uint8

const (
	kindURI patternKind = iota
	kindHeader
	kindBinary
	kindMixed
	kindToken
	kindShort
	kindDomain
)

// content is one generated fast-pattern candidate.
type content struct {
	kind   patternKind
	bytes  []byte
	nocase bool
}

// clampLen keeps p within 3..40 bytes, the lengths ET contents mostly have.
func clampLen(r *rand.Rand, p []byte) []byte {
	if len(p) > 40 {
		start := r.Intn(len(p) - 40 + 1)
		p = p[start : start+40]
	}
	for len(p) < 3 {
		p = append(p, printable[r.Intn(len(printable))])
	}
	return p
}

// newContent draws one pattern: mostly 6-20 bytes, about a fifth binary.
func newContent(r *rand.Rand) content {
	var c content
	switch x := r.Intn(100); {
	case x < 30:
		// Fast patterns are chosen to be rare: most carry a token of their own,
		// a few are bare paths common traffic may contain.
		u := "/" + pick(r, words) + pick(r, exts)
		if r.Intn(30) != 0 {
			u = uri(r)
			u = u[:len(u)-len(pick(r, exts))/2] + token(r, 3+r.Intn(6))
		}
		c.kind, c.bytes = kindURI, []byte(u)
		if len(c.bytes) > 20 && r.Intn(2) == 0 { // a fragment, as rules often take
			start := r.Intn(len(c.bytes) - 8)
			c.bytes = c.bytes[start:min(len(c.bytes), start+6+r.Intn(10))]
		}
	case x < 45:
		h := pick(r, headers)
		if r.Intn(2) == 0 {
			a := pick(r, agents)
			h = a[:min(len(a), 4+r.Intn(12))] + " "
		}
		c.kind, c.bytes = kindHeader, []byte(h+token(r, 3+r.Intn(10)))
	case x < 63:
		c.kind, c.bytes = kindBinary, randBytes(r, 4+r.Intn(13))
	case x < 75:
		b := []byte(pick(r, words))
		c.kind, c.bytes = kindMixed, append(randBytes(r, 2+r.Intn(6)), b...)
		if r.Intn(2) == 0 {
			c.bytes = append(b, randBytes(r, 2+r.Intn(6))...)
		}
	case x < 85:
		c.kind, c.bytes = kindToken, []byte(token(r, 6+r.Intn(15)))
	case x < 92:
		c.kind, c.bytes = kindShort, []byte(token(r, 3+r.Intn(3)))
		if r.Intn(3) == 0 {
			c.bytes = randBytes(r, 3+r.Intn(3))
		}
	default:
		c.kind, c.bytes = kindDomain, []byte(domain(r))
	}
	c.bytes = clampLen(r, c.bytes)
	switch c.kind {
	case kindURI, kindHeader, kindDomain:
		c.nocase = r.Intn(2) == 0
	case kindToken, kindShort:
		c.nocase = r.Intn(5) == 0
	}
	return c
}

// GeneratePatterns returns n fast patterns drawn as Generate draws rule contents
// (3-40 bytes, mostly 6-20, printable and binary); nocase is the caller's to choose.
func GeneratePatterns(n int, seed int64) [][]byte {
	r := rand.New(rand.NewSource(seed))
	out := make([][]byte, n)
	for i := range out {
		out[i] = newContent(r).bytes
	}
	return out
}

// quote writes p as a Suricata content string: printable bytes as they are,
// everything else (and the characters content strings must escape) as |hex|.
func quote(p []byte) string {
	var sb strings.Builder
	sb.WriteByte('"')
	inHex := false
	for _, c := range p {
		plain := c >= 0x20 && c < 0x7f && c != '"' && c != ';' && c != '\\' && c != '|'
		switch {
		case plain && inHex:
			sb.WriteString("|")
			inHex = false
		case !plain && !inHex:
			sb.WriteString("|")
			inHex = true
		case !plain:
			sb.WriteByte(' ')
		}
		if plain {
			sb.WriteByte(c)
		} else {
			fmt.Fprintf(&sb, "%02X", c)
		}
	}
	if inHex {
		sb.WriteString("|")
	}
	sb.WriteByte('"')
	return sb.String()
}

var classtypes = []string{"trojan-activity", "trojan-activity", "trojan-activity", "policy-violation", "bad-unknown", "web-application-attack", "command-and-control"}

// Generate returns n ET-style rules, one a line, with sids from 2_100_000 up.
// About 80% are HTTP-ish tcp rules, 10% dns and 10% tls; contents carry depth,
// offset, distance, within, nocase and fast_pattern as ET rules do, some rules add
// a pcre, dsize, flags, threshold, reference or metadata.
func Generate(n int, seed int64) string {
	r := rand.New(rand.NewSource(seed))
	var sb, rule strings.Builder
	for i := range n {
		// Each rule is written on its own: writeRule trims what it wrote, which on
		// the whole text would copy it for every rule.
		rule.Reset()
		writeRule(&rule, r, 2_100_000+i)
		sb.WriteString(rule.String())
	}
	return sb.String()
}

func writeRule(sb *strings.Builder, r *rand.Rand, sid int) {
	fam := pick(r, malware)
	c := newContent(r)
	kind := r.Intn(10)
	switch {
	case kind == 0 || c.kind == kindDomain && kind < 5:
		d := c.bytes
		if c.kind != kindDomain {
			d = []byte(domain(r))
		}
		fmt.Fprintf(sb, `alert dns $HOME_NET any -> any any (msg:"ET MALWARE %s CnC Domain in DNS Lookup (%s)"; dns.query; content:%s; nocase; `, fam, d, quote(d))
		if r.Intn(2) == 0 {
			sb.WriteString("fast_pattern; ")
		}
	case kind == 1:
		d := []byte(domain(r))
		fmt.Fprintf(sb, `alert tls $HOME_NET any -> $EXTERNAL_NET any (msg:"ET MALWARE Observed %s Domain in TLS SNI (%s)"; flow:established,to_server; tls.sni; content:%s; nocase; `, fam, d, quote(d))
		if r.Intn(3) == 0 {
			sb.WriteString(`pcre:"/^[a-z0-9]{2,}\./i"; `)
		}
	case kind == 2 && c.kind == kindBinary:
		fmt.Fprintf(sb, `alert udp $HOME_NET any -> $EXTERNAL_NET any (msg:"ET MALWARE %s UDP Beacon"; dsize:%s; content:%s; depth:%d; `, fam, pick(r, []string{"<200", ">20", "100<>400"}), quote(c.bytes), len(c.bytes)+r.Intn(16))
	default:
		writeHTTPRule(sb, r, fam, c)
	}
	if r.Intn(6) == 0 {
		fmt.Fprintf(sb, "threshold:type limit, track by_src, count 1, seconds %d; ", 60*(1+r.Intn(10)))
	}
	if r.Intn(3) == 0 {
		fmt.Fprintf(sb, "reference:url,www.example.com/analysis/%s-%d; ", strings.ToLower(fam), r.Intn(1000))
	}
	fmt.Fprintf(sb, "classtype:%s; sid:%d; rev:%d; ", pick(r, classtypes), sid, 1+r.Intn(3))
	if r.Intn(2) == 0 {
		fmt.Fprintf(sb, "metadata:created_at 20%02d_%02d_%02d, signature_severity Major;", 15+r.Intn(11), 1+r.Intn(12), 1+r.Intn(28))
	}
	s := strings.TrimSuffix(sb.String(), " ")
	sb.Reset()
	sb.WriteString(s)
	sb.WriteString(")\n")
}

func writeHTTPRule(sb *strings.Builder, r *rand.Rand, fam string, c content) {
	fmt.Fprintf(sb, `alert tcp $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"ET MALWARE %s CnC Checkin"; flow:established,to_server; `, fam)
	if r.Intn(8) == 0 {
		sb.WriteString("flags:PA,12; ")
	}
	// An anchored method first, as ET's http rules often begin.
	short := r.Intn(3) == 0
	if short {
		m := pick(r, methods)
		fmt.Fprintf(sb, `content:"%s "; depth:%d; `, m, len(m)+1)
	}
	fmt.Fprintf(sb, "content:%s; ", quote(c.bytes))
	if c.nocase {
		sb.WriteString("nocase; ")
	}
	switch {
	case short:
		fmt.Fprintf(sb, "distance:0; within:%d; ", len(c.bytes)+r.Intn(64))
	case r.Intn(4) == 0:
		fmt.Fprintf(sb, "offset:%d; depth:%d; ", r.Intn(8), len(c.bytes)+8+r.Intn(200))
	}
	if short || r.Intn(4) == 0 {
		sb.WriteString("fast_pattern; ")
	}
	for range r.Intn(3) {
		extra := newContent(r)
		if len(extra.bytes) > len(c.bytes) { // the first content stays the longest or the fast one
			extra.bytes = extra.bytes[:len(c.bytes)]
		}
		fmt.Fprintf(sb, "content:%s; ", quote(extra.bytes))
		if extra.nocase {
			sb.WriteString("nocase; ")
		}
		if r.Intn(2) == 0 {
			fmt.Fprintf(sb, "distance:%d; ", r.Intn(20))
			if r.Intn(2) == 0 {
				fmt.Fprintf(sb, "within:%d; ", len(extra.bytes)+r.Intn(100))
			}
		}
	}
	if r.Intn(5) == 0 {
		fmt.Fprintf(sb, `pcre:"/%s[0-9]{2}/i"; `, pick(r, words))
	}
}

// Traffic returns n payloads (60-1460 bytes) of mixed traffic: about 35% HTTP
// requests and responses, 30% TLS records (ClientHellos with an SNI, application
// data), 15% DNS messages and 20% random bytes.
func Traffic(n int, seed int64) [][]byte {
	r := rand.New(rand.NewSource(seed))
	out := make([][]byte, n)
	for i := range out {
		var p []byte
		switch x := r.Intn(100); {
		case x < 25:
			p = httpRequest(r)
		case x < 35:
			p = httpResponse(r)
		case x < 45:
			p = tlsClientHello(r)
		case x < 65:
			p = tlsRecord(23, randBytes(r, 60+r.Intn(1401-5)))
		case x < 80:
			p = dnsMessage(r)
		default:
			p = randBytes(r, 60+r.Intn(1401))
		}
		out[i] = fit(r, p)
	}
	return out
}

// fit pads p with random bytes to at least 60 bytes and cuts it at 1460.
func fit(r *rand.Rand, p []byte) []byte {
	if len(p) < 60 {
		p = append(p, randBytes(r, 60-len(p))...)
	}
	return p[:min(len(p), 1460)]
}

func httpRequest(r *rand.Rand) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n", pick(r, methods), uri(r), domain(r), pick(r, agents))
	for range r.Intn(5) {
		h := pick(r, headers)
		if strings.HasSuffix(h, " ") {
			h += token(r, 4+r.Intn(30))
		}
		sb.WriteString(h + "\r\n")
	}
	sb.WriteString("\r\n")
	if r.Intn(4) == 0 {
		sb.WriteString(pick(r, words) + "=" + token(r, 10+r.Intn(200)))
	}
	return []byte(sb.String())
}

func httpResponse(r *rand.Rand) []byte {
	var sb strings.Builder
	body := 100 + r.Intn(1200)
	fmt.Fprintf(&sb, "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n<html><head><title>%s</title></head><body>", body, pick(r, words))
	for sb.Len() < body {
		fmt.Fprintf(&sb, "<p>%s %s <a href=\"%s\">%s</a></p>\n", pick(r, words), token(r, 5+r.Intn(20)), uri(r), pick(r, words))
	}
	return []byte(sb.String())
}

func tlsRecord(typ byte, body []byte) []byte {
	return append([]byte{typ, 3, 3, byte(len(body) >> 8), byte(len(body))}, body...)
}

func tlsClientHello(r *rand.Rand) []byte {
	sni := domain(r)
	var hs []byte
	hs = append(hs, 3, 3)
	hs = append(hs, randBytes(r, 32)...)                            // random
	hs = append(hs, 32)                                             // session id
	hs = append(hs, randBytes(r, 32)...)                            //
	hs = append(hs, 0, 8, 0x13, 1, 0x13, 2, 0xc0, 0x2f, 0xc0, 0x30) // cipher suites
	hs = append(hs, 1, 0)                                           // compression: null
	var ext []byte
	name := append([]byte{0, byte(len(sni) >> 8), byte(len(sni))}, sni...)
	list := append([]byte{byte(len(name) >> 8), byte(len(name))}, name...)
	ext = append(ext, 0, 0, byte(len(list)>>8), byte(len(list)))
	ext = append(ext, list...)
	ext = append(ext, 0, 0x2b, 0, 3, 2, 3, 4)                // supported_versions
	ext = append(ext, 0, 0x10, 0, 5, 0, 3, 2, 'h', '2')      // ALPN
	ext = append(ext, 0, 0x33, 0, 38, 0, 36, 0, 0x1d, 0, 32) // key_share x25519
	ext = append(ext, randBytes(r, 32)...)
	hs = append(hs, byte(len(ext)>>8), byte(len(ext)))
	hs = append(hs, ext...)
	msg := append([]byte{1, 0, byte(len(hs) >> 8), byte(len(hs))}, hs...)
	return tlsRecord(22, msg)
}

func dnsMessage(r *rand.Rand) []byte {
	resp := r.Intn(2) == 0
	p := []byte{byte(r.Intn(256)), byte(r.Intn(256)), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	if resp {
		p[2], p[3], p[7] = 0x81, 0x80, 1
	}
	for _, label := range strings.Split(domain(r), ".") {
		p = append(p, byte(len(label)))
		p = append(p, label...)
	}
	p = append(p, 0, 0, 1, 0, 1) // A IN
	if resp {
		p = append(p, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4)
		p = append(p, randBytes(r, 4)...)
	}
	return p
}
