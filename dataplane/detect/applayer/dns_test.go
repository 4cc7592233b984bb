package applayer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// buildDNS packs a message with dnsmessage, compressing names as real servers do.
func buildDNS(t testing.TB, id uint16, response bool, qtype dnsmessage.Type, names ...string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: response, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		q := dnsmessage.Question{Name: dnsmessage.MustNewName(n), Type: qtype, Class: dnsmessage.ClassINET}
		if err := b.Question(q); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestDNSQueryReal(t *testing.T) {
	tests := []struct {
		name     string
		names    []string
		qtype    dnsmessage.Type
		response bool
		want     string
	}{
		{"simple", []string{"example.com."}, dnsmessage.TypeA, false, "example.com"},
		{"case kept", []string{"WwW.ExAmple.COM."}, dnsmessage.TypeAAAA, false, "WwW.ExAmple.COM"},
		{"root", []string{"."}, dnsmessage.TypeNS, false, ""},
		{"response", []string{"a.b.c.d.example.net."}, dnsmessage.TypeTXT, true, "a.b.c.d.example.net"},
		{"first of two", []string{"one.example.", "two.example."}, dnsmessage.TypeMX, false, "one.example"},
		{"max label", []string{string(bytes.Repeat([]byte("x"), 63)) + ".io."}, dnsmessage.TypeA, false,
			string(bytes.Repeat([]byte("x"), 63)) + ".io"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := buildDNS(t, 0xBEEF, tt.response, tt.qtype, tt.names...)
			out := make([]byte, 255)
			name, info, err := DNSQuery(msg, out)
			if err != nil {
				t.Fatalf("DNSQuery: %v", err)
			}
			if string(name) != tt.want {
				t.Errorf("name = %q, want %q", name, tt.want)
			}
			want := DNSInfo{ID: 0xBEEF, Response: tt.response, QType: uint16(tt.qtype)}
			if info != want {
				t.Errorf("info = %+v, want %+v", info, want)
			}
			// The same message over TCP, whole and cut short.
			stream := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
			stream = append(stream, msg...)
			name, info, err = DNSQueryTCP(stream, out)
			if err != nil || string(name) != tt.want || info != want {
				t.Errorf("DNSQueryTCP = %q, %+v, %v", name, info, err)
			}
			if _, _, err := DNSQueryTCP(stream[:2+dnsHeaderLen+1], out); !errors.Is(err, ErrIncomplete) {
				t.Errorf("DNSQueryTCP on a cut stream: err = %v, want ErrIncomplete", err)
			}
		})
	}
}

// TestDNSQueryLongest checks a 253-character name (255 octets on the wire), the
// longest there is, fits a 255-byte scratch and that one octet more is refused.
func TestDNSQueryLongest(t *testing.T) {
	l63 := string(bytes.Repeat([]byte("a"), 63))
	longest := l63 + "." + l63 + "." + l63 + "." + l63[:61]
	msg := buildDNS(t, 1, false, dnsmessage.TypeA, longest+".")
	name, _, err := DNSQuery(msg, make([]byte, 255))
	if err != nil || string(name) != longest {
		t.Fatalf("got %q, %v; want the 253-byte name", name, err)
	}
	// By hand (dnsmessage refuses it), one octet longer.
	raw := dnsHeader(1)
	for _, n := range []int{63, 63, 63, 62} {
		raw = append(raw, byte(n))
		raw = append(raw, l63[:n]...)
	}
	raw = append(raw, 0, 0, 1, 0, 1)
	if _, _, err := DNSQuery(raw, make([]byte, 300)); err != ReasonDNSNameTooLong {
		t.Fatalf("err = %v, want %v", err, ReasonDNSNameTooLong)
	}
}

func dnsHeader(qd uint16) []byte {
	return []byte{0x12, 0x34, 0x01, 0x00, byte(qd >> 8), byte(qd), 0, 0, 0, 0, 0, 0}
}

func TestDNSQueryMalformed(t *testing.T) {
	q := func(tail ...byte) []byte { return append(dnsHeader(1), tail...) }
	tests := []struct {
		name string
		msg  []byte
		out  int
		want Reason
	}{
		{"empty", nil, 255, ReasonDNSShortHeader},
		{"short header", dnsHeader(1)[:11], 255, ReasonDNSShortHeader},
		{"no question", dnsHeader(0), 255, ReasonDNSNoQuestion},
		{"no name", q(), 255, ReasonDNSTruncated},
		{"label past end", q(5, 'a', 'b'), 255, ReasonDNSTruncated},
		{"no terminator", q(1, 'a'), 255, ReasonDNSTruncated},
		{"no qtype", q(1, 'a', 0), 255, ReasonDNSTruncated},
		{"half qclass", q(1, 'a', 0, 0, 1, 0), 255, ReasonDNSTruncated},
		{"label type 0x40", q(0x41, 'a', 0, 0, 1, 0, 1), 255, ReasonDNSLabelType},
		{"label type 0x80", q(0x81, 'a', 0, 0, 1, 0, 1), 255, ReasonDNSLabelType},
		{"half pointer", q(0xC0), 255, ReasonDNSTruncated},
		{"pointer to self", q(0xC0, 12, 0, 1, 0, 1), 255, ReasonDNSBadPointer},
		{"pointer forward", q(0xC0, 14, 0, 0, 1, 0, 1), 255, ReasonDNSBadPointer},
		// Backwards but looping: "a" at 12, then a pointer back to 12.
		{"pointer loop", q(1, 'a', 0xC0, 12, 0, 1, 0, 1), 255, ReasonDNSPointerLoop},
		{"pointer past end", q(0xFF, 0xFF, 0, 1, 0, 1), 255, ReasonDNSBadPointer},
		// A pointer into the header: byte 0 is 0x12, a label of 18 that runs off.
		{"pointer into header", q(0xC0, 0, 0, 1, 0, 1), 255, ReasonDNSTruncated},
		{"scratch too small", q(3, 'a', 'b', 'c', 0, 0, 1, 0, 1), 2, ReasonDNSShortBuffer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, _, err := DNSQuery(tt.msg, make([]byte, tt.out))
			var r Reason
			if !errors.As(err, &r) || r != tt.want {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if name != nil {
				t.Errorf("name = %q on error", name)
			}
		})
	}
}

// TestDNSQueryPointerChain checks that pointers are followed, that a backward chain
// longer than the limit is refused, and that the qtype is read after the first
// pointer rather than after the pointed-to name.
func TestDNSQueryPointerChain(t *testing.T) {
	// A name "com" at offset 12, then hops-1 names "x" each pointing at the one
	// before, then the name under test, "q" pointing at the last of them.
	build := func(hops int) []byte {
		m := dnsHeader(1)
		m = append(m, 3, 'c', 'o', 'm', 0)
		prev := 12
		for range hops - 1 {
			at := len(m)
			m = append(m, 1, 'x', 0xC0, byte(prev))
			prev = at
		}
		return append(m, 1, 'q', 0xC0, byte(prev), 0, 28, 0, 1)
	}
	for _, tt := range []struct {
		hops int
		want Reason
		name string
	}{
		{1, ReasonNone, "q.com"},
		{3, ReasonNone, "q.x.x.com"},
		{maxPointers, ReasonNone, "q" + string(bytes.Repeat([]byte(".x"), maxPointers-1)) + ".com"},
		{maxPointers + 1, ReasonDNSPointerLoop, ""},
	} {
		m := build(tt.hops)
		start := len(m) - 8
		name, end, r := dnsName(m, start, make([]byte, 255))
		if r != tt.want {
			t.Errorf("%d hops: reason %v, want %v", tt.hops, r, tt.want)
			continue
		}
		if r == ReasonNone && (string(name) != tt.name || end != start+4) {
			t.Errorf("%d hops: name %q end %d, want %q end %d", tt.hops, name, end, tt.name, start+4)
		}
	}
}

func TestDNSQueryTCPErrors(t *testing.T) {
	out := make([]byte, 255)
	for _, tt := range []struct {
		name   string
		stream []byte
		want   error
	}{
		{"empty", nil, ErrIncomplete},
		{"one byte", []byte{0}, ErrIncomplete},
		{"zero length", []byte{0, 0, 1, 2}, ReasonDNSBadTCPLength},
		{"header cut", []byte{0, 30, 0x12, 0x34}, ErrIncomplete},
		{"whole but malformed", append([]byte{0, 12}, dnsHeader(0)...), ReasonDNSNoQuestion},
		{"length shorter than question", append([]byte{0, 14}, append(dnsHeader(1), 1, 'a', 0, 0, 1, 0, 1)...), ReasonDNSTruncated},
	} {
		if _, _, err := DNSQueryTCP(tt.stream, out); err != tt.want {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestDNSQueryAllocs(t *testing.T) {
	msg := buildDNS(t, 7, false, dnsmessage.TypeA, "www.example.com.")
	bad := dnsHeader(0)
	var out [255]byte
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := DNSQuery(msg, out[:]); err != nil {
			panic(err)
		}
		if _, _, err := DNSQuery(bad, out[:]); err == nil {
			panic("no error")
		}
	})
	if allocs != 0 {
		t.Fatalf("DNSQuery allocates %v times per run", allocs)
	}
}

func BenchmarkDNSQuery(b *testing.B) {
	msg := buildDNS(b, 7, false, dnsmessage.TypeA, "www.example.com.")
	var out [255]byte
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, _, err := DNSQuery(msg, out[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDNSQuery(f *testing.F) {
	f.Add(buildDNS(f, 1, false, dnsmessage.TypeA, "www.example.com."))
	f.Add(buildDNS(f, 2, true, dnsmessage.TypeAAAA, "a.example.", "b.example."))
	f.Add(append(dnsHeader(1), 0xC0, 12, 0, 1, 0, 1))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var out [255]byte
		// The same bytes as a TCP stream: its own framing, the same guarantees.
		if name, _, err := DNSQueryTCP(msg, out[:]); err != nil {
			if _, ok := err.(Reason); !ok && err != ErrIncomplete {
				t.Fatalf("DNSQueryTCP error %v is neither a Reason nor ErrIncomplete", err)
			}
		} else if len(name) > 253 {
			t.Fatalf("DNSQueryTCP name of %d bytes", len(name))
		}
		name, _, err := DNSQuery(msg, out[:])
		if err != nil {
			if _, ok := err.(Reason); !ok {
				t.Fatalf("error %v is not a Reason", err)
			}
			return
		}
		if len(name) > 253 {
			t.Fatalf("name of %d bytes", len(name))
		}
		// Cross-check with dnsmessage when it accepts the question.
		var p dnsmessage.Parser
		if _, err := p.Start(msg); err != nil {
			return
		}
		q, err := p.Question()
		if err != nil {
			return
		}
		want := q.Name.String()
		if len(want) > 1 {
			want = want[:len(want)-1]
		} else {
			want = ""
		}
		// dnsmessage escapes unprintable bytes and dots in labels; compare only
		// plain names.
		plain := true
		for _, c := range name {
			if c <= ' ' || c >= 0x7F || c == '\\' || c == '"' || c == '(' || c == ')' || c == ';' || c == '@' || c == '$' {
				plain = false
			}
		}
		if plain && bytes.Count(name, []byte(".")) == bytes.Count([]byte(want), []byte(".")) && string(name) != want {
			t.Fatalf("name %q, dnsmessage says %q", name, want)
		}
	})
}
