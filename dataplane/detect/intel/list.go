// Package intel holds threat-intelligence lists, IP addresses and networks or
// domain names, loaded from plain text files, and a Set that matches addresses and
// names against many lists at once without allocating.
//
// A list file holds one entry a line. Blank lines and lines starting with '#' are
// ignored, surrounding whitespace is trimmed, and an entry may be followed by a
// comment after whitespace and '#'. IP lists hold IPv4 or IPv6 addresses and CIDR
// prefixes; domain lists hold names, each matching itself and all its subdomains.
package intel

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Kind is what a list holds.
type Kind uint8

const (
	KindIP     Kind = iota // addresses and prefixes
	KindDomain             // domain names
)

func (k Kind) String() string {
	if k == KindDomain {
		return "domain"
	}
	return "ip"
}

// List is one list file. Its category and whether a match blocks come from the
// configuration, not the file.
type List struct {
	Name     string // the file's base name without extension, for alerts and metrics
	Path     string
	Category string
	Block    bool
	Kind     Kind

	prefixes []netip.Prefix // masked; IPv4-mapped IPv6 entries stored as IPv4
	domains  []string       // lowercase, no trailing dot, no "*." prefix
}

// Len is the number of entries the file held.
func (l *List) Len() int { return len(l.prefixes) + len(l.domains) }

// LoadIPs reads an IP list: IPv4 and IPv6 addresses and CIDR prefixes. Host bits
// set in a prefix are ignored (10.1.2.3/8 means 10.0.0.0/8). IPv4-mapped IPv6
// entries (::ffff:192.0.2.1) are taken as the IPv4 ones.
func LoadIPs(path, category string, block bool) (*List, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	prefixes, err := parseIPs(path, data)
	if err != nil {
		return nil, err
	}
	l := newList(path, category, block, KindIP)
	l.prefixes = prefixes
	return l, nil
}

// LoadDomains reads a domain list. Names are case-insensitive; a trailing dot and
// a leading "*." are dropped ("*.evil.com" means the same as "evil.com").
func LoadDomains(path, category string, block bool) (*List, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	domains, err := parseDomains(path, data)
	if err != nil {
		return nil, err
	}
	l := newList(path, category, block, KindDomain)
	l.domains = domains
	return l, nil
}

func newList(path, category string, block bool, kind Kind) *List {
	base := filepath.Base(path)
	return &List{
		Name:     strings.TrimSuffix(base, filepath.Ext(base)),
		Path:     path,
		Category: category,
		Block:    block,
		Kind:     kind,
	}
}

// eachEntry calls f with each entry of a list file and its line number, and
// prefixes f's error with FILE:LINE.
func eachEntry(file string, data []byte, f func(entry string) error) error {
	// One string for the whole file: entries are substrings of it, so parsing
	// does not allocate per line and unchanged domain names share its memory.
	text := string(data)
	for line := 1; len(text) > 0; line++ {
		raw, rest, _ := strings.Cut(text, "\n")
		text = rest
		entry := strings.TrimSpace(raw)
		if entry == "" || entry[0] == '#' {
			continue
		}
		if i := strings.IndexByte(entry, '#'); i > 0 && isSpace(entry[i-1]) {
			entry = strings.TrimSpace(entry[:i])
		}
		if err := f(entry); err != nil {
			return fmt.Errorf("%s:%d: %w", file, line, err)
		}
	}
	return nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

func parseIPs(file string, data []byte) ([]netip.Prefix, error) {
	prefixes := make([]netip.Prefix, 0, bytes.Count(data, []byte{'\n'})+1)
	err := eachEntry(file, data, func(entry string) error {
		p, err := parseIPEntry(entry)
		if err != nil {
			return err
		}
		prefixes = append(prefixes, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return prefixes, nil
}

func parseIPEntry(entry string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.IndexByte(entry, '/') >= 0 {
		var err error
		if p, err = netip.ParsePrefix(entry); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP prefix", entry)
		}
	} else {
		a, err := netip.ParseAddr(entry)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address", entry)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func parseDomains(file string, data []byte) ([]string, error) {
	domains := make([]string, 0, bytes.Count(data, []byte{'\n'})+1)
	err := eachEntry(file, data, func(entry string) error {
		d, err := normalizeDomain(entry)
		if err != nil {
			return err
		}
		domains = append(domains, d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return domains, nil
}

// maxDomain is the longest name in text form (255 octets on the wire).
const maxDomain = 253

// normalizeDomain checks a domain entry and returns it lowercase, without a
// trailing dot or a leading "*.". It allocates only when it has to lowercase.
func normalizeDomain(entry string) (string, error) {
	d := strings.TrimPrefix(strings.TrimSuffix(entry, "."), "*.")
	if d == "" || len(d) > maxDomain {
		return "", fmt.Errorf("%q is not a domain name: length %d not in 1..%d", entry, len(d), maxDomain)
	}
	upper := false
	label := 0
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '.':
			if label == 0 {
				return "", fmt.Errorf("%q is not a domain name: empty label", entry)
			}
			label = 0
			continue
		case 'A' <= c && c <= 'Z':
			upper = true
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return "", fmt.Errorf("%q is not a domain name: byte %q (IDNs must be in punycode)", entry, c)
		}
		if label++; label > 63 {
			return "", fmt.Errorf("%q is not a domain name: label longer than 63", entry)
		}
	}
	if label == 0 {
		return "", fmt.Errorf("%q is not a domain name: empty label", entry)
	}
	if upper {
		d = strings.ToLower(d)
	}
	return d, nil
}
