package afxdp

import "weir/dataplane/packet"

// rewriteReply turns a received Ethernet frame carrying a GENEVE datagram into
// the reply GWLB expects, in place: the MAC addresses and the IP addresses are
// swapped, and everything else (the UDP ports, the GENEVE header, its options
// and the inner packet) is kept. The IPv4 header checksum and the UDP checksum
// are sums over both addresses, which a swap does not change, so neither is
// touched. It reports false, leaving frame unchanged, when the frame is not
// Ethernet carrying IPv4 or IPv6 with whole fixed headers. It never allocates.
func rewriteReply(frame []byte) bool {
	typ, ip, ok := packet.EthernetPayload(frame)
	if !ok {
		return false
	}
	switch {
	case typ == packet.EtherTypeIPv4 && len(ip) >= packet.IPv4MinimumSize && ip[0]>>4 == packet.IPv4Version:
		swapBytes(ip[12:16], ip[16:20])
	case typ == packet.EtherTypeIPv6 && len(ip) >= packet.IPv6MinimumSize && ip[0]>>4 == packet.IPv6Version:
		swapBytes(ip[8:24], ip[24:40])
	default:
		return false
	}
	swapBytes(frame[0:6], frame[6:12])
	return true
}

// swapBytes exchanges the contents of a and b, which have the same length.
func swapBytes(a, b []byte) {
	for i := range a {
		a[i], b[i] = b[i], a[i]
	}
}
