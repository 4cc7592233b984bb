package pcapout

// reorder holds queued records for the reorder window: a min-heap of slots by
// timestamp (then arrival, so that equal timestamps keep queue order), sized once
// for every slot of the queue, so that holding a record allocates nothing.
type reorder struct {
	h      []held
	window int64 // ns
	seq    uint64
	last   int64 // the timestamp of the record written last
	wrote  bool
}

type held struct {
	ts      int64  // the record's timestamp
	seq     uint64 // arrival order
	arrived int64  // when it reached the writer (ns on the writer's clock)
	slot    int32
}

func newReorder(n int, window int64) reorder {
	return reorder{h: make([]held, 0, n), window: window}
}

func (r *reorder) len() int { return len(r.h) }
func (r *reorder) cap() int { return cap(r.h) }

func (r *reorder) less(a, b int) bool {
	x, y := &r.h[a], &r.h[b]
	return x.ts < y.ts || x.ts == y.ts && x.seq < y.seq
}

func (r *reorder) push(slot int32, ts, now int64) {
	r.seq++
	r.h = append(r.h, held{ts: ts, seq: r.seq, arrived: now, slot: slot})
	for i := len(r.h) - 1; i > 0; {
		p := (i - 1) / 2
		if !r.less(i, p) {
			break
		}
		r.h[i], r.h[p] = r.h[p], r.h[i]
		i = p
	}
}

func (r *reorder) pop() int32 {
	top := r.h[0].slot
	n := len(r.h) - 1
	r.h[0] = r.h[n]
	r.h = r.h[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && r.less(c+1, c) {
			c++
		}
		if !r.less(c, i) {
			break
		}
		r.h[i], r.h[c] = r.h[c], r.h[i]
		i = c
	}
	return top
}

// due reports whether the oldest held record may go: it has waited the window on
// the writer's clock. Arrival time, not the records' own timestamps, decides, so
// that one record stamped in the future (a clock stepped back, a stray capture
// time) cannot make every later one due at once. Every held record has gone at the
// latest a window after the last record arrived.
func (r *reorder) due(now int64) bool {
	return now-r.h[0].arrived >= r.window
}

// wait is how long until the oldest held record has waited the window.
func (r *reorder) wait(now int64) int64 {
	return max(r.h[0].arrived+r.window-now, 1)
}
