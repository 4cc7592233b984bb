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
	"syscall"
	"time"

	"weir/dataplane"
	"weir/dataplane/policy"
	"weir/geneve/gwlbsim"
)

// The demo runs on loopback: the appliance on 127.0.0.1, the simulated GWLB on
// 127.0.0.2 (all of 127/8 is local on Linux), both on the same port as in AWS.
var (
	demoAppliance = netip.MustParseAddr("127.0.0.1")
	demoGWLB      = netip.MustParseAddr("127.0.0.2")
	demoDenied    = netip.MustParsePrefix("203.0.113.0/24")
)

func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 10*time.Second, "how long to send traffic")
	if err := fs.Parse(args); err != nil {
		return err
	}
	port, err := demoPort()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "weir-demo-")
	if err != nil {
		return err
	}
	cfg := DefaultConfig()
	cfg.GWLB.Listen = netip.AddrPortFrom(demoAppliance, port)
	cfg.GWLB.AllowedSources = []netip.Prefix{netip.PrefixFrom(demoGWLB, 32)}
	cfg.Health.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Outputs.EVE = filepath.Join(dir, "eve.json")
	cfg.Policy = policy.Policy{Default: policy.Allow, Rules: []policy.Rule{
		{Action: policy.Drop, Proto: 6, DstPort: policy.PortRange{Lo: 23, Hi: 23}},
		{Action: policy.Drop, Proto: policy.AnyProto, Src: demoDenied},
	}}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	n, err := startNode(context.Background(), cfg, log)
	if err != nil {
		return fmt.Errorf("demo: starting the appliance: %w", err)
	}
	defer n.shutdown(0)
	fmt.Fprintf(stdout, "weir demo: appliance %s (health and metrics on http://%s), simulated GWLB %s\n",
		cfg.GWLB.Listen, n.healthAddr(), demoGWLB)
	fmt.Fprintf(stdout, "reply path: %s\n", n.backend.Name())
	fmt.Fprintf(stdout, "policy: drop tcp dst_port 23; drop src %s; default allow\n\n", demoDenied)

	// About 1,500 packets a second for the duration: a tenth of the flows come from
	// the denied prefix, a sixth of the TCP and UDP flows go to port 23.
	const rate = 1500
	packets := int(duration.Seconds() * rate)
	const perFlow = 20
	start := time.Now()
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
			t := n.pipeline.Totals()
			fmt.Fprintf(stdout, "[%4.1fs] sent %6d  returned %6d  dropped by policy %5d  malformed %d  flows active %4d  latency p50 %.0fµs\n",
				time.Since(start).Seconds(), r.Sent, r.Returned,
				t.Packet(dataplane.EncapGeneve, dataplane.ActionDrop),
				t.Packet(dataplane.EncapGeneve, dataplane.ActionMalformed),
				n.table.Active(), r.LatencyUS.P50)
		},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	rep, err := gwlbsim.Run(ctx, simCfg)
	if err != nil {
		return fmt.Errorf("demo: simulator: %w", err)
	}
	t := n.pipeline.Totals()
	n.shutdown(0)
	allowedFlows, deniedFlows := n.flowsEnded()

	fmt.Fprintf(stdout, "\nsummary\n")
	fmt.Fprintf(stdout, "  packets sent by the GWLB       %d (%d jumbo, 8500-byte inner)\n", rep.Sent, rep.Jumbo)
	fmt.Fprintf(stdout, "  returned byte-identical        %d\n", rep.Returned)
	fmt.Fprintf(stdout, "  dropped by policy              %d (GWLB saw %d not returned)\n",
		t.Packet(dataplane.EncapGeneve, dataplane.ActionDrop), rep.Dropped)
	fmt.Fprintf(stdout, "  returned but wrong             %d\n", rep.Mismatched)
	fmt.Fprintf(stdout, "  flows                          %d: %d allowed, %d denied by policy\n", allowedFlows+deniedFlows, allowedFlows, deniedFlows)
	fmt.Fprintf(stdout, "  EVE flow records               %d in %s\n", n.eve.Written(), cfg.Outputs.EVE)
	fmt.Fprintf(stdout, "  latency µs p50/p90/p99         %.0f / %.0f / %.0f\n", rep.LatencyUS.P50, rep.LatencyUS.P90, rep.LatencyUS.P99)
	fmt.Fprintf(stdout, "  reply path                     %s\n", n.backend.Name())
	if rep.Mismatched != 0 || rep.Returned == 0 {
		return fmt.Errorf("demo: %d packets came back wrong, %d came back right", rep.Mismatched, rep.Returned)
	}
	return nil
}

// demoPort is 6081 when both loopback addresses have it free, else a free port.
func demoPort() (uint16, error) {
	if udpFree(demoAppliance, 6081) && udpFree(demoGWLB, 6081) {
		return 6081, nil
	}
	for range 20 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: demoAppliance.AsSlice()})
		if err != nil {
			return 0, err
		}
		p := uint16(c.LocalAddr().(*net.UDPAddr).Port)
		c.Close()
		if udpFree(demoGWLB, p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("demo: no free UDP port on %s and %s", demoAppliance, demoGWLB)
}

func udpFree(a netip.Addr, port uint16) bool {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}
