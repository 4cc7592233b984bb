package rules

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// maxModifier bounds offset, depth, distance and within, as Suricata does.
const maxModifier = 65535

func (p *ruleParser) content(o option) error {
	v := strings.TrimSpace(o.value)
	negated := strings.HasPrefix(v, "!")
	if negated {
		v = strings.TrimSpace(v[1:])
	}
	pat, err := decodeContent(v)
	if err != nil {
		return err
	}
	p.r.Matches = append(p.r.Matches, Match{Kind: MatchContent, Buffer: p.buf, Pattern: pat, Negated: negated})
	p.last = len(p.r.Matches) - 1
	return nil
}

// decodeContent decodes a content value: quoted (or not), with |hex| runs (spaces
// allowed between bytes) and \" \; \\ \: escapes; any other escape is an error.
func decodeContent(v string) ([]byte, error) {
	if strings.HasPrefix(v, `"`) {
		if !endsInQuote(v) {
			return nil, fmt.Errorf("unterminated quoted value %s", clip(v))
		}
		v = v[1 : len(v)-1]
	}
	if v == "" {
		return nil, errors.New("empty content")
	}
	out := make([]byte, 0, len(v))
	hex, nibble, half := false, byte(0), false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if hex {
			switch {
			case c == '|':
				if half {
					return nil, fmt.Errorf("odd number of hex digits in %s", clip(v))
				}
				hex = false
			case c == ' ' || c == '\t':
				if half {
					return nil, fmt.Errorf("space inside a hex byte in %s", clip(v))
				}
			default:
				d, ok := hexDigit(c)
				if !ok {
					return nil, fmt.Errorf("invalid hex character %q in %s", c, clip(v))
				}
				if half {
					out = append(out, nibble<<4|d)
				}
				nibble, half = d, !half
			}
			continue
		}
		switch c {
		case '|':
			hex = true
		case '\\':
			if i+1 == len(v) || strings.IndexByte(`";\:`, v[i+1]) < 0 {
				if i+1 == len(v) {
					return nil, errors.New("content ends in a lone backslash")
				}
				return nil, fmt.Errorf("invalid escape \\%c in content (only \\\" \\; \\: \\\\)", v[i+1])
			}
			i++
			out = append(out, v[i])
		case '"':
			return nil, errors.New(`unescaped " in content`)
		default:
			out = append(out, c)
		}
	}
	if hex {
		return nil, fmt.Errorf("unterminated |hex| in %s", clip(v))
	}
	if len(out) == 0 {
		return nil, errors.New("empty content")
	}
	if len(out) > MaxContentLen {
		return nil, fmt.Errorf("content is longer than %d bytes", MaxContentLen)
	}
	return out, nil
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// lastContent is the content a modifier applies to: the most recent one, which
// must be in the current sticky buffer.
func (p *ruleParser) lastContent(name string) (*Match, error) {
	if p.last < 0 {
		return nil, fmt.Errorf("%s needs a preceding content", name)
	}
	m := &p.r.Matches[p.last]
	if m.Buffer != p.buf {
		return nil, fmt.Errorf("%s: the last content is in another buffer", name)
	}
	return m, nil
}

func (p *ruleParser) nocase(o option) error {
	m, err := p.lastContent(o.name)
	if err != nil {
		return err
	}
	if m.Nocase {
		return errors.New("nocase given twice for one content")
	}
	m.Nocase = true
	return nil
}

// anchor is startswith and endswith. startswith is offset 0 and depth the
// content's length, and like Suricata it takes no other position modifier.
func (p *ruleParser) anchor(o option) error {
	m, err := p.lastContent(o.name)
	if err != nil {
		return err
	}
	if o.name == "startswith" {
		if m.StartsWith {
			return errors.New("startswith given twice for one content")
		}
		if m.HasOffset || m.HasDepth || m.HasDistance || m.HasWithin {
			return errors.New("startswith with offset, depth, distance or within")
		}
		m.StartsWith, m.Offset, m.HasOffset, m.Depth, m.HasDepth = true, 0, true, len(m.Pattern), true
		return nil
	}
	if m.EndsWith {
		return errors.New("endswith given twice for one content")
	}
	m.EndsWith = true
	return nil
}

// isdataat is "[!]N[,relative]" on the buffer in force; relative needs a content
// or pcre before it in that buffer.
func (p *ruleParser) isdataat(o option) error {
	v := strings.TrimSpace(o.value)
	negated := strings.HasPrefix(v, "!")
	if negated {
		v = strings.TrimSpace(v[1:])
	}
	num, rest, hasRest := strings.Cut(v, ",")
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 0 || n > maxModifier {
		if t := strings.TrimSpace(num); t != "" && (t[0] == '_' || t[0] >= 'a' && t[0] <= 'z' || t[0] >= 'A' && t[0] <= 'Z') {
			return &SkipError{Keyword: o.name, Reason: "variables (byte_extract) are not supported"}
		}
		return fmt.Errorf("%q: want [!]N[,relative] with N from 0 to %d", o.value, maxModifier)
	}
	relative := false
	if hasRest {
		switch strings.TrimSpace(rest) {
		case "relative":
			relative = true
		case "rawbytes":
		default:
			return fmt.Errorf("%q: want [!]N[,relative]", o.value)
		}
	}
	if relative {
		found := false
		for _, m := range p.r.Matches {
			found = found || m.Buffer == p.buf && m.Kind != MatchIsDataAt
		}
		if !found {
			return errors.New("isdataat relative needs a content or pcre before it")
		}
	}
	p.r.Matches = append(p.r.Matches, Match{Kind: MatchIsDataAt, Buffer: p.buf, Offset: n, Relative: relative, Negated: negated})
	return nil
}

// bsize tests the length of the sticky buffer in force.
func (p *ruleParser) bsize(o option) error {
	if p.buf == BufferPayload {
		return &SkipError{Keyword: o.name, Reason: "bsize on the payload (weir runs it on dns.query and tls.sni)"}
	}
	c, err := parseIntCmp(o.value, 65535, false)
	if err != nil {
		return err
	}
	p.r.Bsize = append(p.r.Bsize, BufferSize{Buffer: p.buf, Size: c})
	return nil
}

func (p *ruleParser) rawbytes(o option) error {
	_, err := p.lastContent(o.name)
	return err
}

func (p *ruleParser) modifier(o option) error {
	m, err := p.lastContent(o.name)
	if err != nil {
		return err
	}
	if m.StartsWith {
		return fmt.Errorf("%s after startswith", o.name)
	}
	v := strings.TrimSpace(o.value)
	n, err := strconv.Atoi(v)
	if err != nil {
		if v != "" && (v[0] == '_' || v[0] >= 'a' && v[0] <= 'z' || v[0] >= 'A' && v[0] <= 'Z') {
			return &SkipError{Keyword: o.name, Reason: "variables (byte_extract) are not supported"}
		}
		return fmt.Errorf("%q is not a number", v)
	}
	min := 0
	if o.name == "distance" {
		min = -maxModifier
	}
	if n < min || n > maxModifier {
		return fmt.Errorf("%d is out of range %d to %d", n, min, maxModifier)
	}
	plen := len(m.Pattern)
	switch o.name {
	case "offset":
		if m.HasOffset {
			return errors.New("offset given twice for one content")
		}
		m.Offset, m.HasOffset = n, true
	case "depth":
		if m.HasDepth {
			return errors.New("depth given twice for one content")
		}
		if n < plen {
			return fmt.Errorf("depth %d is smaller than the content's length %d", n, plen)
		}
		m.Depth, m.HasDepth = n, true
	case "distance":
		if m.HasDistance {
			return errors.New("distance given twice for one content")
		}
		m.Distance, m.HasDistance = n, true
	case "within":
		if m.HasWithin {
			return errors.New("within given twice for one content")
		}
		if n < plen {
			return fmt.Errorf("within %d is smaller than the content's length %d", n, plen)
		}
		m.Within, m.HasWithin = n, true
	}
	if (m.HasOffset || m.HasDepth) && (m.HasDistance || m.HasWithin) {
		return errors.New("absolute (offset, depth) and relative (distance, within) modifiers on one content")
	}
	return nil
}

func (p *ruleParser) fastPattern(o option) error {
	m, err := p.lastContent(o.name)
	if err != nil {
		return err
	}
	for _, other := range p.r.Matches {
		if other.FastPattern {
			return errors.New("fast_pattern on more than one content")
		}
	}
	if o.hasValue && o.value != "only" {
		off, n, ok := strings.Cut(o.value, ",")
		a, err1 := strconv.Atoi(strings.TrimSpace(off))
		b, err2 := strconv.Atoi(strings.TrimSpace(n))
		if !ok || err1 != nil || err2 != nil || a < 0 || b < 1 || a+b > len(m.Pattern) {
			return fmt.Errorf("%q: want only or offset,length within the content (%d bytes)", o.value, len(m.Pattern))
		}
	}
	m.FastPattern = true
	return nil
}

// pcreBufferFlags are Suricata's pcre flags that pick an HTTP or other buffer.
const pcreBufferFlags = "UIPQHDMCSYBOVWZ"

func (p *ruleParser) pcre(o option) error {
	v := strings.TrimSpace(o.value)
	negated := strings.HasPrefix(v, "!")
	if negated {
		v = strings.TrimSpace(v[1:])
	}
	if strings.HasPrefix(v, `"`) {
		if !endsInQuote(v) {
			return fmt.Errorf("unterminated quoted value %s", clip(v))
		}
		v = v[1 : len(v)-1]
	}
	end := strings.LastIndexByte(v, '/')
	if !strings.HasPrefix(v, "/") || end < 1 {
		return fmt.Errorf("%s: want \"/regex/flags\"", clip(o.value))
	}
	pattern, flags := v[1:end], v[end+1:]
	var reFlags string
	relative, extended, dollarEnd := false, false, false
	for i := 0; i < len(flags); i++ {
		c := flags[i]
		switch {
		case c == 'i' || c == 's' || c == 'm':
			if !strings.ContainsRune(reFlags, rune(c)) {
				reFlags += string(c)
			}
		case c == 'x':
			extended = true
		case c == 'R':
			relative = true
		case c == 'E':
			dollarEnd = true
		case c == 'G':
			reFlags += "U"
		case c == 'A' || strings.IndexByte(pcreBufferFlags, c) >= 0:
			return &SkipError{Keyword: "pcre flag " + string(c)}
		default:
			return fmt.Errorf("unknown pcre flag %q", c)
		}
	}
	re, err := translatePCRE(pattern, extended, dollarEnd || strings.Contains(reFlags, "m"))
	if err != nil {
		return &SkipError{Keyword: "pcre", Reason: err.Error()}
	}
	if reFlags != "" {
		re = "(?" + reFlags + ")" + re
	}
	compiled, err := regexp.Compile(re)
	if err != nil {
		return &SkipError{Keyword: "pcre", Reason: "Go's RE2 cannot compile it: " + err.Error()}
	}
	p.r.Matches = append(p.r.Matches, Match{Kind: MatchPCRE, Buffer: p.buf, Negated: negated, Regexp: compiled, Relative: relative})
	return nil
}

// translatePCRE rewrites a PCRE pattern into RE2 syntax with the same meaning, or
// says why it cannot:
//   - x: white space and # comments outside classes are dropped (RE2 has no x);
//   - $ without m or E: PCRE also matches before a final newline, so it becomes
//     \n?\z (a match then ends after that newline instead of before it);
//   - a byte >= 0x80: RE2 matches UTF-8 runes, PCRE bytes, so it is refused;
//   - constructs RE2 lacks (backreferences, lookaround, atomic groups, \Z,
//     possessive quantifiers, \G, \K, \R, ...) are refused by name here or by
//     regexp.Compile.
func translatePCRE(pat string, extended, dollarPlain bool) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		if c >= 0x80 {
			return "", errors.New("non-ASCII byte in the pattern (RE2 matches UTF-8, not bytes)")
		}
		if c == '\\' {
			if i+1 == len(pat) {
				return "", errors.New("pattern ends in a backslash")
			}
			e := pat[i+1]
			switch {
			case e >= '1' && e <= '9' && !inClass:
				return "", fmt.Errorf("backreference \\%c is not supported by RE2", e)
			case e >= '1' && e <= '9':
				return "", errors.New("octal escapes in classes are not supported")
			case e == 'Q':
				// \Q...\E is literal text, in x mode too: copy it as it is.
				j := strings.Index(pat[i+2:], `\E`)
				if j < 0 {
					j = len(pat) - i - 2
				} else {
					j += 2
				}
				if strings.ContainsFunc(pat[i:i+2+j], func(r rune) bool { return r >= 0x80 }) {
					return "", errors.New("non-ASCII byte in the pattern (RE2 matches UTF-8, not bytes)")
				}
				b.WriteString(pat[i : i+2+j])
				i += 1 + j
				continue
			case strings.IndexByte("gkGKRXZhHvVNepPCo", e) >= 0:
				return "", fmt.Errorf("\\%c is not supported by RE2", e)
			case e == 'x':
				if hi, ok := hexDigit(at(pat, i+2)); ok && hi >= 8 {
					if _, ok := hexDigit(at(pat, i+3)); ok {
						return "", errors.New("byte escape >= \\x80 (RE2 matches UTF-8, not bytes)")
					}
				}
				if at(pat, i+2) == '{' {
					return "", errors.New("\\x{...} escapes are not supported (RE2 matches UTF-8, not bytes)")
				}
			case e == 's' || e == 'S':
				// PCRE2's \s includes the vertical tab; RE2's does not.
				switch {
				case e == 's' && inClass:
					b.WriteString(`\t\n\x0b\f\r\x20`)
				case e == 's':
					b.WriteString(`[\t\n\x0b\f\r\x20]`)
				case inClass:
					return "", errors.New("\\S inside a class is not supported")
				default:
					b.WriteString(`[^\t\n\x0b\f\r\x20]`)
				}
				i++
				continue
			case e == ' ' || e == '#' && extended:
				// An escaped space or # is a literal in x mode; RE2 needs hex for a space.
				fmt.Fprintf(&b, `\x%02x`, e)
				i++
				continue
			}
			b.WriteByte(c)
			b.WriteByte(e)
			i++
			continue
		}
		if inClass {
			if c == ']' {
				inClass = false
			}
			if c == '[' && at(pat, i+1) == ':' {
				// POSIX class [:alpha:]: copy through its closing :].
				j := strings.Index(pat[i:], ":]")
				if j < 0 {
					return "", errors.New("unterminated POSIX class")
				}
				b.WriteString(pat[i : i+j+2])
				i += j + 1
				continue
			}
			b.WriteByte(c)
			continue
		}
		switch c {
		case '[':
			inClass = true
			b.WriteByte(c)
			// A ] right after [ or [^ is a literal.
			if at(pat, i+1) == '^' {
				b.WriteByte('^')
				i++
			}
			if at(pat, i+1) == ']' {
				b.WriteString(`\]`)
				i++
			}
			continue
		case '(':
			if at(pat, i+1) == '?' {
				j := i + 2
				for j < len(pat) && strings.IndexByte("imsxUJn-^", pat[j]) >= 0 {
					j++
				}
				if f := pat[i+2 : j]; (at(pat, j) == ')' || at(pat, j) == ':') && strings.ContainsAny(f, "mi") {
					return "", errors.New("inline (?m) and (?i) are not supported")
				}
				switch n := at(pat, i+2); {
				case n == '=' || n == '!' || n == '>' || n == '|' || n == '(' || n == 'R' || n == '+' || n >= '0' && n <= '9':
					return "", fmt.Errorf("group (?%c is not supported by RE2", n)
				case n == '<' && (at(pat, i+3) == '=' || at(pat, i+3) == '!'):
					return "", errors.New("lookbehind is not supported by RE2")
				case n == '#':
					return "", errors.New("(?# comments are not supported")
				}
			}
		case '*', '+', '?', '}':
			if n := at(pat, i+1); n == '+' {
				return "", errors.New("possessive quantifiers are not supported by RE2")
			}
		case '$':
			if !dollarPlain {
				b.WriteString(`(?:\n?\z)`)
				continue
			}
		case '{':
			if n := at(pat, i+1); n == ',' || n == ' ' {
				return "", errors.New("{,n} means {0,n} in PCRE2 10.43 and later, a literal before")
			}
			if extended && strings.ContainsAny(pat[i:min(len(pat), i+16)], " \t\n") {
				return "", errors.New("white space near a {} quantifier in x mode")
			}
		}
		if extended {
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' {
				continue
			}
			if c == '#' {
				for i < len(pat) && pat[i] != '\n' {
					i++
				}
				continue
			}
		}
		b.WriteByte(c)
	}
	if inClass {
		return "", errors.New("unterminated character class")
	}
	return b.String(), nil
}

func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// PCREInput is b as the regexps of parsed pcre options must see it. Go's RE2
// reads UTF-8 and PCRE, as Suricata compiles it, reads bytes: so each byte of
// 0x80 and above becomes the rune of that value (Latin-1), one character per
// byte, and '.', [^...], \D, \W, \S and case folding then treat it as PCRE does.
// b is returned as it is when it holds no such byte; otherwise the result is
// appended to dst[:0] (which it may grow).
func PCREInput(dst, b []byte) []byte {
	i := 0
	for i < len(b) && b[i] < 0x80 {
		i++
	}
	if i == len(b) {
		return b
	}
	dst = append(dst[:0], b[:i]...)
	for _, c := range b[i:] {
		if c < 0x80 {
			dst = append(dst, c)
		} else {
			dst = append(dst, 0xc0|c>>6, 0x80|c&0x3f)
		}
	}
	return dst
}

// PCREOffset maps an offset into PCREInput's result in back to the input's
// bytes: every lead byte (0xc2, 0xc3) before it stands for one byte that became
// two.
func PCREOffset(in []byte, off int) int {
	n := off
	for _, c := range in[:off] {
		if c == 0xc2 || c == 0xc3 {
			n--
		}
	}
	return n
}
