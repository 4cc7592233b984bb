package engine_test

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"weir/config"
	"weir/dataplane"
	"weir/dataplane/engine"
	"weir/dataplane/eve"
	"weir/geneve"
	"weir/vxlan"
)

// TestReloadRules: a reload puts a new rule set in force for every packet; a flow
// a drop rule blocked stays blocked when the rule goes; a rule file that fails to
// parse keeps the running set, with the error at the rule's FILE:LINE.
func TestReloadRules(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "local.rules")
	cfg := filepath.Join(dir, "weir.yaml")
	write(t, rules, `drop tcp any any <> any 444 (msg:"444"; sid:1;)`+"\n")
	e := load(t, cfg, "detect:\n  rules: [local.rules]\n  mode: ips\n")
	if got := e.DetectInfo().Rules; got != 1 {
		t.Fatalf("%d rules loaded", got)
	}
	w := e.Pipeline.NewWorker()
	blocked, open := tcpConv(40000, 444), tcpConv(40001, 443)
	if v := next(w, blocked); v != dataplane.VerdictDrop {
		t.Fatalf("a packet the drop rule matches: verdict %v", v)
	}
	if v := next(w, open); v != dataplane.VerdictReturn {
		t.Fatalf("another flow: verdict %v", v)
	}

	write(t, rules, `drop tcp any any <> any 443 (msg:"443"; sid:2;)`+"\n")
	r, err := e.Reload(cfg)
	if err != nil || r.Detect.Rules != 1 {
		t.Fatalf("Reload: %+v, %v", r, err)
	}
	if v := next(w, open); v != dataplane.VerdictDrop {
		t.Errorf("the new rule on an old flow: verdict %v, want drop", v)
	}
	if v := next(w, blocked); v != dataplane.VerdictDrop {
		t.Errorf("a flow blocked before the reload: verdict %v, want drop", v)
	}
	if v := next(w, tcpConv(40002, 444)); v != dataplane.VerdictReturn {
		t.Errorf("a new flow the old rule would drop: verdict %v, want return", v)
	}

	write(t, rules, "drop tcp any any -> any 445 (msg:\"broken\"; content:; sid:3;)\n")
	if _, err := e.Reload(cfg); err == nil || !strings.Contains(err.Error(), rules+":1:") {
		t.Fatalf("Reload of a broken rule file: %v, want %s:1: ...", err, rules)
	}
	if v := next(w, tcpConv(40003, 443)); v != dataplane.VerdictDrop {
		t.Errorf("after a failed reload the old set must run: verdict %v", v)
	}
	if e.DetectInfo().Rules != 1 {
		t.Errorf("rules in force: %d", e.DetectInfo().Rules)
	}
}

// TestDetectMetrics: alerts by action, rules by state, reload outcomes.
func TestDetectMetrics(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "local.rules"), `drop tcp any any <> any 444 (msg:"444"; sid:1;)
alert tcp any any -> any any (msg:"x"; http.uri; content:"x"; sid:2;)
`)
	cfg := filepath.Join(dir, "weir.yaml")
	e := load(t, cfg, "detect:\n  rules: [local.rules]\n  mode: ips\n")
	w := e.Pipeline.NewWorker()
	next(w, tcpConv(40000, 444))
	next(w, tcpConv(40001, 443))
	if _, err := e.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.DetectCollector())
	want := `
# HELP weir_alerts_total Alerts raised, by alert.action: allowed (ids, mirrored traffic) or blocked (dropped inline in ips mode).
# TYPE weir_alerts_total counter
weir_alerts_total{action="allowed"} 0
weir_alerts_total{action="blocked"} 1
# HELP weir_detect_rules Rules of the rule set in force, by state: loaded or skipped (unsupported).
# TYPE weir_detect_rules gauge
weir_detect_rules{state="loaded"} 1
weir_detect_rules{state="skipped"} 1
# HELP weir_detect_reloads_total Rule-set reloads, by result: ok, or error (the old set kept running).
# TYPE weir_detect_reloads_total counter
weir_detect_reloads_total{result="error"} 0
weir_detect_reloads_total{result="ok"} 1
# HELP weir_detect_blocked_flows_total Flows detection blocked inline (ips mode).
# TYPE weir_detect_blocked_flows_total counter
weir_detect_blocked_flows_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "weir_alerts_total", "weir_detect_rules",
		"weir_detect_reloads_total", "weir_detect_blocked_flows_total"); err != nil {
		t.Error(err)
	}
}

// TestMirrorViaGWLBNeverBlocks: a mirror session whose target is a GWLB endpoint
// delivers VXLAN inside GENEVE; in ips mode a drop rule matching the mirrored
// packet alerts "allowed" and blocks nothing: mirrored traffic is never inline.
func TestMirrorViaGWLBNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "local.rules"), `drop udp any any -> any any (msg:"evil"; content:"EVIL"; sid:1;)`+"\n")
	e := load(t, filepath.Join(dir, "weir.yaml"), `detect:
  rules: [local.rules]
  mode: ips
mirror:
  listen: ""
  gwlb_endpoints: [vpce-00000000000000007]
  sessions:
    - {name: web, vni: 42}
`)
	var alerts []eve.Alert
	e.Detect.Alert = func(a *eve.Alert) { alerts = append(alerts, *a) }
	w := e.Pipeline.NewWorker()

	// The mirrored packet: Ethernet, IPv4, UDP, "an EVIL payload".
	inner := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(10, 0, 0, 5), DstIP: net.IPv4(10, 0, 0, 6)}
	udp := &layers.UDP{SrcPort: 5000, DstPort: 7000}
	udp.SetNetworkLayerForChecksum(inner)
	frame := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(frame, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 5}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 6}, EthernetType: layers.EthernetTypeIPv4},
		inner, udp, gopacket.Payload("an EVIL payload")); err != nil {
		t.Fatal(err)
	}
	// The mirror's VXLAN datagram from the ENI to the endpoint, inside GENEVE.
	mirrorIP := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(10, 0, 0, 5), DstIP: net.IPv4(10, 9, 9, 9)}
	mirrorUDP := &layers.UDP{SrcPort: 40000, DstPort: 4789}
	mirrorUDP.SetNetworkLayerForChecksum(mirrorIP)
	dgram := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(dgram, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		mirrorIP, mirrorUDP, gopacket.Payload(append(vxlan.AppendHeader(nil, 42), frame.Bytes()...))); err != nil {
		t.Fatal(err)
	}
	d := geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 7, FlowCookie: 1})
	b := dataplane.NewBatch(1)
	b.Slots[0].Buf, b.Slots[0].Encap, b.N, b.Now = append(d, dgram.Bytes()...), dataplane.EncapGeneve, 1, 1e18
	b.Slots[0].Outer.Src = netip.MustParseAddr("10.9.0.1")
	w.Process(b)
	s := &b.Slots[0]
	if s.Session == nil || s.Action() == dataplane.ActionIPSDrop {
		t.Fatalf("mirrored packet: session %v, action %v", s.Session, s.Action())
	}
	if len(alerts) != 1 || alerts[0].Action != eve.AlertAllowed || alerts[0].SignatureID != 1 {
		t.Fatalf("alerts %+v, want one allowed alert of sid 1", alerts)
	}
}

// A bad detect.vars value is reported at its own line, naming the variable the
// user wrote (not a built-in group that refers to it).
func TestDetectVarsError(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "r.rules"), `alert tcp any any -> any any (msg:"x"; sid:1;)`+"\n")
	cfgPath := filepath.Join(dir, "weir.yaml")
	write(t, cfgPath, "detect:\n  rules: [r.rules]\n  vars:\n    EXTERNAL_NET: any\n    HOME_NET: \"[10.0.0.0/8\"\n")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = engine.CheckDetect(cfg)
	if want := cfgPath + `:5: detect.vars.HOME_NET: address list "[10.0.0.0/8" does not end in ]`; err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
}

// A reload whose rules need more stream bytes kept than the flows were made with
// says so: such a content, split across segments, matches only after a restart.
func TestReloadLongerContentWarns(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "r.rules")
	write(t, rules, `alert tcp any any -> any any (msg:"x"; content:"abcd"; sid:1;)`+"\n")
	cfg := filepath.Join(dir, "weir.yaml")
	e := load(t, cfg, "detect:\n  rules: [r.rules]\n")
	r, err := e.Reload(cfg)
	if err != nil || len(r.Warnings) != 0 {
		t.Fatalf("same rules: %v, warnings %q", err, r.Warnings)
	}
	write(t, rules, `alert tcp any any -> any any (msg:"x"; content:"`+strings.Repeat("z", 100)+`"; sid:1;)`+"\n")
	r, err = e.Reload(cfg)
	if err != nil || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "100 bytes") {
		t.Fatalf("longer content: %v, warnings %q", err, r.Warnings)
	}
}
