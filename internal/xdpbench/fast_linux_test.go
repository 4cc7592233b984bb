package xdpbench

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"

	"weir/dataplane/afxdp/xdp"
)

// TestXDPFast: with the keys FastKeys gives, weir's program answers every
// request frame with exactly the reflector's reply; a frame of a flow left
// out of the map is not answered.
func TestXDPFast(t *testing.T) {
	requireRoot(t)
	frames := testFrames(t)
	keys, err := FastKeys(frames)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := xdp.Spec(xdp.Config{GenevePort: 6081, Queues: 1, GeneveDst: DutIP, FastPath: true, FastFlows: len(keys)})
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer coll.Close()
	for _, k := range keys[1:] { // the first flow stays out
		if err := coll.Maps[xdp.MapFastFlows].Put(k, xdp.FastCounters{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := xdp.SetFastPath(coll, true); err != nil {
		t.Fatal(err)
	}
	p := coll.Programs[xdp.ProgramName]
	for i, req := range frames {
		rc, out := runXDP(t, p, req)
		if i == 0 {
			if rc == xdpTX || !bytes.Equal(out, req) {
				t.Fatalf("a flow not in the map: action %d", rc)
			}
			continue
		}
		if rc != xdpTX || !bytes.Equal(out, SwappedReply(req)) {
			t.Fatalf("frame %d: action %d, frame\n%x\nwant\n%x", i, rc, out, SwappedReply(req))
		}
		c, ok, err := xdp.ReadFast(coll, keys[i])
		if err != nil || !ok || c.Packets != 1 || c.Bytes != uint64(len(req)-offInnerIP) {
			t.Fatalf("frame %d: counters %+v (%v, %v), want 1 packet of %d bytes", i, c, ok, err, len(req)-offInnerIP)
		}
	}
}
