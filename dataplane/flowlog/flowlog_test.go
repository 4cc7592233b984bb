package flowlog

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"weir/internal/goroutines"

	"weir/dataplane/flow"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
)

var quiet = slog.New(slog.DiscardHandler)

func rec(proto uint8, src string, sport uint16, dst string, dport uint16) *flow.Record {
	return &flow.Record{ID: 1, Proto: proto, Src: netip.MustParseAddr(src), SrcPort: sport,
		Dst: netip.MustParseAddr(dst), DstPort: dport, Rule: policy.NoRule}
}

func delta(toServer, toClient [4]int64) *flow.Delta {
	d := &flow.Delta{PktsToServer: uint64(toServer[0]), BytesToServer: uint64(toServer[1]),
		PktsToClient: uint64(toClient[0]), BytesToClient: uint64(toClient[1])}
	if toServer[0] != 0 {
		d.FirstToServer, d.LastToServer = time.Unix(toServer[2], 123), time.Unix(toServer[3], 999_999_999)
	}
	if toClient[0] != 0 {
		d.FirstToClient, d.LastToClient = time.Unix(toClient[2], 0), time.Unix(toClient[3], 0)
	}
	return d
}

func TestAppendLine(t *testing.T) {
	dropped := rec(packet.ProtoTCP, "10.0.0.5", 49152, "10.0.1.9", 22)
	dropped.Action = policy.Drop
	for _, tc := range []struct {
		name           string
		account, ifc   string
		r              *flow.Record
		d              *flow.Delta
		server, client string // "" when that direction must not be written
	}{
		{"tcp both ways", "123456789012", "eni-0abc",
			rec(packet.ProtoTCP, "10.0.0.5", 49152, "10.0.1.9", 443),
			delta([4]int64{10, 840, 1418530010, 1418530070}, [4]int64{8, 6000, 1418530011, 1418530069}),
			"2 123456789012 eni-0abc 10.0.0.5 10.0.1.9 49152 443 6 10 840 1418530010 1418530070 ACCEPT OK",
			"2 123456789012 eni-0abc 10.0.1.9 10.0.0.5 443 49152 6 8 6000 1418530011 1418530069 ACCEPT OK"},
		{"udp one way, unknown account and interface", "", "",
			rec(packet.ProtoUDP, "10.0.0.5", 5353, "10.0.0.2", 53),
			delta([4]int64{1, 70, 100, 100}, [4]int64{}),
			"2 - - 10.0.0.5 10.0.0.2 5353 53 17 1 70 100 100 ACCEPT OK", ""},
		{"udp reply only", "1", "eni-1",
			rec(packet.ProtoUDP, "10.0.0.5", 5353, "10.0.0.2", 53),
			delta([4]int64{}, [4]int64{2, 300, 7, 9}),
			"", "2 1 eni-1 10.0.0.2 10.0.0.5 53 5353 17 2 300 7 9 ACCEPT OK"},
		{"icmp ports 0", "1", "eni-1",
			rec(packet.ProtoICMP, "10.0.0.5", 77, "10.0.0.2", 77),
			delta([4]int64{3, 252, 10, 12}, [4]int64{3, 252, 10, 12}),
			"2 1 eni-1 10.0.0.5 10.0.0.2 0 0 1 3 252 10 12 ACCEPT OK",
			"2 1 eni-1 10.0.0.2 10.0.0.5 0 0 1 3 252 10 12 ACCEPT OK"},
		{"icmpv6", "1", "eni-1",
			rec(packet.ProtoICMPv6, "2001:db8::1", 9, "2001:db8::2", 9),
			delta([4]int64{1, 104, 10, 10}, [4]int64{}),
			"2 1 eni-1 2001:db8::1 2001:db8::2 0 0 58 1 104 10 10 ACCEPT OK", ""},
		{"reject", "1", "eni-1", dropped,
			delta([4]int64{3, 180, 1, 4}, [4]int64{}),
			"2 1 eni-1 10.0.0.5 10.0.1.9 49152 22 6 3 180 1 4 REJECT OK", ""},
		{"ipv6 tcp", "123456789012", "eni-0abc",
			rec(packet.ProtoTCP, "2001:db8:1::5", 40000, "2600:1f18::9", 443),
			delta([4]int64{1, 80, 5, 5}, [4]int64{1, 80, 6, 6}),
			"2 123456789012 eni-0abc 2001:db8:1::5 2600:1f18::9 40000 443 6 1 80 5 5 ACCEPT OK",
			"2 123456789012 eni-0abc 2600:1f18::9 2001:db8:1::5 443 40000 6 1 80 6 6 ACCEPT OK"},
		{"other protocol", "1", "eni-1",
			rec(47, "10.0.0.5", 0, "10.0.0.6", 0),
			delta([4]int64{1, 100, 5, 5}, [4]int64{}),
			"2 1 eni-1 10.0.0.5 10.0.0.6 0 0 47 1 100 5 5 ACCEPT OK", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, toServer := range []bool{true, false} {
				want := tc.server
				if !toServer {
					want = tc.client
				}
				if want == "" {
					continue
				}
				if got := string(AppendLine(nil, tc.account, tc.ifc, tc.r, tc.d, toServer)); got != want {
					t.Errorf("toServer=%v:\n got %q\nwant %q", toServer, got, want)
				}
			}
			// The Writer writes exactly the directions with packets, in order.
			var buf bytes.Buffer
			w := newWriter(&buf, nil, false, Config{AccountID: tc.account, Logger: quiet,
				InterfaceID: func(*flow.Record) string { return tc.ifc }})
			w.Record(tc.r, tc.d)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			want := ""
			for _, l := range []string{tc.server, tc.client} {
				if l != "" {
					want += l + "\n"
				}
			}
			if buf.String() != want {
				t.Errorf("writer:\n got %q\nwant %q", buf.String(), want)
			}
		})
	}
}

// A direction without packets has no times; AppendLine writes them "-".
func TestAppendLineNoTraffic(t *testing.T) {
	r := rec(packet.ProtoUDP, "10.0.0.5", 1, "10.0.0.6", 2)
	got := string(AppendLine([]byte("x "), "", "", r, &flow.Delta{}, false))
	if want := "x 2 - - 10.0.0.6 10.0.0.5 2 1 17 0 0 - - ACCEPT OK"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	if n := testing.AllocsPerRun(100, func() {
		AppendLine(make([]byte, 0, 256)[:0], "1", "eni-1", r, &flow.Delta{}, true)
	}); n > 1 {
		t.Errorf("%v allocs", n)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if s != "" && !strings.HasSuffix(s, "\n") {
		t.Fatalf("partial line in %q", s)
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// End to end: flow table intervals through the Writer into a file, appended to by a
// second Writer without a second header.
func TestWriterFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.log")
	open := func() *Writer {
		w, err := Open(Config{Path: path, AccountID: "123456789012", Logger: quiet,
			InterfaceID: func(r *flow.Record) string {
				if r.Session == 0 {
					return ""
				}
				return fmt.Sprintf("eni-%017x", r.Session)
			}})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := open()
	pol := &policy.Policy{Default: policy.Allow, Rules: []policy.Rule{
		{Action: policy.Drop, Proto: int(packet.ProtoTCP), DstPort: policy.PortRange{Lo: 23, Hi: 23}},
	}}
	tb := flow.NewTable(flow.Config{MaxFlows: 1024, Logger: quiet, OnInterval: w.Record}, pol, nil)
	c, s := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.1.9")
	web := &packet.Packet{Proto: packet.ProtoTCP, Src: c, Dst: s, SrcPort: 49152, DstPort: 443, TCPFlags: packet.TCPSyn}
	webReply := &packet.Packet{Proto: packet.ProtoTCP, Src: s, Dst: c, SrcPort: 443, DstPort: 49152,
		TCPFlags: packet.TCPSyn | packet.TCPAck}
	telnet := &packet.Packet{Proto: packet.ProtoTCP, Src: c, Dst: s, SrcPort: 50000, DstPort: 23, TCPFlags: packet.TCPSyn}
	meta := &flow.Meta{Session: 0xabc, Direction: flow.DirectionEgress}
	const t0 = int64(1418530010) * int64(time.Second)
	tb.TrackMeta(0, web, 60, meta, t0)
	tb.TrackMeta(0, webReply, 60, meta, t0+int64(time.Second))
	tb.TrackMeta(0, web, 40, meta, t0+int64(2*time.Second))
	tb.TrackMeta(0, telnet, 60, nil, t0+int64(3*time.Second))
	if n := tb.Interval(0); n != 2 {
		t.Fatalf("Interval = %d", n)
	}
	tb.TrackMeta(0, web, 40, meta, t0+int64(70*time.Second))
	tb.Flush(0)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != 4 || w.Dropped() != 0 {
		t.Fatalf("written %d dropped %d", w.Written(), w.Dropped())
	}
	lines := readLines(t, path)
	want := []string{
		Header,
		"2 123456789012 eni-00000000000000abc 10.0.0.5 10.0.1.9 49152 443 6 2 100 1418530010 1418530012 ACCEPT OK",
		"2 123456789012 eni-00000000000000abc 10.0.1.9 10.0.0.5 443 49152 6 1 60 1418530011 1418530011 ACCEPT OK",
		"2 123456789012 - 10.0.0.5 10.0.1.9 50000 23 6 1 60 1418530013 1418530013 REJECT OK",
		"2 123456789012 eni-00000000000000abc 10.0.0.5 10.0.1.9 49152 443 6 1 40 1418530080 1418530080 ACCEPT OK",
	}
	// The table's record order within one Interval call is unspecified.
	if len(lines) != len(want) || lines[0] != want[0] || lines[4] != want[4] ||
		!sameSet(lines[1:4], want[1:4]) {
		t.Fatalf("file:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	// Appending to the non-empty file: no second header.
	w = open()
	w.Record(rec(packet.ProtoUDP, "10.0.0.5", 1, "10.0.0.6", 2), delta([4]int64{1, 10, 9, 9}, [4]int64{}))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines = readLines(t, path)
	if len(lines) != 6 || strings.Count(strings.Join(lines, "\n"), "version") != 1 ||
		lines[5] != "2 123456789012 - 10.0.0.5 10.0.0.6 1 2 17 1 10 9 9 ACCEPT OK" {
		t.Fatalf("appended file:\n%s", strings.Join(lines, "\n"))
	}

	// An existing empty file gets the header.
	empty := filepath.Join(t.TempDir(), "empty.log")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Open(Config{Path: empty, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if lines := readLines(t, empty); len(lines) != 1 || lines[0] != Header {
		t.Fatalf("empty file: %q", lines)
	}
	// Record after Close is a drop, not a panic.
	w.Record(rec(packet.ProtoUDP, "10.0.0.5", 1, "10.0.0.6", 2), delta([4]int64{1, 10, 9, 9}, [4]int64{1, 1, 9, 9}))
	if w.Dropped() != 2 {
		t.Fatalf("dropped after close %d", w.Dropped())
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(Config{}); err == nil {
		t.Error("no path accepted")
	}
	if _, err := Open(Config{Path: filepath.Join(t.TempDir(), "no", "such", "dir")}); err == nil {
		t.Error("bad path accepted")
	}
}

// The buffer is flushed within about a second without Close.
func TestWriterFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.log")
	w, err := Open(Config{Path: path, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Record(rec(packet.ProtoUDP, "10.0.0.5", 1, "10.0.0.6", 2), delta([4]int64{1, 10, 9, 9}, [4]int64{}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, _ := os.ReadFile(path); strings.Count(string(b), "\n") == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("not flushed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// blocked is an output that blocks every write until released.
type blocked struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (b *blocked) Write(p []byte) (int, error) {
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// A full queue drops, counts and returns at once; what was queued is written.
func TestQueueOverflow(t *testing.T) {
	out := &blocked{release: make(chan struct{})}
	const queue, records = 8, 100_000
	w := newWriter(out, nil, true, Config{Queue: queue, Logger: quiet})
	r := rec(packet.ProtoTCP, "10.0.0.5", 1, "10.0.0.6", 2)
	d := delta([4]int64{1, 10, 9, 9}, [4]int64{1, 10, 9, 9}) // two lines a record
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range records {
			w.Record(r, d)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Record blocked")
	}
	// The writer holds at most the queue, one record in hand and a 256 KiB buffer.
	maxKept := uint64(queue+1)*2 + 256<<10/uint64(len(AppendLine(nil, "", "", r, d, true))+1) + 2
	if w.Dropped() < 2*records-maxKept || w.Dropped()%2 != 0 {
		t.Fatalf("dropped %d of %d lines", w.Dropped(), 2*records)
	}
	close(out.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written()+w.Dropped() != 2*records {
		t.Fatalf("written %d + dropped %d != %d", w.Written(), w.Dropped(), 2*records)
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if got := strings.Count(out.buf.String(), "\n"); uint64(got) != w.Written()+1 {
		t.Fatalf("%d lines in output, written %d", got, w.Written())
	}
}

// Zero-traffic records write nothing and count nothing.
func TestRecordEmpty(t *testing.T) {
	var buf bytes.Buffer
	w := newWriter(&buf, nil, false, Config{Queue: 1, Logger: quiet})
	for range 10 {
		w.Record(rec(packet.ProtoUDP, "10.0.0.5", 1, "10.0.0.6", 2), &flow.Delta{})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != 0 || w.Dropped() != 0 || buf.Len() != 0 {
		t.Fatalf("written %d dropped %d %q", w.Written(), w.Dropped(), buf.String())
	}
}

// Write errors are reported by Close.
func TestWriteError(t *testing.T) {
	w := newWriter(failing{}, nil, true, Config{Logger: quiet})
	w.Record(rec(packet.ProtoUDP, "10.0.0.5", 1, "10.0.0.6", 2), delta([4]int64{1, 10, 9, 9}, [4]int64{}))
	if err := w.Close(); err == nil {
		t.Fatal("no error")
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, os.ErrClosed }

func BenchmarkRecord(b *testing.B) {
	var buf bytes.Buffer
	w := newWriter(&buf, nil, false, Config{Logger: quiet})
	defer w.Close()
	r := rec(packet.ProtoTCP, "10.0.0.5", 1, "10.0.0.6", 2)
	d := delta([4]int64{1, 10, 9, 9}, [4]int64{1, 10, 9, 9})
	b.ReportAllocs()
	for b.Loop() {
		w.Record(r, d)
	}
}

// Records from housekeeping (r.Background) wait for room in a full queue instead of
// being dropped; the same writer still drops packet-path records at once.
func TestBackgroundWaits(t *testing.T) {
	out := &blocked{release: make(chan struct{})}
	// Long lines, so that the writer soon blocks on the output with its buffer full.
	long := strings.Repeat("x", 100<<10)
	w := newWriter(out, nil, false, Config{Queue: 1, Logger: quiet,
		InterfaceID: func(*flow.Record) string { return long }})
	r := rec(packet.ProtoUDP, "10.0.0.5", 1, "10.0.0.6", 2)
	d := delta([4]int64{1, 10, 9, 9}, [4]int64{})
	// Fill the queue: the writer is blocked, and a packet-path record is dropped.
	for w.Dropped() == 0 {
		w.Record(r, d)
	}
	queued := 0
	bg := *r
	bg.Background = true
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			w.Record(&bg, d)
			queued++
		}
	}()
	goroutines.WaitBlocked(t, "chan send", "flowlog.TestBackgroundWaits")
	select {
	case <-done:
		t.Fatal("background records did not wait for room")
	default:
	}
	dropped := w.Dropped()
	close(out.release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("background records never got room")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Dropped() != dropped || queued != 50 {
		t.Fatalf("dropped %d, then %d; %d background records queued", dropped, w.Dropped(), queued)
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if got := uint64(strings.Count(out.buf.String(), "\n")); got != w.Written() || got < 50 {
		t.Fatalf("%d lines, written %d", got, w.Written())
	}
}
