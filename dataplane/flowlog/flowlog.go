// Package flowlog writes flow records as VPC Flow Logs do, in the default format
// (version 2): a header line at the start of each new file, as in the files Flow
// Logs delivers to S3, then one line per flow, direction and aggregation interval:
//
//	version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status
//	2 123456789012 eni-0abc 10.0.0.5 10.0.1.9 49152 443 6 10 840 1418530010 1418530070 ACCEPT OK
//
// Records come from the flow table's interval output (flow.Config.OnInterval): each
// direction with packets in the interval is one line, its sender as srcaddr/srcport.
// They are queued by the dataplane and written by one goroutine, so a slow disk never
// stalls packet processing; what a full queue drops is counted.
package flowlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"time"

	"weir/dataplane/flow"
	"weir/dataplane/lines"
	"weir/dataplane/packet"
	"weir/dataplane/policy"
)

// Header is the first line of each new file: the field names of the default format.
const Header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"

// DefaultQueue is the queue length for a zero Config.Queue.
const DefaultQueue = 65536

// Config says where and how to write.
type Config struct {
	Path      string // file to append to ("-" = stdout)
	AccountID string // "" → "-"
	// InterfaceID names the interface a record belongs to (e.g. the mirror session's
	// ENI id); nil, or "", writes "-". It is called by Record, on its caller's
	// goroutine (so possibly concurrently), with the record valid only during the call.
	InterfaceID func(r *flow.Record) string
	Queue       int          // records queued for the writer; default DefaultQueue
	Logger      *slog.Logger // nil means slog.Default()

	reopen func() (io.Writer, io.Closer, string, error) // set by Open
}

// Writer appends flow log lines to a file.
type Writer struct {
	*lines.Writer[item]
	account string
	iface   func(*flow.Record) string
}

// item is what Record copies of a record: both directions of one interval.
type item struct {
	src, dst         netip.Addr
	srcPort, dstPort uint16
	proto            uint8
	reject           bool
	iface            string
	pkts, bytes      [2]uint64 // [0] client to server, [1] server to client
	start, end       [2]int64  // unix seconds
}

// Open opens (appending, creating) the flow log at cfg.Path; "-" writes to stdout.
// The header line is written unless the file is a regular file that is not empty;
// the same goes for the new file Reopen opens after logrotate renamed the old one.
func Open(cfg Config) (*Writer, error) {
	switch cfg.Path {
	case "":
		return nil, errors.New("flowlog: no path")
	case "-":
		return newWriter(os.Stdout, nil, headerOf(os.Stdout), cfg), nil
	}
	open := func() (io.Writer, io.Closer, string, error) {
		f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, "", fmt.Errorf("flowlog: %w", err)
		}
		prefix := ""
		if headerOf(f) {
			prefix = Header + "\n"
		}
		return f, f, prefix, nil
	}
	out, closer, prefix, err := open()
	if err != nil {
		return nil, err
	}
	if fi, err := out.(*os.File).Stat(); err == nil && fi.Mode().IsRegular() {
		cfg.reopen = open // a FIFO or a device: nothing renames it, nothing to reopen
	}
	return newWriter(out, closer, prefix != "", cfg), nil
}

// headerOf says whether f needs the header line: it is not a regular file that
// already holds something.
func headerOf(f *os.File) bool {
	fi, err := f.Stat()
	return err != nil || !fi.Mode().IsRegular() || fi.Size() == 0
}

// newWriter writes to out, starting with the header line if header; Close closes
// closer when not nil.
func newWriter(out io.Writer, closer io.Closer, header bool, cfg Config) *Writer {
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	w := &Writer{account: cfg.AccountID, iface: cfg.InterfaceID}
	if w.account == "" {
		w.account = "-"
	}
	prefix := ""
	if header {
		prefix = Header + "\n"
	}
	w.Writer = lines.New(lines.Config[item]{Out: out, Closer: closer, Queue: cfg.Queue,
		Prefix: prefix, Format: w.format, What: "flow log", Log: cfg.Logger, Reopen: cfg.reopen})
	return w
}

// format writes the line of each direction with packets.
func (w *Writer) format(b []byte, it *item) ([]byte, int) {
	n := 0
	for dir := range 2 {
		if it.pkts[dir] != 0 {
			b = append(it.append(b, w.account, dir), '\n')
			n++
		}
	}
	return b, n
}

// Record queues the lines of r's traffic in interval d, one per direction with
// packets. What it needs of r and d is copied. A record emitted on the packet path
// never waits: when the queue is full its lines are counted as dropped (Dropped). A
// record from housekeeping (r.Background: intervals, timeouts, the flush at stop,
// and everything in replay) waits for room instead. After Close, lines are counted
// as dropped.
func (w *Writer) Record(r *flow.Record, d *flow.Delta) {
	n := uint64(0)
	if d.PktsToServer != 0 {
		n++
	}
	if d.PktsToClient != 0 {
		n++
	}
	if n == 0 {
		return
	}
	it := item{
		src: r.Src, dst: r.Dst, srcPort: r.SrcPort, dstPort: r.DstPort, proto: r.Proto,
		reject: r.Action != policy.Allow,
		pkts:   [2]uint64{d.PktsToServer, d.PktsToClient},
		bytes:  [2]uint64{d.BytesToServer, d.BytesToClient},
		start:  [2]int64{unix(d.FirstToServer), unix(d.FirstToClient)},
		end:    [2]int64{unix(d.LastToServer), unix(d.LastToClient)},
	}
	if w.iface != nil {
		it.iface = w.iface(r)
	}
	if it.iface == "" {
		it.iface = "-"
	}
	w.Put(&it, n, r.Background)
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// append appends the line of direction dir (0 client to server, 1 back).
func (it *item) append(b []byte, account string, dir int) []byte {
	src, dst, sport, dport := it.src, it.dst, it.srcPort, it.dstPort
	if dir == 1 {
		src, dst, sport, dport = dst, src, dport, sport
	}
	return appendLine(b, account, it.iface, src, dst, sport, dport, it.proto,
		it.pkts[dir], it.bytes[dir], it.start[dir], it.end[dir], it.reject)
}

// AppendLine appends the line of one direction of r's traffic in interval d (client
// to server when toServer, else back), without the trailing newline. Empty
// accountID or interfaceID are written "-"; so are start and end when no packet went
// that way (a line the Writer does not write).
func AppendLine(b []byte, accountID, interfaceID string, r *flow.Record, d *flow.Delta, toServer bool) []byte {
	if accountID == "" {
		accountID = "-"
	}
	if interfaceID == "" {
		interfaceID = "-"
	}
	if toServer {
		return appendLine(b, accountID, interfaceID, r.Src, r.Dst, r.SrcPort, r.DstPort, r.Proto,
			d.PktsToServer, d.BytesToServer, unix(d.FirstToServer), unix(d.LastToServer), r.Action != policy.Allow)
	}
	return appendLine(b, accountID, interfaceID, r.Dst, r.Src, r.DstPort, r.SrcPort, r.Proto,
		d.PktsToClient, d.BytesToClient, unix(d.FirstToClient), unix(d.LastToClient), r.Action != policy.Allow)
}

// appendLine appends one line; start and end 0 are written "-".
func appendLine(b []byte, account, iface string, src, dst netip.Addr, sport, dport uint16, proto uint8,
	pkts, bytes uint64, start, end int64, reject bool) []byte {
	if proto == packet.ProtoICMP || proto == packet.ProtoICMPv6 {
		sport, dport = 0, 0 // the flow table keys echo flows by their identifier
	}
	b = append(b, "2 "...)
	b = append(b, account...)
	b = append(b, ' ')
	b = append(b, iface...)
	b = append(b, ' ')
	b = appendAddr(b, src)
	b = append(b, ' ')
	b = appendAddr(b, dst)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(sport), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(dport), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(proto), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, pkts, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, bytes, 10)
	b = append(b, ' ')
	b = appendTime(b, start)
	b = append(b, ' ')
	b = appendTime(b, end)
	if reject {
		b = append(b, " REJECT OK"...)
	} else {
		b = append(b, " ACCEPT OK"...)
	}
	return b
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, '-')
	}
	return a.WithZone("").AppendTo(b)
}

func appendTime(b []byte, t int64) []byte {
	if t == 0 {
		return append(b, '-')
	}
	return strconv.AppendInt(b, t, 10)
}
