package xdpbench

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/dataplane/packet"
	"weir/geneve"
)

func testSpec() FrameSpec {
	return FrameSpec{GenMAC: GenMAC, DutMAC: DutMAC, GenIP: GenIP, DutIP: DutIP,
		SrcPorts: []uint16{40001, 40002}, Flows: 4, Payload: 16}
}

func testFrames(t *testing.T) [][]byte {
	t.Helper()
	frames, err := BuildFrames(testSpec())
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

// frame0 is flow 0 of testSpec, byte for byte: it pins the layout the checker
// reads at fixed offsets. TestFramesRebuiltByGopacket shows its lengths and
// checksums are right.
const frame0 = "" +
	"027762000002027762000001" + "0800" + // Ethernet
	"45000070000040004011ae55c6120001c6120002" + // IPv4, DF, TTL 64, UDP
	"9c4117c1005c5be1" + // UDP 40001 -> 6081
	"08000800" + "00000000" + // GENEVE: 32 bytes of options, IPv4, VNI 0
	"01080102" + "0b1e55ed0000c0de" + // endpoint id
	"01080202" + "00a77ac4000000e1" + // attachment id
	"01080301" + "c0000000" + // flow cookie
	"4500002c00004000401126c10a0000000a010000" + // inner IPv4 10.0.0.0 -> 10.1.0.0
	"4e2000500018d190" + // inner UDP 20000 -> 80
	"7765697262656e63" + "00000000" + "0c0d0e0f" // Magic, flow 0, filler

func TestFrameGolden(t *testing.T) {
	got := hex.EncodeToString(testFrames(t)[0])
	if want := frame0; got != want {
		t.Fatalf("flow 0:\n got %s\nwant %s", got, want)
	}
}

// Each frame decodes with gopacket into the layers meant, with the values
// meant, and gopacket re-encoding those layers with its own lengths and
// checksums gives the same bytes.
func TestFramesRebuiltByGopacket(t *testing.T) {
	spec := testSpec()
	for i, f := range testFrames(t) {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("flow %d: %v", i, el.Error())
		}
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ips := p.Layers()
		var outerIP, innerIP *layers.IPv4
		for _, l := range ips {
			if ip, ok := l.(*layers.IPv4); ok {
				if outerIP == nil {
					outerIP = ip
				} else {
					innerIP = ip
				}
			}
		}
		outerUDP, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		gnv, _ := p.Layer(layers.LayerTypeGeneve).(*layers.Geneve)
		if eth == nil || outerIP == nil || innerIP == nil || outerUDP == nil || gnv == nil {
			t.Fatalf("flow %d: layers %v", i, p.Layers())
		}
		if !bytes.Equal(eth.SrcMAC, GenMAC) || !bytes.Equal(eth.DstMAC, DutMAC) ||
			!outerIP.SrcIP.Equal(GenIP.AsSlice()) || !outerIP.DstIP.Equal(DutIP.AsSlice()) ||
			uint16(outerUDP.SrcPort) != spec.SrcPorts[i%2] || outerUDP.DstPort != geneve.Port {
			t.Fatalf("flow %d: outer headers %v %v %v", i, eth, outerIP, outerUDP)
		}
		_, _, aws, err := geneve.Decode(outerUDP.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if aws.EndpointID != EndpointID || aws.AttachmentID != AttachmentID || aws.FlowCookie != FlowCookie(i) || aws.Present != 0b1110 {
			t.Fatalf("flow %d: GWLB options %+v", i, aws)
		}
		if flow, err := FlowOf(f); err != nil || flow != i {
			t.Fatalf("flow %d: FlowOf says %d, %v", i, flow, err)
		}

		stack := []gopacket.SerializableLayer{eth, outerIP, outerUDP, gnv, innerIP}
		if err := outerUDP.SetNetworkLayerForChecksum(outerIP); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			udp, _ := p.Layers()[len(p.Layers())-2].(*layers.UDP)
			if udp == nil || udp.DstPort != layers.UDPPort(80+i%7) {
				t.Fatalf("flow %d: inner UDP %v", i, p.Layers())
			}
			udp.SetNetworkLayerForChecksum(innerIP)
			stack = append(stack, udp, gopacket.Payload(udp.Payload))
		} else {
			tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if tcp == nil || !tcp.ACK || !tcp.PSH || tcp.SYN {
				t.Fatalf("flow %d: inner TCP %v", i, tcp)
			}
			tcp.SetNetworkLayerForChecksum(innerIP)
			stack = append(stack, tcp, gopacket.Payload(tcp.Payload))
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, stack...); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), f) {
			t.Fatalf("flow %d: gopacket re-encodes\n%x\nas\n%x", i, f, buf.Bytes())
		}
	}
}

// The frames share the GENEVE prefix the checker compares, and differ in
// their inner 5-tuples.
func TestFramesDistinctFlows(t *testing.T) {
	spec := testSpec()
	spec.Flows = 1000
	frames, err := BuildFrames(spec)
	if err != nil {
		t.Fatal(err)
	}
	prefix := GeneveCheckedPrefix(frames)
	tuples := map[string]bool{}
	for _, f := range frames {
		if !bytes.Equal(f[offGeneve:offGeneve+geneveCheckedLen], prefix) {
			t.Fatal("GENEVE prefixes differ")
		}
		tuples[string(f[offInnerIP+9:offInnerIP+10])+string(f[offInnerIP+12:offInnerL4+4])] = true
	}
	if len(tuples) != 1000 {
		t.Fatalf("%d distinct inner 5-tuples", len(tuples))
	}
}

func TestFrameSpecRefused(t *testing.T) {
	for name, mut := range map[string]func(*FrameSpec){
		"short MAC":   func(s *FrameSpec) { s.GenMAC = net.HardwareAddr{1} },
		"IPv6":        func(s *FrameSpec) { s.DutIP = netip.MustParseAddr("2001:db8::2") },
		"no ports":    func(s *FrameSpec) { s.SrcPorts = nil },
		"three ports": func(s *FrameSpec) { s.SrcPorts = []uint16{1, 2, 3} },
		"port 0":      func(s *FrameSpec) { s.SrcPorts = []uint16{0} },
		"no flows":    func(s *FrameSpec) { s.Flows = 0 },
		"tiny":        func(s *FrameSpec) { s.Payload = markLen - 1 },
	} {
		s := testSpec()
		mut(&s)
		if _, err := BuildFrames(s); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCheckReply(t *testing.T) {
	req := testFrames(t)[1]
	exact, err := CheckReply(req, SwappedReply(req))
	if err != nil || !exact {
		t.Fatalf("swapped request: exact %v, %v", exact, err)
	}

	// The socket backend's reply: its own IPv4 header, as weir writes it.
	rebuilt := SwappedReply(req)
	ip := rebuilt[offOuterIP:offOuterUDP]
	binary.BigEndian.PutUint16(ip[4:], 0x1234)
	ip[8] = 63
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], packet.FoldChecksum(packet.Checksum(0, ip)))
	if exact, err := CheckReply(req, rebuilt); err != nil || exact {
		t.Fatalf("rebuilt header: exact %v, %v", exact, err)
	}

	for name, mut := range map[string]func([]byte) []byte{
		"request itself":   func(b []byte) []byte { return bytes.Clone(req) },
		"truncated":        func(b []byte) []byte { return b[:len(b)-1] },
		"bad IP checksum":  func(b []byte) []byte { b[offOuterIP+8] = 1; return b },
		"ports swapped":    func(b []byte) []byte { swap(b[offOuterUDP:offOuterUDP+2], b[offOuterUDP+2:offOuterUDP+4]); return b },
		"cookie changed":   func(b []byte) []byte { b[offInnerIP-1] ^= 1; return b },
		"inner changed":    func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"protocol changed": func(b []byte) []byte { b[offOuterIP+9] = 6; return b },
	} {
		if _, err := CheckReply(req, mut(SwappedReply(req))); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
