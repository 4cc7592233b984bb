package mirror

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// maxSockets bounds the source socket cache (a variable for tests).
var maxSockets = 256

// sockKey is what a flow asks for: its ENI's address and its hashed source port.
type sockKey struct {
	ip   netip.Addr
	port uint16
}

type sockEntry struct {
	key  sockKey
	conn *net.UDPConn
	port uint16 // the port bound: key.port, or the next free one
}

// sockCache holds UDP sockets bound to (ENI IP, source port), created on demand and
// closed least recently used first when more than max are open. Only the sender
// goroutine uses it.
type sockCache struct {
	max   int
	avoid uint16 // never bound: the target port, so a socket with SO_REUSEPORT cannot take its traffic
	lru   *list.List
	m     map[sockKey]*list.Element

	opened, fallbacks, evicted uint64
}

func newSockCache(max int, avoid uint16) *sockCache {
	return &sockCache{max: max, avoid: avoid, lru: list.New(), m: map[sockKey]*list.Element{}}
}

// get returns the socket for (ip, port) and the port it is bound to. A new socket is
// bound to port, or, when that is in use by a socket without SO_REUSEADDR/SO_REUSEPORT,
// to the next free port of the source range (counted in fallbacks). The same key
// always gets the same socket while it is cached, so both directions of a flow leave
// from one port.
func (c *sockCache) get(ip netip.Addr, port uint16) (*net.UDPConn, uint16, error) {
	k := sockKey{ip, port}
	if e, ok := c.m[k]; ok {
		c.lru.MoveToFront(e)
		s := e.Value.(*sockEntry)
		return s.conn, s.port, nil
	}
	conn, bound, err := bindNear(ip, port, c.avoid)
	if err != nil {
		return nil, 0, err
	}
	c.opened++
	if bound != port {
		c.fallbacks++
	}
	for c.lru.Len() >= c.max {
		old := c.lru.Back()
		s := c.lru.Remove(old).(*sockEntry)
		delete(c.m, s.key)
		s.conn.Close()
		c.evicted++
	}
	c.m[k] = c.lru.PushFront(&sockEntry{key: k, conn: conn, port: bound})
	return conn, bound, nil
}

// open is the number of cached sockets.
func (c *sockCache) open() int { return c.lru.Len() }

func (c *sockCache) close() {
	for e := c.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*sockEntry).conn.Close()
	}
	c.lru.Init()
	clear(c.m)
}

// nextPort is the port after p, wrapping within the source range (ports outside it
// continue upwards and wrap into it).
func nextPort(p uint16) uint16 {
	if p == 0xffff {
		return FirstSourcePort
	}
	return p + 1
}

// bindNear binds a UDP socket with SO_REUSEADDR and SO_REUSEPORT to (ip, port),
// moving on to the next port while the port is in use (EADDRINUSE) and skipping
// avoid, for at most NumSourcePorts ports.
func bindNear(ip netip.Addr, port, avoid uint16) (*net.UDPConn, uint16, error) {
	network := "udp4"
	if ip.Is6() {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: reuseControl}
	p := port
	var err error
	for range NumSourcePorts {
		if p == avoid {
			p = nextPort(p)
			continue
		}
		var pc net.PacketConn
		pc, err = lc.ListenPacket(context.Background(), network, netip.AddrPortFrom(ip, p).String())
		if err == nil {
			return pc.(*net.UDPConn), p, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, 0, err
		}
		p = nextPort(p)
	}
	return nil, 0, fmt.Errorf("mirrorsim: no free source port from %d on %v: %w", port, ip, err)
}
