package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"weir/geneve"
	"weir/internal/netns"
)

// hairpinOne sends one GENEVE datagram from the GWLB side and wants it back,
// byte for byte, from the node.
func hairpinOne(t *testing.T, tp *topology, send, recv *net.UDPConn, sport uint16) {
	t.Helper()
	aws := geneve.AWS{EndpointID: 0x0123456789abcdef, AttachmentID: 7, FlowCookie: 0xfeed}
	b := geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, aws)
	b = append(b, innerUDP4("10.0.0.1", "10.1.0.1", sport, 53, 16)...)
	if _, err := send.WriteToUDP(b, nodeGeneve); err != nil {
		t.Fatal(err)
	}
	recv.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 9000)
	n, _, err := recv.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	if !bytes.Equal(buf[:n], b) {
		t.Fatal("the reply differs from what was sent")
	}
}

// TestE2EAFXDPKernelTraffic: with the AF_XDP backend attached, what is not
// tunnel traffic still reaches the kernel (ping, the health port over TCP),
// GENEVE is redirected, and the metrics say so per queue.
func TestE2EAFXDPKernelTraffic(t *testing.T) {
	requireAFXDP(t)
	tp := newTopology(t)
	tp.backend = "afxdp"
	node, _ := startNodeIn(t, tp, "") // healthy: TCP to the health port got through
	if err := inNetns(tp.gw, func() error { return netns.Ping(netip.MustParseAddr(nodeAddr)) }); err != nil {
		t.Errorf("ping through the XDP program: %v", err)
	}
	send, recv := gwlbSocket(t, tp)
	for i := range 10 {
		hairpinOne(t, tp, send, recv, uint16(1000+i))
	}
	m := scrape(t, tp.gw)
	if got := m[`weir_afxdp_info{frags="true",interface="veth-node",xdp_mode="driver"}`]; got != 1 {
		t.Errorf("weir_afxdp_info for a multi-buffer program in driver mode = %v; metrics:\n%s", got, afxdpMetrics(m))
	}
	if got := m[`weir_afxdp_rx_packets_total{queue="0"}`]; got < 10 {
		t.Errorf("weir_afxdp_rx_packets_total{queue=0} = %v, want at least 10", got)
	}
	if got := m[`weir_afxdp_tx_packets_total{queue="0"}`]; got < 10 {
		t.Errorf("weir_afxdp_tx_packets_total{queue=0} = %v, want at least 10", got)
	}
	if got := m[`weir_xdp_packets_total{result="redirected"}`]; got < 10 {
		t.Errorf("weir_xdp_packets_total{redirected} = %v, want at least 10", got)
	}
	if got := m[`weir_xdp_packets_total{result="passed"}`]; got < 3 {
		t.Errorf("weir_xdp_packets_total{passed} = %v, want at least the pings and the TCP", got)
	}
	if got := m[`weir_dataplane_backend{backend="afxdp"}`]; got != 1 {
		t.Errorf("weir_dataplane_backend{afxdp} = %v, want 1", got)
	}
	if got := m[`weir_packets_total{action="allow",encap="geneve"}`]; got != 10 {
		t.Errorf("weir_packets_total allow = %v, want 10", got)
	}
	sendSignal(t, node, syscall.SIGTERM)
	if err := node.wait(t, 20*time.Second); err != nil {
		t.Fatalf("weir exit: %v\n%s", err, node.stderr.String())
	}
	if prog := xdpProgOn(t, tp.node, "veth-node"); prog != "" {
		t.Errorf("XDP program left attached after exit: %s", prog)
	}
}

func afxdpMetrics(m map[string]float64) string {
	var b strings.Builder
	for k, v := range m {
		if strings.Contains(k, "xdp") {
			fmt.Fprintf(&b, "%s %v\n", k, v)
		}
	}
	return b.String()
}

// xdpProgOn returns the "prog/xdp" line of `ip link show` for dev in ns, or "".
func xdpProgOn(t *testing.T, ns, dev string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-d", "link", "show", "dev", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "prog/xdp") || strings.Contains(l, " xdp ") {
			return l
		}
	}
	return ""
}

// TestE2EAFXDPRestartAfterKill: weir killed with SIGKILL leaves nothing that
// keeps the next weir from attaching (the program is held by a BPF link that
// dies with the process), and the restarted weir forwards.
func TestE2EAFXDPRestartAfterKill(t *testing.T) {
	requireAFXDP(t)
	tp := newTopology(t)
	tp.backend = "afxdp"
	node, _ := startNodeIn(t, tp, "")
	send, recv := gwlbSocket(t, tp)
	hairpinOne(t, tp, send, recv, 1)
	sendSignal(t, node, syscall.SIGKILL)
	node.wait(t, 10*time.Second)
	// The kernel releases the link once the last descriptor of the dead process
	// closes, which may trail its exit a little.
	waitFor(t, 5*time.Second, func() bool { return xdpProgOn(t, tp.node, "veth-node") == "" })
	node, _ = startNodeIn(t, tp, "")
	hairpinOne(t, tp, send, recv, 2)
	if node.exited() {
		t.Fatalf("restarted weir exited: %s", node.stderr.String())
	}
}

// TestE2EAFXDPAuto: backend auto finds the interface from the default route
// and runs AF_XDP on it; on an interface without native XDP (lo) it runs the
// socket backend and logs why, where backend afxdp fails with the line of the
// configuration.
func TestE2EAFXDPAuto(t *testing.T) {
	requireAFXDP(t)
	t.Run("default route", func(t *testing.T) {
		tp := newTopology(t)
		sh(t, "ip", "-n", tp.node, "route", "add", "default", "via", gwlbAddr)
		tp.backend = "auto"
		node, _ := startNodeIn(t, tp, "")
		m := scrape(t, tp.gw)
		if got := m[`weir_afxdp_info{frags="true",interface="veth-node",xdp_mode="driver"}`]; got != 1 {
			t.Errorf("auto did not pick AF_XDP on the default route's interface; metrics:\n%s\nlog:\n%s", afxdpMetrics(m), node.stderr.String())
		}
		send, recv := gwlbSocket(t, tp)
		hairpinOne(t, tp, send, recv, 1)
	})
	t.Run("no native XDP", func(t *testing.T) {
		tp := newTopology(t)
		tp.backend = "auto\n  interface: lo"
		node, _ := startNodeIn(t, tp, "")
		if log := node.stderr.String(); !strings.Contains(log, "AF_XDP not used, running the socket backend") || !strings.Contains(log, "native XDP") {
			t.Errorf("the log does not say why AF_XDP is not used:\n%s", log)
		}
		m := scrape(t, tp.gw)
		if _, ok := m[`weir_afxdp_info{frags="true",interface="lo",xdp_mode="driver"}`]; ok {
			t.Error("AF_XDP metrics on lo")
		}
		if got := m[`weir_dataplane_backend{backend="socket"}`]; got != 1 {
			t.Errorf("weir_dataplane_backend{socket} = %v, want 1", got)
		}
		send, recv := gwlbSocket(t, tp)
		hairpinOne(t, tp, send, recv, 1)
	})
	// Privileges taken away: auto runs the socket backend and says why,
	// afxdp fails saying why.
	for _, tc := range []struct {
		name string
		wrap []string // the command weir runs under
		why  string
	}{
		{"no locked memory", []string{"prlimit", "--memlock=65536", "setpriv", "--inh-caps=-ipc_lock,-sys_resource",
			"--bounding-set=-ipc_lock,-sys_resource"}, "LimitMEMLOCK"},
		{"no CAP_NET_RAW", []string{"setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw"}, "socket(AF_XDP): operation not permitted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireTool(t, "setpriv")
			requireTool(t, "prlimit")
			tp := newTopology(t)
			for _, backend := range []string{"auto", "afxdp"} {
				cfg := writeConfig(t, "weir.yaml", "dataplane:\n  backend: "+backend+"\n  interface: veth-node\nhealth:\n  listen: 127.0.0.1:18080\n  drain_delay: 0s\nmetrics:\n  listen: \"\"\n")
				args := append(append([]string{}, tc.wrap...), weirBinary(t), "run", "-config", cfg)
				p := startIn(t, tp.node, args...)
				if backend == "afxdp" {
					if err := p.wait(t, 10*time.Second); err == nil || !strings.Contains(p.stderr.String(), tc.why) {
						t.Errorf("backend afxdp: %v, want an error that says %q:\n%s", err, tc.why, p.stderr.String())
					}
					continue
				}
				waitHealthy(t, tp.node, "http://127.0.0.1:18080/healthz", 10*time.Second, p)
				if log := p.stderr.String(); !strings.Contains(log, "AF_XDP not used") || !strings.Contains(log, tc.why) {
					t.Errorf("the log does not say why AF_XDP is not used:\n%s", log)
				}
				sendSignal(t, p, syscall.SIGTERM)
				p.wait(t, 20*time.Second)
			}
		})
	}
	t.Run("least privilege", func(t *testing.T) {
		// Not root: user nobody with CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW and
		// CAP_IPC_LOCK only (as README says a unit needs) runs AF_XDP.
		requireTool(t, "setpriv")
		tp := newTopology(t)
		const caps = "-all,+bpf,+net_admin,+net_raw,+ipc_lock"
		// A directory user nobody can read (t.TempDir's parent is root's alone).
		dir, err := os.MkdirTemp("", "weir-least-privilege-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, "weir.yaml")
		if err := os.WriteFile(cfg, []byte("dataplane:\n  backend: afxdp\n  interface: veth-node\nhealth:\n  listen: 127.0.0.1:18080\n  drain_delay: 0s\nmetrics:\n  listen: 127.0.0.1:19090\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p := startIn(t, tp.node, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			"--inh-caps="+caps, "--ambient-caps="+caps, "--bounding-set="+caps, weirBinary(t), "run", "-config", cfg)
		waitHealthy(t, tp.node, "http://127.0.0.1:18080/healthz", 10*time.Second, p)
		m := scrapeURL(t, tp.node, "http://127.0.0.1:19090/metrics")
		if got := m[`weir_afxdp_info{frags="true",interface="veth-node",xdp_mode="driver"}`]; got != 1 {
			t.Errorf("AF_XDP not running with the four capabilities; log:\n%s", p.stderr.String())
		}
		sendSignal(t, p, syscall.SIGTERM)
		if err := p.wait(t, 20*time.Second); err != nil {
			t.Errorf("weir exit: %v\n%s", err, p.stderr.String())
		}
	})
	t.Run("afxdp refused", func(t *testing.T) {
		tp := newTopology(t)
		cfg := writeConfig(t, "weir.yaml", "dataplane:\n  backend: afxdp\n  interface: lo\nhealth:\n  listen: 127.0.0.1:0\nmetrics:\n  listen: 127.0.0.1:0\n")
		p := startIn(t, tp.node, weirBinary(t), "run", "-config", cfg)
		err := p.wait(t, 10*time.Second)
		if err == nil {
			t.Fatal("weir ran with backend afxdp on lo")
		}
		if log := p.stderr.String(); !strings.Contains(log, cfg+":2: dataplane.backend:") || !strings.Contains(log, "native XDP") {
			t.Errorf("the error does not point at the key and say why:\n%s", log)
		}
	})
}
