package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

var (
	afxdpOnce sync.Once
	afxdpErr  error
)

// requireAFXDP skips an AF_XDP test, in CI too, when the kernel cannot run the
// backend at all (no AF_XDP sockets, no XDP programs, no multi-buffer XDP): the
// issue's "runs where the CI kernel allows, and says so when it skips". The
// reason goes to stderr once, so that a CI log without -v shows it.
func requireAFXDP(t *testing.T) {
	t.Helper()
	requireNetns(t)
	afxdpOnce.Do(func() {
		afxdpErr = afxdpSupport()
		if afxdpErr != nil {
			fmt.Fprintf(os.Stderr, "weir tests: the AF_XDP suite is skipped: %v\n", afxdpErr)
		}
	})
	if afxdpErr != nil {
		t.Skipf("AF_XDP suite skipped: %v", afxdpErr)
	}
}

func afxdpSupport() error {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("the kernel has no AF_XDP sockets: %w", err)
	}
	unix.Close(fd)
	if err := features.HaveProgramType(ebpf.XDP); err != nil {
		return fmt.Errorf("the kernel cannot load XDP programs: %w", err)
	}
	// The test topology's veths have a 9001-byte MTU, at which native XDP on
	// veth takes only a multi-buffer program (bpf_xdp_get_buff_len, 5.18+).
	if err := features.HaveProgramHelper(ebpf.XDP, asm.FnXdpGetBuffLen); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("the kernel has no multi-buffer XDP (bpf_xdp_get_buff_len): %w", err)
		}
		return err
	}
	return nil
}
