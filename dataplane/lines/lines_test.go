package lines

import (
	"bytes"
	"io"
	"strconv"
	"testing"
	"time"
	"weir/internal/goroutines"
)

func twoLines(b []byte, v *int) ([]byte, int) {
	b = append(strconv.AppendInt(b, int64(*v), 10), '\n')
	return append(strconv.AppendInt(b, int64(-*v), 10), '\n'), 2
}

func TestWriter(t *testing.T) {
	var out bytes.Buffer
	w := New(Config[int]{Out: &out, Queue: 4, Prefix: "# header\n", Format: twoLines, What: "test"})
	for i := 1; i <= 3; i++ {
		w.Put(&i, 2, true)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "# header\n1\n-1\n2\n-2\n3\n-3\n"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
	if w.Written() != 6 || w.Dropped() != 0 {
		t.Errorf("written %d dropped %d", w.Written(), w.Dropped())
	}
	v := 9
	w.Put(&v, 2, true) // after Close: counted, neither written nor blocking
	if w.Dropped() != 2 {
		t.Errorf("dropped %d after a Put past Close, want 2", w.Dropped())
	}
}

// TestFullQueue: without wait, a full queue drops and counts at once; with wait,
// Put blocks until the writer makes room.
func TestFullQueue(t *testing.T) {
	pr, pw := io.Pipe()
	// Lines big enough that the writer's buffer fills and it blocks on the pipe.
	big := func(b []byte, _ *int) ([]byte, int) { return append(append(b, make([]byte, 64<<10)...), '\n'), 1 }
	w := New(Config[int]{Out: pw, Closer: pw, Queue: 1, Format: big, What: "test"})
	v := 1
	// Put until the queue is full: the writer blocks on the pipe after a few lines,
	// whenever it gets to run, and the queue then fills; a Put that could not
	// queue must say so and count its lines.
	queued := 0
	for w.Put(&v, 2, false) {
		if queued++; queued > 1000 {
			t.Fatal("the queue never filled though nothing reads the pipe")
		}
	}
	if w.Dropped() != 2 {
		t.Fatalf("a refused Put counted %d dropped lines, want its 2", w.Dropped())
	}
	waited := make(chan struct{})
	go func() {
		for range 10 {
			w.Put(&v, 2, true)
		}
		close(waited)
	}()
	// The waiting Puts must be parked on the full queue (seen, not assumed after a
	// sleep that would pass just as well if the goroutine never ran).
	goroutines.WaitBlocked(t, "chan send", "lines.TestFullQueue.func")
	select {
	case <-waited:
		t.Fatal("waiting Puts returned while nothing was read")
	default:
	}
	go io.Copy(io.Discard, pr)
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("waiting Puts never got room")
	}
	w.Close()
}

// TestClasses: lines are counted apart by class, and the totals sum them.
func TestClasses(t *testing.T) {
	var out bytes.Buffer
	w := New(Config[int]{Out: &out, Queue: 8, Format: twoLines, What: "test",
		Classes: 3, Class: func(v *int) int { return *v % 3 }})
	for _, v := range []int{1, 2, 4, 5, 7} {
		if !w.PutClass(&v, v%3, 2, true) {
			t.Fatalf("Put(%d) not queued", v)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	v := 3
	w.PutClass(&v, 0, 2, false) // after Close: dropped
	w.Put(&v, 2, false)         // class 0 too
	for class, want := range [3][2]uint64{{0, 4}, {6, 0}, {4, 0}} {
		if got := [2]uint64{w.WrittenClass(class), w.DroppedClass(class)}; got != want {
			t.Errorf("class %d: written, dropped = %v, want %v", class, got, want)
		}
	}
	if w.Written() != 10 || w.Dropped() != 4 || w.WrittenClass(3) != 0 || w.DroppedClass(-1) != 0 {
		t.Errorf("totals %d, %d; out of range %d, %d", w.Written(), w.Dropped(), w.WrittenClass(3), w.DroppedClass(-1))
	}
}
