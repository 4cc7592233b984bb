package xdpbench

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"weir/dataplane/afxdp/xsk"
	"weir/internal/netns"
)

// Generator sends the request frames from an AF_XDP socket in copy mode on the
// generator's veth, at a fixed rate, from one thread pinned to one CPU. The
// frames are written into the UMEM once and sent again and again: in copy
// mode the kernel copies each into an skb, so a frame is free for its next
// send as soon as its descriptor is on the TX ring. The same socket receives
// the replies the checker samples.
type Generator struct {
	sock  *xsk.Socket
	umem  *xsk.UMEM
	addrs []uint64 // UMEM address of each request frame
	lens  []uint32
	cpu   int
	next  int // the flow sent next, round robin
}

const (
	genFrames    = 4096
	genFrameSize = 2048
	genRing      = 2048
	// txBatch is what one wakeup sends in copy mode: the kernel's generic
	// transmit path stops after 32 descriptors a call.
	txBatch = 32
)

// NewGenerator opens the socket on queue 0 of interface ifindex in namespace
// ns and loads frames into its UMEM. The rest of the UMEM goes to the fill
// ring, for sampled replies.
func NewGenerator(ns string, ifindex int, frames [][]byte, cpu int) (*Generator, error) {
	if len(frames) == 0 || len(frames) > genFrames/2 {
		return nil, fmt.Errorf("xdpbench: %d frames, want 1 to %d", len(frames), genFrames/2)
	}
	if cpu < 0 || cpu >= runtime.NumCPU() {
		return nil, fmt.Errorf("xdpbench: CPU %d does not exist (%d CPUs)", cpu, runtime.NumCPU())
	}
	var s *xsk.Socket
	err := netns.Run(ns, func() (err error) {
		s, err = xsk.Open(xsk.Config{Ifindex: ifindex, Queue: 0, Frames: genFrames, FrameSize: genFrameSize,
			RingSize: genRing, ZeroCopy: xsk.ZeroCopyOff, NeedWakeup: true})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("xdpbench: generator socket: %w", err)
	}
	g := &Generator{sock: s, umem: s.UMEM(), cpu: cpu}
	for _, f := range frames {
		if len(f) > genFrameSize {
			s.Close()
			return nil, fmt.Errorf("xdpbench: a %d-byte frame does not fit a UMEM frame", len(f))
		}
		addr, ok := g.umem.Alloc()
		if !ok {
			s.Close()
			return nil, errors.New("xdpbench: UMEM exhausted")
		}
		copy(g.umem.Frame(addr), f)
		g.addrs = append(g.addrs, addr)
		g.lens = append(g.lens, uint32(len(f)))
	}
	g.refill()
	return g, nil
}

// FD is the socket, for the checker's XSKMAP.
func (g *Generator) FD() int { return g.sock.FD() }

// Close closes the socket and unmaps its memory.
func (g *Generator) Close() error { return g.sock.Close() }

// refill gives every free frame to the fill ring.
func (g *Generator) refill() {
	fill := g.sock.Fill()
	idx, got := fill.Reserve(uint32(g.umem.FreeFrames()))
	for i := range got {
		addr, _ := g.umem.Alloc()
		fill.Set(idx+i, addr)
	}
	fill.Submit(got)
}

// SendResult is what one Send did.
type SendResult struct {
	Sent    uint64        // descriptors the kernel completed (it copied and transmitted them)
	Elapsed time.Duration // from the first send to the last completion
}

// Rate is the offered rate in packets a second.
func (r SendResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// Send offers rate packets a second for dur: rate*dur packets, each sent no
// earlier than its due time, as soon as possible after it. It spins on its
// pinned CPU between batches (a sleep would be far coarser than the gaps at
// these rates); the baseline spins the same way, so the spinning cancels out
// of the CPU figures. It gives up dur plus one second after starting.
func (g *Generator) Send(rate float64, dur time.Duration) (SendResult, error) {
	if rate <= 0 || dur <= 0 {
		return SendResult{}, fmt.Errorf("xdpbench: rate %v for %v", rate, dur)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return SendResult{}, fmt.Errorf("xdpbench: CPU affinity: %w", err)
	}
	set.Set(g.cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return SendResult{}, fmt.Errorf("xdpbench: pinning to CPU %d: %w", g.cpu, err)
	}
	defer unix.SchedSetaffinity(0, &old)

	tx, cq := g.sock.TX(), g.sock.Completion()
	total := uint64(rate * dur.Seconds())
	perNs := rate / 1e9
	var queued, done uint64
	start := time.Now()
	deadline := dur + time.Second
	var elapsed time.Duration
	for done < total {
		elapsed = time.Since(start)
		if elapsed > deadline {
			break
		}
		if due := min(total, uint64(float64(elapsed)*perNs)+1); due > queued {
			idx, got := tx.Reserve(uint32(min(due-queued, txBatch)))
			for i := range got {
				d := tx.Desc(idx + i)
				d.Addr, d.Len, d.Options = g.addrs[g.next], g.lens[g.next], 0
				if g.next++; g.next == len(g.addrs) {
					g.next = 0
				}
			}
			if got > 0 {
				tx.Submit(got)
				queued += uint64(got)
			}
		}
		if queued > done {
			if err := g.sock.Kick(); err != nil {
				return SendResult{Sent: done, Elapsed: elapsed}, fmt.Errorf("xdpbench: send: %w", err)
			}
		}
		if _, got := cq.Peek(genRing); got > 0 {
			cq.Release(got)
			done += uint64(got)
		}
	}
	return SendResult{Sent: done, Elapsed: time.Since(start)}, nil
}

// Collect returns copies of the frames the socket receives within d, at most
// n of them, and hands their UMEM frames back to the fill ring.
func (g *Generator) Collect(n int, d time.Duration) ([][]byte, error) {
	var out [][]byte
	rx := g.sock.RX()
	deadline := time.Now().Add(d)
	for len(out) < n {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		if _, err := g.sock.Poll(int(min(left, 50*time.Millisecond) / time.Millisecond)); err != nil {
			return out, err
		}
		idx, got := rx.Peek(genRing)
		for i := range got {
			desc := rx.Desc(idx + i)
			if len(out) < n {
				out = append(out, append([]byte(nil), g.umem.Frame(desc.Addr)[:desc.Len]...))
			}
			if err := g.umem.Free(desc.Addr); err != nil {
				return out, err
			}
		}
		rx.Release(got)
		g.refill()
	}
	return out, nil
}

// Stats are the socket's kernel counters.
func (g *Generator) Stats() (xsk.Stats, error) { return g.sock.Stats() }
