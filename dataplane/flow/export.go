package flow

// exportScan is how many slab entries Export looks at per lock hold (a variable for
// tests).
var exportScan = 512

// Export hands fn every live flow as a FlowState of Kind JournalCreated, in batches:
// it walks the table shard by shard, holding each shard lock only while it copies up
// to a few hundred entries, and calls fn without a lock. batch is valid only during
// the call. Export stops when fn returns false. Flows created or ended during the
// walk may or may not be seen; none is seen twice. It is meant for a state transfer
// to a peer (cluster sync) and for periodic re-announcement, not the packet path.
func (t *Table) Export(fn func(batch []FlowState) bool) {
	buf := make([]FlowState, 0, exportScan)
	for si := range t.shards {
		s := &t.shards[si]
		for pos := 0; ; {
			s.mu.Lock()
			stop := min(len(s.slab), pos+exportScan)
			for ; pos < stop; pos++ {
				if s.slab[pos].id == 0 {
					continue
				}
				buf = buf[:len(buf)+1]
				s.state(&buf[len(buf)-1], int32(pos), JournalCreated)
			}
			done := pos >= len(s.slab)
			s.mu.Unlock()
			if len(buf) > 0 {
				if !fn(buf) {
					return
				}
				clear(buf)
				buf = buf[:0]
			}
			if done {
				break
			}
		}
	}
}
