package detect

import (
	"hash/maphash"
	"math"
	"math/bits"
	"net/netip"
	"sync"
	"time"
)

// Signature ids of what weir raises without rules (gid 1). Suricata's own rule sets
// stay below 3,000,000 and local rules below 2,000,000: these ranges are weir's.
const (
	SIDPortScanPorts = 9100001 // one source, many destination ports
	SIDPortScanHosts = 9100002 // one source, many destination hosts
	SIDSYNFlood      = 9100101 // many half-open connections to one destination
	// SIDFragmentConflict: fragments overlapping with different data (inline in
	// ips mode, the fragment is dropped).
	SIDFragmentConflict = 9100201
	SIDIntelBase        = 9200000 // threat intel: SIDIntelBase + the list's index
)

// PortScan is the port-scan detector's configuration: an alert when one source
// opens flows to at least Ports distinct destination ports, or Hosts distinct
// destination hosts, within Window; again for that source no sooner than Repeat.
type PortScan struct {
	Ports, Hosts   int // 0: that test is off
	Window, Repeat time.Duration
}

// SYNFlood is the SYN-flood detector's configuration: an alert when, within
// Window, at least HalfOpen more SYNs reached one destination than handshakes
// to it completed; again for it no sooner than Repeat.
type SYNFlood struct {
	HalfOpen       int // 0: off
	Window, Repeat time.Duration
}

// addrTable keeps per-address state of type V in fixed memory: sets of a few
// ways, hashed by address; a new address takes an empty way, else the one idle
// longest. Under a flood of sources the oldest state is forgotten, memory never
// grows.
type addrTable[V any] struct {
	seed   maphash.Seed
	shards [16]addrShard[V]
}

const (
	addrSets = 512 // per shard
	addrWays = 4
)

type addrShard[V any] struct {
	mu    sync.Mutex
	slots [addrSets * addrWays]addrSlot[V]
}

type addrSlot[V any] struct {
	addr    [16]byte
	used    bool
	touched int64
	v       V
}

func newAddrTable[V any]() *addrTable[V] { return &addrTable[V]{seed: maphash.MakeSeed()} }

// with calls f with a's state, zero when a is new (or was forgotten).
func (t *addrTable[V]) with(a netip.Addr, now int64, f func(v *V)) {
	key := a.As16()
	sum := maphash.Comparable(t.seed, key)
	sh := &t.shards[sum%16]
	set := int(sum/16%addrSets) * addrWays
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ways := sh.slots[set : set+addrWays]
	var s *addrSlot[V]
	for i := range ways {
		if ways[i].used && ways[i].addr == key {
			s = &ways[i]
			break
		}
	}
	if s == nil {
		s = &ways[0]
		for i := range ways {
			if !ways[i].used {
				s = &ways[i]
				break
			}
			if ways[i].touched < s.touched {
				s = &ways[i]
			}
		}
		*s = addrSlot[V]{addr: key, used: true}
	}
	s.touched = now
	f(&s.v)
}

// scanState is one source's recent flows: linear-counting sketches of the
// destination ports and hosts it opened flows to in the current window.
type scanState struct {
	start, alerted [2]int64 // window start; last alert (ports, hosts)
	ports, hosts   [8]uint64
}

// synState is one destination's SYNs and completed handshakes in the window.
type synState struct {
	start, alerted int64
	syns, done     uint32
}

// anomalies is the detectors' state; it outlives reloads (the Stage keeps it).
type anomalies struct {
	seed    maphash.Seed
	sources *addrTable[scanState]
	dests   *addrTable[synState]
}

func newAnomalies() *anomalies {
	return &anomalies{seed: maphash.MakeSeed(), sources: newAddrTable[scanState](), dests: newAddrTable[synState]()}
}

// estimate is the distinct values a 512-bit linear-counting sketch has seen.
func estimate(s *[8]uint64) int {
	set := 0
	for _, w := range s {
		set += bits.OnesCount64(w)
	}
	if set == 512 {
		return 512 * 8 // saturated: many more than any threshold
	}
	return int(math.Round(-512 * math.Log(float64(512-set)/512)))
}

// newFlow notes a flow src opened to dst:dport and reports which port-scan
// signatures fire.
func (an *anomalies) newFlow(c *PortScan, src, dst netip.Addr, dport uint16, now int64) (ports, hosts bool) {
	if c.Ports == 0 && c.Hosts == 0 {
		return false, false
	}
	pb := maphash.Comparable(an.seed, dport) % 512
	hb := maphash.Comparable(an.seed, dst.As16()) % 512
	window, repeat := int64(c.Window), int64(c.Repeat)
	an.sources.with(src, now, func(s *scanState) {
		for i := range s.start {
			if now-s.start[i] > window {
				s.start[i] = now
				if i == 0 {
					s.ports = [8]uint64{}
				} else {
					s.hosts = [8]uint64{}
				}
			}
		}
		s.ports[pb/64] |= 1 << (pb % 64)
		s.hosts[hb/64] |= 1 << (hb % 64)
		if c.Ports > 0 && estimate(&s.ports) >= c.Ports && (s.alerted[0] == 0 || now-s.alerted[0] >= repeat) {
			s.alerted[0], ports = now, true
		}
		if c.Hosts > 0 && estimate(&s.hosts) >= c.Hosts && (s.alerted[1] == 0 || now-s.alerted[1] >= repeat) {
			s.alerted[1], hosts = now, true
		}
	})
	return ports, hosts
}

// syn notes a SYN opening a flow to dst (open) or a handshake to it completing
// (!open), and reports whether the SYN-flood signature fires.
func (an *anomalies) syn(c *SYNFlood, dst netip.Addr, open bool, now int64) (fire bool) {
	if c.HalfOpen == 0 {
		return false
	}
	window, repeat := int64(c.Window), int64(c.Repeat)
	an.dests.with(dst, now, func(s *synState) {
		if now-s.start > window {
			s.start, s.syns, s.done = now, 0, 0
		}
		if !open {
			s.done = min(s.done+1, s.syns)
			return
		}
		s.syns++
		if int(s.syns-s.done) >= c.HalfOpen && (s.alerted == 0 || now-s.alerted >= repeat) {
			s.alerted, fire = now, true
		}
	})
	return fire
}
