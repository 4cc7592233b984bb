package detect

import (
	"encoding/binary"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"weir/dataplane"
	"weir/dataplane/detect/rulegen"
	"weir/dataplane/detect/rules"
	"weir/dataplane/eve"
	"weir/dataplane/flow"
	"weir/dataplane/policy"
)

// loadGenerated parses and compiles n generated ET-style rules.
func loadGenerated(tb testing.TB, n int) (*Engine, *rules.Set) {
	tb.Helper()
	set, err := rules.Parse(strings.NewReader(rulegen.Generate(n, 1)), "generated.rules", rules.DefaultVars())
	if err != nil {
		tb.Fatal(err)
	}
	if len(set.Skipped) > n/100 {
		tb.Fatalf("%d of %d generated rules skipped, e.g. %v", len(set.Skipped), n, set.Skipped[0])
	}
	e, _ := Compile(set, Options{}, NewFlowbits())
	return e, set
}

// trafficBatches makes batches of mixed traffic (HTTP-like, TLS, DNS, random) as
// established flows' segments, with the bytes of payload they carry.
func trafficBatches(tb testing.TB, n int) (batches []*dataplane.Batch, payload int) {
	tb.Helper()
	payloads := rulegen.Traffic(n, 2)
	const per = 64
	for i := 0; i < len(payloads); i += per {
		b := dataplane.NewBatch(per)
		for j, p := range payloads[i:min(i+per, len(payloads))] {
			src := net.IPv4(10, 0, byte(j>>8), byte(j))
			var ip []byte
			if j%4 == 3 {
				ip = serialize(tb, src, net.IPv4(192, 0, 2, 53), 64, &layers.UDP{SrcPort: 40000, DstPort: 53}, p)
			} else {
				ip = serialize(tb, src, net.IPv4(192, 0, 2, 80), 64,
					&layers.TCP{SrcPort: layers.TCPPort(40000 + j), DstPort: 80, ACK: true, PSH: true, Seq: 1, Window: 1000}, p)
			}
			b.Slots[j].Buf, b.Slots[j].Inner, b.Slots[j].Encap = ip, ip, dataplane.EncapNone
			b.N = j + 1
			payload += len(p)
		}
		batches = append(batches, b)
	}
	return batches, payload
}

func newBenchPipeline(e *Engine) (*dataplane.Worker, *Stage) {
	table := flow.NewTable(flow.Config{MaxFlows: 1 << 16, SideSize: SideSize(e), SideRecord: SideRecord,
		Logger: slog.New(slog.DiscardHandler)}, policy.NewLive(&policy.Policy{Default: policy.Allow}), nil)
	st := NewStage(e)
	st.Inline = table
	st.Alert = func(*eve.Alert) {}
	p := dataplane.NewPipeline(dataplane.InnerDecode{}, &dataplane.Track{Table: table}, st)
	return p.NewWorker(), st
}

// run sends the batches once more. Each pass moves every TCP segment's sequence
// number past the last one's data, so that every pass is new stream data, in
// order, as on a live link (the same bytes again would be retransmissions, which
// detection skips).
func run(w *dataplane.Worker, batches []*dataplane.Batch, now int64) {
	for _, b := range batches {
		for i := range b.Slots[:b.N] {
			s := &b.Slots[i]
			buf := s.Buf
			s.Reset()
			s.Inner, s.Encap = buf, dataplane.EncapNone
			if buf[9] == 6 { // IPv4 TCP: advance the sequence number by the payload
				hl := int(buf[0]&0xf) * 4
				tcp := buf[hl:]
				payload := len(buf) - hl - int(tcp[12]>>4)*4
				binary.BigEndian.PutUint32(tcp[4:], binary.BigEndian.Uint32(tcp[4:])+uint32(payload))
			}
		}
		b.Now = now
		w.Process(b)
	}
}

// BenchmarkDetect10k is detection with 10,000 generated content rules over
// mixed traffic, with decoding and flow tracking: the bytes per second are
// payload inspected on one core.
func BenchmarkDetect10k(b *testing.B) {
	e, _ := loadGenerated(b, 10000)
	batches, payload := trafficBatches(b, 4096)
	w, _ := newBenchPipeline(e)
	run(w, batches, 1)
	b.SetBytes(int64(payload))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		run(w, batches, int64(i+2)*1e6)
	}
}

// BenchmarkNoRules is the same pipeline with detection off, the baseline the
// harness compares against.
func BenchmarkNoRules(b *testing.B) {
	batches, payload := trafficBatches(b, 4096)
	w, _ := newBenchPipeline(&Engine{})
	run(w, batches, 1)
	b.SetBytes(int64(payload))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		run(w, batches, int64(i+2)*1e6)
	}
}

// BenchmarkLoad30k parses and compiles 30,000 generated rules, reporting the
// heap they keep.
func BenchmarkLoad30k(b *testing.B) {
	text := rulegen.Generate(30000, 1)
	b.ReportAllocs()
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		set, err := rules.Parse(strings.NewReader(text), "generated.rules", rules.DefaultVars())
		if err != nil {
			b.Fatal(err)
		}
		e, _ := Compile(set, Options{}, NewFlowbits())
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MB-kept")
		runtime.KeepAlive(e)
	}
}

// With 10,000 rules loaded, a packet that raises no alert allocates nothing, and
// one that does allocates at most once an alert: an alert with a DNS or TLS name
// copies it for the queued event, and a pcre that matches in a stream asks regexp
// for its position.
func TestDetectAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 10,000 rules")
	}
	e, _ := loadGenerated(t, 10000)
	batches, _ := trafficBatches(t, 512)
	w, st := newBenchPipeline(e)
	alerts := 0
	st.Alert = func(*eve.Alert) { alerts++ }
	now := int64(1)
	// Sort the batches by whether their packets raise an alert (each batch seen
	// twice, so that flows exist and thresholds have counted).
	var quiet []*dataplane.Batch
	for _, b := range batches {
		run(w, []*dataplane.Batch{b}, now)
		before := alerts
		run(w, []*dataplane.Batch{b}, now+1)
		if alerts == before {
			quiet = append(quiet, b)
		}
	}
	t.Run("NoMatch", func(t *testing.T) {
		if len(quiet) == 0 {
			t.Fatal("every batch alerts")
		}
		if a := testing.AllocsPerRun(20, func() { now += 1e6; run(w, quiet, now) }); a != 0 {
			t.Fatalf("%.1f allocations per pass of %d quiet batches", a, len(quiet))
		}
	})
	t.Run("All", func(t *testing.T) {
		alerts = 0
		a := testing.AllocsPerRun(20, func() { now += 1e6; run(w, batches, now) })
		perRun := float64(alerts) / 21 // AllocsPerRun runs f once more to warm up
		if a > perRun {
			t.Fatalf("%.1f allocations per pass of 512 packets, more than its %.1f alerts", a, perRun)
		}
		t.Logf("%.1f allocations per pass of 512 packets, %.1f alerts", a, perRun)
	})
}

// 30,000 rules load in well under the 5 s budget (a generous bound: this is a
// guard against a quadratic step, not a timing of the machine).
func TestLoad30kBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 30,000 rules")
	}
	start := time.Now()
	e, set := loadGenerated(t, 30000)
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("30,000 rules took %v", d)
	}
	if e.Rules() < len(set.Rules)*99/100 {
		t.Fatalf("%d of %d rules compiled", e.Rules(), len(set.Rules))
	}
}
