package eve

import (
	"net/netip"
	"unicode/utf8"
)

// appendString appends s as a JSON string, quotes included. The result is valid JSON
// and valid UTF-8 for any s: strconv.AppendQuote is not, as it writes Go escapes
// (\x7f, \a, \U0001f600) that JSON parsers reject. Control characters and DEL are
// escaped, each byte that is not part of valid UTF-8 becomes \ufffd (one per byte,
// as utf8.DecodeRuneInString reads them), and U+2028 and U+2029 are escaped because
// JavaScript takes them for line ends.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

// appendEscaped appends s escaped as in a JSON string, without the quotes.
func appendEscaped(b []byte, s string) []byte {
	start := 0 // s[start:i] is still to be copied as is
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}

const hexDigits = "0123456789abcdef"

// appendAddr appends a as a JSON string, as Suricata's PrintInet writes it: IPv4
// dotted, IPv6 as 8 groups of 4 lowercase hex digits with no zero compressed
// ("2001:0db8:0000:0000:0000:0000:0000:0001"), so that tools matching Suricata's
// strings match ours. Addresses in records carry no zone; should one have one, the
// zone (any bytes) is escaped after a '%'.
func appendAddr(b []byte, a netip.Addr) []byte {
	b = append(b, '"')
	switch {
	case a.Is4():
		b = a.AppendTo(b)
	case a.Is6():
		ip := a.As16()
		for i := 0; i < 16; i += 2 {
			if i > 0 {
				b = append(b, ':')
			}
			b = append(b, hexDigits[ip[i]>>4], hexDigits[ip[i]&0xf], hexDigits[ip[i+1]>>4], hexDigits[ip[i+1]&0xf])
		}
		if z := a.Zone(); z != "" {
			b = append(b, '%')
			b = appendEscaped(b, z)
		}
	}
	return append(b, '"')
}

// appendMAC appends m as a JSON string the way Suricata writes MAC addresses:
// lowercase hex pairs joined by ':'.
func appendMAC(b []byte, m *[6]byte) []byte {
	b = append(b, '"')
	for i, c := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return append(b, '"')
}
