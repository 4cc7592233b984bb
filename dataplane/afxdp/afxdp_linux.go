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
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"weir/dataplane"
	"weir/dataplane/afxdp/xdp"
	"weir/dataplane/afxdp/xsk"
	"weir/geneve"
	"weir/vxlan"
)

// DefaultBatch is the most RX descriptors a worker takes from its ring at once
// when Config.Batch is 0.
const DefaultBatch = 64

// Config says which interface and queues the backend binds and what it steers.
type Config struct {
	Interface string
	Queues    int // RX queues to bind, from queue 0; 0 means all of the interface's
	ZeroCopy  xsk.ZeroCopyMode

	GenevePort, VXLANPort uint16 // 0 means 6081 and 4789
	// AllowedSources are the IPv4 prefixes GENEVE may come from (checked in XDP);
	// empty allows every source.
	AllowedSources []netip.Prefix

	Batch  int // RX descriptors a worker takes at once; 0 means DefaultBatch
	Logger *slog.Logger
}

// Backend is the AF_XDP dataplane backend: one AF_XDP socket and one worker per
// RX queue of one interface.
type Backend struct {
	cfg       Config
	ifindex   int
	rxQueues  int // the interface's RX queues, the XSKMAP's size
	log       *slog.Logger
	queues    []*queueCounters // one per bound queue, written by its worker
	mu        sync.Mutex
	xdpMode   string // "driver" or "generic", once attached
	zeroCopy  []bool // per bound queue, once open
	runCalled bool
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
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("afxdp: interface %q: %w", cfg.Interface, err)
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
		return nil, fmt.Errorf("afxdp: %d queues asked, interface %q has %d RX queues", n, cfg.Interface, rx)
	}
	b := &Backend{cfg: cfg, ifindex: ifi.Index, rxQueues: rx, log: cfg.Logger}
	for range n {
		b.queues = append(b.queues, &queueCounters{})
	}
	return b, nil
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

// Run loads and attaches the XDP program, opens a socket per queue and runs a
// worker per queue until ctx ends; then it detaches the program and closes the
// sockets. It runs in the network namespace of the thread that calls it, and so
// do its workers.
func (b *Backend) Run(ctx context.Context, p *dataplane.Pipeline, ready func()) error {
	b.mu.Lock()
	if b.runCalled {
		b.mu.Unlock()
		return errors.New("afxdp: Run called twice")
	}
	b.runCalled = true
	b.mu.Unlock()

	// The interface index, the sockets and the attachment belong to this
	// thread's namespace: stay on it while setting up.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	netns, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return fmt.Errorf("afxdp: %w", err)
	}
	defer netns.Close()

	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("afxdp: %w", err)
	}
	xcfg := xdp.Config{
		GenevePort: b.cfg.GenevePort, VXLANPort: b.cfg.VXLANPort,
		AllowedSources: b.cfg.AllowedSources, Queues: b.rxQueues,
	}
	spec, err := xdp.Spec(xcfg)
	if err != nil {
		return fmt.Errorf("afxdp: %w", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return fmt.Errorf("afxdp: loading the XDP program: %w", err)
	}
	defer coll.Close()

	socks := make([]*xsk.Socket, 0, len(b.queues))
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	zc := make([]bool, len(b.queues))
	for q := range b.queues {
		s, err := xsk.Open(xsk.Config{Ifindex: b.ifindex, Queue: q, ZeroCopy: b.cfg.ZeroCopy, NeedWakeup: true})
		if err != nil {
			return fmt.Errorf("afxdp: %s queue %d: %w", b.cfg.Interface, q, err)
		}
		socks = append(socks, s)
		zc[q] = s.ZeroCopy()
		if err := coll.Maps[xdp.MapXSKs].Put(uint32(q), uint32(s.FD())); err != nil {
			return fmt.Errorf("afxdp: steering queue %d to its socket: %w", q, err)
		}
	}

	prog := coll.Programs[xdp.ProgramName]
	mode := "driver"
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: b.ifindex, Flags: link.XDPDriverMode})
	if err != nil {
		b.log.Info("afxdp: native XDP refused, using generic XDP", "interface", b.cfg.Interface, "err", err)
		mode = "generic"
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: b.ifindex, Flags: link.XDPGenericMode})
		if err != nil {
			return fmt.Errorf("afxdp: attaching XDP to %s: %w", b.cfg.Interface, err)
		}
	}
	defer l.Close()
	b.mu.Lock()
	b.xdpMode, b.zeroCopy = mode, zc
	b.mu.Unlock()
	b.log.Info("afxdp: attached", "interface", b.cfg.Interface, "xdp", mode, "queues", len(socks), "zerocopy", zc)

	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(socks))
	for q, s := range socks {
		wk := newWorker(q, s, p.NewWorker(), b.queues[q], b.cfg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := wk.run(stop, netns); err != nil {
				errs <- fmt.Errorf("afxdp: queue %d: %w", q, err)
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

var _ dataplane.Backend = (*Backend)(nil)
