package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCheckPaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "afile")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(dir, "eve.json")
	if err := os.WriteFile(existing, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml string
		want       string // error text after "FILE:"; "" = ok
	}{
		{"none", "log: {level: info}\n", ""},
		{"stdout", "outputs:\n  eve: \"-\"\n  flowlog: {path: \"-\"}\n", ""},
		{"new file in existing folder", "outputs:\n  eve: " + dir + "/new.json\n", ""},
		{"existing file", "outputs:\n  eve: " + existing + "\n", ""},
		{"folders to create", "outputs:\n  eve: " + dir + "/a/b/eve.json\n  pcap: {dir: " + dir + "/p/q}\n  flowlog: {path: " + dir + "/f/flows.log}\n", ""},
		{"eve under a file", "outputs:\n  eve: " + file + "/sub/eve.json\n",
			"2: outputs.eve: " + file + "/sub/eve.json: cannot reach directory " + file + "/sub: not a directory"},
		{"eve is a folder", "# c\noutputs:\n  eve: " + dir + "\n",
			"3: outputs.eve: " + dir + ": is a directory, not a file"},
		{"pcap dir is a file", "outputs:\n  pcap:\n    dir: " + file + "\n",
			"3: outputs.pcap.dir: " + file + ": " + file + " is not a directory"},
		{"flowlog under a file", "outputs:\n  flowlog:\n    path: " + file + "/flows.log\n",
			"3: outputs.flowlog.path: " + file + "/flows.log: " + file + " is not a directory"},
		{"log file to create", "log:\n  file: " + dir + "/logs/weir.log\n", ""},
		{"log file under a file", "log:\n  level: info\n  file: " + file + "/weir.log\n",
			"3: log.file: " + file + "/weir.log: " + file + " is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("weir.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = c.CheckPaths()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckPaths: %v", err)
				}
			} else if err == nil || err.Error() != "weir.yaml:"+tc.want {
				t.Fatalf("CheckPaths = %v, want weir.yaml:%s", err, tc.want)
			}
		})
	}
	// Nothing was created or changed.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("CheckPaths left files behind: %v", entries)
	}
	if b, _ := os.ReadFile(existing); string(b) != "old\n" {
		t.Errorf("CheckPaths changed %s: %q", existing, b)
	}
}

func TestCheckPathsPermission(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write anywhere: permission errors need an unprivileged user")
	}
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	c, err := Parse("weir.yaml", []byte("outputs:\n  eve: "+ro+"/nope/eve.json\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "weir.yaml:2: outputs.eve: " + ro + "/nope/eve.json: cannot create directory " + ro + "/nope: permission denied"
	if err := c.CheckPaths(); err == nil || err.Error() != want {
		t.Errorf("CheckPaths = %v, want %s", err, want)
	}
	if err := c.MakeOutputDirs(); err == nil || err.Error() != want {
		t.Errorf("MakeOutputDirs = %v, want %s", err, want)
	}
}

func TestMakeOutputDirs(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse("weir.yaml", []byte("outputs:\n  eve: "+dir+"/e/v/eve.json\n  flowlog: {path: "+dir+"/fl/flows.log}\nlog:\n  file: "+dir+"/lg/weir.log\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MakeOutputDirs(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"e/v", "fl", "lg"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755&^umask() {
			t.Errorf("%s: %v %v", d, fi, err)
		}
	}
}

func umask() os.FileMode {
	dir, _ := os.MkdirTemp("", "umask")
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "d")
	_ = os.Mkdir(p, 0o777)
	fi, _ := os.Stat(p)
	return 0o777 &^ fi.Mode().Perm()
}

func TestKeyErrorFlagOverride(t *testing.T) {
	c, err := Parse("weir.yaml", []byte("outputs:\n  eve: /a/eve.json\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.KeyError("outputs.eve", os.ErrPermission).Error(); got != "weir.yaml:2: outputs.eve: permission denied" {
		t.Errorf("KeyError = %q", got)
	}
	c.Outputs.EVE = "/b/eve.json" // replay's -eve
	if got := c.KeyError("outputs.eve", os.ErrPermission).Error(); !strings.HasPrefix(got, "weir.yaml: outputs.eve") {
		t.Errorf("KeyError after an override = %q, want no line", got)
	}
	if got := Default().KeyError("outputs.eve", os.ErrPermission).Error(); got != "outputs.eve: permission denied" {
		t.Errorf("KeyError of the defaults = %q", got)
	}
}

// TestCheckPathsFIFO: an output that is a FIFO is checked without opening it (an
// open to write waits for a reader for ever).
func TestCheckPathsFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "eve.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse("weir.yaml", []byte("outputs:\n  eve: "+fifo+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.CheckPaths() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("a writable FIFO: %v", err)
		}
	case <-time.After(10 * time.Second): // a bound on failure, not a wait for success
		t.Fatal("CheckPaths blocked opening a FIFO")
	}
}
