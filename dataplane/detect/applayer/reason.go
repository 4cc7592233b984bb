// Package applayer extracts the application-layer buffers that detection rules
// inspect: the first question name of a DNS query (Suricata's dns.query) and the
// server name a TLS ClientHello asks for (tls.sni). Both run per packet, so they
// allocate nothing: a DNS name is written into caller scratch, an SNI is returned as
// a subslice of the bytes given.
package applayer

import "errors"

// Reason says why a message was rejected as malformed. It is an error itself, so a
// caller can count rejections by reason with errors.As without any allocation.
type Reason uint8

const (
	ReasonNone Reason = iota
	// DNS.
	ReasonDNSShortHeader  // fewer than the 12 header bytes
	ReasonDNSNoQuestion   // QDCOUNT is zero
	ReasonDNSTruncated    // the question runs past the end of the message
	ReasonDNSLabelType    // a label length byte uses the reserved 0x40 or 0x80 forms
	ReasonDNSNameTooLong  // the name exceeds 255 octets on the wire
	ReasonDNSBadPointer   // a compression pointer points at or after itself
	ReasonDNSPointerLoop  // too many compression pointers followed
	ReasonDNSShortBuffer  // the caller's scratch cannot hold the name
	ReasonDNSBadTCPLength // a TCP length prefix of zero
	// TLS.
	ReasonTLSNotHandshake // the stream does not start with a handshake record or an SSLv2 hello
	ReasonTLSVersion      // a record or ClientHello version whose major byte is not 3
	ReasonTLSRecordLength // a record longer than TLS allows
	ReasonTLSNotHello     // the first handshake message is not a ClientHello
	ReasonTLSLength       // a length field overruns the structure that holds it
	ReasonTLSSessionID    // a session id longer than 32 bytes
	ReasonTLSCipherSuites // an empty or odd-length cipher suite list
	ReasonTLSCompression  // an empty compression method list
	ReasonTLSServerName   // a server_name extension that does not parse, or an empty host_name
	ReasonTLSShortBuffer  // the caller's scratch cannot hold a ClientHello spread over records
	reasonCount
)

var reasonNames = [reasonCount]string{
	ReasonNone:            "none",
	ReasonDNSShortHeader:  "dns_short_header",
	ReasonDNSNoQuestion:   "dns_no_question",
	ReasonDNSTruncated:    "dns_truncated",
	ReasonDNSLabelType:    "dns_label_type",
	ReasonDNSNameTooLong:  "dns_name_too_long",
	ReasonDNSBadPointer:   "dns_bad_pointer",
	ReasonDNSPointerLoop:  "dns_pointer_loop",
	ReasonDNSShortBuffer:  "dns_short_buffer",
	ReasonDNSBadTCPLength: "dns_bad_tcp_length",
	ReasonTLSNotHandshake: "tls_not_handshake",
	ReasonTLSVersion:      "tls_version",
	ReasonTLSRecordLength: "tls_record_length",
	ReasonTLSNotHello:     "tls_not_client_hello",
	ReasonTLSLength:       "tls_length",
	ReasonTLSSessionID:    "tls_session_id",
	ReasonTLSCipherSuites: "tls_cipher_suites",
	ReasonTLSCompression:  "tls_compression",
	ReasonTLSServerName:   "tls_server_name",
	ReasonTLSShortBuffer:  "tls_short_buffer",
}

// String names the reason in snake_case, fit for a metric label.
func (r Reason) String() string {
	if r < reasonCount {
		return reasonNames[r]
	}
	return "unknown"
}

func (r Reason) Error() string { return "applayer: malformed: " + r.String() }

// Reasons lists every reason but ReasonNone, for pre-creating counters.
func Reasons() []Reason {
	rs := make([]Reason, 0, reasonCount-1)
	for r := ReasonNone + 1; r < reasonCount; r++ {
		rs = append(rs, r)
	}
	return rs
}

// ErrIncomplete means the bytes end before the structure does: the caller should
// retry once more of the stream has arrived. It is not a malformation.
var ErrIncomplete = errors.New("applayer: incomplete: more stream bytes needed")
