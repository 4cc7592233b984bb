// Package lines is the writer behind weir's text logs (EVE, flow logs). The
// dataplane queues values without ever waiting on the disk; one goroutine formats
// them into lines, buffers them and flushes at least once a second. What a full
// queue cannot take is counted, never silently lost.
package lines

import (
	"bufio"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Format appends the lines (each ending in '\n') that v makes to b, and says how
// many.
type Format[T any] func(b []byte, v *T) ([]byte, int)

// Writer writes the lines of queued values of type T.
type Writer[T any] struct {
	q       chan T
	bw      *bufio.Writer
	closer  io.Closer
	format  Format[T]
	log     *slog.Logger
	what    string // for the log: "eve", "flow log"
	written atomic.Uint64
	dropped atomic.Uint64

	mu     sync.RWMutex // Put holds it shared, Close exclusively
	closed bool

	done chan struct{}
	once sync.Once
	err  error // first write error; owned by the writer goroutine until done
}

// New starts a writer of format's lines to out, after prefix (a header, or ""),
// with room for queue values. Close closes closer when it is not nil.
func New[T any](out io.Writer, closer io.Closer, queue int, prefix string, format Format[T], what string, log *slog.Logger) *Writer[T] {
	if log == nil {
		log = slog.Default()
	}
	w := &Writer[T]{
		q:      make(chan T, queue),
		bw:     bufio.NewWriterSize(out, 256<<10),
		closer: closer,
		format: format,
		log:    log,
		what:   what,
		done:   make(chan struct{}),
	}
	w.bw.WriteString(prefix) // a bufio.Writer reports write errors at Flush
	go w.loop()
	return w
}

// Put queues a copy of v, which makes weight lines. With wait it waits for room in
// the queue (callers on housekeeping goroutines, replay); otherwise, when the queue
// is full, the lines are counted as dropped and Put returns at once. After Close,
// they are counted as dropped.
func (w *Writer[T]) Put(v *T, weight uint64, wait bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	switch {
	case w.closed:
		w.dropped.Add(weight)
	case wait:
		w.q <- *v
	default:
		select {
		case w.q <- *v:
		default:
			w.dropped.Add(weight)
		}
	}
}

// Written is how many lines were written (the prefix not counted).
func (w *Writer[T]) Written() uint64 { return w.written.Load() }

// Dropped is how many lines were lost to a full queue, or queued after Close.
func (w *Writer[T]) Dropped() uint64 { return w.dropped.Load() }

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

func (w *Writer[T]) loop() {
	defer close(w.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	line := make([]byte, 0, 1024)
	for {
		select {
		case v, ok := <-w.q:
			if !ok {
				w.flush()
				return
			}
			var n int
			line, n = w.format(line[:0], &v)
			if _, err := w.bw.Write(line); err != nil {
				w.fail(err)
			} else {
				w.written.Add(uint64(n))
			}
		case <-tick.C:
			w.flush()
		}
	}
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
