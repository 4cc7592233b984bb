package xdpbench

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"weir/dataplane/afxdp/xdp"
)

// TargetXDPFast is weir's own XDP program with its fast path on and the key
// of every request's flow in its map, so that each request is answered in
// XDP (XDP_TX): what the fast path costs next to the bare reflector, for
// diagnostics. No AF_XDP socket is bound; a miss would be passed to the
// kernel, which has no listener, and show as loss.
const TargetXDPFast = "xdp-fast"

// FastKeys returns the fast-path key of each request's flow (requests only:
// the replies are the requests swapped, never seen by the DUT again).
func FastKeys(frames [][]byte) ([]xdp.FastKey, error) {
	keys := make([]xdp.FastKey, 0, len(frames))
	for i, f := range frames {
		if len(f) < offInnerL4+4 {
			return nil, fmt.Errorf("xdpbench: frame %d is %d bytes, too short for its inner ports", i, len(f))
		}
		in := f[offInnerIP:]
		src, dst := netip.AddrFrom4([4]byte(in[12:16])), netip.AddrFrom4([4]byte(in[16:20]))
		l4 := f[offInnerL4:]
		keys = append(keys, xdp.FastKeyOf(EndpointID, src, dst, in[9],
			uint16(l4[0])<<8|uint16(l4[1]), uint16(l4[2])<<8|uint16(l4[3])).WithCookie(FlowCookie(i)))
	}
	return keys, nil
}

type xdpFastTarget struct {
	coll *ebpf.Collection
	l    link.Link
}

func (b *Bench) startXDPFast() (target, error) {
	keys, err := FastKeys(b.frames)
	if err != nil {
		return nil, err
	}
	// The default size, far above the flows: an LRU map evicts before it
	// is full (its free entries are spread over per-CPU lists), and a
	// sized-to-fit one lost a sixth of 1000 keys as they went in.
	spec, err := xdp.Spec(xdp.Config{GenevePort: 6081, Queues: 1, GeneveDst: DutIP, FastPath: true})
	if err != nil {
		return nil, err
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("loading weir's XDP program: %+v", err)
	}
	zero := xdp.FastCounters{}
	for _, k := range keys {
		if err := coll.Maps[xdp.MapFastFlows].Put(k, zero); err != nil {
			coll.Close()
			return nil, fmt.Errorf("adding a fast flow: %w", err)
		}
	}
	if err := xdp.SetFastPath(coll, true); err != nil {
		coll.Close()
		return nil, err
	}
	l, err := attach(b.topo.Dut, b.topo.DutIndex, coll.Programs[xdp.ProgramName])
	if err != nil {
		coll.Close()
		return nil, fmt.Errorf("attaching weir's XDP program: %w", err)
	}
	return &xdpFastTarget{coll: coll, l: l}, nil
}

// stop detaches the program, and fails if the fast path answered nothing
// or let a request past it: then the figures are not the fast path's.
func (t *xdpFastTarget) stop() error {
	err := t.l.Close()
	c, cerr := xdp.ReadCounters(t.coll)
	t.coll.Close()
	switch {
	case err != nil:
		return err
	case cerr != nil:
		return cerr
	case c.FastPath == 0:
		return errors.New("xdp-fast: the fast path answered no request")
	case c.NoSocket+c.Redirected+c.PassedMalformed+c.PassedOversize+c.DroppedSource > 0:
		return fmt.Errorf("xdp-fast: requests missed the fast path: %+v", c)
	}
	return nil
}
