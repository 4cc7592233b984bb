// Package socket is the default packet backend: kernel UDP sockets read in batches
// with recvmmsg, one SO_REUSEPORT socket per worker, and replies sent in batches with
// sendmmsg through a raw socket, so that each reply leaves from appliance:P to
// GWLB:6081 exactly as GWLB requires. Without CAP_NET_RAW it falls back to a slower
// path: one UDP socket bound to appliance:P per GWLB source port, kept in a cache.
package socket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"weir/dataplane"
	"weir/geneve"
)

// ReplyMode selects how replies are sent.
type ReplyMode string

const (
	ReplyAuto ReplyMode = "auto" // raw when permitted, else udp
	ReplyRaw  ReplyMode = "raw"  // raw IPv4 socket, sendmmsg; needs CAP_NET_RAW
	ReplyUDP  ReplyMode = "udp"  // a UDP socket bound to each source port; unprivileged
)

// BufSize holds the largest datagram GWLB sends: an 8500-byte inner packet, GENEVE
// header and options, with room to spare for a 9001-byte MTU.
const BufSize = 9216

// Listener is one UDP address to receive on and the encapsulation that arrives there.
type Listener struct {
	Addr  netip.AddrPort
	Encap dataplane.Encap
}

// Config configures the socket backend.
type Config struct {
	Listeners  []Listener // gwlb.listen (GENEVE), mirror.listen (VXLAN)
	Workers    int        // per listener; default: number of CPUs
	Batch      int        // datagrams per recvmmsg/sendmmsg, default 64
	Reply      ReplyMode  // default auto
	RecvBuffer int        // bytes of receive buffer per socket (dataplane.recv_buffer), default 4 MiB
	Logger     *slog.Logger
}

// ErrNoRawSocket is returned (wrapped) when ReplyRaw is asked for but raw sockets are
// not permitted.
var ErrNoRawSocket = errors.New("raw sockets not permitted (need CAP_NET_RAW)")

// Backend is the socket backend.
type Backend struct {
	cfg   Config
	reply ReplyMode
	log   *slog.Logger
	locks []int // one per listener, see claim

	mu      sync.Mutex // socks against Close; the drop counts
	socks   []sock
	closed  map[string]uint64 // drops of sockets already closed, by listener label
	granted map[string]int    // receive buffer the kernel granted, by listener label
}

type sock struct {
	fd int
	l  Listener

	lastDrops uint32 // the kernel's counter at the last read
	drops     uint64 // its increments, summed
}

// New opens one receive socket per worker and settles the reply mode, so that
// configuration errors show before Run.
func New(cfg Config) (*Backend, error) {
	if len(cfg.Listeners) == 0 {
		return nil, errors.New("socket backend: nothing to listen on")
	}
	for _, l := range cfg.Listeners {
		if !l.Addr.Addr().Is4() {
			return nil, fmt.Errorf("socket backend: listen address %s: GWLB and Traffic Mirroring send IPv4 only", l.Addr)
		}
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.RecvBuffer <= 0 {
		cfg.RecvBuffer = 4 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &Backend{cfg: cfg, log: cfg.Logger, closed: map[string]uint64{}, granted: map[string]int{}}
	switch cfg.Reply {
	case ReplyRaw, ReplyUDP:
		b.reply = cfg.Reply
	case "", ReplyAuto:
		b.reply = ReplyUDP
		if fd, err := openRaw(); err == nil {
			unix.Close(fd)
			b.reply = ReplyRaw
		} else if errors.Is(err, ErrNoRawSocket) {
			b.log.Warn("raw sockets not permitted: replies go through per-port UDP sockets, slower; " +
				"grant CAP_NET_RAW (AmbientCapabilities=CAP_NET_RAW in the unit)")
		} else {
			b.log.Warn("no raw socket: replies go through per-port UDP sockets, slower", "err", err)
		}
	default:
		return nil, fmt.Errorf("socket backend: unknown reply mode %q", cfg.Reply)
	}
	if b.reply == ReplyRaw {
		fd, err := openRaw()
		if err != nil {
			return nil, err
		}
		unix.Close(fd)
	}
	for _, l := range cfg.Listeners {
		lock, err := claim(l)
		if err != nil {
			b.Close()
			return nil, err
		}
		b.locks = append(b.locks, lock)
		for i := 0; i < cfg.Workers; i++ {
			fd, granted, err := openListener(l.Addr, cfg.RecvBuffer)
			if err != nil {
				b.Close()
				return nil, err
			}
			b.socks = append(b.socks, sock{fd: fd, l: l})
			b.granted[l.label()] = granted
		}
		if g := b.granted[l.label()]; g < cfg.RecvBuffer {
			b.log.Warn("the kernel gave a smaller receive buffer than asked: bursts will be dropped sooner (weir_socket_drops_total); raise net.core.rmem_max or run with CAP_NET_ADMIN",
				"listener", l.key(), "asked", cfg.RecvBuffer, "granted", g)
		}
	}
	return b, nil
}

// Name says the backend and its reply path.
func (b *Backend) Name() string {
	if b.reply == ReplyRaw {
		return "socket (recvmmsg, raw-socket replies via sendmmsg)"
	}
	return "socket (recvmmsg, unprivileged per-port UDP replies)"
}

// Reply is the reply mode in use.
func (b *Backend) Reply() ReplyMode { return b.reply }

// Close closes the receive sockets and frees the listen addresses for another
// instance. Run closes them itself when it ends.
func (b *Backend) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.socks {
		s := &b.socks[i]
		b.closed[s.l.label()] += s.readDrops()
		unix.Close(s.fd)
	}
	b.socks = nil
	// After the sockets: another weir may claim the port from now on.
	for _, fd := range b.locks {
		unix.Close(fd)
	}
	b.locks = nil
}

// Run runs one worker per socket until ctx ends.
func (b *Backend) Run(ctx context.Context, p *dataplane.Pipeline, ready func()) error {
	defer b.Close()
	b.mu.Lock()
	socks := slices.Clone(b.socks)
	b.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, len(socks))
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, s := range socks {
		w, err := b.newWorker(s, p.NewWorker())
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.close()
			if err := w.run(stop); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	if ready != nil {
		ready()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// openListener opens one receive socket; it returns the receive buffer granted.
func openListener(addr netip.AddrPort, rcvbuf int) (int, int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, 0, fmt.Errorf("socket backend: %w", err)
	}
	set := func(level, opt, v int) error { return unix.SetsockoptInt(fd, level, opt, v) }
	for _, o := range []struct{ level, opt, v int }{
		{unix.SOL_SOCKET, unix.SO_REUSEPORT, 1},
		{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
		{unix.IPPROTO_IP, unix.IP_PKTINFO, 1},
		// Each datagram's own receive time, taken by the kernel as it arrived: the
		// two directions of a flow may reach different workers, and only the
		// kernel's stamps order them.
		{unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1},
		// Path MTU discovery off: replies leave with DF set by us, never fragmented
		// by the kernel, and no ICMP is ever generated toward the GWLB by us.
		{unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT},
	} {
		if err := set(o.level, o.opt, o.v); err != nil {
			unix.Close(fd)
			return -1, 0, fmt.Errorf("socket backend: setsockopt: %w", err)
		}
	}
	// SO_RCVBUF is capped by net.core.rmem_max (often 208 KiB: a few milliseconds
	// of line rate); SO_RCVBUFFORCE is not, but needs CAP_NET_ADMIN (root has it).
	if set(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
		_ = set(unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
	}
	// The kernel doubles what it grants, for its own bookkeeping.
	granted, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("socket backend: SO_RCVBUF: %w", err)
	}
	granted /= 2
	// Wake up regularly so that a stopping worker notices, and an idle one
	// heartbeats (health takes a silent worker for a stuck one).
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("socket backend: SO_RCVTIMEO: %w", err)
	}
	sa := &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("socket backend: bind %s: %w", addr, err)
	}
	return fd, granted, nil
}

func openRaw() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return -1, fmt.Errorf("socket backend: %w", ErrNoRawSocket)
		}
		return -1, fmt.Errorf("socket backend: raw socket: %w", err)
	}
	return fd, nil
}

// worker owns one receive socket, its buffers and its reply path.
type worker struct {
	b      *Backend
	fd     int
	encap  dataplane.Encap
	raw    int // raw reply socket, or -1
	w      *dataplane.Worker
	batch  *dataplane.Batch
	port   uint16 // the local UDP port datagrams arrive on
	ipID   uint16
	listen netip.Addr

	bufs  []byte
	rmsgs []unix.Mmsghdr
	riov  []unix.Iovec
	rname []unix.RawSockaddrInet4
	oob   []byte

	smsgs []unix.Mmsghdr
	siov  []unix.Iovec // two per message: reply headers, then the datagram
	sname []unix.RawSockaddrInet4
	hdrs  []byte

	ports *portSockets // unprivileged reply path
}

// oobSize holds the control messages of one datagram: IP_PKTINFO (28 bytes, 32
// aligned) and SCM_TIMESTAMPNS (32), with room to spare.
const oobSize = 128

// recvTimeout bounds how long a worker waits for input before it looks up again.
const recvTimeout = 100 * time.Millisecond

func (b *Backend) newWorker(s sock, w *dataplane.Worker) (*worker, error) {
	n := b.cfg.Batch
	wk := &worker{
		b: b, fd: s.fd, encap: s.l.Encap, raw: -1, w: w,
		batch:  dataplane.NewBatch(n),
		port:   s.l.Addr.Port(),
		listen: s.l.Addr.Addr(),
		bufs:   make([]byte, n*BufSize),
		rmsgs:  make([]unix.Mmsghdr, n),
		riov:   make([]unix.Iovec, n),
		rname:  make([]unix.RawSockaddrInet4, n),
		oob:    make([]byte, n*oobSize),
		smsgs:  make([]unix.Mmsghdr, n),
		siov:   make([]unix.Iovec, 2*n),
		sname:  make([]unix.RawSockaddrInet4, n),
		hdrs:   make([]byte, n*geneve.ReplyHeaderLen),
	}
	for i := range wk.rmsgs {
		buf := wk.bufs[i*BufSize : (i+1)*BufSize]
		wk.riov[i].Base = &buf[0]
		wk.riov[i].SetLen(BufSize)
		h := &wk.rmsgs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&wk.rname[i]))
		h.Iov = &wk.riov[i]
		h.SetIovlen(1)
		h.Control = &wk.oob[i*oobSize]
		wk.batch.Slots[i].Buf = buf[:0]
	}
	for i := range wk.smsgs {
		h := &wk.smsgs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&wk.sname[i]))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &wk.siov[2*i]
		h.SetIovlen(2)
		wk.sname[i].Family = unix.AF_INET
	}
	switch {
	case s.l.Encap != dataplane.EncapGeneve:
		// Mirrored traffic is never sent back.
	case b.reply == ReplyRaw:
		raw, err := openRaw()
		if err != nil {
			return nil, err
		}
		wk.raw = raw
	default:
		wk.ports = newPortSockets(4096)
	}
	return wk, nil
}

func (wk *worker) close() {
	if wk.raw >= 0 {
		unix.Close(wk.raw)
	}
	if wk.ports != nil {
		wk.ports.close()
	}
}

func (wk *worker) run(ctx context.Context) error {
	defer wk.w.StopHeartbeat()
	for ctx.Err() == nil {
		// Once a loop: after every batch, and at least every SO_RCVTIMEO while idle,
		// so that silence means a worker stuck in the pipeline or the send path.
		wk.w.Heartbeat()
		n, err := wk.recv()
		if err != nil {
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			return fmt.Errorf("socket backend: recvmmsg: %w", err)
		}
		wk.fill(n)
		wk.w.Process(wk.batch)
		wk.send()
	}
	return nil
}

func (wk *worker) recv() (int, error) {
	for i := range wk.rmsgs {
		h := &wk.rmsgs[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet4
		h.SetControllen(oobSize)
		h.Flags = 0
		wk.rmsgs[i].Len = 0
	}
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(wk.fd),
		uintptr(unsafe.Pointer(&wk.rmsgs[0])), uintptr(len(wk.rmsgs)),
		unix.MSG_WAITFORONE, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func (wk *worker) fill(n int) {
	b := wk.batch
	b.N = n
	b.Now = time.Now().UnixNano()
	for i := 0; i < n; i++ {
		s := &b.Slots[i]
		s.Reset()
		m := &wk.rmsgs[i]
		s.Buf = wk.bufs[i*BufSize : i*BufSize+int(m.Len)]
		s.Encap = wk.encap
		name := &wk.rname[i]
		s.Outer.Src = netip.AddrFrom4(name.Addr)
		s.Outer.SrcPort = portOf(name)
		s.Outer.Dst, s.Time = wk.control(m, i)
		if s.Time == 0 {
			s.Time = b.Now
		}
		s.Outer.DstPort = wk.port
		if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
			s.DropMalformed()
		}
	}
}

// control reads datagram i's control messages: the address it was sent to
// (IP_PKTINFO; the listen address if absent) and the kernel's receive timestamp
// (SCM_TIMESTAMPNS, unix nanoseconds; 0 if absent).
func (wk *worker) control(m *unix.Mmsghdr, i int) (netip.Addr, int64) {
	dst, ts := wk.listen, int64(0)
	oob := wk.oob[i*oobSize : i*oobSize+min(int(m.Hdr.Controllen), oobSize)]
	for len(oob) >= unix.SizeofCmsghdr {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		clen := int(c.Len)
		if clen < unix.SizeofCmsghdr || clen > len(oob) {
			break
		}
		switch {
		case c.Level == unix.IPPROTO_IP && c.Type == unix.IP_PKTINFO &&
			clen >= unix.SizeofCmsghdr+unix.SizeofInet4Pktinfo:
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&oob[unix.SizeofCmsghdr]))
			dst = netip.AddrFrom4(pi.Addr)
		case c.Level == unix.SOL_SOCKET && c.Type == unix.SCM_TIMESTAMPNS &&
			clen >= unix.SizeofCmsghdr+int(unsafe.Sizeof(unix.Timespec{})):
			t := (*unix.Timespec)(unsafe.Pointer(&oob[unix.SizeofCmsghdr]))
			ts = t.Nano()
		}
		adv := (clen + 7) &^ 7
		if adv > len(oob) {
			break
		}
		oob = oob[adv:]
	}
	return dst, ts
}

// send returns every datagram whose verdict is VerdictReturn.
func (wk *worker) send() {
	b := wk.batch
	if wk.ports != nil {
		wk.sendUDP()
		return
	}
	if wk.raw < 0 {
		return
	}
	k := 0
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.Verdict != dataplane.VerdictReturn {
			continue
		}
		hdr := wk.hdrs[k*geneve.ReplyHeaderLen : (k+1)*geneve.ReplyHeaderLen]
		wk.ipID++
		geneve.PutReplyHeaders(hdr, s.Outer, s.Buf, wk.ipID)
		wk.siov[2*k].Base = &hdr[0]
		wk.siov[2*k].SetLen(len(hdr))
		wk.siov[2*k+1].Base = &s.Buf[0]
		wk.siov[2*k+1].SetLen(len(s.Buf))
		wk.sname[k].Addr = s.Outer.Src.As4()
		k++
	}
	if k == 0 {
		return
	}
	sent, failed := 0, 0
	for sent+failed < k {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(wk.raw),
			uintptr(unsafe.Pointer(&wk.smsgs[sent+failed])), uintptr(k-sent-failed), 0, 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e != 0:
			// The first message of the rest failed (too big for the route, say):
			// count it and go on with the others.
			failed++
		default:
			sent += int(r)
		}
	}
	wk.w.CountSent(sent, failed)
}

// sendUDP is the unprivileged reply path: a UDP socket bound to appliance:P and
// connected to GWLB:port sends each reply, one datagram a syscall.
func (wk *worker) sendUDP() {
	b := wk.batch
	sent, failed := 0, 0
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		if s.Verdict != dataplane.VerdictReturn {
			continue
		}
		fd, err := wk.ports.get(netip.AddrPortFrom(s.Outer.Dst, s.Outer.SrcPort), netip.AddrPortFrom(s.Outer.Src, s.Outer.DstPort))
		if err == nil {
			_, err = unix.Write(fd, s.Buf)
		}
		if err != nil {
			failed++
			continue
		}
		sent++
	}
	if sent+failed > 0 {
		wk.w.CountSent(sent, failed)
	}
}

// portOf reads the port of a sockaddr, stored in network byte order.
func portOf(sa *unix.RawSockaddrInet4) uint16 {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	return uint16(p[0])<<8 | uint16(p[1])
}
