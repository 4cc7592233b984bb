package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"weir/config"
	gwlbsim "weir/sim/gwlb"
)

// The fleet demo's loopback addresses: three appliances and the simulated GWLB.
var (
	fleetGWLB  = netip.MustParseAddr("127.0.0.20")
	fleetNodes = []netip.Addr{netip.MustParseAddr("127.0.0.21"), netip.MustParseAddr("127.0.0.22"), netip.MustParseAddr("127.0.0.23")}
)

const demoFleetUsage = `usage: weir demo fleet [-flows N] [-packets N] [-rate N]

Runs three appliances and a simulated GWLB with target_failover = rebalance on
loopback, unprivileged, in strict mode (flows.midstream: drop): established TCP
flows run through the fleet, one node is killed, and the GWLB moves its flows,
mid-stream, to the others. It runs twice, with the nodes sharing flow state and
without, and prints how many moved flows continued each time.

flags:
`

// fleetNodeConfig is one node's configuration, as a user would write it.
const fleetNodeConfig = `
gwlb:
  listen: %[1]s
  allowed_sources: [%[2]s/32]
dataplane: {workers: 1}
health: {listen: "%[3]s:0", drain_delay: 0s}
metrics: {listen: "%[3]s:0"}
mirror: {listen: ""}
flows: {midstream: drop}
%[4]s`

const fleetClusterConfig = `cluster:
  bind: %s
  node_name: %s
  join: [%s]
  secret_key_file: %s
`

// fleetRun is what one run of the fleet demo saw.
type fleetRun struct {
	rep    gwlbsim.Report
	killed string
}

func cmdDemoFleet(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = commandUsage(fs, demoFleetUsage)
	flows := fs.Int("flows", 150, "TCP flows, all open at once")
	packets := fs.Int("packets", 100, "packets per flow")
	rate := fs.Int("rate", 1500, "packets per second over all flows")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "weir-demo-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "cluster.key")
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "weir demo fleet: appliances %v behind a simulated GWLB %s (target_failover = rebalance),\n", fleetNodes, fleetGWLB)
	fmt.Fprintf(stdout, "  strict mode (flows.midstream: drop); %d TCP flows of %d packets at %d packets/s; one node is killed mid-run\n\n",
		*flows, *packets, *rate)
	var runs [2]fleetRun
	for i, synced := range []bool{true, false} {
		what := "with flow sync (cluster)"
		if !synced {
			what = "without flow sync (standalone nodes)"
		}
		fmt.Fprintf(stdout, "run %d: %s\n", i+1, what)
		if runs[i], err = fleetDemoRun(stdout, stderr, synced, keyFile, *flows, *packets, *rate); err != nil {
			return fmt.Errorf("demo fleet: %w", err)
		}
	}
	fmt.Fprintf(stdout, "\nsummary\n")
	for i, r := range runs {
		name := "with flow sync   "
		if i == 1 {
			name = "without flow sync"
		}
		moved := r.rep.MovedFlows
		fmt.Fprintf(stdout, "  %s  %s killed; %d flows moved, %d continued, %d died (%d packets lost after their move); returned wrong %d\n",
			name, r.killed, moved, moved-r.rep.MovedFlowsLost, r.rep.MovedFlowsLost, r.rep.LostAfterMove, r.rep.Mismatched)
	}
	fmt.Fprintf(stdout, "\nnext: the fleet's configuration is examples/fleet-node.yaml; README \"The fleet\" says how it works\n")
	if runs[0].rep.MovedFlows == 0 {
		return errors.New("demo fleet: no flow moved: the kill came too late")
	}
	if runs[0].rep.MovedFlowsLost != 0 || runs[0].rep.Mismatched != 0 {
		return fmt.Errorf("demo fleet: with sync, %d moved flows died and %d packets came back wrong",
			runs[0].rep.MovedFlowsLost, runs[0].rep.Mismatched)
	}
	return nil
}

// fleetDemoRun starts three nodes, runs the simulator over them and kills one node
// once a third of the traffic is sent.
func fleetDemoRun(stdout, stderr io.Writer, synced bool, keyFile string, flows, packets, rate int) (fleetRun, error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	port, err := demoPort(6081, append([]netip.Addr{fleetGWLB}, fleetNodes...)...)
	if err != nil {
		return fleetRun{}, err
	}
	cport := make([]uint16, len(fleetNodes))
	for i, a := range fleetNodes {
		if cport[i], err = freeTCPUDP(a); err != nil {
			return fleetRun{}, err
		}
	}
	nodes := make([]*node, len(fleetNodes))
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.shutdown(0, nil)
			}
		}
	}()
	for i, a := range fleetNodes {
		clusterText := ""
		if synced {
			var peers []string
			for j, b := range fleetNodes {
				if j != i {
					peers = append(peers, netip.AddrPortFrom(b, cport[j]).String())
				}
			}
			clusterText = fmt.Sprintf(fleetClusterConfig, netip.AddrPortFrom(a, cport[i]), fmt.Sprintf("demo-node-%d", i+1),
				strings.Join(peers, ", "), keyFile)
		}
		cfg, err := config.Parse("fleet-node.yaml", []byte(fmt.Sprintf(fleetNodeConfig,
			netip.AddrPortFrom(a, port), fleetGWLB, a, clusterText)))
		if err != nil {
			return fleetRun{}, err
		}
		if nodes[i], err = startNode(context.Background(), cfg, log); err != nil {
			return fleetRun{}, fmt.Errorf("starting node %d: %w", i+1, err)
		}
	}
	// Every node healthy (in a fleet: joined and synced) before the GWLB sends.
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes {
		for ok, _ := n.state.Healthy(); !ok; ok, _ = n.state.Healthy() {
			if time.Now().After(deadline) {
				_, why := n.state.Healthy()
				return fleetRun{}, fmt.Errorf("a node is not healthy after 30 s: %s", why)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	targets := make([]gwlbsim.Target, len(nodes))
	for i, n := range nodes {
		targets[i] = gwlbsim.Target{Addr: netip.AddrPortFrom(fleetNodes[i], port), HealthURL: "http://" + n.healthAddr() + "/healthz"}
	}
	victim := 1
	var killed atomic.Bool
	total := flows * packets
	sim := gwlbsim.Config{
		Targets: targets, Local: fleetGWLB, ListenPort: port,
		Flows: flows, PacketsPerFlow: packets, ActiveFlows: flows, Rate: rate,
		Protos: []string{"tcp"}, Seed: 7, ReplyTimeout: 2 * time.Second, PerFlow: true,
		Failover: gwlbsim.Rebalance, HealthInterval: 500 * time.Millisecond,
		Progress: func(r gwlbsim.Report) {
			fmt.Fprintf(stdout, "  sent %6d returned %6d moved flows %4d lost after a move %4d\n",
				r.Sent, r.Returned, r.MovedFlows, r.LostAfterMove)
			if r.Sent > uint64(total/3) && !killed.Swap(true) {
				nodes[victim].kill()
				fmt.Fprintf(stdout, "  killed %s (no drain, no leave): the GWLB moves its flows once its health checks fail\n", fleetNodes[victim])
			}
		},
	}
	rep, err := gwlbsim.Run(context.Background(), sim)
	if err != nil {
		return fleetRun{}, err
	}
	return fleetRun{rep: rep, killed: fleetNodes[victim].String()}, nil
}

// kill stops a node as a crash would: no drain, no leave; its sockets and health
// listener close, so the GWLB's checks fail and peers see it die.
func (n *node) kill() {
	n.once.Do(func() {
		for _, s := range n.servers {
			_ = s.Close()
		}
		if n.cluster != nil {
			_ = n.cluster.Shutdown()
			n.sync.Close()
		}
		n.cancel()
		n.wg.Wait()
		n.CloseOutputs()
	})
}

// freeTCPUDP is a port free for both TCP and UDP on a.
func freeTCPUDP(a netip.Addr) (uint16, error) {
	for range 20 {
		l, err := net.Listen("tcp4", netip.AddrPortFrom(a, 0).String())
		if err != nil {
			return 0, err
		}
		p := uint16(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		if udpFree(a, p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no port free for TCP and UDP on %s", a)
}
