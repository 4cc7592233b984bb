package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestReplayUnknownVNI: the real AWS capture (VNI 5569041) replayed with a session
// for another VNI: the summary names the VNI, with no session and its packets, and
// says what the capture held.
func TestReplayUnknownVNI(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(cfg, []byte("mirror:\n  sessions:\n    - {vni: 4242, name: web}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	file := filepath.Join(peerDir, "aws-mirror-ssh.pcap")
	if code := run([]string{"replay", "-config", cfg, "-eve", filepath.Join(dir, "eve.json"), file}, &stdout, &stderr); code != 0 {
		t.Fatalf("replay exit %d: %s", code, stderr.String())
	}
	var sum replaySummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, stdout.String())
	}
	noSession := sum.Actions["no_session"]
	if noSession == 0 || noSession != sum.Packets["vxlan"] {
		t.Fatalf("actions %v, packets %v: every packet should match no session", sum.Actions, sum.Packets)
	}
	if len(sum.VNIs) != 1 || sum.VNIs[0].VNI != 5569041 || sum.VNIs[0].Session != nil || sum.VNIs[0].Packets != noSession ||
		sum.VNIs[0].LastSource == "" || sum.VNIs[0].LastSeen.Before(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("vnis %+v: want VNI 5569041, no session, %d packets, with its source and time", sum.VNIs, noSession)
	}
	var fromSources uint64
	for _, s := range sum.OuterSources {
		fromSources += s.Packets
	}
	if len(sum.OuterSources) == 0 || len(sum.OuterSources) > topSources || fromSources > noSession {
		t.Errorf("outer sources %+v", sum.OuterSources)
	}
	if sum.Flows != 0 || len(sum.Protocols) != 0 {
		t.Errorf("flows %d, protocols %v: traffic of no session makes no flow and is not decoded", sum.Flows, sum.Protocols)
	}

	// With the right session the same capture has flows and protocols.
	stdout.Reset()
	if code := run([]string{"replay", "-eve", filepath.Join(dir, "eve2.json"), file}, &stdout, &stderr); code != 0 {
		t.Fatalf("replay exit %d: %s", code, stderr.String())
	}
	sum = replaySummary{}
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.VNIs) != 1 || sum.VNIs[0].Session == nil || *sum.VNIs[0].Session != "default" {
		t.Errorf("vnis %+v: want the catch-all", sum.VNIs)
	}
	var flows uint64
	for _, p := range sum.Protocols {
		flows += p.Flows
	}
	if sum.Protocols["tcp"] == nil || sum.Protocols["tcp"].Packets == 0 || flows != sum.Flows {
		t.Errorf("protocols %v, %d flows", sum.Protocols, sum.Flows)
	}
}

// TestReplayEVEStdout: with -eve -, stdout is EVE alone (every line a JSON object
// with an event_type) and the summary goes to stderr.
func TestReplayEVEStdout(t *testing.T) {
	cmd := exec.Command(weirBinary(t), "replay", "-eve", "-", filepath.Join(peerDir, "aws-mirror-ssh.pcap"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	lines := 0
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			EventType string `json:"event_type"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.EventType == "" {
			t.Fatalf("stdout line %d is not EVE: %q", lines+1, sc.Text())
		}
		lines++
	}
	var sum replaySummary
	if err := json.Unmarshal(stderr.Bytes(), &sum); err != nil {
		t.Fatalf("stderr is not the summary: %v\n%s", err, stderr.String())
	}
	if lines == 0 || uint64(lines) != sum.Flows || sum.EVE != "-" {
		t.Errorf("%d EVE lines, summary %+v", lines, sum)
	}
}

// TestReplayNothingReadable: a capture of a link type weir cannot read warns and
// fails.
func TestReplayNothingReadable(t *testing.T) {
	capFile := filepath.Join(t.TempDir(), "wifi.pcap")
	f, err := os.Create(capFile)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeIEEE802_11); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		data := make([]byte, 60)
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1_700_000_000+int64(i), 0), CaptureLength: len(data), Length: len(data)}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	var stdout, stderr bytes.Buffer
	code := run([]string{"replay", "-eve", filepath.Join(t.TempDir(), "eve.json"), capFile}, &stdout, &stderr)
	if code == 0 {
		t.Fatalf("replay of an unreadable capture exited 0: %s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "skipped 3 frames of link type 105") || !strings.Contains(stderr.String(), "none of the 3 frames") {
		t.Errorf("stderr: %s", stderr.String())
	}
	var sum replaySummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil || sum.Unreadable != 3 || len(sum.UnknownLinkTypes) != 1 {
		t.Errorf("summary %v: %s", err, stdout.String())
	}
}
