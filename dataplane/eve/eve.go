// Package eve writes Suricata-style EVE JSON: one JSON object a line, Suricata's field
// names, plus a "weir" object for what Suricata lacks (GWLB endpoint, attachment, flow
// cookie, mirror session and direction, ACL verdict). Events of every type (flow,
// alert) are queued by the dataplane on one queue and written in order by one
// goroutine, so a slow disk never stalls packet processing; what a full queue drops
// is counted, by event type.
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

// EventType is the kind of an EVE record, its "event_type".
type EventType uint8

// The event types. Stats and anomaly events are to come, before NumEventTypes.
const (
	EventFlow  EventType = iota // a flow ended (flow.Record)
	EventAlert                  // a signature matched a packet (Alert)
	NumEventTypes
)

var eventTypeNames = [NumEventTypes]string{"flow", "alert"}

// String is the event type as EVE writes it in "event_type".
func (t EventType) String() string {
	if t < NumEventTypes {
		return eventTypeNames[t]
	}
	return "unknown"
}

// AlertAction is what became of the packet that raised an alert.
type AlertAction uint8

const (
	AlertAllowed AlertAction = iota // passed (mirror sink, or an inline rule that alerts only)
	AlertBlocked                    // dropped inline
)

// String is the action as Suricata writes it in alert.action.
func (a AlertAction) String() string {
	if a == AlertBlocked {
		return "blocked"
	}
	return "allowed"
}

// Alert is one alert event: a signature that matched a packet of a flow. Signature
// and Category come from the rules, so from the user: they are escaped when written.
type Alert struct {
	Action      AlertAction
	GID         uint32 // generator id: 1 for rules
	SignatureID uint32
	Rev         uint32
	Severity    uint8  // the rule's priority: 1 is the most severe
	Signature   string // the rule's msg
	Category    string // the description of the rule's classtype

	Time             time.Time // the packet's
	FlowID           uint64
	Proto            uint8
	Src, Dst         netip.Addr // the packet's source and destination
	SrcPort, DstPort uint16
	AWS              geneve.AWS  // the GWLB options of the packet
	Tunnel           flow.Tunnel // the packet's outer addressing
	Direction        uint8       // mirror direction of the packet (flow.Direction*)
	Session          uint16      // mirror session index (0 = none)
	// Background is as flow.Record.Background: the alert was raised off the packet
	// path (replay), so Writer.Alert may wait for room rather than drop it.
	Background bool
}

// event is the value the Writer queues: one of the event types, flat and by value so
// that queuing allocates nothing, and no bigger than it must be: an alert keeps its
// flow context (id, 5-tuple, time, AWS, tunnel, direction, session) in rec, the
// fields it shares with a flow record, and only what is its own in sig.
type event struct {
	typ EventType
	rec flow.Record
	sig signature
}

// signature is what an alert adds to its flow context.
type signature struct {
	signature, category string
	gid, id, rev        uint32
	severity            uint8
	action              AlertAction
}

func alertEvent(a *Alert) event {
	return event{
		typ: EventAlert,
		rec: flow.Record{ID: a.FlowID, Proto: a.Proto, Src: a.Src, Dst: a.Dst,
			SrcPort: a.SrcPort, DstPort: a.DstPort, End: a.Time, AWS: a.AWS,
			Tunnel: a.Tunnel, Direction: a.Direction, Session: a.Session, Background: a.Background},
		sig: signature{signature: a.Signature, category: a.Category, gid: a.GID, id: a.SignatureID,
			rev: a.Rev, severity: a.Severity, action: a.Action},
	}
}

// alert rebuilds the Alert of an EventAlert.
func (e *event) alert() Alert {
	r, s := &e.rec, &e.sig
	return Alert{Action: s.action, GID: s.gid, SignatureID: s.id, Rev: s.rev, Severity: s.severity,
		Signature: s.signature, Category: s.category,
		Time: r.End, FlowID: r.ID, Proto: r.Proto, Src: r.Src, Dst: r.Dst, SrcPort: r.SrcPort,
		DstPort: r.DstPort, AWS: r.AWS, Tunnel: r.Tunnel, Direction: r.Direction, Session: r.Session,
		Background: r.Background}
}

// Writer appends EVE records to a file. Every event type goes through one queue and
// one writer goroutine, so records are written in the order they were queued: an
// alert comes before the record of its flow's end.
type Writer struct {
	lw    *lines.Writer[event]
	names atomic.Pointer[[]string]
	rules atomic.Pointer[[]string]
}

// Open opens (appending, creating) the EVE log at path; "-" writes to stdout.
func Open(path string, queue int, log *slog.Logger) (*Writer, error) {
	if path == "-" {
		return newWriter(os.Stdout, nil, queue, log, nil), nil
	}
	open := func() (io.Writer, io.Closer, string, error) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, "", fmt.Errorf("eve: %w", err)
		}
		return f, f, "", nil
	}
	f, c, _, err := open()
	if err != nil {
		return nil, err
	}
	if !regular(f.(*os.File)) {
		open = nil // a FIFO or a device: nothing renames it, nothing to reopen
	}
	return newWriter(f, c, queue, log, open), nil
}

func regular(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular()
}

// New writes EVE records to out; Close closes out.
func New(out io.WriteCloser, queue int, log *slog.Logger) *Writer {
	return newWriter(out, out, queue, log, nil)
}

func newWriter(out io.Writer, closer io.Closer, queue int, log *slog.Logger,
	reopen func() (io.Writer, io.Closer, string, error)) *Writer {
	if queue <= 0 {
		queue = 65536
	}
	w := &Writer{}
	w.lw = lines.New(lines.Config[event]{Out: out, Closer: closer, Queue: queue,
		Format: w.format, Classes: int(NumEventTypes), Class: func(e *event) int { return int(e.typ) },
		What: "eve", Log: log, Reopen: reopen})
	return w
}

func (w *Writer) format(b []byte, e *event) ([]byte, int) {
	switch e.typ {
	case EventFlow:
		b = AppendFlowRules(b, &e.rec, w.sessionNames(), w.ruleNames())
	case EventAlert:
		a := e.alert()
		b = AppendAlertNamed(b, &a, w.sessionNames())
	default:
		return b, 0
	}
	return append(b, '\n'), 1
}

// Flow queues a flow record, r copied. It never blocks a packet worker: a record
// emitted while tracking a packet is dropped and counted when the queue is full. A
// record from housekeeping (r.Background: timeouts, intervals, the flush at stop;
// replay sets it on every record) waits for room instead, so none is lost. After
// Close, records are counted as dropped.
func (w *Writer) Flow(r *flow.Record) {
	e := event{typ: EventFlow, rec: *r}
	w.lw.PutClass(&e, int(EventFlow), 1, r.Background)
}

// Alert queues an alert, a copied, with Flow's rule: dropped and counted when the
// queue is full, unless a.Background, when it waits.
func (w *Writer) Alert(a *Alert) {
	e := alertEvent(a)
	w.lw.PutClass(&e, int(EventAlert), 1, a.Background)
}

// Written is how many records were written, of every type.
func (w *Writer) Written() uint64 { return w.lw.Written() }

// Dropped is how many records were lost to a full queue, or queued after Close, of
// every type.
func (w *Writer) Dropped() uint64 { return w.lw.Dropped() }

// WrittenOf is how many records of type t were written.
func (w *Writer) WrittenOf(t EventType) uint64 { return w.lw.WrittenClass(int(t)) }

// DroppedOf is how many records of type t were dropped.
func (w *Writer) DroppedOf(t EventType) uint64 { return w.lw.DroppedClass(int(t)) }

// Close writes what is queued, flushes, closes, and returns the first write error.
func (w *Writer) Close() error { return w.lw.Close() }

// Reopen continues the log in a new file at its path, after logrotate renamed the
// old one: every record goes to exactly one of the two, in order, and none waits
// for it. A writer to stdout or to a given io.WriteCloser has nothing to reopen.
func (w *Writer) Reopen() error { return w.lw.Reopen() }

// CanReopen reports whether the log is a file that Reopen opens again.
func (w *Writer) CanReopen() bool { return w.lw.CanReopen() }

// SetSessionNames names mirror sessions by index (Record.Session) for weir.session.
func (w *Writer) SetSessionNames(names []string) { w.names.Store(&names) }

// SetRuleNames names the policy's rules by index (Record.Rule) for weir.rule:
// policy.Rule.Label, the rule's name or "rules[N]". It may be called again when the
// policy changes; records written after it use the new names.
func (w *Writer) SetRuleNames(names []string) { w.rules.Store(&names) }

func (w *Writer) ruleNames() []string {
	if p := w.rules.Load(); p != nil {
		return *p
	}
	return nil
}

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
	return AppendFlowRules(b, r, sessions, nil)
}

// AppendFlowRules is AppendFlowNamed with the names of the policy's rules, indexed
// by Record.Rule, for weir.rule: the rule that decided the flow, written only when
// one did (not the default action, not a mirrored flow). A rule without a name in
// rules is written "rules[N]", N its index in policy.rules.
func AppendFlowRules(b []byte, r *flow.Record, sessions, rules []string) []byte {
	b = appendHead(b, r.End, r.ID, EventFlow, r.Proto, r.Src, r.Dst, r.SrcPort, r.DstPort)
	b = append(b, `,"flow":{"pkts_toserver":`...)
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
	b = appendTunnel(b, &r.Tunnel)
	b = append(b, `,"weir":{`...)
	b = appendContext(b, &r.Tunnel, &r.AWS, r.Direction, r.Session, sessions)
	if r.Rule >= 0 {
		b = append(b, `"rule":`...)
		if r.Rule < len(rules) && rules[r.Rule] != "" {
			b = appendString(b, rules[r.Rule])
		} else {
			b = append(b, `"rules[`...)
			b = strconv.AppendInt(b, int64(r.Rule), 10)
			b = append(b, `]"`...)
		}
		b = append(b, ',')
	}
	b = append(b, `"action":"`...)
	b = append(b, r.Action.String()...)
	b = append(b, `"}}`...)
	return b
}

// AppendAlert appends one EVE "alert" event for a, without the trailing newline.
func AppendAlert(b []byte, a *Alert) []byte { return AppendAlertNamed(b, a, nil) }

// AppendAlertNamed is AppendAlert with the names of mirror sessions, indexed by
// Alert.Session, for weir.session.
func AppendAlertNamed(b []byte, a *Alert, sessions []string) []byte {
	b = appendHead(b, a.Time, a.FlowID, EventAlert, a.Proto, a.Src, a.Dst, a.SrcPort, a.DstPort)
	b = append(b, `,"alert":{"action":"`...)
	b = append(b, a.Action.String()...)
	b = append(b, `","gid":`...)
	b = strconv.AppendUint(b, uint64(a.GID), 10)
	b = append(b, `,"signature_id":`...)
	b = strconv.AppendUint(b, uint64(a.SignatureID), 10)
	b = append(b, `,"rev":`...)
	b = strconv.AppendUint(b, uint64(a.Rev), 10)
	b = append(b, `,"signature":`...)
	b = appendString(b, a.Signature)
	b = append(b, `,"category":`...)
	b = appendString(b, a.Category)
	b = append(b, `,"severity":`...)
	b = strconv.AppendUint(b, uint64(a.Severity), 10)
	b = append(b, '}')
	b = appendTunnel(b, &a.Tunnel)
	const weir = `,"weir":{`
	b = append(b, weir...)
	b = appendContext(b, &a.Tunnel, &a.AWS, a.Direction, a.Session, sessions)
	switch b[len(b)-1] {
	case '{': // nothing to say: no weir object
		b = b[:len(b)-len(weir)]
	case ',':
		b[len(b)-1] = '}'
	}
	return append(b, '}')
}

// appendHead opens an event with the fields every event about a packet or a flow
// starts with, from "timestamp" to "proto".
func appendHead(b []byte, ts time.Time, id uint64, typ EventType, proto uint8, src, dst netip.Addr, sport, dport uint16) []byte {
	b = append(b, `{"timestamp":"`...)
	b = ts.AppendFormat(b, TimeFormat)
	b = append(b, `","flow_id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"event_type":"`...)
	b = append(b, typ.String()...)
	b = append(b, `","src_ip":`...)
	b = appendAddr(b, src)
	hasPorts := proto == packet.ProtoTCP || proto == packet.ProtoUDP
	if hasPorts {
		b = append(b, `,"src_port":`...)
		b = strconv.AppendUint(b, uint64(sport), 10)
	}
	b = append(b, `,"dest_ip":`...)
	b = appendAddr(b, dst)
	if hasPorts {
		b = append(b, `,"dest_port":`...)
		b = strconv.AppendUint(b, uint64(dport), 10)
	}
	b = append(b, `,"proto":"`...)
	b = append(b, ProtoName(proto)...)
	return append(b, '"')
}

// appendTunnel appends Suricata's tunnel object, when there is a tunnel.
func appendTunnel(b []byte, t *flow.Tunnel) []byte {
	if t.Encap == flow.EncapNone {
		return b
	}
	b = append(b, `,"tunnel":{"src_ip":`...)
	b = appendAddr(b, t.Src)
	b = append(b, `,"dest_ip":`...)
	b = appendAddr(b, t.Dst)
	b = append(b, `,"src_port":`...)
	b = strconv.AppendUint(b, uint64(t.SrcPort), 10)
	b = append(b, `,"dest_port":`...)
	b = strconv.AppendUint(b, uint64(t.DstPort), 10)
	return append(b, `,"proto":"UDP","depth":1}`...)
}

// appendContext appends the members of the weir object that say where the traffic
// came from (mirror session and direction, or GWLB options), each followed by a comma.
func appendContext(b []byte, t *flow.Tunnel, aws *geneve.AWS, direction uint8, session uint16, sessions []string) []byte {
	if t.Encap != flow.EncapVXLAN {
		return appendWeir(b, aws)
	}
	b = append(b, `"encap":"vxlan","vni":`...)
	b = strconv.AppendUint(b, uint64(t.VNI), 10)
	if int(session) < len(sessions) && session != 0 {
		b = append(b, `,"session":`...)
		b = appendString(b, sessions[session])
	}
	b = append(b, `,"direction":"`...)
	b = append(b, directionNames[min(int(direction), len(directionNames)-1)]...)
	return append(b, `",`...)
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

func appendHex8(b []byte, v uint8) []byte { return appendHex(b, uint64(v), 2) }

func appendHex(b []byte, v uint64, digits int) []byte {
	for i := digits - 1; i >= 0; i-- {
		b = append(b, hexDigits[(v>>(4*uint(i)))&0xf])
	}
	return b
}
