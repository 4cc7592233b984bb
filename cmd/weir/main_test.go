package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// runWeir calls run as main does and returns the exit code and both outputs.
func runWeir(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// testKeyFile writes a cluster key file of one AES-128 key.
func testKeyFile(t *testing.T) string {
	return writeConfig(t, "cluster.key", "AAAAAAAAAAAAAAAAAAAAAA==\n")
}

func TestRunCheckConfigValid(t *testing.T) {
	full := strings.ReplaceAll(readFile(t, "../../config/testdata/full.yaml"), "/etc/weir/cluster.key", testKeyFile(t))
	for name, data := range map[string]string{
		"full.yaml":  full,
		"empty.yaml": "",
	} {
		t.Run(name, func(t *testing.T) {
			path := writeConfig(t, name, data)
			code, out, errs := runWeir(t, "check-config", path)
			if code != 0 {
				t.Fatalf("check-config %s = %d, want 0; stderr %q", name, code, errs)
			}
			if errs != "" {
				t.Errorf("stderr = %q, want nothing", errs)
			}
			if want := path + ": ok\n"; out != want {
				t.Errorf("stdout = %q, want %q", out, want)
			}
		})
	}
}

func TestRunCheckConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		line       string
		msg        string
	}{
		{"unknown key", "# weir\ngwlb:\n  lisen: 0.0.0.0:6081\n", "3", `unknown key "gwlb.lisen"`},
		{"bad value", "flows:\n  tcp_timeout: 7000s\n", "2", "flows.tcp_timeout"},
		{"yaml syntax", "log:\n\tlevel: info\n", "2", "tab in indentation: YAML indents with spaces"},
		{"over-indented key", "log:\n  level: info\n    format: json\n", "3", `"format" is indented deeper than line 2`},
		{"unclosed bracket", "gwlb:\n  allowed_sources: [10.0.0.0/8\nlog:\n  level: info\n", "2", "unclosed ["},
		{"cluster key missing", "cluster:\n  bind: 127.0.0.1:7946\n  secret_key_file: /nonexistent/cluster.key\n", "3",
			"cluster.secret_key_file: open /nonexistent/cluster.key"},
		{"cluster key bad", "cluster:\n  bind: 127.0.0.1:7946\n  secret_key_file: " + writeConfig(t, "bad.key", "AAAA\n") + "\n", "3",
			"bad.key:1: a key of 3 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "weir.yaml", tc.data)
			code, out, errs := runWeir(t, "check-config", path)
			if code == 0 {
				t.Fatalf("check-config = 0 for an invalid file; stdout %q", out)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			prefix := path + ":" + tc.line + ": "
			if !strings.HasPrefix(errs, prefix) {
				t.Errorf("stderr = %q, want it to start with %q", errs, prefix)
			}
			if !strings.Contains(errs, tc.msg) {
				t.Errorf("stderr = %q, want it to contain %q", errs, tc.msg)
			}
			if strings.Count(errs, "\n") != 1 || !strings.HasSuffix(errs, "\n") {
				t.Errorf("stderr = %q, want exactly one line", errs)
			}
		})
	}
}

func TestRunCheckConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	code, out, errs := runWeir(t, "check-config", path)
	if code == 0 {
		t.Fatalf("check-config of a missing file = 0; stdout %q", out)
	}
	if !strings.Contains(errs, path) || !strings.Contains(errs, "no such file") {
		t.Errorf("stderr = %q, want it to name %s and say it does not exist", errs, path)
	}
}

func TestRunCheckConfigUsage(t *testing.T) {
	for _, args := range [][]string{{"check-config"}, {"check-config", "a.yaml", "b.yaml"}} {
		code, _, errs := runWeir(t, args...)
		if code != 2 {
			t.Errorf("%q = %d, want 2", args, code)
		}
		if !strings.Contains(errs, "usage: weir check-config FILE") {
			t.Errorf("%q: stderr = %q, want a usage line", args, errs)
		}
	}
}

func TestRunVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		code, out, errs := runWeir(t, arg)
		if code != 0 {
			t.Errorf("%s = %d, want 0; stderr %q", arg, code, errs)
		}
		if !strings.HasPrefix(out, "weir ") || !strings.HasSuffix(out, "\n") || len(out) <= len("weir \n") {
			t.Errorf("%s printed %q, want \"weir VERSION\\n\"", arg, out)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	code, out, errs := runWeir(t)
	if code != 2 {
		t.Errorf("no args = %d, want 2", code)
	}
	if out != "" || !strings.Contains(errs, "usage: weir COMMAND") {
		t.Errorf("no args: stdout %q, stderr %q; want usage on stderr", out, errs)
	}

	code, out, errs = runWeir(t, "frobnicate")
	if code != 2 {
		t.Errorf("unknown command = %d, want 2", code)
	}
	if out != "" || !strings.Contains(errs, `unknown command "frobnicate"`) || !strings.Contains(errs, "usage:") {
		t.Errorf("unknown command: stdout %q, stderr %q", out, errs)
	}

	code, out, _ = runWeir(t, "help")
	if code != 0 || !strings.Contains(out, "check-config FILE") {
		t.Errorf("help = %d, stdout %q; want 0 and the usage", code, out)
	}

	code, _, errs = runWeir(t, "run", "extra")
	if code != 2 || !strings.Contains(errs, "unexpected arguments") {
		t.Errorf("run extra = %d, stderr %q; want 2 and a usage error", code, errs)
	}
}

func TestRunWithBadConfig(t *testing.T) {
	// run must refuse a bad configuration before starting anything.
	path := writeConfig(t, "weir.yaml", "log:\n  level: loud\n")
	code, _, errs := runWeir(t, "run", "-config", path)
	if code != 1 {
		t.Errorf("run -config bad = %d, want 1", code)
	}
	if want := path + ":2: "; !strings.HasPrefix(errs, want) {
		t.Errorf("stderr = %q, want it to start with %q", errs, want)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHelpEverySubcommand: every command answers -h and --help with its own usage
// on stdout and exits 0.
func TestHelpEverySubcommand(t *testing.T) {
	for _, cmd := range [][]string{{"run"}, {"check-config"}, {"replay"}, {"sim"}, {"sim", "gwlb"},
		{"sim", "mirror"}, {"demo"}, {"version"}} {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, cmd...), h)
			code, out, errs := runWeir(t, args...)
			if code != 0 {
				t.Errorf("%q = %d, want 0; stderr %q", args, code, errs)
			}
			if errs != "" {
				t.Errorf("%q: stderr = %q, want nothing", args, errs)
			}
			if want := "usage: weir " + strings.Join(cmd, " "); !strings.HasPrefix(out, want) {
				t.Errorf("%q: stdout = %q, want it to start with %q", args, out, want)
			}
			if strings.Contains(out, "Usage of") {
				t.Errorf("%q: Go's default usage: %q", args, out)
			}
		}
	}
}

func TestBadFlagPrintsUsage(t *testing.T) {
	code, out, errs := runWeir(t, "run", "-nope")
	if code != 2 || out != "" {
		t.Errorf("run -nope = %d, stdout %q; want 2 and nothing", code, out)
	}
	if !strings.HasPrefix(errs, "flag provided but not defined: -nope\nusage: weir run") ||
		strings.Count(errs, "flag provided") != 1 {
		t.Errorf("run -nope: stderr %q, want the error once, then the usage", errs)
	}
}

// TestUsageListsEverySubcommand: weir -h names every command and its main flags.
func TestUsageListsEverySubcommand(t *testing.T) {
	code, out, _ := runWeir(t, "-h")
	if code != 0 {
		t.Fatalf("-h = %d", code)
	}
	for _, want := range []string{"run [-config FILE]", "check-config FILE", "replay -eve OUT.json",
		"-pcap-dir", "-flowlog", "sim gwlb -target", "sim mirror -target", "-eni", "-both-ends",
		"demo [-duration 10s] [-keep]", "version", "weir COMMAND -h"} {
		if !strings.Contains(out, want) {
			t.Errorf("weir -h does not mention %q:\n%s", want, out)
		}
	}
}

func TestVersionBuildInfo(t *testing.T) {
	code, out, _ := runWeir(t, "version")
	if code != 0 {
		t.Fatalf("version = %d", code)
	}
	for _, want := range []string{"weir ", "  module    weir", "  revision  ", "  go        " + runtime.Version()} {
		if !strings.Contains(out, want) {
			t.Errorf("version printed %q, want it to contain %q", out, want)
		}
	}
	if code, _, errs := runWeir(t, "version", "extra"); code != 2 || !strings.Contains(errs, "unexpected arguments") {
		t.Errorf("version extra = %d, %q", code, errs)
	}
}

// TestCheckConfigOutputPaths: check-config fails where run would fail to open an
// output, and names the key and its line.
func TestCheckConfigOutputPaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, "weir.yaml", "outputs:\n  eve: "+file+"/logs/eve.json\n")
	code, _, errs := runWeir(t, "check-config", path)
	want := path + ":2: outputs.eve: " + file + "/logs/eve.json: cannot reach directory " + file + "/logs: not a directory\n"
	if code != 1 || errs != want {
		t.Errorf("check-config = %d, %q; want 1, %q", code, errs, want)
	}
	// A folder that does not exist yet is fine: run creates it.
	path = writeConfig(t, "weir.yaml", "outputs:\n  eve: "+dir+"/new/eve.json\n  pcap: {dir: "+dir+"/new/pcap}\n")
	if code, _, errs := runWeir(t, "check-config", path); code != 0 {
		t.Errorf("check-config with folders to create = %d, %q", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
		t.Errorf("check-config created %s/new", dir)
	}
}
