package mirror

import (
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// DefaultMaxENIs bounds the ENIs Directions learns a MAC for when NewDirections is
// given no bound.
const DefaultMaxENIs = 4096

// Directions tells the direction of mirrored frames. AWS sends every mirrored frame
// of an ENI with the ENI's primary IP as outer source, in both directions; the inner
// frame's source MAC is the ENI's MAC on egress, its destination MAC on ingress.
//
// The ENI's MAC is configured, or learned per outer source from frames whose inner
// IP addresses give the direction away (inner source = the ENI's IP: egress). Learned
// MACs sit in an immutable map behind an atomic pointer, replaced copy-on-write when
// an ENI is learned or its MAC changes, so Of is lock-free and allocation-free except
// when it learns. At most maxENIs ENIs are learned; past that, new ENIs are told
// apart by IP only.
//
// A Directions is safe for concurrent use.
type Directions struct {
	mac    [6]byte
	hasMAC bool
	ip     netip.Addr
	max    int

	mu      sync.Mutex // serialises learners
	learned atomic.Pointer[map[netip.Addr][6]byte]
}

// NewDirections returns a Directions. configuredMAC, when it is 6 bytes long, is the
// mirrored ENI's MAC (no learning then); a MAC of any other length (nil) is unset.
// configuredIP, when valid, is the ENI's IP instead of each frame's outer source.
// maxENIs bounds the learned ENIs (DefaultMaxENIs when <= 0).
func NewDirections(configuredMAC net.HardwareAddr, configuredIP netip.Addr, maxENIs int) *Directions {
	d := &Directions{ip: configuredIP.Unmap(), max: maxENIs}
	if len(configuredMAC) == 6 {
		d.mac, d.hasMAC = [6]byte(configuredMAC), true
	}
	if d.max <= 0 {
		d.max = DefaultMaxENIs
	}
	return d
}

// Of returns the direction of a mirrored frame whose outer source is eni, from its
// inner MACs and inner IP addresses:
//
//  1. by MAC, when the ENI's MAC is known (configured, or learned for eni): inner
//     source MAC = ENI MAC: egress; else inner destination MAC = ENI MAC: ingress;
//  2. else by IP, the ENI's IP being the configured IP or else eni: inner source =
//     ENI IP: egress, and the inner source MAC is learned as eni's MAC; else inner
//     destination = ENI IP: ingress, learning the inner destination MAC;
//  3. else DirUnknown (e.g. IPv6 or secondary-IP traffic before the MAC is learned).
//
// Only unicast MACs are learned. A learned MAC that the IP check contradicts (the
// ENI's IP moved to another ENI) is replaced. IPv4-mapped IPv6 addresses are
// compared as IPv4.
func (d *Directions) Of(eni netip.Addr, srcMAC, dstMAC [6]byte, innerSrc, innerDst netip.Addr) Direction {
	eni = eni.Unmap()
	mac, ok := d.mac, d.hasMAC
	if !ok {
		if m := d.learned.Load(); m != nil {
			mac, ok = (*m)[eni]
		}
	}
	if ok {
		if srcMAC == mac {
			return DirEgress
		}
		if dstMAC == mac {
			return DirIngress
		}
	}
	ip := d.ip
	if !ip.IsValid() {
		ip = eni
	}
	if !ip.IsValid() {
		return DirUnknown
	}
	if innerSrc.Unmap() == ip {
		d.learn(eni, srcMAC)
		return DirEgress
	}
	if innerDst.Unmap() == ip {
		d.learn(eni, dstMAC)
		return DirIngress
	}
	return DirUnknown
}

// MAC returns the MAC Of uses for eni: the configured one, or the one learned.
func (d *Directions) MAC(eni netip.Addr) ([6]byte, bool) {
	if d.hasMAC {
		return d.mac, true
	}
	if m := d.learned.Load(); m != nil {
		mac, ok := (*m)[eni.Unmap()]
		return mac, ok
	}
	return [6]byte{}, false
}

// Learned returns the number of ENIs whose MAC has been learned.
func (d *Directions) Learned() int {
	if m := d.learned.Load(); m != nil {
		return len(*m)
	}
	return 0
}

func (d *Directions) learn(eni netip.Addr, mac [6]byte) {
	if d.hasMAC || mac[0]&1 != 0 || mac == [6]byte{} { // multicast/broadcast or zero
		return
	}
	if m := d.learned.Load(); m != nil {
		if cur, ok := (*m)[eni]; ok && cur == mac {
			return
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.learned.Load()
	var next map[netip.Addr][6]byte
	if old != nil {
		cur, ok := (*old)[eni]
		if ok && cur == mac {
			return
		}
		if !ok && len(*old) >= d.max {
			return
		}
		next = maps.Clone(*old)
	} else {
		next = make(map[netip.Addr][6]byte, 1)
	}
	next[eni] = mac
	d.learned.Store(&next)
}
