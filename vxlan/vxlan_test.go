package vxlan_test

import (
	"bytes"
	"errors"
	"testing"

	"weir/vxlan"
)

func TestDecode(t *testing.T) {
	frame := innerFrame(t, 32)
	good := datagram(5569041, frame)
	withHeader := func(h ...byte) []byte { return append(h, frame...) }

	for _, tc := range []struct {
		name     string
		b        []byte
		want     error
		flags    uint8
		vni      uint32
		reserved bool
	}{
		{name: "aws", b: good, flags: 0x08, vni: 5569041},
		{name: "vni zero", b: datagram(0, frame), flags: 0x08, vni: 0},
		{name: "vni max", b: datagram(vxlan.MaxVNI, frame), flags: 0x08, vni: vxlan.MaxVNI},
		{name: "shortest frame", b: datagram(7, frame[:14]), flags: 0x08, vni: 7},
		{name: "arp", b: datagram(100, arpFrame(t)), flags: 0x08, vni: 100},
		// Reserved bits are accepted and reported.
		{name: "reserved flags", b: withHeader(0xff, 0, 0, 0, 0, 0, 11, 0), flags: 0xff, vni: 11, reserved: true},
		{name: "reserved flag G", b: withHeader(0x88, 0, 0, 0, 0, 0, 11, 0), flags: 0x88, vni: 11, reserved: true},
		{name: "reserved byte 1", b: withHeader(0x08, 0x01, 0, 0, 0, 0, 11, 0), flags: 0x08, vni: 11, reserved: true},
		{name: "reserved bytes 2-3", b: withHeader(0x08, 0, 0xd1, 0xf2, 0, 0, 11, 0), flags: 0x08, vni: 11, reserved: true},
		{name: "reserved last byte", b: withHeader(0x08, 0, 0, 0, 0, 0, 11, 0x01), flags: 0x08, vni: 11, reserved: true},
		{name: "suricata non-zero reserved", b: withHeader(0xff, 0x01, 0xd1, 0xf2, 0, 0, 0x0b, 0), flags: 0xff, vni: 11, reserved: true},
		// The VNI is the three bytes after the first word, not the last byte.
		{name: "vni bytes", b: withHeader(0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0x99), flags: 0x08, vni: 0xabcdef, reserved: true},

		{name: "nil", b: nil, want: vxlan.ReasonEmpty},
		{name: "empty", b: []byte{}, want: vxlan.ReasonEmpty},
		{name: "one byte", b: good[:1], want: vxlan.ReasonTruncated},
		{name: "seven bytes", b: good[:7], want: vxlan.ReasonTruncated},
		{name: "header only", b: good[:8], want: vxlan.ReasonNoFrame},
		{name: "13-byte frame", b: good[:8+13], want: vxlan.ReasonNoFrame},
		{name: "I flag clear", b: withHeader(0x00, 0, 0, 0, 0, 0, 11, 0), want: vxlan.ReasonNoVNIFlag},
		{name: "other flags only", b: withHeader(0xf7, 0xff, 0xff, 0xff, 0, 0, 11, 0xff), want: vxlan.ReasonNoVNIFlag},
		{name: "I flag clear and short", b: []byte{0, 0, 0, 0, 0, 0, 1, 0}, want: vxlan.ReasonNoVNIFlag},
		{name: "truncated before flag check", b: []byte{0, 0, 0}, want: vxlan.ReasonTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := bytes.Clone(tc.b)
			h, f, err := vxlan.Decode(tc.b)
			if !bytes.Equal(orig, tc.b) {
				t.Fatal("Decode modified its input")
			}
			if tc.want != nil {
				if err != tc.want {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if h != nil || f != nil {
					t.Fatalf("error with header %x, frame %d bytes", []byte(h), len(f))
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(h) != vxlan.HeaderLen || !bytes.Equal(h, tc.b[:8]) || !bytes.Equal(f, tc.b[8:]) {
				t.Fatalf("split %d+%d of %d bytes", len(h), len(f), len(tc.b))
			}
			if &f[0] != &tc.b[8] {
				t.Errorf("frame does not alias the datagram")
			}
			if h.Flags() != tc.flags || !h.HasVNI() || h.VNI() != tc.vni || h.ReservedNonZero() != tc.reserved {
				t.Errorf("flags %#02x HasVNI %v VNI %d reserved %v; want %#02x true %d %v",
					h.Flags(), h.HasVNI(), h.VNI(), h.ReservedNonZero(), tc.flags, tc.vni, tc.reserved)
			}
		})
	}
}

func TestAppendHeader(t *testing.T) {
	for _, tc := range []struct {
		vni  uint32
		want []byte
	}{
		{0, []byte{0x08, 0, 0, 0, 0, 0, 0, 0}},
		{5569041, []byte{0x08, 0, 0, 0, 0x54, 0xfa, 0x11, 0}},
		{vxlan.MaxVNI, []byte{0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0}},
		// Only the low 24 bits are written.
		{0xff000001, []byte{0x08, 0, 0, 0, 0, 0, 1, 0}},
	} {
		prefix := []byte{0xaa, 0xbb}
		got := vxlan.AppendHeader(bytes.Clone(prefix), tc.vni)
		if !bytes.Equal(got[:2], prefix) || !bytes.Equal(got[2:], tc.want) {
			t.Errorf("AppendHeader(%#x) = % x, want aa bb % x", tc.vni, got, tc.want)
		}
		h := vxlan.Header(got[2:])
		if h.Flags() != vxlan.FlagVNI || !h.HasVNI() || h.ReservedNonZero() || h.VNI() != tc.vni&vxlan.MaxVNI {
			t.Errorf("AppendHeader(%#x): flags %#x VNI %#x reserved %v", tc.vni, h.Flags(), h.VNI(), h.ReservedNonZero())
		}
	}
}

// TestRoundTrip encodes every 24-bit boundary VNI and a spread of others and decodes
// them back.
func TestRoundTrip(t *testing.T) {
	frame := innerFrame(t, 0)
	for i := 0; i < 24; i++ {
		for _, vni := range []uint32{1 << i, 1<<i - 1, 1<<i + 1, 0x555555 & (1<<(i+1) - 1)} {
			vni &= vxlan.MaxVNI
			h, f, err := vxlan.Decode(datagram(vni, frame))
			if err != nil || h.VNI() != vni || !bytes.Equal(f, frame) || h.ReservedNonZero() {
				t.Fatalf("VNI %#x: err %v, decoded %#x", vni, err, h.VNI())
			}
		}
	}
}

func TestReason(t *testing.T) {
	seen := map[string]bool{}
	for r := vxlan.Reason(1); r < vxlan.NumReasons; r++ {
		s := r.String()
		if s == "unknown" || s == "" || seen[s] {
			t.Errorf("reason %d: label %q", r, s)
		}
		seen[s] = true
		for _, c := range s {
			if (c < 'a' || c > 'z') && c != '_' {
				t.Errorf("reason %d: label %q is not snake_case", r, s)
			}
		}
		if r.Error() != "vxlan: "+s {
			t.Errorf("reason %d: Error() = %q", r, r.Error())
		}
		var err error = r
		var got vxlan.Reason
		if !errors.As(err, &got) || got != r {
			t.Errorf("errors.As(%v) = %v", r, got)
		}
	}
	if vxlan.Reason(0).String() != "unknown" || vxlan.NumReasons.String() != "unknown" || vxlan.Reason(200).String() != "unknown" {
		t.Errorf("out-of-range reasons must be \"unknown\"")
	}
	want := map[vxlan.Reason]string{
		vxlan.ReasonEmpty: "empty", vxlan.ReasonTruncated: "truncated",
		vxlan.ReasonNoVNIFlag: "no_vni_flag", vxlan.ReasonNoFrame: "no_frame",
	}
	if len(want) != int(vxlan.NumReasons)-1 {
		t.Fatalf("%d reasons, the test knows %d", vxlan.NumReasons-1, len(want))
	}
	for r, s := range want {
		if r.String() != s {
			t.Errorf("%d: %q, want %q", r, r.String(), s)
		}
	}
}
