package xdpbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"weir/dataplane"
	"weir/dataplane/afxdp"
	"weir/internal/netns"
)

// The targets.
const (
	TargetXDPTX  = "xdptx"  // the XDP_TX reflector
	TargetAFXDP  = "afxdp"  // weir, AF_XDP backend
	TargetSocket = "socket" // weir, socket backend
	// TargetDrop drops every request in XDP: the baseline's receiver, as a
	// target for diagnostics (with Config.Rates: how fast the generator goes).
	TargetDrop = "drop"
	// TargetAFXDPIO is weir's AF_XDP backend run in the bench's process with
	// a pipeline that returns every datagram untouched: what the AF_XDP
	// mechanics cost without weir's decode, flow table and policy, for
	// diagnostics.
	TargetAFXDPIO = "afxdp-io"
)

// Diagnostics are the targets a run measures only when asked.
var Diagnostics = []string{TargetXDPFast, TargetAFXDPIO, TargetDrop}

// Targets are the known targets, in the order a run measures them.
var Targets = []string{TargetXDPTX, TargetAFXDP, TargetSocket}

// The generators.
const (
	GenLive = "live" // BPF_PROG_TEST_RUN with live frames (LiveGenerator)
	GenXSK  = "xsk"  // an AF_XDP socket in copy mode (Generator)
)

// Generators are the known generators, the default first.
var Generators = []string{GenLive, GenXSK}

// sender is a generator's sending side.
type sender interface {
	Send(rate float64, dur time.Duration) (SendResult, error)
}

// Config is one bench run.
type Config struct {
	Targets   []string
	Trial     time.Duration // each trial's sending time
	Settle    time.Duration // wait after sending for replies still in flight
	Start     float64       // first rate tried, packets a second
	MaxRate   float64
	MaxLoss   float64
	Precision float64 // relative width at which the bisection stops
	MaxTrials int     // per target's search
	// Retries is how many times a trial that lost too much is run again
	// before the rate counts as failed: on a machine others share, one
	// descheduled moment can lose a trial that the target would pass.
	Retries int
	Gen     string // GenLive or GenXSK
	GenCPU  int    // the CPU the generator is pinned to
	// LiveBatch is how many frames the live generator's kernel loop runs
	// its program on before it flushes the sent ones to the veth (1 to
	// MaxLiveBatch; 0 is LiveBatch).
	LiveBatch int
	Flows     int
	Payload   int
	SrcPorts  []uint16
	WeirBin   string    // the weir binary, for afxdp and socket
	Tag       string    // makes namespace names unique
	Rates     []float64 // if set, trials at these rates instead of the search
	Log       io.Writer // progress, one line a trial
}

// DefaultConfig is a run of about a minute a target.
func DefaultConfig() Config {
	return Config{
		Targets: Targets, Gen: GenLive, Trial: time.Second, Settle: 200 * time.Millisecond,
		Start: 100e3, MaxRate: 4e6, MaxLoss: 0.01, Precision: 0.04, MaxTrials: 12, Retries: 1,
		Flows: 1000, Payload: 64, SrcPorts: []uint16{40001, 40002}, Tag: "run", Log: io.Discard,
	}
}

// CPU is the CPU time a measurement trial cost (Stat.TargetBusySince: other
// CPUs' busy time and the generator CPU's softirq time), the same for the
// generator alone (the DUT dropping every frame in XDP), and their difference
// per packet, the baseline scaled to the measurement's packets.
type CPU struct {
	Rate           float64 // packets a second offered in the measurement trial
	Busy, BaseBusy time.Duration
	Packets        uint64
	Loss           float64 // of the measurement trial (the search's trial at the rate may have done better)
	NsPerPacket    float64
	PerCPU         []float64 // each CPU's busy share during the measurement trial, 0 to 1
}

// Row is one target's outcome.
type Row struct {
	Target  string
	Best    TrialResult   // the highest rate at under MaxLoss; Sent 0 if none
	Trials  []TrialResult // the search's trials
	CPU     CPU
	Checked int // replies compared byte by byte with their requests
	Exact   int // of which identical to the swapped request
	Err     error
}

// Bench is the topology, the generator and the checker for a run.
type Bench struct {
	cfg     Config
	topo    *Topology
	frames  [][]byte
	gen     *Generator // the AF_XDP socket: it receives the sampled replies, and sends with GenXSK
	live    *LiveGenerator
	send    sender
	checker *ebpf.Collection
	genLink link.Link
	tmp     string
}

// New builds the topology, loads the checker on the generator's veth and
// opens the generator. Close undoes it all.
func New(cfg Config) (_ *Bench, err error) {
	if cfg.Gen != GenLive && cfg.Gen != GenXSK {
		return nil, fmt.Errorf("xdpbench: unknown generator %q (want %s)", cfg.Gen, strings.Join(Generators, ", "))
	}
	b := &Bench{cfg: cfg}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	spec := FrameSpec{GenMAC: GenMAC, DutMAC: DutMAC, GenIP: GenIP, DutIP: DutIP,
		SrcPorts: cfg.SrcPorts, Flows: cfg.Flows, Payload: cfg.Payload}
	if b.frames, err = BuildFrames(spec); err != nil {
		return nil, err
	}
	if b.tmp, err = os.MkdirTemp("", "weir-bench-"); err != nil {
		return nil, err
	}
	if b.topo, err = NewTopology(cfg.Tag); err != nil {
		return nil, err
	}
	cs, err := CheckerSpec(CheckerConfig{Spec: spec, GeneveHdr: GeneveCheckedPrefix(b.frames)})
	if err != nil {
		return nil, err
	}
	if b.checker, err = ebpf.NewCollection(cs); err != nil {
		return nil, fmt.Errorf("loading the checker: %+v", err)
	}
	if b.genLink, err = attach(b.topo.Gen, b.topo.GenIndex, b.checker.Programs["wb_check"]); err != nil {
		return nil, fmt.Errorf("attaching the checker: %w", err)
	}
	if b.gen, err = NewGenerator(b.topo.Gen, b.topo.GenIndex, b.frames, cfg.GenCPU); err != nil {
		return nil, err
	}
	if err := b.checker.Maps[MapXSKs].Put(uint32(0), uint32(b.gen.FD())); err != nil {
		return nil, fmt.Errorf("checker's XSKMAP: %w", err)
	}
	b.send = b.gen
	if cfg.Gen == GenLive {
		if b.live, err = NewLiveGenerator(b.topo.Gen, b.topo.GenIndex, b.frames, cfg.GenCPU, cfg.LiveBatch); err != nil {
			return nil, err
		}
		b.send = b.live
	}
	return b, nil
}

// Close removes everything New made.
func (b *Bench) Close() error {
	var errs []error
	if b.live != nil {
		errs = append(errs, b.live.Close())
	}
	if b.gen != nil {
		errs = append(errs, b.gen.Close())
	}
	if b.genLink != nil {
		errs = append(errs, b.genLink.Close())
	}
	if b.checker != nil {
		b.checker.Close()
	}
	if b.topo != nil {
		errs = append(errs, b.topo.Close())
	}
	if b.tmp != "" {
		errs = append(errs, os.RemoveAll(b.tmp))
	}
	return errors.Join(errs...)
}

// Topology is the bench's namespaces.
func (b *Bench) Topology() *Topology { return b.topo }

// attach attaches prog to interface ifindex of namespace ns, in native
// (driver) mode: veth has it, and generic mode would measure a different path.
func attach(ns string, ifindex int, prog *ebpf.Program) (l link.Link, err error) {
	err = netns.Run(ns, func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		return err
	})
	return l, err
}

// Background is the share of all CPUs busy over d with nothing sent: other
// work on the machine, which makes every figure noisier.
func Background(d time.Duration) (float64, error) {
	s0, err := ReadStat()
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	s1, err := ReadStat()
	if err != nil {
		return 0, err
	}
	total := s1.All.Total - s0.All.Total
	if total == 0 {
		return 0, nil
	}
	return float64(s1.All.Busy()-s0.All.Busy()) / float64(total), nil
}

// Counts are the checker's counters summed over CPUs.
type Counts struct{ Good, Bad, Other uint64 }

// Counts reads the checker's counters.
func (b *Bench) Counts() (Counts, error) {
	var sums [numCounts]uint64
	var per []uint64
	for i := range sums {
		if err := b.checker.Maps[MapCounts].Lookup(uint32(i), &per); err != nil {
			return Counts{}, err
		}
		for _, v := range per {
			sums[i] += v
		}
	}
	return Counts{Good: sums[CountGood], Bad: sums[CountBad], Other: sums[CountOther]}, nil
}

// measured is a trial with the CPU time it took.
type measured struct {
	TrialResult
	busy   time.Duration
	perCPU []float64
}

// Trial offers rate for dur and counts the replies that came back by Settle
// after the last send.
func (b *Bench) Trial(ctx context.Context, rate float64, dur time.Duration) (measured, error) {
	if err := ctx.Err(); err != nil {
		return measured{}, err
	}
	c0, err := b.Counts()
	if err != nil {
		return measured{}, err
	}
	s0, err := ReadStat()
	if err != nil {
		return measured{}, err
	}
	sent, err := b.send.Send(rate, dur)
	if err != nil {
		return measured{}, err
	}
	time.Sleep(b.cfg.Settle)
	s1, err := ReadStat()
	if err != nil {
		return measured{}, err
	}
	c1, err := b.Counts()
	if err != nil {
		return measured{}, err
	}
	m := measured{
		TrialResult: TrialResult{Asked: rate, Offered: sent.Rate(), Sent: sent.Sent, Good: c1.Good - c0.Good, Bad: c1.Bad - c0.Bad},
		busy:        s1.TargetBusySince(s0, b.cfg.GenCPU),
	}
	for i := range min(len(s0.PerCPU), len(s1.PerCPU)) {
		if total := s1.PerCPU[i].Total - s0.PerCPU[i].Total; total > 0 {
			m.perCPU = append(m.perCPU, float64(s1.PerCPU[i].Busy()-s0.PerCPU[i].Busy())/float64(total))
		} else {
			m.perCPU = append(m.perCPU, 0)
		}
	}
	fmt.Fprintf(b.cfg.Log, "  %7.0f kpps asked, %7.0f offered: %d sent, %d good, %d bad, loss %.3f%%, busy %v\n",
		rate/1e3, m.Offered/1e3, m.Sent, m.Good, m.Bad, 100*m.Loss(), m.busy)
	return m, nil
}

// ByteCheck sends n requests slowly with the checker handing the replies to
// the generator's socket, and compares each with its request byte by byte.
// It fails on any mismatch, or when fewer than nine in ten come back.
func (b *Bench) ByteCheck(n int) (checked, exact int, err error) {
	sample := b.checker.Maps[MapSample]
	if err := sample.Put(uint32(0), uint32(1)); err != nil {
		return 0, 0, err
	}
	defer sample.Put(uint32(0), uint32(0))
	const rate = 20e3
	if _, err := b.send.Send(rate, time.Duration(float64(n)/rate*float64(time.Second))); err != nil {
		return 0, 0, err
	}
	replies, err := b.gen.Collect(n, time.Second)
	if err != nil {
		return 0, 0, err
	}
	for _, r := range replies {
		flow, err := FlowOf(r)
		if err != nil || flow >= len(b.frames) {
			return checked, exact, fmt.Errorf("reply %d: no flow (%v): % x", checked, err, r)
		}
		ok, err := CheckReply(b.frames[flow], r)
		if err != nil {
			return checked, exact, fmt.Errorf("reply to flow %d: %w", flow, err)
		}
		checked++
		if ok {
			exact++
		}
	}
	if checked*10 < n*9 {
		return checked, exact, fmt.Errorf("only %d of %d replies came back", checked, n)
	}
	return checked, exact, nil
}

// target is something on the DUT side that replies.
type target interface {
	stop() error
}

type xdpTarget struct {
	prog *ebpf.Program
	l    link.Link
}

func (b *Bench) startXDP(spec *ebpf.ProgramSpec) (*xdpTarget, error) {
	prog, err := ebpf.NewProgram(spec)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %+v", spec.Name, err)
	}
	l, err := attach(b.topo.Dut, b.topo.DutIndex, prog)
	if err != nil {
		prog.Close()
		return nil, fmt.Errorf("attaching %s: %w", spec.Name, err)
	}
	return &xdpTarget{prog: prog, l: l}, nil
}

func (t *xdpTarget) stop() error {
	err := t.l.Close()
	t.prog.Close()
	return err
}

// returnAll is the I/O-only pipeline: every datagram goes back untouched.
type returnAll struct{}

func (returnAll) Process(_ *dataplane.Worker, b *dataplane.Batch) {
	for i := range b.Slots[:b.N] {
		b.Slots[i].Verdict = dataplane.VerdictReturn
	}
}

// afxdpIOTarget is the AF_XDP backend running in this process.
type afxdpIOTarget struct {
	cancel context.CancelFunc
	done   chan error
}

func (b *Bench) startAFXDPIO() (target, error) {
	var be *afxdp.Backend
	err := netns.Run(b.topo.Dut, func() (err error) {
		if be, err = afxdp.New(afxdp.Config{Interface: DutIf, GeneveDst: DutIP, NoMirror: true}); err != nil {
			return err
		}
		return be.Open()
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &afxdpIOTarget{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() { t.done <- be.Run(ctx, dataplane.NewPipeline(returnAll{}), func() { close(ready) }) }()
	select {
	case <-ready:
		return t, nil
	case err := <-t.done:
		cancel()
		return nil, err
	}
}

func (t *afxdpIOTarget) stop() error {
	t.cancel()
	return <-t.done
}

// stacked targets stop in order: the first started last.
type stacked []target

func (s stacked) stop() error {
	var errs []error
	for _, t := range s {
		errs = append(errs, t.stop())
	}
	return errors.Join(errs...)
}

// weirTarget is weir running in the DUT namespace.
type weirTarget struct {
	cmd  *exec.Cmd
	logf *os.File
	done chan error
}

// weirConfig is the configuration of weir with backend (afxdp or socket),
// named explicitly: the default, auto, would pick AF_XDP on the DUT's veth.
func weirConfig(backend string, healthPort, metricsPort int) string {
	dp := "dataplane:\n  backend: socket\n"
	if backend == TargetAFXDP {
		dp = fmt.Sprintf("dataplane:\n  backend: afxdp\n  interface: %s\n  queues: 0\n  zerocopy: auto\n", DutIf)
	}
	return fmt.Sprintf(`gwlb:
  listen: %s:6081
%shealth:
  listen: 127.0.0.1:%d
  drain_delay: 0s
metrics:
  listen: 127.0.0.1:%d
policy:
  default: allow
log:
  level: warn
`, DutIP, dp, healthPort, metricsPort)
}

func (b *Bench) startWeir(ctx context.Context, backend string) (*weirTarget, error) {
	if b.cfg.WeirBin == "" {
		return nil, errors.New("no weir binary")
	}
	const healthPort, metricsPort = 18080, 19090
	path := filepath.Join(b.tmp, "weir-"+backend+".yaml")
	if err := os.WriteFile(path, []byte(weirConfig(backend, healthPort, metricsPort)), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(b.tmp, "weir-"+backend+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", b.topo.Dut, b.cfg.WeirBin, "run", "-config", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	// weir dies with the bench, however the bench ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	t := &weirTarget{cmd: cmd, logf: logf, done: make(chan error, 1)}
	go func() { t.done <- cmd.Wait() }()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", healthPort)
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-t.done:
			t.done <- err
			t.stop()
			return nil, fmt.Errorf("weir exited (%v): %s", err, tail(logf.Name()))
		default:
		}
		if healthy(b.topo.Dut, url) {
			return t, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.stop()
			return nil, fmt.Errorf("weir not healthy within 15s: %s", tail(logf.Name()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// healthy asks weir's /healthz from inside namespace ns.
func healthy(ns, url string) bool {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = netns.Run(ns, func() (err error) {
				c, err = (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (t *weirTarget) stop() error {
	defer t.logf.Close()
	t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-t.done:
		t.done <- err
		return nil
	case <-time.After(5 * time.Second):
		t.cmd.Process.Kill()
		<-t.done
		return errors.New("weir did not stop on SIGTERM within 5s")
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

func (b *Bench) start(ctx context.Context, name string) (target, error) {
	switch name {
	case TargetXDPTX:
		return b.startXDP(ReflectorSpec())
	case TargetAFXDP:
		return b.startWeir(ctx, name)
	case TargetSocket:
		pass, err := b.startXDP(PassSpec())
		if err != nil {
			return nil, err
		}
		w, err := b.startWeir(ctx, name)
		if err != nil {
			pass.stop()
			return nil, err
		}
		return stacked{w, pass}, nil
	case TargetDrop:
		return b.startXDP(DropSpec())
	case TargetAFXDPIO:
		return b.startAFXDPIO()
	case TargetXDPFast:
		return b.startXDPFast()
	}
	return nil, fmt.Errorf("unknown target %q (want %s)", name, strings.Join(Targets, ", "))
}

// Measure runs one target: the byte check, the rate search, a measurement
// trial at the rate found, and the generator-only baseline at that rate.
func (b *Bench) Measure(ctx context.Context, name string) Row {
	row := Row{Target: name}
	fmt.Fprintf(b.cfg.Log, "%s:\n", name)
	t, err := b.start(ctx, name)
	if err != nil {
		row.Err = err
		return row
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			if err := t.stop(); err != nil && row.Err == nil {
				row.Err = err
			}
		}
	}
	defer stop()
	if len(b.cfg.Rates) > 0 {
		for _, r := range b.cfg.Rates {
			m, err := b.Trial(ctx, r, b.cfg.Trial)
			if err != nil {
				row.Err = err
				return row
			}
			fmt.Fprintf(b.cfg.Log, "    busy share per CPU %.2f\n", m.perCPU)
		}
		return row
	}
	if row.Checked, row.Exact, err = b.ByteCheck(1000); err != nil {
		row.Err = fmt.Errorf("byte check: %w", err)
		return row
	}
	fmt.Fprintf(b.cfg.Log, "  byte check: %d replies, %d identical to the swapped request\n", row.Checked, row.Exact)
	sc := SearchConfig{Start: b.cfg.Start, Max: b.cfg.MaxRate, MaxLoss: b.cfg.MaxLoss, Precision: b.cfg.Precision, MaxTrials: b.cfg.MaxTrials}
	res, err := Search(sc, func(rate float64) (TrialResult, error) {
		for try := 0; ; try++ {
			m, err := b.Trial(ctx, rate, b.cfg.Trial)
			if m.Bad > 0 && err == nil {
				err = fmt.Errorf("%d bad replies at %.0f pps", m.Bad, rate)
			}
			if err != nil || m.Loss() < b.cfg.MaxLoss || try >= b.cfg.Retries {
				return m.TrialResult, err
			}
		}
	})
	row.Best, row.Trials = res.Best, res.Trials
	if err != nil {
		row.Err = err
		return row
	}
	if row.Best.Sent == 0 {
		return row
	}
	// The CPU figures come from trials twice as long as the search's, for
	// twice the /proc/stat resolution. The longer trial may lose more than
	// the search's did at the same rate: then it is taken again a tenth
	// slower, at most cpuRetries times, so that the figure belongs to a rate
	// the target holds.
	const cpuRetries = 3
	rate := row.Best.Asked
	var m measured
	for try := 0; ; try++ {
		fmt.Fprintf(b.cfg.Log, "  measuring CPU at %.0f kpps\n", rate/1e3)
		if m, err = b.Trial(ctx, rate, 2*b.cfg.Trial); err != nil {
			row.Err = err
			return row
		}
		if m.Loss() < b.cfg.MaxLoss || try == cpuRetries {
			break
		}
		rate *= 0.9
	}
	stop()
	if row.Err != nil {
		return row
	}
	base, err := b.startXDP(DropSpec())
	if err != nil {
		row.Err = err
		return row
	}
	bm, err := b.Trial(ctx, rate, 2*b.cfg.Trial)
	if serr := base.stop(); err == nil {
		err = serr
	}
	if err != nil {
		row.Err = err
		return row
	}
	row.CPU = CPU{Rate: m.Offered, Busy: m.busy, BaseBusy: bm.busy, Packets: m.Sent, Loss: m.Loss(), PerCPU: m.perCPU}
	if m.Sent > 0 && bm.Sent > 0 {
		// The baseline scaled to the measurement's packets; noise can make
		// the difference negative, which means "too small to see".
		base := float64(bm.busy) * float64(m.Sent) / float64(bm.Sent)
		row.CPU.NsPerPacket = max(0, float64(m.busy)-base) / float64(m.Sent)
	}
	return row
}
