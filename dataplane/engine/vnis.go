package engine

import (
	"strconv"
	"sync"
	"time"

	"weir/dataplane"
)

// MirrorReport is what GET /mirror and weir replay's summary say of the mirror path:
// every VNI seen, with the session that took it (null for none), and the sessions.
type MirrorReport struct {
	VNIs []VNIReport `json:"vnis"`
	// UntrackedPackets are datagrams of VNIs beyond what each worker tracks
	// (dataplane.DefaultTrackVNIs distinct VNIs).
	UntrackedPackets uint64          `json:"untracked_packets"`
	Sessions         []SessionReport `json:"sessions"`
}

// VNIReport is one VNI seen on the mirror path.
type VNIReport struct {
	VNI        uint32    `json:"vni"`
	Session    *string   `json:"session"` // null: no session takes it
	Packets    uint64    `json:"packets"`
	LastSource string    `json:"last_source"`
	LastSeen   time.Time `json:"last_seen"`
}

// SessionReport is one configured mirror session and its counts.
type SessionReport struct {
	Name       string  `json:"name"`
	VNI        *uint32 `json:"vni"` // null for the catch-all
	CatchAll   bool    `json:"catch_all"`
	Received   uint64  `json:"received"`
	Accepted   uint64  `json:"accepted"`
	Rejected   uint64  `json:"rejected"`
	Truncated  uint64  `json:"truncated"`
	Duplicates uint64  `json:"duplicates"`
}

// MirrorReport reports the VNIs seen and the sessions. Safe at any time.
func (e *Engine) MirrorReport() MirrorReport {
	vnis, overflow := e.Pipeline.VNIs()
	r := MirrorReport{VNIs: make([]VNIReport, 0, len(vnis)), UntrackedPackets: overflow,
		Sessions: []SessionReport{}}
	for _, v := range vnis {
		vr := VNIReport{VNI: v.VNI, Packets: v.Packets, LastSeen: time.Unix(0, v.LastSeen).UTC()}
		if v.LastSource.IsValid() {
			vr.LastSource = v.LastSource.String()
		}
		if v.Session != nil {
			name := v.Session.Name
			vr.Session = &name
		}
		r.VNIs = append(r.VNIs, vr)
	}
	t := e.Pipeline.Totals()
	for _, s := range e.Sessions.List() {
		sr := SessionReport{Name: s.Name, CatchAll: s.CatchAll}
		if !s.CatchAll {
			vni := s.VNI
			sr.VNI = &vni
		}
		if int(s.Index) < len(t.Sessions) {
			st := t.Sessions[s.Index]
			sr.Received, sr.Accepted, sr.Rejected = st.Received, st.Accepted, st.Rejected
			sr.Truncated, sr.Duplicates = st.Truncated, st.Duplicates
		}
		r.Sessions = append(r.Sessions, sr)
	}
	return r
}

// Limits of the log lines about VNIs no session takes.
const (
	unknownVNIEvery    = time.Minute // at most one line per VNI this often
	unknownVNIPerEvery = 10          // and at most this many lines in all
)

// vniLog remembers what was logged about VNIs with no session.
type vniLog struct {
	mu          sync.Mutex
	logged      map[uint32]vniLogged
	windowStart time.Time
	lines       int
	suppressed  map[uint32]struct{} // VNIs not logged in this window for the overall limit
}

type vniLogged struct {
	at      time.Time
	packets uint64
}

// LogUnknownVNIs logs each VNI that no session takes and that has new packets since
// it was last logged: one line per VNI a minute at most, and at most ten lines a
// minute in all (the rest are counted and said in the next window). Housekeep calls
// it each second; it reads the published counts and never touches the packet path.
func (e *Engine) LogUnknownVNIs(now time.Time) {
	vnis, _ := e.Pipeline.VNIs()
	l := &e.vniLog
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.logged == nil {
		l.logged = map[uint32]vniLogged{}
	}
	if now.Sub(l.windowStart) >= unknownVNIEvery {
		if len(l.suppressed) != 0 {
			e.Log.Warn("more VNIs with no session were not logged; GET /mirror on the health listener lists them all",
				"vnis", len(l.suppressed))
		}
		l.windowStart, l.lines, l.suppressed = now, 0, map[uint32]struct{}{}
	}
	for _, v := range vnis {
		if v.Session != nil {
			continue
		}
		prev, ok := l.logged[v.VNI]
		if ok && (v.Packets == prev.packets || now.Sub(prev.at) < unknownVNIEvery) {
			continue
		}
		if l.lines >= unknownVNIPerEvery {
			l.suppressed[v.VNI] = struct{}{}
			continue
		}
		l.lines++
		if len(l.logged) < 4*dataplane.DefaultTrackVNIs {
			l.logged[v.VNI] = vniLogged{at: now, packets: v.Packets}
		}
		e.Log.Warn(unknownVNIMessage(v), "vni", v.VNI, "source", v.LastSource.String(), "packets", v.Packets)
	}
}

func unknownVNIMessage(v dataplane.VNIStat) string {
	return "mirrored traffic for VNI " + strconv.FormatUint(uint64(v.VNI), 10) + " from " + v.LastSource.String() +
		" matches no session (add a session with vni: " + strconv.FormatUint(uint64(v.VNI), 10) + ", or a catch_all session)"
}
