package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
)

// sentRE reads the packets an action of `tc -s filter show` handled.
var sentRE = regexp.MustCompile(`Sent \d+ bytes (\d+) pkt`)

const (
	orderClientIP = "10.201.0.1"
	orderServerIP = "10.201.0.2"
	orderPort     = 61080 // above the ephemeral ports: the lower port is the client's
	orderConns    = 40
)

// TestE2EMirrorTwoVTEPOrder: the two directions of each TCP connection are mirrored
// by two kernel VXLAN devices with different local addresses (one VTEP sees what the
// client sends, the other what the server sends), so they reach weir from two outer
// sources and, with four workers on SO_REUSEPORT sockets, on different workers.
// weir must still record one flow per connection, with the client as src, and a
// pcap whose timestamps never go backwards, in which tshark finds no segment out of
// order, retransmitted or acknowledged unseen.
func TestE2EMirrorTwoVTEPOrder(t *testing.T) {
	tp := newTopology(t)
	requireTool(t, "tshark")
	requireTool(t, "tc")
	// The client lives in a namespace of its own, cabled to the server in tp.gw and,
	// by a second pair, to weir's. Each side mirrors what it sends, as two mirrored
	// ENIs would: the client through vx0 in its namespace (VTEP 192.0.3.1), the server
	// through vx0 in tp.gw (VTEP 192.0.2.1). One VNI, one session, two outer sources.
	cl := tp.gw + "-cl"
	t.Cleanup(func() { exec.Command("ip", "netns", "del", cl).Run() })
	sh(t, "ip", "netns", "add", cl)
	sh(t, "ip", "-n", cl, "link", "set", "lo", "up")
	sh(t, "ip", "-n", tp.gw, "link", "add", "sv0", "type", "veth", "peer", "name", "cl0", "netns", cl)
	sh(t, "ip", "-n", cl, "addr", "add", orderClientIP+"/24", "dev", "cl0")
	sh(t, "ip", "-n", tp.gw, "addr", "add", orderServerIP+"/24", "dev", "sv0")
	sh(t, "ip", "-n", cl, "link", "add", "veth-cl", "type", "veth", "peer", "name", "veth-cl-node", "netns", tp.node)
	sh(t, "ip", "-n", cl, "addr", "add", "192.0.3.1/24", "dev", "veth-cl")
	sh(t, "ip", "-n", tp.node, "addr", "add", "192.0.3.2/24", "dev", "veth-cl-node")
	sh(t, "ip", "-n", tp.node, "link", "set", "veth-cl-node", "up")
	for _, x := range []struct{ ns, dev, remote, local, via string }{
		{cl, "cl0", "192.0.3.2", "192.0.3.1", "veth-cl"},
		{tp.gw, "sv0", nodeAddr, gwlbAddr, "veth-gw"},
	} {
		sh(t, "ip", "-n", x.ns, "link", "set", x.via, "up")
		sh(t, "ip", "-n", x.ns, "link", "set", x.dev, "up")
		sh(t, "ip", "-n", x.ns, "link", "add", "vx0", "type", "vxlan", "id", "4343",
			"remote", x.remote, "local", x.local, "dstport", "4789", "dev", x.via)
		sh(t, "ip", "-n", x.ns, "link", "set", "vx0", "up")
		sh(t, "tc", "-n", x.ns, "qdisc", "add", "dev", x.dev, "clsact")
		sh(t, "tc", "-n", x.ns, "filter", "add", "dev", x.dev, "egress", "protocol", "ip", "u32", "match", "u32", "0", "0",
			"action", "mirred", "egress", "mirror", "dev", "vx0")
	}

	dir := t.TempDir()
	pcapDir := filepath.Join(dir, "pcap")
	evePath := filepath.Join(dir, "eve.json")
	cfg := fmt.Sprintf(`
dataplane:
  workers: 4
health:
  listen: %s:8080
  drain_delay: 0s
metrics:
  listen: %s:9090
mirror:
  listen: 0.0.0.0:4789
  sessions:
    - {vni: 4343, name: lab}
outputs:
  eve: %s
  pcap: {dir: %s, reorder_window: 50ms}  # the default 5ms holds here too; wider against a loaded CI machine
`, nodeAddr, nodeAddr, evePath, pcapDir)
	cfgPath := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	node := startIn(t, tp.node, weirBinary(t), "run", "-config", cfgPath)
	waitHealthy(t, tp.gw, "http://"+nodeAddr+":8080/healthz", 10*time.Second, node)

	// An HTTP-like server in tp.gw: read the request, answer, close.
	var ln net.Listener
	if err := inNetns(tp.gw, func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", orderServerIP, orderPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				// Read the whole request: closing with unread data would reset.
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if l == "\r\n" {
						break
					}
				}
				io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 600\r\n\r\n"+strings.Repeat("w", 600))
			}()
		}
	}()
	// The clients: each connection is dialled on the thread in the client's
	// namespace (a goroutine would run elsewhere), then talks on its own goroutine.
	type result struct {
		port int
		err  error
	}
	res := make(chan result, orderConns)
	for i := range orderConns {
		var c net.Conn
		if err := inNetns(cl, func() (err error) {
			c, err = net.DialTimeout("tcp4", fmt.Sprintf("%s:%d", orderServerIP, orderPort), 3*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := fmt.Fprintf(c, "GET /%d HTTP/1.0\r\n\r\n", i); err != nil {
				res <- result{err: err}
				return
			}
			b, err := io.ReadAll(c)
			if err == nil && !strings.HasSuffix(string(b), strings.Repeat("w", 600)) {
				err = fmt.Errorf("short answer: %d bytes: %q", len(b), b)
			}
			res <- result{port: c.LocalAddr().(*net.TCPAddr).Port, err: err}
		}()
	}
	clientPorts := map[int]bool{}
	for range orderConns {
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}
		clientPorts[r.port] = true
	}
	// Every connection ends with FIN both ways; wait until weir has received all the
	// mirrored packets the server's interface saw, by its counters.
	mirrored := func() float64 {
		n := 0.0
		for _, x := range [][2]string{{cl, "cl0"}, {tp.gw, "sv0"}} {
			out, err := exec.Command("tc", "-n", x[0], "-s", "filter", "show", "dev", x[1], "egress").Output()
			if err != nil {
				t.Fatal(err)
			}
			if m := sentRE.FindStringSubmatch(string(out)); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				n += v
			}
		}
		return n
	}
	svPkts := mirrored()
	if svPkts < orderConns*8 {
		t.Fatalf("tc mirrored %v packets, want at least %d:\n", svPkts, orderConns*8)
	}
	waitFor(t, 10*time.Second, func() bool {
		return scrape(t, tp.gw)[`weir_mirror_received_packets_total{session="lab"}`] >= svPkts
	})
	late := scrape(t, tp.gw)["weir_pcap_late_total"]
	sendSignal(t, node, syscall.SIGTERM)
	if err := node.wait(t, 15*time.Second); err != nil {
		t.Fatalf("weir: %v\n%s", err, node.stderr.String())
	}

	// One flow per connection, the client as src.
	data, err := os.ReadFile(evePath)
	if err != nil {
		t.Fatal(err)
	}
	flows, reversed, other := 0, 0, 0
	seen := map[int]int{}
	lines := map[int][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var ev struct {
			EventType string `json:"event_type"`
			Proto     string `json:"proto"`
			SrcIP     string `json:"src_ip"`
			SrcPort   int    `json:"src_port"`
			DestIP    string `json:"dest_ip"`
			DestPort  int    `json:"dest_port"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if ev.EventType != "flow" || ev.Proto != "TCP" {
			continue
		}
		flows++
		switch {
		case ev.SrcIP == orderClientIP && ev.DestIP == orderServerIP && ev.DestPort == orderPort && clientPorts[ev.SrcPort]:
			seen[ev.SrcPort]++
			lines[ev.SrcPort] = append(lines[ev.SrcPort], line)
		case ev.DestIP == orderClientIP && ev.SrcIP == orderServerIP && ev.SrcPort == orderPort && clientPorts[ev.DestPort]:
			reversed++
			seen[ev.DestPort]++
			t.Errorf("flow recorded server as client: %s", line)
		default:
			other++
			t.Errorf("flow of no connection: %s", line)
		}
	}
	split := 0
	for port, n := range seen {
		if n != 1 {
			split++
			t.Errorf("connection from port %d makes %d flows:\n%s", port, n, strings.Join(lines[port], "\n"))
		}
	}
	t.Logf("%d connections: %d TCP flows, %d reversed, %d split, %d unknown", orderConns, flows, reversed, split, other)
	if len(seen) != orderConns {
		t.Errorf("flows for %d of %d connections", len(seen), orderConns)
	}

	// The pcap: timestamps never go backwards; tshark sees nothing out of order.
	files, _ := filepath.Glob(filepath.Join(pcapDir, "*.pcap"))
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatalf("weir wrote no pcap in %s", pcapDir)
	}
	backwards, frames := 0, 0
	var last time.Time
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := pcapgo.NewReader(fh)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for {
			_, ci, err := r.ReadPacketData()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			frames++
			if ci.Timestamp.Before(last) {
				backwards++
			}
			last = ci.Timestamp
		}
		fh.Close()
	}
	const orderFlags = "tcp.analysis.out_of_order || tcp.analysis.retransmission || " +
		"tcp.analysis.spurious_retransmission || tcp.analysis.fast_retransmission || " +
		"tcp.analysis.ack_lost_segment || tcp.analysis.lost_segment || tcp.analysis.duplicate_ack"
	flagged := 0
	var sample []string
	for _, f := range files {
		out, err := exec.Command("tshark", "-r", f, "-Y", orderFlags, "-T", "fields",
			"-e", "frame.number", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags.str", "-e", "_ws.expert.message").Output()
		if err != nil {
			t.Fatalf("tshark %s: %v", f, err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				flagged++
				if len(sample) < 10 {
					sample = append(sample, l)
				}
			}
		}
	}
	t.Logf("pcap: %d frames, %d timestamps going backwards (%v counted late), %d flagged by tshark", frames, backwards, late, flagged)
	if backwards > 0 {
		t.Errorf("%d pcap records are older than the one before them", backwards)
	}
	if flagged > 0 {
		t.Errorf("tshark flags %d frames as out of order, retransmitted or acknowledging unseen data, e.g.:\n%s",
			flagged, strings.Join(sample, "\n"))
	}
	if frames < orderConns*8 {
		t.Errorf("pcap holds %d frames, want at least %d (8 a connection)", frames, orderConns*8)
	}
}
