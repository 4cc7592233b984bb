package mirror

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"weir/dataplane/packet"
)

var (
	eniMAC    = [6]byte{0x02, 0x85, 0x69, 0xc2, 0xab, 0x02}
	routerMAC = [6]byte{0x02, 0x29, 0x23, 0x74, 0xc7, 0x7d}
	otherMAC  = [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x99}
	bcastMAC  = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zeroMAC   = [6]byte{}

	eni     = netip.MustParseAddr("172.31.0.238")
	eni2    = netip.MustParseAddr("172.31.0.239")
	remote  = netip.MustParseAddr("18.196.145.224")
	remote6 = netip.MustParseAddr("2001:db8::1")
	local6  = netip.MustParseAddr("2001:db8::238")
)

func TestDirectionsOf(t *testing.T) {
	type frame struct {
		eni             netip.Addr
		srcMAC, dstMAC  [6]byte
		innerSrc, inDst netip.Addr
		want            Direction
	}
	for _, tc := range []struct {
		name   string
		mac    net.HardwareAddr
		ip     netip.Addr
		max    int
		frames []frame
	}{
		{"configured MAC: source MAC is egress", net.HardwareAddr(eniMAC[:]), netip.Addr{}, 0, []frame{
			{eni, eniMAC, routerMAC, remote6, local6, DirEgress}, // IPs say nothing; MAC decides
		}},
		{"configured MAC: destination MAC is ingress", net.HardwareAddr(eniMAC[:]), netip.Addr{}, 0, []frame{
			{eni, routerMAC, eniMAC, remote6, local6, DirIngress},
		}},
		{"configured MAC beats IP", net.HardwareAddr(eniMAC[:]), netip.Addr{}, 0, []frame{
			{eni, routerMAC, eniMAC, eni, remote, DirIngress},
		}},
		{"configured MAC, neither MAC: IP decides, nothing learned", net.HardwareAddr(eniMAC[:]), netip.Addr{}, 0, []frame{
			{eni, otherMAC, routerMAC, eni, remote, DirEgress},
			{eni, otherMAC, routerMAC, remote6, local6, DirUnknown},
		}},
		{"by IP: inner source is the ENI", nil, netip.Addr{}, 0, []frame{
			{eni, eniMAC, routerMAC, eni, remote, DirEgress},
		}},
		{"by IP: inner destination is the ENI", nil, netip.Addr{}, 0, []frame{
			{eni, routerMAC, eniMAC, remote, eni, DirIngress},
		}},
		{"neither MAC nor IP: unknown", nil, netip.Addr{}, 0, []frame{
			{eni, eniMAC, routerMAC, remote6, local6, DirUnknown},
		}},
		{"learned from egress, used for IPv6", nil, netip.Addr{}, 0, []frame{
			{eni, eniMAC, routerMAC, eni, remote, DirEgress},
			{eni, eniMAC, routerMAC, local6, remote6, DirEgress},
			{eni, routerMAC, eniMAC, remote6, local6, DirIngress},
		}},
		{"learned from ingress", nil, netip.Addr{}, 0, []frame{
			{eni, routerMAC, eniMAC, remote, eni, DirIngress},
			{eni, eniMAC, routerMAC, local6, remote6, DirEgress},
		}},
		{"learned per ENI", nil, netip.Addr{}, 0, []frame{
			{eni, eniMAC, routerMAC, eni, remote, DirEgress},
			{eni2, eniMAC, routerMAC, local6, remote6, DirUnknown}, // eni's MAC is not eni2's
		}},
		{"configured IP instead of the outer source", nil, netip.MustParseAddr("10.9.9.9"), 0, []frame{
			{eni, eniMAC, routerMAC, eni, remote, DirUnknown},
			{eni, eniMAC, routerMAC, netip.MustParseAddr("10.9.9.9"), remote, DirEgress},
			{eni, eniMAC, routerMAC, local6, remote6, DirEgress}, // learned
		}},
		{"broadcast MAC not learned", nil, netip.Addr{}, 0, []frame{
			{eni, routerMAC, bcastMAC, remote, eni, DirIngress},
			{eni, otherMAC, bcastMAC, remote6, local6, DirUnknown},
		}},
		{"zero MAC not learned", nil, netip.Addr{}, 0, []frame{
			{eni, zeroMAC, routerMAC, eni, remote, DirEgress},
			{eni, zeroMAC, routerMAC, local6, remote6, DirUnknown},
		}},
		{"MAC relearned when the IP moved to another ENI", nil, netip.Addr{}, 0, []frame{
			{eni, eniMAC, routerMAC, eni, remote, DirEgress},
			{eni, otherMAC, routerMAC, eni, remote, DirEgress}, // new ENI with the same IP
			{eni, otherMAC, routerMAC, local6, remote6, DirEgress},
			{eni, eniMAC, routerMAC, local6, remote6, DirUnknown},
		}},
		{"bounded: past maxENIs, IP only", nil, netip.Addr{}, 1, []frame{
			{eni, eniMAC, routerMAC, eni, remote, DirEgress},
			{eni2, otherMAC, routerMAC, eni2, remote, DirEgress}, // not learned
			{eni2, otherMAC, routerMAC, local6, remote6, DirUnknown},
			{eni, eniMAC, routerMAC, local6, remote6, DirEgress}, // still known
		}},
		{"v4-mapped outer source and inner addresses", nil, netip.Addr{}, 0, []frame{
			{netip.AddrFrom16(eni.As16()), eniMAC, routerMAC, eni, remote, DirEgress},
			{eni, routerMAC, eniMAC, remote, netip.AddrFrom16(eni.As16()), DirIngress},
			{eni, eniMAC, routerMAC, local6, remote6, DirEgress},
		}},
		{"invalid outer source", nil, netip.Addr{}, 0, []frame{
			{netip.Addr{}, eniMAC, routerMAC, netip.Addr{}, remote, DirUnknown},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDirections(tc.mac, tc.ip, tc.max)
			for i, f := range tc.frames {
				if got := d.Of(f.eni, f.srcMAC, f.dstMAC, f.innerSrc, f.inDst); got != f.want {
					t.Errorf("frame %d (%s %x>%x %s>%s): %s, want %s", i, f.eni, f.srcMAC, f.dstMAC, f.innerSrc, f.inDst, got, f.want)
				}
			}
		})
	}
}

func TestDirectionsLearned(t *testing.T) {
	d := NewDirections(nil, netip.Addr{}, 2)
	if _, ok := d.MAC(eni); ok || d.Learned() != 0 {
		t.Fatal("knows a MAC before learning")
	}
	d.Of(eni, eniMAC, routerMAC, eni, remote)
	d.Of(eni2, otherMAC, routerMAC, eni2, remote)
	d.Of(netip.MustParseAddr("172.31.0.240"), routerMAC, otherMAC, remote, netip.MustParseAddr("172.31.0.240"))
	if mac, ok := d.MAC(eni); !ok || mac != eniMAC {
		t.Errorf("MAC(eni) = %x, %v", mac, ok)
	}
	if d.Learned() != 2 {
		t.Errorf("Learned() = %d, want 2 (the bound)", d.Learned())
	}
	c := NewDirections(net.HardwareAddr(eniMAC[:]), netip.Addr{}, 0)
	if mac, ok := c.MAC(eni2); !ok || mac != eniMAC {
		t.Errorf("configured MAC(eni2) = %x, %v", mac, ok)
	}
	if NewDirections(net.HardwareAddr{1, 2, 3}, netip.Addr{}, 0).hasMAC {
		t.Error("a 3-byte MAC was taken")
	}
}

func TestDirectionsNoAlloc(t *testing.T) {
	d := NewDirections(nil, netip.Addr{}, 0)
	d.Of(eni, eniMAC, routerMAC, eni, remote) // learn
	allocs := testing.AllocsPerRun(100, func() {
		d.Of(eni, eniMAC, routerMAC, local6, remote6)
		d.Of(eni, routerMAC, eniMAC, remote6, local6)
		d.Of(eni, eniMAC, routerMAC, eni, remote)
		d.Of(eni2, otherMAC, routerMAC, remote6, local6) // unknown ENI, unknown direction
	})
	if allocs != 0 {
		t.Errorf("Of allocates %v times per run", allocs)
	}
}

// TestDirectionsConcurrent learns many ENIs from many goroutines while others look
// up; run with -race.
func TestDirectionsConcurrent(t *testing.T) {
	const enis, workers = 64, 4
	d := NewDirections(nil, netip.Addr{}, enis)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }
	mac := func(i int) [6]byte { return [6]byte{0x02, 0, 0, 0, byte(i >> 8), byte(i)} }
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for round := range 20 {
				for i := range enis {
					e := addr((i + w*7) % enis)
					m := mac((i + w*7) % enis)
					var got Direction
					if round%2 == 0 {
						got = d.Of(e, m, routerMAC, e, remote)
					} else {
						// Needs the MAC this worker's own round 0 learned, at the latest.
						got = d.Of(e, routerMAC, m, remote6, local6)
					}
					want := DirEgress
					if round%2 == 1 {
						want = DirIngress
					}
					if got != want {
						errs <- errors.New("wrong direction " + got.String())
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if d.Learned() != enis {
		t.Errorf("learned %d ENIs, want %d", d.Learned(), enis)
	}
}

func BenchmarkDirectionsOf(b *testing.B) {
	d := NewDirections(nil, netip.Addr{}, 0)
	d.Of(eni, eniMAC, routerMAC, eni, remote)
	b.ReportAllocs()
	for b.Loop() {
		d.Of(eni, routerMAC, eniMAC, remote6, local6)
	}
}

// peerDir holds third-party captures (see its PROVENANCE.md).
const peerDir = "../../../shared/testdata/peer"

// TestDirectionsAWSCapture reads a real AWS Traffic Mirroring capture (one ENI,
// 172.31.0.238, MAC 02:85:69:c2:ab:02) and checks that Of agrees with the inner IP
// addresses on every frame, that the ENI's MAC is learned, and that the capture's
// DNS traffic with the VPC resolver (172.31.0.2) counts as Amazon DNS.
func TestDirectionsAWSCapture(t *testing.T) {
	path := filepath.Join(peerDir, "aws-mirror-ssh.pcap")
	fh, err := os.Open(path)
	if err != nil {
		t.Skipf("no peer capture: %v", err)
	}
	defer fh.Close()
	r, err := pcapgo.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDirections(nil, netip.Addr{}, 0)
	vpcDNS := []netip.Addr{netip.MustParseAddr("172.31.0.2"), netip.MustParseAddr("169.254.169.253")}
	noDNS := &Filter{Ingress: []Rule{rule(1, Accept)}, Egress: []Rule{rule(1, Accept)}}
	var frames, egress, ingress, dnsFrames int
	for {
		data, _, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pk := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		var eths []*layers.Ethernet
		var ips []*layers.IPv4
		for _, l := range pk.Layers() {
			switch l := l.(type) {
			case *layers.Ethernet:
				eths = append(eths, l)
			case *layers.IPv4:
				ips = append(ips, l)
			}
		}
		if len(eths) < 2 || len(ips) < 2 || pk.Layer(layers.LayerTypeVXLAN) == nil {
			continue
		}
		frames++
		outer, _ := netip.AddrFromSlice(ips[0].SrcIP.To4())
		src, _ := netip.AddrFromSlice(ips[1].SrcIP.To4())
		dst, _ := netip.AddrFromSlice(ips[1].DstIP.To4())
		want := DirIngress
		if src == outer {
			want = DirEgress
			egress++
		} else {
			ingress++
		}
		got := d.Of(outer, [6]byte(eths[1].SrcMAC), [6]byte(eths[1].DstMAC), src, dst)
		if got != want {
			t.Errorf("frame %d: %s, want %s", frames, got, want)
		}
		// Once learned, the MAC alone decides, as for traffic of another address.
		if frames > 1 {
			if got := d.Of(outer, [6]byte(eths[1].SrcMAC), [6]byte(eths[1].DstMAC), remote6, local6); got != want {
				t.Errorf("frame %d by MAC: %s, want %s", frames, got, want)
			}
		}

		var p packet.Packet
		if err := p.DecodeEthernet(pk.Layer(layers.LayerTypeVXLAN).LayerPayload()); err != nil {
			t.Fatalf("frame %d: decode: %v", frames, err)
		}
		if p.Src.Unmap() == vpcDNS[0] || p.Dst.Unmap() == vpcDNS[0] {
			dnsFrames++
			if noDNS.Mirrored(&p, got, vpcDNS) {
				t.Errorf("frame %d: DNS with the VPC resolver mirrored without amazon-dns", frames)
			}
			withDNS := *noDNS
			withDNS.AmazonDNS = true
			if !withDNS.Mirrored(&p, got, vpcDNS) {
				t.Errorf("frame %d: DNS with the VPC resolver not mirrored with amazon-dns", frames)
			}
		}
	}
	if mac, ok := d.MAC(eni); !ok || mac != eniMAC {
		t.Errorf("learned MAC %x, %v; want %x", mac, ok, eniMAC)
	}
	if egress == 0 || ingress == 0 || dnsFrames == 0 {
		t.Errorf("%d frames: %d egress, %d ingress, %d DNS; want some of each", frames, egress, ingress, dnsFrames)
	}
	t.Logf("%d frames: %d egress, %d ingress, %d with the VPC resolver", frames, egress, ingress, dnsFrames)
}
