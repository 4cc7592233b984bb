package engine_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"weir/dataplane"
	"weir/dataplane/engine"
	"weir/geneve"
	"weir/vxlan"
)

// mirrorBatch is one VXLAN datagram per VNI, from src.
func arpBatch(src string, vnis ...uint32) *dataplane.Batch {
	b := dataplane.NewBatch(len(vnis))
	frame := make([]byte, 60)
	frame[12], frame[13] = 0x08, 0x06 // ARP
	for i, vni := range vnis {
		s := &b.Slots[i]
		s.Buf = append(vxlan.AppendHeader(nil, vni), frame...)
		s.Encap = dataplane.EncapVXLAN
		s.Outer = geneve.Outer{Src: netip.MustParseAddr(src), SrcPort: 50000, DstPort: vxlan.Port}
	}
	b.N, b.Now = len(vnis), time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).UnixNano()
	return b
}

func TestUnknownVNIsLogged(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	e, err := engine.New(parse(t, "mirror:\n  sessions:\n    - {vni: 4242, name: web}\n"), log, false)
	if err != nil {
		t.Fatal(err)
	}
	defer e.CloseOutputs()
	w := e.Pipeline.NewWorker()
	w.Process(arpBatch("10.0.1.25", 4242, 7331466, 7331466))

	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	e.LogUnknownVNIs(now)
	const want = "mirrored traffic for VNI 7331466 from 10.0.1.25 matches no session (add a session with vni: 7331466, or a catch_all session)"
	if got := logs.String(); strings.Count(got, want) != 1 || strings.Contains(got, "VNI 4242") {
		t.Fatalf("log:\n%s\nwant one line saying %q", got, want)
	}
	// More packets within the minute: no second line. After it: one more.
	w.Process(arpBatch("10.0.1.25", 7331466))
	e.LogUnknownVNIs(now.Add(30 * time.Second))
	if n := strings.Count(logs.String(), "VNI 7331466"); n != 1 {
		t.Errorf("%d lines within a minute, want 1", n)
	}
	e.LogUnknownVNIs(now.Add(61 * time.Second))
	if n := strings.Count(logs.String(), "VNI 7331466"); n != 2 {
		t.Errorf("%d lines after a minute with new packets, want 2", n)
	}
	// No new packets: silence.
	e.LogUnknownVNIs(now.Add(200 * time.Second))
	if n := strings.Count(logs.String(), "VNI 7331466"); n != 2 {
		t.Errorf("%d lines, want 2: a VNI with no new packets is not logged again", n)
	}

	// Fifty unknown VNIs at once: ten lines this minute, the rest said in a line of
	// their own at the next.
	logs.Reset()
	var many []uint32
	for i := range uint32(50) {
		many = append(many, 100+i)
	}
	w.Process(arpBatch("10.0.1.26", many...))
	for i := range 30 {
		e.LogUnknownVNIs(now.Add(300*time.Second + time.Duration(i)*time.Second))
	}
	if n := strings.Count(logs.String(), "matches no session"); n != 10 {
		t.Errorf("%d lines in a minute, want 10:\n%s", n, logs.String())
	}
	e.LogUnknownVNIs(now.Add(361 * time.Second))
	if !strings.Contains(logs.String(), "vnis=40") {
		t.Errorf("the VNIs not logged are not counted:\n%s", logs.String())
	}

	r := e.MirrorReport()
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.VNIs) != 52 || r.VNIs[0].VNI != 100 || r.VNIs[51].VNI != 7331466 || r.VNIs[51].Packets != 3 ||
		r.VNIs[51].Session != nil || r.VNIs[50].VNI != 4242 || *r.VNIs[50].Session != "web" {
		t.Errorf("report: %s", js)
	}
	if !strings.Contains(string(js), `{"vni":7331466,"session":null,"packets":3,"last_source":"10.0.1.25","last_seen":"2026-11-29T12:00:00Z"}`) ||
		!strings.Contains(string(js), `"sessions":[{"name":"web","vni":4242,"catch_all":false,"received":1,`) {
		t.Errorf("report: %s", js)
	}
}
