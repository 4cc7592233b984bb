package detect

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"weir/dataplane"
	"weir/dataplane/detect/intel"
	"weir/dataplane/detect/rules"
	"weir/dataplane/flow"
	"weir/dataplane/policy"
)

const rc, rs = "10.0.0.1", "192.0.2.80"

// nocase on a content with a byte >= 0x80: bytes.ToLower decodes UTF-8 and changes
// the pattern (C3 80 "À" -> C3 A0 "à"; FF -> EF BF BD), so it never matches itself.
func TestNocaseNonASCII(t *testing.T) {
	h := newHarness(t, `alert udp any any -> any any (msg:"a"; content:"|C3 80|abc"; nocase; sid:1;)
alert udp any any -> any any (msg:"b"; content:"|FF|xyz"; nocase; sid:2;)`, Options{})
	x := h.udp(rc, rs, 40000, 9999)
	if got := x.dgram(true, []byte("--\xC3\x80ABC--")); len(got) != 1 {
		t.Errorf("C3 80 abc nocase: alerts %v, want [1]", got)
	}
	if got := x.dgram(true, []byte("--\xFFXYZ--")); len(got) != 1 {
		t.Errorf("FF xyz nocase: alerts %v, want [2]", got)
	}
}

// A rule whose only content is negated matches a packet with no payload (the
// handshake's ACK): inline in ips mode it blocks every flow it applies to.
func TestNegatedOnlyEmptyPayload(t *testing.T) {
	h := newHarness(t, `drop tcp any any -> any 22 (msg:"not ssh"; flow:to_server,established; content:!"SSH-"; depth:4; sid:1;)`,
		Options{Mode: ModeIPS})
	x := h.tcp(rc, rs, 40000, 22)
	x.seg(true, "S", nil)
	x.seg(false, "SA", nil)
	got := x.seg(true, "A", nil)
	if len(got) != 0 || !h.passed {
		t.Errorf("bare ACK: alerts %v, passed %v; Suricata needs a payload for a content rule", got, h.passed)
	}
	got = x.seg(true, "PA", []byte("SSH-2.0-OpenSSH\r\n"))
	if len(got) != 0 || !h.passed {
		t.Errorf("SSH banner: alerts %v, passed %v", got, h.passed)
	}
}

// Suricata: isnotset,a|b is true when any of a, b is not set (FlowbitOrNotset).
func TestIsnotsetOr(t *testing.T) {
	h := newHarness(t, `alert udp any any -> any any (msg:"set a"; content:"A"; flowbits:set,a; flowbits:noalert; sid:1;)
alert udp any any -> any any (msg:"a or b not set"; content:"X"; flowbits:isnotset,a|b; sid:2;)`, Options{})
	x := h.udp(rc, rs, 40000, 9999)
	x.dgram(true, []byte("A"))
	if got := x.dgram(true, []byte("X")); len(got) != 1 {
		t.Errorf("a set, b not: alerts %v, want [2] (b is not set)", got)
	}
}

// Suricata's noalert only clears the alert action: a drop rule with noalert still drops.
func TestNoalertDrop(t *testing.T) {
	h := newHarness(t, `drop udp any any -> any any (msg:"silent drop"; content:"bad"; flowbits:noalert; sid:1;)`, Options{Mode: ModeIPS})
	x := h.udp(rc, rs, 40000, 9999)
	x.dgram(true, []byte("bad"))
	if h.passed {
		t.Errorf("drop+noalert: packet passed")
	}
}

// rules.Rule says a rule held back by detection_filter sets no flowbits either.
func TestDetectionFilterSetsFlowbits(t *testing.T) {
	h := newHarness(t, `alert udp any any -> any any (msg:"a"; content:"a"; flowbits:set,x; detection_filter:track by_src, count 3, seconds 60; sid:1;)
alert udp any any -> any any (msg:"b"; content:"b"; flowbits:isset,x; sid:2;)`, Options{})
	x := h.udp(rc, rs, 40000, 9999)
	if got := x.dgram(true, []byte("a")); len(got) != 0 {
		t.Fatalf("a: %v", got)
	}
	if got := x.dgram(true, []byte("b")); len(got) != 0 {
		t.Errorf("b: alerts %v; the held-back rule set its flowbit", got)
	}
}

// Threshold counters are keyed by rule index and survive SetEngine: after a reload
// another rule inherits them. Here a drop rule is suppressed (and does not drop)
// on its first match ever.
func TestThresholdAcrossReload(t *testing.T) {
	h := newHarness(t, `alert udp any any -> any any (msg:"old"; content:"a"; threshold:type limit, track by_src, count 1, seconds 3600; sid:1;)`,
		Options{Mode: ModeIPS})
	x := h.udp(rc, rs, 40000, 9999)
	if got := x.dgram(true, []byte("a")); len(got) != 1 {
		t.Fatalf("a: %v", got)
	}
	set, err := rules.Parse(strings.NewReader(`drop udp any any -> any any (msg:"new"; content:"b"; threshold:type limit, track by_src, count 1, seconds 3600; sid:2;)`), "t.rules", rules.DefaultVars())
	if err != nil {
		t.Fatal(err)
	}
	eng, _ := Compile(set, Options{Mode: ModeIPS}, NewFlowbits())
	h.stage.SetEngine(eng)
	y := h.udp(rc, rs, 40001, 9999)
	got := y.dgram(true, []byte("b"))
	if len(got) != 1 || h.passed {
		t.Errorf("new drop rule's first match: alerts %v, passed %v", got, h.passed)
	}
}

func intelHarness(t *testing.T, rulesText string, lists ...[2]string) *harness {
	dir := t.TempDir()
	var ls []*intel.List
	for i, l := range lists {
		p := filepath.Join(dir, string(rune('a'+i))+".txt")
		os.WriteFile(p, []byte(l[0]+"\n"), 0o644)
		il, err := intel.LoadIPs(p, "cat", l[1] == "drop")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, il)
	}
	return newHarness(t, rulesText, Options{Mode: ModeIPS, Intel: intel.NewSet(ls...)})
}

// Intel addresses are checked only on the packet that creates the flow; when that
// packet is a first fragment, detection returns before inspecting it, and the
// completing fragment's flow (found with Find) is not Created: the flow is never
// checked, never blocked.
func TestIntelFragmentBypass(t *testing.T) {
	h := intelHarness(t, "", [2]string{"192.0.2.80", "drop"})
	data := make([]byte, 100)
	ip := serialize(t, net.ParseIP(rc), net.ParseIP(rs), 64, &layers.UDP{SrcPort: 4000, DstPort: 9999}, data)
	for _, f := range fragments4(ip, 64) {
		h.send(f)
	}
	x := h.udp(rc, rs, 4000, 9999)
	x.dgram(true, []byte("next datagram"))
	if h.passed {
		t.Errorf("flow to an intel drop-listed address passes after a fragmented first datagram")
	}
}

// A source on an alert-only list hides a destination on a drop list.
func TestIntelSrcHidesDst(t *testing.T) {
	h := intelHarness(t, "", [2]string{"10.0.0.1", "alert"}, [2]string{"192.0.2.80", "drop"})
	x := h.udp(rc, rs, 4000, 9999)
	got := x.dgram(true, []byte("hello"))
	if h.passed {
		t.Errorf("dst on drop list not blocked (alerts %v)", got)
	}
}

// flow:no_stream (and dsize, which Suricata makes packet-only) should inspect the
// packet's payload: depth counts from the packet's start.
func TestNoStream(t *testing.T) {
	h := newHarness(t, `alert tcp any any -> any any (msg:"x"; flow:to_server,established,no_stream; content:"X"; depth:1; sid:1;)
alert tcp any any -> any any (msg:"y"; flow:to_server,established; dsize:4; content:"Y"; depth:1; sid:2;)`, Options{StreamDepth: 1 << 20})
	x := h.tcp(rc, rs, 40000, 80)
	x.handshake()
	x.seg(true, "PA", []byte("aaaa"))
	if got := x.seg(true, "PA", []byte("Xbbb")); len(got) != 1 {
		t.Errorf("no_stream: alerts %v, want [1]", got)
	}
	if got := x.seg(true, "PA", []byte("Yccc")); len(got) != 1 {
		t.Errorf("dsize (packet-only in Suricata): alerts %v, want [2]", got)
	}
}

// Suricata's flags:! matches unless all the named flags are set.
func TestFlagsNot(t *testing.T) {
	h := newHarness(t, `alert tcp any any -> any any (msg:"x"; flags:!SA; sid:1;)`, Options{})
	x := h.tcp(rc, rs, 40000, 80)
	if got := x.seg(true, "S", nil); len(got) != 1 {
		t.Errorf("SYN vs flags:!SA: alerts %v, want [1]", got)
	}
}

// Control for TestReviewIntelFragmentBypass: the same flow, unfragmented, is blocked.
func TestIntelControl(t *testing.T) {
	h := intelHarness(t, "", [2]string{"192.0.2.80", "drop"})
	x := h.udp(rc, rs, 4000, 9999)
	x.dgram(true, make([]byte, 100))
	x.dgram(true, []byte("next datagram"))
	if h.passed {
		t.Errorf("control: not blocked")
	}
}

// An inner flow blocked by a drop rule is enforced only in the tunnel loop, which
// inspect skips once the outer flow has matched a pass rule: a later outer packet
// matching a pass rule unblocks every blocked inner flow of the tunnel.
func TestOuterPassUnblocksInner(t *testing.T) {
	const rules = `drop tcp any any -> any 80 (msg:"inner"; content:"INNER-EVIL"; sid:1;)
pass ip 198.51.100.1 any -> any any (msg:"low ttl probe"; ttl:<5; sid:2;)`
	inner := func(flags string, data string) []byte {
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Window: 1000, SYN: flags == "S", ACK: flags != "S", PSH: flags == "PA"}
		return serialize(t, net.IPv4(10, 9, 0, 1), net.IPv4(10, 9, 0, 2), 64, tcp, []byte(data))
	}
	h := newHarness(t, rules, Options{Mode: ModeIPS})
	h.send(tunnelled(t, true, inner("S", "")))
	h.send(tunnelled(t, true, inner("PA", "x INNER-EVIL x")))
	if h.passed {
		t.Fatal("evil not dropped")
	}
	h.send(tunnelled(t, true, inner("PA", "benign")))
	if h.passed {
		t.Fatal("blocked inner flow not enforced")
	}
	probe := tunnelled(t, true, []byte{0x45}) // any GRE packet of the tunnel, TTL 3
	probe[8] = 3
	fixIPv4Checksum(probe)
	h.send(probe)
	h.send(tunnelled(t, true, inner("PA", "after pass: more of the blocked flow")))
	if h.passed {
		t.Errorf("inner flow blocked by a drop rule passes after the outer flow matched a pass rule")
	}
}

// offset/depth count from the stream's start (README), but an out-of-order segment
// is inspected as a packet with base 0: a depth-anchored content matches in the
// middle of the stream.
func TestOutOfOrderDepth(t *testing.T) {
	h := newHarness(t, `alert tcp any any -> any any (msg:"x"; flow:to_server,established; content:"GET"; depth:3; sid:1;)`,
		Options{StreamDepth: 1 << 20})
	x := h.tcp(rc, rs, 40000, 80)
	x.handshake()
	x.seg(true, "PA", []byte("hello "))
	if got := x.at(x.cseq+100, []byte("GET /x")); len(got) != 0 {
		t.Errorf("out-of-order segment at stream offset 106: alerts %v", got)
	}
}

// The reassembler's key has no scope: fragments of two GWLB endpoints (VPCs with
// overlapping addresses) are joined into one datagram, inspected, and the verdict
// applied to the completing fragment's flow.
func TestDefragAcrossScopes(t *testing.T) {
	h := newHarness(t, `alert udp any any -> any 9999 (msg:"whole"; content:"FRAGMENTED-CONTENT"; sid:1;)`, Options{})
	data := make([]byte, 200)
	copy(data[60:], "FRAGMENTED-CONTENT")
	ip := serialize(t, net.IPv4(10, 0, 0, 1), net.IPv4(192, 0, 2, 9), 64, &layers.UDP{SrcPort: 4000, DstPort: 9999}, data)
	frags := fragments4(ip, 72)
	var got []uint32
	for i, f := range frags {
		b := dataplaneBatch(f, uint64(100+i)) // each fragment from another endpoint
		h.now += 1e6
		b.Now = h.now
		n := len(h.alerts)
		h.w.Process(b)
		for _, a := range h.alerts[n:] {
			got = append(got, a.SignatureID)
		}
	}
	if len(got) != 0 {
		t.Errorf("fragments from three endpoints reassembled into one datagram: alerts %v", got)
	}
}

// A pcre takes its leftmost match only: when that lies in the kept tail (old bytes),
// a new occurrence in the segment's fresh bytes is not seen, where a content is.
// Here a detection_filter counting each new occurrence never reaches its count.
func TestPCREFreshBytes(t *testing.T) {
	h := newHarness(t, `alert tcp any any -> any any (msg:"long"; content:"0123456789"; sid:1;)
alert tcp any any -> any any (msg:"pcre"; flow:established,to_server; pcre:"/ev[i]l/"; sid:2;)
alert tcp any any -> any any (msg:"content"; flow:established,to_server; content:"bad!"; sid:3;)`, Options{StreamDepth: 1 << 20})
	x := h.tcp(rc, rs, 40000, 80)
	x.handshake()
	x.seg(true, "PA", []byte("xx evil bad!"))
	got := x.seg(true, "PA", []byte(" evil bad!"))
	if len(got) != 2 {
		t.Errorf("second segment, both patterns new: alerts %v, want [2 3]", got)
	}
}

// The side records' stream tail is sized from the engine the stage started with:
// a node started with rules without long contents (or only intel) never matches a
// content split across segments after a reload brings one in.
func TestTailAfterReload(t *testing.T) {
	h := newHarness(t, `alert tcp any any -> any any (msg:"syn"; flags:S; sid:9;)`, Options{StreamDepth: 1 << 20})
	set, err := rules.Parse(strings.NewReader(`alert tcp any any -> any any (msg:"split"; content:"SPLITCONTENT"; sid:1;)`), "t.rules", rules.DefaultVars())
	if err != nil {
		t.Fatal(err)
	}
	eng, _ := Compile(set, Options{StreamDepth: 1 << 20}, NewFlowbits())
	h.stage.SetEngine(eng)
	x := h.tcp(rc, rs, 40000, 80)
	x.handshake()
	a := x.seg(true, "PA", []byte("xxSPLIT"))
	b := x.seg(true, "PA", []byte("CONTENTxx"))
	if len(a)+len(b) != 1 {
		t.Errorf("content split across segments after reload: alerts %v %v, want one", a, b)
	}
}

// Suricata orders set-only, then set-and-read, then read-only rules; weir ranks a
// rule that reads and sets with the readers, so a chain breaks on sid order.
func TestFlowbitsChainOrder(t *testing.T) {
	h := newHarness(t, `alert udp any any -> any any (msg:"s1"; content:"A"; flowbits:set,a; flowbits:noalert; sid:1;)
alert udp any any -> any any (msg:"s2"; content:"B"; flowbits:isset,a; flowbits:set,b; flowbits:noalert; sid:20;)
alert udp any any -> any any (msg:"s3"; content:"B"; flowbits:isset,b; sid:10;)`, Options{})
	x := h.udp(rc, rs, 40000, 9999)
	x.dgram(true, []byte("A"))
	if got := x.dgram(true, []byte("B")); len(got) != 1 {
		t.Errorf("chain a -> b -> alert on one packet: alerts %v, want [10]", got)
	}
}

// With flows.midstream: drop, inline TCP picked up midstream is dropped by Track; a
// TCP flow inside a tunnel picked up midstream is forwarded, and never counts as
// established: flow:established rules never inspect it.
func TestTunnelMidstream(t *testing.T) {
	h := newHarness(t, `drop tcp any any -> any 80 (msg:"inner"; flow:established,to_server; content:"INNER-EVIL"; sid:1;)`, Options{Mode: ModeIPS})
	// As the engine makes them when inline is strict.
	h.stage.MidstreamDrop = true
	h.stage.Tunnels = flow.NewTable(flow.Config{MaxFlows: 1 << 10, SideSize: SideSize(h.stage.Engine()), SideRecord: SideRecord,
		Midstream: flow.MidstreamDrop, Logger: slog.New(slog.DiscardHandler)}, nil, nil)
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Window: 1000, ACK: true, PSH: true, Seq: 777}
	in := serialize(t, net.IPv4(10, 9, 0, 1), net.IPv4(10, 9, 0, 2), 64, tcp, []byte("x INNER-EVIL x"))
	got := h.send(tunnelled(t, true, in))
	if h.passed {
		t.Errorf("midstream inner TCP flow: alerts %v, forwarded uninspected by established rules", got)
	}
}

// A negated content anchored at the stream's start (depth) whose window lies before
// the inspected view is treated as absent: every later segment "does not start with"
// it, and the drop rule blocks a flow that did start with it.
func TestNegatedDepthLaterSegment(t *testing.T) {
	h := newHarness(t, `drop tcp any any -> any 22 (msg:"not ssh"; flow:established,to_server; content:!"SSH-"; depth:4; content:"exec"; sid:1;)`,
		Options{Mode: ModeIPS, StreamDepth: 1 << 20})
	x := h.tcp(rc, rs, 40000, 22)
	x.handshake()
	x.seg(true, "PA", []byte("SSH-2.0-OpenSSH_9.6\r\n"))
	got := x.seg(true, "PA", []byte("...exec..."))
	if len(got) != 0 || !h.passed {
		t.Errorf("SSH flow's second segment: alerts %v, passed %v", got, h.passed)
	}
}

// A flow taken over from a fleet peer (Import) has a zero side record and its first
// local packet is neither Created nor Midstream: detection never counts it
// established, so flow:established rules (and stream inspection) never run on it.
func TestImportedFlowNeverEstablished(t *testing.T) {
	h := newHarness(t, `drop tcp any any -> any 80 (msg:"x"; flow:established,to_server; content:"EVIL"; sid:1;)`,
		Options{Mode: ModeIPS})
	x := h.tcp(rc, rs, 40000, 80)
	h.table.Import(&flow.FlowState{Kind: flow.JournalCreated, ID: 12345, Proto: 6,
		Src: netip.MustParseAddr(rc), Dst: netip.MustParseAddr(rs), SrcPort: 40000, DstPort: 80,
		Start: h.now, Last: h.now, State: flow.StateEstablished, Action: policy.Allow})
	got := x.seg(true, "PA", []byte("xx EVIL xx"))
	if h.passed {
		t.Errorf("taken-over established flow: alerts %v, passed", got)
	}
}

// dataplaneBatch is a batch of one plain IP packet from GWLB endpoint endpoint.
func dataplaneBatch(ip []byte, endpoint uint64) *dataplane.Batch {
	b := dataplane.NewBatch(1)
	b.Slots[0].Buf, b.Slots[0].Inner, b.Slots[0].Encap = ip, ip, dataplane.EncapNone
	b.Slots[0].AWS.EndpointID = endpoint
	b.N = 1
	return b
}

// Trying a pcre's later matches keeps its anchors at the buffer's start.
func TestPCRERetryKeepsAnchor(t *testing.T) {
	h := newHarness(t, `alert udp any any -> any any (msg:"a"; pcre:"/^a/"; content:"b"; distance:0; within:1; sid:1;)`, Options{})
	x := h.udp(rc, rs, 40000, 9999)
	if got := x.dgram(true, []byte("aab")); len(got) != 0 {
		t.Errorf(`"aab" against /^a/ then "b" right after: alerts %v, want none`, got)
	}
	if got := x.dgram(true, []byte("ab")); len(got) != 1 {
		t.Errorf(`"ab": alerts %v, want [1]`, got)
	}
}

// A partial retransmission whose old bytes differ from the stream's: packet-only
// rules (dsize) still see its payload.
func TestDsizeRuleOverlapPayloadScanned(t *testing.T) {
	h := newHarness(t, `alert tcp any any -> any any (msg:"x"; content:"EVIL"; dsize:60; sid:1;)`, Options{StreamDepth: 1 << 20})
	x := h.tcp(rc, rs, 40000, 80)
	x.handshake()
	start := x.cseq
	x.seg(true, "PA", []byte(strings.Repeat("A", 50)))
	seg := []byte("EVIL" + strings.Repeat("B", 46) + strings.Repeat("C", 10))
	if got := x.at(start, seg); len(got) != 1 {
		t.Errorf("60-byte segment holding EVIL, 50 of its bytes overlapping: alerts %v, want [1]", got)
	}
}

// A pcre reads each byte of binary payload as one character, as PCRE does, and
// relative matches after it land on the right byte.
func TestPCREBytes(t *testing.T) {
	h := newHarness(t, `alert udp any any -> any 1 (msg:"dot"; pcre:"/a.b/"; sid:1;)
alert udp any any -> any 2 (msg:"rel"; pcre:"/x.y/"; content:"Z"; distance:0; within:1; sid:2;)`, Options{})
	send := func(port uint16, data string) []uint32 { return h.udp(rc, rs, 4000, port).dgram(true, []byte(data)) }
	got := sids(send(1, "a\xffb"), send(1, "a\xc3\xa9b"), send(2, "\xe9x\xffyZ"), send(2, "\xe9x\xffy-Z"))
	if want := [][]uint32{{1}, nil, {2}, nil}; !equalSteps(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
}
