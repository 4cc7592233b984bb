package lines

import (
	"bytes"
	"io"
	"strconv"
	"testing"
	"time"
)

func twoLines(b []byte, v *int) ([]byte, int) {
	b = append(strconv.AppendInt(b, int64(*v), 10), '\n')
	return append(strconv.AppendInt(b, int64(-*v), 10), '\n'), 2
}

func TestWriter(t *testing.T) {
	var out bytes.Buffer
	w := New(&out, nil, 4, "# header\n", twoLines, "test", nil)
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
	w := New(pw, pw, 1, "", big, "test", nil)
	v := 1
	for range 100 {
		w.Put(&v, 2, false)
	}
	if w.Dropped() == 0 {
		t.Fatal("a full queue dropped nothing")
	}
	waited := make(chan struct{})
	go func() {
		for range 10 {
			w.Put(&v, 2, true)
		}
		close(waited)
	}()
	select {
	case <-waited:
		t.Fatal("waiting Puts returned while nothing was read")
	case <-time.After(100 * time.Millisecond):
	}
	go io.Copy(io.Discard, pr)
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("waiting Puts never got room")
	}
	w.Close()
}
