package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"weir/dataplane/packet"
)

// kernelFilter is an AWS filter, as `aws ec2 describe-traffic-mirror-filters` prints
// it: UDP 5000-5099 and ICMP are mirrored, TCP 22 is rejected before TCP in general
// is accepted, and nothing else matches (so nothing else is mirrored).
const kernelFilter = `{
  "TrafficMirrorFilters": [{
    "TrafficMirrorFilterId": "tmf-0a1b2c3d4e5f60718",
    "Description": "kernel vxlan test",
    "IngressFilterRules": [],
    "EgressFilterRules": [
      {"TrafficMirrorFilterRuleId": "tmfr-1", "TrafficMirrorFilterId": "tmf-0a1b2c3d4e5f60718",
       "TrafficDirection": "egress", "RuleNumber": 300, "RuleAction": "accept", "Protocol": 6,
       "DestinationCidrBlock": "10.200.0.0/24", "SourceCidrBlock": "10.200.0.0/24"},
      {"TrafficMirrorFilterRuleId": "tmfr-2", "TrafficMirrorFilterId": "tmf-0a1b2c3d4e5f60718",
       "TrafficDirection": "egress", "RuleNumber": 100, "RuleAction": "accept", "Protocol": 17,
       "DestinationPortRange": {"FromPort": 5000, "ToPort": 5099},
       "DestinationCidrBlock": "10.200.0.0/24", "SourceCidrBlock": "10.200.0.0/24"},
      {"TrafficMirrorFilterRuleId": "tmfr-3", "TrafficMirrorFilterId": "tmf-0a1b2c3d4e5f60718",
       "TrafficDirection": "egress", "RuleNumber": 200, "RuleAction": "reject", "Protocol": 6,
       "DestinationPortRange": {"FromPort": 22, "ToPort": 22},
       "DestinationCidrBlock": "0.0.0.0/0", "SourceCidrBlock": "0.0.0.0/0"},
      {"TrafficMirrorFilterRuleId": "tmfr-4", "TrafficMirrorFilterId": "tmf-0a1b2c3d4e5f60718",
       "TrafficDirection": "egress", "RuleNumber": 400, "RuleAction": "accept", "Protocol": 1,
       "DestinationCidrBlock": "0.0.0.0/0", "SourceCidrBlock": "0.0.0.0/0"}
    ],
    "NetworkServices": [],
    "Tags": [{"Key": "Name", "Value": "e2e"}]
  }]
}`

const (
	vxlanMAC  = "02:00:00:00:42:01" // the "ENI": the kernel vxlan device in the source namespace
	overlayIP = "10.200.0.1"
	peerIP    = "10.200.0.2" // exists only as a static neighbour entry
	snapLen   = 96
)

// frameInfo is what tshark says of one frame.
type frameInfo struct {
	len, capLen int
	proto       string // "udp/5003", "tcp/80", "icmp/8", ...
}

func tsharkFrames(t *testing.T, files ...string) []frameInfo {
	t.Helper()
	var out []frameInfo
	for _, f := range files {
		b, err := exec.Command("tshark", "-r", f, "-T", "fields", "-E", "separator=/t",
			"-e", "frame.len", "-e", "frame.cap_len", "-e", "ip.proto", "-e", "ipv6.nxt",
			"-e", "udp.dstport", "-e", "tcp.dstport", "-e", "icmp.type").Output()
		if err != nil {
			t.Fatalf("tshark %s: %v", f, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if line == "" {
				continue
			}
			x := strings.Split(line, "\t")
			fi := frameInfo{}
			fi.len, _ = strconv.Atoi(x[0])
			fi.capLen, _ = strconv.Atoi(x[1])
			switch {
			case x[2] == "17":
				fi.proto = "udp/" + x[4]
			case x[2] == "6":
				fi.proto = "tcp/" + x[5]
			case x[2] == "1":
				fi.proto = "icmp/" + x[6]
			case x[3] != "":
				fi.proto = "ipv6/" + x[3]
			default:
				fi.proto = "other"
			}
			out = append(out, fi)
		}
	}
	return out
}

// TestE2EKernelVXLANMirror: the Linux kernel's own VXLAN device is the mirror source.
// Ordinary traffic sent through it reaches weir as VXLAN; the pcap weir writes, read
// back by tshark, must hold exactly the packets the AWS filter accepts, each cut to
// packet_length with its original length kept.
func TestE2EKernelVXLANMirror(t *testing.T) { eachBackend(t, testE2EKernelVXLANMirror) }

func testE2EKernelVXLANMirror(t *testing.T, tp *topology) {
	requireTool(t, "tshark")
	sh(t, "ip", "-n", tp.gw, "link", "add", "vx0", "address", vxlanMAC, "type", "vxlan", "id", "4242",
		"remote", nodeAddr, "local", gwlbAddr, "dstport", "4789", "dev", "veth-gw")
	sh(t, "ip", "-n", tp.gw, "addr", "add", overlayIP+"/24", "dev", "vx0")
	sh(t, "ip", "-n", tp.gw, "link", "set", "vx0", "up")
	sh(t, "ip", "-n", tp.gw, "neigh", "add", peerIP, "lladdr", "02:00:00:00:42:02", "dev", "vx0", "nud", "permanent")

	dir := t.TempDir()
	filterFile := filepath.Join(dir, "filter.json")
	if err := os.WriteFile(filterFile, []byte(kernelFilter), 0o644); err != nil {
		t.Fatal(err)
	}
	pcapDir := filepath.Join(dir, "pcap")
	node, _ := startNodeIn(t, tp, fmt.Sprintf(`
mirror:
  listen: 0.0.0.0:4789
  sessions:
    - {vni: 4242, name: kernel, packet_length: %d, filter: %s, eni_mac: "%s"}
`, snapLen, filterFile, vxlanMAC), pcapDir)

	// What the kernel sends through its vxlan device: ground truth.
	sentFile := filepath.Join(dir, "sent.pcap")
	sentCap := startCapture(t, tp.gw, "vx0", sentFile, sent)

	err := inNetns(tp.gw, func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(overlayIP)})
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range 10 { // accepted: UDP 5000-5099, some longer than packet_length
			if _, err := c.WriteToUDP(make([]byte, 20+50*i), &net.UDPAddr{IP: net.ParseIP(peerIP), Port: 5000 + i}); err != nil {
				return err
			}
		}
		for range 5 { // no rule matches: not mirrored
			if _, err := c.WriteToUDP(make([]byte, 64), &net.UDPAddr{IP: net.ParseIP(peerIP), Port: 6000}); err != nil {
				return err
			}
		}
		// One SYN each (the dial gives up before the first retransmission).
		for _, port := range []int{22, 80} {
			d := net.Dialer{Timeout: 300 * time.Millisecond}
			if conn, err := d.DialContext(context.Background(), "tcp4", net.JoinHostPort(peerIP, strconv.Itoa(port))); err == nil {
				conn.Close()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Three ICMP echo requests (accepted by rule 400).
	err = inNetns(tp.gw, func() error {
		c, err := net.ListenPacket("ip4:icmp", overlayIP)
		if err != nil {
			return err
		}
		defer c.Close()
		for seq := range 3 {
			echo := []byte{8, 0, 0, 0, 0x12, 0x34, 0, byte(seq), 'w', 'e', 'i', 'r'}
			binary.BigEndian.PutUint16(echo[2:], ^uint16(foldSum(packet.Checksum(0, echo))))
			if _, err := c.WriteTo(echo, &net.IPAddr{IP: net.ParseIP(peerIP)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until every frame the kernel sent (20 of ours, and whatever else it sends on
	// the device) is captured and has reached weir, rather than for a fixed time.
	waitFor(t, 5*time.Second, func() bool { return sentCap.count() >= 20 })
	waitFor(t, 5*time.Second, func() bool {
		return scrape(t, tp.node)[`weir_mirror_received_packets_total{session="kernel"}`] >= float64(sentCap.count())
	})
	if _, err := sentCap.finish(); err != nil {
		t.Fatal(err)
	}
	if tp.backend == "afxdp" {
		// The mirror listener is on the same backend: the frames came by AF_XDP.
		if got := scrape(t, tp.node)[`weir_afxdp_rx_packets_total{queue="0"}`]; got < float64(sentCap.count()) {
			t.Errorf("weir_afxdp_rx_packets_total = %v, want at least the %d frames mirrored", got, sentCap.count())
		}
	}
	sendSignal(t, node, syscall.SIGTERM)
	if err := node.wait(t, 15*time.Second); err != nil {
		t.Fatalf("weir: %v\n%s", err, node.stderr.String())
	}

	files, _ := filepath.Glob(filepath.Join(pcapDir, "*.pcap"))
	if len(files) == 0 {
		t.Fatalf("weir wrote no pcap in %s\n%s", pcapDir, node.stderr.String())
	}
	got := tsharkFrames(t, files...)
	all := tsharkFrames(t, sentFile)
	accepted := func(p string) bool {
		if strings.HasPrefix(p, "udp/") {
			port, _ := strconv.Atoi(p[4:])
			return port >= 5000 && port <= 5099
		}
		return p == "tcp/80" || p == "icmp/8"
	}
	var want []frameInfo
	kinds := map[string]int{}
	for _, f := range all {
		kinds[f.proto]++
		if accepted(f.proto) {
			want = append(want, frameInfo{len: f.len, capLen: min(f.len, snapLen), proto: f.proto})
		}
	}
	t.Logf("kernel sent %d frames %v; weir recorded %d", len(all), kinds, len(got))
	for _, k := range []string{"udp/5000", "udp/6000", "tcp/22", "tcp/80", "icmp/8"} {
		if kinds[k] == 0 {
			t.Errorf("the kernel sent no %s frame: the test did not exercise the filter", k)
		}
	}
	key := func(fs []frameInfo) []string {
		var s []string
		for _, f := range fs {
			s = append(s, fmt.Sprintf("%s len=%d cap=%d", f.proto, f.len, f.capLen))
		}
		sort.Strings(s)
		return s
	}
	if g, w := strings.Join(key(got), "\n"), strings.Join(key(want), "\n"); g != w {
		t.Errorf("weir's pcap differs from what the filter accepts:\ngot:\n%s\nwant:\n%s", g, w)
	}
	truncated := 0
	for _, f := range got {
		if f.capLen < f.len {
			truncated++
		}
	}
	if truncated == 0 {
		t.Error("no recorded frame was cut to packet_length")
	}
}

// TestE2EMirrorDuplicates: weir sim mirror mirrors every packet at both ends of its
// flows (two ENIs, two VNIs, two outer sources). With dedupe on, weir keeps one copy
// of each and counts the others; the EVE flow records carry the tunnel, the session
// and the direction.
func TestE2EMirrorDuplicates(t *testing.T) {
	tp := newTopology(t)
	// The two mirrored ENIs are addresses of the source namespace.
	for _, a := range []string{"192.0.2.11", "192.0.2.12"} {
		sh(t, "ip", "-n", tp.gw, "addr", "add", a+"/24", "dev", "veth-gw")
	}
	dir := t.TempDir()
	node, nodeDir := startNodeIn(t, tp, `
mirror:
  listen: 0.0.0.0:4789
  dedupe_window: 200ms
  sessions:
    - {vni: 101, name: web, eni_ip: 192.0.2.11, interface_id: eni-00000000000000eb}
    - {vni: 102, name: db, eni_ip: 192.0.2.12, interface_id: eni-00000000000000db}
`, filepath.Join(dir, "pcap"))
	sim := startIn(t, tp.gw, weirBinary(t), "sim", "mirror", "-target", nodeAddr+":4789",
		"-eni", "192.0.2.11,02:00:00:00:00:11,101", "-eni", "192.0.2.12,02:00:00:00:00:12,102",
		"-both-ends", "-flows", "40", "-packets", "6", "-rate", "2000", "-per-flow")
	if err := sim.wait(t, 30*time.Second); err != nil {
		t.Fatalf("sim: %v\n%s", err, sim.stderr.String())
	}
	var rep struct {
		Sent, Frames, Duplicates uint64
		Flows                    []struct{ Packets uint64 }
	}
	if err := json.Unmarshal(sim.stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, sim.stdout.String())
	}
	if rep.Duplicates == 0 || rep.Sent != rep.Frames+rep.Duplicates {
		t.Fatalf("sim report %+v: want duplicates", rep)
	}
	waitFor(t, 5*time.Second, func() bool {
		m := scrape(t, tp.gw)
		return m[`weir_mirror_received_packets_total{session="web"}`]+m[`weir_mirror_received_packets_total{session="db"}`] == float64(rep.Sent)
	})
	m := scrape(t, tp.gw)
	dups := m[`weir_mirror_duplicates_total{session="web"}`] + m[`weir_mirror_duplicates_total{session="db"}`]
	acc := m[`weir_mirror_accepted_packets_total{session="web"}`] + m[`weir_mirror_accepted_packets_total{session="db"}`]
	if dups != float64(rep.Duplicates) || acc != float64(rep.Frames) {
		t.Errorf("weir suppressed %v duplicates and accepted %v packets; the sim sent %d originals and %d duplicates", dups, acc, rep.Frames, rep.Duplicates)
	}
	if got := m[`weir_packets_total{action="duplicate",encap="vxlan"}`]; got != float64(rep.Duplicates) {
		t.Errorf("weir_packets_total duplicate = %v, want %d", got, rep.Duplicates)
	}

	sendSignal(t, node, syscall.SIGTERM)
	if err := node.wait(t, 15*time.Second); err != nil {
		t.Fatalf("weir: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(nodeDir, "eve.json"))
	if err != nil {
		t.Fatal(err)
	}
	var flows int
	var pkts uint64
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var ev struct {
			F      map[string]any `json:"flow"`
			Tunnel map[string]any `json:"tunnel"`
			Weir   map[string]any `json:"weir"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		flows++
		pkts += uint64(ev.F["pkts_toserver"].(float64) + ev.F["pkts_toclient"].(float64))
		if ev.Weir["encap"] != "vxlan" || ev.Tunnel["dest_port"] != float64(4789) {
			t.Errorf("mirror flow record without its tunnel: %s", line)
		}
		if s := ev.Weir["session"]; s != "web" && s != "db" {
			t.Errorf("session %v", s)
		}
		if d := ev.Weir["direction"]; d != "egress" && d != "ingress" {
			t.Errorf("direction %v: with eni_ip set, every packet's direction is known", d)
		}
	}
	// Each flow is seen once (the duplicates were dropped before the flow table)...
	if flows != len(rep.Flows) || pkts != rep.Frames {
		t.Errorf("EVE has %d flows with %d packets; the sim made %d flows of %d packets", flows, pkts, len(rep.Flows), rep.Frames)
	}
}

// TestE2EFilterErrors: a filter file that is not valid is reported by check-config
// (and by run) as FILE:LINE naming the rule.
func TestE2EFilterErrors(t *testing.T) {
	dir := t.TempDir()
	bad := strings.Replace(kernelFilter, `"RuleNumber": 100, "RuleAction": "accept", "Protocol": 17`,
		`"RuleNumber": 100, "RuleAction": "accept", "Protocol": 17, "SourcePortRange": {"FromPort": 9000, "ToPort": 80}`, 1)
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(cfg, []byte("mirror:\n  sessions:\n    - vni: 7\n      filter: bad.json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check-config", cfg}, {"run", "-config", cfg}} {
		out, err := exec.Command(weirBinary(t), args...).CombinedOutput()
		if err == nil {
			t.Fatalf("weir %s accepted a bad filter", args[0])
		}
		msg := string(out)
		if !strings.HasPrefix(msg, cfg+":4: ") || !strings.Contains(msg, "rule 100") || !strings.Contains(msg, "9000") {
			t.Errorf("weir %s: %q: want %s:4: ... naming egress rule 100 and its bad port range", args[0], msg, cfg)
		}
	}
}
