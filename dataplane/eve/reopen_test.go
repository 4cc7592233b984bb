package eve_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"weir/dataplane/eve"
)

// TestWriterReopen: logrotate renames the EVE log and asks weir to reopen it; the
// old file holds the records from before, the new one those after, each once, in
// order.
func TestWriterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eve.json")
	w, err := eve.Open(path, 0, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if !w.CanReopen() {
		t.Fatal("CanReopen = false for a file")
	}
	const n = 1000
	put := func(from, to int) {
		for i := from; i <= to; i++ {
			r := tcpRecord()
			r.ID = uint64(i)
			r.Background = true // wait for room: this test counts every record
			w.Flow(&r)
		}
	}
	put(1, n)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	put(n+1, 2*n)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := int64(1)
	for _, f := range []string{path + ".1", path} {
		for _, line := range readLines(t, f) {
			if id := num(t, decode(t, line)["flow_id"]); id != next {
				t.Fatalf("%s: flow_id %d, want %d", f, id, next)
			}
			next++
		}
	}
	if next != 2*n+1 {
		t.Fatalf("the two files hold %d records, want %d", next-1, 2*n)
	}

	stdout, err := eve.Open("-", 0, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if stdout.CanReopen() || stdout.Reopen() != nil {
		t.Error("stdout: CanReopen true or Reopen failed; want nothing to reopen")
	}
	stdout.Close()

	// A FIFO (a log shipper reading it) is not renamed by logrotate: nothing to
	// reopen, and opening it again could wait for a reader.
	fifo := filepath.Join(t.TempDir(), "eve.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	reader, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	pipe, err := eve.Open(fifo, 0, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if pipe.CanReopen() {
		t.Error("CanReopen = true for a FIFO")
	}
	pipe.Close()
}
