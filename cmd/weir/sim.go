package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	gwlbsim "weir/sim/gwlb"
	mirrorsim "weir/sim/mirror"
)

const simUsage = `usage: weir sim gwlb|mirror [FLAGS]

  sim gwlb -target ADDR:PORT[,HEALTH_URL] [FLAGS]
      simulate a Gateway Load Balancer: GENEVE to the targets, replies checked
  sim mirror -target ADDR:PORT -eni IP,MAC,VNI [FLAGS]
      send AWS-style Traffic Mirroring traffic (VXLAN)

weir sim gwlb -h and weir sim mirror -h list their flags.
`

func cmdSim(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) > 0 && args[0] == "gwlb":
		return cmdSimGWLB(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "mirror":
		return cmdSimMirror(args[1:], stdout, stderr)
	case len(args) == 1 && isHelp(args[0]):
		fmt.Fprint(stdout, simUsage)
		return flag.ErrHelp
	}
	return usageError{errors.New("usage: weir sim gwlb|mirror [FLAGS] (see weir sim gwlb -h, weir sim mirror -h)")}
}

// eniFlags collects repeated -eni IP,MAC,VNI flags.
type eniFlags []mirrorsim.ENI

func (e *eniFlags) String() string { return fmt.Sprint(*e) }

func (e *eniFlags) Set(s string) error {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return fmt.Errorf("eni %q: want IP,MAC,VNI", s)
	}
	ip, err := netip.ParseAddr(parts[0])
	if err != nil {
		return fmt.Errorf("eni %q: %v", s, err)
	}
	mac, err := net.ParseMAC(parts[1])
	if err != nil {
		return fmt.Errorf("eni %q: %v", s, err)
	}
	vni, err := strconv.ParseUint(parts[2], 10, 24)
	if err != nil {
		return fmt.Errorf("eni %q: VNI: %v", s, err)
	}
	*e = append(*e, mirrorsim.ENI{IP: ip, MAC: mac, VNI: uint32(vni)})
	return nil
}

func cmdSimMirror(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim mirror", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: weir sim mirror -target ADDR:PORT -eni IP,MAC,VNI [-eni ...] [FLAGS]

Sends AWS-style VPC Traffic Mirroring traffic to the target: VXLAN to port 4789 from
the mirrored ENI's IP (which must be a local address), the outer source port a hash
of the inner 5-tuple, the session's VNI, inner Ethernet frames with the ENI's MAC on
the side AWS puts it. Synthetic flows, or the frames of a capture file (-pcap).
With -both-ends, flows run between pairs of ENIs and every packet is mirrored twice,
as AWS does when both ends are mirrored. Prints a JSON report.

flags:`)
		fs.PrintDefaults()
	}
	var enis eniFlags
	fs.Var(&enis, "eni", "mirrored interface `IP,MAC,VNI` (repeatable)")
	target := fs.String("target", "", "weir's mirror listener `ADDR:PORT`")
	flows := fs.Int("flows", 50, "synthetic flows")
	ppf := fs.Int("packets", 10, "packets per flow")
	rate := fs.Int("rate", 1000, "packets per second (0 = unpaced)")
	v6 := fs.Float64("ipv6", 0, "share of IPv6 flows, 0 to 1")
	protos := fs.String("protos", "tcp,udp,icmp", "protocols of the flows")
	both := fs.Bool("both-ends", false, "mirror every packet at both ends (needs two -eni)")
	pcap := fs.String("pcap", "", "send the Ethernet frames of this capture instead of synthetic flows")
	seed := fs.Int64("seed", 1, "random seed")
	perFlow := fs.Bool("per-flow", false, "include every flow in the report")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(*target)
	if err != nil {
		return usageError{fmt.Errorf("-target: %v", err)}
	}
	if len(enis) == 0 {
		return usageError{errors.New("at least one -eni is needed")}
	}
	cfg := mirrorsim.Config{
		Target: ap, ENIs: enis, Flows: *flows, PacketsPerFlow: *ppf, Rate: *rate,
		IPv6Share: *v6, Protos: strings.Split(*protos, ","), BothEnds: *both, PCAP: *pcap, Seed: *seed,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	rep, err := mirrorsim.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if !*perFlow {
		rep.Flows = nil
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// targetFlags collects repeated -target ADDR:PORT[,HEALTH_URL] flags.
type targetFlags []gwlbsim.Target

func (t *targetFlags) String() string { return fmt.Sprint(*t) }

func (t *targetFlags) Set(s string) error {
	addr, url, _ := strings.Cut(s, ",")
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("target %q: want ADDR:PORT[,HEALTH_URL]", s)
	}
	*t = append(*t, gwlbsim.Target{Addr: ap, HealthURL: url})
	return nil
}

type prefixFlags []netip.Prefix

func (p *prefixFlags) String() string { return fmt.Sprint(*p) }

func (p *prefixFlags) Set(s string) error {
	pr, err := netip.ParsePrefix(s)
	if err != nil {
		return err
	}
	*p = append(*p, pr)
	return nil
}

func cmdSimGWLB(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim gwlb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: weir sim gwlb -target ADDR:PORT[,HEALTH_URL] [-target ...] [FLAGS]

Sends AWS-format GENEVE (GWLB endpoint id, attachment id, flow cookie options) carrying
synthetic TCP, UDP and ICMP flows to the targets, spreads flows over healthy targets by
5-tuple as a GWLB does, checks every returned packet byte for byte, and prints a JSON
report (sent, returned, dropped, mismatched, latency percentiles).

Targets with a HEALTH_URL are checked like a target group's (GET every
-health-interval; 200-399 passes; -healthy-threshold passes make a target healthy,
-unhealthy-threshold failures unhealthy). A new flow goes to a healthy target and
stays there. -failover is the target group's target_failover: no_rebalance (the
default, as on AWS) keeps sending a target's existing flows to it after it turns
unhealthy; rebalance moves them, and only them, to the healthy targets from their next
packet on, and they stay there when it recovers. The report counts the moves
(rehashed, moved_flows, moves), what moved flows lost after moving (moved_flows_lost,
lost_after_move), replies from the wrong target (wrong_target) and packets sent to
unhealthy targets (sent_to_unhealthy). Long-lived flows: many -packets per flow at a
modest -rate, e.g. -flows 100 -packets 200 -rate 2000 keeps 100 flows open for 10 s.

flags:`)
		fs.PrintDefaults()
	}
	var targets targetFlags
	var denied prefixFlags
	fs.Var(&targets, "target", "appliance `ADDR:PORT[,HEALTH_URL]` (repeatable)")
	fs.Var(&denied, "denied-source", "`CIDR` some flows' clients come from, for ACL tests (repeatable)")
	local := fs.String("local", "0.0.0.0", "the GWLB's `ADDRESS`: GENEVE source and reply listener")
	port := fs.Uint("port", 6081, "reply listener `PORT` (the appliance replies to the port it received on)")
	flows := fs.Int("flows", 100, "synthetic flows")
	ppf := fs.Int("packets", 10, "packets per flow")
	active := fs.Int("active", 0, "flows open at once (0 = default)")
	rate := fs.Int("rate", 1000, "packets per second (0 = as fast as possible)")
	v6 := fs.Float64("ipv6", 0.5, "share of IPv6 flows, 0 to 1")
	protos := fs.String("protos", "tcp,udp,icmp", "protocols of the flows")
	jumbo := fs.Int("jumbo-every", 0, "every Nth packet has an 8500-byte inner packet (0 = never)")
	endpoints := fs.Int("endpoints", 2, "distinct GWLB endpoints")
	seed := fs.Int64("seed", 1, "random seed")
	timeout := fs.Duration("reply-timeout", time.Second, "wait this long for replies")
	perFlow := fs.Bool("per-flow", false, "include every flow in the report")
	progress := fs.Bool("progress", false, "print a progress line a second on stderr")
	failover := fs.String("failover", string(gwlbsim.NoRebalance),
		"target_failover `MODE`: no_rebalance (AWS's default: existing flows stay on an unhealthy target) or rebalance (they move to healthy ones)")
	hInterval := fs.Duration("health-interval", time.Second, "health check interval")
	hTimeout := fs.Duration("health-timeout", 2*time.Second, "health check timeout")
	hHealthy := fs.Int("healthy-threshold", 2, "consecutive passes that make a target healthy")
	hUnhealthy := fs.Int("unhealthy-threshold", 2, "consecutive failures that make a target unhealthy")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if len(targets) == 0 {
		return usageError{errors.New("at least one -target is needed")}
	}
	la, err := netip.ParseAddr(*local)
	if err != nil {
		return usageError{fmt.Errorf("-local: %v", err)}
	}
	fo := gwlbsim.Failover(*failover)
	if fo != gwlbsim.NoRebalance && fo != gwlbsim.Rebalance {
		return usageError{fmt.Errorf("-failover %q: want rebalance or no_rebalance", *failover)}
	}
	for name, d := range map[string]time.Duration{"-health-interval": *hInterval, "-health-timeout": *hTimeout} {
		if d <= 0 {
			return usageError{fmt.Errorf("%s %v: must be positive", name, d)}
		}
	}
	for name, n := range map[string]int{"-healthy-threshold": *hHealthy, "-unhealthy-threshold": *hUnhealthy} {
		if n < 1 {
			return usageError{fmt.Errorf("%s %d: must be at least 1", name, n)}
		}
	}
	share := *v6
	if share <= 0 {
		share = gwlbsim.IPv4Only
	}
	cfg := gwlbsim.Config{
		Targets: targets, Local: la, ListenPort: uint16(*port),
		Flows: *flows, PacketsPerFlow: *ppf, ActiveFlows: *active, Rate: *rate,
		IPv6Share: share, Protos: strings.Split(*protos, ","), JumboEvery: *jumbo,
		Endpoints: *endpoints, DeniedSources: denied, Seed: *seed,
		ReplyTimeout: *timeout, PerFlow: *perFlow, Failover: fo,
		HealthInterval: *hInterval, HealthTimeout: *hTimeout,
		HealthyThreshold: *hHealthy, UnhealthyThreshold: *hUnhealthy,
	}
	if *progress {
		cfg.Progress = func(r gwlbsim.Report) {
			fmt.Fprintf(stderr, "sim: sent=%d returned=%d dropped=%d mismatched=%d rehashed=%d lost_after_move=%d\n",
				r.Sent, r.Returned, r.Dropped, r.Mismatched, r.Rehashed, r.LostAfterMove)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	rep, err := gwlbsim.Run(ctx, cfg)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
