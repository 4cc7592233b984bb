package afxdp

import (
	"context"
	"runtime"
	"testing"
	"time"

	"weir/dataplane"
	"weir/dataplane/afxdp/xsk"
	"weir/dataplane/flow"
	"weir/dataplane/policy"
	"weir/internal/netns"
)

// TestBackendInterfaceGone: when the interface goes away the sockets are
// unbound by the kernel (sk_err ENETDOWN); Run should end with an error rather
// than keep heartbeating workers that will never receive again.
func TestBackendInterfaceGone(t *testing.T) {
	weirNS, _ := newVethPair(t, 1)
	table := flow.NewTable(flow.Config{MaxFlows: 16}, &policy.Policy{Default: policy.Allow}, func(*flow.Record) {})
	p := dataplane.NewPipeline(&dataplane.GeneveDecode{}, dataplane.InnerDecode{}, &dataplane.Track{Table: table})
	var b *Backend
	if err := inNetns(weirNS, func() (err error) {
		b, err = New(Config{Interface: "afx0", ZeroCopy: xsk.ZeroCopyAuto})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Enter(weirNS); err != nil {
			done <- err
			return
		}
		done <- b.Run(ctx, p, func() { close(ready) })
	}()
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
