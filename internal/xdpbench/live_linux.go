package xdpbench

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"weir/internal/netns"
)

// LiveGenerator sends the request frames with BPF_PROG_TEST_RUN in live-frames
// mode (BPF_F_TEST_XDP_LIVE_FRAMES, Linux 5.18+): the kernel runs the
// generator's program (LiveGenSpec) on frames from a page pool and transmits
// each frame the program returns XDP_TX for as an xdp_frame out of the
// generator's veth. No skb is built on the way out, and the DUT's veth
// receives xdp_frames, as from a real NIC's driver.
//
// A trial is one call, from one thread pinned to one CPU in the generator's
// namespace, and the program paces it by the clock. One call, not one per
// batch, because the kernel sets up and tears down a page pool per call, and
// the teardown waits for an RCU grace period (milliseconds). Another
// goroutine ends the call once the trial's frames are out, with a signal:
// the kernel checks for one between batches.
type LiveGenerator struct {
	coll    *ebpf.Collection
	state   *ebpf.Map
	ns      string
	ifindex int
	cpu     int
	// What the kernel reads on every call, kept on the heap so that the
	// addresses in attr stay valid.
	first []byte // the frame each page starts as (the program rewrites it)
	md    xdpMD
	attr  progRunAttr
}

// xdpMD is struct xdp_md, the test run's context: the frames arrive on queue
// 0 of the generator's veth, so that XDP_TX sends them out of it.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// progRunAttr is the BPF_PROG_TEST_RUN part of union bpf_attr.
type progRunAttr struct {
	progFD, retval, dataSizeIn, dataSizeOut uint32
	dataIn, dataOut                         uint64
	repeat, duration, ctxSizeIn, ctxSizeOut uint32
	ctxIn, ctxOut                           uint64
	flags, cpu, batchSize, _                uint32
}

// LiveBatch is the default number of frames the kernel runs the program on
// before it flushes the transmitted ones to the veth: its own default
// (NAPI_POLL_WEIGHT).
const LiveBatch = 64

// MaxLiveBatch is the kernel's largest batch (TEST_XDP_MAX_BATCH).
const MaxLiveBatch = 256

// NewLiveGenerator loads the generator's program with frames, to send from
// interface ifindex of namespace ns, in batches of batch (LiveBatch if 0),
// pinned to cpu. It sends one frame to see that live frames work here.
func NewLiveGenerator(ns string, ifindex int, frames [][]byte, cpu, batch int) (_ *LiveGenerator, err error) {
	if batch == 0 {
		batch = LiveBatch
	}
	if batch < 1 || batch > MaxLiveBatch {
		return nil, fmt.Errorf("xdpbench: live batch of %d frames, want 1 to %d", batch, MaxLiveBatch)
	}
	if cpu < 0 || cpu >= runtime.NumCPU() {
		return nil, fmt.Errorf("xdpbench: CPU %d does not exist (%d CPUs)", cpu, runtime.NumCPU())
	}
	spec, err := LiveGenSpec(frames)
	if err != nil {
		return nil, err
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("xdpbench: loading the live generator: %+v", err)
	}
	defer func() {
		if err != nil {
			coll.Close()
		}
	}()
	g := &LiveGenerator{coll: coll, state: coll.Maps[MapGenState], ns: ns, ifindex: ifindex, cpu: cpu}
	size := LiveFrameValueSize(MaxFrameLen(frames))
	for i, f := range frames {
		if err := coll.Maps[MapGenFrames].Put(uint32(i), LiveFrameValue(f, size)); err != nil {
			return nil, fmt.Errorf("xdpbench: %s[%d]: %w", MapGenFrames, i, err)
		}
	}
	for _, f := range frames {
		if len(f) == MaxFrameLen(frames) {
			g.first = f
			break
		}
	}
	g.md = xdpMD{DataEnd: uint32(len(g.first)), IngressIfindex: uint32(ifindex)}
	g.attr = progRunAttr{
		progFD:     uint32(coll.Programs["wb_gen"].FD()),
		dataSizeIn: uint32(len(g.first)),
		dataIn:     uint64(uintptr(unsafe.Pointer(&g.first[0]))),
		ctxSizeIn:  uint32(unsafe.Sizeof(g.md)),
		ctxIn:      uint64(uintptr(unsafe.Pointer(&g.md))),
		flags:      unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		batchSize:  uint32(batch),
	}
	// One frame now, so that a kernel or interface without live frames fails
	// here and says why, rather than in the first trial.
	if err := g.setState(LiveState{Total: 1, Rate: 1}); err != nil {
		return nil, err
	}
	err = netns.Run(ns, func() error { return g.run(1) })
	if err == nil {
		var st LiveState
		if err = g.state.Lookup(uint32(0), &st); err == nil && st.Sent != 1 {
			err = fmt.Errorf("the program sent %d frames of 1", st.Sent)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("xdpbench: live frames (BPF_PROG_TEST_RUN, BPF_F_TEST_XDP_LIVE_FRAMES) on ifindex %d: %w", ifindex, err)
	}
	return g, nil
}

// Close unloads the program and its maps.
func (g *LiveGenerator) Close() error {
	g.coll.Close()
	return nil
}

func (g *LiveGenerator) setState(st LiveState) error {
	if err := g.state.Put(uint32(0), st); err != nil {
		return fmt.Errorf("xdpbench: %s: %w", MapGenState, err)
	}
	return nil
}

// run calls BPF_PROG_TEST_RUN for repeat runs of the program. The calling
// thread must be in the generator's namespace, where the kernel looks up the
// ingress ifindex.
func (g *LiveGenerator) run(repeat uint32) error {
	g.attr.repeat = repeat
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&g.attr)), unsafe.Sizeof(g.attr))
	if errno != 0 {
		return errno
	}
	return nil
}

// monotonic is CLOCK_MONOTONIC, the program's clock (bpf_ktime_get_ns).
func monotonic() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// Send offers rate packets a second for dur, as Generator.Send does: rate*dur
// packets, each sent no earlier than its due time and as soon as possible
// after it. It gives up dur plus one second after starting. The pinned CPU
// spins in the kernel throughout (the program drops the frames not yet due);
// the baseline spins the same way.
func (g *LiveGenerator) Send(rate float64, dur time.Duration) (res SendResult, err error) {
	if rate <= 0 || dur <= 0 {
		return SendResult{}, fmt.Errorf("xdpbench: rate %v for %v", rate, dur)
	}
	total := uint64(rate * dur.Seconds())
	var (
		tid     atomic.Int64 // the sending thread, once it is about to call
		stop    atomic.Bool  // the sender is to return at the next interruption
		done    = make(chan struct{})
		stopped = make(chan time.Duration, 1) // when sending ended, from the start
	)
	start := monotonic()
	if err := g.setState(LiveState{Start: uint64(start), Rate: uint64(rate), Total: total}); err != nil {
		return SendResult{}, err
	}
	go func() {
		// Wait out the trial, then until every frame is out or the deadline.
		time.Sleep(dur - (monotonic() - start))
		var st LiveState
		for {
			if err := g.state.Lookup(uint32(0), &st); err != nil || st.Sent >= total || monotonic()-start > dur+time.Second {
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		stopped <- monotonic() - start
		stop.Store(true)
		// The signal ends the call at the end of the batch it is in; it
		// is sent until the sender has returned, because the first may
		// come before the call.
		for {
			if t := tid.Load(); t != 0 {
				unix.Tgkill(os.Getpid(), int(t), unix.SIGURG)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	err = netns.Run(g.ns, func() error {
		var old, set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err != nil {
			return fmt.Errorf("xdpbench: CPU affinity: %w", err)
		}
		set.Set(g.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("xdpbench: pinning to CPU %d: %w", g.cpu, err)
		}
		defer unix.SchedSetaffinity(0, &old)
		tid.Store(int64(unix.Gettid()))
		for !stop.Load() {
			// As many runs as the kernel takes: the signal ends the call.
			err := g.run(math.MaxUint32)
			if err != nil && !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("xdpbench: live frames: %w", err)
			}
			// EINTR before the stop is some other signal: the program
			// carries on from its state.
		}
		return nil
	})
	if err != nil {
		stop.Store(true)
	}
	close(done)
	elapsed := <-stopped
	var st LiveState
	if lerr := g.state.Lookup(uint32(0), &st); lerr != nil && err == nil {
		err = lerr
	}
	return SendResult{Sent: st.Sent, Elapsed: elapsed}, err
}
