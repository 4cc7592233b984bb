package config

import (
	"fmt"
	"io"
	"os"
)

// Input bounds, so that a wrong path (a log, an image, /dev/zero) fails at once
// instead of taking the machine's memory. yaml.v3 allocates up to ~120 MB for each
// MiB of dense YAML (a flow list of small numbers), so a configuration, which is
// written by hand and a few KiB long, gets 4 MiB; a filter file may be the
// describe-traffic-mirror-filters output of a whole account, of about 1 KiB per
// rule, and gets 16 MiB.
const (
	MaxConfigSize     = 4 << 20
	MaxFilterFileSize = 16 << 20
)

// ReadFile reads the file at path, which must hold at most max bytes: a larger
// one is an *Error "PATH: larger than N MiB" (line 0). A regular file is judged by
// its size before reading; anything else (a pipe, a device such as /dev/zero that
// never ends) is read through a limit of max+1 bytes, which is where it stops.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > max {
		return nil, &Error{File: path, Msg: "larger than " + sizeText(max)}
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, &Error{File: path, Msg: "larger than " + sizeText(max)}
	}
	return data, nil
}

// sizeText writes n bytes in the largest binary unit that divides it.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
