package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLogFileReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "weir.log")
	l, err := openLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("before\n"))
	if err := os.Rename(path, path+".1"); err != nil { // as logrotate does
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("after\n"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil { // a reload still running at shutdown: nothing happens
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "before\n" || string(cur) != "after\n" {
		t.Errorf("rotated %q, current %q", old, cur)
	}
	if _, err := os.Stat(path + ".2"); err == nil || strings.Contains(string(cur), "before") {
		t.Error("the log went somewhere it should not")
	}
}

// TestLogFileFIFONotReopened: a FIFO as log.file is not reopened on SIGHUP:
// opening it again would wait for a reader, and hold up every later SIGHUP.
func TestLogFileFIFONotReopened(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weir.log")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := openLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r.Close() // the reader goes away, as a restarting log shipper's does
	done := make(chan error, 1)
	go func() { done <- l.Reopen() }()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second): // a bound on failure, not a wait for success
		t.Fatal("Reopen of a FIFO without a reader blocked")
	}
}
