// Package goroutines lets tests wait until a goroutine is parked at a given call,
// so that "it is blocked" is observed rather than assumed after a sleep (a sleep
// passes just as well when the goroutine never ran).
package goroutines

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Blocked reports whether some goroutine is parked in state (the bracketed word of a
// stack dump, e.g. "chan send", "select", "sync.Mutex.Lock") with a frame whose
// function name contains fn.
func Blocked(state, fn string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		head, frames, _ := bytes.Cut(g, []byte("\n"))
		// Only the goroutine's own frames, not the "created by" line that names
		// whoever started it.
		frames, _, _ = bytes.Cut(frames, []byte("\ncreated by "))
		if bytes.Contains(head, []byte("["+state)) && strings.Contains(string(frames), fn) {
			return true
		}
	}
	return false
}

// WaitBlocked waits (up to 10 s, then fails the test) until Blocked(state, fn).
func WaitBlocked(tb testing.TB, state, fn string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !Blocked(state, fn) {
		if time.Now().After(deadline) {
			tb.Fatalf("no goroutine became blocked in %s at %s", state, fn)
		}
		time.Sleep(time.Millisecond)
	}
}
