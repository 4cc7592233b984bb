package detect

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// clientHello is the first bytes a crypto/tls client writes: its ClientHello.
func clientHello(t *testing.T, sni string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		tc := tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		tc.Handshake() // fails when s closes: only the hello matters
		c.Close()
	}()
	buf := make([]byte, 1<<16)
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := s.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// tls.sni sees the server name of a ClientHello, also of one cut short by the
// segment's end when the name is in it (the rest of a large post-quantum hello
// comes in the next segment).
func TestTLSSNIBuffer(t *testing.T) {
	hello := clientHello(t, "www.pastebin.com")
	h := newHarness(t, `alert tls any any -> any any (msg:"sni"; tls.sni; content:"pastebin.com"; nocase; sid:1;)`, Options{})
	x := h.tcp("10.0.0.1", "192.0.2.80", 40000, 443)
	x.handshake()
	cut := 200 // the server name extension comes early in crypto/tls's hello
	if len(hello) <= cut {
		t.Fatalf("hello of %d bytes", len(hello))
	}
	got := sids(x.seg(true, "PA", hello[:cut]), x.seg(true, "PA", hello[cut:]))
	if !equalSteps(got, [][]uint32{{1}, nil}) {
		t.Fatalf("alerts by segment %v", got)
	}
	if a := h.alerts[0]; a.TLSSNI != "www.pastebin.com" || a.AppProto.String() != "tls" {
		t.Errorf("alert sni %q app_proto %q", a.TLSSNI, a.AppProto)
	}
}
