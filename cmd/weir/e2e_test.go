package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"weir/config"
	"weir/internal/netns"

	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
	gwlbsim "weir/sim/gwlb"
)

const e2ePolicy = `
policy:
  default: allow
  rules:
    - {action: drop, proto: tcp, dst_port: 23}
    - {action: drop, src: 203.0.113.0/24}
`

// startNodeIn writes a config and runs weir in the node namespace until healthy.
func startNodeIn(t *testing.T, tp *topology, extra string, pcapDir ...string) (*process, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
gwlb:
  listen: 0.0.0.0:6081
  allowed_sources: [%s/32]
dataplane:
  workers: 2
%shealth:
  listen: %s:8080
  drain_delay: 3s
metrics:
  listen: %s:9090
outputs:
  eve: %s
%slog:
  level: debug
%s%s`, gwlbAddr, backendLines(tp), nodeAddr, nodeAddr, filepath.Join(dir, "eve.json"), pcapLine(pcapDir), e2ePolicy, extra)
	path := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if tp.backend != "" && tp.backend != "socket" {
		// AF_XDP hands weir the bytes as the sender wrote them: they need the
		// full checksums a NIC would deliver, not veth's offloaded ones.
		if err := inNetns(tp.gw, func() error { return netns.TxChecksumOff(tp.gwIf) }); err != nil {
			t.Fatal(err)
		}
		// The XDP fast path answers with XDP_TX, which a veth delivers only
		// to a peer with an XDP program (a NIC has no such condition).
		if !tp.peerXDP {
			if err := inNetns(tp.gw, func() error {
				detach, err := netns.XDPPass(tp.gwIf)
				if err == nil {
					t.Cleanup(detach)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			tp.peerXDP = true
		}
	}
	p := startIn(t, tp.node, weirBinary(t), "run", "-config", path)
	waitHealthy(t, tp.gw, "http://"+nodeAddr+":8080/healthz", 10*time.Second, p)
	return p, dir
}

// backendLines are the dataplane keys that put tp's node on tp.backend: afxdp
// binds the node's veth.
func backendLines(tp *topology) string {
	switch tp.backend {
	case "":
		return ""
	case "afxdp":
		return "  backend: afxdp\n  interface: veth-node\n"
	}
	return "  backend: " + tp.backend + "\n"
}

// eachBackend runs test on a fresh topology once per dataplane backend: the
// suites that must pass unchanged on both.
func eachBackend(t *testing.T, test func(t *testing.T, tp *topology)) {
	for _, b := range []string{"socket", "afxdp"} {
		t.Run(b, func(t *testing.T) {
			if b == "afxdp" {
				requireAFXDP(t)
			}
			tp := newTopology(t)
			tp.backend = b
			test(t, tp)
		})
	}
}

func pcapLine(dir []string) string {
	if len(dir) == 0 {
		return ""
	}
	return "  pcap: {dir: " + dir[0] + "}\n"
}

// e2eDecide is the expected verdict of a simulated flow under e2ePolicy.
func e2eDecide(t *testing.T, f gwlbsim.FlowReport) policy.Action {
	t.Helper()
	c, err := config.Parse("policy.yaml", []byte(e2ePolicy))
	if err != nil {
		t.Fatal(err)
	}
	p := packet.Packet{Src: f.Src, Dst: f.Dst, SrcPort: f.SrcPort, DstPort: f.DstPort}
	switch f.Proto {
	case "tcp":
		p.Proto = packet.ProtoTCP
	case "udp":
		p.Proto = packet.ProtoUDP
	case "icmp":
		p.Proto = packet.ProtoICMP
	case "icmpv6":
		p.Proto = packet.ProtoICMPv6
	default:
		t.Fatalf("unknown proto %q", f.Proto)
	}
	a, _ := c.Policy.Decide(&p)
	return a
}

// scrape returns the value of every sample of metric name (with labels) from /metrics.
func scrape(t *testing.T, ns string) map[string]float64 {
	t.Helper()
	return scrapeURL(t, ns, "http://"+nodeAddr+":9090/metrics")
}

// scrapeURL is scrape from a given metrics URL.
func scrapeURL(t *testing.T, ns, url string) map[string]float64 {
	t.Helper()
	code, body, err := get(ns, url)
	if err != nil || code != 200 {
		t.Fatalf("metrics %s: %d %v", url, code, err)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// TestE2EInline runs the GWLB simulator against weir across a veth: 1,000 flows of
// TCP, UDP and ICMP over IPv4 and IPv6 with jumbo inner packets. Every allowed packet
// must come back byte-identical from appliance:P to GWLB:6081, no denied packet may
// come back, tshark must dissect the replies as GENEVE with the AWS options, and
// every flow must be in the EVE log when weir stops.
func TestE2EInline(t *testing.T) { eachBackend(t, testE2EInline) }

func testE2EInline(t *testing.T, tp *topology) {
	node, dir := startNodeIn(t, tp, "")

	// Capture everything the GWLB receives; tshark dissects it afterwards.
	capFile := filepath.Join(t.TempDir(), "replies.pcap")
	capture := startCapture(t, tp.gw, tp.gwIf, capFile, received)

	sim := startIn(t, tp.gw, weirBinary(t), "sim", "gwlb",
		"-target", nodeAddr+":6081,http://"+nodeAddr+":8080/healthz",
		"-local", gwlbAddr, "-flows", "1000", "-packets", "6", "-rate", "20000",
		"-jumbo-every", "25", "-denied-source", "203.0.113.0/24", "-per-flow", "-seed", "7",
		"-reply-timeout", "5s")
	if err := sim.wait(t, 60*time.Second); err != nil {
		t.Fatalf("sim: %v\n%s", err, sim.stderr.String())
	}
	var rep gwlbsim.Report
	if err := json.Unmarshal(sim.stdout.Bytes(), &rep); err != nil {
		t.Fatalf("sim report: %v\n%s", err, sim.stdout.String())
	}
	t.Logf("sim: sent %d returned %d dropped %d mismatched %d jumbo %d p50 %.0fµs",
		rep.Sent, rep.Returned, rep.Dropped, rep.Mismatched, rep.Jumbo, rep.LatencyUS.P50)

	if rep.Mismatched != 0 {
		t.Errorf("%d replies were not byte-identical or came from the wrong address or port: %v", rep.Mismatched, rep.MismatchReasons)
	}
	if len(rep.Flows) != 1000 {
		t.Fatalf("report has %d flows, want 1000", len(rep.Flows))
	}
	if rep.Jumbo == 0 {
		t.Error("no jumbo packets were sent")
	}
	kinds := map[string]int{}
	var allowed, denied, wantReturned uint64
	for _, f := range rep.Flows {
		fam := "v4"
		if f.Src.Is6() {
			fam = "v6"
		}
		kinds[f.Proto+"/"+fam]++
		if f.Sent == 0 {
			t.Errorf("flow %+v sent nothing", f)
			continue
		}
		if e2eDecide(t, f) == policy.Drop {
			denied++
			if f.Returned != 0 {
				t.Errorf("denied flow %s %s:%d > %s:%d came back %d times", f.Proto, f.Src, f.SrcPort, f.Dst, f.DstPort, f.Returned)
			}
			continue
		}
		allowed++
		wantReturned += f.Sent
		if f.Returned != f.Sent {
			t.Errorf("allowed flow %s %s:%d > %s:%d: sent %d, returned %d", f.Proto, f.Src, f.SrcPort, f.Dst, f.DstPort, f.Sent, f.Returned)
		}
	}
	for _, k := range []string{"tcp/v4", "tcp/v6", "udp/v4", "udp/v6", "icmp/v4", "icmpv6/v6"} {
		if kinds[k] == 0 {
			t.Errorf("no %s flows in the run: %v", k, kinds)
		}
	}
	if allowed == 0 || denied == 0 {
		t.Errorf("want both allowed and denied flows, got %d and %d", allowed, denied)
	}
	if rep.Returned != wantReturned {
		t.Errorf("returned %d packets, want %d", rep.Returned, wantReturned)
	}

	m := scrape(t, tp.gw)
	if got := m[`weir_packets_total{action="allow",encap="geneve"}`]; got != float64(wantReturned) {
		t.Errorf("weir_packets_total allow = %v, want %d", got, wantReturned)
	}
	if got := m[`weir_packets_total{action="drop",encap="geneve"}`]; got != float64(rep.Sent-wantReturned) {
		t.Errorf("weir_packets_total drop = %v, want %d", got, rep.Sent-wantReturned)
	}
	if got := m["weir_flows_active"]; got != 1000 {
		t.Errorf("weir_flows_active = %v, want 1000", got)
	}
	if m["weir_healthy"] != 1 || m["weir_draining"] != 0 {
		t.Errorf("weir_healthy %v, weir_draining %v while serving, want 1 and 0", m["weir_healthy"], m["weir_draining"])
	}
	if tp.backend == "afxdp" {
		// Jumbo datagrams take the kernel's socket path, every other one AF_XDP.
		if got := m[`weir_xdp_packets_total{result="passed_oversize"}`]; got != float64(rep.Jumbo) {
			t.Errorf("weir_xdp_packets_total{passed_oversize} = %v, want the %d jumbo datagrams", got, rep.Jumbo)
		}
		if got := m[`weir_xdp_packets_total{result="redirected"}`]; got != float64(rep.Sent-rep.Jumbo) {
			t.Errorf("weir_xdp_packets_total{redirected} = %v, want %d", got, rep.Sent-rep.Jumbo)
		}
		if got := m[`weir_afxdp_tx_packets_total{queue="0"}`]; got == 0 || got >= float64(wantReturned) {
			t.Errorf("weir_afxdp_tx_packets_total = %v, want the returned packets less the jumbo ones (%d returned)", got, wantReturned)
		}
	}

	sendSignal(t, node, syscall.SIGTERM)
	if err := node.wait(t, 20*time.Second); err != nil {
		t.Fatalf("weir exit: %v\n%s", err, node.stderr.String())
	}
	checkEVE(t, filepath.Join(dir, "eve.json"), rep)

	frames, err := capture.finish()
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	t.Logf("captured %d frames", frames)
	requireTool(t, "tshark")
	checkCapture(t, capFile, wantReturned)
}

// checkEVE asserts one flow record per simulated flow, with the ACL verdict.
func checkEVE(t *testing.T, path string, rep gwlbsim.Report) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type key struct {
		src, dst string
		proto    string
	}
	records := map[key]map[string]any{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("EVE line %d: %v: %s", n+1, err, sc.Text())
		}
		n++
		if ev["event_type"] != "flow" {
			continue
		}
		records[key{compactAddr(fmt.Sprint(ev["src_ip"])), compactAddr(fmt.Sprint(ev["dest_ip"])), fmt.Sprint(ev["proto"])}] = ev
	}
	if n != len(rep.Flows) {
		t.Errorf("EVE has %d records, want %d (one per flow)", n, len(rep.Flows))
	}
	protoName := map[string]string{"tcp": "TCP", "udp": "UDP", "icmp": "ICMP", "icmpv6": "IPv6-ICMP"}
	for _, fl := range rep.Flows {
		ev, ok := records[key{fl.Src.String(), fl.Dst.String(), protoName[fl.Proto]}]
		if !ok {
			t.Errorf("no EVE flow record for %s %s > %s", fl.Proto, fl.Src, fl.Dst)
			continue
		}
		w, _ := ev["weir"].(map[string]any)
		want := "allow"
		if e2eDecide(t, fl) == policy.Drop {
			want = "drop"
		}
		if w["action"] != want {
			t.Errorf("EVE action for %s %s > %s = %v, want %s", fl.Proto, fl.Src, fl.Dst, w["action"], want)
		}
		if w["gwlb_endpoint_id"] != fmt.Sprintf("vpce-%017x", fl.Endpoint) {
			t.Errorf("EVE endpoint %v, want vpce-%017x", w["gwlb_endpoint_id"], fl.Endpoint)
		}
		fw, _ := ev["flow"].(map[string]any)
		if got := fw["pkts_toserver"].(float64) + fw["pkts_toclient"].(float64); got != float64(fl.Sent) {
			t.Errorf("EVE packets for %s %s > %s = %v, want %d", fl.Proto, fl.Src, fl.Dst, got, fl.Sent)
		}
	}
}

// checkCapture has tshark dissect the captured replies: every one GENEVE from
// appliance:P to GWLB:6081 with the three AWS options, and never an ICMP message.
func checkCapture(t *testing.T, file string, want uint64) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-Y", "ip.src == "+nodeAddr, "-T", "fields", "-E", "separator=/t", "-E", "aggregator=;",
		"-e", "ip.src", "-e", "ip.dst", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "ip.proto",
		"-e", "geneve.version", "-e", "geneve.option.class", "-e", "geneve.option.type", "-e", "geneve.option.length").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var geneveReplies uint64
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) < 9 {
			t.Fatalf("tshark line %q", l)
		}
		// Inner packets repeat the IP and transport fields: the outer ones come first.
		for i := range 5 {
			f[i], _, _ = strings.Cut(f[i], ";")
		}
		if f[4] != "17" {
			t.Errorf("the node sent IP protocol %s to the GWLB, want only UDP", f[4])
			continue
		}
		if f[0] != nodeAddr || f[1] != gwlbAddr || f[3] != "6081" || f[2] == "6081" {
			t.Errorf("reply %s:%s > %s:%s, want %s:P > %s:6081", f[0], f[2], f[1], f[3], nodeAddr, gwlbAddr)
		}
		classes, types := strings.Split(f[6], ";"), strings.Split(f[7], ";")
		var aws []string
		for i := range classes {
			if i < len(types) && (classes[i] == "0x0108" || classes[i] == "0x108" || classes[i] == "264") {
				aws = append(aws, types[i])
			}
		}
		if strings.Join(aws, ",") != "1,2,3" && strings.Join(aws, ",") != "0x01,0x02,0x03" {
			t.Errorf("reply options class %s type %s: want AWS types 1,2,3", f[6], f[7])
		}
		geneveReplies++
	}
	if geneveReplies != want {
		t.Errorf("tshark saw %d GENEVE replies, want %d", geneveReplies, want)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// innerUDP4 is a minimal valid IPv4/UDP packet.
func innerUDP4(src, dst string, sport, dport uint16, payload int) []byte {
	b := make([]byte, 28+payload)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8] = 64
	b[9] = 17
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], ^uint16(foldSum(packet.Checksum(0, b[:20]))))
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	binary.BigEndian.PutUint16(b[24:], uint16(8+payload))
	return b
}

func foldSum(s uint32) uint32 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return s
}

// gwlbSocket opens, in the GWLB namespace, a UDP socket to send from and the
// GWLB's :6081 socket that replies come to.
func gwlbSocket(t *testing.T, tp *topology) (send, recv *net.UDPConn) {
	t.Helper()
	err := inNetns(tp.gw, func() (err error) {
		if send, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(gwlbAddr)}); err != nil {
			return err
		}
		recv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(gwlbAddr), Port: 6081})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { send.Close(); recv.Close() })
	return send, recv
}

var nodeGeneve = &net.UDPAddr{IP: net.ParseIP(nodeAddr), Port: 6081}

// TestE2EMalformed sends every kind of malformed datagram: each is counted under its
// reason, and the node keeps returning good packets.
func TestE2EMalformed(t *testing.T) { eachBackend(t, testE2EMalformed) }

func testE2EMalformed(t *testing.T, tp *topology) {
	node, _ := startNodeIn(t, tp, "")
	send, recv := gwlbSocket(t, tp)

	aws := geneve.AWS{EndpointID: 0x0123456789abcdef, AttachmentID: 7, FlowCookie: 0xfeed}
	good := geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, aws)
	good = append(good, innerUDP4("10.0.0.1", "10.1.0.1", 1000, 53, 16)...)
	withProto := func(proto uint16, inner []byte) []byte {
		return append(geneve.AppendAWSHeader(nil, proto, aws), inner...)
	}
	badVersion := bytes.Clone(good)
	badVersion[0] |= 0x40
	optsPast := bytes.Clone(good[:12])
	optsPast[0] = 0x3f
	overrun := geneve.AppendHeader(nil, geneve.ProtoIPv4, 0, []byte{0x01, 0x08, 0x01, 0x1f})
	overrun = append(overrun, innerUDP4("10.0.0.1", "10.1.0.1", 1, 2, 0)...)
	shortAWS := geneve.AppendHeader(nil, geneve.ProtoIPv4, 0, geneve.AppendOption(nil, geneve.ClassAWS, geneve.AWSTypeEndpointID, []byte{0, 0, 0, 1}))
	shortAWS = append(shortAWS, innerUDP4("10.0.0.1", "10.1.0.1", 1, 2, 0)...)
	badIHL := innerUDP4("10.0.0.1", "10.1.0.1", 1, 2, 0)
	badIHL[0] = 0x44
	truncUDP := innerUDP4("10.0.0.1", "10.1.0.1", 1, 2, 0)[:24]
	binary.BigEndian.PutUint16(truncUDP[2:], 24)

	cases := []struct {
		reason string
		b      []byte
	}{
		{"empty", nil},
		{"truncated", good[:5]},
		{"bad_version", badVersion},
		{"options_past_packet", optsPast},
		{"option_overrun", overrun},
		{"bad_aws_option", shortAWS},
		{"unknown_protocol", withProto(0x88cc, innerUDP4("10.0.0.1", "10.1.0.1", 1, 2, 0))},
		{"no_payload", withProto(geneve.ProtoIPv4, nil)},
		{"inner_mismatch", withProto(geneve.ProtoIPv6, innerUDP4("10.0.0.1", "10.1.0.1", 1, 2, 0))},
		{"inner_" + packet.ReasonIPv4Header.String(), withProto(geneve.ProtoIPv4, badIHL)},
		{"inner_" + packet.ReasonUDPHeader.String(), withProto(geneve.ProtoIPv4, truncUDP)},
	}
	const each = 3
	for _, c := range cases {
		for range each {
			if _, err := send.WriteToUDP(c.b, nodeGeneve); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A good packet after all that still comes back, byte-identical, to GWLB:6081.
	if _, err := send.WriteToUDP(good, nodeGeneve); err != nil {
		t.Fatal(err)
	}
	recv.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 9000)
	n, from, err := recv.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no reply to a good packet after malformed ones: %v\n%s", err, node.stderr.String())
	}
	if !bytes.Equal(buf[:n], good) {
		t.Errorf("reply differs from what was sent")
	}
	if from.IP.String() != nodeAddr || from.Port != send.LocalAddr().(*net.UDPAddr).Port {
		t.Errorf("reply from %s, want %s:%d", from, nodeAddr, send.LocalAddr().(*net.UDPAddr).Port)
	}

	waitFor(t, 5*time.Second, func() bool {
		m := scrape(t, tp.gw)
		return m[`weir_packets_total{action="malformed",encap="geneve"}`] == float64(each*len(cases))
	})
	m := scrape(t, tp.gw)
	for _, c := range cases {
		k := fmt.Sprintf(`weir_decode_errors_total{encap="geneve",reason=%q}`, c.reason)
		if got := m[k]; got != each {
			t.Errorf("%s = %v, want %d", k, got, each)
		}
	}
	if node.exited() {
		t.Fatalf("weir exited: %s", node.stderr.String())
	}
}

// TestE2EDrain sends SIGTERM: health must turn 503 while weir still forwards for the
// drain delay, then weir flushes EVE and exits 0.
func TestE2EDrain(t *testing.T) {
	tp := newTopology(t)
	node, dir := startNodeIn(t, tp, "")
	send, recv := gwlbSocket(t, tp)
	pkt := geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 1, FlowCookie: 2})
	pkt = append(pkt, innerUDP4("10.0.0.9", "10.1.0.9", 4000, 53, 32)...)
	roundTrip := func() error {
		if _, err := send.WriteToUDP(pkt, nodeGeneve); err != nil {
			return err
		}
		recv.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 2048)
		n, _, err := recv.ReadFromUDP(buf)
		if err != nil {
			return err
		}
		if !bytes.Equal(buf[:n], pkt) {
			return fmt.Errorf("reply differs")
		}
		return nil
	}
	if err := roundTrip(); err != nil {
		t.Fatalf("before SIGTERM: %v", err)
	}

	start := time.Now()
	sendSignal(t, node, syscall.SIGTERM)
	waitFor(t, 1500*time.Millisecond, func() bool {
		code, _, err := get(tp.gw, "http://"+nodeAddr+":8080/healthz")
		return err == nil && code == 503
	})
	if node.exited() {
		t.Fatal("weir exited before health turned 503")
	}
	t.Logf("health 503 %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	if err := roundTrip(); err != nil {
		t.Errorf("draining node stopped forwarding: %v", err)
	}
	if m := scrape(t, tp.gw); m["weir_healthy"] != 0 || m["weir_draining"] != 1 {
		t.Errorf("while draining: weir_healthy %v, weir_draining %v, want 0 and 1", m["weir_healthy"], m["weir_draining"])
	}
	if err := node.wait(t, 15*time.Second); err != nil {
		t.Fatalf("weir exit: %v\n%s", err, node.stderr.String())
	}
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("weir exited %s after SIGTERM, before its 3s drain delay", d)
	}
	eve, err := os.ReadFile(filepath.Join(dir, "eve.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`"event_type":"flow".*"src_ip":"10.0.0.9","src_port":4000`).Match(eve) {
		t.Errorf("EVE lacks the flow record after shutdown:\n%s", eve)
	}
}

// TestE2EDrainCutShort: a second SIGTERM during the drain ends it at once, and weir
// still writes its flows out and exits 0.
func TestE2EDrainCutShort(t *testing.T) {
	tp := newTopology(t)
	node, dir := startNodeIn(t, tp, "")
	send, recv := gwlbSocket(t, tp)
	pkt := geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 1, FlowCookie: 2})
	pkt = append(pkt, innerUDP4("10.0.0.7", "10.1.0.7", 4007, 53, 8)...)
	if _, err := send.WriteToUDP(pkt, nodeGeneve); err != nil {
		t.Fatal(err)
	}
	recv.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := recv.ReadFromUDP(make([]byte, 2048)); err != nil {
		t.Fatalf("no reply: %v", err)
	}
	start := time.Now()
	sendSignal(t, node, syscall.SIGTERM)
	waitFor(t, 1500*time.Millisecond, func() bool {
		code, _, err := get(tp.gw, "http://"+nodeAddr+":8080/healthz")
		return err == nil && code == 503
	})
	sendSignal(t, node, syscall.SIGTERM)
	if err := node.wait(t, 10*time.Second); err != nil {
		t.Fatalf("weir exit: %v\n%s", err, node.stderr.String())
	}
	if d := time.Since(start); d >= 3*time.Second {
		t.Errorf("weir took %s to stop after the second signal; the drain was not cut short", d)
	}
	eve, err := os.ReadFile(filepath.Join(dir, "eve.json"))
	if err != nil || !bytes.Contains(eve, []byte(`"src_ip":"10.0.0.7","src_port":4007`)) {
		t.Errorf("EVE lacks the flow after a cut-short drain (%v):\n%s", err, eve)
	}
}
