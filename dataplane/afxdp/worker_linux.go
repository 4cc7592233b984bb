package afxdp

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"weir/dataplane"
	"weir/dataplane/afxdp/xsk"
	"weir/dataplane/packet"
	"weir/geneve"
)

// idlePoll is how long an idle worker waits for packets before it heartbeats
// and looks at ctx again (health takes a silent worker for a stuck one).
const idlePoll = 100 // milliseconds

// statsEvery is how often a worker samples the kernel's socket counters.
const statsEvery = time.Second

// worker owns one queue's socket, its frames and its pipeline worker.
type worker struct {
	queue      int
	sock       *xsk.Socket
	umem       *xsk.UMEM
	w          *dataplane.Worker
	batch      *dataplane.Batch
	addrs      []uint64 // the frame address of each slot's datagram
	lens       []uint32 // and its frame length
	reply      []bool   // whether the slot's frame goes out as a reply
	genevePort uint16
	vxlanPort  uint16

	inFlight        int    // frames on the TX ring not yet completed
	unkicked        uint32 // descriptors submitted since the last kick
	unkickedBatches int    // batches taken since then
	lastStats       int64
	idleWait        int // milliseconds an idle step waits in poll

	local  counts // the worker's own running totals
	shared *queueCounters
	fast   *fastOffer // with the XDP fast path: offers it the flows it can answer
}

// counts are plain running totals, copied to the shared atomics once a batch.
type counts struct {
	rx, tx, fillEmpty, txFull, invalid uint64
	kernelInvalid, kernelDropped       uint64 // from the kernel's socket counters
	kernelRingFull                     uint64
}

func newWorker(q int, s *xsk.Socket, w *dataplane.Worker, shared *queueCounters, cfg Config) *worker {
	return &worker{
		queue: q, sock: s, umem: s.UMEM(), w: w,
		batch:      dataplane.NewBatch(cfg.Batch),
		addrs:      make([]uint64, cfg.Batch),
		lens:       make([]uint32, cfg.Batch),
		reply:      make([]bool, cfg.Batch),
		genevePort: cfg.GenevePort, vxlanPort: cfg.VXLANPort,
		idleWait: idlePoll,
		shared:   shared,
	}
}

// run locks the goroutine to a thread in namespace netns (the one the socket
// was opened in) and serves the queue until ctx ends. The thread is never
// unlocked: it may have switched namespace, so it ends with the goroutine.
func (wk *worker) run(ctx context.Context, netns *os.File) error {
	runtime.LockOSThread()
	if err := enterNetns(netns); err != nil {
		return err
	}
	defer wk.w.StopHeartbeat()
	wk.refill()
	if err := wk.sock.WakeRX(); err != nil {
		return fmt.Errorf("wake RX: %w", err)
	}
	for ctx.Err() == nil {
		wk.w.Heartbeat()
		if _, err := wk.step(); err != nil {
			return err
		}
	}
	return wk.drain()
}

// drain serves what is left on the rings once the program no longer steers
// here, until they are empty or drainFor has passed.
func (wk *worker) drain() error {
	wk.idleWait = 1
	deadline := time.Now().Add(drainFor)
	for time.Now().Before(deadline) {
		wk.w.Heartbeat()
		took, err := wk.step()
		if err != nil {
			return err
		}
		if took == 0 && wk.inFlight == 0 {
			break
		}
	}
	wk.publish()
	return nil
}

// enterNetns switches the calling, locked thread into netns unless it is there.
func enterNetns(netns *os.File) error {
	var want, have unix.Stat_t
	if err := unix.Fstat(int(netns.Fd()), &want); err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &have); err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	if want.Dev == have.Dev && want.Ino == have.Ino {
		return nil
	}
	if err := unix.Setns(int(netns.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering the sockets' network namespace: %w", err)
	}
	return nil
}

// step is one turn of the loop: reap sent frames, refill, take a batch from
// the RX ring (or wait for one), run the pipeline and send the replies. It
// reports how many descriptors it took.
func (wk *worker) step() (int, error) {
	wk.reap()
	wk.refill()
	rx := wk.sock.RX()
	idx, n := rx.Peek(uint32(len(wk.batch.Slots)))
	if n == 0 {
		if wk.unkicked > 0 {
			// Nothing more to receive for now: send what waited for a kick.
			wk.kickPending()
		}
		timeout := wk.idleWait
		if wk.inFlight > 0 {
			// Replies not yet completed: a kick that failed, or a copy-mode
			// kick that ran out of budget, left some on the TX ring. Kicking
			// here, not every step, keeps the busy path to send's kicks.
			if wk.sock.TX().NeedsWakeup() {
				if err := wk.sock.Kick(); err != nil {
					return 0, fmt.Errorf("kick TX: %w", err)
				}
			}
			timeout = 1 // completions to reap soon
		}
		if _, err := wk.sock.Poll(timeout); err != nil {
			return 0, fmt.Errorf("poll: %w", err)
		}
		now := time.Now().UnixNano()
		if statsDue(now, wk.lastStats) {
			// The kernel unbinds the socket (ENETDOWN) when its device goes.
			if err := wk.sock.Err(); err != nil {
				return 0, fmt.Errorf("socket: %w", err)
			}
		}
		wk.sampleKernelStats(now)
		wk.publish()
		return 0, nil
	}
	b := wk.batch
	b.Now = time.Now().UnixNano()
	k := 0
	for i := range n {
		if wk.take(k, rx.Desc(idx+i), b.Now) {
			k++
		}
	}
	// The descriptors are copied: the RX ring's entries can go back now. The
	// frames stay ours until they are recycled or sent.
	rx.Release(n)
	wk.local.rx += uint64(k)
	b.N = k
	if k > 0 {
		wk.w.Process(b)
		wk.send()
		if wk.fast != nil {
			wk.fast.offer(b, wk.lens)
		}
	}
	// The queue's counts too go out before the replies.
	wk.sampleKernelStats(b.Now)
	wk.publish()
	wk.kickDue(n == uint32(len(b.Slots)))
	return int(n), nil
}

// take makes descriptor d slot k of the batch, or counts it invalid and
// reports false.
func (wk *worker) take(k int, d unix.XDPDesc, now int64) bool {
	frame := wk.umem.Frame(d.Addr)
	if frame == nil || int(d.Len) > len(frame) {
		// Not a frame of ours, or longer than one: nothing to parse. A frame in
		// range still goes back to be received into again.
		wk.local.invalid++
		if frame != nil {
			wk.umem.Free(d.Addr)
		}
		return false
	}
	wk.addrs[k], wk.lens[k] = d.Addr, d.Len
	wk.load(&wk.batch.Slots[k], frame[:d.Len], now)
	return true
}

// load fills slot s from a received frame, in place: Buf is the UDP payload
// within the UMEM frame.
func (wk *worker) load(s *dataplane.Slot, frame []byte, now int64) {
	s.Reset()
	s.Time = now
	o, payload, ok := packet.ParseOuter(frame)
	if !ok {
		// The program steers only UDP to our ports, so this is a datagram
		// ParseOuter refuses (truncated, say): counted as malformed.
		s.Buf, s.Encap = frame[:0], dataplane.EncapNone
		s.DropMalformed()
		return
	}
	s.Buf = payload
	s.Outer = geneve.Outer{Src: o.Src, Dst: o.Dst, SrcPort: o.SrcPort, DstPort: o.DstPort}
	switch o.DstPort {
	case wk.genevePort:
		s.Encap = dataplane.EncapGeneve
	case wk.vxlanPort:
		s.Encap = dataplane.EncapVXLAN
	default:
		s.Encap = dataplane.EncapNone
		s.DropMalformed()
	}
}

// send puts each returned GENEVE datagram's frame, rewritten into its reply,
// on the TX ring, and gives every other frame back to be received into.
func (wk *worker) send() {
	b := wk.batch
	want, failed := 0, 0
	for i := range b.Slots[:b.N] {
		s := &b.Slots[i]
		wk.reply[i] = false
		if s.Verdict != dataplane.VerdictReturn {
			continue
		}
		// Only GWLB traffic goes back; mirrored traffic never does.
		if s.Encap == dataplane.EncapGeneve && rewriteReply(wk.umem.Frame(wk.addrs[i])[:wk.lens[i]]) {
			wk.reply[i] = true
			want++
		} else {
			failed++
		}
	}
	tx := wk.sock.TX()
	var idx, got uint32
	if want > 0 {
		idx, got = tx.Reserve(uint32(want))
	}
	sent := uint32(0)
	for i := range b.Slots[:b.N] {
		addr := wk.addrs[i]
		switch {
		case !wk.reply[i]:
			wk.umem.Free(addr)
		case sent == got:
			wk.local.txFull++
			failed++
			wk.umem.Free(addr)
		default:
			d := tx.Desc(idx + sent)
			d.Addr, d.Len, d.Options = addr, wk.lens[i], 0
			sent++
		}
	}
	if sent > 0 || failed > 0 {
		// Counted before the replies leave: whoever sees a reply can see it
		// counted.
		wk.w.CountSent(int(sent), failed)
	}
	if sent > 0 {
		tx.Submit(sent)
		wk.inFlight += int(sent)
		wk.local.tx += uint64(sent)
		// A copy-mode kick is a system call that sends up to
		// copyModeTxBudget descriptors, and each runs the kernel's transmit
		// path: kicks wait until a full budget is pending (or kickDue), so
		// a busy worker sends in full batches.
		wk.unkicked += sent
		if wk.unkicked >= copyModeTxBudget {
			wk.publish()
			wk.kickPending()
		}
	}
}

// copyModeTxBudget is how many TX descriptors the kernel sends a wakeup in
// copy mode (TX_BATCH_SIZE in net/xdp/xsk.c); it answers EAGAIN for the rest.
const copyModeTxBudget = 32

// maxKickDelay is how many batches replies may wait for a kick: under a flood
// of packets that are not replied to (drops), a full budget may never gather.
const maxKickDelay = 4

// kickDue kicks the replies waiting for a kick when the batch just taken did
// not fill (the RX ring is about to run dry) or they have waited maxKickDelay
// batches.
func (wk *worker) kickDue(full bool) {
	if wk.unkicked == 0 {
		return
	}
	wk.unkickedBatches++
	if !full || wk.unkickedBatches >= maxKickDelay {
		wk.kickPending()
	}
}

// kickPending wakes the kernel, if the TX ring asks for it, enough times to
// send the descriptors submitted since the last kick in copy mode. A kick that
// fails leaves them on the ring: an idle step kicks again.
func (wk *worker) kickPending() {
	n := wk.unkicked
	wk.unkicked, wk.unkickedBatches = 0, 0
	if !wk.sock.TX().NeedsWakeup() {
		return // the driver is polling the ring itself
	}
	for range (n + copyModeTxBudget - 1) / copyModeTxBudget {
		if wk.sock.Kick() != nil {
			break
		}
	}
	// The kernel stops a kick early when the device refuses a frame (busy,
	// ring full): what it left on the ring waits for the next kickDue.
	wk.unkicked = wk.sock.TX().Outstanding()
}

// reap takes the frames the kernel has sent off the completion ring.
func (wk *worker) reap() {
	if wk.inFlight == 0 {
		return
	}
	c := wk.sock.Completion()
	idx, n := c.Peek(uint32(wk.inFlight))
	for i := range n {
		if wk.umem.Free(c.Addr(idx+i)) != nil {
			wk.local.invalid++
		}
	}
	c.Release(n)
	wk.inFlight -= int(n)
}

// refill gives the kernel every free frame the fill ring has room for.
func (wk *worker) refill() {
	free := wk.umem.FreeFrames()
	if free == 0 {
		return
	}
	f := wk.sock.Fill()
	idx, got := f.Reserve(uint32(free))
	for i := range got {
		a, _ := wk.umem.Alloc()
		f.Set(idx+i, a)
	}
	f.Submit(got)
	if got > 0 && f.NeedsWakeup() {
		_ = wk.sock.WakeRX()
	}
}

// statsDue reports whether a statsEvery has passed since last, by the wall
// clock: a clock stepped back makes it due at once rather than for as long as
// the step.
func statsDue(now, last int64) bool {
	d := now - last
	return d < 0 || d >= int64(statsEvery)
}

// sampleKernelStats reads the socket's kernel counters at most once a
// statsEvery: a system call, kept off the per-packet path.
func (wk *worker) sampleKernelStats(now int64) {
	if !statsDue(now, wk.lastStats) {
		return
	}
	wk.lastStats = now
	st, err := wk.sock.Stats()
	if err != nil {
		return
	}
	wk.local.fillEmpty = st.RxFillRingEmptyDescs
	wk.local.kernelDropped = st.RxDropped
	wk.local.kernelRingFull = st.RxRingFull
	wk.local.kernelInvalid = st.RxInvalidDescs + st.TxInvalidDescs
}

// publish copies the running totals to the shared counters.
func (wk *worker) publish() {
	c, l := wk.shared, &wk.local
	c.rx.Store(l.rx)
	c.tx.Store(l.tx)
	c.fillEmpty.Store(l.fillEmpty)
	c.txFull.Store(l.txFull)
	c.invalid.Store(l.invalid + l.kernelInvalid)
	c.rxDropped.Store(l.kernelDropped)
	c.rxRingFull.Store(l.kernelRingFull)
}
