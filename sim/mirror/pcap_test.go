package mirror

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"weir/vxlan"
)

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// writeCapture writes frames as a pcap (ng false) or pcapng file with Ethernet link
// type.
func writeCapture(t *testing.T, ng bool, frames [][]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ts := time.Unix(1700000000, 0)
	if ng {
		w, err := pcapgo.NewNgWriter(f, layers.LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		for i, fr := range frames {
			ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(fr), Length: len(fr)}
			if err := w.WritePacket(ci, fr); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(fr), Length: len(fr)}
		if err := w.WritePacket(ci, fr); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// TestPCAP replays a hand-made capture: frames to and from ENIs[0], between others,
// non-IP, VLAN-tagged, IPv6 and a runt.
func TestPCAP(t *testing.T) {
	eniMAC := net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 1}
	gw := RouterMAC()
	other := netip.MustParseAddr("203.0.113.5")
	tcp4 := func(src, dst netip.Addr, sp, dp uint16, smac, dmac net.HardwareAddr, vlan bool) []byte {
		eth := &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), ACK: true, Window: 100}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		if vlan {
			eth.EthernetType = layers.EthernetTypeDot1Q
			return serialize(t, eth, &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4}, ip, tcp, gopacket.Payload("hi"))
		}
		return serialize(t, eth, ip, tcp, gopacket.Payload("hello"))
	}
	udp6 := func() []byte {
		eth := &layers.Ethernet{SrcMAC: eniMAC, DstMAC: gw, EthernetType: layers.EthernetTypeIPv6}
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
			SrcIP: eniIPv6(eniA).AsSlice(), DstIP: net.ParseIP("2001:db8::1")}
		udp := &layers.UDP{SrcPort: 5000, DstPort: 53}
		_ = udp.SetNetworkLayerForChecksum(ip)
		return serialize(t, eth, ip, udp, gopacket.Payload("q"))
	}
	arp := serialize(t, &layers.Ethernet{SrcMAC: gw, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: gw, SourceProtAddress: []byte{10, 0, 0, 1},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2}})
	out := tcp4(eniA, other, 40000, 443, eniMAC, gw, false)
	back := tcp4(other, eniA, 443, 40000, gw, eniMAC, false)
	frames := [][]byte{
		out,  // egress
		back, // ingress
		tcp4(netip.MustParseAddr("198.51.100.1"), other, 1, 2, gw, gw, false), // neither: egress
		arp,                // non-IP: egress
		udp6(),             // egress from the ENI's inner IPv6 address
		{1, 2, 3, 4, 5, 6}, // runt: skipped
		tcp4(other, eniA, 443, 40001, gw, eniMAC, true), // VLAN-tagged ingress
	}
	for _, ng := range []bool{false, true} {
		name := map[bool]string{false: "pcap", true: "pcapng"}[ng]
		t.Run(name, func(t *testing.T) {
			rcv := startReceiver(t)
			rep := run(t, Config{
				Target: rcv.addr,
				ENIs:   []ENI{{IP: eniA, VNI: 77}, {IP: eniB, VNI: 78}},
				PCAP:   writeCapture(t, ng, frames),
				Flows:  1000, // ignored in PCAP mode
			})
			if rep.Frames != 6 || rep.Sent != 6 || rep.Skipped != 1 || rep.Egress != 4 || rep.Ingress != 2 ||
				rep.Duplicates != 0 || rep.Flows != nil {
				t.Fatalf("report %+v", rep)
			}
			if e := rep.ENIs[0]; e.MAC != eniMAC.String() || e.VNI != 77 || e.Egress != 4 || e.Ingress != 2 {
				t.Errorf("ENI report %+v (MAC learnt from the first egress frame)", e)
			}
			if e := rep.ENIs[1]; e.Egress+e.Ingress != 0 {
				t.Errorf("ENIs[1] used in PCAP mode: %+v", e)
			}
			want := map[string]int{}
			for _, f := range frames[:5] {
				want[string(f)]++
			}
			want[string(frames[6])]++
			ports := map[string]uint16{}
			for _, d := range rcv.wait(t, rep.Sent) {
				h, frame, err := vxlan.Decode(d.b)
				if err != nil || h.VNI() != 77 || d.from.Addr() != eniA || d.from.Port() < FirstSourcePort {
					t.Fatalf("datagram from %v: VNI %d, %v", d.from, h.VNI(), err)
				}
				if want[string(frame)] == 0 {
					t.Fatalf("unexpected frame % x", frame)
				}
				want[string(frame)]--
				ports[string(frame)] = d.from.Port()
			}
			if ports[string(out)] != ports[string(back)] {
				t.Errorf("the two directions of a flow left from ports %d and %d", ports[string(out)], ports[string(back)])
			}
		})
	}
}

// TestPCAPAWSCapture replays the inner frames of a real Traffic Mirroring capture
// (their outer VXLAN stripped, written to a plain Ethernet pcapng) and checks that
// they arrive unchanged, both directions of each flow from one source port.
func TestPCAPAWSCapture(t *testing.T) {
	f, err := os.Open("../../../shared/testdata/peer/aws-mirror-ssh.pcap")
	if err != nil { // the shared folder sits beside the repository, in CI too
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || udp.DstPort != vxlan.Port {
			t.Fatalf("not a mirrored packet")
		}
		_, frame, err := vxlan.Decode(udp.Payload)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, frame)
	}
	if len(frames) != 100 {
		t.Fatalf("%d frames", len(frames))
	}

	rcv := startReceiver(t)
	rep := run(t, Config{Target: rcv.addr, ENIs: []ENI{{IP: eniA, VNI: 5569041}}, PCAP: writeCapture(t, true, frames)})
	if rep.Frames != 100 || rep.Sent != 100 || rep.Skipped != 0 || rep.Egress != 100 {
		t.Fatalf("report %+v", rep)
	}
	want := map[string]int{}
	for _, fr := range frames {
		want[string(fr)]++
	}
	ports := map[string]uint16{}
	for _, d := range rcv.wait(t, rep.Sent) {
		m := decodeMirrored(t, d)
		if m.vni != 5569041 || d.from.Addr() != eniA {
			t.Fatalf("datagram from %v VNI %d", d.from, m.vni)
		}
		if want[string(m.frame)] == 0 {
			t.Fatalf("unexpected frame")
		}
		want[string(m.frame)]--
		if p, ok := ports[m.key()]; ok && p != d.from.Port() {
			t.Errorf("flow %s from ports %d and %d", m.key(), p, d.from.Port())
		}
		ports[m.key()] = d.from.Port()
	}
	if len(ports) < 5 {
		t.Errorf("%d flows in the capture", len(ports))
	}
}

func TestOpenCaptureErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	junk := filepath.Join(dir, "junk")
	raw := filepath.Join(dir, "raw.pcap")
	_ = os.WriteFile(empty, nil, 0o644)
	_ = os.WriteFile(junk, []byte("this is not a capture file"), 0o644)
	f, _ := os.Create(raw)
	w := pcapgo.NewWriter(f)
	_ = w.WriteFileHeader(65535, layers.LinkTypeRaw)
	f.Close()
	for _, p := range []string{empty, junk, raw} {
		if c, err := openCapture(p); err == nil {
			c.Close()
			t.Errorf("%s: opened", filepath.Base(p))
		}
	}
}
