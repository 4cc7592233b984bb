package eve_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"weir/dataplane/eve"
	"weir/dataplane/flow"
	"weir/dataplane/packet"
)

// gwlbAlert is an alert on an inline (GWLB) flow.
func gwlbAlert() eve.Alert {
	return eve.Alert{
		Action: eve.AlertBlocked, GID: 1, SignatureID: 2100498, Rev: 7, Severity: 2,
		Signature: "GPL ATTACK_RESPONSE id check returned root",
		Category:  "Potentially Bad Traffic",
		Time:      end, FlowID: 1<<53 + 12345, Proto: packet.ProtoTCP,
		Src: netip.MustParseAddr("10.0.2.9"), Dst: netip.MustParseAddr("10.0.1.5"),
		SrcPort: 443, DstPort: 40000,
		AWS: allAWS,
		Tunnel: flow.Tunnel{Encap: flow.EncapGeneve, Src: netip.MustParseAddr("192.0.2.10"),
			Dst: netip.MustParseAddr("192.0.2.20"), SrcPort: 51000, DstPort: 6081},
		Flow: eve.FlowState{PktsToServer: 4, PktsToClient: 3, BytesToServer: 400, BytesToClient: 3000, Start: start},
	}
}

// mirrorAlert is an alert on a mirrored (VXLAN) flow of session 1.
func mirrorAlert() eve.Alert {
	return eve.Alert{
		GID: 1, SignatureID: 9000001, Rev: 1, Severity: 3,
		Signature: "weir test \"quoted\" \x7f\xff", Category: "Misc activity",
		Time: start, FlowID: 42, Proto: packet.ProtoUDP,
		Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("fd00::53"),
		SrcPort: 5353, DstPort: 53,
		Tunnel: flow.Tunnel{Encap: flow.EncapVXLAN, Src: netip.MustParseAddr("10.9.0.4"),
			Dst: netip.MustParseAddr("10.9.0.100"), SrcPort: 33333, DstPort: 4789, VNI: 123},
		Direction: flow.DirectionEgress, Session: 1,
		Flow: eve.FlowState{PktsToServer: 1, PktsToClient: 1, BytesToServer: 70, BytesToClient: 120, Start: start},
	}
}

func TestAppendAlert(t *testing.T) {
	for _, tc := range []struct {
		name     string
		a        eve.Alert
		sessions []string
		ipv      json.Number
		pktSrc   string
		weir     map[string]any // the whole weir object
	}{
		{"gwlb", gwlbAlert(), nil, "4", "geneve encapsulation", map[string]any{"encap": "geneve",
			"gwlb_endpoint_id": "vpce-00123456789abcdef", "gwlb_attachment_id": "fedcba9876543210",
			"gwlb_flow_cookie": "0badf00d"}},
		{"mirror", mirrorAlert(), []string{"", "prod\n\"eni\"\x00"}, "6", "vxlan encapsulation", map[string]any{"encap": "vxlan",
			"vni": json.Number("123"), "session": "prod\n\"eni\"\x00", "direction": "egress"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.a
			line := eve.AppendAlertNamed(nil, &a, tc.sessions)
			if !bytes.HasPrefix(line, []byte(`{"timestamp":"`)) {
				t.Errorf("line does not start with the timestamp: %s", line)
			}
			m := decode(t, line)
			wantTime(t, "timestamp", m["timestamp"], a.Time)
			for key, want := range map[string]any{
				"event_type": "alert", "flow_id": num64(a.FlowID),
				"src_ip": eve.SuricataAddr(a.Src), "dest_ip": eve.SuricataAddr(a.Dst),
				"ip_v": tc.ipv, "pkt_src": tc.pktSrc, "direction": "to_client",
				"src_port": num64(uint64(a.SrcPort)), "dest_port": num64(uint64(a.DstPort)),
				"proto": eve.ProtoName(a.Proto),
			} {
				if m[key] != want {
					t.Errorf("%s = %v, want %v", key, m[key], want)
				}
			}
			al := obj(t, m, "alert")
			want := map[string]any{
				"action": a.Action.String(), "gid": num64(uint64(a.GID)),
				"signature_id": num64(uint64(a.SignatureID)), "rev": num64(uint64(a.Rev)),
				"signature": strings.ToValidUTF8(a.Signature, "\uFFFD"), "category": a.Category,
				"severity": num64(uint64(a.Severity)),
			}
			if len(al) != len(want) {
				t.Errorf("alert = %v, want %v", al, want)
			}
			for k, v := range want {
				if al[k] != v {
					t.Errorf("alert.%s = %v, want %v", k, al[k], v)
				}
			}
			tun := obj(t, m, "tunnel")
			if tun["src_ip"] != a.Tunnel.Src.String() || tun["dest_ip"] != a.Tunnel.Dst.String() ||
				tun["dest_port"] != num64(uint64(a.Tunnel.DstPort)) || tun["proto"] != "UDP" ||
				tun["depth"] != json.Number("1") || tun["pkt_src"] != "wire/pcap" || len(tun) != 7 {
				t.Errorf("tunnel = %v", tun)
			}
			w := obj(t, m, "weir")
			if len(w) != len(tc.weir) {
				t.Errorf("weir = %v, want %v", w, tc.weir)
			}
			for k, v := range tc.weir {
				if w[k] != v {
					t.Errorf("weir.%s = %v, want %v", k, w[k], v)
				}
			}
			// The packet went to the client: the flow object names the flow's client first.
			fl := obj(t, m, "flow")
			if fl["src_ip"] != eve.SuricataAddr(a.Dst) || fl["dest_ip"] != eve.SuricataAddr(a.Src) ||
				fl["src_port"] != num64(uint64(a.DstPort)) || fl["dest_port"] != num64(uint64(a.SrcPort)) ||
				fl["pkts_toserver"] != num64(a.Flow.PktsToServer) || fl["bytes_toclient"] != num64(a.Flow.BytesToClient) {
				t.Errorf("flow = %v", fl)
			}
			wantTime(t, "flow.start", fl["start"], a.Flow.Start)
			for _, key := range []string{"pcap_cnt", "ether", "packet", "packet_info", "dns", "tls", "app_proto"} {
				if _, ok := m[key]; ok {
					t.Errorf("%s present: %s", key, line)
				}
			}
		})
	}

	// Untunnelled, no options: neither a tunnel nor a weir object; ICMP has no ports.
	a := eve.Alert{Proto: packet.ProtoICMP, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}
	line := eve.AppendAlert(nil, &a)
	m := decode(t, line)
	for _, key := range []string{"tunnel", "weir", "src_port", "dest_port", "direction", "flow", "pcap_cnt"} {
		if _, ok := m[key]; ok {
			t.Errorf("%s present: %s", key, line)
		}
	}
	if al := obj(t, m, "alert"); al["action"] != "allowed" || al["signature"] != "" {
		t.Errorf("alert = %v", al)
	}
	if m["pkt_src"] != "wire/pcap" || m["ip_v"] != json.Number("4") {
		t.Errorf("pkt_src %v ip_v %v", m["pkt_src"], m["ip_v"])
	}
}

func TestAlertStrings(t *testing.T) {
	if eve.AlertAllowed.String() != "allowed" || eve.AlertBlocked.String() != "blocked" {
		t.Error("alert action names")
	}
	if eve.EventFlow.String() != "flow" || eve.EventAlert.String() != "alert" || eve.NumEventTypes.String() != "unknown" {
		t.Error("event type names")
	}
}

func TestAppendAlertAllocs(t *testing.T) {
	if eve.RaceEnabled {
		t.Skip("the race detector allocates")
	}
	buf := make([]byte, 0, 4096)
	names := []string{"", "prod \"eni\""}
	unnamed := fullAlert()
	unnamed.Proto, unnamed.InnerTunnel.Proto, unnamed.Tunnel = 200, 250, flow.Tunnel{} // protocols without a name
	for _, a := range []eve.Alert{gwlbAlert(), mirrorAlert(), fullAlert(), unnamed} {
		if n := testing.AllocsPerRun(100, func() { buf = eve.AppendAlertNamed(buf[:0], &a, names) }); n != 0 {
			t.Errorf("AppendAlert(%s): %v allocations, want 0", a.Signature, n)
		}
	}
}

// fullAlert has every optional field set: an IPv6 DNS query in GRE in GENEVE, with
// its Ethernet header and 128 bytes of packet.
func fullAlert() eve.Alert {
	a := gwlbAlert()
	a.Src, a.Dst = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::53")
	a.Proto, a.SrcPort, a.DstPort, a.ToServer, a.PcapCnt = packet.ProtoUDP, 5353, 53, true, 1234
	a.InnerTunnel = eve.IPTunnel{Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("198.51.100.2"), Proto: 47, Depth: 1}
	a.AppProto, a.DNSQuery, a.DNSType = eve.AppProtoDNS, "exfil.example.com", 16
	a.HasEther, a.SrcMAC, a.DstMAC = true, [6]byte{2, 0, 0, 0, 0, 1}, [6]byte{2, 0, 0, 0, 0, 2}
	a.Packet, a.LinkType = make([]byte, 128), 1
	return a
}

func BenchmarkAppendAlert(b *testing.B) {
	for _, bc := range []struct {
		name string
		a    eve.Alert
	}{{"gwlb", gwlbAlert()}, {"full", fullAlert()}} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				buf = eve.AppendAlert(buf[:0], &bc.a)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// TestWriterOrder: alerts and flows share one queue and are written in the order
// they were queued, counted by type.
func TestWriterOrder(t *testing.T) {
	var out bytes.Buffer
	w := eve.New(nopCloser{&out}, 0, quiet)
	w.SetSessionNames([]string{"", "sess\t1"})
	const n = 1000
	for i := range n {
		if i%3 == 0 {
			a := mirrorAlert()
			a.FlowID = uint64(i)
			w.Alert(&a)
		} else {
			r := udpRecord()
			r.ID = uint64(i)
			w.Flow(&r)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	alerts := uint64((n + 2) / 3)
	if w.WrittenOf(eve.EventAlert) != alerts || w.WrittenOf(eve.EventFlow) != n-alerts || w.Written() != n ||
		w.Dropped() != 0 || w.DroppedOf(eve.EventAlert) != 0 {
		t.Errorf("written alert %d flow %d total %d, dropped %d", w.WrittenOf(eve.EventAlert),
			w.WrittenOf(eve.EventFlow), w.Written(), w.Dropped())
	}
	lines := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for i, line := range lines {
		m := decode(t, line)
		want := "flow"
		if i%3 == 0 {
			want = "alert"
			if s := obj(t, m, "weir")["session"]; s != "sess\t1" {
				t.Fatalf("line %d: weir.session %v", i, s)
			}
		}
		if m["event_type"] != want || num(t, m["flow_id"]) != int64(i) {
			t.Fatalf("line %d: %s %v, want %s %d", i, m["event_type"], m["flow_id"], want, i)
		}
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// TestWriterDropsByType: on a stalled writer, packet-path alerts and flows are
// dropped at once and counted by type; background ones are not dropped.
func TestWriterDropsByType(t *testing.T) {
	pr, pw := io.Pipe()
	w := eve.New(pw, 1, quiet)
	a, r := gwlbAlert(), tcpRecord()
	a.Signature = strings.Repeat("x", 64<<10) // fills the writer's buffer soon
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(20 * time.Second)
		for (w.DroppedOf(eve.EventAlert) < 10 || w.DroppedOf(eve.EventFlow) < 10) && time.Now().Before(deadline) {
			w.Alert(&a)
			w.Flow(&r)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Alert or Flow blocked on a stalled writer")
	}
	if w.DroppedOf(eve.EventAlert) < 10 || w.DroppedOf(eve.EventFlow) < 10 ||
		w.Dropped() != w.DroppedOf(eve.EventAlert)+w.DroppedOf(eve.EventFlow) {
		t.Fatalf("dropped alert %d flow %d total %d", w.DroppedOf(eve.EventAlert), w.DroppedOf(eve.EventFlow), w.Dropped())
	}
	dropped := w.Dropped()
	bg := a
	bg.Background = true
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		for range 5 {
			w.Alert(&bg)
		}
	}()
	read := make(chan int)
	go func() {
		data, _ := io.ReadAll(pr)
		read <- bytes.Count(data, []byte("\n"))
	}()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("background alerts never got room")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := <-read; uint64(n) != w.Written() || w.Dropped() != dropped {
		t.Errorf("%d lines, written %d; dropped %d then %d", n, w.Written(), dropped, w.Dropped())
	}
}

func TestWriterPutAllocs(t *testing.T) {
	if eve.RaceEnabled {
		t.Skip("the race detector allocates")
	}
	w := eve.New(nopCloser{io.Discard}, 1<<10, quiet)
	defer w.Close()
	a, full, r := gwlbAlert(), fullAlert(), tcpRecord()
	if n := testing.AllocsPerRun(200, func() { w.Alert(&a); w.Alert(&full); w.Flow(&r) }); n != 0 {
		t.Errorf("Alert and Flow: %v allocations, want 0", n)
	}
}

// num64 is v as json.Number decodes it.
func num64(v uint64) json.Number { return json.Number(strconv.FormatUint(v, 10)) }

// goldenAlert is a plain alert, no tunnel nor weir object, that the golden tests add
// to: an IPv4 TCP packet from the server to the client of flow 77.
func goldenAlert() eve.Alert {
	return eve.Alert{
		GID: 1, SignatureID: 1000, Rev: 2, Severity: 3, Signature: "test", Category: "c",
		Time: start, FlowID: 77, Proto: packet.ProtoTCP,
		Src: netip.MustParseAddr("10.0.0.2"), Dst: netip.MustParseAddr("10.0.0.1"), SrcPort: 443, DstPort: 50000,
		Flow: eve.FlowState{PktsToServer: 5, PktsToClient: 6, BytesToServer: 700, BytesToClient: 8000, Start: start},
	}
}

// TestAppendAlertGolden pins each Suricata 8 field of an alert, in Suricata's order.
func TestAppendAlertGolden(t *testing.T) {
	const (
		head   = `{"timestamp":"2024-05-06T07:08:09.123456-0730","flow_id":77,"event_type":"alert","src_ip":"10.0.0.2","src_port":443,"dest_ip":"10.0.0.1","dest_port":50000,"proto":"TCP","ip_v":4,"pkt_src":"wire/pcap"`
		alert  = `,"alert":{"action":"allowed","gid":1,"signature_id":1000,"rev":2,"signature":"test","category":"c","severity":3}`
		flowTC = `,"direction":"to_client","flow":{"pkts_toserver":5,"pkts_toclient":6,"bytes_toserver":700,"bytes_toclient":8000,"start":"2024-05-06T07:08:09.123456-0730","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","src_port":50000,"dest_port":443}`
	)
	v6 := netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		name string
		edit func(a *eve.Alert)
		want string
	}{
		{"plain", func(*eve.Alert) {}, head + alert + flowTC + `}`},
		{"to_server", func(a *eve.Alert) {
			a.ToServer = true
			a.Src, a.Dst, a.SrcPort, a.DstPort = a.Dst, a.Src, a.DstPort, a.SrcPort
		}, `{"timestamp":"2024-05-06T07:08:09.123456-0730","flow_id":77,"event_type":"alert","src_ip":"10.0.0.1","src_port":50000,"dest_ip":"10.0.0.2","dest_port":443,"proto":"TCP","ip_v":4,"pkt_src":"wire/pcap"` +
			alert + `,"direction":"to_server","flow":{"pkts_toserver":5,"pkts_toclient":6,"bytes_toserver":700,"bytes_toclient":8000,"start":"2024-05-06T07:08:09.123456-0730","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","src_port":50000,"dest_port":443}}`},
		{"no flow", func(a *eve.Alert) { a.FlowID = 0 },
			strings.Replace(head, `"flow_id":77`, `"flow_id":0`, 1) + alert + `}`},
		{"pcap_cnt", func(a *eve.Alert) { a.PcapCnt = 12345 },
			strings.Replace(head, `"flow_id":77,`, `"flow_id":77,"pcap_cnt":12345,`, 1) + alert + flowTC + `}`},
		{"ipv6 icmp", func(a *eve.Alert) {
			a.Proto, a.Src, a.Dst = packet.ProtoICMPv6, v6, netip.MustParseAddr("fd00::53")
		}, `{"timestamp":"2024-05-06T07:08:09.123456-0730","flow_id":77,"event_type":"alert","src_ip":"2001:0db8:0000:0000:0000:0000:0000:0001","dest_ip":"fd00:0000:0000:0000:0000:0000:0000:0053","proto":"IPv6-ICMP","ip_v":6,"pkt_src":"wire/pcap"` +
			alert + `,"direction":"to_client","flow":{"pkts_toserver":5,"pkts_toclient":6,"bytes_toserver":700,"bytes_toclient":8000,"start":"2024-05-06T07:08:09.123456-0730","src_ip":"fd00:0000:0000:0000:0000:0000:0000:0053","dest_ip":"2001:0db8:0000:0000:0000:0000:0000:0001"}}`},
		{"ether", func(a *eve.Alert) {
			a.HasEther, a.SrcMAC, a.DstMAC = true, [6]byte{0x02, 0, 0, 0, 0, 0xaa}, [6]byte{0x0A, 0xBC, 0xde, 0xf0, 0x12, 0x34}
		}, head + `,"ether":{"src_mac":"02:00:00:00:00:aa","dest_mac":"0a:bc:de:f0:12:34"}` + alert + flowTC + `}`},
		{"dns", func(a *eve.Alert) {
			a.AppProto, a.DNSQuery, a.DNSType = eve.AppProtoDNS, "evil.example.com", 28
		}, head + alert + `,"dns":{"queries":[{"rrname":"evil.example.com","rrtype":"AAAA"}]},"app_proto":"dns"` + flowTC + `}`},
		{"dns unnamed type", func(a *eve.Alert) {
			a.AppProto, a.DNSQuery, a.DNSType = eve.AppProtoDNS, "a\"b\x00.example", 64
		}, head + alert + `,"dns":{"queries":[{"rrname":"a\"b\u0000.example","rrtype":"64"}]},"app_proto":"dns"` + flowTC + `}`},
		{"tls", func(a *eve.Alert) { a.AppProto, a.TLSSNI = eve.AppProtoTLS, "www.example.org" },
			head + alert + `,"tls":{"sni":"www.example.org"},"app_proto":"tls"` + flowTC + `}`},
		{"packet", func(a *eve.Alert) { a.Packet, a.LinkType = []byte{0x45, 0, 0, 0x14, 0xff}, 1 },
			head + alert + flowTC + `,"packet":"RQAAFP8=","packet_info":{"linktype":1,"linktype_name":"EN10MB"}}`},
		{"packet raw", func(a *eve.Alert) { a.Packet, a.LinkType = []byte{}, 101 },
			head + alert + flowTC + `,"packet":"","packet_info":{"linktype":101,"linktype_name":"RAW"}}`},
		{"gre", func(a *eve.Alert) {
			a.InnerTunnel = eve.IPTunnel{Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("198.51.100.2"), Proto: 47, Depth: 1}
		}, strings.Replace(head, "wire/pcap", "gre tunnel", 1) + alert +
			`,"tunnel":{"src_ip":"198.51.100.1","src_port":0,"dest_ip":"198.51.100.2","dest_port":0,"proto":"GRE","depth":1,"pkt_src":"wire/pcap"}` + flowTC + `}`},
		{"6in4 in replay", func(a *eve.Alert) {
			a.PcapCnt = 9
			a.InnerTunnel = eve.IPTunnel{Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("198.51.100.2"), Proto: 41}
		}, strings.Replace(strings.Replace(head, "wire/pcap", "ipv4 tunnel", 1), `"flow_id":77,`, `"flow_id":77,"pcap_cnt":9,`, 1) + alert +
			`,"tunnel":{"src_ip":"198.51.100.1","src_port":0,"dest_ip":"198.51.100.2","dest_port":0,"proto":"IPv6","depth":1,"pcap_cnt":9,"pkt_src":"wire/pcap"}` + flowTC + `}`},
		{"ip-in-ipv6", func(a *eve.Alert) {
			a.InnerTunnel = eve.IPTunnel{Src: v6, Dst: v6, Proto: 4, Depth: 2}
		}, strings.Replace(head, "wire/pcap", "ipv6 tunnel", 1) + alert +
			`,"tunnel":{"src_ip":"2001:0db8:0000:0000:0000:0000:0000:0001","src_port":0,"dest_ip":"2001:0db8:0000:0000:0000:0000:0000:0001","dest_port":0,"proto":"IPv4","depth":2,"pkt_src":"wire/pcap"}` + flowTC + `}`},
		{"gre in geneve", func(a *eve.Alert) {
			a.Tunnel = flow.Tunnel{Encap: flow.EncapGeneve, Src: netip.MustParseAddr("192.0.2.10"),
				Dst: netip.MustParseAddr("192.0.2.20"), SrcPort: 51000, DstPort: 6081}
			a.InnerTunnel = eve.IPTunnel{Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("198.51.100.2"), Proto: 47, Depth: 1}
		}, strings.Replace(head, "wire/pcap", "gre tunnel", 1) + alert +
			`,"tunnel":{"src_ip":"192.0.2.10","src_port":51000,"dest_ip":"192.0.2.20","dest_port":6081,"proto":"UDP","depth":2,"pkt_src":"wire/pcap"}` + flowTC + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := goldenAlert()
			tc.edit(&a)
			line := eve.AppendAlert(nil, &a)
			if string(line) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", line, tc.want)
			}
			decode(t, line) // valid JSON
		})
	}
}

// TestAppendAlertDecoded reads back every new field of a full alert with
// encoding/json.
func TestAppendAlertDecoded(t *testing.T) {
	a := gwlbAlert()
	a.PcapCnt, a.ToServer = 31, true
	a.InnerTunnel = eve.IPTunnel{Src: netip.MustParseAddr("2001:db8::a"), Dst: netip.MustParseAddr("2001:db8::b"), Proto: 41, Depth: 2}
	a.AppProto, a.DNSQuery, a.DNSType = eve.AppProtoDNS, "x.example", 255
	a.HasEther, a.SrcMAC, a.DstMAC = true, [6]byte{1, 2, 3, 4, 5, 6}, [6]byte{0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa}
	a.Packet, a.LinkType = []byte("\x00\x01\x02\xfe\xff"), 12
	m := decode(t, eve.AppendAlert(nil, &a))
	for key, want := range map[string]any{
		"pcap_cnt": json.Number("31"), "ip_v": json.Number("4"), "pkt_src": "ipv6 tunnel",
		"app_proto": "dns", "direction": "to_server", "packet": "AAEC/v8=",
	} {
		if m[key] != want {
			t.Errorf("%s = %v, want %v", key, m[key], want)
		}
	}
	if e := obj(t, m, "ether"); e["src_mac"] != "01:02:03:04:05:06" || e["dest_mac"] != "ff:ee:dd:cc:bb:aa" {
		t.Errorf("ether = %v", e)
	}
	if pi := obj(t, m, "packet_info"); pi["linktype"] != json.Number("12") || pi["linktype_name"] != "RAW" {
		t.Errorf("packet_info = %v", pi)
	}
	tun := obj(t, m, "tunnel")
	if tun["src_ip"] != "192.0.2.10" || tun["depth"] != json.Number("3") || tun["pcap_cnt"] != json.Number("31") ||
		tun["pkt_src"] != "wire/pcap" || tun["proto"] != "UDP" {
		t.Errorf("tunnel = %v", tun)
	}
	qs, ok := obj(t, m, "dns")["queries"].([]any)
	if !ok || len(qs) != 1 {
		t.Fatalf("dns.queries = %v", obj(t, m, "dns")["queries"])
	}
	if q, _ := qs[0].(map[string]any); q["rrname"] != "x.example" || q["rrtype"] != "ANY" {
		t.Errorf("dns.queries[0] = %v", qs[0])
	}
	fl := obj(t, m, "flow")
	if fl["src_ip"] != "10.0.2.9" || fl["dest_ip"] != "10.0.1.5" || fl["src_port"] != json.Number("443") ||
		fl["dest_port"] != json.Number("40000") || fl["pkts_toclient"] != json.Number("3") {
		t.Errorf("flow = %v", fl)
	}
	if _, ok := m["weir"]; !ok {
		t.Error("no weir object")
	}
}

func TestRRTypeNames(t *testing.T) {
	for typ, want := range map[uint16]string{1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX",
		16: "TXT", 28: "AAAA", 33: "SRV", 65: "HTTPS", 255: "ANY", 0: "0", 99: "99", 65535: "65535"} {
		a := goldenAlert()
		a.DNSQuery, a.DNSType = "q", typ
		dns := obj(t, decode(t, eve.AppendAlert(nil, &a)), "dns")
		if q := dns["queries"].([]any)[0].(map[string]any); q["rrtype"] != want {
			t.Errorf("type %d: rrtype %v, want %s", typ, q["rrtype"], want)
		}
	}
}

func TestAppProtoString(t *testing.T) {
	for p, want := range map[eve.AppProto]string{eve.AppProtoNone: "", eve.AppProtoDNS: "dns", eve.AppProtoTLS: "tls", 200: ""} {
		if got := p.String(); got != want {
			t.Errorf("AppProto(%d) = %q, want %q", p, got, want)
		}
	}
}

// alert.metadata is written as given; a rule without classtype has no category
// (as Suricata writes it).
func TestAlertMetadataAndNoCategory(t *testing.T) {
	a := eve.Alert{GID: 1, SignatureID: 7, Rev: 1, Severity: 3, Signature: "x",
		Metadata: []byte(`{"signature_severity":["Major"]}`), Time: time.Unix(1, 0),
		Proto: 17, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}
	var ev struct {
		Alert map[string]any `json:"alert"`
	}
	if err := json.Unmarshal(eve.AppendAlert(nil, &a), &ev); err != nil {
		t.Fatal(err)
	}
	if _, ok := ev.Alert["category"]; ok {
		t.Errorf("category written without a classtype: %v", ev.Alert)
	}
	md, _ := ev.Alert["metadata"].(map[string]any)
	if s, _ := md["signature_severity"].([]any); len(s) != 1 || s[0] != "Major" {
		t.Errorf("metadata %v", ev.Alert["metadata"])
	}
}
