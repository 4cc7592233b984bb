package lines

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func oneLine(b []byte, v *int) ([]byte, int) {
	return append(strconv.AppendInt(b, int64(*v), 10), '\n'), 1
}

// openAt is a Config.Reopen that opens path for appending, with a header when the
// file is new.
func openAt(path string) func() (io.Writer, io.Closer, string, error) {
	return func() (io.Writer, io.Closer, string, error) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, "", err
		}
		return f, f, "# header\n", nil
	}
}

// TestReopen renames the file under a writer that values keep arriving at, the way
// logrotate does, and reopens it, several times: together the files hold every
// value exactly once, in order, each file starting with its header.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.log")
	open := openAt(path)
	out, closer, prefix, err := open()
	if err != nil {
		t.Fatal(err)
	}
	w := New(Config[int]{Out: out, Closer: closer, Prefix: prefix, Queue: 16, Format: oneLine,
		What: "test", Reopen: open})
	if !w.CanReopen() {
		t.Fatal("CanReopen = false with Config.Reopen set")
	}
	const n, rotations = 20000, 5
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= n; i++ {
			w.Put(&i, 1, true)
		}
	}()
	var files []string
	for r := range rotations {
		old := filepath.Join(dir, "out.log."+strconv.Itoa(r))
		if err := os.Rename(path, old); err != nil {
			t.Fatal(err)
		}
		files = append(files, old)
		if err := w.Reopen(); err != nil {
			t.Fatalf("Reopen: %v", err)
		}
	}
	<-done
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files = append(files, path)
	next := 1
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if lines[0] != "# header" {
			t.Fatalf("%s starts with %q, want the header", f, lines[0])
		}
		for _, l := range lines[1:] {
			if l != strconv.Itoa(next) {
				t.Fatalf("%s: line %q, want %d (lost, repeated or out of order)", f, l, next)
			}
			next++
		}
	}
	if next != n+1 || w.Written() != n || w.Dropped() != 0 {
		t.Fatalf("files hold values up to %d, written %d, dropped %d; want %d, %d, 0",
			next-1, w.Written(), w.Dropped(), n, n)
	}
	if err := w.Reopen(); !errors.Is(err, ErrClosed) {
		t.Errorf("Reopen after Close = %v, want ErrClosed", err)
	}
}

// TestReopenFails: when the new file cannot be opened, the writer keeps writing to
// the old one and Reopen says why.
func TestReopenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	failing := func() (io.Writer, io.Closer, string, error) { return nil, nil, "", errors.New("no room") }
	w := New(Config[int]{Out: f, Closer: f, Queue: 4, Format: oneLine, What: "test", Reopen: failing})
	v := 1
	w.Put(&v, 1, true)
	if err := w.Reopen(); err == nil || err.Error() != "no room" {
		t.Errorf("Reopen = %v, want the open error", err)
	}
	v = 2
	w.Put(&v, 1, true)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "1\n2\n" {
		t.Errorf("file holds %q, want both values", data)
	}
}

// TestReopenNeverBlocksPut: while the writer goroutine is opening the new file
// (here: stuck in it), Put without wait still returns at once, queuing or counting
// a drop, and nothing queued is lost once the open finishes.
func TestReopenNeverBlocksPut(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.log")
	open := openAt(path)
	out, closer, _, err := open()
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	slow := func() (io.Writer, io.Closer, string, error) {
		close(entered)
		<-release
		return open()
	}
	w := New(Config[int]{Out: out, Closer: closer, Queue: 4, Format: oneLine, What: "test", Reopen: slow})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	reopened := make(chan error)
	go func() { reopened <- w.Reopen() }()
	<-entered
	queued := 0
	for i := 1; i <= 10; i++ { // the queue holds 4: the rest are dropped, not waited for
		if w.Put(&i, 1, false) {
			queued++
		}
	}
	if queued != 4 || w.Dropped() != 6 {
		t.Fatalf("queued %d, dropped %d during the reopen; want 4 and 6", queued, w.Dropped())
	}
	close(release)
	if err := <-reopened; err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "" || string(cur) != "# header\n1\n2\n3\n4\n" {
		t.Errorf("old file %q, new file %q; want nothing and the four queued values", old, cur)
	}
}

// TestReopenQueuedBefore: values queued before Reopen is called go to the old
// file, even those the writer had not taken from the queue yet.
func TestReopenQueuedBefore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	open := openAt(path)
	out, closer, _, err := open()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		w := New(Config[int]{Out: out, Closer: closer, Queue: 64, Format: oneLine, What: "test", Reopen: open})
		for i := 1; i <= 50; i++ {
			w.Put(&i, 1, true)
		}
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		if err := w.Reopen(); err != nil {
			t.Fatal(err)
		}
		v := 51
		w.Put(&v, 1, true)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		old, _ := os.ReadFile(path + ".1")
		cur, _ := os.ReadFile(path)
		if lines := strings.Count(string(old), "\n"); lines != 50 || string(cur) != "# header\n51\n" {
			t.Fatalf("old file has %d lines, new file %q; want 50 and the header with 51", lines, cur)
		}
		os.Remove(path + ".1")
		os.Remove(path)
		if out, closer, _, err = open(); err != nil { // the next round starts afresh
			t.Fatal(err)
		}
	}
	closer.Close()
}
