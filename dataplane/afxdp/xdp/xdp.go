// Package xdp builds the XDP program that steers GENEVE and VXLAN datagrams
// to weir's AF_XDP sockets, and everything else to the kernel.
//
// The AF_XDP backend (package afxdp, issue 10) loads it from [Spec] and
// attaches it to the interface it serves. The program is assembled in Go with github.com/cilium/ebpf/asm, so neither building nor
// running weir needs clang.
//
// Per packet the program reads Ethernet, up to two VLAN tags, then IPv4 or
// IPv6, then UDP, all within the packet's first buffer, and decides:
//
//   - UDP to the GENEVE port and, if [Config.GeneveDst] is set, to that
//     address: dropped (and counted) if the allow list is in force and the
//     IPv4 source is not on it (an IPv6 source never is: GWLB speaks IPv4
//     and the list holds IPv4 prefixes); else steered.
//   - UDP to the VXLAN port and, if [Config.VXLANDst] is set, to that
//     address: steered (mirror sources are checked later, in user space,
//     per session).
//   - Anything else, including tunnel traffic to another address (routed
//     through the host), fragments, IPv6 with extension headers and frames
//     too short or malformed to classify: passed to the kernel.
//
// A steered packet longer than [Config.MaxFrame] is passed to the kernel;
// the rest are redirected to the socket in [MapXSKs] at the packet's RX
// queue, or passed when no socket is bound there. In weir's AF_XDP mode a
// UDP socket listens on the same ports, so whatever is passed is still
// served, only by the slower path.
//
// With [Config.FastPath], GENEVE of flows user space put in [MapFastFlows]
// is answered by the program itself (XDP_TX) instead of redirected: see
// fast.go.
package xdp

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Names of the program and its maps in the collection [Spec] returns.
// Kernel object names are limited to 15 bytes.
const (
	ProgramName   = "weir_steer"
	MapXSKs       = "xsks"       // XSKMAP: RX queue index -> AF_XDP socket
	MapAllowed    = "allowed"    // LPM_TRIE: IPv4 prefix -> 1
	MapAllowedOn  = "allowed_on" // ARRAY[1] u32: 1 while the allow list is in force
	MapCounters   = "counters"   // PERCPU_ARRAY of u64, indexed by Counter
	MapFastFlows  = "fast_flows" // LRU_HASH: FastKey -> FastCounters (with Config.FastPath)
	MapFastOn     = "fast_on"    // ARRAY[1] u32: 1 while the fast path answers (with Config.FastPath)
	licenseString = "Dual MIT/GPL"
)

// maxQueues bounds Config.Queues; ENA and virtio expose far fewer.
const maxQueues = 4096

// maxAllowed bounds the allow list's LPM trie.
const maxAllowed = 1024

// maxFrameLimit bounds Config.MaxFrame: far above any XDP buffer (a few dozen
// pages at most), and low enough for the verifier's packet-pointer arithmetic.
const maxFrameLimit = 1 << 24

// Counter indexes the counters map. Each packet is counted exactly once.
type Counter uint32

// The counters. The pass variants are kept apart so that a rise in
// malformed frames or fragments is visible without a capture.
const (
	CounterRedirected      Counter = iota // a socket is bound on the queue (its full RX ring may still drop it)
	CounterNoSocket                       // steered, but no socket on the queue: passed
	CounterPassed                         // not tunnel traffic: passed
	CounterPassedFragment                 // IPv4 fragment: passed
	CounterPassedMalformed                // too short or a bad header: passed
	CounterDroppedSource                  // GENEVE from a source not allowed: dropped
	CounterPassedOversize                 // steered, but longer than Config.MaxFrame: passed
	CounterFastPath                       // GENEVE of a flow in MapFastFlows: answered in XDP (XDP_TX)
	// CounterFastPathBytes is not a packet count: it adds up the UDP
	// payload bytes of the datagrams counted CounterFastPath.
	CounterFastPathBytes
	numCounters
)

// Config is what the program needs to know about the deployment.
type Config struct {
	GenevePort uint16 // UDP destination port of GWLB traffic (6081)
	VXLANPort  uint16 // UDP destination port of mirrored traffic (4789); 0: VXLAN is not steered
	// AllowedSources are the IPv4 prefixes GENEVE may come from; empty
	// means any source.
	AllowedSources []netip.Prefix
	Queues         int // RX queues, one XSKMAP slot each

	// GeneveDst and VXLANDst, when valid and not unspecified, steer only
	// datagrams addressed to exactly that address; others to the port are
	// tunnel traffic the host merely routes, and go to the kernel
	// (CounterPassed). An IPv4 address never matches an IPv6 packet, nor
	// the reverse. The zero Addr or 0.0.0.0 or :: means any destination.
	GeneveDst netip.Addr
	VXLANDst  netip.Addr

	// MaxFrame is the longest packet redirected, in bytes from the start of
	// the Ethernet header and counting every buffer of a multi-buffer
	// packet; a longer steered one is passed to the kernel and counted
	// CounterPassedOversize, because an AF_XDP socket bound without
	// XDP_USE_SG drops a packet that does not fit one UMEM frame. 0 means
	// no limit.
	MaxFrame int

	// Frags builds the program for multi-buffer packets: it is loaded with
	// BPF_F_XDP_HAS_FRAGS ("xdp.frags"), which native XDP requires on an
	// interface whose MTU exceeds one page (veth at 9000, ENA at 9001), and
	// measures a packet with bpf_xdp_get_buff_len (Linux 5.18+), since
	// data_end then ends only the first buffer. Without it the program
	// loads on older kernels and measures data_end - data. A kernel without
	// multi-buffer XDP fails ebpf.NewCollection on the Frags program; build
	// it again with Frags false then.
	Frags bool

	// FastPath builds the XDP fast path (see fast.go): GENEVE of a flow
	// whose key user space put in MapFastFlows is answered by the program
	// itself (XDP_TX) while MapFastOn holds 1. FastFlows sizes that map;
	// 0 means DefaultFastFlows. The fast path measures the frame with
	// bpf_xdp_get_buff_len, so it needs Linux 5.18 or later.
	FastPath  bool
	FastFlows int
}

func (c Config) validate() error {
	switch {
	case c.GenevePort == 0:
		return errors.New("xdp: GENEVE port is 0")
	case c.GenevePort == c.VXLANPort:
		return fmt.Errorf("xdp: GENEVE and VXLAN share port %d", c.GenevePort)
	case c.Queues < 1 || c.Queues > maxQueues:
		return fmt.Errorf("xdp: %d queues, want 1 to %d", c.Queues, maxQueues)
	case len(c.AllowedSources) > maxAllowed:
		return fmt.Errorf("xdp: %d allowed sources, at most %d", len(c.AllowedSources), maxAllowed)
	case c.MaxFrame < 0 || c.MaxFrame > maxFrameLimit:
		return fmt.Errorf("xdp: max frame %d, want 0 (no limit) to %d", c.MaxFrame, maxFrameLimit)
	case c.FastFlows < 0 || c.FastFlows > maxFastFlows:
		return fmt.Errorf("xdp: %d fast flows, want 0 (the default) to %d", c.FastFlows, maxFastFlows)
	}
	for _, d := range []struct {
		name string
		addr netip.Addr
	}{{"GENEVE", c.GeneveDst}, {"VXLAN", c.VXLANDst}} {
		switch {
		case !d.addr.IsValid():
		case d.addr.Is4In6():
			// On the wire an IPv4 datagram carries the plain address and
			// an IPv6 one never carries a mapped one: it would never match.
			return fmt.Errorf("xdp: %s destination %v is IPv4-mapped; give it as IPv4", d.name, d.addr)
		case d.addr.Zone() != "":
			return fmt.Errorf("xdp: %s destination %v has a zone, which packets do not carry", d.name, d.addr)
		}
	}
	for _, p := range c.AllowedSources {
		if !p.IsValid() || !p.Addr().Is4() {
			// GWLB reaches its targets over IPv4 only; an IPv6 (or
			// IPv4-mapped) prefix would never match and is a config slip.
			return fmt.Errorf("xdp: allowed source %v is not an IPv4 prefix", p)
		}
	}
	return nil
}

// lpmKey is the allowed map's key: struct bpf_lpm_trie_key with 4 bytes of
// data. The prefix length is in host order, the address in network order.
type lpmKey struct {
	PrefixLen uint32
	Addr      [4]byte
}

func keyOf(p netip.Prefix) lpmKey {
	p = p.Masked()
	return lpmKey{PrefixLen: uint32(p.Bits()), Addr: p.Addr().As4()}
}

// Spec returns the program and its maps, with the allow list as the maps'
// initial contents, ready for ebpf.NewCollection. It needs no kernel.
func Spec(cfg Config) (*ebpf.CollectionSpec, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	allowed := make([]ebpf.MapKV, 0, len(cfg.AllowedSources))
	for _, p := range cfg.AllowedSources {
		allowed = append(allowed, ebpf.MapKV{Key: keyOf(p), Value: uint8(1)})
	}
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			MapXSKs: {
				Name:       MapXSKs,
				Type:       ebpf.XSKMap,
				KeySize:    4,
				ValueSize:  4,
				MaxEntries: uint32(cfg.Queues),
			},
			MapAllowed: {
				Name:       MapAllowed,
				Type:       ebpf.LPMTrie,
				KeySize:    8,
				ValueSize:  1,
				MaxEntries: maxAllowed,
				// The kernel refuses an LPM trie without this flag.
				Flags:    unix.BPF_F_NO_PREALLOC,
				Contents: allowed,
			},
			MapAllowedOn: {
				Name:       MapAllowedOn,
				Type:       ebpf.Array,
				KeySize:    4,
				ValueSize:  4,
				MaxEntries: 1,
				Contents:   []ebpf.MapKV{{Key: uint32(0), Value: allowListFlag(cfg)}},
			},
			MapCounters: {
				Name:       MapCounters,
				Type:       ebpf.PerCPUArray,
				KeySize:    4,
				ValueSize:  8,
				MaxEntries: uint32(numCounters),
			},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			ProgramName: {
				Name:         ProgramName,
				Type:         ebpf.XDP,
				Instructions: program(cfg),
				Flags:        progFlags(cfg),
				// bpf_redirect_map and the map helpers are not GPL-only;
				// the dual licence keeps GPL-only helpers available should
				// the program grow to need one.
				License: licenseString,
			},
		},
	}
	if cfg.FastPath {
		addFastMaps(spec, cfg)
	}
	return spec, nil
}

func progFlags(cfg Config) uint32 {
	if cfg.Frags {
		return unix.BPF_F_XDP_HAS_FRAGS
	}
	return 0
}

func allowListFlag(cfg Config) uint32 {
	if len(cfg.AllowedSources) > 0 {
		return 1
	}
	return 0
}

// Fill makes a loaded collection's allow list match cfg.AllowedSources, for a
// reload without reloading the program. The map updates are not one atomic
// step, so they are ordered to never drop a source both the old and the new
// list allow: new prefixes go in before the list is turned on and before
// stale ones come out, and an emptied list is turned off first. Calls must
// not overlap.
func Fill(coll *ebpf.Collection, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	allowed, on := coll.Maps[MapAllowed], coll.Maps[MapAllowedOn]
	if allowed == nil || on == nil {
		return fmt.Errorf("xdp: collection lacks map %q or %q", MapAllowed, MapAllowedOn)
	}
	want := make(map[lpmKey]bool, len(cfg.AllowedSources))
	for _, p := range cfg.AllowedSources {
		want[keyOf(p)] = true
	}
	if len(want) == 0 {
		if err := on.Put(uint32(0), uint32(0)); err != nil {
			return fmt.Errorf("xdp: turning the allow list off: %w", err)
		}
	}
	for k := range want {
		if err := allowed.Put(k, uint8(1)); err != nil {
			return fmt.Errorf("xdp: allowing %d.%d.%d.%d/%d: %w", k.Addr[0], k.Addr[1], k.Addr[2], k.Addr[3], k.PrefixLen, err)
		}
	}
	if len(want) > 0 {
		if err := on.Put(uint32(0), uint32(1)); err != nil {
			return fmt.Errorf("xdp: turning the allow list on: %w", err)
		}
	}
	var stale []lpmKey
	var k lpmKey
	var v uint8
	it := allowed.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("xdp: listing the allow list: %w", err)
	}
	for _, k := range stale {
		if err := allowed.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("xdp: removing a stale allowed source: %w", err)
		}
	}
	return nil
}

// Counters are the program's counters summed over CPUs.
type Counters struct {
	Redirected      uint64
	NoSocket        uint64
	Passed          uint64
	PassedFragment  uint64
	PassedMalformed uint64
	DroppedSource   uint64
	PassedOversize  uint64
	FastPath        uint64 // answered in XDP
	FastPathBytes   uint64 // their UDP payload bytes
}

// ReadCounters sums the per-CPU counters of a loaded collection.
func ReadCounters(coll *ebpf.Collection) (Counters, error) {
	m := coll.Maps[MapCounters]
	if m == nil {
		return Counters{}, fmt.Errorf("xdp: collection lacks map %q", MapCounters)
	}
	var sums [numCounters]uint64
	var perCPU []uint64
	for i := range sums {
		if err := m.Lookup(uint32(i), &perCPU); err != nil {
			return Counters{}, fmt.Errorf("xdp: reading counter %d: %w", i, err)
		}
		for _, v := range perCPU {
			sums[i] += v
		}
	}
	return Counters{
		Redirected:      sums[CounterRedirected],
		NoSocket:        sums[CounterNoSocket],
		Passed:          sums[CounterPassed],
		PassedFragment:  sums[CounterPassedFragment],
		PassedMalformed: sums[CounterPassedMalformed],
		DroppedSource:   sums[CounterDroppedSource],
		PassedOversize:  sums[CounterPassedOversize],
		FastPath:        sums[CounterFastPath],
		FastPathBytes:   sums[CounterFastPathBytes],
	}, nil
}
