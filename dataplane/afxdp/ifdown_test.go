package afxdp

import (
	"context"
	"testing"
	"time"

	"weir/dataplane"
	"weir/dataplane/afxdp/xsk"
	"weir/dataplane/flow"
	"weir/dataplane/policy"
)

// TestBackendInterfaceGone: when the interface goes away the sockets are
// unbound by the kernel (sk_err ENETDOWN); Run should end with an error rather
// than keep heartbeating workers that will never receive again.
func TestBackendInterfaceGone(t *testing.T) {
	weirNS, _ := newVethPair(t, 1)
	table := flow.NewTable(flow.Config{MaxFlows: 16}, &policy.Policy{Default: policy.Allow}, func(*flow.Record) {})
	p := dataplane.NewPipeline(&dataplane.GeneveDecode{}, dataplane.InnerDecode{}, &dataplane.Track{Table: table})
	b := newIn(t, weirNS, Config{Interface: "afx0", ZeroCopy: xsk.ZeroCopyAuto})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready, done := runIn(ctx, weirNS, b, p)
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	ipCmd(t, "-n", weirNS, "link", "del", "afx0")
	select {
	case err := <-done:
		t.Logf("Run returned: %v", err)
		if err == nil {
			t.Error("Run returned nil after its interface was deleted")
		}
	case <-time.After(3 * time.Second):
		t.Error("Run still running (workers heartbeating) 3 s after its interface was deleted")
		cancel()
		<-done
	}
}
