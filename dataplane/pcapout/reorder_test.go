package pcapout

import (
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

// TestReorderReleases: a record goes once the window is behind the newest record,
// or once it has waited the window; a record older than one written is still
// written, and counted late.
func TestReorderReleases(t *testing.T) {
	w := mustNew(t, Config{Dir: t.TempDir(), Queue: 64, Slot: 128, ReorderWindow: 200 * time.Millisecond},
		hooks{create: defaultHooks().create, retry: time.Second, tick: 5 * time.Millisecond})
	f := frame(t, 100, 0)
	sec := int64(time.Second)
	w.Write(base+sec, f, len(f), 0)
	w.Write(base, f, len(f), 0) // a second before the first: goes ahead of it
	w.Write(base+3*sec, f, len(f), 0)
	// base and base+1s are a window behind base+3s; base+3s waits the window.
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
