package netns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
)

// Run enters the namespace (a fresh one has only lo, down) and returns to the
// original one after.
func TestRun(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root")
		}
		t.Skip("needs root to make a network namespace")
	}
	name := fmt.Sprintf("weir-netns-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	var inside []net.Interface
	if err := Run(name, func() (err error) { inside, err = net.Interfaces(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(inside) != 1 || inside[0].Name != "lo" {
		t.Fatalf("interfaces in the new namespace: %v", inside)
	}
	outside, err := net.Interfaces()
	if err != nil || len(outside) < 2 {
		t.Fatalf("back outside: %v, %v", outside, err)
	}
	if err := Run("weir-no-such-namespace", func() error { return nil }); err == nil {
		t.Fatal("Run in a missing namespace: no error")
	}
}
