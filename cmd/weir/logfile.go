package main

import (
	"os"
	"sync"
)

// logFile is weir's own log when log.file names one: appended to, and reopened at
// its path on SIGHUP after logrotate renamed it. Logging is rare and never on the
// packet path, so a mutex between writes and the reopen is enough.
type logFile struct {
	path   string
	mu     sync.Mutex
	f      *os.File
	closed bool
}

func openLogFile(path string) (*logFile, error) {
	l := &logFile{path: path}
	var err error
	if l.f, err = l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *logFile) open() (*os.File, error) {
	return os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen continues the log in a new file at the path; if that cannot be opened,
// the old file stays in use. Only a regular file is reopened (logrotate renames
// regular files): opening a FIFO again could wait for a reader for ever, and the
// SIGHUP that asked would hold up every later one. After Close it does nothing.
func (l *logFile) Reopen() error {
	l.mu.Lock()
	fi, err := l.f.Stat()
	closed := l.closed
	l.mu.Unlock()
	if closed || err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	f, err := l.open()
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed { // closed while we opened
		return f.Close()
	}
	old := l.f
	l.f = f
	return old.Close()
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.f.Close()
}
