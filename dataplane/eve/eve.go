// Package eve writes Suricata-style EVE JSON: one JSON object a line, Suricata's field
// names, plus a "weir" object for what Suricata lacks (GWLB endpoint, attachment, flow
// cookie, ACL verdict). Records are queued by the dataplane and written by one
// goroutine, so a slow disk never stalls packet processing; what a full queue drops
// is counted.
package eve

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"weir/dataplane/flow"
	"weir/dataplane/lines"
	"weir/dataplane/packet"
	"weir/geneve"
)

// TimeFormat is Suricata's EVE timestamp layout.
const TimeFormat = "2006-01-02T15:04:05.000000-0700"

// Writer appends EVE records to a file.
type Writer struct {
	*lines.Writer[flow.Record]
	names atomic.Pointer[[]string]
}

// Open opens (appending, creating) the EVE log at path; "-" writes to stdout.
func Open(path string, queue int, log *slog.Logger) (*Writer, error) {
	if path == "-" {
		return newWriter(os.Stdout, nil, queue, log), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("eve: %w", err)
	}
	return newWriter(f, f, queue, log), nil
}

// New writes EVE records to out; Close closes out.
func New(out io.WriteCloser, queue int, log *slog.Logger) *Writer {
	return newWriter(out, out, queue, log)
}

func newWriter(out io.Writer, closer io.Closer, queue int, log *slog.Logger) *Writer {
	if queue <= 0 {
		queue = 65536
	}
	w := &Writer{}
	w.Writer = lines.New(lines.Config[flow.Record]{Out: out, Closer: closer, Queue: queue,
		Format: func(b []byte, r *flow.Record) ([]byte, int) {
			return append(AppendFlowNamed(b, r, w.sessionNames()), '\n'), 1
		}, What: "eve", Log: log})
	return w
}

// Flow queues a flow record, r copied. It never blocks a packet worker: a record
// emitted while tracking a packet is dropped and counted when the queue is full. A
// record from housekeeping (r.Background: timeouts, intervals, the flush at stop)
// waits for room instead, so none is lost at shutdown. After Close, records are
// counted as dropped.
func (w *Writer) Flow(r *flow.Record) { w.Put(r, 1, r.Background) }

// SetSessionNames names mirror sessions by index (Record.Session) for weir.session.
func (w *Writer) SetSessionNames(names []string) { w.names.Store(&names) }

func (w *Writer) sessionNames() []string {
	if p := w.names.Load(); p != nil {
		return *p
	}
	return nil
}

// ProtoName is the protocol name Suricata writes in "proto".
func ProtoName(p uint8) string {
	switch p {
	case packet.ProtoTCP:
		return "TCP"
	case packet.ProtoUDP:
		return "UDP"
	case packet.ProtoICMP:
		return "ICMP"
	case packet.ProtoICMPv6:
		return "IPv6-ICMP"
	}
	return strconv.Itoa(int(p))
}

// EndpointID formats a GWLB endpoint id as AWS writes it (vpce- and 17 hex digits).
func EndpointID(v uint64) string { return string(appendEndpointID(nil, v)) }

func appendEndpointID(b []byte, v uint64) []byte {
	b = append(b, "vpce-"...)
	return appendHex(b, v, 17)
}

// AppendFlow appends one EVE "flow" event for r, without the trailing newline.
func AppendFlow(b []byte, r *flow.Record) []byte { return AppendFlowNamed(b, r, nil) }

// AppendFlowNamed is AppendFlow with the names of mirror sessions, indexed by
// Record.Session, for weir.session.
func AppendFlowNamed(b []byte, r *flow.Record, sessions []string) []byte {
	b = append(b, `{"timestamp":"`...)
	b = r.End.AppendFormat(b, TimeFormat)
	b = append(b, `","flow_id":`...)
	b = strconv.AppendUint(b, r.ID, 10)
	b = append(b, `,"event_type":"flow","src_ip":`...)
	b = appendAddr(b, r.Src)
	hasPorts := r.Proto == packet.ProtoTCP || r.Proto == packet.ProtoUDP
	if hasPorts {
		b = append(b, `,"src_port":`...)
		b = strconv.AppendUint(b, uint64(r.SrcPort), 10)
	}
	b = append(b, `,"dest_ip":`...)
	b = appendAddr(b, r.Dst)
	if hasPorts {
		b = append(b, `,"dest_port":`...)
		b = strconv.AppendUint(b, uint64(r.DstPort), 10)
	}
	b = append(b, `,"proto":"`...)
	b = append(b, ProtoName(r.Proto)...)
	b = append(b, `","flow":{"pkts_toserver":`...)
	b = strconv.AppendUint(b, r.PktsToServer, 10)
	b = append(b, `,"pkts_toclient":`...)
	b = strconv.AppendUint(b, r.PktsToClient, 10)
	b = append(b, `,"bytes_toserver":`...)
	b = strconv.AppendUint(b, r.BytesToServer, 10)
	b = append(b, `,"bytes_toclient":`...)
	b = strconv.AppendUint(b, r.BytesToClient, 10)
	b = append(b, `,"start":"`...)
	b = r.Start.AppendFormat(b, TimeFormat)
	b = append(b, `","end":"`...)
	b = r.End.AppendFormat(b, TimeFormat)
	b = append(b, `","age":`...)
	b = strconv.AppendInt(b, int64(r.End.Sub(r.Start)/time.Second), 10)
	b = append(b, `,"state":"`...)
	b = append(b, r.State.String()...)
	b = append(b, `","reason":"`...)
	b = append(b, r.Reason.String()...)
	b = append(b, `","alerted":false}`...)
	if r.Proto == packet.ProtoTCP {
		b = append(b, `,"tcp":{"tcp_flags":"`...)
		b = appendHex8(b, r.TCPFlagsToServer|r.TCPFlagsToClient)
		b = append(b, `","tcp_flags_ts":"`...)
		b = appendHex8(b, r.TCPFlagsToServer)
		b = append(b, `","tcp_flags_tc":"`...)
		b = appendHex8(b, r.TCPFlagsToClient)
		b = append(b, '"')
		for _, f := range tcpFlagNames {
			if (r.TCPFlagsToServer|r.TCPFlagsToClient)&f.bit != 0 {
				b = append(b, `,"`...)
				b = append(b, f.name...)
				b = append(b, `":true`...)
			}
		}
		b = append(b, '}')
	}
	if t := &r.Tunnel; t.Encap != flow.EncapNone {
		b = append(b, `,"tunnel":{"src_ip":`...)
		b = appendAddr(b, t.Src)
		b = append(b, `,"dest_ip":`...)
		b = appendAddr(b, t.Dst)
		b = append(b, `,"src_port":`...)
		b = strconv.AppendUint(b, uint64(t.SrcPort), 10)
		b = append(b, `,"dest_port":`...)
		b = strconv.AppendUint(b, uint64(t.DstPort), 10)
		b = append(b, `,"proto":"UDP","depth":1}`...)
	}
	b = append(b, `,"weir":{`...)
	if r.Tunnel.Encap == flow.EncapVXLAN {
		b = append(b, `"encap":"vxlan","vni":`...)
		b = strconv.AppendUint(b, uint64(r.Tunnel.VNI), 10)
		if int(r.Session) < len(sessions) && r.Session != 0 {
			b = append(b, `,"session":`...)
			b = strconv.AppendQuote(b, sessions[r.Session])
		}
		b = append(b, `,"direction":"`...)
		b = append(b, directionNames[min(int(r.Direction), len(directionNames)-1)]...)
		b = append(b, `",`...)
	} else {
		b = appendWeir(b, &r.AWS)
	}
	b = append(b, `"action":"`...)
	b = append(b, r.Action.String()...)
	b = append(b, `"}}`...)
	return b
}

// directionNames name flow.Record.Direction: the side of the mirrored ENI the
// client's packets were on.
var directionNames = [...]string{"unknown", "ingress", "egress", "unknown"}

var tcpFlagNames = [...]struct {
	bit  uint8
	name string
}{
	{packet.TCPFin, "fin"}, {packet.TCPSyn, "syn"}, {packet.TCPRst, "rst"},
	{packet.TCPPsh, "psh"}, {packet.TCPAck, "ack"},
}

func appendWeir(b []byte, a *geneve.AWS) []byte {
	if a.Present == 0 {
		return b
	}
	b = append(b, `"encap":"geneve",`...)
	if a.Has(geneve.AWSTypeEndpointID) {
		b = append(b, `"gwlb_endpoint_id":"`...)
		b = appendEndpointID(b, a.EndpointID)
		b = append(b, `",`...)
	}
	if a.Has(geneve.AWSTypeAttachmentID) {
		b = append(b, `"gwlb_attachment_id":"`...)
		b = appendHex(b, a.AttachmentID, 16)
		b = append(b, `",`...)
	}
	if a.Has(geneve.AWSTypeFlowCookie) {
		b = append(b, `"gwlb_flow_cookie":"`...)
		b = appendHex(b, uint64(a.FlowCookie), 8)
		b = append(b, `",`...)
	}
	return b
}

func appendAddr(b []byte, a netip.Addr) []byte {
	b = append(b, '"')
	b = a.AppendTo(b)
	return append(b, '"')
}

func appendHex8(b []byte, v uint8) []byte { return appendHex(b, uint64(v), 2) }

func appendHex(b []byte, v uint64, digits int) []byte {
	const hexd = "0123456789abcdef"
	for i := digits - 1; i >= 0; i-- {
		b = append(b, hexd[(v>>(4*uint(i)))&0xf])
	}
	return b
}
