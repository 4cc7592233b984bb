package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"weir/internal/netns"
)

// The end-to-end tests build a two-host topology: a simulated GWLB in one network
// namespace, a weir node in another, joined by a veth pair with a 9001-byte MTU as on
// AWS. Addresses are from TEST-NET-1 and exist only inside those namespaces.
const (
	gwlbAddr = "192.0.2.1"
	nodeAddr = "192.0.2.2"
)

// TestMain removes what an earlier, killed run of these tests left behind (its
// namespaces carry its pid), and the binary this run built.
func TestMain(m *testing.M) {
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			name, _, _ := strings.Cut(line, " ")
			var rest string
			var ok bool
			for _, prefix := range []string{"weir-gw-", "weir-node-", "weir-br-"} {
				if rest, ok = strings.CutPrefix(name, prefix); ok {
					break
				}
			}
			pid, _, _ := strings.Cut(rest, "-")
			if n, err := strconv.Atoi(pid); ok && err == nil && syscall.Kill(n, 0) != nil {
				exec.Command("ip", "netns", "del", name).Run()
			}
		}
	}
	code := m.Run()
	if weirBin != "" {
		os.RemoveAll(filepath.Dir(weirBin))
	}
	os.Exit(code)
}

// requireNetns skips unless the test can create network namespaces.
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOutsideCI(t, "needs root to create network namespaces (run the tests as root, as CI does)")
	}
	requireTool(t, "ip")
}

// requireTool skips a test when a peer tool (tshark, ip) is missing on a developer's
// machine; in CI (CI set), which installs them, a missing tool fails the test, so
// that nothing is skipped forever unnoticed.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		skipOutsideCI(t, "needs "+name+" (CI installs it)")
	}
}

func skipOutsideCI(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why + ", and this is CI")
	}
	t.Skip(why)
}

var (
	buildOnce sync.Once
	weirBin   string
	buildErr  error
)

// weirBinary builds the weir binary once per test run.
func weirBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "weir-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		weirBin = filepath.Join(dir, "weir")
		out, err := exec.Command("go", "build", "-o", weirBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return weirBin
}

// topology is the two namespaces and the veth between them.
type topology struct {
	gw, node string // namespace names
	gwIf     string // the GWLB side's interface
	// backend is the node's dataplane.backend; "" leaves the default (auto,
	// which finds no interface there: no default route, gwlb.listen 0.0.0.0).
	backend string
	peerXDP bool // the GWLB side's interface has its XDP_PASS program
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newTopology creates the namespaces; they are deleted when the test ends, failed
// or not.
func newTopology(t *testing.T) *topology {
	t.Helper()
	requireNetns(t)
	id := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	tp := &topology{gw: "weir-gw-" + id, node: "weir-node-" + id, gwIf: "veth-gw"}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", tp.gw).Run()
		exec.Command("ip", "netns", "del", tp.node).Run()
	})
	sh(t, "ip", "netns", "add", tp.gw)
	sh(t, "ip", "netns", "add", tp.node)
	sh(t, "ip", "-n", tp.gw, "link", "add", "veth-gw", "mtu", "9001", "type", "veth",
		"peer", "name", "veth-node", "mtu", "9001", "netns", tp.node)
	sh(t, "ip", "-n", tp.gw, "addr", "add", gwlbAddr+"/24", "dev", "veth-gw")
	sh(t, "ip", "-n", tp.node, "addr", "add", nodeAddr+"/24", "dev", "veth-node")
	for _, ns := range []string{tp.gw, tp.node} {
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "ip", "-n", tp.gw, "link", "set", "veth-gw", "up")
	sh(t, "ip", "-n", tp.node, "link", "set", "veth-node", "up")
	return tp
}

// fleetTopology is a switched segment: a bridge in a namespace of its own, and the
// simulated GWLB and n weir nodes each in a namespace attached to it by a veth.
type fleetTopology struct {
	bridge string   // the namespace holding the bridge
	gw     string   // the GWLB's namespace, at gwlbAddr
	nodes  []string // the nodes' namespaces, at fleetNodeAddr(i)
}

// fleetNodeAddr is node i's address on a fleet topology.
func fleetNodeAddr(i int) string { return fmt.Sprintf("192.0.2.%d", 11+i) }

// newFleetTopology creates the namespaces, the bridge and the veths; everything is
// deleted when the test ends, failed or not.
func newFleetTopology(t *testing.T, n int) *fleetTopology {
	t.Helper()
	requireNetns(t)
	id := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	tp := &fleetTopology{bridge: "weir-br-" + id, gw: "weir-gw-" + id}
	for i := range n {
		tp.nodes = append(tp.nodes, fmt.Sprintf("weir-node-%s-%d", id, i))
	}
	all := append([]string{tp.bridge, tp.gw}, tp.nodes...)
	t.Cleanup(func() {
		for _, ns := range all {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for _, ns := range all {
		sh(t, "ip", "netns", "add", ns)
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "ip", "-n", tp.bridge, "link", "add", "br0", "mtu", "9001", "type", "bridge")
	sh(t, "ip", "-n", tp.bridge, "link", "set", "br0", "up")
	attach := func(port, ns, addr string) {
		sh(t, "ip", "-n", tp.bridge, "link", "add", port, "mtu", "9001", "type", "veth",
			"peer", "name", "eth0", "mtu", "9001", "netns", ns)
		sh(t, "ip", "-n", tp.bridge, "link", "set", port, "master", "br0", "up")
		sh(t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		sh(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	}
	attach("p-gw", tp.gw, gwlbAddr)
	for i, ns := range tp.nodes {
		attach(fmt.Sprintf("p-node%d", i), ns, fleetNodeAddr(i))
	}
	return tp
}

// process is a command running in a namespace, killed when the test ends.
type process struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr lockedBuffer
	done   chan struct{}
	err    error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startIn(t *testing.T, ns string, args ...string) *process {
	t.Helper()
	p := &process{done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	// If the test binary dies (a -timeout panic), take the process with it; the
	// setting survives ip's exec of the command.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits up to d for the process to exit.
func (p *process) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("%v still running after %s; stderr:\n%s", p.cmd.Args, d, p.stderr.String())
		return nil
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// inNetns runs f on an OS thread switched into namespace ns (netns.Run).
func inNetns(ns string, f func() error) error { return netns.Run(ns, f) }

// nsHTTPClient makes HTTP requests from inside namespace ns.
func nsHTTPClient(ns string) *http.Client {
	return &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var c net.Conn
				err := inNetns(ns, func() (err error) {
					c, err = (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
					return err
				})
				return c, err
			},
		},
	}
}

// get fetches url from namespace ns and returns the status code and body.
func get(ns, url string) (int, string, error) {
	resp, err := nsHTTPClient(ns).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitHealthy polls url from ns until it answers 200, for at most d.
func waitHealthy(t *testing.T, ns, url string, d time.Duration, p *process) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			t.Fatalf("weir exited: %v\n%s", p.err, p.stderr.String())
		}
		if code, _, err := get(ns, url); err == nil && code == 200 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not healthy within %s", url, d)
}

func sendSignal(t *testing.T, p *process, sig syscall.Signal) {
	t.Helper()
	// ip netns exec replaces itself with the command, so the pid is weir's.
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}
