package flowsync

import (
	"encoding/binary"
	"net/netip"

	"weir/dataplane/flow"
	"weir/dataplane/policy"
	"weir/geneve"
)

// Wire format, version 1. Every message starts with a 24-byte header, big endian:
//
//	magic   2  'W' 'S'
//	version 1  Version
//	type    1  MsgUpdate, MsgBulkRequest, MsgBulkChunk, MsgBulkDone, MsgRefresh or
//	           MsgBulkRefused
//	node    2  the sender's flow.Config.NodeID
//	count   2  flow records that follow (MsgUpdate, MsgBulkChunk, MsgRefresh)
//	epoch   8  the sender's start time (unix ns): a restarted sender has a new epoch
//	seq     8  MsgUpdate: the sender's datagram sequence number (from 1 each epoch);
//	           bulk messages: the request's session number
//
// A flow record is 6 bytes of fixed fields, then varints and addresses:
//
//	flags   1  kind (bits 0-1), TCP state (2-3), tunnel present (4)
//	addrs   1  kinds (0 none, 1 IPv4, 2 IPv6) of src (bits 0-1), dst (2-3),
//	           tunnel src (4-5), tunnel dst (6-7)
//	proto, action, AWS present bits, direction   1 each
//	id, scope                uvarint
//	src port, dst port       2 each
//	start                    varint (unix ns)
//	last - start             varint
//	rule                     varint
//	session                  uvarint
//	src, dst                 4 or 16 bytes each
//	AWS endpoint id          8, if present bit 1
//	AWS attachment id        8, if present bit 2
//	AWS flow cookie          4, if present bit 3
//	tunnel (if flagged)      encap 1, src, dst (4 or 16 each), ports 2+2, VNI uvarint
//
// An IPv4 flow without tunnel and AWS options takes about 40 bytes, a GWLB flow
// (endpoint id, attachment id, cookie, GENEVE tunnel) 85: 13 fit in a datagram.
//
// MsgBulkRequest and MsgBulkRefused carry no body. MsgBulkDone carries uvarint chunks and uvarint
// flows: what the sender sent in the session, so that the receiver knows it has all
// of it even when the reliable transport delivers messages out of order.

// Message types.
const (
	MsgUpdate      uint8 = 1 // best-effort journal events or refresh (Broadcast)
	MsgBulkRequest uint8 = 2 // a joining node asks for the full table (SendTo)
	MsgBulkChunk   uint8 = 3 // part of the full table (SendTo)
	MsgBulkDone    uint8 = 4 // the end of a bulk transfer (SendTo)
	MsgRefresh     uint8 = 5 // re-announcement of the sender's own flows (SendTo)
	MsgBulkRefused uint8 = 6 // a bulk request the peer cannot serve now: ask again (SendTo)
)

const (
	// Version is the wire format's version; a message of another version is dropped
	// and counted (reason "version").
	Version = 1
	// HeaderLen is the size of a message header.
	HeaderLen = 24
	magic0    = 'W'
	magic1    = 'S'
	// MaxRecordLen bounds one encoded flow record.
	MaxRecordLen = 6 + 2*binary.MaxVarintLen64 + 4 + 3*binary.MaxVarintLen64 + 1*binary.MaxVarintLen64 + 32 + 20 + 1 + 32 + 4 + binary.MaxVarintLen32
	minRecordLen = 6 + 2 + 4 + 4 + 2 // no addresses, one-byte varints
)

// Header is a message header.
type Header struct {
	Type  uint8
	Node  uint16
	Count uint16
	Epoch uint64
	Seq   uint64
}

// Reason is why a message was rejected; it names the weir_cluster_sync_errors_total
// label.
type Reason uint8

// Reasons a message is rejected.
const (
	ReasonNone     Reason = iota
	ReasonShort           // shorter than its header or a record
	ReasonMagic           // not a sync message
	ReasonVersion         // another wire version
	ReasonType            // unknown message type
	ReasonField           // a field holds an impossible value
	ReasonTrailing        // bytes after the last record
	ReasonStale           // older than what the sender already told (epoch or sequence)
	ReasonSend            // a reliable send failed
	numReasons
)

var reasonNames = [numReasons]string{"none", "short", "magic", "version", "type", "field", "trailing", "stale", "send"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Error implements error, so that a Reason is what Decode returns.
func (r Reason) Error() string { return "cluster sync: bad message: " + r.String() }

// Encoder builds messages in a buffer it reuses: after the first messages it
// allocates nothing.
type Encoder struct {
	buf   []byte
	count uint16
}

// Reset starts a message with header h (its Count is kept by the encoder).
func (e *Encoder) Reset(h Header) {
	e.buf = append(e.buf[:0], magic0, magic1, Version, h.Type)
	e.buf = binary.BigEndian.AppendUint16(e.buf, h.Node)
	e.buf = binary.BigEndian.AppendUint16(e.buf, 0)
	e.buf = binary.BigEndian.AppendUint64(e.buf, h.Epoch)
	e.buf = binary.BigEndian.AppendUint64(e.buf, h.Seq)
	e.count = 0
}

// SetSeq rewrites the header's sequence number.
func (e *Encoder) SetSeq(seq uint64) { binary.BigEndian.PutUint64(e.buf[16:], seq) }

// Len is the message's length so far.
func (e *Encoder) Len() int { return len(e.buf) }

// Count is the number of flow records in the message.
func (e *Encoder) Count() int { return int(e.count) }

// Bytes returns the message, valid until the next Reset.
func (e *Encoder) Bytes() []byte { return e.buf }

// AppendUvarint appends x to the body (MsgBulkDone).
func (e *Encoder) AppendUvarint(x uint64) { e.buf = binary.AppendUvarint(e.buf, x) }

// Append adds f if the message stays within limit bytes and below 65536 records,
// and reports whether it did.
func (e *Encoder) Append(f *flow.FlowState, limit int) bool {
	if e.count == 0xffff {
		return false
	}
	n := len(e.buf)
	e.buf = appendFlow(e.buf, f)
	if len(e.buf) > limit {
		e.buf = e.buf[:n]
		return false
	}
	e.count++
	binary.BigEndian.PutUint16(e.buf[6:], e.count)
	return true
}

func addrKind(a netip.Addr) byte {
	switch {
	case a.Is4():
		return 1
	case a.Is6():
		return 2
	}
	return 0
}

func appendAddr(b []byte, a netip.Addr) []byte {
	switch {
	case a.Is4():
		v := a.As4()
		return append(b, v[:]...)
	case a.Is6():
		v := a.As16()
		return append(b, v[:]...)
	}
	return b
}

func appendFlow(b []byte, f *flow.FlowState) []byte {
	hasTun := f.Tunnel != (flow.Tunnel{})
	flags := byte(f.Kind)&3 | byte(f.State)&3<<2
	if hasTun {
		flags |= 1 << 4
	}
	addrs := addrKind(f.Src) | addrKind(f.Dst)<<2
	if hasTun {
		addrs |= addrKind(f.Tunnel.Src)<<4 | addrKind(f.Tunnel.Dst)<<6
	}
	present := f.AWS.Present & (1<<geneve.AWSTypeEndpointID | 1<<geneve.AWSTypeAttachmentID | 1<<geneve.AWSTypeFlowCookie)
	b = append(b, flags, addrs, f.Proto, byte(f.Action), present, f.Direction)
	b = binary.AppendUvarint(b, f.ID)
	b = binary.AppendUvarint(b, f.Scope)
	b = binary.BigEndian.AppendUint16(b, f.SrcPort)
	b = binary.BigEndian.AppendUint16(b, f.DstPort)
	b = binary.AppendVarint(b, f.Start)
	b = binary.AppendVarint(b, f.Last-f.Start)
	b = binary.AppendVarint(b, int64(f.Rule))
	b = binary.AppendUvarint(b, uint64(f.Session))
	b = appendAddr(b, f.Src)
	b = appendAddr(b, f.Dst)
	if present&(1<<geneve.AWSTypeEndpointID) != 0 {
		b = binary.BigEndian.AppendUint64(b, f.AWS.EndpointID)
	}
	if present&(1<<geneve.AWSTypeAttachmentID) != 0 {
		b = binary.BigEndian.AppendUint64(b, f.AWS.AttachmentID)
	}
	if present&(1<<geneve.AWSTypeFlowCookie) != 0 {
		b = binary.BigEndian.AppendUint32(b, f.AWS.FlowCookie)
	}
	if hasTun {
		t := &f.Tunnel
		b = append(b, t.Encap)
		b = appendAddr(b, t.Src)
		b = appendAddr(b, t.Dst)
		b = binary.BigEndian.AppendUint16(b, t.SrcPort)
		b = binary.BigEndian.AppendUint16(b, t.DstPort)
		b = binary.AppendUvarint(b, uint64(t.VNI))
	}
	return b
}

// Decoder decodes messages into a slice of flows it reuses.
type Decoder struct {
	flows []flow.FlowState
}

// DecodeHeader checks and returns a message's header.
func DecodeHeader(msg []byte) (Header, error) {
	var h Header
	if len(msg) < 4 {
		return h, ReasonShort
	}
	if msg[0] != magic0 || msg[1] != magic1 {
		return h, ReasonMagic
	}
	if msg[2] != Version {
		return h, ReasonVersion
	}
	if len(msg) < HeaderLen {
		return h, ReasonShort
	}
	h.Type = msg[3]
	if h.Type < MsgUpdate || h.Type > MsgBulkRefused {
		return h, ReasonType
	}
	h.Node = binary.BigEndian.Uint16(msg[4:])
	h.Count = binary.BigEndian.Uint16(msg[6:])
	h.Epoch = binary.BigEndian.Uint64(msg[8:])
	h.Seq = binary.BigEndian.Uint64(msg[16:])
	return h, nil
}

// Decode decodes msg: its header and, for MsgUpdate and MsgBulkChunk, its flows,
// valid until the next Decode. The error, if any, is a Reason. Decoding never
// panics, whatever msg holds.
func (d *Decoder) Decode(msg []byte) (Header, []flow.FlowState, error) {
	h, err := DecodeHeader(msg)
	if err != nil {
		return h, nil, err
	}
	if h.Type != MsgUpdate && h.Type != MsgBulkChunk && h.Type != MsgRefresh {
		return h, nil, nil
	}
	body := msg[HeaderLen:]
	if int(h.Count) > len(body)/minRecordLen {
		return h, nil, ReasonShort
	}
	if cap(d.flows) < int(h.Count) {
		d.flows = make([]flow.FlowState, 0, max(int(h.Count), 2*cap(d.flows)))
	}
	fs := d.flows[:h.Count]
	r := reader{b: body}
	for i := range fs {
		r.flow(&fs[i])
		if r.err != nil {
			return h, nil, r.err
		}
	}
	if len(r.b) != 0 {
		return h, nil, ReasonTrailing
	}
	return h, fs, nil
}

// DecodeDone returns the chunks and flows a MsgBulkDone reports.
func DecodeDone(msg []byte) (chunks, flows uint64, err error) {
	r := reader{b: msg[HeaderLen:]}
	chunks, flows = r.uvarint(), r.uvarint()
	if r.err == nil && len(r.b) != 0 {
		r.err = ReasonTrailing
	}
	return chunks, flows, r.err
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(reason Reason) {
	if r.err == nil {
		r.err = reason
	}
	r.b = nil
}

func (r *reader) bytes(n int) []byte {
	if len(r.b) < n {
		r.fail(ReasonShort)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if v := r.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.bytes(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(ReasonShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(ReasonShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) addr(kind byte) netip.Addr {
	switch kind {
	case 0:
		return netip.Addr{}
	case 1:
		if v := r.bytes(4); v != nil {
			return netip.AddrFrom4([4]byte(v))
		}
	case 2:
		if v := r.bytes(16); v != nil {
			return netip.AddrFrom16([16]byte(v))
		}
	default:
		r.fail(ReasonField)
	}
	return netip.Addr{}
}

func (r *reader) flow(f *flow.FlowState) {
	fixed := r.bytes(6)
	if fixed == nil {
		return
	}
	flags, addrs := fixed[0], fixed[1]
	if flags>>5 != 0 || flags&(1<<4) == 0 && addrs>>4 != 0 || fixed[3] > byte(policy.MaxAction) {
		r.fail(ReasonField)
		return
	}
	*f = flow.FlowState{Kind: flow.JournalKind(flags & 3), State: flow.State(flags >> 2 & 3),
		Proto: fixed[2], Action: policy.Action(fixed[3]), Direction: fixed[5]}
	present := fixed[4]
	if present&^(1<<geneve.AWSTypeEndpointID|1<<geneve.AWSTypeAttachmentID|1<<geneve.AWSTypeFlowCookie) != 0 {
		r.fail(ReasonField)
		return
	}
	f.AWS.Present = present
	f.ID = r.uvarint()
	f.Scope = r.uvarint()
	f.SrcPort = r.u16()
	f.DstPort = r.u16()
	f.Start = r.varint()
	f.Last = f.Start + r.varint()
	rule := r.varint()
	session := r.uvarint()
	if rule < -1<<31 || rule >= 1<<31 || session > 0xffff {
		r.fail(ReasonField)
		return
	}
	f.Rule, f.Session = int(rule), uint16(session)
	f.Src = r.addr(addrs & 3)
	f.Dst = r.addr(addrs >> 2 & 3)
	if present&(1<<geneve.AWSTypeEndpointID) != 0 {
		if v := r.bytes(8); v != nil {
			f.AWS.EndpointID = binary.BigEndian.Uint64(v)
		}
	}
	if present&(1<<geneve.AWSTypeAttachmentID) != 0 {
		if v := r.bytes(8); v != nil {
			f.AWS.AttachmentID = binary.BigEndian.Uint64(v)
		}
	}
	if present&(1<<geneve.AWSTypeFlowCookie) != 0 {
		if v := r.bytes(4); v != nil {
			f.AWS.FlowCookie = binary.BigEndian.Uint32(v)
		}
	}
	if flags&(1<<4) != 0 {
		t := &f.Tunnel
		t.Encap = r.byte()
		t.Src = r.addr(addrs >> 4 & 3)
		t.Dst = r.addr(addrs >> 6)
		t.SrcPort = r.u16()
		t.DstPort = r.u16()
		vni := r.uvarint()
		if vni > 0xffffffff {
			r.fail(ReasonField)
			return
		}
		t.VNI = uint32(vni)
		if *t == (flow.Tunnel{}) {
			r.fail(ReasonField) // an empty tunnel is never flagged
		}
	}
	if f.ID == 0 || !f.Src.IsValid() || !f.Dst.IsValid() {
		r.fail(ReasonField)
	}
}
