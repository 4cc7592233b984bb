// Package pcapout writes captured Ethernet frames to rotating classic pcap files
// (nanosecond timestamps, link type Ethernet) that Wireshark and tshark open.
//
// The dataplane queues packets with Write, which never blocks and never allocates:
// it copies the frame into a preallocated slot and hands the slot to one writer
// goroutine. A full queue drops the packet and counts it, per tag (mirror session).
// Several workers share the queue, so records may reach it out of timestamp order;
// with a ReorderWindow the writer holds them that long and writes them sorted.
// The writer goroutine appends to PREFIX-YYYYMMDDTHHMMSS.ffffffZ.pcap in Dir,
// rotates by size and age, and deletes the oldest files of its prefix when they
// take more than MaxTotalBytes. Disk errors are counted, logged at most once a
// minute, and cost packets, never the process.
package pcapout

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// MaxTags is how many tags (mirror sessions) have their own drop counter: 0..MaxTags-1.
const MaxTags = 256

// Defaults for the zero values of Config.
const (
	DefaultPrefix        = "weir"
	DefaultMaxFileBytes  = 100 << 20
	DefaultMaxFileAge    = time.Hour
	DefaultMaxTotalBytes = 1 << 30
	DefaultSnaplen       = 65535
	DefaultQueue         = 8192
	DefaultSlot          = 9216
)

// MaxSnaplen is the largest snaplen accepted; Wireshark refuses larger Ethernet records.
const MaxSnaplen = 262144

const (
	fileHeaderLen = 24 // pcap file header
	recHeaderLen  = 16 // pcap record header
	timeLayout    = "20060102T150405.000000"
	timeLen       = len(timeLayout) + 1 // with the trailing Z
	suffix        = ".pcap"
	logEvery      = time.Minute
	minBufSize    = 256 << 10
)

// Config configures a Writer. Zero values take the defaults.
type Config struct {
	Dir           string        // directory of the files; created if missing
	Prefix        string        // file name prefix, default "weir"
	MaxFileBytes  int64         // rotate when a file would exceed this (default 100 MiB)
	MaxFileAge    time.Duration // rotate when the file is older than this (default 1 h)
	MaxTotalBytes int64         // delete the oldest files of the prefix beyond this (default 1 GiB)
	Snaplen       int           // pcap header snaplen (default 65535, at most MaxSnaplen)
	Queue         int           // queued packets (default 8192)
	Slot          int           // bytes kept per packet (default 9216, at most Snaplen)
	// ReorderWindow, when > 0, holds records up to this long so that those that
	// reach the queue out of order (several workers write to it) leave in
	// timestamp order: a record is written once it has waited the window (or
	// when the held records fill half the queue), oldest timestamp first. A
	// record older than the one written before it is still written, and counted
	// (Late). 0 writes records in queue order.
	ReorderWindow time.Duration
	Logger        *slog.Logger // default slog.Default()
}

// file is what the writer needs of an *os.File; tests wrap it.
type file interface {
	io.WriteCloser
	Truncate(size int64) error
}

// hooks are the parts tests replace.
type hooks struct {
	create func(path string) (file, error) // create a new file, failing if it exists
	retry  time.Duration                   // after a disk error, wait this long before a new file
	tick   time.Duration                   // if not 0, the flush and age ticker period
}

func defaultHooks() hooks {
	return hooks{
		create: func(path string) (file, error) {
			return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		},
		retry: time.Second,
	}
}

type slotMeta struct {
	ts   int64
	orig int
	tag  int
	n    int32
}

type fileEntry struct {
	name string
	size int64 // bytes on disk; unused for the file being written
}

// Writer writes queued packets to rotating pcap files. Write, Dropped,
// DroppedByTag, Written, Late, Errors and Files are safe for concurrent use.
type Writer struct {
	cfg  Config
	log  *slog.Logger
	h    hooks
	tick time.Duration

	slot int    // bytes per slot
	buf  []byte // Queue slots of slot bytes
	meta []slotMeta
	free chan int32 // slots Write may fill
	q    chan int32 // filled slots, in order

	closed   atomic.Bool
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	closeErr error

	written   atomic.Uint64
	dropped   atomic.Uint64
	dropByTag [MaxTags]atomic.Uint64
	errs      atomic.Uint64
	ageRot    atomic.Uint64 // files closed by the ticker for their age (tests)
	late      atomic.Uint64

	mu    sync.Mutex
	files []fileEntry // oldest first; the last is being written when f != nil

	// Owned by the writer goroutine.
	f          file
	bw         *bufio.Writer
	pw         *pcapgo.Writer
	opened     time.Time // when f was created (monotonic)
	size       int64     // bytes of f, buffered ones included
	good       int64     // bytes of f known written
	filePkts   int       // records in f
	total      int64     // bytes of the files other than f
	pendN      uint64    // records buffered, not yet flushed
	pendTag    [MaxTags]uint32
	lastName   time.Time // time in the newest file name
	retryAt    time.Time
	lastLog    time.Time
	suppressed int
	held       reorder // records waiting for their turn (ReorderWindow > 0)
}

// New checks cfg, creates Dir if missing, deletes the oldest existing files of the
// prefix if they exceed MaxTotalBytes, and starts the writer goroutine. The first
// file is created when the first packet is written.
func New(cfg Config) (*Writer, error) {
	return newWriter(cfg, defaultHooks())
}

func newWriter(cfg Config, h hooks) (*Writer, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("pcapout: %w", err)
	}
	slot := min(cfg.Slot, cfg.Snaplen)
	w := &Writer{
		cfg:  cfg,
		log:  cfg.Logger,
		h:    h,
		tick: min(time.Second, max(cfg.MaxFileAge/4, 10*time.Millisecond)),
		slot: slot,
		buf:  make([]byte, cfg.Queue*slot),
		meta: make([]slotMeta, cfg.Queue),
		free: make(chan int32, cfg.Queue),
		q:    make(chan int32, cfg.Queue),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if h.tick > 0 {
		w.tick = h.tick
	}
	for i := range cfg.Queue {
		w.free <- int32(i)
	}
	if cfg.ReorderWindow > 0 {
		w.held = newReorder(cfg.Queue, int64(cfg.ReorderWindow))
	}
	w.bw = bufio.NewWriterSize(io.Discard, max(minBufSize, recHeaderLen+slot))
	w.pw = pcapgo.NewWriterNanos(w.bw)
	if err := w.scan(); err != nil {
		return nil, err
	}
	w.prune()
	go w.loop()
	return w, nil
}

func (c *Config) fill() error {
	if c.Dir == "" {
		return errors.New("pcapout: no directory")
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(c.Prefix, `/\`) || c.Prefix == "." || c.Prefix == ".." {
		return fmt.Errorf("pcapout: bad file prefix %q", c.Prefix)
	}
	if c.MaxFileBytes < 0 || c.MaxFileAge < 0 || c.MaxTotalBytes < 0 || c.Snaplen < 0 ||
		c.Queue < 0 || c.Slot < 0 || c.ReorderWindow < 0 {
		return errors.New("pcapout: negative size, age or count")
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = DefaultMaxFileBytes
	}
	if c.MaxFileAge == 0 {
		c.MaxFileAge = DefaultMaxFileAge
	}
	if c.MaxTotalBytes == 0 {
		c.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if c.Snaplen == 0 {
		c.Snaplen = DefaultSnaplen
	}
	if c.Snaplen > MaxSnaplen {
		return fmt.Errorf("pcapout: snaplen %d over %d", c.Snaplen, MaxSnaplen)
	}
	if c.Queue == 0 {
		c.Queue = DefaultQueue
	}
	if c.Queue > 1<<24 {
		return fmt.Errorf("pcapout: queue of %d packets, over %d", c.Queue, 1<<24)
	}
	if c.Slot == 0 {
		c.Slot = DefaultSlot
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Write queues one packet: an Ethernet frame, or its first bytes. ts is the capture
// time in unix nanoseconds, origLen the frame's length before any truncation (if
// less than len(data), len(data) is used), tag a small integer whose drops
// DroppedByTag counts. data is copied, cut to the slot size; Write never blocks or
// allocates. It returns false, counting a drop, if the queue is full or the Writer
// is closed.
func (w *Writer) Write(ts int64, data []byte, origLen int, tag int) bool {
	return w.write(ts, data, origLen, tag, false)
}

// WriteWait is Write that waits for a free slot instead of dropping: for replaying
// captures, where nothing is live and nothing should be lost. It returns false only
// after Close.
func (w *Writer) WriteWait(ts int64, data []byte, origLen int, tag int) bool {
	return w.write(ts, data, origLen, tag, true)
}

func (w *Writer) write(ts int64, data []byte, origLen int, tag int, wait bool) bool {
	if w.closed.Load() {
		w.drop(tag, 1)
		return false
	}
	var i int32
	if wait {
		i = <-w.free
	} else {
		select {
		case i = <-w.free:
		default:
			w.drop(tag, 1)
			return false
		}
	}
	off := int(i) * w.slot
	n := copy(w.buf[off:off+w.slot], data)
	m := &w.meta[i]
	m.ts, m.orig, m.tag, m.n = ts, max(origLen, len(data)), tag, int32(n)
	w.q <- i // never blocks: q holds every slot
	return true
}

func (w *Writer) drop(tag int, n uint64) {
	w.dropped.Add(n)
	if uint(tag) < MaxTags {
		w.dropByTag[tag].Add(n)
	}
}

// Dropped is how many packets were lost: queue full, Writer closed, or the disk
// failing them.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// DroppedByTag is how many packets of tag were lost; 0 for tags outside 0..MaxTags-1.
func (w *Writer) DroppedByTag(tag int) uint64 {
	if uint(tag) >= MaxTags {
		return 0
	}
	return w.dropByTag[tag].Load()
}

// Written is how many packets reached a file: it counts them when they are
// flushed, which is at least once a second, on rotation and on Close.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Late is how many records were written after a record with a later timestamp:
// they reached the writer more than ReorderWindow late.
func (w *Writer) Late() uint64 { return w.late.Load() }

// Errors is how many file operations (create, write, close, delete) failed.
func (w *Writer) Errors() uint64 { return w.errs.Load() }

// Files lists the files of the prefix in Dir, oldest first, the one being written
// last, as paths. It includes files left by earlier runs.
func (w *Writer) Files() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, len(w.files))
	for i, e := range w.files {
		out[i] = filepath.Join(w.cfg.Dir, e.name)
	}
	return out
}

// Close writes what is queued, flushes and closes the file, and returns the error
// of that final flush and close. Later Writes are dropped; a Write concurrent with
// Close may be lost uncounted.
func (w *Writer) Close() error {
	w.once.Do(func() {
		w.closed.Store(true)
		close(w.stop)
		<-w.done
	})
	return w.closeErr
}

func (w *Writer) loop() {
	defer close(w.done)
	tick := time.NewTicker(w.tick)
	defer tick.Stop()
	// Wakes the writer when the oldest held record has waited the window.
	hold := time.NewTimer(time.Hour)
	hold.Stop()
	start := time.Now()
	clock := func() int64 { return int64(time.Since(start)) }
	for {
		select {
		case i := <-w.q:
			w.take(i, clock())
			for range len(w.q) { // what else is queued, before deciding what is due
				w.take(<-w.q, clock())
			}
			w.release(clock(), hold)
		case <-hold.C:
			w.release(clock(), hold)
		case <-tick.C:
			if w.f != nil && time.Since(w.opened) >= w.cfg.MaxFileAge {
				w.closeFile()
				w.ageRot.Add(1)
			} else {
				w.flush()
			}
		case <-w.stop:
			hold.Stop()
		drain:
			for {
				select {
				case i := <-w.q:
					w.take(i, clock())
				default:
					break drain
				}
			}
			for w.held.len() > 0 {
				w.emit(w.held.pop())
			}
			w.closeErr = w.closeFile()
			return
		}
	}
}

// take receives slot i from the queue: written at once without a reorder window,
// else held.
func (w *Writer) take(i int32, now int64) {
	if w.held.cap() == 0 {
		w.record(i)
		return
	}
	if w.held.len() == w.held.cap() {
		w.emit(w.held.pop()) // cannot happen: held records keep their slots, Queue of them
	}
	w.held.push(i, w.meta[i].ts, now)
}

// release writes the held records that are due, oldest timestamp first, and sets
// the timer for the next one.
func (w *Writer) release(now int64, hold *time.Timer) {
	if w.held.cap() == 0 {
		return
	}
	for w.held.len() > 0 {
		// Hold at most half the slots, so that writers keep finding free ones.
		if !w.held.due(now) && w.held.len() <= w.held.cap()/2 {
			break
		}
		w.emit(w.held.pop())
	}
	if w.held.len() > 0 {
		hold.Reset(time.Duration(w.held.wait(now)))
	}
}

// emit writes held slot i, counting it late if the record written just before it
// has a later timestamp: each step back in the file counts once, so a clock
// stepped back counts one, not every record after it.
func (w *Writer) emit(i int32) {
	ts := w.meta[i].ts
	if w.held.wrote && ts < w.held.last {
		w.late.Add(1)
	}
	w.held.last, w.held.wrote = ts, true
	w.record(i)
}

// record writes slot i and frees it.
func (w *Writer) record(i int32) {
	m := w.meta[i]
	off := int(i) * w.slot
	data := w.buf[off : off+int(m.n)]
	defer func() { w.free <- i }()

	now := time.Now()
	recLen := int64(recHeaderLen + len(data))
	if w.f != nil && w.filePkts > 0 &&
		(now.Sub(w.opened) >= w.cfg.MaxFileAge || w.size+recLen > w.cfg.MaxFileBytes) {
		w.closeFile()
	}
	if w.f == nil && !w.open(now) {
		w.drop(m.tag, 1)
		return
	}
	if w.bw.Available() < int(recLen) && w.flush() != nil {
		w.drop(m.tag, 1)
		return
	}
	// The buffer has room: these writes cannot fail, nor reach the file.
	ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, m.ts), CaptureLength: len(data), Length: m.orig}
	if err := w.pw.WritePacket(ci, data); err != nil {
		w.fail("write", w.cur(), err)
		w.drop(m.tag, 1)
		return
	}
	w.size += recLen
	w.filePkts++
	w.pendN++
	if uint(m.tag) < MaxTags {
		w.pendTag[m.tag]++
	}
	if w.total+w.size > w.cfg.MaxTotalBytes {
		w.prune()
	}
}

// open creates the next file and writes its header.
func (w *Writer) open(now time.Time) bool {
	if now.Before(w.retryAt) {
		return false
	}
	t := now.UTC().Round(0).Truncate(time.Microsecond)
	for attempt := 0; ; attempt++ {
		if !t.After(w.lastName) {
			t = w.lastName.Add(time.Microsecond)
		}
		name := w.name(t)
		f, err := w.h.create(filepath.Join(w.cfg.Dir, name))
		if errors.Is(err, fs.ErrExist) && attempt < 100 {
			w.lastName = t
			continue
		}
		if err != nil {
			w.fail("create", name, err)
			w.retryAt = now.Add(w.h.retry)
			return false
		}
		w.lastName = t
		w.f = f
		w.opened = now
		w.size, w.good, w.filePkts = 0, 0, 0
		w.mu.Lock()
		w.files = append(w.files, fileEntry{name: name})
		w.mu.Unlock()
		w.bw.Reset(f)
		_ = w.pw.WriteFileHeader(uint32(w.cfg.Snaplen), layers.LinkTypeEthernet) // buffered
		w.size = fileHeaderLen
		w.log.Debug("pcap file opened", "file", name)
		return w.flush() == nil
	}
}

// flush writes the buffer to the file and counts its packets as written. On an
// error it counts them as dropped and gives the file up.
func (w *Writer) flush() error {
	if w.f == nil || w.bw.Buffered() == 0 {
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		w.fail("write", w.cur(), err)
		w.dropped.Add(w.pendN)
		for tag, n := range w.pendTag {
			if n > 0 {
				w.dropByTag[tag].Add(uint64(n))
			}
		}
		w.clearPending()
		w.abandon()
		return err
	}
	w.written.Add(w.pendN)
	w.clearPending()
	w.good = w.size
	return nil
}

func (w *Writer) clearPending() {
	if w.pendN > 0 {
		w.pendN = 0
		clear(w.pendTag[:])
	}
}

// abandon closes the file after a write error, cut back to its last whole record
// (removed if it holds none), and waits before trying a new one.
func (w *Writer) abandon() {
	name := w.cur()
	_ = w.f.Truncate(w.good)
	_ = w.f.Close()
	w.f = nil
	w.retryAt = time.Now().Add(w.h.retry)
	if w.good > fileHeaderLen {
		w.finish(w.good)
		return
	}
	w.size = 0
	w.mu.Lock()
	w.files = w.files[:len(w.files)-1]
	w.mu.Unlock()
	if err := os.Remove(filepath.Join(w.cfg.Dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.fail("remove", name, err)
	}
}

// closeFile flushes and closes the current file, if any.
func (w *Writer) closeFile() error {
	if w.f == nil {
		return nil
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("pcapout: %w", err)
	}
	name, pkts, size := w.cur(), w.filePkts, w.size
	err := w.f.Close()
	w.f = nil
	w.finish(size)
	if err != nil {
		w.fail("close", name, err)
		return fmt.Errorf("pcapout: %w", err)
	}
	w.log.Debug("pcap file closed", "file", name, "packets", pkts, "bytes", size)
	return nil
}

// finish records the size of the file just closed.
func (w *Writer) finish(size int64) {
	w.mu.Lock()
	w.files[len(w.files)-1].size = size
	w.mu.Unlock()
	w.total += size
	w.size = 0
}

// cur is the name of the file being written.
func (w *Writer) cur() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.files[len(w.files)-1].name
}

// prune deletes the oldest files, never the one being written, while the files
// take more than MaxTotalBytes.
func (w *Writer) prune() {
	w.mu.Lock()
	defer w.mu.Unlock()
	keep := 0
	if w.f != nil {
		keep = 1
	}
	for len(w.files) > keep && w.total+w.size > w.cfg.MaxTotalBytes {
		e := w.files[0]
		w.files = slices.Delete(w.files, 0, 1)
		w.total -= e.size
		// A file that cannot be deleted is forgotten, so as not to retry it for
		// every packet.
		if err := os.Remove(filepath.Join(w.cfg.Dir, e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.fail("remove", e.name, err)
		} else {
			w.log.Debug("pcap file deleted", "file", e.name, "bytes", e.size)
		}
	}
}

// scan finds the files of the prefix that are in Dir already.
func (w *Writer) scan() error {
	ents, err := os.ReadDir(w.cfg.Dir)
	if err != nil {
		return fmt.Errorf("pcapout: %w", err)
	}
	for _, e := range ents { // sorted by name
		t, ok := w.parseName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		w.files = append(w.files, fileEntry{name: e.Name(), size: info.Size()})
		w.total += info.Size()
		// New names sort after the old ones even if the clock went back.
		if t.After(w.lastName) {
			w.lastName = t
		}
	}
	return nil
}

// name is the file name for a file created at t: it sorts by time.
func (w *Writer) name(t time.Time) string {
	return w.cfg.Prefix + "-" + t.UTC().Format(timeLayout) + "Z" + suffix
}

// parseName reports whether name is a file of the prefix, and its time.
func (w *Writer) parseName(name string) (time.Time, bool) {
	s, ok := strings.CutPrefix(name, w.cfg.Prefix+"-")
	if !ok || len(s) != timeLen+len(suffix) || !strings.HasSuffix(s, "Z"+suffix) {
		return time.Time{}, false
	}
	t, err := time.Parse(timeLayout, s[:timeLen-1])
	return t, err == nil
}

// fail counts an error and logs it, at most once per logEvery.
func (w *Writer) fail(op, name string, err error) {
	w.errs.Add(1)
	now := time.Now()
	if !w.lastLog.IsZero() && now.Sub(w.lastLog) < logEvery {
		w.suppressed++
		return
	}
	w.log.Error("pcap output failed", "op", op, "file", name, "err", err,
		"errors_not_logged", w.suppressed)
	w.lastLog, w.suppressed = now, 0
}
