package pcapout

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var quiet = slog.New(slog.DiscardHandler)

// base is a capture time with every nanosecond digit set.
const base = int64(1763760648_123456789)

var nameRE = regexp.MustCompile(`^weir-\d{8}T\d{6}\.\d{6}Z\.pcap$`)

// frame is an Ethernet/IPv4/UDP frame of size bytes from UDP port 10000+seq.
func frame(t testing.TB, size, seq int) []byte {
	t.Helper()
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{2, 0, 0, 0, 0, 1},
		DstMAC:       net.HardwareAddr{2, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4,
	}
	ip := &layers.IPv4{
		Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2},
	}
	udp := &layers.UDP{SrcPort: layers.UDPPort(10000 + seq), DstPort: 9999}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, size-14-20-8)
	for i := range payload {
		payload[i] = byte(seq + i)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	if len(buf.Bytes()) != size {
		t.Fatalf("frame is %d bytes, want %d", len(buf.Bytes()), size)
	}
	return buf.Bytes()
}

type rec struct {
	ci   gopacket.CaptureInfo
	data []byte
}

// readPcap reads a file with pcapgo, checking its header.
func readPcap(t *testing.T, path string, snaplen uint32) []rec {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r.Resolution() != gopacket.TimestampResolutionNanosecond {
		t.Errorf("%s: resolution %v, want nanoseconds", path, r.Resolution())
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("%s: link type %v, want Ethernet", path, r.LinkType())
	}
	if r.Snaplen() != snaplen {
		t.Errorf("%s: snaplen %d, want %d", path, r.Snaplen(), snaplen)
	}
	var out []rec
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: record %d: %v", path, len(out), err)
		}
		out = append(out, rec{ci, data})
	}
}

type tsRec struct {
	len, capLen int
	epoch       string // seconds.nanoseconds
	srcPort     int
}

// tshark reads a file with tshark.
func tshark(t *testing.T, path string) []tsRec {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("no tshark")
	}
	cmd := exec.Command(bin, "-n", "-r", path, "-T", "fields",
		"-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.time_epoch", "-e", "udp.srcport")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v\n%s", path, err, stderr.String())
	}
	for _, bad := range []string{"damaged", "corrupt", "cut short", "isn't a capture file", "unknown"} {
		if strings.Contains(stderr.String(), bad) {
			t.Errorf("tshark -r %s: %s", path, stderr.String())
		}
	}
	var recs []tsRec
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 4 {
			t.Fatalf("tshark line %q", line)
		}
		var r tsRec
		r.len, _ = strconv.Atoi(f[0])
		r.capLen, _ = strconv.Atoi(f[1])
		r.epoch = f[2]
		r.srcPort, _ = strconv.Atoi(f[3])
		recs = append(recs, r)
	}
	return recs
}

func epoch(ts int64) string { return fmt.Sprintf("%d.%09d", ts/1e9, ts%1e9) }

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustNew(t *testing.T, cfg Config, h hooks) *Writer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	w, err := newWriter(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// checkNames checks that the files are weir's, in strictly increasing name order.
func checkNames(t *testing.T, files []string) {
	t.Helper()
	for i, p := range files {
		if !nameRE.MatchString(filepath.Base(p)) {
			t.Errorf("file name %q", filepath.Base(p))
		}
		if i > 0 && files[i-1] >= p {
			t.Errorf("files out of order: %q before %q", files[i-1], p)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet")
	w := mustNew(t, Config{Dir: dir, Slot: 300, Queue: 64}, defaultHooks())

	type pkt struct {
		data         []byte
		orig         int
		wantCap      int
		wantOrig     int
		ts           int64
		tag, srcPort int
	}
	var pkts []pkt
	for i, size := range []int{60, 100, 299, 300, 301, 1500} {
		f := frame(t, size, i)
		pkts = append(pkts, pkt{data: f, orig: len(f), wantCap: min(size, 300), wantOrig: size})
	}
	// Cut by the caller: orig_len is what the caller says.
	f := frame(t, 1400, len(pkts))
	pkts = append(pkts, pkt{data: f[:128], orig: len(f), wantCap: 128, wantOrig: 1400})
	// An origLen short of the data is raised to it.
	f = frame(t, 80, len(pkts))
	pkts = append(pkts, pkt{data: f, orig: 0, wantCap: 80, wantOrig: 80})
	for i := range pkts {
		p := &pkts[i]
		p.ts = base + int64(i)*1_000_001_001
		p.tag, p.srcPort = i%3, 10000+i
		if !w.Write(p.ts, p.data, p.orig, p.tag) {
			t.Fatalf("Write %d dropped", i)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != uint64(len(pkts)) || w.Dropped() != 0 {
		t.Errorf("Written %d Dropped %d, want %d and 0", w.Written(), w.Dropped(), len(pkts))
	}
	files := w.Files()
	if len(files) != 1 {
		t.Fatalf("files %q, want one", files)
	}
	checkNames(t, files)

	recs := readPcap(t, files[0], DefaultSnaplen)
	if len(recs) != len(pkts) {
		t.Fatalf("pcapgo read %d records, want %d", len(recs), len(pkts))
	}
	for i, r := range recs {
		p := pkts[i]
		if r.ci.Timestamp.UnixNano() != p.ts || r.ci.CaptureLength != p.wantCap || r.ci.Length != p.wantOrig {
			t.Errorf("record %d: ts %d cap %d len %d, want %d %d %d", i,
				r.ci.Timestamp.UnixNano(), r.ci.CaptureLength, r.ci.Length, p.ts, p.wantCap, p.wantOrig)
		}
		if !bytes.Equal(r.data, p.data[:p.wantCap]) {
			t.Errorf("record %d: data differs", i)
		}
	}

	ts := tshark(t, files[0])
	if len(ts) != len(pkts) {
		t.Fatalf("tshark read %d records, want %d", len(ts), len(pkts))
	}
	for i, r := range ts {
		p := pkts[i]
		want := tsRec{len: p.wantOrig, capLen: p.wantCap, epoch: epoch(p.ts), srcPort: p.srcPort}
		if r != want {
			t.Errorf("tshark record %d: %+v, want %+v", i, r, want)
		}
	}
}

func TestSnaplenCutsSlot(t *testing.T) {
	w := mustNew(t, Config{Dir: t.TempDir(), Snaplen: 64, Queue: 4}, defaultHooks())
	w.Write(base, frame(t, 200, 1), 200, 0)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readPcap(t, w.Files()[0], 64)
	if len(recs) != 1 || recs[0].ci.CaptureLength != 64 || recs[0].ci.Length != 200 {
		t.Fatalf("records %+v, want one of 64 bytes of 200", recs)
	}
	if r := tshark(t, w.Files()[0]); len(r) != 1 || r[0].capLen != 64 || r[0].len != 200 {
		t.Errorf("tshark: %+v", r)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, cfg := range []Config{
		{},
		{Dir: dir, Prefix: "a/b"},
		{Dir: dir, Prefix: ".."},
		{Dir: dir, MaxFileBytes: -1},
		{Dir: dir, Queue: -1},
		{Dir: dir, Snaplen: MaxSnaplen + 1},
	} {
		if w, err := New(cfg); err == nil || !strings.HasPrefix(err.Error(), "pcapout: ") {
			t.Errorf("New(%+v) = %v, want a pcapout: error", cfg, err)
			if w != nil {
				w.Close()
			}
		}
	}
	// A directory that cannot be made.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Dir: filepath.Join(file, "sub")}); err == nil {
		t.Error("New under a regular file succeeded")
	}
}

// writeSeq writes n frames of size bytes, ts base+i ms, port 10000+i.
func writeSeq(t *testing.T, w *Writer, n, size int) {
	t.Helper()
	for i := range n {
		if !w.Write(base+int64(i)*1e6, frame(t, size, i), size, 0) {
			t.Fatalf("Write %d dropped", i)
		}
	}
}

// readAll reads every file with pcapgo and tshark, and returns the UDP source
// ports in file order.
func readAll(t *testing.T, files []string) (ports []int) {
	t.Helper()
	for _, p := range files {
		recs := readPcap(t, p, DefaultSnaplen)
		ts := tshark(t, p)
		if len(ts) != len(recs) || len(recs) == 0 {
			t.Errorf("%s: tshark read %d records, pcapgo %d", p, len(ts), len(recs))
		}
		for _, r := range ts {
			ports = append(ports, r.srcPort)
		}
	}
	return ports
}

func TestRotateBySize(t *testing.T) {
	// 24 + 7*(16+500) = 3636 bytes: 7 records a file.
	w := mustNew(t, Config{Dir: t.TempDir(), MaxFileBytes: 4096, Queue: 64}, defaultHooks())
	writeSeq(t, w, 40, 500)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := w.Files()
	if len(files) != 6 {
		t.Fatalf("%d files, want 6: %q", len(files), files)
	}
	checkNames(t, files)
	for i, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(3636)
		if i == len(files)-1 {
			want = 24 + 5*516
		}
		if fi.Size() != want {
			t.Errorf("%s: %d bytes, want %d", p, fi.Size(), want)
		}
	}
	ports := readAll(t, files)
	for i, p := range ports {
		if p != 10000+i {
			t.Fatalf("packets out of order across files: %v", ports)
		}
	}
	if len(ports) != 40 {
		t.Errorf("%d packets in the files, want 40", len(ports))
	}
}

func TestRotateEveryPacket(t *testing.T) {
	// Files faster than the clock's microseconds still get distinct, sorted names.
	w := mustNew(t, Config{Dir: t.TempDir(), MaxFileBytes: 1, Queue: 64}, defaultHooks())
	writeSeq(t, w, 30, 60)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := w.Files()
	if len(files) != 30 {
		t.Fatalf("%d files, want 30", len(files))
	}
	checkNames(t, files)
	ents, _ := os.ReadDir(filepath.Dir(files[0]))
	if len(ents) != 30 {
		t.Errorf("%d files in the directory, want 30", len(ents))
	}
	for i, p := range files {
		if recs := readPcap(t, p, DefaultSnaplen); len(recs) != 1 || recs[0].ci.Timestamp.UnixNano() != base+int64(i)*1e6 {
			t.Errorf("%s: %d records, want packet %d alone", p, len(recs), i)
		}
	}
}

func TestRotateByAge(t *testing.T) {
	w := mustNew(t, Config{Dir: t.TempDir(), MaxFileAge: 100 * time.Millisecond, Queue: 64}, defaultHooks())
	if w.tick != 25*time.Millisecond {
		t.Errorf("ticker every %v, want 25ms", w.tick)
	}
	w.Write(base, frame(t, 100, 0), 100, 0)
	// No more packets: the ticker closes the file once it is 100ms old.
	waitFor(t, 2*time.Second, "the ticker to close the file", func() bool { return w.ageRot.Load() == 1 })
	if w.Written() != 1 {
		t.Errorf("Written %d after the rotation, want 1", w.Written())
	}
	files := w.Files()
	if len(files) != 1 {
		t.Fatalf("files %q, want one", files)
	}
	if recs := readPcap(t, files[0], DefaultSnaplen); len(recs) != 1 {
		t.Errorf("closed file holds %d records, want 1", len(recs))
	}
	// The next packet opens a new file.
	w.Write(base+1, frame(t, 100, 1), 100, 0)
	waitFor(t, 2*time.Second, "a second file", func() bool { return len(w.Files()) == 2 })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files = w.Files()
	checkNames(t, files)
	if ports := readAll(t, files); !slices.Equal(ports, []int{10000, 10001}) {
		t.Errorf("ports %v", ports)
	}
}

func TestMaxTotalBytes(t *testing.T) {
	dir := t.TempDir()
	old := []string{
		"weir-20200101T000000.000000Z.pcap",
		"weir-20200102T000000.000000Z.pcap",
		"weir-20200103T000000.000000Z.pcap",
		"weir-20200104T000000.000000Z.pcap",
	}
	others := []string{
		"other-20200101T000000.000000Z.pcap",
		"weir-x-20200101T000000.000000Z.pcap",
		"weir-notes.txt",
		"weir-20200101T000000.000000Z.pcap.gz",
	}
	for _, n := range append(slices.Clone(old), others...) {
		if err := os.WriteFile(filepath.Join(dir, n), make([]byte, 3000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// 12000 bytes are there: the oldest goes at once.
	w := mustNew(t, Config{Dir: dir, MaxFileBytes: 4096, MaxTotalBytes: 10000, Queue: 64}, defaultHooks())
	if got, want := w.Files(), paths(dir, old[1:]); !slices.Equal(got, want) {
		t.Errorf("files at start %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, old[0])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("oldest file not deleted at start: %v", err)
	}

	writeSeq(t, w, 40, 500)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := w.Files()
	checkNames(t, files)
	var total int64
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	if total > 10000 {
		t.Errorf("files take %d bytes, over 10000", total)
	}
	// Two full files of 3636 and the last of 2604 fit; the old ones went first.
	if len(files) != 3 {
		t.Errorf("%d files kept, want 3: %q", len(files), files)
	}
	ports := readAll(t, files)
	for i, p := range ports {
		if want := 10000 + 40 - len(ports) + i; p != want {
			t.Fatalf("kept packets are not the newest: %v", ports)
		}
	}
	// The directory holds what Files says, and other prefixes are left alone.
	var onDisk []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if nameRE.MatchString(e.Name()) {
			onDisk = append(onDisk, filepath.Join(dir, e.Name()))
		}
	}
	if !slices.Equal(onDisk, files) {
		t.Errorf("on disk %q, Files %q", onDisk, files)
	}
	for _, n := range others {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("file of another prefix: %v", err)
		}
	}
}

func paths(dir string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(dir, n)
	}
	return out
}

func TestNamesSortAfterExisting(t *testing.T) {
	// A file from a clock ahead of ours: new files still sort after it.
	dir := t.TempDir()
	future := "weir-20991231T235959.999999Z.pcap"
	if err := os.WriteFile(filepath.Join(dir, future), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := mustNew(t, Config{Dir: dir, MaxFileBytes: 1, Queue: 8}, defaultHooks())
	writeSeq(t, w, 3, 60)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := w.Files()
	if len(files) != 4 || filepath.Base(files[0]) != future {
		t.Fatalf("files %q", files)
	}
	checkNames(t, files)
	if got := filepath.Base(files[1]); got != "weir-21000101T000000.000000Z.pcap" {
		t.Errorf("first new file %q", got)
	}
}

func TestQueueFull(t *testing.T) {
	// The writer goroutine blocks creating its first file: the queue fills.
	release := make(chan struct{})
	h := defaultHooks()
	create := h.create
	h.create = func(p string) (file, error) {
		<-release
		return create(p)
	}
	w := mustNew(t, Config{Dir: t.TempDir(), Queue: 4, Slot: 128}, h)
	f := frame(t, 200, 0)
	tags := []int{0, 1, 2, 1000}
	ok := make([]bool, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range ok {
			ok[i] = w.Write(base+int64(i), f, len(f), tags[i%4])
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("Write blocked on a stalled writer")
	}
	for i, o := range ok {
		if o != (i < 4) {
			t.Fatalf("Write %d = %v; want the first 4 (the queue) accepted, the rest dropped", i, o)
		}
	}
	if w.Dropped() != 96 {
		t.Errorf("Dropped %d, want 96", w.Dropped())
	}
	for _, tag := range tags[:3] {
		if got := w.DroppedByTag(tag); got != 24 {
			t.Errorf("DroppedByTag(%d) = %d, want 24", tag, got)
		}
	}
	for _, tag := range []int{3, 1000, -1, MaxTags} {
		if got := w.DroppedByTag(tag); got != 0 {
			t.Errorf("DroppedByTag(%d) = %d, want 0", tag, got)
		}
	}

	close(release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != 4 || w.Dropped() != 96 {
		t.Errorf("after Close: Written %d Dropped %d, want 4 and 96", w.Written(), w.Dropped())
	}
	recs := readPcap(t, w.Files()[0], DefaultSnaplen)
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	for i, r := range recs {
		if r.ci.Timestamp.UnixNano() != base+int64(i) || r.ci.CaptureLength != 128 || r.ci.Length != 200 {
			t.Errorf("record %d: %+v", i, r.ci)
		}
	}
	// After Close, Write drops.
	if w.Write(base, f, len(f), 1) || w.Dropped() != 97 || w.DroppedByTag(1) != 25 {
		t.Errorf("Write after Close: Dropped %d", w.Dropped())
	}
}

func TestCloseDrains(t *testing.T) {
	h := defaultHooks()
	create := h.create
	h.create = func(p string) (file, error) {
		time.Sleep(200 * time.Millisecond) // a slow disk
		return create(p)
	}
	const n = 2000
	w := mustNew(t, Config{Dir: t.TempDir(), Queue: n, Slot: 128}, h)
	writeSeq(t, w, n, 100)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != n || w.Dropped() != 0 {
		t.Errorf("Written %d Dropped %d, want %d and 0", w.Written(), w.Dropped(), n)
	}
	if ports := readAll(t, w.Files()); len(ports) != n {
		t.Errorf("%d packets in the file, want %d", len(ports), n)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestFlushedWithinASecond(t *testing.T) {
	w := mustNew(t, Config{Dir: t.TempDir(), Queue: 16}, defaultHooks())
	writeSeq(t, w, 3, 100)
	waitFor(t, 2500*time.Millisecond, "the packets in the file", func() bool {
		files := w.Files()
		if len(files) != 1 {
			return false
		}
		data, err := os.ReadFile(files[0])
		return err == nil && len(data) == 24+3*116
	})
	if w.Written() != 3 {
		t.Errorf("Written %d once flushed, want 3", w.Written())
	}
	if ts := tshark(t, w.Files()[0]); len(ts) != 3 {
		t.Errorf("tshark read %d records of an open file, want 3", len(ts))
	}
}

// faultyFile fails writes (half done) while its disk is full.
type faultyFile struct {
	*os.File
	full *atomic.Bool
}

func (f faultyFile) Write(p []byte) (int, error) {
	if f.full.Load() {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, syscall.ENOSPC
	}
	return f.File.Write(p)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDiskFull(t *testing.T) {
	var full atomic.Bool
	h := defaultHooks()
	h.retry = 50 * time.Millisecond
	h.tick = 10 * time.Millisecond
	h.create = func(p string) (file, error) {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			return nil, err
		}
		return faultyFile{f, &full}, nil
	}
	var logs syncBuf
	log := slog.New(slog.NewTextHandler(&logs, nil))
	w := mustNew(t, Config{Dir: t.TempDir(), Queue: 64, Logger: log}, h)
	f := frame(t, 100, 0)
	write := func(n, tag int) {
		for range n {
			if !w.Write(base, f, len(f), tag) {
				t.Fatal("Write dropped")
			}
		}
	}

	write(5, 1)
	waitFor(t, time.Second, "5 written", func() bool { return w.Written() == 5 })

	full.Store(true)
	write(10, 2) // buffered in the first file, lost when flushed
	waitFor(t, time.Second, "10 dropped", func() bool { return w.Dropped() == 10 })
	time.Sleep(60 * time.Millisecond)
	write(10, 3) // a new file whose header cannot be written, or none
	waitFor(t, time.Second, "20 dropped", func() bool { return w.Dropped() == 20 })

	full.Store(false)
	time.Sleep(60 * time.Millisecond)
	write(5, 4)
	waitFor(t, time.Second, "10 written", func() bool { return w.Written() == 10 })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	if w.DroppedByTag(1) != 0 || w.DroppedByTag(2) != 10 || w.DroppedByTag(3) != 10 || w.DroppedByTag(4) != 0 {
		t.Errorf("DroppedByTag 1..4: %d %d %d %d, want 0 10 10 0",
			w.DroppedByTag(1), w.DroppedByTag(2), w.DroppedByTag(3), w.DroppedByTag(4))
	}
	if w.Errors() < 2 {
		t.Errorf("Errors %d, want at least 2", w.Errors())
	}
	if n := strings.Count(logs.String(), "pcap output failed"); n != 1 {
		t.Errorf("%d errors logged within a minute, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "no space left on device") {
		t.Errorf("log lacks the error:\n%s", logs.String())
	}
	// The file that failed was cut back to its whole records; the one whose header
	// failed is gone.
	files := w.Files()
	if len(files) != 2 {
		t.Errorf("files %q, want 2", files)
	}
	ents, _ := os.ReadDir(filepath.Dir(files[0]))
	if len(ents) != len(files) {
		t.Errorf("%d files on disk, Files says %d", len(ents), len(files))
	}
	if ports := readAll(t, files); len(ports) != 10 {
		t.Errorf("%d packets in the files, want 10", len(ports))
	}
}

func TestWriteAllocs(t *testing.T) {
	w := mustNew(t, Config{Dir: t.TempDir(), Queue: 1024, Slot: 256}, defaultHooks())
	f := frame(t, 1500, 0)
	// The first packet opens the file, which allocates in the writer goroutine.
	w.Write(base, f, len(f), 0)
	waitFor(t, time.Second, "the file", func() bool { return len(w.Files()) == 1 })
	allocs := testing.AllocsPerRun(1000, func() {
		w.Write(base, f, len(f), 7)
	})
	if allocs != 0 {
		t.Errorf("Write allocates %v times", allocs)
	}
}

// BenchmarkWrite is the sustained rate: Write retries while the queue is full, so
// the writer goroutine's encoding and file writes are in the time per packet.
func BenchmarkWrite(b *testing.B) {
	w, err := New(Config{Dir: b.TempDir(), MaxFileBytes: 16 << 20, MaxTotalBytes: 64 << 20, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	f := frame(b, 1500, 0)
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for !w.Write(base+int64(i), f, len(f), 1) {
			runtime.Gosched()
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if w.Written() != uint64(b.N) {
		b.Fatalf("Written %d of %d", w.Written(), b.N)
	}
}

// BenchmarkWriteQueueFull is the cost of a drop.
func BenchmarkWriteQueueFull(b *testing.B) {
	release := make(chan struct{})
	h := defaultHooks()
	create := h.create
	h.create = func(p string) (file, error) {
		<-release
		return create(p)
	}
	w, err := newWriter(Config{Dir: b.TempDir(), Queue: 1, Logger: quiet}, h)
	if err != nil {
		b.Fatal(err)
	}
	f := frame(b, 1500, 0)
	w.Write(base, f, len(f), 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		w.Write(base+int64(i), f, len(f), 1)
	}
	b.StopTimer()
	if w.Dropped() != uint64(b.N) {
		b.Fatalf("Dropped %d of %d", w.Dropped(), b.N)
	}
	close(release)
	w.Close()
}
