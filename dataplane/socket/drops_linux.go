package socket

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Drops returns the datagrams the kernel dropped at the receive sockets because
// their queue was full (or the checksum was bad), summed by listener label: gwlb,
// mirror. Every listener is present, with zero when nothing was dropped.
//
// The count is the socket's own drop counter (sk_drops, the drops column of
// /proc/net/udp and the d of `ss -m`), read with getsockopt(SO_MEMINFO) at scrape
// time. Rather than SO_RXQ_OVFL: that counter rides on received datagrams, so drops
// show only once a later datagram is read (a burst that ends in drops stays
// invisible while traffic is quiet) and the hot path pays a control message per
// datagram. Rather than /proc/net/udp: that lists every UDP socket of the namespace,
// to be parsed and matched by inode at each scrape.
func (b *Backend) Drops() map[string]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]uint64, len(b.cfg.Listeners))
	for _, l := range b.cfg.Listeners {
		out[l.label()] = b.closed[l.label()]
	}
	for i := range b.socks {
		s := &b.socks[i]
		s.readDrops()
		out[s.l.label()] += s.drops
	}
	return out
}

// RecvBuffer returns the receive buffer the kernel granted each listener's sockets,
// by listener label.
func (b *Backend) RecvBuffer() map[string]uint64 {
	out := make(map[string]uint64, len(b.granted))
	for k, v := range b.granted {
		out[k] = uint64(v)
	}
	return out
}

// readDrops folds the kernel's drop counter into s.drops and returns it. The
// counter is 32 bits and wraps: the difference is taken in 32 bits.
func (s *sock) readDrops() uint64 {
	var mi [unix.SK_MEMINFO_VARS]uint32
	n := uint32(unsafe.Sizeof(mi))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&mi[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e == 0 && n > unix.SK_MEMINFO_DROPS*4 {
		s.foldDrops(mi[unix.SK_MEMINFO_DROPS])
	}
	return s.drops
}

func (s *sock) foldDrops(cur uint32) {
	s.drops += uint64(cur - s.lastDrops)
	s.lastDrops = cur
}
