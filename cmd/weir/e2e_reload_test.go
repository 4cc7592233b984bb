package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gwlbsim "weir/sim/gwlb"
)

// TestE2EReload: logrotate renames the EVE log and the flow log, the policy in the
// configuration file gains a drop rule, and weir gets SIGHUP. weir keeps running
// and healthy; flows established before the reload keep their verdict while a new
// flow to the newly dropped port is dropped; the old EVE file holds the records
// written before the rotation and the new one every later record, each flow in
// exactly one; a broken file then leaves the running configuration in force and
// logs FILE:LINE; SIGTERM still stops weir cleanly.
func TestE2EReload(t *testing.T) {
	tp := newTopology(t)
	dir := t.TempDir()
	evePath := filepath.Join(dir, "eve.json")
	flowLog := filepath.Join(dir, "flows.log")
	logPath := filepath.Join(dir, "weir.log")
	path := filepath.Join(dir, "weir.yaml")
	base := fmt.Sprintf(`
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
  max: %%d
  tcp_timeout: 600s
  other_timeout: 1s
outputs:
  eve: %s
  flowlog: {path: %s}
log:
  file: %s
`, gwlbAddr, nodeAddr, nodeAddr, evePath, flowLog, logPath)
	write := func(yaml string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf(base, 1024) + "policy:\n  default: allow\n")
	node := startIn(t, tp.node, weirBinary(t), "run", "-config", path)
	waitHealthy(t, tp.gw, "http://"+nodeAddr+":8080/healthz", 10*time.Second, node)

	sim := func(seed int, protos string) gwlbsim.Report {
		t.Helper()
		p := startIn(t, tp.gw, weirBinary(t), "sim", "gwlb",
			"-target", nodeAddr+":6081,http://"+nodeAddr+":8080/healthz",
			"-local", gwlbAddr, "-flows", "120", "-packets", "2", "-protos", protos, "-ipv6", "0",
			"-rate", "5000", "-seed", fmt.Sprint(seed), "-reply-timeout", "2s", "-per-flow")
		if err := p.wait(t, 60*time.Second); err != nil {
			t.Fatalf("sim: %v\n%s", err, p.stderr.String())
		}
		var rep gwlbsim.Report
		if err := json.Unmarshal(p.stdout.Bytes(), &rep); err != nil {
			t.Fatalf("sim report: %v\n%s", err, p.stdout.String())
		}
		return rep
	}
	isTCP443 := func(f gwlbsim.FlowReport) bool { return f.Proto == "tcp" && f.DstPort == 443 }
	count := func(rep gwlbsim.Report, pred func(gwlbsim.FlowReport) bool) int {
		n := 0
		for _, f := range rep.Flows {
			if pred(f) {
				n++
			}
		}
		return n
	}
	// weir's own log, across its rotation.
	logs := func() string {
		old, _ := os.ReadFile(logPath + ".1")
		cur, _ := os.ReadFile(logPath)
		return string(old) + string(cur)
	}
	eveFlows := func() float64 { return scrape(t, tp.gw)[`weir_eve_records_total{event_type="flow"}`] }

	// Before: TCP flows (which stay in the table: 600 s) and UDP flows (which end
	// after 1 s idle and are written to the EVE log), all allowed.
	before := sim(1, "tcp,udp")
	if before.Returned != before.Sent || before.Mismatched != 0 {
		t.Fatalf("before the reload: sent %d, returned %d, mismatched %d", before.Sent, before.Returned, before.Mismatched)
	}
	udpBefore := count(before, func(f gwlbsim.FlowReport) bool { return f.Proto == "udp" })
	tcpBefore := count(before, func(f gwlbsim.FlowReport) bool { return f.Proto == "tcp" })
	if udpBefore == 0 || count(before, isTCP443) == 0 {
		t.Fatalf("the simulator sent %d UDP flows and %d TCP flows to 443; the test needs both", udpBefore, count(before, isTCP443))
	}
	waitFor(t, 15*time.Second, func() bool { return eveFlows() == float64(udpBefore) })

	// logrotate: rename the logs; the operator adds a drop rule and raises flows.max.
	for _, p := range []string{evePath, flowLog, logPath} {
		if err := os.Rename(p, p+".1"); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf(base, 2048) + "policy:\n  default: allow\n  rules:\n    - {action: drop, proto: tcp, dst_port: 443}\n")
	sendSignal(t, node, syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() bool {
		return strings.Contains(logs(), `"msg":"reloaded"`) || node.exited()
	})
	if node.exited() {
		t.Fatalf("weir exited on SIGHUP: %v\n%s%s", node.err, node.stderr.String(), logs())
	}
	for _, want := range []string{`"policy_rules":1`, `"files_reopened":3`, `flows.max needs a restart; keeping the running value`} {
		if !strings.Contains(logs(), want) {
			t.Errorf("the log lacks %s:\n%s", want, logs())
		}
	}
	if old, _ := os.ReadFile(logPath + ".1"); !strings.Contains(string(old), `"msg":"weir running"`) ||
		strings.Contains(string(old), `"msg":"reloaded"`) {
		t.Errorf("the old log.file should end before the reload:\n%s", old)
	}
	if code, body, err := get(tp.gw, "http://"+nodeAddr+":8080/healthz"); err != nil || code != 200 {
		t.Fatalf("health after SIGHUP: %d %q %v", code, body, err)
	}

	// The same flows again: the TCP ones are still in the table and keep their
	// verdict, 443 included; the UDP ones are new flows, allowed.
	again := sim(1, "tcp,udp")
	if again.Returned != again.Sent || again.Mismatched != 0 {
		t.Errorf("flows established before the reload: sent %d, returned %d, mismatched %d (they keep their verdict)",
			again.Sent, again.Returned, again.Mismatched)
	}
	// New TCP flows: those to 443 are dropped, the rest come back.
	fresh := sim(3, "tcp")
	for _, f := range fresh.Flows {
		if isTCP443(f) && f.Returned != 0 {
			t.Errorf("new flow %v:%d -> %v:443 came back %d times after the drop rule was loaded", f.Src, f.SrcPort, f.Dst, f.Returned)
		}
		if !isTCP443(f) && f.Returned != f.Sent {
			t.Errorf("new flow %v:%d -> %v:%d: sent %d, returned %d", f.Src, f.SrcPort, f.Dst, f.DstPort, f.Sent, f.Returned)
		}
	}
	if count(fresh, isTCP443) == 0 {
		t.Error("the simulator sent no new flow to port 443; the test proves nothing")
	}

	// A broken file: weir keeps running on the configuration in force and names the
	// line.
	write(fmt.Sprintf(base, 2048) + "policy:\n  default: maybe\n")
	errLine := path + ":" + fmt.Sprint(strings.Count(fmt.Sprintf(base, 2048), "\n")+2) + ": "
	sendSignal(t, node, syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs(), errLine) || node.exited() })
	if node.exited() {
		t.Fatalf("weir exited on SIGHUP with a broken file: %v\n%s%s", node.err, node.stderr.String(), logs())
	}
	if !strings.Contains(logs(), `"level":"ERROR","msg":"reload failed; keeping the running configuration"`) {
		t.Errorf("the failed reload is not logged as an error:\n%s", logs())
	}
	if code, _, err := get(tp.gw, "http://"+nodeAddr+":8080/healthz"); err != nil || code != 200 {
		t.Fatalf("health after a failed reload: %d %v", code, err)
	}
	still := sim(3, "tcp") // the same flows, still in the table with their verdicts
	if want := fresh.Returned; still.Returned != want {
		t.Errorf("after the failed reload: returned %d, want %d as before", still.Returned, want)
	}

	sendSignal(t, node, syscall.SIGTERM)
	if err := node.wait(t, 20*time.Second); err != nil {
		t.Fatalf("weir did not exit 0 on SIGTERM: %v\n%s%s", err, node.stderr.String(), logs())
	}
	if cur, _ := os.ReadFile(logPath); !strings.Contains(string(cur), `"msg":"stopped"`) {
		t.Errorf("the new log.file lacks the last line:\n%s", cur)
	}

	// Every flow record is in exactly one file: the UDP flows that ended before the
	// rotation in the old one, all later ones in the new.
	old, cur := eveFlowIDs(t, evePath+".1"), eveFlowIDs(t, evePath)
	if len(old) != udpBefore {
		t.Errorf("the old EVE file holds %d flow records, want the %d UDP flows that ended before the rotation", len(old), udpBefore)
	}
	// After: the UDP flows again (new flows), the TCP flows from before (written
	// when weir stopped) and the new TCP flows.
	if want := udpBefore + tcpBefore + len(fresh.Flows); len(cur) != want {
		t.Errorf("the new EVE file holds %d flow records, want %d", len(cur), want)
	}
	for id := range old {
		if cur[id] {
			t.Errorf("flow %d is in both files", id)
		}
	}
	for _, p := range []string{flowLog + ".1", flowLog} {
		data, err := os.ReadFile(p)
		if err != nil || !strings.HasPrefix(string(data), "version ") {
			t.Errorf("flow log %s: %v, starts %.40q; want the header", p, err, data)
		}
	}
}

// eveFlowIDs returns the flow ids of the flow records in an EVE file; each must
// appear once.
func eveFlowIDs(t *testing.T, path string) map[uint64]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[uint64]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Type string `json:"event_type"`
			ID   uint64 `json:"flow_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s: %v: %s", path, err, sc.Text())
		}
		if ev.Type != "flow" {
			continue
		}
		if ids[ev.ID] {
			t.Errorf("%s: flow %d written twice", path, ev.ID)
		}
		ids[ev.ID] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
