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
		Flow:      eve.FlowState{PktsToServer: 1, PktsToClient: 1, BytesToServer: 70, BytesToClient: 120, Start: start},
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
	for _, a := range []eve.Alert{gwlbAlert(), mirrorAlert()} {
		if n := testing.AllocsPerRun(100, func() { buf = eve.AppendAlertNamed(buf[:0], &a, names) }); n != 0 {
			t.Errorf("AppendAlert(%s): %v allocations, want 0", a.Signature, n)
		}
	}
}

func BenchmarkAppendAlert(b *testing.B) {
	a := gwlbAlert()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = eve.AppendAlert(buf[:0], &a)
	}
	b.SetBytes(int64(len(buf)))
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
	a, r := gwlbAlert(), tcpRecord()
	if n := testing.AllocsPerRun(200, func() { w.Alert(&a); w.Flow(&r) }); n != 0 {
		t.Errorf("Alert and Flow: %v allocations, want 0", n)
	}
}

// num64 is v as json.Number decodes it.
func num64(v uint64) json.Number { return json.Number(strconv.FormatUint(v, 10)) }
