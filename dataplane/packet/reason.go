package packet

// Reason is why a packet failed to decode. It implements error, so Decode returns it
// directly, and it indexes counters: a metric per Reason, 1 <= r < NumReasons.
// Returning a constant Reason as an error does not allocate.
type Reason uint8

// Reasons a packet is malformed. The zero value is not a reason.
const (
	// ReasonEmpty: no bytes at all.
	ReasonEmpty Reason = iota + 1
	// ReasonVersion: the first nibble is neither 4 nor 6 (or, behind Ethernet,
	// does not match the EtherType; in a tunnel, does not match the protocol that
	// announced the inner packet).
	ReasonVersion
	// ReasonIPv4Header: shorter than 20 bytes, IHL < 5, or the header runs past the data.
	ReasonIPv4Header
	// ReasonIPv4Length: total length < IHL*4 or > the data. Data past the total
	// length (link padding) is not an error; it is ignored.
	ReasonIPv4Length
	// ReasonIPv6Header: shorter than the 40-byte fixed header.
	ReasonIPv6Header
	// ReasonIPv6Length: the payload length runs past the data.
	ReasonIPv6Length
	// ReasonExtHeader: an IPv6 extension header is truncated, or there are more
	// than MaxExtHeaders of them.
	ReasonExtHeader
	// ReasonTCPHeader: the TCP header is truncated, or its data offset is < 5 or
	// runs past the data.
	ReasonTCPHeader
	// ReasonUDPHeader: the UDP header is truncated, or its length field is < 8 or
	// runs past the data.
	ReasonUDPHeader
	// ReasonICMPHeader: an ICMP or ICMPv6 header is shorter than 4 bytes, or an
	// echo request or reply shorter than 8.
	ReasonICMPHeader
	// ReasonNotIP: behind Ethernet, the EtherType (after at most two VLAN tags) is
	// neither IPv4 nor IPv6; in a tunnel, the PPP protocol or the bridged
	// Ethernet frame's EtherType is not IP.
	ReasonNotIP
	// ReasonEthernetHeader: the Ethernet header or a VLAN tag is truncated.
	ReasonEthernetHeader

	// The reasons below come from Tunnelled only, never from Decode.

	// ReasonTunnelFragment: the tunnel packet is a fragment (first or later), so
	// the inner packet is incomplete; there is no reassembly here.
	ReasonTunnelFragment
	// ReasonGREHeader: the GRE header is truncated, its version is neither 0 nor 1,
	// a version 0 header has the routing bit set (RFC 1701 source routes, which
	// Linux refuses too), or a version 1 (PPTP) header is not key + PPP, has
	// other bits set, or its payload length runs past the data.
	ReasonGREHeader
	// ReasonGREProtocol: GRE carries a protocol that is not opened (ERSPAN, MPLS,
	// WCCP, ...): only IPv4, IPv6, transparent Ethernet bridging and PPP are.
	ReasonGREProtocol
	// ReasonPPPHeader: the PPP header in GRE is truncated.
	ReasonPPPHeader

	// NumReasons is one more than the largest Reason, to size arrays of counters.
	NumReasons
)

var reasonNames = [NumReasons]string{
	0:                    "none",
	ReasonEmpty:          "empty",
	ReasonVersion:        "version",
	ReasonIPv4Header:     "ipv4_header",
	ReasonIPv4Length:     "ipv4_length",
	ReasonIPv6Header:     "ipv6_header",
	ReasonIPv6Length:     "ipv6_length",
	ReasonExtHeader:      "ext_header",
	ReasonTCPHeader:      "tcp_header",
	ReasonUDPHeader:      "udp_header",
	ReasonICMPHeader:     "icmp_header",
	ReasonNotIP:          "not_ip",
	ReasonEthernetHeader: "ethernet_header",
	ReasonTunnelFragment: "tunnel_fragment",
	ReasonGREHeader:      "gre_header",
	ReasonGREProtocol:    "gre_protocol",
	ReasonPPPHeader:      "ppp_header",
}

// String returns the reason as a snake_case metric label, e.g. "tcp_header".
// The zero Reason is "none"; values from NumReasons on are "unknown".
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// reasonErrors holds the Error strings, built once so that Error does not allocate.
var reasonErrors = func() (e [NumReasons + 1]string) {
	for r := range e {
		e[r] = "packet: " + Reason(r).String()
	}
	return e
}()

// Error returns "packet: " followed by String.
func (r Reason) Error() string { return reasonErrors[min(r, NumReasons)] }
