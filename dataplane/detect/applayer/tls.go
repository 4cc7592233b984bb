package applayer

import "encoding/binary"

const (
	tlsRecordHeaderLen  = 5
	tlsHandshakeLen     = 4
	tlsContentHandshake = 22
	tlsClientHello      = 1
	tlsExtServerName    = 0
	tlsHostName         = 0
	// maxTLSPlaintext is RFC 8446's limit on a record's plaintext (2^14), plus the
	// 2048 bytes of expansion earlier versions allow, to stay lenient.
	maxTLSRecord = 1<<14 + 2048
)

// TLSSNI returns the host_name of the server_name extension in the ClientHello that
// starts stream, the bytes a client sends first on a TLS connection. The name is a
// subslice of stream. A ClientHello without that extension, and an SSLv2-format
// hello (which has no extensions), give a nil name and a nil error.
//
// When stream ends before the ClientHello does, or the ClientHello continues in a
// second record, it returns ErrIncomplete; for the latter, TLSSNIReassembled joins
// the records. Malformed input gives a Reason.
func TLSSNI(stream []byte) ([]byte, error) {
	body, recLen, err := tlsFirstRecord(stream)
	if err != nil || body == nil {
		return nil, err
	}
	hsLen, err := tlsHelloHeader(body)
	if err != nil {
		return nil, err
	}
	if tlsHandshakeLen+hsLen > recLen {
		return nil, ErrIncomplete // continues in the next record
	}
	return clientHelloSNI(body, tlsHandshakeLen+hsLen)
}

// TLSSNIReassembled is TLSSNI for a ClientHello that may be spread over several
// handshake records (large post-quantum key shares make that happen). When the hello
// fits one record, the name is a subslice of stream as with TLSSNI; otherwise the
// record payloads are joined into scratch and the name is a subslice of scratch. A
// scratch too small for the hello gives ReasonTLSShortBuffer.
func TLSSNIReassembled(stream, scratch []byte) ([]byte, error) {
	body, recLen, err := tlsFirstRecord(stream)
	if err != nil || body == nil {
		return nil, err
	}
	hsLen, err := tlsHelloHeader(body)
	if err == nil && tlsHandshakeLen+hsLen <= recLen {
		return clientHelloSNI(body, tlsHandshakeLen+hsLen)
	}
	if err != nil && err != ErrIncomplete {
		return nil, err
	}
	if cap(scratch) < tlsHandshakeLen {
		return nil, ReasonTLSShortBuffer
	}
	joined := scratch[:0]
	want := -1 // the hello's length, header included, once its header is in
	for rest := stream; ; {
		body, n, err := tlsRecord(rest)
		if err == ErrIncomplete && len(joined) > 0 {
			break // the next record's header is cut short: read what is joined
		}
		if err != nil {
			return nil, err
		}
		for len(body) > 0 && len(joined) != want {
			if want < 0 {
				k := min(len(body), tlsHandshakeLen-len(joined))
				joined, body = append(joined, body[:k]...), body[k:]
				if len(joined) < tlsHandshakeLen {
					continue
				}
				hsLen, err := tlsHelloHeader(joined)
				if err != nil {
					return nil, err
				}
				if want = tlsHandshakeLen + hsLen; want > cap(scratch) {
					return nil, ReasonTLSShortBuffer
				}
				continue
			}
			k := min(len(body), want-len(joined))
			joined, body = append(joined, body[:k]...), body[k:]
		}
		if len(joined) == want || len(rest) < tlsRecordHeaderLen+n {
			break // all there, or this record is cut short
		}
		rest = rest[tlsRecordHeaderLen+n:]
	}
	if want < 0 {
		if _, err := tlsHelloHeader(joined); err != nil {
			return nil, err
		}
	}
	// A hello cut short may already hold the name.
	return clientHelloSNI(joined, want)
}

// tlsFirstRecord checks the start of stream and returns the available payload of
// its first record and the record's declared length. A nil payload with a nil error
// is an SSLv2-format hello.
func tlsFirstRecord(stream []byte) (body []byte, recLen int, err error) {
	if len(stream) == 0 {
		return nil, 0, ErrIncomplete
	}
	if stream[0]&0x80 != 0 {
		// SSLv2 record header: two length bytes with the top bit set, then the
		// message type, 1 for CLIENT-HELLO.
		if len(stream) < 3 {
			return nil, 0, ErrIncomplete
		}
		if stream[2] == 1 {
			return nil, 0, nil
		}
		return nil, 0, ReasonTLSNotHandshake
	}
	body, recLen, err = tlsRecord(stream)
	if err != nil {
		return nil, 0, err
	}
	return body, recLen, nil
}

// tlsRecord reads a handshake record header and returns the payload bytes present
// (possibly fewer than declared) and the declared length.
func tlsRecord(b []byte) (body []byte, n int, err error) {
	if len(b) >= 1 && b[0] != tlsContentHandshake {
		return nil, 0, ReasonTLSNotHandshake
	}
	if len(b) >= 2 && b[1] != 3 {
		return nil, 0, ReasonTLSVersion
	}
	if len(b) < tlsRecordHeaderLen {
		return nil, 0, ErrIncomplete
	}
	n = int(binary.BigEndian.Uint16(b[3:5]))
	if n > maxTLSRecord {
		return nil, 0, ReasonTLSRecordLength
	}
	if n == 0 {
		return nil, 0, ReasonTLSLength
	}
	body = b[tlsRecordHeaderLen:]
	if len(body) > n {
		body = body[:n]
	}
	return body, n, nil
}

// tlsHelloHeader checks the handshake header at the start of a record's payload
// and returns the ClientHello's length.
func tlsHelloHeader(body []byte) (int, error) {
	if len(body) >= 1 && body[0] != tlsClientHello {
		return 0, ReasonTLSNotHello
	}
	if len(body) < tlsHandshakeLen {
		return 0, ErrIncomplete
	}
	return int(body[1])<<16 | int(body[2])<<8 | int(body[3]), nil
}

// helloReader reads a ClientHello of which only a prefix may be present. end is the
// declared end of the structure being read; a read past end is a malformation, a
// read past the bytes present (but within end) means more bytes are needed.
type helloReader struct {
	b   []byte
	off int
	end int
}

// take returns the next n bytes.
func (r *helloReader) take(n int, bad Reason) ([]byte, error) {
	if r.off+n > r.end {
		return nil, bad
	}
	if r.off+n > len(r.b) {
		return nil, ErrIncomplete
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p, nil
}

func (r *helloReader) u8(bad Reason) (int, error) {
	p, err := r.take(1, bad)
	if err != nil {
		return 0, err
	}
	return int(p[0]), nil
}

func (r *helloReader) u16(bad Reason) (int, error) {
	p, err := r.take(2, bad)
	if err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint16(p)), nil
}

// clientHelloSNI walks a ClientHello handshake message (header included) of
// declared length want, of which hs holds a prefix, to its server_name extension.
func clientHelloSNI(hs []byte, want int) ([]byte, error) {
	r := helloReader{b: hs, off: tlsHandshakeLen, end: want}
	v, err := r.take(2, ReasonTLSLength) // legacy_version
	if err != nil {
		return nil, err
	}
	if v[0] != 3 {
		return nil, ReasonTLSVersion
	}
	if _, err := r.take(32, ReasonTLSLength); err != nil { // random
		return nil, err
	}
	n, err := r.u8(ReasonTLSLength)
	if err != nil {
		return nil, err
	}
	if n > 32 {
		return nil, ReasonTLSSessionID
	}
	if _, err := r.take(n, ReasonTLSLength); err != nil {
		return nil, err
	}
	if n, err = r.u16(ReasonTLSLength); err != nil {
		return nil, err
	}
	if n == 0 || n%2 != 0 {
		return nil, ReasonTLSCipherSuites
	}
	if _, err := r.take(n, ReasonTLSLength); err != nil {
		return nil, err
	}
	if n, err = r.u8(ReasonTLSLength); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, ReasonTLSCompression
	}
	if _, err := r.take(n, ReasonTLSLength); err != nil {
		return nil, err
	}
	if r.off == r.end {
		return nil, nil // no extensions at all (SSL 3.0 style)
	}
	if n, err = r.u16(ReasonTLSLength); err != nil {
		return nil, err
	}
	if r.off+n > r.end {
		return nil, ReasonTLSLength
	}
	r.end = r.off + n
	for r.off < r.end {
		typ, err := r.u16(ReasonTLSLength)
		if err != nil {
			return nil, err
		}
		n, err := r.u16(ReasonTLSLength)
		if err != nil {
			return nil, err
		}
		if typ != tlsExtServerName {
			if _, err := r.take(n, ReasonTLSLength); err != nil {
				return nil, err
			}
			continue
		}
		if r.off+n > r.end {
			return nil, ReasonTLSLength
		}
		return serverName(helloReader{b: r.b, off: r.off, end: r.off + n})
	}
	return nil, nil
}

// serverName reads a server_name extension's body (RFC 6066 section 3) and returns
// its first host_name.
func serverName(r helloReader) ([]byte, error) {
	n, err := r.u16(ReasonTLSServerName)
	if err != nil {
		return nil, err
	}
	if r.off+n > r.end {
		return nil, ReasonTLSServerName
	}
	r.end = r.off + n
	for r.off < r.end {
		typ, err := r.u8(ReasonTLSServerName)
		if err != nil {
			return nil, err
		}
		n, err := r.u16(ReasonTLSServerName)
		if err != nil {
			return nil, err
		}
		name, err := r.take(n, ReasonTLSServerName)
		if err != nil {
			return nil, err
		}
		if typ == tlsHostName {
			if n == 0 {
				return nil, ReasonTLSServerName
			}
			return name, nil
		}
	}
	return nil, ReasonTLSServerName // an extension with no host_name
}
