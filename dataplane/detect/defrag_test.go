package detect

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// fragments4 splits an IPv4 packet into fragments of at most size payload bytes
// (a multiple of 8).
func fragments4(ip []byte, size int) [][]byte {
	hl := int(ip[0]&0xf) * 4
	payload := ip[hl:]
	var out [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		f := append(append([]byte(nil), ip[:hl]...), payload[off:end]...)
		binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
		flags := uint16(off / 8)
		if end < len(payload) {
			flags |= 0x2000 // more fragments
		}
		binary.BigEndian.PutUint16(f[4:], 0x1234)
		binary.BigEndian.PutUint16(f[6:], flags)
		fixIPv4Checksum(f)
		out = append(out, f)
	}
	return out
}

// A content split over fragments matches once the datagram is whole, and dsize
// sees the whole datagram; the fragments alone raise nothing.
func TestFragmentsReassembled(t *testing.T) {
	h := newHarness(t, `alert udp any any -> any 9999 (msg:"whole"; content:"FRAGMENTED-CONTENT"; dsize:>100; sid:1;)`, Options{})
	data := make([]byte, 200)
	copy(data[60:], "FRAGMENTED-CONTENT")
	ip := serialize(t, net.IPv4(10, 0, 0, 1), net.IPv4(192, 0, 2, 9), 64, &layers.UDP{SrcPort: 4000, DstPort: 9999}, data)
	frags := fragments4(ip, 72)
	if len(frags) != 3 {
		t.Fatalf("%d fragments", len(frags))
	}
	var got [][]uint32
	for _, f := range frags {
		got = append(got, h.send(f))
	}
	if want := [][]uint32{nil, nil, {1}}; !equalSteps(got, want) {
		t.Fatalf("alerts by fragment %v, want %v", got, want)
	}
	if a := h.alerts[0]; a.FlowID == 0 || a.DstPort != 9999 {
		t.Errorf("alert %+v: want the datagram's flow and ports", a)
	}
	tot := h.stage.Totals(h.p)
	if tot.Defrag[0] != 2 || tot.Defrag[1] != 1 { // held, complete
		t.Errorf("defrag counts %v", tot.Defrag)
	}
}

// Fragments that overlap with different data: an alert, and inline in ips mode
// the conflicting fragment is dropped (the receiver then rebuilds what was
// inspected).
func TestFragmentConflict(t *testing.T) {
	for _, mode := range []Mode{ModeIPS, ModeIDS} {
		h := newHarness(t, `alert udp any any -> any 9999 (msg:"x"; content:"nothing"; sid:1;)`, Options{Mode: mode})
		data := make([]byte, 200)
		ip := serialize(t, net.IPv4(10, 0, 0, 1), net.IPv4(192, 0, 2, 9), 64, &layers.UDP{SrcPort: 4000, DstPort: 9999}, data)
		frags := fragments4(ip, 72)
		evil := append([]byte(nil), frags[0]...)
		copy(evil[40:], "EVILEVIL")
		h.send(frags[0])
		got := h.send(evil)
		if len(got) != 1 || got[0] != SIDFragmentConflict || h.passed != (mode == ModeIDS) {
			t.Errorf("mode %d: conflicting fragment: alerts %v, passed %v", mode, got, h.passed)
		}
	}
}
