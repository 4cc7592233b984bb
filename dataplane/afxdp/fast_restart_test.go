package afxdp

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"weir/dataplane/packet"
	"weir/geneve"
)

// TestFastPathRestartedFlow: a SYN on a closing flow (the client reusing its
// port for a new connection) ends the old flow in the table and starts a new
// one with the same 5-tuple. The old flow's keys must not go on answering the
// new connection's packets: those would be credited to the ended flow (and
// lost) instead of counted on the new one. Every packet sent must be in
// exactly one record.
func TestFastPathRestartedFlow(t *testing.T) {
	r := newFastRig(t)
	c2s := fastInner{proto: layers.IPProtocolTCP, src: fastClient, dst: fastServer, sport: 31000, dport: 443}
	s2c := c2s.reversed()
	syn, synAck := c2s, s2c
	syn.syn, synAck.syn = true, true
	ex := func(p fastInner) { r.exchange(p) }

	ex(syn)
	ex(synAck)
	for range FastAfter {
		ex(c2s)
	}
	ex(s2c)
	r.waitFast("the flow's keys in", func(s FastStats) bool { return s.Flows == 1 && s.Added == 1 })
	// Wait until both keys answer.
	deadline := time.Now().Add(3 * time.Second)
	for {
		b := r.xdpCounters()
		ex(s2c)
		if a := r.xdpCounters(); a.FastPath > b.FastPath {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server's packets never took the fast path")
		}
		time.Sleep(20 * time.Millisecond)
	}
	fin := c2s
	fin.fin = true
	ex(fin) // closing: the keys stay

	// The client opens a new connection on the same port.
	ex(syn)
	ex(synAck)
	before := r.xdpCounters()
	for i := range 20 {
		if i%2 == 0 {
			ex(c2s)
		} else {
			ex(s2c)
		}
	}
	fast := r.xdpCounters().FastPath - before.FastPath
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	r.table.Flush(time.Now().UnixNano())
	r.mu.Lock()
	defer r.mu.Unlock()
	// The old flow's record is written when the SYN ends it; the new one's at
	// the flush: the SYN, the SYN-ACK and the 20 packets after them.
	if len(r.ended) != 2 {
		t.Fatalf("%d records, want 2", len(r.ended))
	}
	if rec := r.ended[1]; rec.PktsToServer != 11 || rec.PktsToClient != 11 {
		t.Errorf("the new connection's record counts %d/%d packets, want 11/11 (%d of its packets answered by the old flow's keys)",
			rec.PktsToServer, rec.PktsToClient, fast)
	}
}

// TestFastPathEndedFlowCounts: a flow that ends in the table while the
// program answers it (here a SYN restarting it; an eviction from a full table
// is alike) loses from its record every packet the program answered since the
// last read: the record is written at the end, and the credit that comes at
// the next read finds the flow gone. The README promises "each time the
// counts since the last read are credited first".
func TestFastPathEndedFlowCounts(t *testing.T) {
	r := newFastRig(t)
	c2s := fastInner{proto: layers.IPProtocolTCP, src: fastClient, dst: fastServer, sport: 32000, dport: 443}
	s2c := c2s.reversed()
	syn, synAck := c2s, s2c
	syn.syn, synAck.syn = true, true
	n := 0
	ex := func(p fastInner) { r.exchange(p); n++ }
	ex(syn)
	ex(synAck)
	for range FastAfter {
		ex(c2s)
	}
	r.waitFast("the flow's key in", func(s FastStats) bool { return s.Flows == 1 })
	before := r.xdpCounters()
	for range 10 {
		ex(c2s)
	}
	if a := r.xdpCounters(); a.FastPath-before.FastPath != 10 {
		t.Fatalf("%d answered in XDP, want 10", a.FastPath-before.FastPath)
	}
	fin := c2s
	fin.fin = true
	ex(fin)
	r.exchange(syn) // ends it: the new flow's
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ended) != 1 {
		t.Fatalf("%d records, want the old flow's", len(r.ended))
	}
	if rec := r.ended[0]; rec.PktsToServer+rec.PktsToClient != uint64(n) {
		t.Errorf("the old flow's record counts %d packets, want all %d", rec.PktsToServer+rec.PktsToClient, n)
	}
}

// fastMalformedRig is a rig with a TCP flow in the fast path, and sendNoReply
// checks that the program does not answer datagram d.
func fastMalformedRig(t *testing.T, sport uint16) (*fastRig, fastInner, []byte) {
	r := newFastRig(t)
	c2s := fastInner{proto: layers.IPProtocolTCP, src: fastClient, dst: fastServer, sport: sport, dport: 443}
	s2c := c2s.reversed()
	syn, synAck := c2s, s2c
	syn.syn, synAck.syn = true, true
	r.exchange(syn, synAck)
	for range FastAfter {
		r.exchange(c2s)
	}
	r.waitFast("the flow's key in", func(s FastStats) bool { return s.Flows == 1 })
	r.exchange(c2s) // answered in XDP
	hdr := geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 0xe1, AttachmentID: 9, FlowCookie: 7})
	return r, c2s, hdr
}

func (r *fastRig) sendNoReply(name string, d []byte) {
	t := r.t
	t.Helper()
	var p packet.Packet
	if _, inner, _, err := geneve.Decode(d); err == nil && p.Decode(inner) == nil {
		t.Fatalf("%s: the pipeline would take it", name)
	}
	before := r.xdpCounters()
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(applianceAddr, geneve.Port))
	if _, err := r.send.WriteTo(d, to); err != nil {
		t.Fatal(err)
	}
	r.recv.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 9000)
	if _, err := r.recv.Read(buf); err == nil {
		t.Errorf("%s: answered (fast path %d)", name, r.xdpCounters().FastPath-before.FastPath)
	}
}

// TestFastPathMalformed: a datagram of a fast-path flow whose inner packet
// the pipeline refuses as malformed (a TCP data offset under 5 or past the
// packet, set by the client itself through GWLB) must not be answered: user
// space drops it and counts it in weir_decode_errors_total.
func TestFastPathMalformed(t *testing.T) {
	r, c2s, hdr := fastMalformedRig(t, 33000)
	for _, off := range []byte{0x40, 0xf0} {
		in := c2s.bytes(t)
		in[20+12] = off
		r.sendNoReply(fmt.Sprintf("tcp data offset %d", off>>4), append(append([]byte(nil), hdr...), in...))
	}
}

// TestFastPathMalformedGeneve: likewise a GENEVE header whose later option
// runs past the options area (geneve.ReasonOptionOverrun): the program checks
// the first option only.
func TestFastPathMalformedGeneve(t *testing.T) {
	r, c2s, hdr := fastMalformedRig(t, 33001)
	d := append([]byte(nil), hdr...)
	d[8+12+3] = 0x1f // the second option claims 31 words
	r.sendNoReply("option overrun", append(d, c2s.bytes(t)...))
}
