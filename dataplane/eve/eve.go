// Package eve writes Suricata-style EVE JSON: one JSON object a line, Suricata's field
// names, plus a "weir" object for what Suricata lacks (GWLB endpoint, attachment, flow
// cookie, mirror session and direction, ACL verdict). Events of every type (flow,
// alert) are queued by the dataplane on one queue and written in order by one
// goroutine, so a slow disk never stalls packet processing; what a full queue drops
// is counted, by event type.
package eve

import (
	"encoding/base64"
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
// and Category come from the rules, DNSQuery and TLSSNI from the network: all are
// escaped when written.
type Alert struct {
	Action      AlertAction
	GID         uint32 // generator id: 1 for rules
	SignatureID uint32
	Rev         uint32
	Severity    uint8  // the rule's priority: 1 is the most severe
	Signature   string // the rule's msg
	Category    string // the description of the rule's classtype; "" (no classtype) is left out
	// Metadata is the rule's metadata as a JSON object of arrays
	// ({"signature_severity":["Major"]}), written as alert.metadata as Suricata
	// does; built once per rule, it is written as it is.
	Metadata []byte

	Time             time.Time // the packet's
	PcapCnt          uint64    // the packet's number in the capture file (replay); 0 live, not written
	FlowID           uint64    // 0: the packet has no flow, and the alert no direction or flow object
	Proto            uint8
	Src, Dst         netip.Addr // the packet's source and destination
	SrcPort, DstPort uint16
	AWS              geneve.AWS  // the GWLB options of the packet
	Tunnel           flow.Tunnel // the packet's outer addressing (GENEVE, VXLAN)
	// InnerTunnel is IP-in-IP or GRE found inside the inspected traffic, under
	// Tunnel if any: Src and Dst are the outermost such header's.
	InnerTunnel IPTunnel
	Direction   uint8  // mirror direction of the packet (flow.Direction*)
	Session     uint16 // mirror session index (0 = none)

	ToServer bool      // the packet went client to server ("direction")
	Flow     FlowState // the flow at the packet, for the alert's flow object

	// AppProto is the flow's application protocol. DNSQuery and DNSType make the
	// alert's dns object and TLSSNI its tls object, each written when not empty.
	AppProto AppProto
	DNSQuery string // the query name
	DNSType  uint16 // the query type (QTYPE)
	TLSSNI   string // the ClientHello's server name

	HasEther       bool // the packet had an Ethernet header: SrcMAC and DstMAC are set
	SrcMAC, DstMAC [6]byte

	// Packet is the packet's bytes for "packet" (base64), with LinkType its pcap
	// link type; nil writes neither. Writer.Alert keeps the slice, not a copy, until
	// the alert is written: pass bytes that nothing reuses (not a ring buffer's).
	Packet   []byte
	LinkType uint16

	// Background is as flow.Record.Background: the alert was raised off the packet
	// path (replay), so Writer.Alert may wait for room rather than drop it.
	Background bool
}

// FlowState is what an alert's flow object says of the flow, Suricata's EveAddFlow:
// its counters and its first packet's time, as they were at the alerting packet.
type FlowState struct {
	PktsToServer, PktsToClient   uint64
	BytesToServer, BytesToClient uint64
	Start                        time.Time
}

// IPTunnel is a tunnel inside the inspected traffic: IP-in-IP (Proto 4 or 41) or
// GRE (47), Depth such layers deep (0 counts as 1). A zero IPTunnel is none.
type IPTunnel struct {
	Src, Dst netip.Addr
	Proto    uint8
	Depth    uint8
}

// AppProto is an application protocol Suricata names in "app_proto".
type AppProto uint8

const (
	AppProtoNone AppProto = iota // unknown or not detected: no app_proto
	AppProtoDNS
	AppProtoTLS
)

// String is the name Suricata writes in "app_proto", "" for AppProtoNone.
func (p AppProto) String() string {
	switch p {
	case AppProtoDNS:
		return "dns"
	case AppProtoTLS:
		return "tls"
	}
	return ""
}

// event is the value the Writer queues: one of the event types, flat and by value so
// that queuing allocates nothing, and no bigger than it must be: an alert keeps its
// flow context (id, 5-tuple, time, counters, start, AWS, tunnel, direction, session)
// in rec, the fields it shares with a flow record, and only what is its own in sig.
type event struct {
	typ EventType
	rec flow.Record
	sig signature
}

// signature is what an alert adds to its flow context. Its fixed-size fields come
// first and the ones that hold pointers (strings, addresses, the packet) after.
type signature struct {
	gid, id, rev     uint32
	severity         uint8
	action           AlertAction
	appProto         AppProto
	toServer         bool
	hasEther         bool
	dnsType          uint16
	linkType         uint16
	srcMAC, dstMAC   [6]byte
	pcapCnt          uint64
	inner            IPTunnel
	signature        string
	category         string
	dnsQuery, tlsSNI string
	packet           []byte
	metadata         []byte
}

func alertEvent(a *Alert) event {
	return event{
		typ: EventAlert,
		rec: flow.Record{ID: a.FlowID, Proto: a.Proto, Src: a.Src, Dst: a.Dst,
			SrcPort: a.SrcPort, DstPort: a.DstPort, Start: a.Flow.Start, End: a.Time,
			PktsToServer: a.Flow.PktsToServer, PktsToClient: a.Flow.PktsToClient,
			BytesToServer: a.Flow.BytesToServer, BytesToClient: a.Flow.BytesToClient,
			AWS: a.AWS, Tunnel: a.Tunnel, Direction: a.Direction, Session: a.Session, Background: a.Background},
		sig: signature{signature: a.Signature, category: a.Category, gid: a.GID, id: a.SignatureID,
			rev: a.Rev, severity: a.Severity, action: a.Action, appProto: a.AppProto, toServer: a.ToServer,
			hasEther: a.HasEther, dnsType: a.DNSType, linkType: a.LinkType, srcMAC: a.SrcMAC, dstMAC: a.DstMAC,
			pcapCnt: a.PcapCnt, inner: a.InnerTunnel, dnsQuery: a.DNSQuery, tlsSNI: a.TLSSNI, packet: a.Packet,
			metadata: a.Metadata},
	}
}

// alert rebuilds the Alert of an EventAlert.
func (e *event) alert() Alert {
	r, s := &e.rec, &e.sig
	return Alert{Action: s.action, GID: s.gid, SignatureID: s.id, Rev: s.rev, Severity: s.severity,
		Signature: s.signature, Category: s.category, Metadata: s.metadata,
		Time: r.End, PcapCnt: s.pcapCnt, FlowID: r.ID, Proto: r.Proto, Src: r.Src, Dst: r.Dst, SrcPort: r.SrcPort,
		DstPort: r.DstPort, AWS: r.AWS, Tunnel: r.Tunnel, InnerTunnel: s.inner, Direction: r.Direction,
		Session: r.Session, ToServer: s.toServer,
		Flow: FlowState{PktsToServer: r.PktsToServer, PktsToClient: r.PktsToClient,
			BytesToServer: r.BytesToServer, BytesToClient: r.BytesToClient, Start: r.Start},
		AppProto: s.appProto, DNSQuery: s.dnsQuery, DNSType: s.dnsType, TLSSNI: s.tlsSNI,
		HasEther: s.hasEther, SrcMAC: s.srcMAC, DstMAC: s.dstMAC, Packet: s.packet, LinkType: s.linkType,
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

// The IP protocols that carry tunnels inside inspected traffic (InnerTunnel.Proto).
const (
	protoIPv4 = 4  // IP-in-IP
	protoIPv6 = 41 // IPv6 in IP
	protoGRE  = 47
)

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
	case protoIPv4:
		return "IPv4"
	case protoIPv6:
		return "IPv6"
	case protoGRE:
		return "GRE"
	}
	return strconv.Itoa(int(p))
}

// appendProtoName appends ProtoName(p) without making a string of a number.
func appendProtoName(b []byte, p uint8) []byte {
	switch p {
	case packet.ProtoTCP, packet.ProtoUDP, packet.ProtoICMP, packet.ProtoICMPv6, protoIPv4, protoIPv6, protoGRE:
		return append(b, ProtoName(p)...)
	}
	return strconv.AppendUint(b, uint64(p), 10)
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
	b = appendHead(b, r.End, r.ID, 0, EventFlow, r.Proto, r.Src, r.Dst, r.SrcPort, r.DstPort)
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
	b = append(b, `","alerted":`...)
	b = strconv.AppendBool(b, r.Alerts > 0)
	b = append(b, '}')
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
	if r.Alerts > 0 {
		b = append(b, `"alerts":`...)
		b = strconv.AppendUint(b, uint64(r.Alerts), 10)
		b = append(b, ',')
	}
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
// Alert.Session, for weir.session. Fields are in Suricata 8's order: the header
// (pcap_cnt, ip_v, pkt_src, ether), alert, tunnel, the app-layer object, app_proto,
// direction, flow, packet and packet_info, then weir.
func AppendAlertNamed(b []byte, a *Alert, sessions []string) []byte {
	b = appendHead(b, a.Time, a.FlowID, a.PcapCnt, EventAlert, a.Proto, a.Src, a.Dst, a.SrcPort, a.DstPort)
	b = append(b, `,"pkt_src":"`...)
	b = append(b, pktSrc(a)...)
	b = append(b, '"')
	if a.HasEther {
		b = append(b, `,"ether":{"src_mac":`...)
		b = appendMAC(b, &a.SrcMAC)
		b = append(b, `,"dest_mac":`...)
		b = appendMAC(b, &a.DstMAC)
		b = append(b, '}')
	}
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
	if a.Category != "" { // as Suricata: no category without a classtype
		b = append(b, `,"category":`...)
		b = appendString(b, a.Category)
	}
	b = append(b, `,"severity":`...)
	b = strconv.AppendUint(b, uint64(a.Severity), 10)
	if len(a.Metadata) != 0 {
		b = append(b, `,"metadata":`...)
		b = append(b, a.Metadata...)
	}
	b = append(b, '}')
	b = appendAlertTunnel(b, a)
	if a.DNSQuery != "" {
		// Suricata 8 logs DNS in alerts in its v3 format; this is its query part.
		b = append(b, `,"dns":{"queries":[{"rrname":`...)
		b = appendString(b, a.DNSQuery)
		b = append(b, `,"rrtype":"`...)
		b = appendRRType(b, a.DNSType)
		b = append(b, `"}]}`...)
	}
	if a.TLSSNI != "" {
		b = append(b, `,"tls":{"sni":`...)
		b = appendString(b, a.TLSSNI)
		b = append(b, '}')
	}
	if name := a.AppProto.String(); name != "" {
		b = append(b, `,"app_proto":"`...)
		b = append(b, name...)
		b = append(b, '"')
	}
	if a.FlowID != 0 {
		b = appendAlertFlow(b, a)
	}
	if a.Packet != nil {
		b = append(b, `,"packet":"`...)
		b = base64.StdEncoding.AppendEncode(b, a.Packet)
		b = append(b, `","packet_info":{"linktype":`...)
		b = strconv.AppendUint(b, uint64(a.LinkType), 10)
		b = append(b, `,"linktype_name":"`...)
		b = append(b, linkTypeName(a.LinkType)...)
		b = append(b, `"}`...)
	}
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

// appendAlertFlow appends an alert's direction and flow object. The flow object's
// addresses and ports are the flow's, client first: the packet's swapped when it
// went to the client. Like Suricata, it leaves the ports out when the packet's
// source port is 0.
func appendAlertFlow(b []byte, a *Alert) []byte {
	if a.ToServer {
		b = append(b, `,"direction":"to_server"`...)
	} else {
		b = append(b, `,"direction":"to_client"`...)
	}
	f := &a.Flow
	b = append(b, `,"flow":{"pkts_toserver":`...)
	b = strconv.AppendUint(b, f.PktsToServer, 10)
	b = append(b, `,"pkts_toclient":`...)
	b = strconv.AppendUint(b, f.PktsToClient, 10)
	b = append(b, `,"bytes_toserver":`...)
	b = strconv.AppendUint(b, f.BytesToServer, 10)
	b = append(b, `,"bytes_toclient":`...)
	b = strconv.AppendUint(b, f.BytesToClient, 10)
	b = append(b, `,"start":"`...)
	b = f.Start.AppendFormat(b, TimeFormat)
	src, dst, sport, dport := a.Src, a.Dst, a.SrcPort, a.DstPort
	if !a.ToServer {
		src, dst, sport, dport = dst, src, dport, sport
	}
	b = append(b, `","src_ip":`...)
	b = appendAddr(b, src)
	b = append(b, `,"dest_ip":`...)
	b = appendAddr(b, dst)
	if hasPorts(a.Proto) && a.SrcPort > 0 {
		b = append(b, `,"src_port":`...)
		b = strconv.AppendUint(b, uint64(sport), 10)
		b = append(b, `,"dest_port":`...)
		b = strconv.AppendUint(b, uint64(dport), 10)
	}
	return append(b, '}')
}

// The pkt_src values of Suricata 8 (PktSrcToString) that weir's packets can have.
const (
	pktSrcWire   = "wire/pcap"
	pktSrcGeneve = "geneve encapsulation"
	pktSrcVXLAN  = "vxlan encapsulation"
	pktSrcGRE    = "gre tunnel"
	pktSrcIPv4   = "ipv4 tunnel"
	pktSrcIPv6   = "ipv6 tunnel"
)

// pktSrc is the alert packet's pkt_src: named by Suricata after the decoder that
// took the packet out of its tunnel, the innermost one.
func pktSrc(a *Alert) string {
	if t := &a.InnerTunnel; t.Proto != 0 {
		switch {
		case t.Proto == protoGRE:
			return pktSrcGRE
		case t.Src.Is4():
			return pktSrcIPv4
		default:
			return pktSrcIPv6
		}
	}
	switch a.Tunnel.Encap {
	case flow.EncapGeneve:
		return pktSrcGeneve
	case flow.EncapVXLAN:
		return pktSrcVXLAN
	}
	return pktSrcWire
}

// appendAlertTunnel appends Suricata's tunnel object of an alert on a tunnelled
// packet. Suricata describes there the root packet, the one captured, and counts in
// depth every layer the alert packet was decoded out of. So when a GENEVE or VXLAN
// packet carried IP-in-IP or GRE, the object is the outer UDP tunnel's and depth
// counts both: 1 for GENEVE/VXLAN plus the inner layers. pkt_src is the root
// packet's, so always the wire's.
func appendAlertTunnel(b []byte, a *Alert) []byte {
	inner := a.InnerTunnel.Proto != 0
	outer := a.Tunnel.Encap != flow.EncapNone
	if !inner && !outer {
		return b
	}
	depth := 0
	if inner {
		depth = max(int(a.InnerTunnel.Depth), 1)
	}
	var (
		src, dst     netip.Addr
		sport, dport uint16
		proto        = a.InnerTunnel.Proto
	)
	if outer {
		depth++
		src, dst, sport, dport, proto = a.Tunnel.Src, a.Tunnel.Dst, a.Tunnel.SrcPort, a.Tunnel.DstPort, packet.ProtoUDP
	} else {
		src, dst = a.InnerTunnel.Src, a.InnerTunnel.Dst // GRE and IP-in-IP have no ports: Suricata writes 0
	}
	b = append(b, `,"tunnel":{"src_ip":`...)
	b = appendAddr(b, src)
	b = append(b, `,"src_port":`...)
	b = strconv.AppendUint(b, uint64(sport), 10)
	b = append(b, `,"dest_ip":`...)
	b = appendAddr(b, dst)
	b = append(b, `,"dest_port":`...)
	b = strconv.AppendUint(b, uint64(dport), 10)
	b = append(b, `,"proto":"`...)
	b = appendProtoName(b, proto)
	b = append(b, `","depth":`...)
	b = strconv.AppendUint(b, uint64(depth), 10)
	if a.PcapCnt != 0 {
		b = append(b, `,"pcap_cnt":`...)
		b = strconv.AppendUint(b, a.PcapCnt, 10)
	}
	b = append(b, `,"pkt_src":"`...)
	b = append(b, pktSrcWire...)
	return append(b, `"}`...)
}

// rrTypeNames are the DNS types weir names as Suricata does; others are written as
// their number, as Suricata writes types it has no name for.
var rrTypeNames = map[uint16]string{
	1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
	28: "AAAA", 33: "SRV", 65: "HTTPS", 255: "ANY",
}

func appendRRType(b []byte, t uint16) []byte {
	if name, ok := rrTypeNames[t]; ok {
		return append(b, name...)
	}
	return strconv.AppendUint(b, uint64(t), 10)
}

// linkTypeName is packet_info.linktype_name: libpcap's name of the link type, which
// Suricata writes, or "n/a" as Suricata does for one it cannot name.
func linkTypeName(t uint16) string {
	switch t {
	case 0:
		return "NULL"
	case 1:
		return "EN10MB"
	case 12, 101:
		return "RAW"
	case 113:
		return "LINUX_SLL"
	case 228:
		return "IPV4"
	case 229:
		return "IPV6"
	case 276:
		return "LINUX_SLL2"
	}
	return "n/a"
}

// appendHead opens an event with the fields every event about a packet or a flow
// starts with, from "timestamp" to "proto" and "ip_v"; pcap_cnt when not 0. Suricata
// 8 writes ip_v after proto in packet events but before it in flow records.
func appendHead(b []byte, ts time.Time, id, pcapCnt uint64, typ EventType, proto uint8, src, dst netip.Addr, sport, dport uint16) []byte {
	b = append(b, `{"timestamp":"`...)
	b = ts.AppendFormat(b, TimeFormat)
	b = append(b, `","flow_id":`...)
	b = strconv.AppendUint(b, id, 10)
	if pcapCnt != 0 {
		b = append(b, `,"pcap_cnt":`...)
		b = strconv.AppendUint(b, pcapCnt, 10)
	}
	b = append(b, `,"event_type":"`...)
	b = append(b, typ.String()...)
	b = append(b, `","src_ip":`...)
	b = appendAddr(b, src)
	ports := hasPorts(proto)
	if ports {
		b = append(b, `,"src_port":`...)
		b = strconv.AppendUint(b, uint64(sport), 10)
	}
	b = append(b, `,"dest_ip":`...)
	b = appendAddr(b, dst)
	if ports {
		b = append(b, `,"dest_port":`...)
		b = strconv.AppendUint(b, uint64(dport), 10)
	}
	if typ == EventFlow {
		b = appendIPVersion(b, src)
	}
	b = append(b, `,"proto":"`...)
	b = appendProtoName(b, proto)
	b = append(b, '"')
	if typ != EventFlow {
		b = appendIPVersion(b, src)
	}
	return b
}

// appendIPVersion appends "ip_v", 4 or 6 as a is; nothing for no address.
func appendIPVersion(b []byte, a netip.Addr) []byte {
	switch {
	case a.Is4():
		return append(b, `,"ip_v":4`...)
	case a.Is6():
		return append(b, `,"ip_v":6`...)
	}
	return b
}

func hasPorts(proto uint8) bool { return proto == packet.ProtoTCP || proto == packet.ProtoUDP }

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
