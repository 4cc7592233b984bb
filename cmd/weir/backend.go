package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"

	"weir/config"
	"weir/dataplane"
	"weir/dataplane/afxdp"
	"weir/dataplane/afxdp/xsk"
	"weir/dataplane/flow"
	"weir/dataplane/socket"
)

// openAFXDP opens the AF_XDP backend as cfg.Dataplane asks: nil for the socket
// backend alone (backend: socket, or auto where AF_XDP cannot run here, logged
// with the reason). With backend: afxdp, whatever keeps it from running is the
// error. It must run after the socket backend has bound its listeners: what
// the XDP program passes to the kernel (fragments, frames too long for a UMEM
// frame, traffic on other interfaces) is theirs.
// flows, when not nil, is the flow table the XDP fast path credits: the caller
// passes it only when no stage needs to see every packet.
func openAFXDP(cfg *config.Config, log *slog.Logger, flows *flow.Table) (*afxdp.Backend, error) {
	mode := cfg.Dataplane.Backend
	if mode == "socket" {
		return nil, nil
	}
	// Only what keeps AF_XDP from running on this machine falls back; a
	// mistake in the configuration is an error either way.
	fallBack := func(why error) (*afxdp.Backend, error) {
		if mode == "afxdp" {
			return nil, cfg.KeyError("dataplane.backend", why)
		}
		log.Warn("dataplane: AF_XDP not used, running the socket backend", "why", why.Error())
		return nil, nil
	}
	ifname, err := dataplaneInterface(cfg)
	if err != nil {
		return fallBack(err)
	}
	acfg := afxdp.Config{
		Interface:      ifname,
		Queues:         cfg.Dataplane.Queues,
		ZeroCopy:       zeroCopyMode(cfg.Dataplane.ZeroCopy),
		GenevePort:     cfg.GWLB.Listen.Port(),
		GeneveDst:      cfg.GWLB.Listen.Addr(),
		AllowedSources: xdpAllowedSources(cfg),
		Batch:          min(cfg.Dataplane.Batch, xsk.DefaultRingSize),
		Logger:         log,
		FastPath:       flows != nil,
		Flows:          flows,
		FastFlows:      min(cfg.Flows.Max, afxdp.DefaultFastFlows),
	}
	if cfg.Mirror.Listen.IsValid() {
		acfg.VXLANPort, acfg.VXLANDst = cfg.Mirror.Listen.Port(), cfg.Mirror.Listen.Addr()
	} else {
		acfg.NoMirror = true
	}
	b, err := afxdp.New(acfg)
	if errors.Is(err, afxdp.ErrQueues) {
		return nil, cfg.KeyError("dataplane.queues", err)
	}
	if err != nil {
		return nil, cfg.KeyError("dataplane.interface", err)
	}
	if err := b.Open(); err != nil {
		if errors.Is(err, afxdp.ErrUnsupported) {
			return fallBack(err)
		}
		return nil, cfg.KeyError("dataplane.backend", err)
	}
	return b, nil
}

// xdpAllowedSources is gwlb.allowed_sources for the XDP program, which checks
// IPv4 sources only (GWLB speaks IPv4 to its targets): a list with IPv6 in it
// is left to the pipeline, which checks every source.
func xdpAllowedSources(cfg *config.Config) []netip.Prefix {
	for _, p := range cfg.GWLB.AllowedSources {
		if !p.Addr().Is4() {
			return nil
		}
	}
	return cfg.GWLB.AllowedSources
}

func zeroCopyMode(s string) xsk.ZeroCopyMode {
	switch s {
	case "on":
		return xsk.ZeroCopyOn
	case "off":
		return xsk.ZeroCopyOff
	}
	return xsk.ZeroCopyAuto
}

// checkDataplane is check-config's part: the interface AF_XDP would bind must
// exist on this machine (with auto, a missing dataplane.interface is an error
// too: it is a slip, not a machine without AF_XDP).
func checkDataplane(cfg *config.Config) error {
	if cfg.Dataplane.Backend == "socket" {
		return nil
	}
	name, err := dataplaneInterface(cfg)
	if err != nil {
		if cfg.Dataplane.Backend == "afxdp" {
			return cfg.KeyError("dataplane.backend", err)
		}
		return nil // auto runs the socket backend
	}
	if _, err := net.InterfaceByName(name); err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err // without the "route ip+net" net wraps it in
		}
		return cfg.KeyError("dataplane.interface", fmt.Errorf("%s: %w", name, err))
	}
	return nil
}

// dataplaneInterface is the interface AF_XDP binds: dataplane.interface, else
// the one holding gwlb.listen's address, else the default route's.
func dataplaneInterface(cfg *config.Config) (string, error) {
	if cfg.Dataplane.Interface != "" {
		return cfg.Dataplane.Interface, nil
	}
	if a := cfg.GWLB.Listen.Addr(); !a.IsUnspecified() {
		name, err := interfaceWithAddr(a)
		if err != nil {
			return "", fmt.Errorf("no dataplane.interface, and finding the interface of gwlb.listen's address %s: %w", a, err)
		}
		return name, nil
	}
	// The namespace AF_XDP opens in is the calling thread's.
	f, err := os.Open("/proc/thread-self/net/route")
	if err != nil {
		return "", fmt.Errorf("no dataplane.interface, and reading the routing table: %w", err)
	}
	defer f.Close()
	if name := defaultRouteInterface(bufio.NewScanner(f)); name != "" {
		return name, nil
	}
	return "", errors.New("no dataplane.interface, gwlb.listen has no specific address, and there is no IPv4 default route")
}

// interfaceWithAddr names the interface that has address a.
func interfaceWithAddr(a netip.Addr) (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a.Unmap() {
					return ifi.Name, nil
				}
			}
		}
	}
	return "", fmt.Errorf("no interface has address %s", a)
}

// defaultRouteInterface reads /proc/net/route (a header line, then "Iface
// Destination Gateway Flags RefCnt Use Metric Mask ...", hex in host order) and
// names the interface of the IPv4 default route with the lowest metric.
func defaultRouteInterface(sc *bufio.Scanner) string {
	const rtfUp = 0x1
	best, bestMetric := "", int64(-1)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		var flags, metric int64
		if _, err := fmt.Sscanf(f[3], "%x", &flags); err != nil || flags&rtfUp == 0 {
			continue
		}
		if _, err := fmt.Sscanf(f[6], "%d", &metric); err != nil {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = f[0], metric
		}
	}
	return best
}

// runDataplane runs the backends until ctx ends. With AF_XDP, the socket
// backend runs beside it for what the XDP program passes to the kernel; it
// starts first and stops last, after the program is detached.
func (n *node) runDataplane(ctx context.Context, ready func()) error {
	if n.xdp == nil {
		return n.backend.Run(ctx, n.Pipeline, ready)
	}
	sockCtx, stopSock := context.WithCancel(context.Background())
	defer stopSock()
	sockUp, sockDone := make(chan struct{}), make(chan error, 1)
	go func() { sockDone <- n.backend.Run(sockCtx, n.Pipeline, func() { close(sockUp) }) }()
	select {
	case <-sockUp:
	case err := <-sockDone:
		n.xdp.Close()
		return err
	}
	xctx, stopXDP := context.WithCancel(ctx)
	defer stopXDP()
	sockErr := make(chan error, 1)
	go func() {
		err := <-sockDone
		sockErr <- err
		stopXDP() // the socket backend failed on its own: stop everything
	}()
	xerr := n.xdp.Run(xctx, n.Pipeline, ready)
	stopSock()
	return errors.Join(xerr, <-sockErr)
}

// backendName says which dataplane runs, for logs and the demo.
func (n *node) backendName() string {
	if n.xdp == nil {
		return n.backend.Name()
	}
	return n.xdp.Name() + ", with " + n.backend.Name() + " for what XDP passes to the kernel"
}

var _ dataplane.Backend = (*socket.Backend)(nil)
