package flowlog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriterReopen: after logrotate renamed the flow log, Reopen continues in a
// new file that starts with the header; every line is in exactly one file, in
// order.
func TestWriterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.log")
	w, err := Open(Config{Path: path, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	put := func(port uint16) {
		r := rec(6, "10.0.0.5", port, "10.0.1.9", 443)
		r.Background = true // wait for room: this test counts every line
		w.Record(r, delta([4]int64{1, 60, 10, 10}, [4]int64{}))
	}
	put(1000)
	put(1001)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	put(1002)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	old, cur := readLines(t, path+".1"), readLines(t, path)
	if len(old) != 3 || len(cur) != 2 || old[0] != Header || cur[0] != Header {
		t.Fatalf("old file %q, new file %q; want the header and 2 lines, the header and 1", old, cur)
	}
	for i, l := range append(old[1:], cur[1:]...) {
		if want := fmt.Sprintf(" 10.0.0.5 10.0.1.9 %d 443 ", 1000+i); !strings.Contains(l, want) {
			t.Errorf("line %d is %q, want %q in it", i, l, want)
		}
	}
}
