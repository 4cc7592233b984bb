package flowsync

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"weir/dataplane/flow"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

func gwlbFlow(i int) flow.FlowState {
	return flow.FlowState{Kind: flow.JournalChanged, ID: 0x3ff<<43 | uint64(i) + 1, Scope: 0x0123456789abcdef,
		Proto: packet.ProtoTCP, Src: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), SrcPort: uint16(30000 + i),
		Dst: netip.MustParseAddr("10.1.0.80"), DstPort: 443, Start: 1_700_000_000_000_000_000 + int64(i),
		Last: 1_700_000_003_000_000_000, State: flow.StateEstablished, Action: policy.Drop, Rule: 12,
		AWS: geneve.AWS{EndpointID: 0xabcdef0123, AttachmentID: 77, FlowCookie: 0xdeadbeef,
			Present: 1<<geneve.AWSTypeEndpointID | 1<<geneve.AWSTypeAttachmentID | 1<<geneve.AWSTypeFlowCookie},
		Tunnel: flow.Tunnel{Encap: flow.EncapGeneve, Src: netip.MustParseAddr("10.9.0.1"),
			Dst: netip.MustParseAddr("10.9.0.2"), SrcPort: 55555, DstPort: 6081},
		Direction: flow.DirectionEgress, Session: 3}
}

func sampleFlows() []flow.FlowState {
	a := gwlbFlow(1)
	b := gwlbFlow(2)
	b.Kind, b.Src, b.Dst, b.Rule, b.AWS = flow.JournalEnded, netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("::ffff:10.0.0.1"), policy.NoRule, geneve.AWS{FlowCookie: 5, Present: 1 << geneve.AWSTypeFlowCookie}
	b.Tunnel = flow.Tunnel{Encap: flow.EncapVXLAN, Src: netip.MustParseAddr("fe80::1"), DstPort: 4789, VNI: 0xffffff}
	c := gwlbFlow(3)
	c.Kind, c.Proto, c.State, c.Tunnel, c.AWS, c.Session, c.Direction = flow.JournalCreated, packet.ProtoUDP,
		flow.StateNew, flow.Tunnel{}, geneve.AWS{}, 0, 0
	d := gwlbFlow(4)
	d.Last, d.Start = -5, 10 // clocks are not trusted to be sane
	e := gwlbFlow(5)
	e.Action = policy.IPSDrop // blocked by detection: peers keep it blocked
	return []flow.FlowState{a, b, c, d, e}
}

func TestRoundTrip(t *testing.T) {
	var e Encoder
	h := Header{Type: MsgUpdate, Node: 513, Epoch: 1 << 62, Seq: 99}
	e.Reset(h)
	in := sampleFlows()
	for i := range in {
		if !e.Append(&in[i], MaxDatagram) {
			t.Fatal("did not fit")
		}
	}
	var d Decoder
	got, fs, err := d.Decode(e.Bytes())
	h.Count = uint16(len(in))
	if err != nil || got != h || len(fs) != len(in) {
		t.Fatalf("header %+v err %v, %d flows", got, err, len(fs))
	}
	for i := range in {
		if fs[i] != in[i] {
			t.Errorf("flow %d:\n got %+v\nwant %+v", i, fs[i], in[i])
		}
	}
	// A full datagram refuses the next flow and stays valid.
	e.Reset(h)
	n := 0
	for f := gwlbFlow(0); e.Append(&f, MaxDatagram); f = gwlbFlow(n) {
		n++
	}
	if e.Len() > MaxDatagram || n < 12 {
		t.Fatalf("%d flows in %d bytes", n, e.Len())
	}
	if _, fs, err := d.Decode(e.Bytes()); err != nil || len(fs) != n {
		t.Fatalf("full datagram: %v, %d flows", err, len(fs))
	}
	t.Logf("%d GWLB flows per datagram, %.1f bytes per flow", n, float64(e.Len()-HeaderLen)/float64(n))
}

func TestDecodeErrors(t *testing.T) {
	var e Encoder
	e.Reset(Header{Type: MsgUpdate, Node: 1, Epoch: 2, Seq: 3})
	f := gwlbFlow(1)
	e.Append(&f, MaxDatagram)
	good := append([]byte(nil), e.Bytes()...)
	mod := func(fn func(b []byte) []byte) []byte { return fn(append([]byte(nil), good...)) }
	cases := []struct {
		msg  []byte
		want Reason
	}{
		{nil, ReasonShort},
		{good[:10], ReasonShort},
		{good[:len(good)-1], ReasonShort},
		{mod(func(b []byte) []byte { b[0] = 'X'; return b }), ReasonMagic},
		{mod(func(b []byte) []byte { b[2] = 9; return b }), ReasonVersion},
		{mod(func(b []byte) []byte { b[3] = 0; return b }), ReasonType},
		{mod(func(b []byte) []byte { b[7] = 200; return b }), ReasonShort},
		{mod(func(b []byte) []byte { return append(b, 0) }), ReasonTrailing},
		{mod(func(b []byte) []byte { b[HeaderLen] |= 0xe0; return b }), ReasonField},
		{mod(func(b []byte) []byte { b[HeaderLen+1] |= 3; return b }), ReasonField},
		{mod(func(b []byte) []byte { b[HeaderLen+3] = byte(policy.MaxAction) + 1; return b }), ReasonField}, // an unknown verdict
	}
	var d Decoder
	for i, c := range cases {
		_, _, err := d.Decode(c.msg)
		var r Reason
		if !errors.As(err, &r) || r != c.want {
			t.Errorf("case %d: %v, want %v", i, err, c.want)
		}
	}
}

func TestCodecAllocs(t *testing.T) {
	in := sampleFlows()
	var e Encoder
	var d Decoder
	run := func() {
		e.Reset(Header{Type: MsgUpdate})
		for i := range in {
			e.Append(&in[i], MaxDatagram)
		}
		if _, _, err := d.Decode(e.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("%v allocations per message", n)
	}
}

func BenchmarkEncode(b *testing.B) {
	f := gwlbFlow(1)
	var e Encoder
	e.Reset(Header{Type: MsgUpdate})
	b.ReportAllocs()
	flows := 0
	for b.Loop() {
		if !e.Append(&f, MaxDatagram) {
			e.Reset(Header{Type: MsgUpdate})
			e.Append(&f, MaxDatagram)
		}
		flows++
	}
	b.ReportMetric(float64(flows)/b.Elapsed().Seconds(), "flows/s")
	b.ReportMetric(float64(e.Len()-HeaderLen)/float64(e.Count()), "B/flow")
}

func BenchmarkDecode(b *testing.B) {
	var e Encoder
	e.Reset(Header{Type: MsgUpdate})
	for i := 0; ; i++ {
		f := gwlbFlow(i)
		if !e.Append(&f, MaxDatagram) {
			break
		}
	}
	var d Decoder
	msg := e.Bytes()
	b.ReportAllocs()
	flows := 0
	for b.Loop() {
		_, fs, err := d.Decode(msg)
		if err != nil {
			b.Fatal(err)
		}
		flows += len(fs)
	}
	b.ReportMetric(float64(flows)/b.Elapsed().Seconds(), "flows/s")
	b.ReportMetric(float64(len(msg)-HeaderLen)/float64(e.Count()), "B/flow")
}

// FuzzDecode: garbage never panics, every error is a Reason, and what decodes
// encodes back to the same flows.
func FuzzDecode(f *testing.F) {
	var e Encoder
	e.Reset(Header{Type: MsgUpdate, Node: 1, Epoch: 2, Seq: 3})
	in := sampleFlows()
	for i := range in {
		e.Append(&in[i], MaxDatagram)
	}
	f.Add(append([]byte(nil), e.Bytes()...))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var d Decoder
		h, fs, err := d.Decode(msg)
		if err != nil {
			var r Reason
			if !errors.As(err, &r) || r == ReasonNone || r >= numReasons {
				t.Fatalf("error %v is no reason", err)
			}
			return
		}
		if h.Type != MsgUpdate && h.Type != MsgBulkChunk && h.Type != MsgRefresh {
			return
		}
		var e Encoder
		e.Reset(h)
		for i := range fs {
			if !e.Append(&fs[i], 1<<30) {
				t.Fatal("re-encode refused")
			}
		}
		var d2 Decoder
		_, fs2, err := d2.Decode(e.Bytes())
		if err != nil || len(fs2) != len(fs) {
			t.Fatalf("re-decode: %v", err)
		}
		for i := range fs {
			if fs[i] != fs2[i] {
				t.Fatalf("flow %d: %+v then %+v", i, fs[i], fs2[i])
			}
		}
	})
}

// TestWriteSeedCorpus keeps testdata/fuzz/FuzzDecode in step with the format when
// WEIR_WRITE_CORPUS is set.
func TestWriteSeedCorpus(t *testing.T) {
	if os.Getenv("WEIR_WRITE_CORPUS") == "" {
		t.Skip("set WEIR_WRITE_CORPUS=1 to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in := sampleFlows()
	for i := range in {
		var e Encoder
		e.Reset(Header{Type: MsgUpdate, Node: uint16(i), Epoch: 5, Seq: uint64(i)})
		e.Append(&in[i], MaxDatagram)
		write(t, filepath.Join(dir, "flow"+string(rune('0'+i))), e.Bytes())
	}
	var e Encoder
	e.Reset(Header{Type: MsgBulkDone, Seq: 1})
	e.AppendUvarint(3)
	e.AppendUvarint(9000)
	write(t, filepath.Join(dir, "bulkdone"), e.Bytes())
	e.Reset(Header{Type: MsgBulkRequest, Seq: 1})
	write(t, filepath.Join(dir, "bulkrequest"), e.Bytes())
}

func write(t *testing.T, path string, b []byte) {
	s := "go test fuzz v1\n[]byte(" + quote(b) + ")\n"
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func quote(b []byte) string {
	out := []byte{'"'}
	for _, c := range b {
		out = append(out, '\\', 'x', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
	}
	return string(append(out, '"'))
}
