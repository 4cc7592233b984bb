package geneve_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"regexp"
	"testing"

	"weir/geneve"
)

// opt is an option to encode into a test header.
type opt struct {
	class uint16
	typ   uint8
	data  []byte
}

func (o opt) append(dst []byte) []byte { return geneve.AppendOption(dst, o.class, o.typ, o.data) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

var (
	optEndpoint   = opt{geneve.ClassAWS, geneve.AWSTypeEndpointID, u64(testAWS.EndpointID)}
	optAttachment = opt{geneve.ClassAWS, geneve.AWSTypeAttachmentID, u64(testAWS.AttachmentID)}
	optCookie     = opt{geneve.ClassAWS, geneve.AWSTypeFlowCookie, u32(testAWS.FlowCookie)}

	// Options Decode must skip and keep.
	optOtherClass   = opt{0x0000, geneve.AWSTypeEndpointID, word(2, 0x10)} // AWS type number, other class
	optOtherClass2  = opt{0x0103, geneve.AWSTypeFlowCookie, nil}           // other class, empty, too short for a cookie
	optAWSUnknown   = opt{geneve.ClassAWS, 4, word(3, 0x20)}               // an AWS type we do not know
	optAWSCritical  = opt{geneve.ClassAWS, 0x80 | geneve.AWSTypeEndpointID, nil}
	optExperimental = opt{0xfff0, 0x7f, word(31, 0x40)} // the longest option: 124 data bytes
)

// header builds a GENEVE header with proto and the options in order.
func header(proto uint16, opts ...opt) []byte {
	var area []byte
	for _, o := range opts {
		area = o.append(area)
	}
	return geneve.AppendHeader(nil, proto, 0, area)
}

func TestDecodeValid(t *testing.T) {
	in4 := innerIPv4(t, 100)
	in6 := innerIPv6(t, 77)
	eth := innerEthernet(t)
	awsHdr4 := geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, testAWS)
	awsHdr6 := geneve.AppendAWSHeader(nil, geneve.ProtoIPv6, testAWS)
	awsOnly := func(types ...uint8) geneve.AWS {
		var a geneve.AWS
		for _, t := range types {
			switch t {
			case geneve.AWSTypeEndpointID:
				a.EndpointID = testAWS.EndpointID
			case geneve.AWSTypeAttachmentID:
				a.AttachmentID = testAWS.AttachmentID
			case geneve.AWSTypeFlowCookie:
				a.FlowCookie = testAWS.FlowCookie
			}
			a.Present |= 1 << t
		}
		return a
	}

	withFlags := func(h []byte, b1 byte, vni uint32) []byte {
		h = append([]byte(nil), h...)
		h[1] = b1
		binary.BigEndian.PutUint32(h[4:], vni<<8)
		return h
	}

	tests := []struct {
		name     string
		hdr      []byte // the header including options
		inner    []byte
		proto    uint16
		vni      uint32
		oam, crt bool
		aws      geneve.AWS
		nopts    int
	}{
		{name: "gwlb ipv4", hdr: awsHdr4, inner: in4, proto: geneve.ProtoIPv4, aws: testAWS, nopts: 3},
		{name: "gwlb ipv6", hdr: awsHdr6, inner: in6, proto: geneve.ProtoIPv6, aws: testAWS, nopts: 3},
		{name: "gwlb ethernet", hdr: geneve.AppendAWSHeader(nil, geneve.ProtoEthernet, testAWS), inner: eth,
			proto: geneve.ProtoEthernet, aws: testAWS, nopts: 3},
		{name: "reversed order", hdr: header(geneve.ProtoIPv4, optCookie, optAttachment, optEndpoint),
			inner: in4, proto: geneve.ProtoIPv4, aws: testAWS, nopts: 3},
		{name: "cookie first", hdr: header(geneve.ProtoIPv6, optCookie, optEndpoint, optAttachment),
			inner: in6, proto: geneve.ProtoIPv6, aws: testAWS, nopts: 3},
		{name: "unknown before", hdr: header(geneve.ProtoIPv4, optOtherClass, optAWSUnknown, optEndpoint, optAttachment, optCookie),
			inner: in4, proto: geneve.ProtoIPv4, aws: testAWS, nopts: 5},
		{name: "unknown between", hdr: header(geneve.ProtoIPv4, optAttachment, optOtherClass2, optEndpoint, optAWSCritical, optCookie),
			inner: in4, proto: geneve.ProtoIPv4, aws: testAWS, nopts: 5},
		{name: "unknown after", hdr: header(geneve.ProtoIPv6, optEndpoint, optCookie, optAttachment, optAWSUnknown, optOtherClass),
			inner: in6, proto: geneve.ProtoIPv6, aws: testAWS, nopts: 5},
		{name: "unknown everywhere", hdr: header(geneve.ProtoIPv6, optOtherClass2, optCookie, optAWSCritical, optEndpoint,
			optAWSUnknown, optAttachment, optOtherClass), inner: in6, proto: geneve.ProtoIPv6, aws: testAWS, nopts: 7},
		{name: "longest option", hdr: header(geneve.ProtoIPv4, optEndpoint, optExperimental, optCookie),
			inner: in4, proto: geneve.ProtoIPv4, aws: awsOnly(geneve.AWSTypeEndpointID, geneve.AWSTypeFlowCookie), nopts: 3},
		{name: "no options", hdr: header(geneve.ProtoIPv4), inner: in4, proto: geneve.ProtoIPv4},
		{name: "only unknown options", hdr: header(geneve.ProtoIPv6, optOtherClass, optAWSCritical), inner: in6,
			proto: geneve.ProtoIPv6, nopts: 2},
		{name: "endpoint only", hdr: header(geneve.ProtoIPv4, optEndpoint), inner: in4, proto: geneve.ProtoIPv4,
			aws: awsOnly(geneve.AWSTypeEndpointID), nopts: 1},
		{name: "attachment id zero", hdr: header(geneve.ProtoIPv4, optEndpoint,
			opt{geneve.ClassAWS, geneve.AWSTypeAttachmentID, u64(0)}, optCookie), inner: in4, proto: geneve.ProtoIPv4,
			aws: geneve.AWS{EndpointID: testAWS.EndpointID, FlowCookie: testAWS.FlowCookie, Present: testAWS.Present}, nopts: 3},
		{name: "vni and flags", hdr: withFlags(awsHdr4, 0xc0|0x3f, 0xabcdef), inner: in4, proto: geneve.ProtoIPv4,
			vni: 0xabcdef, oam: true, crt: true, aws: testAWS, nopts: 3},
		{name: "one byte inner", hdr: awsHdr4, inner: []byte{0x45}, proto: geneve.ProtoIPv4, aws: testAWS, nopts: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := append(append([]byte(nil), tc.hdr...), tc.inner...)
			h, payload, aws, err := geneve.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.Equal(h, tc.hdr) {
				t.Errorf("header = % x, want % x", []byte(h), tc.hdr)
			}
			if len(h) != h.Len() || h.Len() != len(tc.hdr) {
				t.Errorf("len(h) = %d, h.Len() = %d, want %d", len(h), h.Len(), len(tc.hdr))
			}
			if &h[0] != &b[0] || &payload[0] != &b[len(tc.hdr)] {
				t.Errorf("header and payload must alias the datagram")
			}
			if !bytes.Equal(payload, tc.inner) {
				t.Errorf("payload differs from the inner packet")
			}
			if v := h.Version(); v != 0 {
				t.Errorf("Version = %d", v)
			}
			if got, want := h.OptionsLen(), len(tc.hdr)-geneve.HeaderLen; got != want {
				t.Errorf("OptionsLen = %d, want %d", got, want)
			}
			if got := h.ProtocolType(); got != tc.proto {
				t.Errorf("ProtocolType = %#04x, want %#04x", got, tc.proto)
			}
			if got := h.VNI(); got != tc.vni {
				t.Errorf("VNI = %#x, want %#x", got, tc.vni)
			}
			if h.OAM() != tc.oam || h.Critical() != tc.crt {
				t.Errorf("OAM, Critical = %v, %v, want %v, %v", h.OAM(), h.Critical(), tc.oam, tc.crt)
			}
			if aws != tc.aws {
				t.Errorf("AWS = %+v, want %+v", aws, tc.aws)
			}
			for _, typ := range []uint8{geneve.AWSTypeEndpointID, geneve.AWSTypeAttachmentID, geneve.AWSTypeFlowCookie} {
				if got, want := aws.Has(typ), tc.aws.Present&(1<<typ) != 0; got != want {
					t.Errorf("Has(%d) = %v, want %v", typ, got, want)
				}
			}
			if aws.Has(0) || aws.Has(4) {
				t.Errorf("Has reports types that were not AWS options: Present %#b", aws.Present)
			}
			// The walk sees every option, unknown ones included, in wire order, and
			// together they are exactly the options area.
			opts := walk(t, h.Options())
			if len(opts) != tc.nopts {
				t.Errorf("walk found %d options, want %d", len(opts), tc.nopts)
			}
			var joined []byte
			for _, o := range opts {
				joined = append(joined, o...)
			}
			if !bytes.Equal(joined, tc.hdr[geneve.HeaderLen:]) {
				t.Errorf("options do not add up to the options area")
			}
		})
	}
}

// TestDecodeKeepsUnknownOptions checks each unknown option is found by the walk with
// its class, type, criticality and data intact.
func TestDecodeKeepsUnknownOptions(t *testing.T) {
	want := []opt{optOtherClass2, optCookie, optAWSCritical, optEndpoint, optAWSUnknown, optAttachment,
		optOtherClass, optExperimental}
	b := append(header(geneve.ProtoIPv4, want...), innerIPv4(t, 20)...)
	h, _, aws, err := geneve.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if aws != testAWS {
		t.Errorf("AWS = %+v, want %+v", aws, testAWS)
	}
	got := walk(t, h.Options())
	if len(got) != len(want) {
		t.Fatalf("walk found %d options, want %d", len(got), len(want))
	}
	for i, o := range got {
		w := want[i]
		if o.Class() != w.class || o.Type() != w.typ || !bytes.Equal(o.Data(), w.data) ||
			o.Critical() != (w.typ&0x80 != 0) || len(o) != 4+len(w.data) {
			t.Errorf("option %d = class %#04x type %#02x crit %v data % x, want class %#04x type %#02x data % x",
				i, o.Class(), o.Type(), o.Critical(), o.Data(), w.class, w.typ, w.data)
		}
	}
}

// TestDecodeMaxOptions uses the full 252-byte options area the 6-bit Opt Len allows.
func TestDecodeMaxOptions(t *testing.T) {
	// 32 (AWS) + 128 + 92 = 252
	hdr := geneve.AppendAWSHeader(nil, geneve.ProtoIPv6, testAWS)
	hdr = geneve.AppendOption(hdr, 0x1234, 9, word(31, 1))
	hdr = geneve.AppendOption(hdr, 0x1234, 10, word(22, 2))
	hdr[0] = byte((len(hdr) - geneve.HeaderLen) / 4)
	if len(hdr)-geneve.HeaderLen != geneve.MaxOptionsLen {
		t.Fatalf("built %d bytes of options, want %d", len(hdr)-geneve.HeaderLen, geneve.MaxOptionsLen)
	}
	in := innerIPv6(t, 8)
	h, payload, aws, err := geneve.Decode(append(hdr, in...))
	if err != nil {
		t.Fatal(err)
	}
	if h.Len() != geneve.HeaderLen+geneve.MaxOptionsLen || !bytes.Equal(payload, in) || aws != testAWS {
		t.Errorf("Len %d, payload ok %v, aws %+v", h.Len(), bytes.Equal(payload, in), aws)
	}
	if n := len(walk(t, h.Options())); n != 5 {
		t.Errorf("walk found %d options, want 5", n)
	}
}

// TestDecodeRepeatedAWSOption: a repeated AWS option does not fail the packet (which
// of the values is kept is not specified).
func TestDecodeRepeatedAWSOption(t *testing.T) {
	b := append(header(geneve.ProtoIPv4, optEndpoint, optCookie, opt{geneve.ClassAWS, geneve.AWSTypeFlowCookie, u32(7)}),
		innerIPv4(t, 0)...)
	_, _, aws, err := geneve.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !aws.Has(geneve.AWSTypeFlowCookie) || (aws.FlowCookie != 7 && aws.FlowCookie != testAWS.FlowCookie) {
		t.Errorf("FlowCookie = %#x, want one of the two options' values", aws.FlowCookie)
	}
}

func TestDecodeErrors(t *testing.T) {
	in4 := innerIPv4(t, 10)
	in6 := innerIPv6(t, 10)
	valid4 := gwlbPacket(geneve.ProtoIPv4, in4)
	set := func(b []byte, i int, v byte) []byte {
		b = append([]byte(nil), b...)
		b[i] = v
		return b
	}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	// withOptLen is a fixed header claiming n words of options, followed by rest.
	withOptLen := func(n byte, proto uint16, rest []byte) []byte {
		h := geneve.AppendHeader(nil, proto, 0, nil)
		h[0] = n
		return append(h, rest...)
	}

	tests := []struct {
		name string
		b    []byte
		want geneve.Reason
	}{
		{"nil", nil, geneve.ReasonEmpty},
		{"empty", []byte{}, geneve.ReasonEmpty},
		{"one byte", []byte{0}, geneve.ReasonTruncated},
		{"seven bytes", valid4[:7], geneve.ReasonTruncated},
		{"version 1", set(valid4, 0, valid4[0]|1<<6), geneve.ReasonVersion},
		{"version 2", set(valid4, 0, valid4[0]|2<<6), geneve.ReasonVersion},
		{"version 3 short", []byte{0xc0, 0, 8, 0, 0, 0, 0, 0}, geneve.ReasonVersion},
		{"opt len past datagram", valid4[:geneve.HeaderLen+31], geneve.ReasonOptionsLen},
		{"opt len 1, header only", withOptLen(1, geneve.ProtoIPv4, nil), geneve.ReasonOptionsLen},
		{"opt len 63", withOptLen(63, geneve.ProtoIPv4, in4[:20]), geneve.ReasonOptionsLen},
		{"option overruns area", withOptLen(2, geneve.ProtoIPv4,
			cat(opt{0x0001, 1, word(2, 0)}.append(nil), in4)), geneve.ReasonOptionOverrun},
		{"last option overruns area", withOptLen(4, geneve.ProtoIPv6,
			cat(optCookie.append(nil), opt{0x0001, 1, word(2, 0)}.append(nil), in6)), geneve.ReasonOptionOverrun},
		{"option length 31 in 1-word area", withOptLen(1, geneve.ProtoIPv4,
			cat([]byte{0x01, 0x08, 0x01, 0x1f}, in4)), geneve.ReasonOptionOverrun},
		{"endpoint id 4 bytes", cat(header(geneve.ProtoIPv4, opt{geneve.ClassAWS, geneve.AWSTypeEndpointID, word(1, 0)}),
			in4), geneve.ReasonAWSOption},
		{"attachment id empty", cat(header(geneve.ProtoIPv4, optEndpoint, opt{geneve.ClassAWS, geneve.AWSTypeAttachmentID, nil},
			optCookie), in4), geneve.ReasonAWSOption},
		{"flow cookie empty", cat(header(geneve.ProtoIPv6, optEndpoint, optAttachment,
			opt{geneve.ClassAWS, geneve.AWSTypeFlowCookie, nil}), in6), geneve.ReasonAWSOption},
		{"protocol 0", cat(header(0, optEndpoint), in4), geneve.ReasonProtocol},
		{"protocol ARP", gwlbPacket(0x0806, in4), geneve.ReasonProtocol},
		{"protocol 0x0800 byte-swapped", gwlbPacket(0x0008, in4), geneve.ReasonProtocol},
		{"protocol unknown, no payload", geneve.AppendAWSHeader(nil, 0x1234, testAWS), geneve.ReasonProtocol},
		{"ipv4 header only", geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, testAWS), geneve.ReasonNoPayload},
		{"ipv6 header only", geneve.AppendAWSHeader(nil, geneve.ProtoIPv6, testAWS), geneve.ReasonNoPayload},
		{"ipv4 bare header", header(geneve.ProtoIPv4), geneve.ReasonNoPayload},
		{"ethernet 13 bytes", gwlbPacket(geneve.ProtoEthernet, innerEthernet(t)[:13]), geneve.ReasonNoPayload},
		{"ethernet header only", geneve.AppendAWSHeader(nil, geneve.ProtoEthernet, testAWS), geneve.ReasonNoPayload},
		{"0x0800 carrying ipv6", gwlbPacket(geneve.ProtoIPv4, in6), geneve.ReasonInnerMismatch},
		{"0x86dd carrying ipv4", gwlbPacket(geneve.ProtoIPv6, in4), geneve.ReasonInnerMismatch},
		{"0x0800 carrying zeros", gwlbPacket(geneve.ProtoIPv4, make([]byte, 40)), geneve.ReasonInnerMismatch},
		{"0x86dd carrying ethernet", gwlbPacket(geneve.ProtoIPv6, innerEthernet(t)), geneve.ReasonInnerMismatch},
	}
	covered := map[geneve.Reason]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, payload, _, err := geneve.Decode(tc.b)
			if err == nil {
				t.Fatalf("Decode succeeded, want %v", tc.want)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			var r geneve.Reason
			if !errors.As(err, &r) || r != tc.want {
				t.Errorf("err = %#v is not the Reason %v", err, tc.want)
			}
			if h != nil || payload != nil {
				t.Errorf("on error h and payload must be nil, got %d and %d bytes", len(h), len(payload))
			}
			covered[tc.want] = true
		})
	}
	for r := geneve.Reason(1); r < geneve.NumReasons; r++ {
		if !covered[r] {
			t.Errorf("no test input produces %v", r)
		}
	}
}

var snakeCase = regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)

func TestReasonString(t *testing.T) {
	seen := map[string]geneve.Reason{}
	for r := geneve.Reason(1); r < geneve.NumReasons; r++ {
		s := r.String()
		if s == "unknown" || !snakeCase.MatchString(s) {
			t.Errorf("Reason(%d).String() = %q, want a snake_case label", r, s)
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("Reasons %d and %d share the label %q", prev, r, s)
		}
		seen[s] = r
		if got, want := r.Error(), "geneve: "+s; got != want {
			t.Errorf("Reason(%d).Error() = %q, want %q", r, got, want)
		}
	}
	for _, r := range []geneve.Reason{0, geneve.NumReasons, 255} {
		if s := r.String(); s != "unknown" {
			t.Errorf("Reason(%d).String() = %q, want unknown", r, s)
		}
	}
}

func TestOptionsNext(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    []byte
	}{
		{"empty", nil},
		{"three bytes", []byte{1, 8, 1}},
		{"length past end", []byte{1, 8, 1, 2, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, rest, err := geneve.Options(tc.o).Next()
			if err != geneve.ReasonOptionOverrun || o != nil || rest != nil {
				t.Errorf("Next = %v, %v, %v; want nil, nil, %v", o, rest, err, geneve.ReasonOptionOverrun)
			}
		})
	}
	// The R bits next to the length are not part of it.
	area := []byte{0xab, 0xcd, 0x85, 0xe1, 1, 2, 3, 4, 9, 9}
	o, rest, err := geneve.Options(area).Next()
	if err != nil {
		t.Fatal(err)
	}
	if o.Class() != 0xabcd || o.Type() != 0x85 || !o.Critical() || !bytes.Equal(o.Data(), []byte{1, 2, 3, 4}) ||
		!bytes.Equal(rest, []byte{9, 9}) {
		t.Errorf("Next = class %#x type %#x crit %v data % x rest % x", o.Class(), o.Type(), o.Critical(), o.Data(), rest)
	}
}

func TestAppendAWSHeader(t *testing.T) {
	prefix := []byte("0123456789abcdefghijklmnopqr") // e.g. room for the outer headers
	b := geneve.AppendAWSHeader(append([]byte(nil), prefix...), geneve.ProtoIPv6, testAWS)
	if !bytes.HasPrefix(b, prefix) {
		t.Fatalf("prefix overwritten")
	}
	h := geneve.Header(b[len(prefix):])
	want := []byte{
		0x08, 0x00, 0x86, 0xdd, 0, 0, 0, 0, // opt len 8 words, version 0, no flags, VNI 0
		0x01, 0x08, 0x01, 0x02, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
		0x01, 0x08, 0x02, 0x02, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
		0x01, 0x08, 0x03, 0x01, 0xde, 0xad, 0xbe, 0xef,
	}
	if !bytes.Equal(h, want) {
		t.Errorf("AppendAWSHeader =\n% x\nwant\n% x", []byte(h), want)
	}
	// AppendAWSOptions alone is the options area.
	if got := geneve.AppendAWSOptions(nil, testAWS); !bytes.Equal(got, want[8:]) {
		t.Errorf("AppendAWSOptions = % x", got)
	}
	// Built from parts by AppendHeader it is the same.
	if got := geneve.AppendHeader(nil, geneve.ProtoIPv6, 0, geneve.AppendAWSOptions(nil, testAWS)); !bytes.Equal(got, want) {
		t.Errorf("AppendHeader(AppendAWSOptions) = % x", got)
	}
}

func TestAppendHeaderVNI(t *testing.T) {
	h := geneve.Header(geneve.AppendHeader(nil, geneve.ProtoEthernet, 0x123456, []byte{0, 1, 2, 0}))
	want := []byte{0x01, 0x00, 0x65, 0x58, 0x12, 0x34, 0x56, 0x00, 0, 1, 2, 0}
	if !bytes.Equal(h, want) {
		t.Errorf("AppendHeader = % x, want % x", []byte(h), want)
	}
	if h.VNI() != 0x123456 || h.Len() != 12 || h.OptionsLen() != 4 {
		t.Errorf("VNI %#x Len %d OptionsLen %d", h.VNI(), h.Len(), h.OptionsLen())
	}
}
