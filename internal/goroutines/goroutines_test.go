package goroutines

import (
	"sync"
	"testing"
)

func parkedHere(ch chan int) { ch <- 1 }

func TestBlocked(t *testing.T) {
	ch := make(chan int)
	var started sync.WaitGroup
	started.Add(1)
	go func() {
		started.Done()
		parkedHere(ch)
	}()
	started.Wait()
	WaitBlocked(t, "chan send", "goroutines.parkedHere")
	if Blocked("chan receive", "goroutines.parkedHere") {
		t.Error("matched the wrong state")
	}
	// The test function started the goroutine: it appears only in "created by", which
	// must not count as the goroutine being parked there.
	if Blocked("chan send", "goroutines.TestBlocked in goroutine") {
		t.Error("matched a function named only in the created-by line")
	}
	<-ch
	if Blocked("chan send", "goroutines.parkedHere") {
		t.Error("still reported blocked after the send went through")
	}
}
