// Package rules parses Suricata rules (a subset of Suricata 8's language) into plain
// data: a Rule holds the header and options as the rule wrote them, with address and
// port groups resolved and contents decoded. Nothing here matches packets; the
// detection engine compiles Rules into its own structures.
package rules

import (
	"net/netip"
	"regexp"
)

// Action is a rule's action.
type Action uint8

const (
	ActionAlert  Action = iota
	ActionDrop          // blocks inline in ips mode; alerts otherwise
	ActionReject        // treated as drop
	ActionPass          // stops inspection of the flow
)

func (a Action) String() string { return [...]string{"alert", "drop", "reject", "pass"}[a] }

// Proto is the protocol a rule's header names.
type Proto uint8

const (
	ProtoIP   Proto = iota // any IP packet
	ProtoTCP               // TCP
	ProtoUDP               // UDP
	ProtoICMP              // ICMP and ICMPv6, as in Suricata
	ProtoDNS               // DNS: TCP or UDP with port 53 on either side
	ProtoTLS               // TLS: TCP with a TLS port (TLSPorts) on either side
)

func (p Proto) String() string { return [...]string{"ip", "tcp", "udp", "icmp", "dns", "tls"}[p] }

// TLSPorts are the ports a tls rule applies to: weir recognises application
// protocols by port, not by Suricata's protocol detection.
var TLSPorts = []uint16{443, 465, 636, 853, 993, 995, 8443}

// AddrSet is a header's address part: any address, or the addresses in Include
// (every address when Include is empty) that are in no prefix of Exclude.
type AddrSet struct {
	Any     bool
	Include []netip.Prefix
	Exclude []netip.Prefix
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// PortSet is a header's port part, as AddrSet.
type PortSet struct {
	Any     bool
	Include []PortRange
	Exclude []PortRange
}

// Buffer is what a content or pcre inspects.
type Buffer uint8

const (
	BufferPayload  Buffer = iota // the packet's payload, or the TCP stream
	BufferDNSQuery               // dns.query: the query name, dotted, no trailing dot
	BufferTLSSNI                 // tls.sni: the ClientHello's server name
)

// MatchKind says whether a Match is a content or a pcre.
type MatchKind uint8

const (
	MatchContent MatchKind = iota
	MatchPCRE
	// MatchIsDataAt is isdataat: data exists at Offset (from the buffer's start,
	// or past the previous match when Relative); Negated: it does not.
	MatchIsDataAt
)

// Match is one content or pcre option, in the order the rule gives them (relative
// matches are relative to the previous match in the same buffer).
type Match struct {
	Kind   MatchKind
	Buffer Buffer

	// Content.
	Pattern     []byte // |hex| decoded
	Negated     bool
	Nocase      bool
	FastPattern bool
	// Offset and Depth are absolute (from the buffer's start); Distance and Within
	// relative to the end of the previous match. Has* says which were given.
	Offset, Depth, Distance, Within             int
	HasOffset, HasDepth, HasDistance, HasWithin bool
	// StartsWith anchors the content at the buffer's start (it is kept as
	// offset 0, depth its length); EndsWith makes it end where the buffer ends.
	StartsWith, EndsWith bool

	// PCRE. Regexp is compiled with the flags RE2 honours (i, s, m, x); Relative is
	// the R flag (search from the end of the previous match).
	Regexp   *regexp.Regexp
	Relative bool
}

// Flow is the flow option.
type Flow struct {
	ToServer, ToClient          bool // to_server/from_client, to_client/from_server
	Established, NotEstablished bool
	Stateless                   bool
	OnlyStream, NoStream        bool
}

// Flags is the flags option: Bits are the flags named (FIN 0x01, SYN 0x02, RST 0x04,
// PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80) and Ignore the ones after the
// comma, which the test masks out.
type Flags struct {
	Set    bool
	Mode   FlagsMode
	Bits   uint8
	Ignore uint8
}

// FlagsMode is the flags option's modifier.
type FlagsMode uint8

const (
	FlagsExact FlagsMode = iota // exactly these (after Ignore)
	FlagsAll                    // +: these and maybe others
	FlagsAny                    // *: any of these
	FlagsNot                    // !: none of these
)

// IntOp is a numeric comparison.
type IntOp uint8

const (
	IntEq IntOp = iota
	IntNe
	IntLt
	IntGt
	IntLe
	IntGe
	IntRange // A < x < B, as Suricata's a<>b
)

// IntCmp is a numeric test (dsize, itype, icode, ttl, ip_proto).
type IntCmp struct {
	Set  bool
	Op   IntOp
	A, B int
}

// FlowbitOp is a flowbits command.
type FlowbitOp uint8

const (
	FlowbitSet FlowbitOp = iota
	FlowbitIsSet
	FlowbitIsNotSet
	FlowbitUnset
	FlowbitToggle
	FlowbitNoAlert
)

// Flowbit is one flowbits option. Names holds one name, or for isset/isnotset a
// list joined by | (any of) or & (all of), as Suricata allows: Any says which.
type Flowbit struct {
	Op    FlowbitOp
	Names []string
	Any   bool
}

// ThresholdType is a threshold's type.
type ThresholdType uint8

const (
	ThresholdLimit ThresholdType = iota
	ThresholdThreshold
	ThresholdBoth
)

// Track is what a threshold counts by.
type Track uint8

const (
	TrackBySrc Track = iota
	TrackByDst
)

// Threshold is a threshold or detection_filter option (a detection_filter has
// Type ThresholdThreshold and alerts on every match past Count).
type Threshold struct {
	Set     bool
	Type    ThresholdType
	Track   Track
	Count   int
	Seconds int
}

// BufferSize is a bsize option: the length of Buffer compared as Size says.
type BufferSize struct {
	Buffer Buffer
	Size   IntCmp
}

// Rule is one parsed rule.
type Rule struct {
	File string // where it was read, for warnings and alerts
	Line int    // the line the rule starts on
	Raw  string // the rule's text, continuation lines joined

	Action        Action
	Proto         Proto
	Src, Dst      AddrSet
	SrcPorts      PortSet
	DstPorts      PortSet
	Bidirectional bool // <>

	Msg        string
	SID, Rev   uint32
	GID        uint32 // 1 unless given
	Classtype  string
	Category   string // the classtype's description
	Priority   int    // from priority, else the classtype's, else 3
	References []string
	Metadata   []string

	Matches []Match
	// Bsize tests the length of a sticky buffer (dns.query, tls.sni): a rule with
	// it matches only packets that have that buffer.
	Bsize     []BufferSize
	Flow      Flow
	Flags     Flags
	Dsize     IntCmp
	Itype     IntCmp
	Icode     IntCmp
	TTL       IntCmp
	IPProto   IntCmp
	Flowbits  []Flowbit
	NoAlert   bool // flowbits:noalert
	Threshold Threshold
	// DetectionFilter, unlike Threshold, is checked before the rule's other
	// effects: a rule held back by it sets no flowbits either.
	DetectionFilter Threshold
}
