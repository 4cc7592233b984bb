package mirror

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"weir/vxlan"
)

// datagram is one VXLAN datagram the receiver got.
type datagram struct {
	from netip.AddrPort
	b    []byte
}

// receiver stands in for weir's mirror listener on 127.0.0.1:<free port>; the ENIs
// are other loopback addresses.
type receiver struct {
	addr netip.AddrPort
	conn *net.UDPConn
	mu   sync.Mutex
	got  []datagram
	done chan struct{}
}

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	r := &receiver{addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), conn: c, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.got = append(r.got, datagram{from, append([]byte(nil), buf[:n]...)})
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-r.done
	})
	return r
}

// count is how many datagrams have arrived.
func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// wait returns what arrived once n datagrams have (or after 3 s), after a short
// grace period in which any excess would show.
func (r *receiver) wait(t *testing.T, n uint64) []datagram {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		r.mu.Lock()
		k := uint64(len(r.got))
		r.mu.Unlock()
		if k >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	got := append([]datagram(nil), r.got...)
	if uint64(len(got)) != n {
		t.Fatalf("received %d datagrams, want %d", len(got), n)
	}
	return got
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func run(t *testing.T, cfg Config) Report {
	t.Helper()
	rep, err := Run(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Run: %v (report %+v)", err, rep)
	}
	if rep.SendErrors != 0 {
		t.Fatalf("%d send errors", rep.SendErrors)
	}
	return rep
}

// mirrored is a datagram decoded with gopacket, inner checksums verified.
type mirrored struct {
	from           netip.AddrPort
	vni            uint32
	srcMAC, dstMAC string
	src, dst       netip.Addr
	proto          gopacket.LayerType // TCP, UDP, ICMPv4, ICMPv6
	v6             bool
	sport, dport   uint16 // TCP/UDP ports; ICMP: identifier, 0
	tcpFlags       string
	ipPacket       string // the inner IP packet
	frame          []byte
}

// key is the flow, the same in both directions: protocol, the two endpoints in
// order and, for ICMP, the echo identifier.
func (m *mirrored) key() string {
	a, b := netip.AddrPortFrom(m.src, m.sport), netip.AddrPortFrom(m.dst, m.dport)
	id := uint16(0)
	if m.proto == layers.LayerTypeICMPv4 || m.proto == layers.LayerTypeICMPv6 {
		a, b, id = netip.AddrPortFrom(m.src, 0), netip.AddrPortFrom(m.dst, 0), m.sport
	}
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	return fmt.Sprintf("%v %v %v %d", m.proto, a, b, id)
}

func decodeMirrored(t *testing.T, d datagram) mirrored {
	t.Helper()
	m := mirrored{from: d.from}
	h, frame, err := vxlan.Decode(d.b)
	if err != nil {
		t.Fatalf("vxlan.Decode: %v", err)
	}
	if h.Flags() != 0x08 || h.ReservedNonZero() {
		t.Fatalf("VXLAN header % x", []byte(h))
	}
	m.frame = frame
	pkt := gopacket.NewPacket(d.b, layers.LayerTypeVXLAN, gopacket.Default)
	// An error layer may only be an application protocol that gopacket guesses from
	// the port (random UDP bytes to port 53 are not DNS); the layers up to the
	// transport layer are checked below.
	if el := pkt.ErrorLayer(); el != nil && pkt.TransportLayer() == nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	vx, _ := pkt.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if vx == nil || eth == nil || !vx.ValidIDFlag || vx.VNI != h.VNI() {
		t.Fatalf("gopacket layers %v", pkt.Layers())
	}
	m.vni = vx.VNI
	m.srcMAC, m.dstMAC = eth.SrcMAC.String(), eth.DstMAC.String()
	var nl gopacket.NetworkLayer
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		if int(ip.Length) != len(eth.Payload) {
			t.Fatalf("IPv4 length %d, frame payload %d", ip.Length, len(eth.Payload))
		}
		if _, v := ip.VerifyChecksum(); !v.Valid {
			t.Fatalf("bad IPv4 header checksum")
		}
		nl = ip
	case *layers.IPv6:
		if int(ip.Length)+40 != len(eth.Payload) {
			t.Fatalf("IPv6 length %d, frame payload %d", ip.Length, len(eth.Payload))
		}
		nl, m.v6 = ip, true
	default:
		t.Fatalf("inner network layer %T", ip)
	}
	m.ipPacket = string(eth.Payload)
	s, dd := nl.NetworkFlow().Endpoints()
	m.src, _ = netip.AddrFromSlice(s.Raw())
	m.dst, _ = netip.AddrFromSlice(dd.Raw())
	var v gopacket.ChecksumVerificationResult
	switch l := pkt.TransportLayer().(type) {
	case *layers.TCP:
		_ = l.SetNetworkLayerForChecksum(nl)
		_, v = l.VerifyChecksum()
		m.proto, m.sport, m.dport = layers.LayerTypeTCP, uint16(l.SrcPort), uint16(l.DstPort)
		for _, f := range []struct {
			on bool
			s  string
		}{{l.SYN, "S"}, {l.ACK, "A"}, {l.PSH, "P"}, {l.FIN, "F"}} {
			if f.on {
				m.tcpFlags += f.s
			}
		}
	case *layers.UDP:
		_ = l.SetNetworkLayerForChecksum(nl)
		_, v = l.VerifyChecksum()
		m.proto, m.sport, m.dport = layers.LayerTypeUDP, uint16(l.SrcPort), uint16(l.DstPort)
	default:
		if ic, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
			_, v = ic.VerifyChecksum()
			m.proto, m.sport = layers.LayerTypeICMPv4, ic.Id
			if ty := ic.TypeCode.Type(); ty != layers.ICMPv4TypeEchoRequest && ty != layers.ICMPv4TypeEchoReply {
				t.Fatalf("ICMP type %d", ty)
			}
		} else if ic, ok := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
			_ = ic.SetNetworkLayerForChecksum(nl)
			_, v = ic.VerifyChecksum()
			m.proto = layers.LayerTypeICMPv6
			if len(ic.Payload) >= 2 {
				m.sport = uint16(ic.Payload[0])<<8 | uint16(ic.Payload[1])
			}
			if ty := ic.TypeCode.Type(); ty != layers.ICMPv6TypeEchoRequest && ty != layers.ICMPv6TypeEchoReply {
				t.Fatalf("ICMPv6 type %d", ty)
			}
		} else {
			t.Fatalf("no transport layer in %v", pkt.Layers())
		}
	}
	if !v.Valid {
		t.Fatalf("bad %v checksum", m.proto)
	}
	return m
}
