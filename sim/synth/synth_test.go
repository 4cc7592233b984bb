package synth_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/dataplane/packet"
	"weir/sim/synth"
)

// conversation returns a conversation of n packets of the given protocol and family
// with random initial state.
func conversation(proto uint8, v6 bool, n int, rng *rand.Rand) *synth.Conversation {
	c := &synth.Conversation{
		Proto: proto, V6: v6, Packets: n,
		Client: netip.MustParseAddr("10.0.0.1"), Server: netip.MustParseAddr("10.1.0.2"),
		ClientPort: 40000, ServerPort: 443,
	}
	if v6 {
		c.Client, c.Server = netip.MustParseAddr("fd00:1::1"), netip.MustParseAddr("fd00:2::2")
	}
	if proto == packet.ProtoICMP || proto == packet.ProtoICMPv6 {
		c.ServerPort = 0
	}
	c.RandomizeState(rng)
	return c
}

var cases = []struct {
	name  string
	proto uint8
	v6    bool
}{
	{"tcp4", packet.ProtoTCP, false},
	{"tcp6", packet.ProtoTCP, true},
	{"udp4", packet.ProtoUDP, false},
	{"udp6", packet.ProtoUDP, true},
	{"icmp4", packet.ProtoICMP, false},
	{"icmp6", packet.ProtoICMPv6, true},
}

// decoded is one appended packet decoded with gopacket, checksums verified.
type decoded struct {
	src, dst netip.Addr
	sp, dp   uint16 // ports; for ICMP the echo identifier in sp
	flags    string // TCP flags, "S", "SA", "PA", "FA"
	seq, ack uint32 // TCP
	icmpType uint8
	icmpSeq  uint16
	payload  []byte
	id       uint16 // IPv4 identification
	label    uint32 // IPv6 flow label
}

func decode(t *testing.T, b []byte, v6 bool) decoded {
	t.Helper()
	first := layers.LayerTypeIPv4
	if v6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(b, first, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	var d decoded
	nl := p.NetworkLayer()
	if v6 {
		ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if int(ip.Length)+40 != len(b) || ip.HopLimit != 64 {
			t.Fatalf("IPv6 length %d of %d, hop limit %d", ip.Length, len(b), ip.HopLimit)
		}
		d.label = ip.FlowLabel
	} else {
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if _, v := ip.VerifyChecksum(); !v.Valid {
			t.Fatalf("bad IPv4 header checksum: %+v", v)
		}
		if int(ip.Length) != len(b) || ip.TTL != 64 || ip.Flags != layers.IPv4DontFragment || ip.IHL != 5 {
			t.Fatalf("IPv4 length %d of %d, TTL %d, flags %v, IHL %d", ip.Length, len(b), ip.TTL, ip.Flags, ip.IHL)
		}
		d.id = ip.Id
	}
	src, dst := nl.NetworkFlow().Endpoints()
	d.src, _ = netip.AddrFromSlice(src.Raw())
	d.dst, _ = netip.AddrFromSlice(dst.Raw())

	var v gopacket.ChecksumVerificationResult
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		l.SetNetworkLayerForChecksum(nl)
		_, v = l.VerifyChecksum()
		d.sp, d.dp, d.seq, d.ack, d.payload = uint16(l.SrcPort), uint16(l.DstPort), l.Seq, l.Ack, l.Payload
		for _, f := range []struct {
			on bool
			s  string
		}{{l.SYN, "S"}, {l.PSH, "P"}, {l.FIN, "F"}, {l.ACK, "A"}, {l.RST, "R"}, {l.URG, "U"}} {
			if f.on {
				d.flags += f.s
			}
		}
		if l.SYN != (len(l.Options) == 1 && l.Options[0].OptionType == layers.TCPOptionKindMSS) {
			t.Errorf("TCP flags %s with options %v", d.flags, l.Options)
		}
	case *layers.UDP:
		l.SetNetworkLayerForChecksum(nl)
		_, v = l.VerifyChecksum()
		d.sp, d.dp, d.payload = uint16(l.SrcPort), uint16(l.DstPort), l.Payload
		if int(l.Length) != 8+len(l.Payload) {
			t.Errorf("UDP length %d, payload %d", l.Length, len(l.Payload))
		}
	case nil:
		switch l := p.Layer(layers.LayerTypeICMPv4).(type) {
		case *layers.ICMPv4:
			_, v = l.VerifyChecksum()
			d.icmpType, d.sp, d.icmpSeq, d.payload = l.TypeCode.Type(), l.Id, l.Seq, l.Payload
		default:
			ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
			if !ok {
				t.Fatalf("no transport layer: %v", p.Layers())
			}
			ic.SetNetworkLayerForChecksum(nl)
			_, v = ic.VerifyChecksum()
			echo, ok := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
			if !ok {
				t.Fatalf("no ICMPv6 echo layer: %v", p.Layers())
			}
			d.icmpType, d.sp, d.icmpSeq, d.payload = ic.TypeCode.Type(), echo.Identifier, echo.SeqNumber, echo.Payload
		}
	default:
		t.Fatalf("transport layer %T", l)
	}
	if !v.Valid {
		t.Fatalf("bad transport checksum: %+v", v)
	}
	return d
}

// payload returns n bytes derived from i.
func payload(i, n int) []byte {
	b := make([]byte, n)
	for k := range b {
		b[k] = byte(i*31 + k)
	}
	return b
}

// TestPacketsDecode checks every packet of conversations of each protocol and family:
// it decodes with valid checksums, goes in the right direction with the right ports,
// flags or echo fields, IPv4 identification or IPv6 flow label, and carries its
// payload.
func TestPacketsDecode(t *testing.T) {
	lens := []int{0, 1, 7, 16, 57, 1200}
	for _, tc := range cases {
		for _, n := range []int{1, 2, 3, 8} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, n), func(t *testing.T) {
				c := conversation(tc.proto, tc.v6, n, rand.New(rand.NewPCG(uint64(n), uint64(tc.proto))))
				var ids, labels [2][]uint32
				var flags []string
				for i := 0; !c.Done(); i++ {
					if c.Next() != i || c.FromClient() != (i%2 == 0) {
						t.Fatalf("Next %d, FromClient %v at packet %d", c.Next(), c.FromClient(), i)
					}
					pl := payload(i, lens[i%len(lens)])
					hl := c.HeaderLen()
					b := c.AppendNext(nil, pl)
					if len(b) != hl+len(pl) {
						t.Fatalf("packet %d: %d bytes, header %d + payload %d", i, len(b), hl, len(pl))
					}
					d := decode(t, b, tc.v6)
					dir := i % 2
					src, dst, sp, dp := c.Client, c.Server, c.ClientPort, c.ServerPort
					if dir == 1 {
						src, dst, sp, dp = dst, src, dp, sp
					}
					if d.src != src || d.dst != dst {
						t.Errorf("packet %d: %v > %v, want %v > %v", i, d.src, d.dst, src, dst)
					}
					if !bytes.Equal(d.payload, pl) {
						t.Errorf("packet %d: payload %x, want %x", i, d.payload, pl)
					}
					ids[dir] = append(ids[dir], uint32(d.id))
					labels[dir] = append(labels[dir], d.label)
					switch tc.proto {
					case packet.ProtoTCP, packet.ProtoUDP:
						if d.sp != sp || d.dp != dp {
							t.Errorf("packet %d: ports %d > %d, want %d > %d", i, d.sp, d.dp, sp, dp)
						}
						flags = append(flags, d.flags)
					default:
						want := map[[2]uint8]uint8{{packet.ProtoICMP, 0}: 8, {packet.ProtoICMP, 1}: 0,
							{packet.ProtoICMPv6, 0}: 128, {packet.ProtoICMPv6, 1}: 129}[[2]uint8{tc.proto, uint8(dir)}]
						if d.icmpType != want || d.sp != c.ClientPort || int(d.icmpSeq) != i/2+1 {
							t.Errorf("packet %d: ICMP type %d id %d seq %d", i, d.icmpType, d.sp, d.icmpSeq)
						}
					}
				}
				if c.Next() != n {
					t.Fatalf("Next %d after %d packets", c.Next(), n)
				}
				if tc.proto == packet.ProtoTCP {
					want := []string{"S", "SA", "PA", "PA", "PA", "PA", "PA", "FA"}[:n]
					if n > 2 {
						want[n-1] = "FA"
					}
					if strings.Join(flags, " ") != strings.Join(want, " ") {
						t.Errorf("TCP flags %v, want %v", flags, want)
					}
				}
				for dir := range 2 {
					for k := 1; k < len(ids[dir]); k++ {
						if !tc.v6 && uint16(ids[dir][k]) != uint16(ids[dir][k-1]+1) {
							t.Errorf("direction %d: IPv4 ids %v", dir, ids[dir])
						}
						if tc.v6 && labels[dir][k] != labels[dir][0] {
							t.Errorf("direction %d: flow labels %v", dir, labels[dir])
						}
					}
				}
			})
		}
	}
}

// TestTCPSequence follows the sequence and acknowledgement numbers of a TCP
// conversation with payloads on every segment (the handshake and FIN too, as GWLB's
// simulator sends them) and without payloads on the handshake and FIN.
func TestTCPSequence(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, handshakeData := range []bool{false, true} {
			rng := rand.New(rand.NewPCG(1, 2))
			c := conversation(packet.ProtoTCP, v6, 9, rng)
			var next [2]uint32 // next expected sequence number of client and server
			for i := 0; !c.Done(); i++ {
				syn, fin := i < 2, i == 8
				n := 1 + rng.IntN(1400)
				if (syn || fin) && !handshakeData {
					n = 0
				}
				d := decode(t, c.AppendNext(nil, payload(i, n)), v6)
				me, peer := i%2, 1-i%2
				switch {
				case i == 0:
					next[me] = d.seq
					if d.ack != 0 {
						t.Errorf("SYN acknowledges %d", d.ack)
					}
				case i == 1:
					next[me] = d.seq
					fallthrough
				default:
					if d.seq != next[me] || d.ack != next[peer] {
						t.Errorf("v6 %v data %v packet %d (%s): seq %d ack %d, want %d %d",
							v6, handshakeData, i, d.flags, d.seq, d.ack, next[me], next[peer])
					}
				}
				next[me] += uint32(len(d.payload))
				if syn || fin {
					next[me]++
				}
			}
		}
	}
}

// TestSkip checks that a skipped packet takes its index but no sequence space.
func TestSkip(t *testing.T) {
	c := conversation(packet.ProtoTCP, false, 6, rand.New(rand.NewPCG(3, 4)))
	syn := decode(t, c.AppendNext(nil, nil), false)
	c.Skip() // the SYN-ACK is lost
	if c.Next() != 2 || c.TCPFlags() != packet.TCPPsh|packet.TCPAck {
		t.Fatalf("after Skip: Next %d, flags %#x", c.Next(), c.TCPFlags())
	}
	d := decode(t, c.AppendNext(nil, []byte("data")), false)
	if d.seq != syn.seq+1 || d.flags != "PA" {
		t.Errorf("after a skipped SYN-ACK: seq %d flags %s, want %d PA", d.seq, d.flags, syn.seq+1)
	}
}

// TestAppendNoAlloc checks that appending into a buffer with room does not allocate.
func TestAppendNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations; run without -race")
	}
	pl := payload(1, 1000)
	buf := make([]byte, 0, 2048)
	for _, tc := range cases {
		c := conversation(tc.proto, tc.v6, 1<<30, rand.New(rand.NewPCG(5, 6)))
		if n := testing.AllocsPerRun(100, func() { buf = c.AppendNext(buf[:0], pl) }); n != 0 {
			t.Errorf("%s: %v allocations per packet", tc.name, n)
		}
	}
}

// TestAppendKeepsPrefix checks that AppendNext appends after dst's bytes and zeroes
// stale bytes in dst's spare capacity.
func TestAppendKeepsPrefix(t *testing.T) {
	for _, tc := range cases {
		want := conversation(tc.proto, tc.v6, 3, rand.New(rand.NewPCG(7, 8))).AppendNext(nil, []byte("hello"))
		buf := bytes.Repeat([]byte{0xa5}, 512)
		got := conversation(tc.proto, tc.v6, 3, rand.New(rand.NewPCG(7, 8))).AppendNext(buf[:4], []byte("hello"))
		if !bytes.Equal(got[:4], buf[:4]) || !bytes.Equal(got[4:], want) {
			t.Errorf("%s: appended %x, want %x", tc.name, got[4:], want)
		}
	}
}

// TestL4Checksum checks the pseudo-header checksum: over a segment with its checksum
// in place the sum folds to all ones, so L4Checksum returns 0.
func TestL4Checksum(t *testing.T) {
	for _, tc := range cases {
		c := conversation(tc.proto, tc.v6, 3, rand.New(rand.NewPCG(9, 10)))
		if tc.proto == packet.ProtoICMP {
			continue // no pseudo-header
		}
		ipHL := 20
		if tc.v6 {
			ipHL = 40
		}
		b := c.AppendNext(nil, []byte("odd"))
		if got := synth.L4Checksum(c.Client, c.Server, tc.proto, b[ipHL:]); got != 0 {
			t.Errorf("%s: checksum over a checksummed segment %#x, want 0", tc.name, got)
		}
	}
}

func TestPickTransport(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	ports := []uint16{22, 443}
	for _, tc := range []struct {
		name  string
		v6    bool
		proto uint8
	}{
		{"tcp", false, packet.ProtoTCP}, {"udp", true, packet.ProtoUDP},
		{"icmp", false, packet.ProtoICMP}, {"icmp", true, packet.ProtoICMPv6}, {"icmpv6", true, packet.ProtoICMPv6},
	} {
		for range 20 {
			c := synth.Conversation{V6: tc.v6, ServerPort: 9}
			c.PickTransport(rng, tc.name, ports)
			if c.Proto != tc.proto || c.ClientPort < 32768 || c.ClientPort >= 61000 {
				t.Fatalf("%s v6 %v: proto %d client port %d", tc.name, tc.v6, c.Proto, c.ClientPort)
			}
			wantPort := c.Proto == packet.ProtoTCP || c.Proto == packet.ProtoUDP
			if wantPort != (c.ServerPort == 22 || c.ServerPort == 443) || !wantPort && c.ServerPort != 0 {
				t.Fatalf("%s: server port %d", tc.name, c.ServerPort)
			}
			names := map[uint8]string{packet.ProtoTCP: "tcp", packet.ProtoUDP: "udp", packet.ProtoICMP: "icmp", packet.ProtoICMPv6: "icmpv6"}
			if c.ProtoName() != names[c.Proto] {
				t.Fatalf("ProtoName %q for %d", c.ProtoName(), c.Proto)
			}
			if tu := c.Tuple(); tu != (synth.Tuple{c.Proto, c.Client, c.Server, c.ClientPort, c.ServerPort}) {
				t.Fatalf("Tuple %+v", tu)
			}
		}
	}
}

// TestRandomAddr checks that RandomAddr stays inside the prefix and avoids the
// all-zeros and all-ones host parts when there are at least two host bits.
func TestRandomAddr(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, tc := range []struct {
		prefix   string
		first    string // all-zeros host
		last     string // all-ones host
		avoid    bool   // first and last must not be drawn
		distinct int    // addresses drawn in 300 tries; 0 = not checked
	}{
		{"10.0.0.0/16", "10.0.0.0", "10.0.255.255", true, 0},
		{"198.18.0.0/15", "198.18.0.0", "198.19.255.255", true, 0},
		{"192.0.2.4/30", "192.0.2.4", "192.0.2.7", true, 2},
		{"192.0.2.6/31", "192.0.2.6", "192.0.2.7", false, 2},
		{"192.0.2.7/32", "192.0.2.7", "192.0.2.7", false, 1},
		{"fd00:1::/64", "fd00:1::", "fd00:1::ffff:ffff:ffff:ffff", true, 0},
		{"2001:db8::/126", "2001:db8::", "2001:db8::3", true, 2},
	} {
		p := netip.MustParsePrefix(tc.prefix)
		first, last := netip.MustParseAddr(tc.first), netip.MustParseAddr(tc.last)
		seen := map[netip.Addr]bool{}
		for range 300 {
			a := synth.RandomAddr(rng, p)
			if !p.Contains(a) {
				t.Fatalf("%v: %v", p, a)
			}
			seen[a] = true
		}
		if tc.avoid && (seen[first] || seen[last]) {
			t.Errorf("%v: drew the all-zeros or all-ones host", p)
		}
		if tc.distinct != 0 && len(seen) != tc.distinct {
			t.Errorf("%v: %d distinct addresses, want %d", p, len(seen), tc.distinct)
		}
	}
}
