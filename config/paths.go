package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// outputPath is a file or folder weir writes, and the key that names it.
type outputPath struct {
	key, path string
	dir       bool // a folder weir writes files into, not a file
}

// outputs lists the files and folders the configuration writes ("-" is stdout).
func (c *Config) outputs() []outputPath {
	var list []outputPath
	if p := c.Outputs.EVE; p != "" && p != "-" {
		list = append(list, outputPath{key: "outputs.eve", path: p})
	}
	if p := c.Outputs.FlowLog.Path; p != "" && p != "-" {
		list = append(list, outputPath{key: "outputs.flowlog.path", path: p})
	}
	if p := c.Outputs.PCAP.Dir; p != "" {
		list = append(list, outputPath{key: "outputs.pcap.dir", path: p, dir: true})
	}
	if p := c.Log.File; p != "" {
		list = append(list, outputPath{key: "log.file", path: p})
	}
	return list
}

// CheckPaths checks, without creating anything, that weir run could write every
// output: for a file, that its folder exists or can be created and that the file can
// be opened for append (or created); for outputs.pcap.dir, that the folder exists
// and is writable or can be created. Errors name the key and, when the file gave
// it, its line: "FILE:LINE: outputs.eve: /nope/eve.json: cannot create directory
// /nope: permission denied".
func (c *Config) CheckPaths() error {
	for _, o := range c.outputs() {
		if err := checkOutput(o); err != nil {
			return c.KeyError(o.key, err)
		}
	}
	return nil
}

// MakeOutputDirs creates the folders of the output files (mode 0755) and checks
// the pcap folder as CheckPaths does (the pcap writer creates it). Errors are
// CheckPaths'.
func (c *Config) MakeOutputDirs() error {
	for _, o := range c.outputs() {
		if o.dir {
			if err := checkOutput(o); err != nil {
				return c.KeyError(o.key, err)
			}
		} else if err := makeDirs(filepath.Dir(o.path)); err != nil {
			return c.KeyError(o.key, fmt.Errorf("%s: %w", o.path, err))
		}
	}
	return nil
}

// KeyError is err about the value of key: "FILE:LINE: KEY: err" when the value
// came from a file (and is still the file's: a command-line flag may override it,
// which leaves "FILE: KEY: err"), else "KEY: err".
func (c *Config) KeyError(key string, err error) error {
	msg := key + ": " + err.Error()
	if c.file == "" {
		return errors.New(msg)
	}
	e := &Error{File: c.file, Msg: msg}
	if src, ok := c.sources[key]; ok && src.value == c.outputValue(key) {
		e.Line = src.line
	}
	return e
}

func (c *Config) outputValue(key string) string {
	switch key {
	case "outputs.eve":
		return c.Outputs.EVE
	case "outputs.flowlog.path":
		return c.Outputs.FlowLog.Path
	case "outputs.pcap.dir":
		return c.Outputs.PCAP.Dir
	case "log.file":
		return c.Log.File
	case "cluster.secret_key_file":
		return c.Cluster.SecretKeyFile
	case "dataplane.backend":
		return c.Dataplane.Backend
	case "dataplane.interface":
		return c.Dataplane.Interface
	case "dataplane.zerocopy":
		return c.Dataplane.ZeroCopy
	case "dataplane.queues":
		return strconv.Itoa(c.Dataplane.Queues)
	}
	return ""
}

// source is where a key's value was read.
type source struct {
	line  int
	value string
}

func checkOutput(o outputPath) error {
	if o.dir {
		existed, err := checkDirs(o.path)
		if err == nil && existed {
			if e := writable(o.path); e != nil {
				err = fmt.Errorf("cannot write in directory %s: %w", o.path, e)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", o.path, err)
		}
		return nil
	}
	dir := filepath.Dir(o.path)
	existed, err := checkDirs(dir)
	if err != nil || !existed {
		if err != nil {
			err = fmt.Errorf("%s: %w", o.path, err)
		}
		return err
	}
	fi, err := os.Stat(o.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if e := writable(dir); e != nil {
			return fmt.Errorf("%s: cannot create a file in %s: %w", o.path, dir, e)
		}
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", o.path, errno(err))
	case fi.IsDir():
		return fmt.Errorf("%s: is a directory, not a file", o.path)
	}
	if !fi.Mode().IsRegular() {
		// A FIFO or a device: opening one to write can wait for a reader for ever,
		// so ask the kernel whether we may write rather than open it.
		if err := syscall.Access(o.path, 2); err != nil { // W_OK
			return fmt.Errorf("%s: cannot write: %w", o.path, errno(err))
		}
		return nil
	}
	// Opening for append without O_CREATE changes nothing, not even the times.
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("%s: cannot open for append: %w", o.path, errno(err))
	}
	return f.Close()
}

// checkDirs checks that dir exists as a folder, or could be created: its nearest
// existing ancestor is a writable folder. existed says whether dir exists.
func checkDirs(dir string) (existed bool, err error) {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return true, nil
	case err == nil:
		return false, fmt.Errorf("%s is not a directory", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("cannot reach directory %s: %w", dir, errno(err))
	}
	parent := filepath.Dir(dir)
	if parent == dir {
		return false, fmt.Errorf("cannot reach directory %s: %w", dir, errno(err))
	}
	parentExisted, err := checkDirs(parent)
	if err != nil {
		return false, err
	}
	if parentExisted {
		if e := writable(parent); e != nil {
			return false, fmt.Errorf("cannot create directory %s: %w", dir, e)
		}
	}
	return false, nil
}

// makeDirs creates dir and its missing parents, mode 0755, with checkDirs' errors.
func makeDirs(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("%s is not a directory", dir)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cannot reach directory %s: %w", dir, errno(err))
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := makeDirs(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cannot create directory %s: %w", dir, errno(err))
	}
	return nil
}

// writable reports whether this process may create files in dir, as the kernel
// decides for its effective user and capabilities (a read-only mount included).
func writable(dir string) error {
	return unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS)
}

// errno is the system error inside a path error, whose path the message repeats.
func errno(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
