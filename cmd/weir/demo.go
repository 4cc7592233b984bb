package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"weir/config"

	"weir/dataplane"
	gwlbsim "weir/sim/gwlb"
	mirrorsim "weir/sim/mirror"
)

// The demo runs on loopback (all of 127/8 is local on Linux): the appliance on
// 127.0.0.1, the simulated GWLB on 127.0.0.2 on the same port as in AWS, and two
// mirrored ENIs, 127.0.0.3 (session "web") and 127.0.0.4 (session "db"), whose
// flows with each other are mirrored at both ends.
var (
	demoAppliance = netip.MustParseAddr("127.0.0.1")
	demoGWLB      = netip.MustParseAddr("127.0.0.2")
	demoWeb       = netip.MustParseAddr("127.0.0.3")
	demoDB        = netip.MustParseAddr("127.0.0.4")
	demoDenied    = netip.MustParsePrefix("203.0.113.0/24")
)

// demoConfig is the demo's configuration, in the form a user would write it.
const demoConfig = `
gwlb:
  listen: %[1]s
  allowed_sources: [%[2]s/32]
health: {listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:0"}
policy:
  default: allow
  rules:
    - {action: drop, proto: tcp, dst_port: 23}
    - {action: drop, src: %[3]s}
mirror:
  listen: %[4]s
  dedupe_window: 200ms
  sessions:
    - vni: 101
      name: web
      eni_ip: %[5]s
      interface_id: eni-0a1b2c3d4e5f60101
      packet_length: 128
      filter:
        TrafficMirrorFilterId: tmf-0de0de0de0de0de01
        EgressFilterRules:
          - {RuleNumber: 100, RuleAction: reject, TrafficDirection: egress, Protocol: 6,
             DestinationPortRange: {FromPort: 22, ToPort: 22},
             SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}
          - {RuleNumber: 200, RuleAction: accept, TrafficDirection: egress,
             SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}
        IngressFilterRules:
          - {RuleNumber: 100, RuleAction: accept, TrafficDirection: ingress,
             SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}
    - vni: 102
      name: db
      eni_ip: %[6]s
      interface_id: eni-0a1b2c3d4e5f60102
detect:
  mode: ips
  rules: [%[7]s/demo.rules]
outputs:
  eve: %[7]s/eve.json
  pcap: {dir: %[7]s/pcap}
  flowlog: {path: %[7]s/flows.log, interval: 5s, account_id: "123456789012"}
`

// demoRules are the demo's Suricata rules: inline, in ips mode, the drop rule
// blocks every flow to port 8080 at its first packet; the alert rules see DNS and
// the mirrored sessions' SSH.
const demoRules = `drop tcp any any -> any 8080 (msg:"DEMO inline: tcp/8080 blocked (ips)"; flow:to_server; classtype:policy-violation; sid:1000001; rev:1;)
drop udp any any -> any 8080 (msg:"DEMO inline: udp/8080 blocked (ips)"; flow:to_server; classtype:policy-violation; sid:1000004; rev:1;)
alert udp any any -> any 53 (msg:"DEMO DNS query"; threshold:type limit, track by_src, count 1, seconds 60; classtype:misc-activity; sid:1000002; rev:1;)
alert tcp any any -> any 22 (msg:"DEMO SSH connection"; flags:S; threshold:type limit, track by_dst, count 5, seconds 60; classtype:misc-activity; sid:1000003; rev:1;)
`

const demoUsage = `usage: weir demo [-duration 10s] [-keep]

Runs an appliance and both simulators on loopback, unprivileged: a simulated GWLB
sends GENEVE through weir's policy, and two mirrored ENIs send VXLAN, mirrored at both
ends. Prints a status line a second and a summary; writes EVE, pcap and flow logs to a
temporary folder, removed at the end unless -keep.

flags:
`

func cmdDemo(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "fleet" {
		return cmdDemoFleet(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = commandUsage(fs, demoUsage)
	duration := fs.Duration("duration", 10*time.Second, "how long to send traffic")
	keep := fs.Bool("keep", false, "keep the folder of outputs (EVE, pcap, flow logs) instead of removing it")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	port, err := demoPort(6081, demoAppliance, demoGWLB)
	if err != nil {
		return err
	}
	mport, err := demoPort(4789, demoAppliance)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "weir-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "demo.rules"), []byte(demoRules), 0o644); err != nil {
		return err
	}
	text := fmt.Sprintf(demoConfig, netip.AddrPortFrom(demoAppliance, port), demoGWLB, demoDenied,
		netip.AddrPortFrom(demoAppliance, mport), demoWeb, demoDB, dir)
	cfg, err := config.Parse("demo.yaml", []byte(text))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	n, err := startNode(context.Background(), cfg, log)
	if err != nil {
		return fmt.Errorf("demo: starting the appliance: %w", err)
	}
	defer n.shutdown(0, nil)
	fmt.Fprintf(stdout, "weir demo: appliance %s, health and metrics on http://%s\n", demoAppliance, n.healthAddr())
	fmt.Fprintf(stdout, "  inline: simulated GWLB %s sends GENEVE to %s; policy drops tcp/23 and %s;\n",
		demoGWLB, cfg.GWLB.Listen, demoDenied)
	fmt.Fprintf(stdout, "          detection (ips) blocks port 8080, alerts on DNS and SSH\n")
	fmt.Fprintf(stdout, "          reply path: %s\n", n.backendName())
	fmt.Fprintf(stdout, "  mirror: ENIs %s (web, VNI 101, filtered, cut to 128 bytes) and %s (db, VNI 102)\n", demoWeb, demoDB)
	fmt.Fprintf(stdout, "          mirrored at both ends to %s; duplicates suppressed\n\n", cfg.Mirror.Listen)

	// About 1,500 GENEVE packets a second: a tenth of the flows come from the denied
	// prefix, a sixth of the TCP and UDP flows go to port 23. About 400 mirrored
	// frames a second, half of them the second copy.
	const rate, perFlow, mirrorRate, mirrorPerFlow = 1500, 20, 400, 10
	packets := int(duration.Seconds() * rate)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	start := time.Now()
	var mu sync.Mutex
	var mirrorSent uint64
	status := func(sent, returned, mirrored uint64) {
		t := n.Pipeline.Totals()
		fmt.Fprintf(stdout, "[%4.1fs] inline: sent %6d returned %6d dropped by policy %5d | mirror: sent %5d recorded %5d duplicates %4d filtered %3d | flows %4d\n",
			time.Since(start).Seconds(), sent, returned, t.Packet(dataplane.EncapVXLAN, dataplane.ActionDrop)+t.Packet(dataplane.EncapGeneve, dataplane.ActionDrop),
			mirrored, t.Packet(dataplane.EncapVXLAN, dataplane.ActionAllow), t.Packet(dataplane.EncapVXLAN, dataplane.ActionDuplicate),
			t.Packet(dataplane.EncapVXLAN, dataplane.ActionFiltered), n.FlowsActive())
	}
	simCfg := gwlbsim.Config{
		Targets:        []gwlbsim.Target{{Addr: cfg.GWLB.Listen, HealthURL: "http://" + n.healthAddr() + "/healthz"}},
		Local:          demoGWLB,
		ListenPort:     port,
		Flows:          max(packets/perFlow, 1),
		PacketsPerFlow: perFlow,
		ActiveFlows:    200,
		Rate:           rate,
		JumboEvery:     100,
		Endpoints:      3,
		DeniedSources:  []netip.Prefix{demoDenied},
		Seed:           time.Now().UnixNano(),
		ReplyTimeout:   time.Second,
		Progress: func(r gwlbsim.Report) {
			mu.Lock()
			ms := mirrorSent
			mu.Unlock()
			status(r.Sent, r.Returned, ms)
		},
	}
	mirrorCfg := mirrorsim.Config{
		Target: cfg.Mirror.Listen,
		ENIs: []mirrorsim.ENI{
			{IP: demoWeb, MAC: net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x01}, VNI: 101},
			{IP: demoDB, MAC: net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x02}, VNI: 102},
		},
		Flows:          max(int(duration.Seconds()*mirrorRate)/(2*mirrorPerFlow), 1),
		PacketsPerFlow: mirrorPerFlow,
		Rate:           mirrorRate,
		BothEnds:       true,
		Seed:           time.Now().UnixNano(),
		Progress: func(r mirrorsim.Report) {
			mu.Lock()
			mirrorSent = r.Sent
			mu.Unlock()
		},
	}
	var mrep mirrorsim.Report
	var merr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		mrep, merr = mirrorsim.Run(ctx, mirrorCfg)
	}()
	rep, err := gwlbsim.Run(ctx, simCfg)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("demo: GWLB simulator: %w", err)
	}
	if merr != nil {
		return fmt.Errorf("demo: mirror simulator: %w", merr)
	}
	// The last mirrored frames may still be in flight: wait (a second at most) until
	// weir has received as many as were sent, then say where the counts ended, so
	// the last status line agrees with the summary.
	received := func() uint64 {
		var sum uint64
		for _, s := range n.Pipeline.Totals().Sessions {
			sum += s.Received
		}
		return sum
	}
	tick := time.NewTicker(10 * time.Millisecond)
	for deadline := time.Now().Add(time.Second); received() < mrep.Sent && time.Now().Before(deadline); {
		<-tick.C
	}
	tick.Stop()
	status(rep.Sent, rep.Returned, mrep.Sent)
	t := n.Pipeline.Totals()
	n.shutdown(0, nil)
	allowedFlows, deniedFlows := n.FlowsEnded()
	var web, db dataplane.SessionTotals
	if len(t.Sessions) > 2 {
		web, db = t.Sessions[1], t.Sessions[2]
	}
	pcaps, _ := filepath.Glob(filepath.Join(dir, "pcap", "*.pcap"))

	fmt.Fprintf(stdout, "\nsummary\n")
	fmt.Fprintf(stdout, "  inline (GENEVE)\n")
	fmt.Fprintf(stdout, "    packets sent by the GWLB     %d (%d jumbo, 8500-byte inner)\n", rep.Sent, rep.Jumbo)
	fmt.Fprintf(stdout, "    returned byte-identical      %d\n", rep.Returned)
	fmt.Fprintf(stdout, "    dropped by policy            %d\n", t.Packet(dataplane.EncapGeneve, dataplane.ActionDrop))
	fmt.Fprintf(stdout, "    dropped by detection (ips)   %d (GWLB saw %d not returned in all)\n",
		t.Packet(dataplane.EncapGeneve, dataplane.ActionIPSDrop), rep.Dropped)
	fmt.Fprintf(stdout, "    returned but wrong           %d\n", rep.Mismatched)
	fmt.Fprintf(stdout, "    latency µs p50/p90/p99       %.0f / %.0f / %.0f\n", rep.LatencyUS.P50, rep.LatencyUS.P90, rep.LatencyUS.P99)
	fmt.Fprintf(stdout, "  mirror (VXLAN)\n")
	fmt.Fprintf(stdout, "    frames sent by AWS (sim)     %d (%d of them second copies)\n", mrep.Sent, mrep.Duplicates)
	fmt.Fprintf(stdout, "    session web                  received %d, recorded %d (%d cut to 128 bytes), filtered %d, duplicates %d\n",
		web.Received, web.Accepted, web.Truncated, web.Rejected, web.Duplicates)
	fmt.Fprintf(stdout, "    session db                   received %d, recorded %d, filtered %d, duplicates %d\n",
		db.Received, db.Accepted, db.Rejected, db.Duplicates)
	fmt.Fprintf(stdout, "  flows                          %d: %d allowed, %d denied (policy or ips)\n", allowedFlows+deniedFlows, allowedFlows, deniedFlows)
	dt := n.Detect.Totals(n.Pipeline)
	fmt.Fprintf(stdout, "  detection                      %d rules; alerts %d blocked, %d allowed; %d flows blocked\n",
		n.DetectInfo().Rules, dt.AlertsBlocked, dt.AlertsAllowed, dt.BlockedFlows)
	if *keep {
		fmt.Fprintf(stdout, "  outputs in %s\n", dir)
	} else {
		fmt.Fprintf(stdout, "  outputs in %s (removed at exit; weir demo -keep keeps them)\n", dir)
	}
	fmt.Fprintf(stdout, "    eve.json                     %d records: flows and alerts (Suricata EVE)\n", n.EVE.Written())
	fmt.Fprintf(stdout, "    pcap/                        %d file(s) of mirrored frames (open with wireshark or tshark -r)\n", len(pcaps))
	fmt.Fprintf(stdout, "    flows.log                    %d VPC Flow Logs records\n", n.FlowLog.Written())
	fmt.Fprintf(stdout, "\nnext: weir check-config examples/both.yaml, then sudo weir run -config examples/both.yaml\n")
	fmt.Fprintf(stdout, "      (examples/ holds inline-only, mirror-only, both, inline-ips (Suricata rules) and fleet-node configurations)\n")
	if rep.Mismatched != 0 || rep.Returned == 0 {
		return fmt.Errorf("demo: %d packets came back wrong, %d came back right", rep.Mismatched, rep.Returned)
	}
	if got := web.Received + db.Received; got != mrep.Sent {
		return fmt.Errorf("demo: the mirror simulator sent %d frames, weir received %d", mrep.Sent, got)
	}
	return nil
}

// demoPort is want when it is free on every address, else a port free on all.
func demoPort(want uint16, addrs ...netip.Addr) (uint16, error) {
	free := func(p uint16) bool {
		for _, a := range addrs {
			if !udpFree(a, p) {
				return false
			}
		}
		return true
	}
	if free(want) {
		return want, nil
	}
	for range 20 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: addrs[0].AsSlice()})
		if err != nil {
			return 0, err
		}
		p := uint16(c.LocalAddr().(*net.UDPAddr).Port)
		c.Close()
		if free(p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("demo: no free UDP port on %v", addrs)
}

func udpFree(a netip.Addr, port uint16) bool {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}
