package policy

import (
	"sync/atomic"

	"weir/dataplane/packet"
)

// Live is a policy that a configuration reload can replace while flows are being
// decided: each decision reads the policy once, with no lock, so it is either the
// old policy's or the new one's. Flows already decided keep their verdict.
type Live struct {
	p atomic.Pointer[Policy]
}

// NewLive returns a Live policy that starts as p.
func NewLive(p *Policy) *Live {
	l := &Live{}
	l.Store(p)
	return l
}

// Store makes p the policy of the flows decided from now on.
func (l *Live) Store(p *Policy) { l.p.Store(p) }

// Load returns the policy in force.
func (l *Live) Load() *Policy { return l.p.Load() }

// Decide is Policy.Decide with the policy in force.
func (l *Live) Decide(p *packet.Packet) (Action, int) { return l.p.Load().Decide(p) }
