package afxdp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"weir/dataplane"
	"weir/dataplane/afxdp/xdp"
	"weir/dataplane/afxdp/xsk"
	"weir/dataplane/flow"
	"weir/geneve"
	"weir/vxlan"
)

// maxFrameData is the most a received frame may be to fit a UMEM frame: the
// kernel keeps XDP_PACKET_HEADROOM (256 bytes) in front of the data.
const maxFrameData = xsk.DefaultFrameSize - 256

// ethVLANOverhead is what a frame adds to the MTU: Ethernet and one VLAN tag.
const ethVLANOverhead = 14 + 4

// DefaultBatch is the most RX descriptors a worker takes from its ring at once
// when Config.Batch is 0.
const DefaultBatch = 64

// Config says which interface and queues the backend binds and what it steers.
type Config struct {
	Interface string
	Queues    int // RX queues to bind, from queue 0; 0 means all of the interface's
	ZeroCopy  xsk.ZeroCopyMode

	GenevePort, VXLANPort uint16 // 0 means 6081 and 4789
	// NoMirror leaves VXLAN to the kernel: weir's mirror listener is off.
	NoMirror bool
	// AllowedSources are the IPv4 prefixes GENEVE may come from (checked in XDP);
	// empty allows every source.
	AllowedSources []netip.Prefix

	// GeneveDst and VXLANDst, when specified, are the only destinations
	// steered for each port (gwlb.listen's and mirror.listen's addresses), so
	// tunnels routed through the host are left alone.
	GeneveDst, VXLANDst netip.Addr

	Batch  int // RX descriptors a worker takes at once; 0 means DefaultBatch
	Logger *slog.Logger

	// FastPath answers the packets of established GWLB flows in XDP once
	// they have carried FastAfter packets through the pipeline, crediting
	// them to Flows (see fast_linux.go). Set it only when no stage needs to
	// see every packet: with detection on, leave it off. FastFlows bounds
	// the flows answered in XDP at once; 0 means DefaultFastFlows.
	FastPath  bool
	Flows     *flow.Table
	FastFlows int
}

// vxlanPort is the port the program steers VXLAN from, 0 for none.
func (b *Backend) vxlanPort() uint16 {
	if b.cfg.NoMirror {
		return 0
	}
	return b.cfg.VXLANPort
}

// xdpConfig is what the XDP program needs to know.
func (b *Backend) xdpConfig(frags bool) xdp.Config {
	return xdp.Config{
		GenevePort: b.cfg.GenevePort, VXLANPort: b.vxlanPort(),
		GeneveDst: b.cfg.GeneveDst, VXLANDst: b.cfg.VXLANDst,
		AllowedSources: b.cfg.AllowedSources, Queues: b.rxQueues,
		// A longer frame would not fit a UMEM frame: the kernel's socket path
		// (the socket backend beside this one) takes it.
		MaxFrame:  maxFrameData,
		Frags:     frags,
		FastPath:  b.cfg.FastPath,
		FastFlows: fastMapEntries(b.cfg.FastFlows),
	}
}

// Backend is the AF_XDP dataplane backend: one AF_XDP socket and one worker per
// RX queue of one interface.
type Backend struct {
	cfg      Config
	ifindex  int
	rxQueues int // the interface's RX queues, the XSKMAP's size
	log      *slog.Logger
	mtu      int
	queues   []*queueCounters // one per bound queue, written by its worker

	mu        sync.Mutex
	netns     *os.File // the namespace Open ran in, for the workers' threads
	coll      *ebpf.Collection
	link      link.Link
	socks     []*xsk.Socket
	frags     bool      // the program is multi-buffer capable
	xdpMode   string    // "driver" once attached
	zeroCopy  []bool    // per bound queue, once open
	fast      *fastPath // while Run runs with Config.FastPath
	opened    bool
	runCalled bool
	closed    bool
}

// New checks the interface and counts its RX queues. It opens nothing: Run does.
func New(cfg Config) (*Backend, error) {
	if cfg.Interface == "" {
		return nil, errors.New("afxdp: no interface")
	}
	if cfg.GenevePort == 0 {
		cfg.GenevePort = geneve.Port
	}
	if cfg.VXLANPort == 0 {
		cfg.VXLANPort = vxlan.Port
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Batch < 0 || cfg.Batch > xsk.DefaultRingSize {
		return nil, fmt.Errorf("afxdp: batch %d, want 1 to %d", cfg.Batch, xsk.DefaultRingSize)
	}
	if cfg.Queues < 0 {
		return nil, fmt.Errorf("afxdp: %d queues", cfg.Queues)
	}
	if cfg.FastPath && cfg.Flows == nil {
		return nil, errors.New("afxdp: the fast path needs the flow table to credit")
	}
	if cfg.FastFlows == 0 {
		cfg.FastFlows = DefaultFastFlows
	}
	if cfg.FastFlows < 0 || fastMapEntries(cfg.FastFlows) > 1<<24 {
		return nil, fmt.Errorf("afxdp: %d fast flows, want 1 to %d", cfg.FastFlows, 1<<22)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("afxdp: interface %q: %w", cfg.Interface, interfaceError(err))
	}
	rx, err := rxQueueCount(ifi)
	if err != nil {
		return nil, fmt.Errorf("afxdp: interface %q: %w", cfg.Interface, err)
	}
	n := cfg.Queues
	if n == 0 {
		n = rx
	}
	if n > rx {
		return nil, fmt.Errorf("afxdp: %d queues asked, interface %q has %d RX queues: %w", n, cfg.Interface, rx, ErrQueues)
	}
	b := &Backend{cfg: cfg, ifindex: ifi.Index, rxQueues: rx, mtu: ifi.MTU, log: cfg.Logger}
	for range n {
		b.queues = append(b.queues, &queueCounters{})
	}
	return b, nil
}

// interfaceError is what net.InterfaceByName's error says, without the "route
// ip+net" it wraps it in.
func interfaceError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// rxQueueCount counts /sys/class/net/IF/queues/rx-*. Sysfs shows the devices of
// the namespace it was mounted in, so when it does not show this interface (a
// thread switched into another namespace), the driver is asked instead.
func rxQueueCount(ifi *net.Interface) (int, error) {
	dir := filepath.Join("/sys/class/net", ifi.Name)
	if idx, err := os.ReadFile(filepath.Join(dir, "ifindex")); err == nil && string(idx) == fmt.Sprintf("%d\n", ifi.Index) {
		m, err := filepath.Glob(filepath.Join(dir, "queues", "rx-*"))
		if err == nil && len(m) > 0 {
			return len(m), nil
		}
	}
	return ethtoolRxQueues(ifi.Name)
}

// ethtoolRxQueues asks the driver for its channels (ETHTOOL_GCHANNELS): the RX
// queues are the RX-only plus the combined channels.
func ethtoolRxQueues(name string) (int, error) {
	const ethtoolGChannels = 0x3c
	var ch [9]uint32 // struct ethtool_channels
	ch[0] = ethtoolGChannels
	var ifr [40]byte // struct ifreq: the name, then a pointer to ch
	if len(name) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("interface name %q too long", name)
	}
	copy(ifr[:], name)
	*(*uintptr)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = uintptr(unsafe.Pointer(&ch[0]))
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr[0])))
	runtime.KeepAlive(&ch)
	if e != 0 {
		if e == unix.EOPNOTSUPP {
			return 1, nil // a driver without channels has one queue
		}
		return 0, fmt.Errorf("counting RX queues (ETHTOOL_GCHANNELS): %w", e)
	}
	if n := int(ch[5] + ch[8]); n > 0 { // rx_count + combined_count
		return n, nil
	}
	return 1, nil
}

// Name says the backend, and once Run has attached, how.
func (b *Backend) Name() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.xdpMode == "" {
		return fmt.Sprintf("afxdp (%s, %d queues)", b.cfg.Interface, len(b.queues))
	}
	zc := 0
	for _, z := range b.zeroCopy {
		if z {
			zc++
		}
	}
	return fmt.Sprintf("afxdp (%s, %d queues, %s XDP, %d zero-copy)", b.cfg.Interface, len(b.queues), b.xdpMode, zc)
}

// XDPMode is how the program is attached, "driver" or "generic"; empty before
// Run attaches it.
func (b *Backend) XDPMode() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.xdpMode
}

// QueueStats are one queue's counters since Run started.
type QueueStats struct {
	Queue         int
	ZeroCopy      bool
	RX            uint64 // frames taken from the RX ring
	TX            uint64 // replies put on the TX ring
	FillRingEmpty uint64 // packets the kernel had no fill-ring frame for (kernel 5.9+; sampled each second)
	TxRingFull    uint64 // replies dropped because the TX ring was full
	InvalidDescs  uint64 // RX descriptors outside the UMEM, plus those the kernel refused on the fill and TX rings
	// RxDropped are packets the kernel steered to the socket but dropped, such
	// as a frame larger than a UMEM frame (sampled each second).
	RxDropped uint64
	// RxRingFull are packets dropped because the RX ring was full: the worker
	// did not keep up (kernel 5.9+, which counts them here and not in RxDropped;
	// sampled each second).
	RxRingFull uint64
}

// queueCounters are one worker's counters, published once a batch: only the
// worker stores, so no two cores write one cache line.
type queueCounters struct {
	rx, tx, fillEmpty, txFull, invalid, rxDropped, rxRingFull atomic.Uint64
	_                                                         [8]byte // pad to a cache line
}

// Stats returns each bound queue's counters; it may be called while Run runs.
func (b *Backend) Stats() []QueueStats {
	b.mu.Lock()
	zc := b.zeroCopy
	b.mu.Unlock()
	out := make([]QueueStats, len(b.queues))
	for q, c := range b.queues {
		out[q] = QueueStats{
			Queue: q, RX: c.rx.Load(), TX: c.tx.Load(), FillRingEmpty: c.fillEmpty.Load(),
			TxRingFull: c.txFull.Load(), InvalidDescs: c.invalid.Load(), RxDropped: c.rxDropped.Load(),
			RxRingFull: c.rxRingFull.Load(),
		}
		if q < len(zc) {
			out[q].ZeroCopy = zc[q]
		}
	}
	return out
}

// ErrQueues is matched (errors.Is) by New's error when more queues are asked
// for than the interface has.
var ErrQueues = errors.New("too many queues")

// ErrUnsupported is matched (errors.Is) by the errors of Open when this
// machine cannot run the backend on the interface: no privileges to load XDP
// programs or open AF_XDP sockets, a kernel without AF_XDP, a driver without
// native XDP (or refusing it at the interface's MTU), or zero-copy asked of a
// driver without it. The socket backend is the fallback.
var ErrUnsupported = errors.New("AF_XDP not available")

type unsupportedError struct{ err error }

func (e *unsupportedError) Error() string { return e.err.Error() }
func (e *unsupportedError) Unwrap() []error {
	return []error{ErrUnsupported, e.err}
}

func unsupported(format string, args ...any) error {
	return &unsupportedError{fmt.Errorf(format, args...)}
}

// Open loads the XDP program, attaches it in native (driver) mode, opens a
// socket per queue, gives each socket's fill ring its frames and only then
// points the program at the sockets: until a queue's socket is in the map its
// packets pass to the kernel (where the socket backend serves them), so none
// arrives at a socket with nothing to receive into. It runs in the network
// namespace of the calling thread. Run calls it if it has not been called.
func (b *Backend) Open() (err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.opened {
		return nil
	}
	if b.closed {
		return errors.New("afxdp: closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer func() {
		if err != nil {
			b.release()
		}
	}()
	if b.netns, err = os.Open("/proc/thread-self/ns/net"); err != nil {
		return fmt.Errorf("afxdp: %w", err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return unsupported("afxdp: %w", err)
	}
	// The UMEM is locked memory, counted against RLIMIT_MEMLOCK unless the
	// process has CAP_IPC_LOCK: lift the limit as far as allowed.
	raiseMemlock()
	if b.coll, err = b.load(); err != nil {
		return err
	}
	prog := b.coll.Programs[xdp.ProgramName]
	b.link, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: b.ifindex, Flags: link.XDPDriverMode})
	if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
		// Not weir's to replace: weir's own program is held by a link that
		// dies with the process, so this one is another tool's.
		return unsupported("afxdp: %s has another XDP program attached (`ip link show %s` names it): %w", b.cfg.Interface, b.cfg.Interface, err)
	}
	// Generic (skb) XDP would run where native XDP does not, but no faster
	// than the socket backend's kernel path; and zero-copy is impossible there.
	if errors.Is(err, unix.EOPNOTSUPP) {
		return unsupported("afxdp: %s: its driver has no native XDP: %w", b.cfg.Interface, err)
	}
	if err != nil {
		return unsupported("afxdp: %s: the driver refused native XDP at MTU %d (drivers without multi-buffer XDP refuse it above about 3500: see README, AF_XDP on ENA): %w", b.cfg.Interface, b.mtu, err)
	}
	b.xdpMode = "driver"

	zc := b.cfg.ZeroCopy
	if wire := b.mtu + ethVLANOverhead; wire > maxFrameData && zc != xsk.ZeroCopyOff {
		// A zero-copy driver receives into the UMEM frames themselves: a
		// frame longer than one would need multi-buffer sockets, and is
		// dropped without. In copy mode the program passes it to the kernel.
		if zc == xsk.ZeroCopyOn {
			return unsupported("afxdp: zerocopy on: at MTU %d a frame can exceed the %d bytes a UMEM frame holds, and a zero-copy driver would drop it; lower the MTU to %d or use zerocopy auto",
				b.mtu, maxFrameData, maxFrameData-ethVLANOverhead)
		}
		zc = xsk.ZeroCopyOff
		b.log.Info("afxdp: copy mode: at this MTU a frame can exceed a UMEM frame; the kernel's socket path takes those", "mtu", b.mtu, "frame_bytes", maxFrameData)
	}
	b.zeroCopy = make([]bool, len(b.queues))
	for q := range b.queues {
		s, err := xsk.Open(xsk.Config{Ifindex: b.ifindex, Queue: q, ZeroCopy: zc, NeedWakeup: true})
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM) {
				return unsupported("afxdp: %s queue %d: %w (the UMEM, %d MiB a queue, is locked memory: it needs CAP_IPC_LOCK or a memlock limit that covers it; systemd: LimitMEMLOCK=infinity)",
					b.cfg.Interface, q, err, xsk.DefaultFrames*xsk.DefaultFrameSize>>20)
			}
			if errors.Is(err, xsk.ErrNotSupported) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EAFNOSUPPORT) {
				return unsupported("afxdp: %s queue %d: %w", b.cfg.Interface, q, err)
			}
			return fmt.Errorf("afxdp: %s queue %d: %w", b.cfg.Interface, q, err)
		}
		b.socks = append(b.socks, s)
		b.zeroCopy[q] = s.ZeroCopy()
		fillAll(s)
	}
	xsks := b.coll.Maps[xdp.MapXSKs]
	for q, s := range b.socks {
		if err := xsks.Put(uint32(q), uint32(s.FD())); err != nil {
			return fmt.Errorf("afxdp: steering queue %d to its socket: %w", q, err)
		}
	}
	b.opened = true
	b.log.Info("afxdp: attached", "interface", b.cfg.Interface, "xdp", b.xdpMode, "frags", b.frags,
		"queues", len(b.socks), "zerocopy", b.zeroCopy)
	return nil
}

// load loads the program and its maps. It asks for a multi-buffer capable
// (xdp.frags) program first: only such a program attaches natively at a jumbo
// MTU; a kernel too old for it gets the single-buffer program.
func (b *Backend) load() (*ebpf.Collection, error) {
	var firstErr error
	for _, frags := range []bool{true, false} {
		spec, err := xdp.Spec(b.xdpConfig(frags))
		if err != nil {
			return nil, fmt.Errorf("afxdp: %w", err)
		}
		coll, err := ebpf.NewCollection(spec)
		if err == nil {
			b.frags = frags
			return coll, nil
		}
		if errors.Is(err, unix.EPERM) || errors.Is(err, ebpf.ErrNotSupported) {
			return nil, unsupported("afxdp: loading the XDP program (needs CAP_BPF and CAP_NET_ADMIN, or root): %w", err)
		}
		if errors.Is(err, unix.EACCES) {
			// The verifier refused it: the program needs nothing beyond
			// CAP_BPF, so this is a kernel whose verifier differs from the
			// ones weir is tested on; the socket backend still runs.
			return nil, unsupported("afxdp: this kernel's verifier refused the XDP program: %w", err)
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, fmt.Errorf("afxdp: loading the XDP program: %w", firstErr)
}

// raiseMemlock lifts RLIMIT_MEMLOCK to infinity, or failing that (no
// CAP_SYS_RESOURCE) the soft limit to the hard one.
func raiseMemlock() {
	inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &inf) == nil {
		return
	}
	var l unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &l)
	}
}

// fillAll gives the kernel every frame the socket's fill ring takes.
func fillAll(s *xsk.Socket) {
	u, f := s.UMEM(), s.Fill()
	idx, got := f.Reserve(uint32(u.FreeFrames()))
	for i := range got {
		a, _ := u.Alloc()
		f.Set(idx+i, a)
	}
	f.Submit(got)
}

// detach stops the steering: the program comes off the interface, so packets
// go to the kernel again. Safe to call twice.
func (b *Backend) detach() {
	if b.link != nil {
		if err := b.link.Close(); err != nil {
			b.log.Warn("afxdp: detaching XDP", "interface", b.cfg.Interface, "err", err)
		}
		b.link = nil
	}
}

// release detaches the program and closes the sockets and the collection. The
// caller holds b.mu and no worker runs.
func (b *Backend) release() {
	b.detach()
	for _, s := range b.socks {
		s.Close()
	}
	b.socks = nil
	if b.coll != nil {
		b.coll.Close()
		b.coll = nil
	}
	if b.netns != nil {
		b.netns.Close()
		b.netns = nil
	}
	b.opened, b.xdpMode, b.frags, b.zeroCopy = false, "", false, nil
}

// SetAllowedSources puts a new GENEVE allow list (IPv4 prefixes; empty allows
// every source) in force in the loaded program, for a reload. The pipeline
// checks every source too; this keeps the program from dropping what the new
// list allows.
func (b *Backend) SetAllowedSources(prefixes []netip.Prefix) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cfg.AllowedSources = prefixes
	if b.coll == nil {
		return nil
	}
	return xdp.Fill(b.coll, b.xdpConfig(b.frags))
}

// Close releases what Open took, for a backend whose Run was never called (Run
// releases it itself).
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.runCalled {
		b.release()
		b.closed = true
	}
	return nil
}

// errNotOpen is XDPCounters' error while no program is loaded.
var errNotOpen = errors.New("afxdp: not open")

// XDPCounters are the program's counters, summed over CPUs, while it is loaded.
func (b *Backend) XDPCounters() (xdp.Counters, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.coll == nil {
		return xdp.Counters{}, errNotOpen
	}
	return xdp.ReadCounters(b.coll)
}

// drainFor bounds how long a stopping worker keeps serving what is already on
// its rings after the program was detached.
const drainFor = 200 * time.Millisecond

// Run opens the backend if Open was not called and runs a worker per queue
// until ctx ends. Then it detaches the program first, so that new packets go to
// the kernel while the workers serve what is on their rings, and closes the
// sockets once the workers are done.
func (b *Backend) Run(ctx context.Context, p *dataplane.Pipeline, ready func()) error {
	b.mu.Lock()
	if b.runCalled {
		b.mu.Unlock()
		return errors.New("afxdp: Run called twice")
	}
	b.runCalled = true
	b.mu.Unlock()
	if err := b.Open(); err != nil {
		return err
	}
	defer func() {
		b.mu.Lock()
		b.release()
		b.mu.Unlock()
	}()

	// The workers take a copy: SetAllowedSources may change b.cfg meanwhile.
	b.mu.Lock()
	cfg, socks := b.cfg, b.socks
	b.mu.Unlock()
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	var fp *fastPath
	if cfg.FastPath {
		if err := xdp.SetFastPath(b.coll, true); err != nil {
			b.log.Error("afxdp: the XDP fast path stays off", "err", err)
			cfg.FastPath = false
		}
	}
	if cfg.FastPath {
		fastDone := make(chan struct{})
		b.mu.Lock()
		fp = newFastPath(b, b.coll)
		b.fast = fp
		b.mu.Unlock()
		// A flow that ends in the table leaves the fast path at once, with
		// what the program counted for it.
		cfg.Flows.SetEnding(fp.ending)
		go func() {
			defer close(fastDone)
			fp.run(stop)
		}()
		defer func() {
			cancel()
			<-fastDone
			// The program is off the interface: what the map counted is final.
			fp.takeAll()
			cfg.Flows.SetEnding(nil)
			b.mu.Lock()
			b.fast = nil
			b.mu.Unlock()
		}()
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(socks))
	failed := make(chan struct{})
	var failOnce sync.Once
	for q, s := range socks {
		wk := newWorker(q, s, p.NewWorker(), b.queues[q], cfg)
		if fp != nil {
			wk.fast = fp.offerer(b.frags)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := wk.run(stop, b.netns); err != nil {
				errs <- fmt.Errorf("afxdp: queue %d: %w", q, err)
				failOnce.Do(func() { close(failed) })
			}
		}()
	}
	if ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
	case <-failed:
	}
	b.mu.Lock()
	b.detach()
	b.mu.Unlock()
	cancel()
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

var _ dataplane.Backend = (*Backend)(nil)
