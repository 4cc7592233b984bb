package main

// Regression tests from a review of the AF_XDP backend's selection and
// wiring: each failed before its fix.

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"weir/config"
	"weir/geneve"
	"weir/internal/netns"
)

// TestAFXDPReloadAllowedSources: gwlb.allowed_sources is a reload key. After a
// SIGHUP that adds a source, GENEVE from it must come back on both backends.
// With AF_XDP the program's allow list (the LPM map, filled at Open) is never
// updated (xdp.Fill exists but nothing calls it), so XDP keeps dropping the
// new source (dropped_source) until a restart.
func TestAFXDPReloadAllowedSources(t *testing.T) {
	for _, backend := range []string{"socket", "afxdp"} {
		t.Run(backend, func(t *testing.T) {
			if backend == "afxdp" {
				requireAFXDP(t)
			}
			tp := newTopology(t)
			tp.backend = backend
			const second = "192.0.2.3"
			sh(t, "ip", "-n", tp.gw, "addr", "add", second+"/24", "dev", "veth-gw")
			node, dir := startNodeIn(t, tp, "")
			path := filepath.Join(dir, "weir.yaml")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			old := "allowed_sources: [" + gwlbAddr + "/32]"
			if !bytes.Contains(b, []byte(old)) {
				t.Fatalf("config lacks %q", old)
			}
			b = bytes.Replace(b, []byte(old), []byte("allowed_sources: ["+gwlbAddr+"/32, "+second+"/32]"), 1)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			sendSignal(t, node, syscall.SIGHUP)
			waitFor(t, 10*time.Second, func() bool {
				return strings.Contains(node.stderr.String(), `"msg":"reloaded"`) || node.exited()
			})
			var send, recv *net.UDPConn
			if err := inNetns(tp.gw, func() (err error) {
				if send, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(second)}); err != nil {
					return err
				}
				recv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(second), Port: 6081})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer send.Close()
			defer recv.Close()
			d := geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 1, AttachmentID: 2, FlowCookie: 3})
			d = append(d, innerUDP4("10.0.0.1", "10.1.0.1", 4000, 53, 16)...)
			if _, err := send.WriteToUDP(d, nodeGeneve); err != nil {
				t.Fatal(err)
			}
			recv.SetReadDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 9000)
			if _, _, err := recv.ReadFromUDP(buf); err != nil {
				m := scrape(t, tp.gw)
				t.Fatalf("no reply from the source allowed by the reload: %v (weir_xdp_packets_total{dropped_source} = %v)",
					err, m[`weir_xdp_packets_total{result="dropped_source"}`])
			}
		})
	}
}

// TestAFXDPMirrorOffLeavesVXLANToKernel: with mirror.listen "" (inline only),
// VXLAN on 4789 is not weir's: it must reach the host's own listener (a
// kernel VXLAN device, another program). The AF_XDP backend defaults
// VXLANPort to 4789 (afxdp.New) whether or not the mirror listens, so XDP
// steers it into weir's sockets and the kernel never sees it.
func TestAFXDPMirrorOffLeavesVXLANToKernel(t *testing.T) {
	requireAFXDP(t)
	tp := newTopology(t)
	tp.backend = "afxdp"
	startNodeIn(t, tp, "mirror:\n  listen: \"\"\n")
	var host *net.UDPConn
	if err := inNetns(tp.node, func() (err error) {
		host, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 4789})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	send, _ := gwlbSocket(t, tp)
	vx := []byte{0x08, 0, 0, 0, 0, 0, 0x65, 0} // VXLAN, VNI 101
	vx = append(vx, make([]byte, 60)...)
	if _, err := send.WriteToUDP(vx, &net.UDPAddr{IP: net.ParseIP(nodeAddr), Port: 4789}); err != nil {
		t.Fatal(err)
	}
	host.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := host.ReadFromUDP(make([]byte, 2048)); err != nil {
		m := scrape(t, tp.gw)
		t.Fatalf("the host's UDP 4789 listener got nothing: %v (weir_xdp_packets_total{redirected} = %v)",
			err, m[`weir_xdp_packets_total{result="redirected"}`])
	}
}

// udpSocketsOn counts the UDP sockets bound to 127.0.0.1:port in this
// thread's namespace.
func udpSocketsOn(t *testing.T, port int) int {
	t.Helper()
	f, err := os.Open("/proc/thread-self/net/udp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := fmt.Sprintf("0100007F:%04X", port)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 1 && fs[1] == want {
			n++
		}
	}
	return n
}

// TestAutoFallbackKeepsSocketWorkers: when backend auto falls back to the
// socket backend, it is the whole dataplane and must have its usual workers
// (dataplane.workers 0 = one per CPU per listener). startNode sets Workers to
// 1 for any backend but socket before it knows whether AF_XDP opened. Needs
// no privileges: lo has no native XDP (and without privileges nothing loads).
func TestAutoFallbackKeepsSocketWorkers(t *testing.T) {
	port := freeUDPPort(t, "127.0.0.1")
	cfg, err := config.Parse("weir.yaml", []byte(fmt.Sprintf(`gwlb:
  listen: 127.0.0.1:%d
  reply: udp
mirror:
  listen: ""
dataplane:
  backend: auto
  interface: lo
health:
  listen: 127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
`, port)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := startNode(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer n.shutdown(0, nil)
	if n.xdp != nil {
		t.Fatal("AF_XDP opened on lo")
	}
	if got, want := udpSocketsOn(t, port), runtime.NumCPU(); got != want {
		t.Errorf("auto fell back to sockets with %d worker sockets on gwlb.listen, want %d (one per CPU, as backend socket)", got, want)
	}
}

// TestAutoExplicitInterfaceMissing: dataplane.interface names an interface
// that does not exist: a configuration error (a typo), not "AF_XDP cannot run
// here". backend auto logs it at Info and runs sockets; check-config passes.
func TestAutoExplicitInterfaceMissing(t *testing.T) {
	data := "dataplane:\n  backend: auto\n  interface: weirnonesuch0\n"
	cfg, err := config.Parse("weir.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	b, err := openAFXDP(cfg, slog.New(slog.NewTextHandler(&logBuf, nil)), nil)
	if b != nil {
		b.Close()
	}
	if err == nil {
		t.Errorf("openAFXDP with auto and a missing dataplane.interface: no error; log: %s", logBuf.String())
	}
	if err := checkDataplane(cfg); err == nil {
		t.Error("check-config passes a missing dataplane.interface with backend auto")
	}
}

// TestDataplaneInterfaceThreadNetns: dataplaneInterface must read the
// routing table of the namespace AF_XDP will open in (the calling thread's, as
// afxdp.Open and net.Interfaces use), not the process's main thread's:
// /proc/self/net is the thread group leader's namespace.
func TestDataplaneInterfaceThreadNetns(t *testing.T) {
	tp := newTopology(t)
	sh(t, "ip", "-n", tp.node, "route", "add", "default", "via", gwlbAddr)
	var got string
	var gerr error
	if err := netns.Run(tp.node, func() error {
		got, gerr = dataplaneInterface(config.Default())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil || got != "veth-node" {
		t.Errorf("dataplaneInterface in %s = %q, %v; want veth-node (its default route)", tp.node, got, gerr)
	}
}

// TestAFXDPInProcess runs startNode with backend afxdp in-process (on a
// thread in the node namespace) so that -race sees runDataplane, Run, the
// collector and shutdown; the program must be gone after shutdown.
func TestAFXDPInProcess(t *testing.T) {
	requireAFXDP(t)
	tp := newTopology(t)
	if err := inNetns(tp.gw, func() error { return netns.TxChecksumOff(tp.gwIf) }); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("weir.yaml", []byte(`gwlb:
  listen: 0.0.0.0:6081
  allowed_sources: [`+gwlbAddr+`/32]
dataplane:
  backend: afxdp
  interface: veth-node
health:
  listen: `+nodeAddr+`:8080
  drain_delay: 0s
metrics:
  listen: `+nodeAddr+`:9090
`))
	if err != nil {
		t.Fatal(err)
	}
	var n *node
	if err := netns.Run(tp.node, func() (err error) {
		n, err = startNode(t.Context(), cfg, slog.New(slog.DiscardHandler))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			n.shutdown(0, nil)
		}
	}()
	send, recv := gwlbSocket(t, tp)
	scrapes := make(chan struct{})
	go func() {
		defer close(scrapes)
		for range 50 {
			get(tp.gw, "http://"+nodeAddr+":9090/metrics")
		}
	}()
	for i := range 20 {
		hairpinOne(t, tp, send, recv, uint16(2000+i))
	}
	<-scrapes
	n.shutdown(0, nil)
	stopped = true
	if prog := xdpProgOn(t, tp.node, "veth-node"); prog != "" {
		t.Errorf("XDP left attached after shutdown: %s", prog)
	}
}

// TestAFXDPStartNodeFailsAfterOpen: the metrics port is taken, so startNode
// fails after openAFXDP attached the program: nothing may stay attached.
func TestAFXDPStartNodeFailsAfterOpen(t *testing.T) {
	requireAFXDP(t)
	tp := newTopology(t)
	cfg, err := config.Parse("weir.yaml", []byte(`dataplane:
  backend: afxdp
  interface: veth-node
health:
  listen: `+nodeAddr+`:8080
metrics:
  listen: `+nodeAddr+`:9090
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Run(tp.node, func() error {
		ln, err := net.Listen("tcp4", nodeAddr+":9090")
		if err != nil {
			return err
		}
		defer ln.Close()
		n, err := startNode(t.Context(), cfg, slog.New(slog.DiscardHandler))
		if err == nil {
			n.shutdown(0, nil)
			return fmt.Errorf("startNode succeeded with the metrics port taken")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if prog := xdpProgOn(t, tp.node, "veth-node"); prog != "" {
		t.Errorf("XDP left attached after startNode failed: %s", prog)
	}
}
