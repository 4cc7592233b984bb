package engine_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"weir/config"
	"weir/dataplane"
	"weir/dataplane/engine"
	"weir/geneve"
	"weir/sim/synth"
)

func parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	c, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// gwlbBatch is one GENEVE datagram carrying a TCP SYN.
func gwlbBatch() *dataplane.Batch {
	c := synth.Conversation{Client: netip.MustParseAddr("10.0.0.1"), Server: netip.MustParseAddr("10.0.0.2"),
		ClientPort: 40000, ServerPort: 443, Proto: 6, Packets: 2}
	d := geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 7, FlowCookie: 1})
	d = c.AppendNext(d, nil)
	b := dataplane.NewBatch(1)
	b.Slots[0].Buf, b.Slots[0].Encap, b.N, b.Now = d, dataplane.EncapGeneve, 1, 1e18
	return b
}

func TestEngineNoMirrorTableWhenMirrorIsOff(t *testing.T) {
	eve := filepath.Join(t.TempDir(), "eve.json")
	e, err := engine.New(parse(t, "mirror:\n  listen: \"\"\noutputs:\n  eve: "+eve+"\n"), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if e.Mirror != nil {
		t.Error("a mirror flow table exists though no mirrored traffic can arrive")
	}
	w := e.Pipeline.NewWorker()
	b := gwlbBatch()
	w.Process(b)
	if b.Slots[0].Verdict != dataplane.VerdictReturn || e.FlowsActive() != 1 {
		t.Fatalf("verdict %v, %d flows", b.Slots[0].Verdict, e.FlowsActive())
	}
	e.Expire(b.Now)
	e.Interval(b.Now)
	if n := e.Flush(b.Now); n != 1 {
		t.Errorf("Flush ended %d flows, want 1", n)
	}
	if err := e.CloseOutputs(); err != nil {
		t.Fatal(err)
	}
	if a, d := e.FlowsEnded(); a != 1 || d != 0 || e.EVE.Written() != 1 {
		t.Errorf("ended %d allowed %d dropped, %d EVE records", a, d, e.EVE.Written())
	}
}

func TestEngineMirrorTable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		offline bool
	}{
		{"listener on (the default)", "", false},
		{"mirror via a GWLB endpoint", "mirror:\n  listen: \"\"\n  gwlb_endpoints: [vpce-0123456789abcdef0]\n", false},
		{"replay reads any capture", "mirror:\n  listen: \"\"\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := engine.New(parse(t, tc.yaml), nil, tc.offline)
			if err != nil {
				t.Fatal(err)
			}
			defer e.CloseOutputs()
			if e.Mirror == nil {
				t.Error("no mirror flow table")
			}
		})
	}
}

// midstreamBatch is the server's data segment of a connection whose start weir did not
// see (index 3: server to client, PSH-ACK), then the client's next one.
func midstreamBatch() *dataplane.Batch {
	c := synth.Conversation{Client: netip.MustParseAddr("10.0.0.1"), Server: netip.MustParseAddr("10.0.0.2"),
		ClientPort: 40000, ServerPort: 443, Proto: 6, Packets: 10}
	c.Skip()
	c.Skip()
	c.Skip()
	b := dataplane.NewBatch(2)
	for i := range 2 {
		d := geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 7, FlowCookie: 1})
		b.Slots[i].Buf, b.Slots[i].Encap = c.AppendNext(d, []byte("data")), dataplane.EncapGeneve
	}
	b.N, b.Now = 2, 1e18
	return b
}

const only443 = `
policy:
  default: drop
  rules:
    - {action: allow, proto: tcp, dst_port: 443}
`

// TestEngineMidstream: a flow first seen mid-stream (after a failover, a restart or an
// eviction) is judged in its client's direction under allow, and dropped and counted
// under drop.
func TestEngineMidstream(t *testing.T) {
	t.Run("allow", func(t *testing.T) {
		e, err := engine.New(parse(t, only443), nil, false)
		if err != nil {
			t.Fatal(err)
		}
		defer e.CloseOutputs()
		b := midstreamBatch()
		e.Pipeline.NewWorker().Process(b)
		for i := range 2 {
			if s := &b.Slots[i]; s.Verdict != dataplane.VerdictReturn || s.Action() != dataplane.ActionAllow {
				t.Errorf("packet %d: verdict %v action %v; the server's reply to an allowed :443 flow must pass", i, s.Verdict, s.Action())
			}
		}
		if b.Slots[0].Flow.ToServer || !b.Slots[1].Flow.ToServer || e.FlowsActive() != 1 {
			t.Errorf("orientation: server packet ToServer=%v, client packet ToServer=%v, %d flows",
				b.Slots[0].Flow.ToServer, b.Slots[1].Flow.ToServer, e.FlowsActive())
		}
	})
	t.Run("drop", func(t *testing.T) {
		e, err := engine.New(parse(t, only443+"flows:\n  midstream: drop\n"), nil, false)
		if err != nil {
			t.Fatal(err)
		}
		defer e.CloseOutputs()
		b := midstreamBatch()
		e.Pipeline.NewWorker().Process(b)
		for i := range 2 {
			if s := &b.Slots[i]; s.Verdict != dataplane.VerdictDrop || s.Action() != dataplane.ActionMidstream {
				t.Errorf("packet %d: verdict %v action %v, want drop counted as midstream", i, s.Verdict, s.Action())
			}
		}
		if got := e.Pipeline.Totals().Packet(dataplane.EncapGeneve, dataplane.ActionMidstream); got != 2 || e.FlowsActive() != 0 {
			t.Errorf("counted %d as midstream with %d flows; want 2 and none", got, e.FlowsActive())
		}
		// A connection that starts with its SYN is tracked as ever.
		b = gwlbBatch()
		e.Pipeline.NewWorker().Process(b)
		if b.Slots[0].Verdict != dataplane.VerdictReturn {
			t.Errorf("a SYN to :443 under midstream drop: %v", b.Slots[0].Action())
		}
	})
}

// TestEngineCreatesOutputFolders: weir run creates the EVE and flow-log folders as
// it does the pcap folder, and names the key when it cannot.
func TestEngineCreatesOutputFolders(t *testing.T) {
	dir := t.TempDir()
	cfg := parse(t, "outputs:\n  eve: "+dir+"/logs/eve/eve.json\n  flowlog: {path: "+dir+"/fl/flows.log}\n")
	e, err := engine.New(cfg, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CloseOutputs(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"logs/eve/eve.json", "fl/flows.log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}

	file := filepath.Join(dir, "fl", "flows.log") // a file where a folder should be
	cfg = parse(t, "outputs:\n  eve: "+file+"/eve.json\n")
	_, err = engine.New(cfg, nil, false)
	if want := "test.yaml:2: outputs.eve: " + file + "/eve.json: " + file + " is not a directory"; err == nil || err.Error() != want {
		t.Errorf("New = %v, want %s", err, want)
	}
}

// TestEngineRuleNamesInEVE: a flow's EVE record names the rule that decided it.
func TestEngineRuleNamesInEVE(t *testing.T) {
	for _, tc := range []struct{ rules, want string }{
		{"    - {name: web, action: allow, proto: tcp, dst_port: [80, 443]}\n", `"rule":"web"`},
		{"    - {action: drop, proto: udp}\n    - {action: allow, proto: tcp, dst_port: [80, 443]}\n", `"rule":"rules[1]"`},
	} {
		path := filepath.Join(t.TempDir(), "eve.json")
		e, err := engine.New(parse(t, "outputs: {eve: "+path+"}\npolicy:\n  default: drop\n  rules:\n"+tc.rules), nil, false)
		if err != nil {
			t.Fatal(err)
		}
		e.Pipeline.NewWorker().Process(gwlbBatch())
		e.Flush(2e18)
		if err := e.CloseOutputs(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("EVE %s, want %s", b, tc.want)
		}
	}
}
