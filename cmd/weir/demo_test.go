package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDemoLastStatusAgreesWithSummary runs a short demo: its last status line
// counts every mirrored frame the summary counts, its folder is removed, and the
// summary ends with the next step.
func TestDemoLastStatusAgreesWithSummary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for a second")
	}
	code, out, errs := runWeir(t, "demo", "-duration", "1s")
	if code != 0 {
		t.Fatalf("demo = %d; stderr %q\n%s", code, errs, out)
	}
	var last string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "[") {
			last = l
		}
	}
	status := regexp.MustCompile(`mirror: sent +(\d+) `).FindStringSubmatch(last)
	summary := regexp.MustCompile(`frames sent by AWS \(sim\) +(\d+) `).FindStringSubmatch(out)
	if status == nil || summary == nil || status[1] != summary[1] {
		t.Errorf("last status line %q and summary disagree on mirrored frames sent:\n%s", last, out)
	}
	// About 1,500 packets of about 75 flows: about one in seven goes to port 8080,
	// which the demo's drop rules block in ips mode (a run without one is a
	// 1-in-50,000 chance).
	det := regexp.MustCompile(`detection +(\d+) rules; alerts (\d+) blocked, \d+ allowed; (\d+) flows blocked`).FindStringSubmatch(out)
	if det == nil || det[1] != "4" || det[2] == "0" || det[3] == "0" {
		t.Errorf("detection summary %q: want 4 rules and blocked alerts and flows:\n%s", det, out)
	}
	dir := regexp.MustCompile(`outputs in (\S+)`).FindStringSubmatch(out)
	if dir == nil {
		t.Fatalf("no output folder in:\n%s", out)
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("demo left %s behind (%v)", dir[1], err)
		os.RemoveAll(dir[1])
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.Contains(strings.Join(lines[len(lines)-2:], "\n"), "next: weir check-config examples/both.yaml") {
		t.Errorf("the summary does not end with the next step:\n%s", out)
	}
}

func TestDemoKeep(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for a second")
	}
	code, out, errs := runWeir(t, "demo", "-duration", "500ms", "-keep")
	if code != 0 {
		t.Fatalf("demo -keep = %d; stderr %q", code, errs)
	}
	dir := regexp.MustCompile(`outputs in (\S+)\n`).FindStringSubmatch(out)
	if dir == nil {
		t.Fatalf("no output folder in:\n%s", out)
	}
	defer os.RemoveAll(dir[1])
	if _, err := os.Stat(dir[1] + "/eve.json"); err != nil {
		t.Errorf("demo -keep: %v", err)
	}
}

// TestDemoFleet: three nodes on loopback, one killed mid-run: with flow sync every
// moved flow continues in strict mode; without it they die. (Short, unprivileged.)
func TestDemoFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two fleets for a few seconds each")
	}
	code, out, errs := runWeir(t, "demo", "fleet", "-flows", "60", "-packets", "150", "-rate", "1500") // 6 s a run: time to see the kill and move
	if code != 0 {
		t.Fatalf("demo fleet exited %d\n%s\n%s", code, out, errs)
	}
	re := regexp.MustCompile(`(with|without) flow sync +\S+ killed; (\d+) flows moved, (\d+) continued, (\d+) died`)
	got := map[string][3]int{}
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		var v [3]int
		for i := range v {
			v[i], _ = strconv.Atoi(m[i+2])
		}
		got[m[1]] = v
	}
	if w := got["with"]; w[0] == 0 || w[2] != 0 {
		t.Errorf("with sync: %d moved, %d died; want some moved and none died\n%s", w[0], w[2], out)
	}
	if w := got["without"]; w[0] == 0 || w[2] < w[0]/2 {
		t.Errorf("without sync: %d moved, %d died; want most moved flows to die\n%s", w[0], w[2], out)
	}
}
