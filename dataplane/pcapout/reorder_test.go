package pcapout

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestReorderTwoWriters: records queued by two goroutines with interleaved
// timestamps, each in its own order, leave sorted.
func TestReorderTwoWriters(t *testing.T) {
	w := mustNew(t, Config{Dir: t.TempDir(), Queue: 4096, Slot: 128, ReorderWindow: time.Hour}, defaultHooks())
	const per = 600
	f := frame(t, 100, 0)
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range per {
				// The second writer runs behind the first by 100 records.
				ts := base + int64(2*k+g)*1000
				if g == 1 {
					ts -= 200 * 1000
				}
				w.WriteWait(ts, f, len(f), g)
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readPcap(t, w.Files()[0], DefaultSnaplen)
	if len(recs) != 2*per {
		t.Fatalf("%d records, want %d", len(recs), 2*per)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].ci.Timestamp.Before(recs[i-1].ci.Timestamp) {
			t.Fatalf("record %d at %v before record %d at %v", i, recs[i].ci.Timestamp, i-1, recs[i-1].ci.Timestamp)
		}
	}
	if w.Late() != 0 || w.Dropped() != 0 {
		t.Errorf("Late %d Dropped %d, want 0 and 0", w.Late(), w.Dropped())
	}
}

// TestReorderReleases: a record goes once it has waited the window; a record older
// than one written is still written, and counted late. (The window is long enough
// that the first three writes surely land within it, however busy the machine.)
func TestReorderReleases(t *testing.T) {
	w := mustNew(t, Config{Dir: t.TempDir(), Queue: 64, Slot: 128, ReorderWindow: 2 * time.Second},
		hooks{create: defaultHooks().create, retry: time.Second, tick: 5 * time.Millisecond})
	f := frame(t, 100, 0)
	sec := int64(time.Second)
	w.Write(base+sec, f, len(f), 0)
	w.Write(base, f, len(f), 0) // a second before the first: goes ahead of it
	w.Write(base+3*sec, f, len(f), 0)
	// Each waits the window from its arrival, and they leave sorted.
	waitFor(t, 5*time.Second, "all three written", func() bool { return w.Written() == 3 })
	w.Write(base+2*sec, f, len(f), 0) // after base+3s was written: late
	waitFor(t, 5*time.Second, "the late one written", func() bool { return w.Written() == 4 })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range readPcap(t, w.Files()[0], DefaultSnaplen) {
		got = append(got, (r.ci.Timestamp.UnixNano()-base)/sec)
	}
	if want := []int64{0, 1, 3, 2}; len(got) != len(want) || got[0] != 0 || got[1] != 1 || got[2] != 3 || got[3] != 2 {
		t.Errorf("records at %v s, want %v", got, want)
	}
	if w.Late() != 1 || w.Dropped() != 0 {
		t.Errorf("Late %d Dropped %d, want 1 and 0", w.Late(), w.Dropped())
	}
}

// TestReorderFlushedAtClose: held records are written at Close, sorted.
func TestReorderFlushedAtClose(t *testing.T) {
	w := mustNew(t, Config{Dir: t.TempDir(), Queue: 64, Slot: 128, ReorderWindow: time.Hour}, defaultHooks())
	f := frame(t, 100, 0)
	for _, d := range []int64{5, 3, 4, 1, 2} {
		w.Write(base+d, f, len(f), 0)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readPcap(t, w.Files()[0], DefaultSnaplen)
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5", len(recs))
	}
	for i, r := range recs {
		if r.ci.Timestamp.UnixNano() != base+int64(i+1) {
			t.Errorf("record %d at +%d ns, want +%d", i, r.ci.Timestamp.UnixNano()-base, i+1)
		}
	}
}

func TestReorderWriteAllocs(t *testing.T) {
	w := mustNew(t, Config{Dir: t.TempDir(), Queue: 1024, Slot: 256, ReorderWindow: time.Millisecond}, defaultHooks())
	f := frame(t, 1500, 0)
	w.Write(base, f, len(f), 0)
	waitFor(t, 5*time.Second, "the file", func() bool { return len(w.Files()) == 1 })
	ts := base
	allocs := testing.AllocsPerRun(1000, func() {
		ts++
		w.Write(ts, f, len(f), 7)
	})
	if allocs != 0 {
		t.Errorf("Write allocates %v times", allocs)
	}
}

// TestReorderHalfFull: the writer holds at most half its queue's slots, so with a
// window of an hour a writer that waits for room still gets it: 100 records through
// an 8-slot queue all arrive and none is dropped; arriving newest first, some are
// written after newer ones and counted late.
func TestReorderHalfFull(t *testing.T) {
	w := mustNew(t, Config{Dir: t.TempDir(), Queue: 8, Slot: 128, ReorderWindow: time.Hour}, defaultHooks())
	f := frame(t, 100, 0)
	const n = 100
	for k := n; k >= 1; k-- { // newest first: the worst order
		w.WriteWait(base+int64(k), f, len(f), 0)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readPcap(t, w.Files()[0], DefaultSnaplen)
	if len(recs) != n || w.Dropped() != 0 {
		t.Fatalf("%d records written, %d dropped; want %d and 0", len(recs), w.Dropped(), n)
	}
	if w.Late() == 0 {
		t.Error("records arriving newest first through a small queue: none counted late")
	}
}

// TestReorderAfterFutureStamp: one record stamped an hour ahead (a wall clock
// stepped back, a stray capture time) does not switch the window off for the
// records after it, and counts as one step back, not one per record.
func TestReorderAfterFutureStamp(t *testing.T) {
	w := mustNew(t, Config{Dir: t.TempDir(), Queue: 64, Slot: 128, ReorderWindow: time.Hour}, defaultHooks())
	f := frame(t, 100, 0)
	w.Write(base+int64(time.Hour), f, len(f), 0)
	w.Write(base+2e6, f, len(f), 0)
	w.Write(base+1e6, f, len(f), 0)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range readPcap(t, w.Files()[0], DefaultSnaplen) {
		got = append(got, r.ci.Timestamp.UnixNano()-base)
	}
	if want := []int64{1e6, 2e6, int64(time.Hour)}; fmt.Sprint(got) != fmt.Sprint(want) || w.Late() != 0 {
		t.Errorf("written %v, late %d; want %v and 0", got, w.Late(), want)
	}
}
