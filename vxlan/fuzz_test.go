package vxlan_test

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

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/vxlan"
)

// FuzzDecode checks that Decode never panics, that what it accepts is consistent
// (split, flags, VNI, reserved bits, re-encoding, gopacket's view) and that what it
// rejects comes with the Reason the input deserves. The seed corpus is
// testdata/fuzz/FuzzDecode, written by TestFuzzSeeds -update-seeds.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		h, frame, err := vxlan.Decode(b)
		if !bytes.Equal(b, orig) {
			t.Fatalf("Decode modified its input")
		}
		var want vxlan.Reason
		switch {
		case len(b) == 0:
			want = vxlan.ReasonEmpty
		case len(b) < vxlan.HeaderLen:
			want = vxlan.ReasonTruncated
		case b[0]&0x08 == 0:
			want = vxlan.ReasonNoVNIFlag
		case len(b) < vxlan.HeaderLen+14:
			want = vxlan.ReasonNoFrame
		}
		if err != nil {
			var r vxlan.Reason
			if !errors.As(err, &r) || r == 0 || r >= vxlan.NumReasons || r.String() == "unknown" {
				t.Fatalf("error %#v is not a known Reason", err)
			}
			if r != want {
				t.Fatalf("rejected as %v, want %v", r, want)
			}
			if h != nil || frame != nil {
				t.Fatalf("error %v with a header or frame", err)
			}
			return
		}
		if want != 0 {
			t.Fatalf("accepted, want %v", want)
		}
		if len(h) != vxlan.HeaderLen || len(frame) < 14 || !bytes.Equal(h, b[:8]) || !bytes.Equal(frame, b[8:]) {
			t.Fatalf("header (%d) and frame (%d) are not the datagram (%d) split", len(h), len(frame), len(b))
		}
		if h.Flags() != b[0] || !h.HasVNI() || h.VNI() > vxlan.MaxVNI ||
			h.VNI() != uint32(b[4])<<16|uint32(b[5])<<8|uint32(b[6]) {
			t.Fatalf("flags %#x VNI %#x from % x", h.Flags(), h.VNI(), b[:8])
		}
		re := vxlan.AppendHeader(nil, h.VNI())
		if h.ReservedNonZero() == bytes.Equal(re, h) {
			t.Fatalf("ReservedNonZero %v for % x (canonical % x)", h.ReservedNonZero(), []byte(h), re)
		}

		var g layers.VXLAN
		if err := g.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("gopacket: %v", err)
		}
		if !g.ValidIDFlag || g.VNI != h.VNI() || !bytes.Equal(g.Payload, frame) {
			t.Fatalf("gopacket I=%v VNI=%d frame %d bytes; ours VNI=%d frame %d bytes",
				g.ValidIDFlag, g.VNI, len(g.Payload), h.VNI(), len(frame))
		}
	})
}

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzDecode seeds")

// fuzzSeeds are the committed seed inputs of FuzzDecode and what Decode makes of them
// (0: accepted).
func fuzzSeeds(t *testing.T) map[string]struct {
	b    []byte
	want vxlan.Reason
} {
	frame := innerFrame(t, 24)
	reserved := datagram(11, frame)
	copy(reserved, []byte{0xff, 0x01, 0xd1, 0xf2, 0, 0, 0x0b, 0})
	noFlag := datagram(5569041, frame)
	noFlag[0] = 0
	return map[string]struct {
		b    []byte
		want vxlan.Reason
	}{
		"valid_aws":         {datagram(5569041, frame), 0},
		"valid_arp":         {datagram(100, arpFrame(t)), 0},
		"valid_min_frame":   {datagram(vxlan.MaxVNI, frame[:14]), 0},
		"reserved_non_zero": {reserved, 0},
		"empty":             {[]byte{}, vxlan.ReasonEmpty},
		"truncated":         {datagram(5569041, frame)[:7], vxlan.ReasonTruncated},
		"no_vni_flag":       {noFlag, vxlan.ReasonNoVNIFlag},
		"no_frame":          {datagram(5569041, frame)[:8+13], vxlan.ReasonNoFrame},
		"gbp_flag_only":     {[]byte{0x80, 0, 0, 0, 0, 0, 1, 0}, vxlan.ReasonNoVNIFlag},
	}
}

// TestFuzzSeeds checks the committed seed corpus decodes as intended: every seed is
// there, valid datagrams are accepted and each malformed kind is rejected with its
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
	covered := map[vxlan.Reason]bool{}
	for name, s := range seeds {
		covered[s.want] = true
		t.Run(name, func(t *testing.T) {
			b, err := readCorpusFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("%v (regenerate with go test -run TestFuzzSeeds -update-seeds)", err)
			}
			if !bytes.Equal(b, s.b) {
				t.Errorf("committed seed differs from the generated one (regenerate with -update-seeds)")
			}
			_, _, err = vxlan.Decode(b)
			if s.want == 0 && err != nil || s.want != 0 && err != s.want {
				t.Errorf("Decode = %v, want %v", err, s.want)
			}
		})
	}
	for r := vxlan.Reason(0); r < vxlan.NumReasons; r++ {
		if !covered[r] {
			t.Errorf("no seed for %v", r)
		}
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
