// Package netns runs code inside a named network namespace (one that `ip netns
// add` made), for tests that build topologies of their own.
package netns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Run runs f on an OS thread switched into namespace name. Sockets f creates stay
// in the namespace after the thread switches back; goroutines f starts do not
// inherit it (they run on other threads).
func Run(name string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := Enter(name); err != nil {
		return err
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is in the wrong namespace: let it die with the goroutine.
		runtime.Goexit()
	}
	return ferr
}

// Enter switches the calling OS thread into namespace name for good: the caller
// must have locked the goroutine to its thread (runtime.LockOSThread) and never
// unlock it, so that the thread ends with the goroutine.
func Enter(name string) error {
	target, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", name, err)
	}
	return nil
}
