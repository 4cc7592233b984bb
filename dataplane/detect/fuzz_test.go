package detect

import (
	"net"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// fuzzRules use every kind of check the stage runs: streams, app-layer buffers,
// tunnels, flowbits, thresholds, pcre, isdataat.
const fuzzRules = `alert tcp any any -> any any (msg:"a"; flow:established,to_server; content:"GET"; depth:3; content:"HTTP"; distance:0; within:200; pcre:"/x[0-9]+/R"; sid:1;)
alert udp any any -> any any (msg:"b"; content:"|00 01|"; offset:2; isdataat:!1,relative; sid:2;)
alert dns any any -> any any (msg:"c"; dns.query; content:"evil"; nocase; endswith; bsize:<100; sid:3;)
alert tls any any -> any any (msg:"d"; tls.sni; content:"pool."; startswith; sid:4;)
drop tcp any any -> any any (msg:"e"; content:!"SSH-"; depth:4; content:"exec"; flowbits:set,x; sid:5;)
alert ip any any -> any any (msg:"f"; flowbits:isset,x; ttl:<3; threshold:type both, track by_src, count 2, seconds 1; sid:6;)
pass icmp any any -> any any (msg:"g"; itype:8; sid:7;)`

// FuzzInspect feeds arbitrary packets (each as a plain IP packet, and inside GRE)
// through decode, flow tracking and detection in ips mode: it must never panic,
// and what it settles must be a drop or an allow.
func FuzzInspect(f *testing.F) {
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, ACK: true, PSH: true, Seq: 1, Window: 1000}
	f.Add(serialize(f, net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 2), 64, tcp, []byte("GET / HTTP/1.1 x12")))
	f.Add(serialize(f, net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 2), 2, &layers.UDP{SrcPort: 1, DstPort: 53}, dnsQueryBytes("a.evil")))
	f.Add(serialize(f, net.ParseIP("2001:db8::1"), net.ParseIP("2001:db8::2"), 64, &layers.UDP{SrcPort: 1, DstPort: 9}, []byte{0, 0, 0, 1}))
	f.Add([]byte{0x45, 0, 0, 20, 0, 0, 0x20, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2})
	h := newHarness(f, fuzzRules, Options{Mode: ModeIPS, StreamDepth: 4096})
	f.Fuzz(func(t *testing.T, ip []byte) {
		h.t = t
		h.send(ip)
		if len(ip) >= 20 && ip[0]>>4 == 4 {
			gre := make([]byte, 24, 24+len(ip))
			copy(gre, []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 47, 0, 0, 198, 51, 100, 1, 198, 51, 100, 2, 0, 0, 0x08, 0})
			gre = append(gre, ip...)
			gre[2], gre[3] = byte(len(gre)>>8), byte(len(gre))
			h.send(gre)
		}
	})
}
