package detect

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"

	"weir/dataplane/detect/rules"
)

// thresholds counts the matches of rules with threshold or detection_filter, by
// source or destination address, in fixed memory: a set-associative table whose
// slots are reused when their window has passed, or else the oldest of a set. A
// flood of addresses can push a counter out (the rule then starts counting
// afresh), never grow memory.
type thresholds struct {
	seed   maphash.Seed
	shards [thresholdShards]thresholdShard
}

const (
	thresholdShards = 16
	thresholdSets   = 256 // per shard
	thresholdWays   = 4
)

type thresholdShard struct {
	mu    sync.Mutex
	slots [thresholdSets * thresholdWays]thresholdSlot
}

type thresholdSlot struct {
	addr  [16]byte
	rule  uint64 // the rule's gid<<32 | sid; 0 = empty
	count uint32
	start int64 // window start, unix ns
}

func newThresholds() *thresholds { return &thresholds{seed: maphash.MakeSeed()} }

// allow counts a match of rule (its gid<<32 | sid, never 0) for the
// packet's source or destination, as t tracks, at now, and reports whether it
// alerts under t.
func (th *thresholds) allow(rule uint64, t *rules.Threshold, filter bool, src, dst netip.Addr, now int64) bool {
	a := src
	if t.Track == rules.TrackByDst {
		a = dst
	}
	key := a.As16()
	var h maphash.Hash
	h.SetSeed(th.seed)
	h.Write(key[:])
	var r [8]byte
	binary.LittleEndian.PutUint64(r[:], rule)
	h.Write(r[:])
	sum := h.Sum64()
	sh := &th.shards[sum%thresholdShards]
	set := int(sum/thresholdShards%thresholdSets) * thresholdWays
	window := int64(t.Seconds) * 1e9

	sh.mu.Lock()
	defer sh.mu.Unlock()
	ways := sh.slots[set : set+thresholdWays]
	var s *thresholdSlot
	for i := range ways {
		if ways[i].rule == rule && ways[i].addr == key {
			s = &ways[i]
			break
		}
	}
	if s == nil {
		s = &ways[0]
		for i := range ways {
			if ways[i].rule == 0 || now-ways[i].start > window {
				s = &ways[i]
				break
			}
			if ways[i].start < s.start {
				s = &ways[i]
			}
		}
		*s = thresholdSlot{addr: key, rule: rule, start: now}
	}
	if now-s.start >= window {
		s.start, s.count = now, 0
	}
	s.count++
	n, c := int(s.count), t.Count
	if filter { // detection_filter: every match after the first count
		return n > c
	}
	switch t.Type {
	case rules.ThresholdLimit: // the first count matches of each window
		return n <= c
	case rules.ThresholdThreshold: // every count-th match
		if n >= c {
			s.count = 0
			return true
		}
		return false
	default: // both: once a window, at the count-th match
		return n == c
	}
}
