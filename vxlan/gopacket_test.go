package vxlan_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"weir/vxlan"
)

// peerDir holds third-party captures (see its PROVENANCE.md).
const peerDir = "../../shared/testdata/peer"

// crossCheck decodes b with Decode and with gopacket's VXLAN layer and compares the
// fields both know: I flag, VNI, the header/frame split and, through the GBP view of
// the reserved bits, ReservedNonZero.
func crossCheck(t *testing.T, b []byte) vxlan.Header {
	t.Helper()
	h, frame, err := vxlan.Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	var g layers.VXLAN
	if err := g.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("gopacket: %v", err)
	}
	if !g.ValidIDFlag || g.VNI != h.VNI() {
		t.Errorf("gopacket I=%v VNI=%d, ours I=%v VNI=%d", g.ValidIDFlag, g.VNI, h.HasVNI(), h.VNI())
	}
	if !bytes.Equal(g.Contents, h) || !bytes.Equal(g.Payload, frame) {
		t.Errorf("split differs: gopacket %d+%d, ours %d+%d", len(g.Contents), len(g.Payload), len(h), len(frame))
	}
	// gopacket reads G (0x80), D and A (in byte 1) and the group policy id (bytes
	// 2-3) out of what RFC 7348 calls reserved.
	if g.GBPExtension && !h.ReservedNonZero() || g.GBPDontLearn && !h.ReservedNonZero() ||
		g.GBPApplied && !h.ReservedNonZero() || g.GBPGroupPolicyID != 0 && !h.ReservedNonZero() {
		t.Errorf("gopacket sees GBP bits %+v, ReservedNonZero false", g)
	}
	return h
}

// TestGopacketCrossCheck compares Decode with gopacket on generated datagrams, and
// checks that gopacket reads AppendHeader's output as the same header.
func TestGopacketCrossCheck(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	frames := [][]byte{innerFrame(t, 0), innerFrame(t, 1400), arpFrame(t), innerFrame(t, 10)[:14]}
	for i := 0; i < 2000; i++ {
		vni := rng.Uint32() & vxlan.MaxVNI
		b := datagram(vni, frames[i%len(frames)])
		if i%2 == 1 { // random reserved bits, I flag kept
			b[0] = byte(rng.Uint32()) | vxlan.FlagVNI
			b[1], b[2], b[3], b[7] = byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())
		}
		h := crossCheck(t, b)
		if h.VNI() != vni {
			t.Fatalf("VNI %d, want %d", h.VNI(), vni)
		}
	}

	// gopacket serialises a VXLAN layer as AppendHeader does.
	for _, vni := range []uint32{0, 1, 5569041, vxlan.MaxVNI} {
		want := serialize(t, &layers.VXLAN{ValidIDFlag: true, VNI: vni})
		if got := vxlan.AppendHeader(nil, vni); !bytes.Equal(got, want) {
			t.Errorf("VNI %d: AppendHeader % x, gopacket % x", vni, got, want)
		}
	}
}

// TestPeerCaptures decodes the VXLAN datagram of every packet to UDP port 4789 in
// the third-party captures and compares the VNI and inner frame with gopacket's.
func TestPeerCaptures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(peerDir, "*.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no captures in %s: the shared folder must sit beside the repository (as in CI)", peerDir)
	}
	want := map[string]struct {
		datagrams int
		vni       uint32
		reserved  bool
	}{
		"aws-mirror-ssh.pcap":         {100, 5569041, false},
		"vxlan-decoder-01.pcap":       {1, 37, false},
		"vxlan-decoder-02.pcap":       {10, 100, false},
		"vxlan-nonzero-reserved.pcap": {10, 11, true},
		"vxlan-arp.pcap":              {2, 100, false},
		"geneve-decoder.pcap":         {0, 0, false},
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			w, known := want[name]
			n := 0
			for _, pkt := range readPcap(t, file) {
				udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
				if !ok || udp.DstPort != vxlan.Port || pkt.Layer(layers.LayerTypeIPv4) == nil {
					continue
				}
				n++
				g, ok := pkt.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
				if !ok {
					t.Fatalf("packet %d: gopacket found no VXLAN layer", n)
				}
				h, frame, err := vxlan.Decode(udp.Payload)
				if err != nil {
					t.Fatalf("packet %d: %v", n, err)
				}
				if h.VNI() != g.VNI || !bytes.Equal(frame, g.Payload) {
					t.Errorf("packet %d: VNI %d frame %d bytes; gopacket VNI %d frame %d bytes",
						n, h.VNI(), len(frame), g.VNI, len(g.Payload))
				}
				// The inner frame is Ethernet, as gopacket sees it after VXLAN.
				eth, ok := layerAfter(pkt, layers.LayerTypeVXLAN).(*layers.Ethernet)
				if !ok || !bytes.Equal(eth.Contents, frame[:14]) {
					t.Errorf("packet %d: inner layer after VXLAN is not the frame's Ethernet header", n)
				}
				crossCheck(t, udp.Payload)
				if known {
					if h.VNI() != w.vni || h.ReservedNonZero() != w.reserved {
						t.Errorf("packet %d: VNI %d reserved %v, want %d %v", n, h.VNI(), h.ReservedNonZero(), w.vni, w.reserved)
					}
				}
			}
			if known && n != w.datagrams {
				t.Errorf("%d VXLAN datagrams, want %d", n, w.datagrams)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(peerDir, "vxlan-nonzero-reserved.pcap")); err != nil {
		t.Errorf("vxlan-nonzero-reserved.pcap: %v", err)
	}
}

// layerAfter is the layer that follows the first layer of type lt in pkt, or nil.
func layerAfter(pkt gopacket.Packet, lt gopacket.LayerType) gopacket.Layer {
	ls := pkt.Layers()
	for i, l := range ls[:max(len(ls)-1, 0)] {
		if l.LayerType() == lt {
			return ls[i+1]
		}
	}
	return nil
}

// readPcap reads every packet of a pcap file, decoded from Ethernet.
func readPcap(t *testing.T, path string) []gopacket.Packet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("link type %v", r.LinkType())
	}
	var pkts []gopacket.Packet
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return pkts
		}
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default))
	}
}
