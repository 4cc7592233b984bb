package socket

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"weir/dataplane"
	"weir/dataplane/flow"
	"weir/dataplane/policy"
	"weir/geneve"
)

var (
	applianceIP = netip.MustParseAddr("127.0.0.1")
	gwlbIP      = netip.MustParseAddr("127.0.0.2")
)

// freePort finds a UDP port free on both loopback addresses.
func freePort(t *testing.T) uint16 {
	t.Helper()
	for range 20 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: applianceIP.AsSlice()})
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		c2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: gwlbIP.AsSlice(), Port: p})
		if err == nil {
			c2.Close()
			return uint16(p)
		}
	}
	t.Fatal("no free port")
	return 0
}

func innerUDP(sport, dport uint16, payload int) []byte {
	b := make([]byte, 28+payload)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, 17
	copy(b[12:], []byte{10, 0, 0, 1})
	copy(b[16:], []byte{10, 1, 0, 1})
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	binary.BigEndian.PutUint16(b[24:], uint16(8+payload))
	for i := range payload {
		b[28+i] = byte(i)
	}
	return b
}

// TestReplyPaths runs the backend on loopback with each reply path: allowed packets
// return byte-identical from appliance:P to GWLB:port, denied ones never do.
func TestReplyPaths(t *testing.T) {
	for _, mode := range []ReplyMode{ReplyUDP, ReplyRaw} {
		t.Run(string(mode), func(t *testing.T) {
			port := freePort(t)
			be, err := New(Config{Listeners: []Listener{{Addr: netip.AddrPortFrom(applianceIP, port), Encap: dataplane.EncapGeneve}}, Workers: 2, Reply: mode})
			if errors.Is(err, ErrNoRawSocket) {
				t.Skip("raw sockets not permitted here (need CAP_NET_RAW); the udp path is tested instead")
			}
			if err != nil {
				t.Fatal(err)
			}
			pol := &policy.Policy{Default: policy.Allow, Rules: []policy.Rule{
				{Action: policy.Drop, Proto: 17, DstPort: policy.PortRange{Lo: 23, Hi: 23}},
			}}
			table := flow.NewTable(flow.Config{MaxFlows: 1000}, pol, func(*flow.Record) {})
			p := dataplane.NewPipeline(&dataplane.GeneveDecode{}, dataplane.InnerDecode{}, &dataplane.Track{Table: table})
			ctx, cancel := context.WithCancel(context.Background())
			ready := make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- be.Run(ctx, p, func() { close(ready) }) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			<-ready

			recv, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(gwlbIP, port)))
			if err != nil {
				t.Fatal(err)
			}
			defer recv.Close()
			send, err := net.ListenUDP("udp4", &net.UDPAddr{IP: gwlbIP.AsSlice()})
			if err != nil {
				t.Fatal(err)
			}
			defer send.Close()
			P := send.LocalAddr().(*net.UDPAddr).Port
			to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(applianceIP, port))

			aws := geneve.AWS{EndpointID: 0xabc, AttachmentID: 1, FlowCookie: 77}
			mk := func(dport uint16, size int) []byte {
				return append(geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, aws), innerUDP(5000, dport, size)...)
			}
			allowed := [][]byte{mk(53, 10), mk(53, 1400), mk(53, 8500-28)}
			for _, d := range append([][]byte{mk(23, 10)}, allowed...) {
				if _, err := send.WriteToUDP(d, to); err != nil {
					t.Fatal(err)
				}
			}
			buf := make([]byte, 10000)
			for i, want := range allowed {
				recv.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := recv.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("reply %d: %v", i, err)
				}
				if !bytes.Equal(buf[:n], want) {
					t.Errorf("reply %d (%d bytes) differs from the datagram sent (%d bytes)", i, n, len(want))
				}
				if from != netip.AddrPortFrom(applianceIP, uint16(P)) {
					t.Errorf("reply from %s, want %s:%d", from, applianceIP, P)
				}
			}
			recv.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, _, err := recv.ReadFromUDP(buf); err == nil {
				t.Errorf("an extra datagram of %d bytes came back: the denied packet?", n)
			}
			if got := p.Totals().Returned; got != uint64(len(allowed)) {
				t.Errorf("returned counter %d, want %d", got, len(allowed))
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(Config{Listeners: []Listener{{Addr: netip.MustParseAddrPort("[::1]:6081")}}}); err == nil {
		t.Error("IPv6 listen address accepted; GWLB sends IPv4 only")
	}
	if _, err := New(Config{Listeners: []Listener{{Addr: netip.MustParseAddrPort("127.0.0.1:0")}}, Reply: "carrier-pigeon"}); err == nil {
		t.Error("unknown reply mode accepted")
	}
}
