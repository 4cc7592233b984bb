// Package pcapin is the capture-file backend: it reads pcap and pcapng files and
// runs their packets through the pipeline as the socket backend runs datagrams, so
// that weir replay exercises the same path as weir run. Each packet is processed
// with its own capture time, and a hook hears that time so the caller can run its
// housekeeping on capture time (see Clock). Nothing is sent: a verdict to return a
// packet is counted but has nowhere to go.
package pcapin

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket/layers"

	"weir/dataplane"
)

// Config configures the backend.
type Config struct {
	Files []string // read in order, pcap or pcapng (optionally gzip-compressed)
	// OnTime, if set, is called after each packet with its capture time (unix ns).
	OnTime func(now int64)
	// Progress, if set, gets a progress line per file, rewritten in place: give it a
	// terminal.
	Progress io.Writer
	// OnPacket, if set, sees each readable frame's slot after the pipeline ran over
	// it (weir replay's census of the capture).
	OnPacket func(s *dataplane.Slot)
}

// Backend reads capture files into a pipeline.
type Backend struct {
	cfg        Config
	last       int64 // newest capture time seen, unix ns
	unreadable uint64
	unknown    map[layers.LinkType]uint64 // frames of link types Classify cannot read
	readable   uint64
	packets    uint64
}

// New makes the backend; files are opened by Run.
func New(cfg Config) *Backend { return &Backend{cfg: cfg} }

// Name says the backend.
func (b *Backend) Name() string { return fmt.Sprintf("pcapin (%d capture files)", len(b.cfg.Files)) }

// Run reads every file in turn through p, one packet per batch so that each carries
// its own capture time. It returns at the end of the last file, on the first error
// (naming the file and the packet), or with ctx's error when ctx ends first. ready
// is called before the first file is opened.
func (b *Backend) Run(ctx context.Context, p *dataplane.Pipeline, ready func()) error {
	w := p.NewWorker()
	batch := dataplane.NewBatch(1)
	if ready != nil {
		ready()
	}
	for _, path := range b.cfg.Files {
		if err := b.file(ctx, path, w, batch); err != nil {
			return err
		}
	}
	return nil
}

// Last is the newest capture time seen (unix ns), 0 before any packet: the time to
// flush the flows at when the capture ends.
func (b *Backend) Last() int64 { return b.last }

// Unreadable is how many frames not even an outer header could be read from (an
// unknown link type, a cooked header of another protocol).
func (b *Backend) Unreadable() uint64 { return b.unreadable }

// UnknownLinkTypes is how many frames of each link type that weir cannot read at
// all were skipped (they are also counted by Unreadable).
func (b *Backend) UnknownLinkTypes() map[layers.LinkType]uint64 { return b.unknown }

// Readable is how many frames went through the pipeline.
func (b *Backend) Readable() uint64 { return b.readable }

// Packets is how many records were read.
func (b *Backend) Packets() uint64 { return b.packets }

// counting counts bytes read, for progress.
type counting struct {
	r io.Reader
	n int64
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (b *Backend) file(ctx context.Context, path string, w *dataplane.Worker, batch *dataplane.Batch) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	cr := &counting{r: f}
	src, err := openSource(cr)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	done := ctx.Done()
	lastShown := time.Now()
	for n := 0; ; n++ {
		select {
		case <-done:
			return ctx.Err()
		default:
		}
		link, ts, data, err := src.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: packet %d: %w", path, n+1, err)
		}
		b.packets++
		b.packet(w, batch, link, ts, data)
		if b.cfg.Progress != nil && n%4096 == 0 && time.Since(lastShown) > 200*time.Millisecond {
			lastShown = time.Now()
			fmt.Fprintf(b.cfg.Progress, "\r%s: %d packets, %d%%", path, n+1, 100*cr.n/max(st.Size(), 1))
		}
	}
	if b.cfg.Progress != nil {
		fmt.Fprintf(b.cfg.Progress, "\r%s: done%30s\n", path, "")
	}
	return nil
}

// packet sorts one captured frame into the slot and runs the pipeline over it.
func (b *Backend) packet(w *dataplane.Worker, batch *dataplane.Batch, link layers.LinkType, ts int64, data []byte) {
	s := &batch.Slots[0]
	s.Reset()
	if !Classify(s, link, data) {
		b.unreadable++
		if !ReadsLinkType(link) {
			if b.unknown == nil {
				b.unknown = map[layers.LinkType]uint64{}
			}
			b.unknown[link]++
		}
		return
	}
	b.readable++
	b.last = max(b.last, ts)
	s.Time, s.PcapCnt = ts, b.packets
	batch.N, batch.Now = 1, ts
	w.Process(batch)
	if b.cfg.OnPacket != nil {
		b.cfg.OnPacket(s)
	}
	if b.cfg.OnTime != nil {
		b.cfg.OnTime(ts)
	}
}
