//go:build !unix

package mirror

import "syscall"

// reuseControl does nothing where SO_REUSEPORT is not available.
func reuseControl(_, _ string, _ syscall.RawConn) error { return nil }
