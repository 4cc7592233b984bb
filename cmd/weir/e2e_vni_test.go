package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestE2EMirrorUnknownVNI: mirrored traffic of a VNI no session takes is logged with
// its source and listed by GET /mirror; VXLAN from outside mirror.allowed_sources
// is dropped and counted.
func TestE2EMirrorUnknownVNI(t *testing.T) {
	tp := newTopology(t)
	for _, a := range []string{"192.0.2.11", "192.0.2.12", "192.0.2.40"} {
		sh(t, "ip", "-n", tp.gw, "addr", "add", a+"/24", "dev", "veth-gw")
	}
	node, _ := startNodeIn(t, tp, `
mirror:
  listen: 0.0.0.0:4789
  allowed_sources: [192.0.2.8/29]
  sessions:
    - {vni: 101, name: web}
`)
	sent := map[string]uint64{}
	for _, eni := range []string{"192.0.2.11,02:00:00:00:00:11,101", "192.0.2.12,02:00:00:00:00:12,7331466",
		"192.0.2.40,02:00:00:00:00:40,101"} {
		sim := startIn(t, tp.gw, weirBinary(t), "sim", "mirror", "-target", nodeAddr+":4789",
			"-eni", eni, "-flows", "4", "-packets", "5", "-rate", "0", "-protos", "udp")
		if err := sim.wait(t, 30*time.Second); err != nil {
			t.Fatalf("sim: %v\n%s", err, sim.stderr.String())
		}
		var rep struct{ Sent uint64 }
		if err := json.Unmarshal(sim.stdout.Bytes(), &rep); err != nil || rep.Sent == 0 {
			t.Fatalf("sim report %v: %s", err, sim.stdout.String())
		}
		sent[strings.Split(eni, ",")[0]] = rep.Sent
	}
	waitFor(t, 10*time.Second, func() bool {
		m := scrape(t, tp.gw)
		return m[`weir_packets_total{action="source_denied",encap="vxlan"}`] == float64(sent["192.0.2.40"]) &&
			m[`weir_packets_total{action="no_session",encap="vxlan"}`] == float64(sent["192.0.2.12"]) &&
			m[`weir_mirror_received_packets_total{session="web"}`] == float64(sent["192.0.2.11"])
	})
	const line = "mirrored traffic for VNI 7331466 from 192.0.2.12 matches no session (add a session with vni: 7331466, or a catch_all session)"
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(node.stderr.String(), line) })

	code, body, err := get(tp.gw, "http://"+nodeAddr+":8080/mirror")
	if err != nil || code != 200 {
		t.Fatalf("GET /mirror: %d %v", code, err)
	}
	var rep struct {
		VNIs []struct {
			VNI        uint32
			Session    *string
			Packets    uint64
			LastSource string    `json:"last_source"`
			LastSeen   time.Time `json:"last_seen"`
		}
		Sessions []struct {
			Name     string
			VNI      *uint32
			Received uint64
		}
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if len(rep.VNIs) != 2 || len(rep.Sessions) != 1 {
		t.Fatalf("GET /mirror: %s", body)
	}
	web, unknown := rep.VNIs[0], rep.VNIs[1]
	if web.VNI != 101 || web.Session == nil || *web.Session != "web" || web.Packets != sent["192.0.2.11"] ||
		web.LastSource != "192.0.2.11" || time.Since(web.LastSeen) > time.Minute {
		t.Errorf("VNI 101: %+v (body %s)", web, body)
	}
	if unknown.VNI != 7331466 || unknown.Session != nil || unknown.Packets != sent["192.0.2.12"] ||
		unknown.LastSource != "192.0.2.12" {
		t.Errorf("VNI 7331466: %+v (body %s)", unknown, body)
	}
	if s := rep.Sessions[0]; s.Name != "web" || s.VNI == nil || *s.VNI != 101 || s.Received != sent["192.0.2.11"] {
		t.Errorf("session: %+v", s)
	}
}
