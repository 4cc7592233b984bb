package detect

import (
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// tunnelled wraps an inner IPv4 TCP segment in GRE (or IP-in-IP when gre is
// false) between two tunnel endpoints.
func tunnelled(t *testing.T, gre bool, inner []byte) []byte {
	t.Helper()
	outer := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.IPv4(198, 51, 100, 1), DstIP: net.IPv4(198, 51, 100, 2)}
	ls := []gopacket.SerializableLayer{outer}
	if gre {
		outer.Protocol = layers.IPProtocolGRE
		ls = append(ls, &layers.GRE{Protocol: layers.EthernetTypeIPv4})
	} else {
		outer.Protocol = layers.IPProtocolIPv4
	}
	ls = append(ls, gopacket.Payload(inner))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Rules see the packet inside a tunnel, with its own flow (flow keywords hold
// inside the tunnel), and the alert carries the tunnel; an outer-endpoint pass
// rule still stops inspection.
func TestTunnelledInspection(t *testing.T) {
	const rules = `alert tcp 10.9.0.0/16 any -> any 80 (msg:"inner"; flow:to_server; content:"INNER-EVIL"; sid:1;)
pass ip 203.0.113.1 any -> any any (msg:"trusted tunnel"; sid:2;)`
	inner := func(t *testing.T, flags string, data string) []byte {
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Window: 1000, SYN: flags == "S", ACK: flags != "S", PSH: flags == "PA"}
		return serialize(t, net.IPv4(10, 9, 0, 1), net.IPv4(10, 9, 0, 2), 64, tcp, []byte(data))
	}
	for _, gre := range []bool{true, false} {
		h := newHarness(t, rules, Options{})
		h.send(tunnelled(t, gre, inner(t, "S", "")))
		got := h.send(tunnelled(t, gre, inner(t, "PA", "x INNER-EVIL x")))
		if len(got) != 1 || got[0] != 1 {
			t.Fatalf("gre %v: alerts %v, want [1]", gre, got)
		}
		a := h.alerts[0]
		if a.Src.String() != "10.9.0.1" || a.InnerTunnel.Src.String() != "198.51.100.1" || a.InnerTunnel.Depth != 1 || a.FlowID == 0 {
			t.Errorf("gre %v: alert %+v", gre, a)
		}
		if gre && a.InnerTunnel.Proto != 47 || !gre && a.InnerTunnel.Proto != 4 {
			t.Errorf("gre %v: tunnel proto %d", gre, a.InnerTunnel.Proto)
		}
	}
	// The same from a trusted tunnel endpoint: the pass rule on the outer packet
	// wins.
	h := newHarness(t, rules, Options{})
	b := tunnelled(t, true, inner(t, "PA", "x INNER-EVIL x"))
	copy(b[12:16], net.IPv4(203, 0, 113, 1).To4())
	fixIPv4Checksum(b)
	if got := h.send(b); len(got) != 0 {
		t.Fatalf("pass rule on the tunnel endpoint: alerts %v", got)
	}
}

func fixIPv4Checksum(b []byte) {
	b[10], b[11] = 0, 0
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	c := ^uint16(sum)
	b[10], b[11] = byte(c>>8), byte(c)
}
