package eve

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

// validOf is s as appendString promises to keep it: each byte that is not part of
// valid UTF-8 replaced by U+FFFD. (strings.ToValidUTF8 replaces a run of such bytes
// with one U+FFFD: not the same.)
func validOf(s string) string {
	var sb strings.Builder
	for _, r := range s { // ranging a string yields U+FFFD for each invalid byte
		sb.WriteRune(r)
	}
	return sb.String()
}

// checkString checks that out is a valid JSON string that decodes to validOf(in),
// with nothing but printable ASCII and valid UTF-8 above it.
func checkString(t *testing.T, in string, out []byte) {
	t.Helper()
	if !utf8.Valid(out) {
		t.Errorf("appendString(%q) = %q: not valid UTF-8", in, out)
	}
	for _, c := range out {
		if c < 0x20 || c == 0x7f {
			t.Errorf("appendString(%q) = %q: raw control byte %#x", in, out, c)
		}
	}
	var got string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("appendString(%q) = %q: %v", in, out, err)
	}
	if want := validOf(in); got != want {
		t.Errorf("appendString(%q) = %q decodes to %q, want %q", in, out, got, want)
	}
}

func TestAppendString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"prod-eni-1", `"prod-eni-1"`},
		{"naïve 日本 😀", `"naïve 日本 😀"`},
		{`say "hi" \o/`, `"say \"hi\" \\o/"`},
		{"a\nb\rc\td", `"a\nb\rc\td"`},
		{"\x00\x01\x07\x08\x0c\x1b\x1f", `"\u0000\u0001\u0007\u0008\u000c\u001b\u001f"`},
		{"del\x7f", `"del\u007f"`},
		{"\xff", `"\ufffd"`},
		{"a\xffb\xfe\xfdc", `"a\ufffdb\ufffd\ufffdc"`},
		{"\xe6\x97", `"\ufffd\ufffd"`},                     // a cut 3-byte sequence
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},           // an encoded surrogate
		{"\xc0\xaf", `"\ufffd\ufffd"`},                     // an overlong '/'
		{"\xf4\x90\x80\x80", `"\ufffd\ufffd\ufffd\ufffd"`}, // above U+10FFFF
		{"\ufffd", "\"\ufffd\""},                           // a real U+FFFD stays as is
		{"x\u2028y\u2029z", `"x\u2028y\u2029z"`},
		{"\u2027\u202a", "\"\u2027\u202a\""},
		{"</script>", `"</script>"`},
		{"\u0080\u00a0", "\"\u0080\u00a0\""},
	} {
		out := appendString(nil, tc.in)
		if string(out) != tc.want {
			t.Errorf("appendString(%q) = %s, want %s", tc.in, out, tc.want)
		}
		checkString(t, tc.in, out)
	}
	// Every byte value, alone and after a valid prefix.
	for c := range 256 {
		s := string([]byte{byte(c)})
		checkString(t, s, appendString(nil, s))
		checkString(t, "é"+s+"é", appendString(nil, "é"+s+"é"))
	}
	// appendString appends.
	if got := string(appendString([]byte("x:"), "y")); got != `x:"y"` {
		t.Errorf("appendString appended %q", got)
	}
}

func TestAppendAddrZone(t *testing.T) {
	for _, zone := range []string{"eth0", `a"b\c`, "\x00\x7f\xff"} {
		a := netip.MustParseAddr("fe80::1").WithZone(zone)
		var got string
		if err := json.Unmarshal(appendAddr(nil, a), &got); err != nil {
			t.Fatalf("zone %q: %v", zone, err)
		}
		if want := "fe80:0000:0000:0000:0000:0000:0000:0001%" + validOf(zone); got != want {
			t.Errorf("zone %q: %q, want %q", zone, got, want)
		}
	}
	if got := string(appendAddr(nil, netip.MustParseAddr("fe80::1%eth0"))); got != `"fe80:0000:0000:0000:0000:0000:0000:0001%eth0"` {
		t.Errorf("appendAddr = %s", got)
	}
}

// TestAppendAddr: IPv4 dotted, IPv6 uncompressed as Suricata's PrintInet writes it.
func TestAppendAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.2.9", `"10.0.2.9"`},
		{"0.0.0.0", `"0.0.0.0"`},
		{"2001:db8::1", `"2001:0db8:0000:0000:0000:0000:0000:0001"`},
		{"::", `"0000:0000:0000:0000:0000:0000:0000:0000"`},
		{"FD00:ABCD::53", `"fd00:abcd:0000:0000:0000:0000:0000:0053"`},
		{"::ffff:10.0.0.1", `"0000:0000:0000:0000:0000:ffff:0a00:0001"`},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", `"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"`},
	} {
		if got := string(appendAddr(nil, netip.MustParseAddr(tc.in))); got != tc.want {
			t.Errorf("appendAddr(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if got := string(appendAddr(nil, netip.Addr{})); got != `""` {
		t.Errorf("appendAddr(zero) = %s, want \"\"", got)
	}
}

func TestAppendMAC(t *testing.T) {
	for _, tc := range []struct {
		in   [6]byte
		want string
	}{
		{[6]byte{}, `"00:00:00:00:00:00"`},
		{[6]byte{0x02, 0xAB, 0xcd, 0x0f, 0xf0, 0xff}, `"02:ab:cd:0f:f0:ff"`},
	} {
		if got := string(appendMAC(nil, &tc.in)); got != tc.want {
			t.Errorf("appendMAC(% x) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestAppendStringAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not exact under -race")
	}
	buf := make([]byte, 0, 1024)
	s := "naïve \"quoted\" \x00\x7f\xff\u2028 😀"
	if n := testing.AllocsPerRun(100, func() { buf = appendString(buf[:0], s) }); n != 0 {
		t.Errorf("appendString: %v allocations, want 0", n)
	}
}

func BenchmarkAppendString(b *testing.B) {
	buf := make([]byte, 0, 1024)
	s := "ET POLICY Suspicious inbound to mySQL port 3306 (\"quoted\")"
	b.ReportAllocs()
	for b.Loop() {
		buf = appendString(buf[:0], s)
	}
	b.SetBytes(int64(len(s)))
}
