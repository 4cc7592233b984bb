package geneve_test

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"weir/geneve"
)

// FuzzDecode checks that Decode never panics, that what it accepts is consistent
// (header length, payload, options walk, AWS values, re-encoding) and that what it
// rejects comes with a known Reason. The seed corpus is testdata/fuzz/FuzzDecode,
// written by TestFuzzSeeds -update-seeds.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		h, payload, aws, err := geneve.Decode(b)
		if !bytes.Equal(b, orig) {
			t.Fatalf("Decode modified its input")
		}
		if err != nil {
			var r geneve.Reason
			if !errors.As(err, &r) || r == 0 || r >= geneve.NumReasons || r.String() == "unknown" {
				t.Fatalf("error %#v is not a known Reason", err)
			}
			if h != nil || payload != nil {
				t.Fatalf("error %v with a header or payload", err)
			}
			return
		}

		if len(h) < geneve.HeaderLen || len(h) != h.Len() || h.Version() != 0 {
			t.Fatalf("len(h) = %d, h.Len() = %d, version %d", len(h), h.Len(), h.Version())
		}
		if len(h)+len(payload) != len(b) || !bytes.Equal(h, b[:len(h)]) || !bytes.Equal(payload, b[len(h):]) {
			t.Fatalf("header (%d) and payload (%d) are not the datagram (%d) split", len(h), len(payload), len(b))
		}
		if len(payload) == 0 {
			t.Fatalf("accepted with no payload")
		}
		switch h.ProtocolType() {
		case geneve.ProtoIPv4:
			if payload[0]>>4 != 4 {
				t.Fatalf("0x0800 accepted with IP version %d", payload[0]>>4)
			}
		case geneve.ProtoIPv6:
			if payload[0]>>4 != 6 {
				t.Fatalf("0x86dd accepted with IP version %d", payload[0]>>4)
			}
		case geneve.ProtoEthernet:
			if len(payload) < 14 {
				t.Fatalf("Ethernet accepted with %d bytes", len(payload))
			}
		default:
			t.Fatalf("accepted protocol %#04x", h.ProtocolType())
		}

		// The walk covers the options area exactly, and yields the AWS values.
		var want geneve.AWS
		n := 0
		for opts := h.Options(); len(opts) > 0; {
			o, rest, err := opts.Next()
			if err != nil {
				t.Fatalf("walk after a successful Decode: %v", err)
			}
			if len(o) < 4 || len(o)+len(rest) != len(opts) {
				t.Fatalf("Next split %d bytes into %d + %d", len(opts), len(o), len(rest))
			}
			n += len(o)
			opts = rest
			if o.Class() != geneve.ClassAWS {
				continue
			}
			switch o.Type() {
			case geneve.AWSTypeEndpointID:
				want.EndpointID = beUint(o.Data()[:8])
			case geneve.AWSTypeAttachmentID:
				want.AttachmentID = beUint(o.Data()[:8])
			case geneve.AWSTypeFlowCookie:
				want.FlowCookie = uint32(beUint(o.Data()[:4]))
			default:
				continue
			}
			want.Present |= 1 << o.Type()
		}
		if n != h.OptionsLen() {
			t.Fatalf("options walk covered %d bytes of %d", n, h.OptionsLen())
		}
		if aws != want {
			t.Fatalf("AWS = %+v, the walk says %+v", aws, want)
		}

		// Re-encoding gives back the header. AppendHeader writes no flags and a zero
		// reserved byte, so with O/C (and the reserved bits) clear it is exact;
		// otherwise it is exact once those two bytes are copied over.
		re := geneve.AppendHeader(nil, h.ProtocolType(), h.VNI(), h.Options())
		if h[1] != 0 || h[7] != 0 {
			if re[1] != 0 || re[7] != 0 {
				t.Fatalf("AppendHeader wrote flags % x", re[1:2])
			}
			re[1], re[7] = h[1], h[7]
		}
		if !bytes.Equal(re, h) {
			t.Fatalf("re-encoded header\n% x\nwant\n% x", re, []byte(h))
		}

		// The reply around it is well formed (when it fits an IPv4 packet).
		if len(b) <= 0xffff-geneve.ReplyHeaderLen {
			verifyReplyChecksums(t, replyPacket(testOuter, b, 1))
		}
	})
}

func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzDecode seeds")

// fuzzSeeds are the committed seed inputs of FuzzDecode and what Decode makes of them
// (0: accepted).
func fuzzSeeds(t *testing.T) map[string]struct {
	b    []byte
	want geneve.Reason
} {
	in4 := innerIPv4(t, 24)
	in6 := innerIPv6(t, 16)
	ver := gwlbPacket(geneve.ProtoIPv4, in4[:20])
	ver[0] |= 0x40
	// The options area claims one word less than its last option needs.
	ov := append(header(geneve.ProtoIPv6, optCookie, opt{0x0001, 1, word(1, 0)}), in6...)
	ov[0]--
	return map[string]struct {
		b    []byte
		want geneve.Reason
	}{
		"valid_ipv4":       {gwlbPacket(geneve.ProtoIPv4, in4), 0},
		"valid_ipv6":       {gwlbPacket(geneve.ProtoIPv6, in6), 0},
		"valid_ethernet":   {gwlbPacket(geneve.ProtoEthernet, innerEthernet(t)), 0},
		"valid_unknown":    {append(header(geneve.ProtoIPv4, optOtherClass2, optCookie, optAWSUnknown, optEndpoint, optOtherClass), in4[:20]...), 0},
		"empty":            {[]byte{}, geneve.ReasonEmpty},
		"truncated":        {gwlbPacket(geneve.ProtoIPv4, in4)[:5], geneve.ReasonTruncated},
		"bad_version":      {ver, geneve.ReasonVersion},
		"options_past":     {gwlbPacket(geneve.ProtoIPv4, nil)[:30], geneve.ReasonOptionsLen},
		"option_overrun":   {ov, geneve.ReasonOptionOverrun},
		"bad_aws_option":   {append(header(geneve.ProtoIPv4, opt{geneve.ClassAWS, geneve.AWSTypeFlowCookie, nil}), in4[:20]...), geneve.ReasonAWSOption},
		"unknown_protocol": {gwlbPacket(0x0806, in4[:20]), geneve.ReasonProtocol},
		"no_payload":       {gwlbPacket(geneve.ProtoIPv6, nil), geneve.ReasonNoPayload},
		"inner_mismatch":   {gwlbPacket(geneve.ProtoIPv4, in6), geneve.ReasonInnerMismatch},
	}
}

// TestFuzzSeeds checks the committed seed corpus decodes as intended: every seed is
// there, valid packets are accepted and each malformed kind is rejected with its
// Reason. With -update-seeds it writes the corpus.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	seeds := fuzzSeeds(t)

	if *updateSeeds {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, s := range seeds {
			data := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.QuoteToASCII(string(s.b)))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, s := range seeds {
		t.Run(name, func(t *testing.T) {
			b, err := readCorpusFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("%v (regenerate with go test -run TestFuzzSeeds -update-seeds)", err)
			}
			if !bytes.Equal(b, s.b) {
				t.Errorf("committed seed differs from the generated one (regenerate with -update-seeds)")
			}
			_, _, _, err = geneve.Decode(b)
			if s.want == 0 && err != nil || s.want != 0 && err != s.want {
				t.Errorf("Decode = %v, want %v", err, s.want)
			}
		})
	}
}

// readCorpusFile reads a one-[]byte "go test fuzz v1" corpus file.
func readCorpusFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var lines []string
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
		!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
		return nil, fmt.Errorf("%s: not a one-[]byte go test fuzz v1 file", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return []byte(s), nil
}
