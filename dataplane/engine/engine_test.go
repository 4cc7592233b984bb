package engine_test

import (
	"net/netip"
	"path/filepath"
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
