package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	gwlbsim "weir/sim/gwlb"
)

// TestE2ESlowEVEConsumer: EVE goes to a FIFO whose reader stops reading (a stuck log
// shipper). The output queue fills, housekeeping blocks on it, and a tiny flow table
// keeps the packet path ending flows; every allowed packet must still come back, the
// lost records must be counted, and once the reader reads again weir stops cleanly.
func TestE2ESlowEVEConsumer(t *testing.T) {
	tp := newTopology(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "eve.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The reader opens the FIFO (so weir's open does not wait) and reads nothing yet.
	reader, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	cfg := fmt.Sprintf(`
gwlb:
  listen: 0.0.0.0:6081
  allowed_sources: [%s/32]
dataplane:
  workers: 2
health:
  listen: %s:8080
  drain_delay: 0s
metrics:
  listen: %s:9090
mirror:
  listen: ""
flows:
  max: 64
  other_timeout: 1s
outputs:
  eve: %s
  eve_queue: 16
`, gwlbAddr, nodeAddr, nodeAddr, fifo)
	path := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	node := startIn(t, tp.node, weirBinary(t), "run", "-config", path)
	waitHealthy(t, tp.gw, "http://"+nodeAddr+":8080/healthz", 10*time.Second, node)

	sim := func(flows, seed int) gwlbsim.Report {
		p := startIn(t, tp.gw, weirBinary(t), "sim", "gwlb",
			"-target", nodeAddr+":6081,http://"+nodeAddr+":8080/healthz",
			"-local", gwlbAddr, "-flows", fmt.Sprint(flows), "-packets", "2", "-protos", "udp",
			"-rate", "5000", "-seed", fmt.Sprint(seed), "-reply-timeout", "3s")
		if err := p.wait(t, 60*time.Second); err != nil {
			t.Fatalf("sim: %v\n%s", err, p.stderr.String())
		}
		var rep gwlbsim.Report
		if err := json.Unmarshal(p.stdout.Bytes(), &rep); err != nil {
			t.Fatalf("sim report: %v\n%s", err, p.stdout.String())
		}
		return rep
	}

	// Enough ended flows to fill the pipe, the writer's buffer and the queue.
	first := sim(3000, 1)
	if first.Returned != first.Sent {
		t.Fatalf("before the stall: sent %d, returned %d", first.Sent, first.Returned)
	}
	waitFor(t, 10*time.Second, func() bool {
		return scrape(t, tp.gw)[`weir_eve_dropped_total{event_type="flow"}`] > 0
	})
	// Housekeeping now ends the idle flows and blocks on the full queue (the table
	// shrinking shows it has started).
	waitFor(t, 10*time.Second, func() bool { return scrape(t, tp.gw)["weir_flows_active"] < 64 })

	second := sim(1000, 2)
	t.Logf("with the EVE reader stuck: sent %d, returned %d, dropped %d", second.Sent, second.Returned, second.Dropped)
	if second.Returned != second.Sent || second.Mismatched != 0 {
		t.Errorf("with the EVE reader stuck, %d of %d packets came back (%d mismatched)", second.Returned, second.Sent, second.Mismatched)
	}
	if code, body, err := get(tp.gw, "http://"+nodeAddr+":8080/healthz"); err != nil || code != 200 {
		t.Errorf("health %d %q %v while forwarding", code, body, err)
	}

	// The reader reads again: weir stops on SIGTERM, and what it wrote is valid EVE.
	lines := make(chan int, 1)
	go func() {
		n := 0
		sc := bufio.NewScanner(reader) // the runtime's poller waits for data; EOF when weir closes
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var v map[string]any
			if json.Unmarshal(sc.Bytes(), &v) != nil {
				n = -1 << 30
			}
			n++
		}
		lines <- n
	}()
	sendSignal(t, node, syscall.SIGTERM)
	if err := node.wait(t, 20*time.Second); err != nil {
		t.Fatalf("weir did not stop: %v\n%s", err, node.stderr.String())
	}
	if n := <-lines; n <= 0 {
		t.Errorf("EVE after the stall: %d valid lines (negative: some line was not JSON)", n)
	}
}
