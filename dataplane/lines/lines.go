// Package lines is the writer behind weir's text logs (EVE, flow logs). The
// dataplane queues values without ever waiting on the disk; one goroutine formats
// them into lines, buffers them and flushes at least once a second. What a full
// queue cannot take is counted, never silently lost.
package lines

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Format appends the lines (each ending in '\n') that v makes to b, and says how
// many.
type Format[T any] func(b []byte, v *T) ([]byte, int)

// Config says what a Writer writes and where.
type Config[T any] struct {
	Out    io.Writer
	Closer io.Closer // closed by Close when not nil
	Queue  int       // values the queue holds
	Prefix string    // written first (a header), or ""
	Format Format[T]
	// Classes is how many classes of values the counters keep apart (e.g. EVE event
	// types); Class says which class v is, in [0, Classes). Without Class, every value
	// is class 0.
	Classes int
	Class   func(v *T) int
	What    string       // for the log: "eve", "flow log"
	Log     *slog.Logger // nil means slog.Default()
	// Reopen, when not nil, opens the file again at its path (after logrotate
	// renamed it): the new output, its closer (nil for none) and what to write
	// first in it (a header, or ""). Writer.Reopen calls it on the writer's own
	// goroutine, between two values.
	Reopen func() (io.Writer, io.Closer, string, error)
}

// counts are the lines of one class. Packet workers add to dropped while the writer
// adds to written: each has a cache line of its own.
type counts struct {
	written atomic.Uint64
	_       [56]byte
	dropped atomic.Uint64
	_       [56]byte
}

// Writer writes the lines of queued values of type T.
type Writer[T any] struct {
	q         chan T
	bw        *bufio.Writer
	closer    io.Closer
	format    Format[T]
	class     func(*T) int
	log       *slog.Logger
	what      string
	counts    []counts
	reopen    func() (io.Writer, io.Closer, string, error)
	reopenReq chan chan error

	mu     sync.RWMutex // Put holds it shared, Close exclusively
	closed bool

	done chan struct{}
	once sync.Once
	err  error // first write error; owned by the writer goroutine until done
}

// New starts a writer of c.Format's lines to c.Out.
func New[T any](c Config[T]) *Writer[T] {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Class == nil || c.Classes < 1 {
		c.Class, c.Classes = nil, 1
	}
	w := &Writer[T]{
		q:         make(chan T, max(c.Queue, 0)),
		bw:        bufio.NewWriterSize(c.Out, 256<<10),
		closer:    c.Closer,
		format:    c.Format,
		class:     c.Class,
		log:       c.Log,
		what:      c.What,
		counts:    make([]counts, c.Classes),
		reopen:    c.Reopen,
		reopenReq: make(chan chan error),
		done:      make(chan struct{}),
	}
	w.bw.WriteString(c.Prefix) // a bufio.Writer reports write errors at Flush
	go w.loop()
	return w
}

func (w *Writer[T]) classOf(v *T) *counts {
	if w.class == nil {
		return &w.counts[0]
	}
	return &w.counts[w.class(v)]
}

// Put queues a copy of v, which makes weight lines, and says whether it did. With
// wait it waits for room in the queue (callers on housekeeping goroutines, replay);
// otherwise, when the queue is full, the lines are counted as dropped and Put
// returns at once: a packet worker never waits on the disk. After Close, they are
// counted as dropped.
func (w *Writer[T]) Put(v *T, weight uint64, wait bool) bool {
	return w.PutClass(v, 0, weight, wait)
}

// PutClass is Put for a value of the given class, which must be what Config.Class
// says of v. (The caller says it, rather than Put asking Class, so that v does not
// escape to the heap through the call.)
func (w *Writer[T]) PutClass(v *T, class int, weight uint64, wait bool) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	switch {
	case w.closed:
	case wait:
		w.q <- *v
		return true
	default:
		select {
		case w.q <- *v:
			return true
		default:
		}
	}
	w.counts[class].dropped.Add(weight)
	return false
}

// Written is how many lines were written (the prefix not counted).
func (w *Writer[T]) Written() uint64 {
	var n uint64
	for i := range w.counts {
		n += w.counts[i].written.Load()
	}
	return n
}

// Dropped is how many lines were lost to a full queue, or queued after Close.
func (w *Writer[T]) Dropped() uint64 {
	var n uint64
	for i := range w.counts {
		n += w.counts[i].dropped.Load()
	}
	return n
}

// WrittenClass is Written for the values of one class.
func (w *Writer[T]) WrittenClass(class int) uint64 {
	if class < 0 || class >= len(w.counts) {
		return 0
	}
	return w.counts[class].written.Load()
}

// DroppedClass is Dropped for the values of one class.
func (w *Writer[T]) DroppedClass(class int) uint64 {
	if class < 0 || class >= len(w.counts) {
		return 0
	}
	return w.counts[class].dropped.Load()
}

// Close writes what is queued, flushes, closes, and returns the first write error.
func (w *Writer[T]) Close() error {
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		close(w.q)
		w.mu.Unlock()
		<-w.done
		if w.closer != nil {
			if err := w.closer.Close(); err != nil && w.err == nil {
				w.err = err
			}
		}
	})
	return w.err
}

// ErrClosed is what Reopen returns after Close.
var ErrClosed = errors.New("writer closed")

// CanReopen reports whether the writer has a file to reopen (Config.Reopen).
func (w *Writer[T]) CanReopen() bool { return w.reopen != nil }

// Reopen makes the writer continue in a new file at the same path, the way
// logrotate expects after renaming the old one: what was queued before the call
// goes to the old file, which is flushed and closed, and everything after to the
// new one, so nothing is lost or written twice. The writer goroutine swaps the
// files between two values; Put never waits for it, and values queued meanwhile
// simply wait in the queue. When the new file cannot be opened the writer keeps
// writing to the old one and Reopen returns the error. Without Config.Reopen it
// does nothing.
func (w *Writer[T]) Reopen() error {
	if w.reopen == nil {
		return nil
	}
	reply := make(chan error, 1)
	select {
	case w.reopenReq <- reply:
	case <-w.done:
		return ErrClosed
	}
	return <-reply
}

// swap runs on the writer goroutine: it opens the new file first, so that a
// failure leaves the old one in use.
func (w *Writer[T]) swap() error {
	out, closer, prefix, err := w.reopen()
	if err != nil {
		return err
	}
	w.flush()
	if w.closer != nil {
		if err := w.closer.Close(); err != nil {
			w.fail(err)
		}
	}
	// A new file is a fresh start: a write error of the old one is forgotten.
	w.err = nil
	w.closer = closer
	w.bw.Reset(out)
	w.bw.WriteString(prefix)
	return nil
}

func (w *Writer[T]) loop() {
	defer close(w.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	line := make([]byte, 0, 1024)
	v := new(T) // one for all values: format and class keep no pointer to it
	var ok bool
	for {
		select {
		case *v, ok = <-w.q:
			if !ok {
				w.flush()
				return
			}
			line = w.write(line, v)
		case <-tick.C:
			w.flush()
		case reply := <-w.reopenReq:
			// What was queued before the request goes to the old file.
			for n := len(w.q); n > 0; n-- {
				*v = <-w.q
				line = w.write(line, v)
			}
			reply <- w.swap()
		}
	}
}

// write formats v into line (scratch space, returned for reuse) and buffers it.
func (w *Writer[T]) write(line []byte, v *T) []byte {
	line, n := w.format(line[:0], v)
	if _, err := w.bw.Write(line); err != nil {
		w.fail(err)
	} else {
		w.classOf(v).written.Add(uint64(n))
	}
	return line
}

func (w *Writer[T]) flush() {
	if err := w.bw.Flush(); err != nil {
		w.fail(err)
	}
}

func (w *Writer[T]) fail(err error) {
	if w.err == nil {
		w.err = err
		w.log.Error(w.what+" write failed", "err", err)
	}
}
