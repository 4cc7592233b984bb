package applayer

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
)

// clientHello runs a crypto/tls client handshake over net.Pipe and returns the
// first record it writes: the ClientHello exactly as Go sends it.
func clientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := tls.Client(client, cfg)
		_ = c.Handshake() // fails once the server end closes
		c.Close()
	}()
	hdr := make([]byte, tlsRecordHeaderLen)
	if _, err := io.ReadFull(server, hdr); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, tlsRecordHeaderLen+int(binary.BigEndian.Uint16(hdr[3:])))
	copy(rec, hdr)
	if _, err := io.ReadFull(server, rec[tlsRecordHeaderLen:]); err != nil {
		t.Fatal(err)
	}
	server.Close()
	<-done
	return rec
}

var helloConfigs = []struct {
	name string
	cfg  *tls.Config
	want string // "" for no SNI
}{
	{"tls13 default", &tls.Config{ServerName: "example.com"}, "example.com"},
	{"tls12 only", &tls.Config{ServerName: "www.example.org", MaxVersion: tls.VersionTLS12}, "www.example.org"},
	{"tls10 only", &tls.Config{ServerName: "old.example", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, "old.example"},
	{"alpn and long name", &tls.Config{ServerName: "a.very.deep.sub.domain.of.example.co.uk", NextProtos: []string{"h2", "http/1.1"}},
		"a.very.deep.sub.domain.of.example.co.uk"},
	{"session tickets off", &tls.Config{ServerName: "x.example", SessionTicketsDisabled: true}, "x.example"},
	{"no server name", &tls.Config{InsecureSkipVerify: true}, ""},
	{"ip literal", &tls.Config{ServerName: "192.0.2.1"}, ""}, // RFC 6066: no SNI for addresses
}

func TestTLSSNIGoClient(t *testing.T) {
	for _, tt := range helloConfigs {
		t.Run(tt.name, func(t *testing.T) {
			rec := clientHello(t, tt.cfg)
			sni, err := TLSSNI(rec)
			if err != nil {
				t.Fatalf("TLSSNI: %v", err)
			}
			if string(sni) != tt.want {
				t.Fatalf("sni = %q, want %q", sni, tt.want)
			}
			if tt.want != "" && !inside(sni, rec) {
				t.Fatal("sni is not a subslice of the record")
			}
			// With trailing stream bytes (the next record) the answer is the same.
			more := append(append([]byte{}, rec...), 20, 3, 3, 0, 1, 1)
			if sni, err := TLSSNI(more); err != nil || string(sni) != tt.want {
				t.Fatalf("with trailing bytes: %q, %v", sni, err)
			}
			// Every cut-short prefix is either incomplete or, once the name is
			// in, the name.
			for n := range len(rec) {
				sni, err := TLSSNI(rec[:n])
				if err == nil && tt.want != "" && string(sni) == tt.want {
					continue
				}
				if !errors.Is(err, ErrIncomplete) {
					t.Fatalf("prefix of %d/%d bytes: %q, %v; want ErrIncomplete", n, len(rec), sni, err)
				}
			}
		})
	}
}

// inside reports whether sub is a subslice of b: both then end at the same
// backing array element.
func inside(sub, b []byte) bool {
	if len(sub) == 0 || cap(sub) > cap(b) {
		return false
	}
	bb, ss := b[:cap(b)], sub[:cap(sub)]
	return &bb[len(bb)-1] == &ss[len(ss)-1]
}

// splitRecords re-frames a one-record ClientHello as records of at most size
// payload bytes each, as a client with large key shares would send it.
func splitRecords(rec []byte, size int) []byte {
	var out []byte
	body := rec[tlsRecordHeaderLen:]
	for len(body) > 0 {
		n := min(size, len(body))
		out = append(out, rec[0], rec[1], rec[2], byte(n>>8), byte(n))
		out = append(out, body[:n]...)
		body = body[n:]
	}
	return out
}

func TestTLSSNIReassembled(t *testing.T) {
	rec := clientHello(t, &tls.Config{ServerName: "split.example.net"})
	scratch := make([]byte, 1<<16)
	for _, size := range []int{1, 7, 64, 100, 512, len(rec)} {
		stream := splitRecords(rec, size)
		if size < len(rec)-tlsRecordHeaderLen {
			if _, err := TLSSNI(stream); !errors.Is(err, ErrIncomplete) {
				t.Errorf("size %d: TLSSNI err = %v, want ErrIncomplete", size, err)
			}
		}
		sni, err := TLSSNIReassembled(stream, scratch)
		if err != nil || string(sni) != "split.example.net" {
			t.Errorf("size %d: %q, %v", size, sni, err)
		}
		if _, err := TLSSNIReassembled(stream[:len(stream)/3], scratch); err != nil && !errors.Is(err, ErrIncomplete) {
			t.Errorf("size %d cut: err = %v, want ErrIncomplete or success", size, err)
		}
	}
	if _, err := TLSSNIReassembled(splitRecords(rec, 100), make([]byte, 100)); err != ReasonTLSShortBuffer {
		t.Errorf("small scratch: err = %v, want %v", err, ReasonTLSShortBuffer)
	}
	// A record of another type in the middle of the hello.
	bad := splitRecords(rec, 100)
	bad[105] = 23
	if _, err := TLSSNIReassembled(bad, scratch); err != ReasonTLSNotHandshake {
		t.Errorf("interleaved record: err = %v, want %v", err, ReasonTLSNotHandshake)
	}
}

// hello builds a ClientHello record by hand from its parts.
func hello(sessionID, suites, compression, extensions []byte) []byte {
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...)
	body = append(body, byte(len(sessionID)))
	body = append(body, sessionID...)
	body = binary.BigEndian.AppendUint16(body, uint16(len(suites)))
	body = append(body, suites...)
	body = append(body, byte(len(compression)))
	body = append(body, compression...)
	if extensions != nil {
		body = binary.BigEndian.AppendUint16(body, uint16(len(extensions)))
		body = append(body, extensions...)
	}
	hs := append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{22, 3, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

func sniExt(list []byte) []byte {
	ext := []byte{0, 0}
	ext = binary.BigEndian.AppendUint16(ext, uint16(len(list)))
	return append(ext, list...)
}

func TestTLSSNIHandmade(t *testing.T) {
	suites := []byte{0x13, 0x01}
	comp := []byte{0}
	entry := func(typ byte, name string) []byte {
		e := append([]byte{typ}, byte(len(name)>>8), byte(len(name)))
		return append(e, name...)
	}
	list := func(entries ...[]byte) []byte {
		var l []byte
		for _, e := range entries {
			l = append(l, e...)
		}
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(l))), l...)
	}
	other := []byte{0x00, 0x0b, 0x00, 0x02, 0x01, 0x00} // ec_point_formats
	okExts := append(append([]byte{}, other...), sniExt(list(entry(0, "ok.example")))...)
	tests := []struct {
		name string
		rec  []byte
		sni  string
		err  error
	}{
		{"second extension", hello(nil, suites, comp, okExts), "ok.example", nil},
		{"session id 32", hello(make([]byte, 32), suites, comp, okExts), "ok.example", nil},
		{"no extensions", hello(nil, suites, comp, nil), "", nil},
		{"empty extensions", hello(nil, suites, comp, []byte{}), "", nil},
		{"skips other name types", hello(nil, suites, comp, sniExt(list(entry(7, "zz"), entry(0, "h.example")))), "h.example", nil},
		{"sslv2 hello", []byte{0x80, 0x2e, 0x01, 0x00, 0x02}, "", nil},
		{"empty", nil, "", ErrIncomplete},
		{"sslv2 cut", []byte{0x80, 0x2e}, "", ErrIncomplete},
		{"sslv2 not hello", []byte{0x80, 0x2e, 0x04}, "", ReasonTLSNotHandshake},
		{"http", []byte("GET / HTTP/1.1\r\n"), "", ReasonTLSNotHandshake},
		{"application data", []byte{23, 3, 3, 0, 5}, "", ReasonTLSNotHandshake},
		{"record version 2", []byte{22, 2, 0, 0, 5}, "", ReasonTLSVersion},
		{"record too long", []byte{22, 3, 1, 0xFF, 0xFF}, "", ReasonTLSRecordLength},
		{"record empty", []byte{22, 3, 1, 0, 0}, "", ReasonTLSLength},
		{"server hello", []byte{22, 3, 3, 0, 4, 2, 0, 0, 0}, "", ReasonTLSNotHello},
		{"hello version 2", func() []byte { r := hello(nil, suites, comp, okExts); r[9] = 2; return r }(), "", ReasonTLSVersion},
		{"session id 33", hello(make([]byte, 33), suites, comp, okExts), "", ReasonTLSSessionID},
		{"no suites", hello(nil, nil, comp, okExts), "", ReasonTLSCipherSuites},
		{"odd suites", hello(nil, []byte{1, 2, 3}, comp, okExts), "", ReasonTLSCipherSuites},
		{"no compression", hello(nil, suites, nil, okExts), "", ReasonTLSCompression},
		{"extension overruns", hello(nil, suites, comp, []byte{0, 11, 0, 9, 1}), "", ReasonTLSLength},
		{"extension header cut", hello(nil, suites, comp, []byte{0, 11, 0}), "", ReasonTLSLength},
		{"sni list overruns", hello(nil, suites, comp, sniExt([]byte{0, 9, 0, 0, 1, 'a'})), "", ReasonTLSServerName},
		{"sni name overruns", hello(nil, suites, comp, sniExt([]byte{0, 4, 0, 0, 9, 'a'})), "", ReasonTLSServerName},
		{"sni empty name", hello(nil, suites, comp, sniExt(list(entry(0, "")))), "", ReasonTLSServerName},
		{"sni empty list", hello(nil, suites, comp, sniExt(list())), "", ReasonTLSServerName},
		{"sni no host_name", hello(nil, suites, comp, sniExt(list(entry(1, "x")))), "", ReasonTLSServerName},
		{"hello cut", hello(nil, suites, comp, okExts)[:60], "", ErrIncomplete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sni, err := TLSSNI(tt.rec)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if string(sni) != tt.sni {
				t.Fatalf("sni = %q, want %q", sni, tt.sni)
			}
		})
	}
	// The extensions block claiming more than the hello holds.
	r := hello(nil, suites, comp, okExts)
	binary.BigEndian.PutUint16(r[5+4+2+32+1+2+2+1+1:], uint16(len(okExts)+1))
	if _, err := TLSSNI(r); err != ReasonTLSLength {
		t.Errorf("extensions overrun the hello: err = %v", err)
	}
}

func TestReasonStrings(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		s := r.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("reason %d has name %q", r, s)
		}
		seen[s] = true
	}
	if Reason(200).String() != "unknown" {
		t.Errorf("out-of-range reason: %q", Reason(200).String())
	}
}

func TestTLSSNIAllocs(t *testing.T) {
	rec := clientHello(t, &tls.Config{ServerName: "example.com"})
	split := splitRecords(rec, 200)
	scratch := make([]byte, 1<<16)
	allocs := testing.AllocsPerRun(100, func() {
		if sni, err := TLSSNI(rec); err != nil || len(sni) == 0 {
			panic(err)
		}
		if sni, err := TLSSNIReassembled(split, scratch); err != nil || len(sni) == 0 {
			panic(err)
		}
		if _, err := TLSSNI(rec[:40]); err != ErrIncomplete {
			panic(err)
		}
		if _, err := TLSSNI([]byte("GET /")); err == nil {
			panic("no error")
		}
	})
	if allocs != 0 {
		t.Fatalf("TLSSNI allocates %v times per run", allocs)
	}
}

func BenchmarkTLSSNI(b *testing.B) {
	rec := clientHello(b, &tls.Config{ServerName: "www.example.com"})
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := TLSSNI(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTLSSNIReassembled(b *testing.B) {
	stream := splitRecords(clientHello(b, &tls.Config{ServerName: "www.example.com"}), 512)
	scratch := make([]byte, 1<<16)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		if _, err := TLSSNIReassembled(stream, scratch); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzTLSSNI(f *testing.F) {
	for _, c := range helloConfigs[:3] {
		f.Add(clientHello(f, c.cfg))
	}
	f.Add([]byte{0x80, 0x2e, 0x01, 0x00, 0x02})
	f.Fuzz(func(t *testing.T, stream []byte) {
		sni, err := TLSSNI(stream)
		switch err.(type) {
		case nil:
			if sni != nil && (len(sni) == 0 || !inside(sni, stream)) {
				t.Fatalf("sni %q is empty or not inside the input", sni)
			}
		case Reason:
		default:
			if err != ErrIncomplete {
				t.Fatalf("unexpected error %v", err)
			}
		}
		scratch := make([]byte, 1<<16)
		sni2, err2 := TLSSNIReassembled(stream, scratch)
		if err == nil && (err2 != nil || string(sni2) != string(sni)) {
			t.Fatalf("TLSSNI gave %q, TLSSNIReassembled %q, %v", sni, sni2, err2)
		}
	})
}
