package eve_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"weir/internal/goroutines"

	"weir/dataplane/eve"
	"weir/dataplane/flow"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
	"weir/geneve"
)

var quiet = slog.New(slog.DiscardHandler)

// allAWS has every GWLB option present.
var allAWS = geneve.AWS{
	EndpointID:   0x0123456789abcdef,
	AttachmentID: 0xfedcba9876543210,
	FlowCookie:   0x0badf00d,
	Present:      1<<geneve.AWSTypeEndpointID | 1<<geneve.AWSTypeAttachmentID | 1<<geneve.AWSTypeFlowCookie,
}

var (
	zone  = time.FixedZone("", -(7*3600 + 30*60)) // -0730: the offset must be written as is
	start = time.Date(2024, 5, 6, 7, 8, 9, 123456789, zone)
	end   = start.Add(95*time.Second + 500*time.Millisecond)
)

func tcpRecord() flow.Record {
	return flow.Record{
		ID: 1<<53 + 12345, Proto: packet.ProtoTCP, Rule: policy.NoRule,
		Src: netip.MustParseAddr("10.0.1.5"), Dst: netip.MustParseAddr("10.0.2.9"),
		SrcPort: 40000, DstPort: 443,
		Start: start, End: end,
		PktsToServer: 10, PktsToClient: 8, BytesToServer: 1200, BytesToClient: 9000,
		State: flow.StateClosed, Reason: flow.EndTimeout,
		TCPFlagsToServer: packet.TCPSyn | packet.TCPAck | packet.TCPFin | packet.TCPPsh,
		TCPFlagsToClient: packet.TCPSyn | packet.TCPAck,
		Action:           policy.Allow,
		AWS:              allAWS,
	}
}

func udpRecord() flow.Record {
	return flow.Record{
		ID: 7, Proto: packet.ProtoUDP, Rule: policy.NoRule,
		Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("fd00::53"),
		SrcPort: 5353, DstPort: 53,
		Start: start, End: start,
		PktsToServer: 1, PktsToClient: 1, BytesToServer: 80, BytesToClient: 200,
		State: flow.StateEstablished, Reason: flow.EndShutdown,
		Action: policy.Drop,
		AWS:    allAWS,
	}
}

func icmpRecord() flow.Record {
	return flow.Record{
		ID: 8, Proto: packet.ProtoICMP,
		Src: netip.MustParseAddr("192.168.0.1"), Dst: netip.MustParseAddr("8.8.8.8"),
		Start: start, End: end,
		PktsToServer: 3, BytesToServer: 252,
		State: flow.StateNew, Reason: flow.EndForced,
		AWS: allAWS,
	}
}

func icmp6Record() flow.Record {
	r := icmpRecord()
	r.Proto = packet.ProtoICMPv6
	r.Src, r.Dst = netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::1")
	return r
}

// decode parses one EVE line, keeping numbers exact.
func decode(t *testing.T, line []byte) map[string]any {
	t.Helper()
	if bytes.ContainsAny(line, "\n\r") {
		t.Fatalf("EVE line contains a newline: %q", line)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not valid JSON: %v\n%s", err, line)
	}
	if dec.More() {
		t.Fatalf("trailing data after the JSON object: %s", line)
	}
	return m
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		t.Fatalf("%v is not an integer: %v", n, err)
	}
	return i
}

func obj(t *testing.T, m map[string]any, key string) map[string]any {
	t.Helper()
	o, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("%q is %v (%T), want an object", key, m[key], m[key])
	}
	return o
}

func wantTime(t *testing.T, field string, v any, want time.Time) {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%s = %v (%T), want a string", field, v, v)
	}
	// Suricata's layout: microseconds and a numeric offset without a colon.
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d{4}$`).MatchString(s) {
		t.Errorf("%s = %q, not in Suricata's layout %s", field, s, eve.TimeFormat)
	}
	got, err := time.Parse(eve.TimeFormat, s)
	if err != nil {
		t.Fatalf("%s = %q: %v", field, s, err)
	}
	if !got.Equal(want.Truncate(time.Microsecond)) {
		t.Errorf("%s = %q (%v), want %v", field, s, got, want)
	}
	if _, off := got.Zone(); off != -(7*3600 + 30*60) {
		t.Errorf("%s = %q: offset %d, want -0730", field, s, off)
	}
}

func TestAppendFlow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		r     flow.Record
		proto string
	}{
		{"tcp", tcpRecord(), "TCP"},
		{"udp v6", udpRecord(), "UDP"},
		{"icmp", icmpRecord(), "ICMP"},
		{"icmpv6", icmp6Record(), "IPv6-ICMP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			line := eve.AppendFlow(nil, &r)
			if !bytes.HasPrefix(line, []byte(`{"timestamp":"`)) {
				t.Errorf("line does not start with the timestamp: %s", line)
			}
			m := decode(t, line)

			wantTime(t, "timestamp", m["timestamp"], r.End)
			if got := m["flow_id"]; got != json.Number(strconv.FormatUint(r.ID, 10)) {
				t.Errorf("flow_id = %v, want %d", got, r.ID)
			}
			if m["event_type"] != "flow" {
				t.Errorf("event_type = %v, want flow", m["event_type"])
			}
			if m["src_ip"] != eve.SuricataAddr(r.Src) || m["dest_ip"] != eve.SuricataAddr(r.Dst) {
				t.Errorf("src_ip, dest_ip = %v, %v; want %v, %v", m["src_ip"], m["dest_ip"], r.Src, r.Dst)
			}
			if m["proto"] != tc.proto {
				t.Errorf("proto = %v, want %s", m["proto"], tc.proto)
			}
			ipv := json.Number("4")
			if r.Src.Is6() {
				ipv = "6"
			}
			if m["ip_v"] != ipv {
				t.Errorf("ip_v = %v, want %s", m["ip_v"], ipv)
			}
			hasPorts := r.Proto == packet.ProtoTCP || r.Proto == packet.ProtoUDP
			for key, want := range map[string]uint16{"src_port": r.SrcPort, "dest_port": r.DstPort} {
				v, ok := m[key]
				switch {
				case hasPorts && !ok:
					t.Errorf("%s missing", key)
				case hasPorts && num(t, v) != int64(want):
					t.Errorf("%s = %v, want %d", key, v, want)
				case !hasPorts && ok:
					t.Errorf("%s = %v present for %s", key, v, tc.proto)
				}
			}

			f := obj(t, m, "flow")
			for key, want := range map[string]uint64{
				"pkts_toserver": r.PktsToServer, "pkts_toclient": r.PktsToClient,
				"bytes_toserver": r.BytesToServer, "bytes_toclient": r.BytesToClient,
				"age": uint64(r.End.Sub(r.Start) / time.Second),
			} {
				if got := num(t, f[key]); got != int64(want) {
					t.Errorf("flow.%s = %d, want %d", key, got, want)
				}
			}
			wantTime(t, "flow.start", f["start"], r.Start)
			wantTime(t, "flow.end", f["end"], r.End)
			if f["state"] != r.State.String() || f["reason"] != r.Reason.String() {
				t.Errorf("flow.state, reason = %v, %v; want %v, %v", f["state"], f["reason"], r.State, r.Reason)
			}
			if f["alerted"] != false {
				t.Errorf("flow.alerted = %v, want false", f["alerted"])
			}

			if r.Proto == packet.ProtoTCP {
				tcp := obj(t, m, "tcp")
				// 0x1b = fin|syn|psh|ack; 0x12 = syn|ack.
				for key, want := range map[string]any{
					"tcp_flags": "1b", "tcp_flags_ts": "1b", "tcp_flags_tc": "12",
					"fin": true, "syn": true, "psh": true, "ack": true,
				} {
					if tcp[key] != want {
						t.Errorf("tcp.%s = %v, want %v", key, tcp[key], want)
					}
				}
				if _, ok := tcp["rst"]; ok {
					t.Errorf("tcp.rst present though no RST was seen: %v", tcp)
				}
			} else if _, ok := m["tcp"]; ok {
				t.Errorf("tcp object present for %s", tc.proto)
			}

			w := obj(t, m, "weir")
			for key, want := range map[string]any{
				"encap":              "geneve",
				"gwlb_endpoint_id":   "vpce-00123456789abcdef",
				"gwlb_attachment_id": "fedcba9876543210",
				"gwlb_flow_cookie":   "0badf00d",
				"action":             r.Action.String(),
			} {
				if w[key] != want {
					t.Errorf("weir.%s = %v, want %v", key, w[key], want)
				}
			}
			if id, _ := w["gwlb_endpoint_id"].(string); !regexp.MustCompile(`^vpce-[0-9a-f]{17}$`).MatchString(id) {
				t.Errorf("weir.gwlb_endpoint_id = %q, want vpce- and 17 hex digits", id)
			}
		})
	}
}

func TestAppendFlowAWSOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		aws  geneve.AWS
		want map[string]any // the whole weir object
	}{
		{"none", geneve.AWS{EndpointID: 1, FlowCookie: 2}, map[string]any{"action": "drop"}},
		{"endpoint only", geneve.AWS{EndpointID: 0xabc, Present: 1 << geneve.AWSTypeEndpointID},
			map[string]any{"encap": "geneve", "gwlb_endpoint_id": "vpce-00000000000000abc", "action": "drop"}},
		{"endpoint and cookie", geneve.AWS{EndpointID: 0xffffffffffffffff, FlowCookie: 0xffffffff,
			Present: 1<<geneve.AWSTypeEndpointID | 1<<geneve.AWSTypeFlowCookie},
			map[string]any{"encap": "geneve", "gwlb_endpoint_id": "vpce-0ffffffffffffffff", "gwlb_flow_cookie": "ffffffff", "action": "drop"}},
		{"attachment zero", geneve.AWS{Present: 1 << geneve.AWSTypeAttachmentID},
			map[string]any{"encap": "geneve", "gwlb_attachment_id": "0000000000000000", "action": "drop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := udpRecord()
			r.AWS = tc.aws
			w := obj(t, decode(t, eve.AppendFlow(nil, &r)), "weir")
			if len(w) != len(tc.want) {
				t.Errorf("weir = %v, want %v", w, tc.want)
			}
			for k, v := range tc.want {
				if w[k] != v {
					t.Errorf("weir.%s = %v, want %v", k, w[k], v)
				}
			}
		})
	}
}

func TestAppendFlowEdgeCases(t *testing.T) {
	// An unnamed protocol, a zero time and all-zero counters still make valid JSON.
	r := flow.Record{Proto: 99, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}
	m := decode(t, eve.AppendFlow(nil, &r))
	if m["proto"] != "99" {
		t.Errorf("proto = %v, want \"99\"", m["proto"])
	}
	if _, ok := m["src_port"]; ok {
		t.Errorf("src_port present for proto 99")
	}
	if m["timestamp"] != "0001-01-01T00:00:00.000000+0000" {
		t.Errorf("timestamp = %v", m["timestamp"])
	}

	// A TCP flow with an RST and no flags in one direction.
	r = tcpRecord()
	r.TCPFlagsToServer, r.TCPFlagsToClient = packet.TCPSyn, packet.TCPRst
	tcp := obj(t, decode(t, eve.AppendFlow(nil, &r)), "tcp")
	if tcp["tcp_flags"] != "06" || tcp["tcp_flags_ts"] != "02" || tcp["tcp_flags_tc"] != "04" ||
		tcp["syn"] != true || tcp["rst"] != true || tcp["ack"] != nil || tcp["fin"] != nil {
		t.Errorf("tcp = %v", tcp)
	}

	// AppendFlow appends: what is in b stays.
	b := eve.AppendFlow([]byte("prefix "), &r)
	if !bytes.HasPrefix(b, []byte(`prefix {"timestamp"`)) {
		t.Errorf("AppendFlow did not append to b: %.40s", b)
	}
}

// TestAppendFlowAlerted: flow.alerted says whether the flow raised alerts, and
// weir.alerts how many, only when some.
func TestAppendFlowAlerted(t *testing.T) {
	for _, tc := range []struct {
		alerts  uint32
		alerted bool
		count   any
	}{
		{0, false, nil},
		{1, true, json.Number("1")},
		{4294967295, true, json.Number("4294967295")},
	} {
		r := tcpRecord()
		r.Alerts = tc.alerts
		line := eve.AppendFlow(nil, &r)
		m := decode(t, line)
		if got := obj(t, m, "flow")["alerted"]; got != tc.alerted {
			t.Errorf("alerts %d: flow.alerted = %v, want %v", tc.alerts, got, tc.alerted)
		}
		if got := obj(t, m, "weir")["alerts"]; got != tc.count {
			t.Errorf("alerts %d: weir.alerts = %v, want %v", tc.alerts, got, tc.count)
		}
		if !bytes.Contains(line, []byte(`"dest_port":443,"ip_v":4,"proto":"TCP","flow":{`)) {
			t.Errorf("ip_v not where Suricata 8 writes it in flow records: %s", line)
		}
		if tc.alerts > 0 && !bytes.Contains(line, []byte(`"reason":"timeout","alerted":true}`)) {
			t.Errorf("alerted not where Suricata writes it: %s", line)
		}
	}
}

func TestProtoName(t *testing.T) {
	for p, want := range map[uint8]string{1: "ICMP", 6: "TCP", 17: "UDP", 58: "IPv6-ICMP", 4: "IPv4", 41: "IPv6", 47: "GRE", 99: "99", 0: "0"} {
		if got := eve.ProtoName(p); got != want {
			t.Errorf("ProtoName(%d) = %q, want %q", p, got, want)
		}
	}
}

func TestEndpointID(t *testing.T) {
	for v, want := range map[uint64]string{
		0:                  "vpce-00000000000000000",
		0x0123456789abcdef: "vpce-00123456789abcdef",
		0xffffffffffffffff: "vpce-0ffffffffffffffff",
	} {
		if got := eve.EndpointID(v); got != want {
			t.Errorf("EndpointID(%#x) = %q, want %q", v, got, want)
		}
	}
}

func TestAppendFlowAllocs(t *testing.T) {
	if eve.RaceEnabled {
		t.Skip("the race detector allocates")
	}
	buf := make([]byte, 0, 4096)
	for _, r := range []flow.Record{tcpRecord(), udpRecord(), icmp6Record(), alertedRecord()} {
		allocs := testing.AllocsPerRun(100, func() {
			buf = eve.AppendFlow(buf[:0], &r)
		})
		if allocs != 0 {
			t.Errorf("AppendFlow(%s) into a sized buffer: %v allocations, want 0", eve.ProtoName(r.Proto), allocs)
		}
	}
}

func BenchmarkAppendFlow(b *testing.B) {
	r := tcpRecord()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = eve.AppendFlow(buf[:0], &r)
	}
	b.SetBytes(int64(len(buf)))
}

// readLines reads a file's lines, each one EVE record.
func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("%s does not end with a newline", path)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	return lines
}

func TestWriterFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eve.json")
	const n = 2000
	w, err := eve.Open(path, 0, quiet)
	if err != nil {
		t.Fatal(err)
	}
	records := []flow.Record{tcpRecord(), udpRecord(), icmpRecord(), icmp6Record()}
	for i := range n {
		r := records[i%len(records)]
		r.ID = uint64(i + 1)
		w.Flow(&r)
		r.ID = 0 // Flow copied the record
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if w.Written() != n || w.Dropped() != 0 {
		t.Errorf("Written, Dropped = %d, %d; want %d, 0", w.Written(), w.Dropped(), n)
	}
	lines := readLines(t, path)
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for i, line := range lines {
		m := decode(t, line)
		if id := num(t, m["flow_id"]); id != int64(i+1) {
			t.Fatalf("line %d: flow_id %d, want %d (records out of order)", i+1, id, i+1)
		}
		if want := eve.ProtoName(records[i%len(records)].Proto); m["proto"] != want {
			t.Fatalf("line %d: proto %v, want %s", i+1, m["proto"], want)
		}
	}

	// Open appends to an existing log.
	w, err = eve.Open(path, 0, quiet)
	if err != nil {
		t.Fatal(err)
	}
	r := tcpRecord()
	r.ID = n + 1
	w.Flow(&r)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines = readLines(t, path)
	if len(lines) != n+1 || num(t, decode(t, lines[n])["flow_id"]) != n+1 {
		t.Errorf("after reopening: %d lines, want %d with the new record last", len(lines), n+1)
	}
}

func TestOpenError(t *testing.T) {
	_, err := eve.Open(filepath.Join(t.TempDir(), "no", "such", "dir", "eve.json"), 0, quiet)
	if err == nil || !strings.HasPrefix(err.Error(), "eve: ") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open in a missing directory = %v, want an eve: not-exist error", err)
	}
}

func TestWriterQueueOverflow(t *testing.T) {
	pr, pw := io.Pipe()
	w := eve.New(pw, 1, quiet)
	r := tcpRecord()

	// Nobody reads the pipe: once the writer's buffer is full it blocks writing, its
	// queue of one fills and Flow must drop, never wait.
	sent := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(20 * time.Second)
		for w.Dropped() < 100 && time.Now().Before(deadline) {
			w.Flow(&r)
			sent++
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Flow blocked on a stalled writer")
	}
	if w.Dropped() == 0 {
		t.Fatalf("no record dropped after %d Flow calls to a stalled writer", sent)
	}

	// Unblock the reader side, then Close writes what was queued.
	got := make(chan []byte)
	go func() {
		data, _ := io.ReadAll(pr)
		got <- data
	}()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	data := <-got
	if w.Written()+w.Dropped() != uint64(sent) {
		t.Errorf("Written %d + Dropped %d != %d records sent", w.Written(), w.Dropped(), sent)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if uint64(len(lines)) != w.Written() {
		t.Errorf("%d lines read, Written says %d", len(lines), w.Written())
	}
	for _, line := range lines {
		decode(t, line)
	}
}

// failWriter fails every write.
type failWriter struct{ closed bool }

func (f *failWriter) Write([]byte) (int, error) { return 0, errors.New("disk on fire") }
func (f *failWriter) Close() error              { f.closed = true; return nil }

func TestWriterWriteError(t *testing.T) {
	fw := &failWriter{}
	w := eve.New(fw, 0, quiet)
	r := udpRecord()
	w.Flow(&r)
	err := w.Close()
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("Close = %v, want the write error", err)
	}
	if !fw.closed {
		t.Error("Close did not close the underlying writer")
	}
}

// TestBackgroundRecordsWait: records from housekeeping (timeouts, the flush at stop)
// wait for room in a full queue instead of being dropped.
func TestBackgroundRecordsWait(t *testing.T) {
	pr, pw := io.Pipe()
	w := eve.New(pw, 1, nil)
	const n = 5000 // more than the writer's 256 KiB buffer holds, so it blocks on the pipe
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range n {
			r := flow.Record{ID: uint64(i + 1), Proto: 6, Background: true}
			w.Flow(&r)
		}
	}()
	// Nothing is read: the sender must end up blocked on the full queue, not dropping.
	goroutines.WaitBlocked(t, "chan send", "eve_test.TestBackgroundRecordsWait")
	if d := w.Dropped(); d != 0 {
		t.Fatalf("%d background records dropped", d)
	}
	lines := make(chan int)
	go func() {
		sc := bufio.NewScanner(pr)
		k := 0
		for sc.Scan() {
			k++
		}
		lines <- k
	}()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("background sender still blocked with a reader")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if k := <-lines; k != n || w.Dropped() != 0 {
		t.Errorf("%d lines written, %d dropped; want %d and 0", k, w.Dropped(), n)
	}
	r := flow.Record{ID: 1}
	w.Flow(&r) // after Close: counted, no panic
	if w.Dropped() != 1 {
		t.Errorf("a record after Close was not counted as dropped")
	}
}

// TestAppendFlowRule: weir.rule names the rule that decided the flow, by its name
// or its index, and is absent when the default action did.
func TestAppendFlowRule(t *testing.T) {
	names := []string{"block-telnet", "", "allow \"web\""}
	for _, tc := range []struct {
		rule  int
		names []string
		want  any
	}{
		{policy.NoRule, names, nil},
		{0, names, "block-telnet"},
		{1, names, "rules[1]"},
		{2, names, `allow "web"`},
		{3, names, "rules[3]"}, // past the names given
		{0, nil, "rules[0]"},
	} {
		r := tcpRecord()
		r.Rule = tc.rule
		w := obj(t, decode(t, eve.AppendFlowRules(nil, &r, nil, tc.names)), "weir")
		if got, ok := w["rule"]; got != tc.want || ok != (tc.want != nil) {
			t.Errorf("rule %d: weir.rule = %v (present %v), want %v", tc.rule, got, ok, tc.want)
		}
	}
	r := tcpRecord()
	r.Rule = 1
	buf := make([]byte, 0, 4096)
	if a := testing.AllocsPerRun(100, func() { buf = eve.AppendFlowRules(buf[:0], &r, nil, names) }); a != 0 {
		t.Errorf("AppendFlowRules: %v allocations, want 0", a)
	}
}

// TestWriterRuleNames: the writer names rules as SetRuleNames says.
func TestWriterRuleNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eve.json")
	w, err := eve.Open(path, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.SetRuleNames([]string{"web"})
	r := tcpRecord()
	r.Rule = 0
	r.Background = true
	w.Flow(&r)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"rule":"web"`) {
		t.Errorf("EVE = %s, want weir.rule \"web\"", b)
	}
}

// alertedRecord is a TCP flow that raised 3 alerts.
func alertedRecord() flow.Record {
	r := tcpRecord()
	r.Alerts = 3
	return r
}
