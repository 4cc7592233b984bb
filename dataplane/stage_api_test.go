package dataplane_test

import (
	"bytes"
	"net/netip"
	"sync/atomic"
	"testing"

	"weir/dataplane"
	"weir/dataplane/flow"
	"weir/dataplane/policy"
	"weir/geneve"
	"weir/sim/synth"
)

// ipsDrop is registered the way a stage in its own package registers its action.
var ipsDrop = dataplane.RegisterAction("test_ips_drop")

// contentDrop is a stage of another package: it drops packets whose payload holds
// a pattern, counts its matches per worker, and leaves settled slots alone.
type contentDrop struct {
	pattern []byte
	table   *flow.Table // to block the rest of a matching flow
}

type contentState struct {
	seen, matches int // during a batch: this worker's alone
	// published after each batch, for scrapes on other goroutines
	seenPub, matchesPub atomic.Int64
}

func (s *contentState) Publish() {
	s.seenPub.Store(int64(s.seen))
	s.matchesPub.Store(int64(s.matches))
}

func (c *contentDrop) NewWorkerState() any { return &contentState{} }

func (c *contentDrop) Process(w *dataplane.Worker, b *dataplane.Batch) {
	st := w.StageState().(*contentState)
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.Settled() {
			continue
		}
		st.seen++
		if bytes.Contains(s.Packet.Payload, c.pattern) {
			st.matches++
			s.Drop(ipsDrop)
			c.table.SetAction(s.Flow.Handle, policy.Drop) // the rest of the flow, both ways
		}
	}
}

type uncomparable struct{ _ []int }

func (uncomparable) Process(*dataplane.Worker, *dataplane.Batch) {}

func TestStageInOwnPackage(t *testing.T) {
	if ipsDrop < 10 || dataplane.RegisterAction("test_ips_drop") != ipsDrop {
		t.Fatalf("registered action %d: want a new action past the built-ins, stable on re-registering", ipsDrop)
	}
	if ipsDrop.String() != "test_ips_drop" || dataplane.NumActions() <= ipsDrop {
		t.Fatalf("action %d is %q, %d actions", ipsDrop, ipsDrop.String(), dataplane.NumActions())
	}
	pol := &policy.Policy{Default: policy.Allow, Rules: []policy.Rule{{Action: policy.Drop, Proto: 6, DstPort: policy.PortRange{Lo: 23, Hi: 23}}}}
	table := flow.NewTable(flow.Config{MaxFlows: 64}, pol, nil)
	stage := &contentDrop{pattern: []byte("EVIL"), table: table}
	p := dataplane.NewPipeline(&dataplane.GeneveDecode{}, dataplane.InnerDecode{}, &dataplane.Track{Table: table}, stage)
	w1, w2 := p.NewWorker(), p.NewWorker()

	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	mk := func(dport uint16, payload string) []byte {
		c := synth.Conversation{Client: src, Server: dst, ClientPort: 40000, ServerPort: dport, Proto: 6, Packets: 2}
		inner := c.AppendNext(nil, []byte(payload))
		return append(geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 1}), inner...)
	}
	b := dataplane.NewBatch(4)
	for i, d := range [][]byte{mk(80, "GET / EVIL"), mk(81, "fine"), mk(23, "EVIL too, but policy first"), []byte{0xff}} {
		b.Slots[i].Buf, b.Slots[i].Encap = d, dataplane.EncapGeneve
	}
	b.N = 4
	w1.Process(b)

	want := []struct {
		v dataplane.Verdict
		a dataplane.Action
	}{{dataplane.VerdictDrop, ipsDrop}, {dataplane.VerdictReturn, dataplane.ActionAllow},
		{dataplane.VerdictDrop, dataplane.ActionDrop}, {dataplane.VerdictDrop, dataplane.ActionMalformed}}
	for i, w := range want {
		if s := &b.Slots[i]; s.Verdict != w.v || s.Action() != w.a || s.Settled() != (w.a != dataplane.ActionAllow) {
			t.Errorf("slot %d: verdict %v action %v settled %v, want %v %v", i, s.Verdict, s.Action(), s.Settled(), w.v, w.a)
		}
	}
	// The stage saw only the two slots no earlier stage settled, in w1's state.
	states := p.StageStates(stage)
	if len(states) != 2 {
		t.Fatalf("StageStates: %d states, want one per worker", len(states))
	}
	s1, s2 := states[0].(*contentState), states[1].(*contentState)
	if s1.seenPub.Load() != 2 || s1.matchesPub.Load() != 1 || s2.seenPub.Load() != 0 {
		t.Errorf("published: w1 seen %d matches %d, w2 seen %d; want 2 1 0",
			s1.seenPub.Load(), s1.matchesPub.Load(), s2.seenPub.Load())
	}
	// A stage value that cannot be compared is never matched, and does not panic.
	if got := p.StageStates(uncomparable{}); got != nil {
		t.Errorf("StageStates of a stage not in the pipeline: %v", got)
	}
	tot := p.Totals()
	if got := tot.Packet(dataplane.EncapGeneve, ipsDrop); got != 1 {
		t.Errorf("counted under %s: %d, want 1", ipsDrop, got)
	}

	// The flow the stage blocked stays blocked, both ways, from its next packet on;
	// the other allowed flow is untouched.
	reply := func(sport uint16, payload string) []byte {
		c := synth.Conversation{Client: src, Server: dst, ClientPort: 40000, ServerPort: sport, Proto: 6, Packets: 4}
		c.Skip()
		inner := c.AppendNext(nil, []byte(payload)) // server to client
		return append(geneve.AppendAWSHeader(nil, geneve.ProtoIPv4, geneve.AWS{EndpointID: 1}), inner...)
	}
	b2 := dataplane.NewBatch(3)
	for i, d := range [][]byte{reply(80, "harmless"), mk(80, "harmless too"), reply(81, "ok")} {
		b2.Slots[i].Buf, b2.Slots[i].Encap = d, dataplane.EncapGeneve
	}
	b2.N = 3
	w2.Process(b2)
	for i, w := range []dataplane.Action{dataplane.ActionDrop, dataplane.ActionDrop, dataplane.ActionAllow} {
		if got := b2.Slots[i].Action(); got != w {
			t.Errorf("after the block, slot %d: %v, want %v", i, got, w)
		}
	}
}
