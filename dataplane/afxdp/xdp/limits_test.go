package xdp

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"
)

// TestDestinations runs the destination filters: only tunnel traffic to the
// configured address is steered, the rest passed as not ours, and the
// allow list is not consulted for GENEVE that is not ours.
func TestDestinations(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("2001:db8::2")
	dot1q := []layers.EthernetType{layers.EthernetTypeDot1Q}
	type packet struct {
		name    string
		pkt     pktOpts
		counter Counter
	}
	for _, tc := range []struct {
		name              string
		geneveDst, vxDst  netip.Addr
		packets           []packet
		allowListDisabled bool
	}{
		{name: "geneve ipv4", geneveDst: v4, packets: []packet{
			{"to it", pktOpts{src: allowedSrc, dstPort: 6081}, CounterNoSocket},
			{"to it behind a tag", pktOpts{src: allowedSrc, dstPort: 6081, vlans: dot1q}, CounterNoSocket},
			{"to it, source denied", pktOpts{src: deniedSrc, dstPort: 6081}, CounterDroppedSource},
			{"to its neighbour", pktOpts{src: allowedSrc, dst: "10.9.9.8", dstPort: 6081}, CounterPassed},
			{"to another, source denied", pktOpts{src: deniedSrc, dst: "10.9.9.10", dstPort: 6081}, CounterPassed},
			{"first byte differs", pktOpts{src: allowedSrc, dst: "11.9.9.9", dstPort: 6081}, CounterPassed},
			{"ipv6", pktOpts{src: "2001:db8::1", dstPort: 6081}, CounterPassed},
			{"ipv6 to the mapped address", pktOpts{src: "2001:db8::1", dst: "::ffff:10.9.9.9", dstPort: 6081}, CounterPassed},
			{"vxlan anywhere", pktOpts{src: deniedSrc, dst: "10.9.9.10", dstPort: 4789}, CounterNoSocket},
			{"other udp to it", pktOpts{src: allowedSrc, dstPort: 53}, CounterPassed},
		}},
		{name: "vxlan ipv6", vxDst: v6, packets: []packet{
			{"to it", pktOpts{src: "2001:db8::1", dstPort: 4789}, CounterNoSocket},
			{"to it behind a tag", pktOpts{src: "2001:db8::1", dstPort: 4789, vlans: dot1q}, CounterNoSocket},
			// One address differing in each of the four compared words.
			{"word 0 differs", pktOpts{src: "2001:db8::1", dst: "2001:db9::2", dstPort: 4789}, CounterPassed},
			{"word 1 differs", pktOpts{src: "2001:db8::1", dst: "2001:db8:1::2", dstPort: 4789}, CounterPassed},
			{"word 2 differs", pktOpts{src: "2001:db8::1", dst: "2001:db8:0:0:1::2", dstPort: 4789}, CounterPassed},
			{"word 3 differs", pktOpts{src: "2001:db8::1", dst: "2001:db8::3", dstPort: 4789}, CounterPassed},
			{"ipv4", pktOpts{src: allowedSrc, dstPort: 4789}, CounterPassed},
			{"geneve anywhere", pktOpts{src: "2001:db8::1", dst: "2001:db8::3", dstPort: 6081}, CounterNoSocket},
		}, allowListDisabled: true},
		{name: "both, crossed families", geneveDst: netip.MustParseAddr("2001:db8::2"), vxDst: netip.MustParseAddr("10.9.9.9"), packets: []packet{
			{"geneve ipv6 to it", pktOpts{src: "2001:db8::1", dstPort: 6081}, CounterNoSocket},
			{"geneve ipv4", pktOpts{src: allowedSrc, dstPort: 6081}, CounterPassed},
			{"vxlan ipv4 to it", pktOpts{src: deniedSrc, dstPort: 4789}, CounterNoSocket},
			{"vxlan ipv6", pktOpts{src: "2001:db8::1", dstPort: 4789}, CounterPassed},
		}, allowListDisabled: true},
		{name: "unspecified means any", geneveDst: netip.IPv4Unspecified(), vxDst: netip.IPv6Unspecified(), packets: []packet{
			{"geneve", pktOpts{src: allowedSrc, dst: "10.1.1.1", dstPort: 6081}, CounterNoSocket},
			{"geneve ipv6", pktOpts{src: "2001:db8::1", dstPort: 6081}, CounterNoSocket},
			{"vxlan", pktOpts{src: allowedSrc, dst: "10.1.1.1", dstPort: 4789}, CounterNoSocket},
		}, allowListDisabled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testCfg
			cfg.GeneveDst, cfg.VXLANDst = tc.geneveDst, tc.vxDst
			if tc.allowListDisabled {
				cfg.AllowedSources = nil
			}
			l := load(t, cfg)
			for _, p := range tc.packets {
				pkt := buildPacket(t, p.pkt)
				rc, c := l.run(t, pkt)
				wantRC := uint32(actionPass)
				if p.counter == CounterDroppedSource {
					wantRC = actionDrop
				}
				if rc != wantRC || c != p.counter {
					t.Errorf("%s: action %d counter %d, want %d %d", p.name, rc, c, wantRC, p.counter)
				}
				if mrc, mc := model(pkt, cfg); mrc != rc || mc != c {
					t.Errorf("%s: model says %d %d, kernel %d %d", p.name, mrc, mc, rc, c)
				}
			}
		})
	}
}

// linearMax is the most a test run puts in the first buffer: a page less
// XDP_PACKET_HEADROOM (256) and the aligned struct skb_shared_info (320 on
// 64-bit). Longer data is split into page fragments, whether or not the
// program has the frags flag.
const linearMax = 4096 - 256 - 320

// xdpMD is struct xdp_md, for reading back where data_end ended up.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// runBuffers runs pkt and returns the action, the counter moved and the
// length of the first buffer as the program saw it.
func (l *loaded) runBuffers(t *testing.T, pkt []byte) (uint32, Counter, int) {
	t.Helper()
	in, out := xdpMD{DataEnd: uint32(len(pkt))}, xdpMD{}
	if _, err := l.prog.Run(&ebpf.RunOptions{Data: pkt, Context: in, ContextOut: &out}); err != nil {
		t.Fatalf("run %d bytes with a context: %v", len(pkt), err)
	}
	rc, c := l.run(t, pkt)
	return rc, c, int(out.DataEnd - out.Data)
}

// TestOversize runs the MaxFrame limit on single-buffer packets, for both
// ways of measuring and with the allow list on and off (each a path of its
// own to the redirect): the limit is inclusive, applies to both tunnels,
// and only to steered packets.
func TestOversize(t *testing.T) {
	for _, mode := range []struct{ frags, open bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		frags := mode.frags
		cfg := testCfg
		cfg.Frags = frags
		if mode.open {
			cfg.AllowedSources = nil
		}
		cfg.MaxFrame = 200
		cfg.GeneveDst = netip.MustParseAddr("10.9.9.9")
		l := load(t, cfg)
		headers := ethHeaderLen + ipv4MinLen + udpHeaderLen
		for _, tc := range []struct {
			name    string
			pkt     pktOpts
			counter Counter
		}{
			{"geneve at the limit", pktOpts{src: allowedSrc, dstPort: 6081, payload: 200 - headers}, CounterNoSocket},
			{"geneve a byte over", pktOpts{src: allowedSrc, dstPort: 6081, payload: 201 - headers}, CounterPassedOversize},
			{"ipv6 vxlan over", pktOpts{src: "2001:db8::1", dstPort: 4789, payload: 1000}, CounterPassedOversize},
			{"vxlan at the limit", pktOpts{src: allowedSrc, dstPort: 4789, payload: 200 - headers}, CounterNoSocket},
			{"jumbo geneve", pktOpts{src: allowedSrc, dstPort: 6081, payload: 3000}, CounterPassedOversize},
			// Not steered at all: the limit does not apply.
			{"other udp over", pktOpts{src: allowedSrc, dstPort: 53, payload: 1000}, CounterPassed},
			{"geneve to another address over", pktOpts{src: allowedSrc, dst: "10.9.9.8", dstPort: 6081, payload: 1000}, CounterPassed},
			{"denied source over", pktOpts{src: deniedSrc, dstPort: 6081, payload: 1000}, CounterDroppedSource},
			{"fragment over", pktOpts{src: allowedSrc, dstPort: 6081, moreFrag: true, payload: 1000}, CounterPassedFragment},
		} {
			pkt := buildPacket(t, tc.pkt)
			rc, c, first := l.runBuffers(t, pkt)
			if first != len(pkt) {
				t.Fatalf("%+v, %s: first buffer %d of %d bytes; this test wants one buffer", mode, tc.name, first, len(pkt))
			}
			want := tc.counter
			if mode.open && want == CounterDroppedSource {
				want = CounterPassedOversize
			}
			if c != want {
				t.Errorf("%+v, %s (%d bytes): counter %d, want %d", mode, tc.name, len(pkt), c, want)
			}
			if mrc, mc := model(pkt, cfg); mrc != rc || mc != c {
				t.Errorf("%+v, %s: model says %d %d, kernel %d %d", mode, tc.name, mrc, mc, rc, c)
			}
		}
	}
}

// TestNoLimit: MaxFrame 0 steers the longest single-buffer frame.
func TestNoLimit(t *testing.T) {
	for _, frags := range []bool{false, true} {
		cfg := testCfg
		cfg.Frags = frags
		l := load(t, cfg)
		pkt := buildPacket(t, pktOpts{src: allowedSrc, dstPort: 6081, payload: linearMax - 42})
		if rc, c, first := l.runBuffers(t, pkt); rc != actionPass || c != CounterNoSocket || first != linearMax {
			t.Errorf("frags %v: %d bytes got %d %d with a first buffer of %d, want steered in one buffer", frags, len(pkt), rc, c, first)
		}
	}
}

// TestMultiBuffer runs packets longer than a page, which the kernel's test
// run splits into a first buffer of linearMax bytes and page fragments. The
// Frags program measures all of them; the other sees the first buffer only,
// which is why it must not be attached where packets can be multi-buffer
// (native XDP refuses it there: see TestVethJumbo).
func TestMultiBuffer(t *testing.T) {
	// A UMEM frame less XDP_PACKET_HEADROOM, and a datagram of the size
	// GWLB sends with jumbo inner packets.
	const maxFrame = 4096 - 256
	jumbo := buildPacket(t, pktOpts{src: allowedSrc, dstPort: 6081, payload: 8000})
	justOver := buildPacket(t, pktOpts{src: allowedSrc, dstPort: 4789, payload: maxFrame + 1 - 42})
	atLimit := buildPacket(t, pktOpts{src: allowedSrc, dstPort: 4789, payload: maxFrame - 42})
	ipv6 := buildPacket(t, pktOpts{src: "2001:db8::1", dstPort: 4789, payload: 5000})
	notOurs := buildPacket(t, pktOpts{src: allowedSrc, dst: "10.9.9.8", dstPort: 6081, payload: 8000})
	for _, tc := range []struct {
		name    string
		frags   bool
		open    bool // no allow list
		pkt     []byte
		counter Counter
	}{
		{"jumbo geneve", true, false, jumbo, CounterPassedOversize},
		{"jumbo geneve, any source", true, true, jumbo, CounterPassedOversize},
		{"a byte over", true, false, justOver, CounterPassedOversize},
		{"at the limit in two buffers", true, false, atLimit, CounterNoSocket},
		{"ipv6 vxlan", true, false, ipv6, CounterPassedOversize},
		{"to another address", true, false, notOurs, CounterPassed},
		{"jumbo geneve without frags", false, false, jumbo, CounterNoSocket},
		{"a byte over without frags", false, false, justOver, CounterNoSocket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testCfg
			cfg.Frags, cfg.MaxFrame = tc.frags, maxFrame
			if tc.open {
				cfg.AllowedSources = nil
			}
			cfg.GeneveDst = netip.MustParseAddr("10.9.9.9")
			l := load(t, cfg)
			rc, c, first := l.runBuffers(t, tc.pkt)
			if first != linearMax || len(tc.pkt) <= linearMax {
				t.Fatalf("%d bytes ran with a first buffer of %d, want %d and fragments", len(tc.pkt), first, linearMax)
			}
			if rc != actionPass || c != tc.counter {
				t.Errorf("%d bytes: action %d counter %d, want %d %d", len(tc.pkt), rc, c, actionPass, tc.counter)
			}
		})
	}
}
