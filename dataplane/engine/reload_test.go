package engine_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"weir/config"
	"weir/dataplane"
	"weir/dataplane/engine"
	"weir/geneve"
	"weir/sim/synth"
	"weir/vxlan"
)

// load writes yaml to path and builds an engine from it.
func load(t *testing.T, path, yaml string) *engine.Engine {
	t.Helper()
	write(t, path, yaml)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(cfg, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.CloseOutputs() })
	return e
}

func write(t *testing.T, path, yaml string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tcpConv is a TCP conversation from the given client port to 10.0.0.2:port.
func tcpConv(clientPort, port uint16) *synth.Conversation {
	return &synth.Conversation{Client: netip.MustParseAddr("10.0.0.1"), Server: netip.MustParseAddr("10.0.0.2"),
		ClientPort: clientPort, ServerPort: port, Proto: 6, Packets: 10}
}

// next runs the conversation's next packet, inside GENEVE from the GWLB at
// 10.9.0.1, through w and returns its verdict.
func next(w *dataplane.Worker, c *synth.Conversation) dataplane.Verdict {
	d := geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 7, FlowCookie: 1})
	b := dataplane.NewBatch(1)
	b.Slots[0].Buf, b.Slots[0].Encap, b.N, b.Now = c.AppendNext(d, nil), dataplane.EncapGeneve, 1, 1e18
	b.Slots[0].Outer.Src = netip.MustParseAddr("10.9.0.1")
	w.Process(b)
	return b.Slots[0].Verdict
}

// TestReloadPolicy: a reload puts a new policy in force for new flows, while a flow
// established before keeps its verdict; gwlb.allowed_sources changes at once.
func TestReloadPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weir.yaml")
	e := load(t, path, "policy:\n  default: allow\n")
	w := e.Pipeline.NewWorker()
	before := tcpConv(40000, 443)
	if v := next(w, before); v != dataplane.VerdictReturn {
		t.Fatalf("before the reload: verdict %v, want return", v)
	}

	write(t, path, "policy:\n  default: allow\n  rules:\n    - {action: drop, proto: tcp, dst_port: 443}\n")
	r, err := e.Reload(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.PolicyRules != 1 || len(r.Restart) != 0 {
		t.Errorf("Reloaded %+v, want 1 rule and no key needing a restart", r)
	}
	if v := next(w, before); v != dataplane.VerdictReturn {
		t.Errorf("the flow established before the reload: verdict %v, want return (it keeps its verdict)", v)
	}
	if v := next(w, tcpConv(40001, 443)); v != dataplane.VerdictDrop {
		t.Errorf("a new flow to the newly dropped port: verdict %v, want drop", v)
	}
	if v := next(w, tcpConv(40002, 80)); v != dataplane.VerdictReturn {
		t.Errorf("a new flow to another port: verdict %v, want return", v)
	}
	if got := e.Current().Policy.Rules; len(got) != 1 {
		t.Errorf("Current has %d rules, want 1", len(got))
	}

	write(t, path, "gwlb:\n  allowed_sources: [192.0.2.0/24]\n")
	if _, err := e.Reload(path); err != nil {
		t.Fatal(err)
	}
	if v := next(w, before); v != dataplane.VerdictDrop {
		t.Errorf("GENEVE from a source no longer allowed: verdict %v, want drop", v)
	}
	if n := e.Pipeline.Totals().Packet(dataplane.EncapGeneve, dataplane.ActionSourceDenied); n != 1 {
		t.Errorf("%d packets counted source_denied, want 1", n)
	}
}

// TestReloadBadConfig: a file that fails to load changes nothing, and the error
// names the file and line.
func TestReloadBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weir.yaml")
	e := load(t, path, "policy:\n  default: allow\n  rules:\n    - {action: drop, proto: tcp, dst_port: 23}\n")
	w := e.Pipeline.NewWorker()
	write(t, path, "policy:\n  default: drop\n  rules:\n    - {action: maybe, proto: tcp}\n")
	_, err := e.Reload(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":4: ") {
		t.Fatalf("Reload = %v, want an error starting %s:4:", err, path)
	}
	if v := next(w, tcpConv(40000, 443)); v != dataplane.VerdictReturn {
		t.Errorf("after the failed reload a new flow to 443: verdict %v, want return (old policy)", v)
	}
	if v := next(w, tcpConv(40001, 23)); v != dataplane.VerdictDrop {
		t.Errorf("after the failed reload a new flow to 23: verdict %v, want drop (old policy)", v)
	}
	if c := e.Current(); c.Policy.Default.String() != "allow" || len(c.Policy.Rules) != 1 {
		t.Errorf("Current changed: %+v", c.Policy)
	}
}

// TestReloadRestartKeys: keys that need a restart are named and keep their running
// values, while the rest of the file is put in force.
func TestReloadRestartKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weir.yaml")
	e := load(t, path, "flows:\n  max: 1024\n")
	write(t, path, "gwlb:\n  listen: 0.0.0.0:6082\nflows:\n  max: 2048\n  tcp_timeout: 60s\n"+
		"outputs:\n  pcap:\n    dir: /tmp/nowhere\npolicy:\n  default: drop\n")
	r, err := e.Reload(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"gwlb.listen", "flows.max", "flows.tcp_timeout", "outputs.pcap.dir"}
	if !slices.Equal(r.Restart, want) {
		t.Errorf("Restart = %q, want %q", r.Restart, want)
	}
	c := e.Current()
	if c.Flows.Max != 1024 || c.GWLB.Listen.Port() != 6081 || c.Outputs.PCAP.Dir != "" || c.Flows.TCPTimeout != e.Config.Flows.TCPTimeout {
		t.Errorf("running values not kept: max %d listen %v pcap %q", c.Flows.Max, c.GWLB.Listen, c.Outputs.PCAP.Dir)
	}
	if c.Policy.Default.String() != "drop" {
		t.Error("the policy of the same file was not put in force")
	}
	if v := next(e.Pipeline.NewWorker(), tcpConv(40000, 443)); v != dataplane.VerdictDrop {
		t.Errorf("new flow under default drop: verdict %v", v)
	}
}

// TestEveryKeyClassified: every field of config.Config is either reloaded or
// needs a restart, so that a key added later cannot silently do neither.
func TestEveryKeyClassified(t *testing.T) {
	known := map[string]bool{}
	for _, f := range engine.ReloadKeyFields() {
		known[f] = true
	}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue // where the file was read from, not a key
			}
			path := prefix + f.Name
			// Structs defined in place or in package config are sections; any other
			// type (policy.Policy, netip.AddrPort, slices) is one value.
			if f.Type.Kind() == reflect.Struct && (f.Type.Name() == "" || f.Type.PkgPath() == "weir/config") {
				walk(path+".", f.Type)
				continue
			}
			if !known[path] {
				t.Errorf("config.Config.%s is neither reloaded nor listed as needing a restart (dataplane/engine/reload.go)", path)
			}
		}
	}
	walk("", reflect.TypeOf(config.Config{}))
}

// mirrorBatch is one VXLAN datagram of session vni carrying a UDP packet from the
// given source port.
func mirrorBatch(vni uint32, sport uint16) *dataplane.Batch {
	c := synth.Conversation{Client: netip.MustParseAddr("10.1.0.5"), Server: netip.MustParseAddr("10.1.0.9"),
		ClientPort: sport, ServerPort: 53, Proto: 17, Packets: 2}
	d := vxlan.AppendHeader(nil, vni)
	d = append(d, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00) // Ethernet, IPv4
	d = c.AppendNext(d, nil)
	b := dataplane.NewBatch(1)
	b.Slots[0].Buf, b.Slots[0].Encap, b.N, b.Now = d, dataplane.EncapVXLAN, 1, 1e18
	b.Slots[0].Outer.Src = netip.MustParseAddr("10.1.0.5")
	return b
}

const sessionsAB = `
mirror:
  sessions:
    - {name: a, vni: 1}
    - {name: b, vni: 2}
`

const sessionsAC = `
mirror:
  sessions:
    - {name: c, vni: 3}
    - {name: a, vni: 1}
`

func indexes(e *engine.Engine) map[string]uint16 {
	m := map[string]uint16{}
	for _, s := range e.Sessions.List() {
		m[s.Name] = s.Index
	}
	return m
}

// TestReloadSessions: a reload that removes one session and adds another keeps
// the index, counters and flows of the session that stays; the new one gets an
// index of its own, and the removed one's VNI no longer has a session.
func TestReloadSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weir.yaml")
	e := load(t, path, sessionsAB)
	w := e.Pipeline.NewWorker()
	for _, vni := range []uint32{1, 1, 2} {
		w.Process(mirrorBatch(vni, 5000))
	}
	a := indexes(e)["a"]
	write(t, path, sessionsAC)
	r, err := e.Reload(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sessions != 2 {
		t.Errorf("Reloaded %+v, want 2 sessions", r)
	}
	idx := indexes(e)
	if idx["a"] != a || idx["c"] != 3 || len(idx) != 2 {
		t.Fatalf("indexes after the reload %v, want a=%d (kept), c=3 (new)", idx, a)
	}
	flows := e.FlowsActive()
	for _, vni := range []uint32{1, 3, 3, 2} {
		w.Process(mirrorBatch(vni, 5000))
	}
	tot := e.Pipeline.Totals()
	if got := tot.Sessions[a].Received; got != 3 {
		t.Errorf("session a received %d, want 3 (its counter carries on)", got)
	}
	if got := tot.Sessions[3].Received; got != 2 {
		t.Errorf("session c received %d, want 2", got)
	}
	if got := tot.Packet(dataplane.EncapVXLAN, dataplane.ActionNoSession); got != 1 {
		t.Errorf("%d packets of the removed session's VNI counted no_session, want 1", got)
	}
	if got := e.FlowsActive(); got != flows+1 {
		t.Errorf("%d flows, want %d: a's flow carries on, c's is new", got, flows+1)
	}
	// b comes back: it gets its old index and counter again.
	write(t, path, sessionsAB)
	if _, err := e.Reload(path); err != nil {
		t.Fatal(err)
	}
	w.Process(mirrorBatch(2, 5000))
	if b := indexes(e)["b"]; b != 2 || e.Pipeline.Totals().Sessions[2].Received != 2 {
		t.Errorf("b back at index %d with %d received, want 2 and 2", b, e.Pipeline.Totals().Sessions[2].Received)
	}
}

// TestReloadWhilePacketsFlow: workers keep processing (without any lock) while
// reloads replace the sessions and the policy and scrapes read the counters; run
// with -race.
func TestReloadWhilePacketsFlow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weir.yaml")
	e := load(t, path, sessionsAB)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		w := e.Pipeline.NewWorker()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				w.Process(mirrorBatch(uint32(1+i%3), uint16(1000+i%50)))
				next(w, tcpConv(uint16(2000+i%50), 443))
			}
		}()
	}
	for i := range 50 {
		yaml := sessionsAB
		if i%2 == 0 {
			yaml = sessionsAC + "policy:\n  default: drop\n"
		}
		write(t, path, yaml)
		if _, err := e.Reload(path); err != nil {
			t.Fatal(err)
		}
		_ = e.Pipeline.Totals()
	}
	close(stop)
	wg.Wait()
}
