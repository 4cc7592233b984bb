package echo

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClipAndQuote(t *testing.T) {
	if got := Clip("short", 10); got != "short" {
		t.Errorf("Clip short = %q", got)
	}
	long := strings.Repeat("é", 1<<20) // 2 MiB of two-byte characters
	got := Clip(long, 65)
	if !strings.HasSuffix(got, "… (2097152 bytes)") || !utf8.ValidString(got) || len(got) > 65+len("… (2097152 bytes)") {
		t.Errorf("Clip long = %q", got)
	}
	q := Quote(strings.Repeat("x", 50<<20))
	if len(q) > Max+40 || !strings.HasPrefix(q, `"xxxx`) || !strings.HasSuffix(q, "… (52428800 bytes)") {
		t.Errorf("Quote of 50 MB = %q", q)
	}
	if Quote(`a"b`) != `"a\"b"` {
		t.Errorf("Quote short = %s", Quote(`a"b`))
	}
}
