package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadFileLimits: a file one byte over the limit, and files that never end,
// fail with "FILE: larger than N MiB" after reading at most the limit.
func TestReadFileLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxConfigSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(big)
	if want := big + ": larger than 4 MiB"; err == nil || err.Error() != want {
		t.Errorf("Load(%d bytes) = %v, want %q", MaxConfigSize+1, err, want)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.File != big || ce.Line != 0 {
		t.Errorf("error %#v, want a *Error for the whole file", err)
	}

	// Exactly at the limit is read (and then found not to be YAML).
	exact := filepath.Join(dir, "exact.yaml")
	if err := os.WriteFile(exact, []byte("log: {level: debug}\n"+strings.Repeat("#", MaxConfigSize-21)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(exact); err != nil || c.Log.Level != "debug" {
		t.Errorf("Load(%d bytes) = %v", MaxConfigSize, err)
	}

	// /dev/zero never ends: the limit reader stops it.
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	if _, err := Load("/dev/zero"); err == nil || err.Error() != "/dev/zero: larger than 4 MiB" {
		t.Errorf("Load(/dev/zero) = %v", err)
	}
	if _, err := ReadFile("/dev/zero", MaxFilterFileSize); err == nil || err.Error() != "/dev/zero: larger than 16 MiB" {
		t.Errorf("ReadFile(/dev/zero) = %v", err)
	}
	for n, want := range map[int64]string{4 << 20: "4 MiB", 2048: "2 KiB", 1536: "1536 bytes"} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestFilterFileLimits: a filter file too large, or one that never ends, is an
// error at the config line that names it.
func TestFilterFileLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, make([]byte, MaxFilterFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, filter, want string }{
		{"16 MiB + 1", "big.json", big + ": larger than 16 MiB"},
		{"/dev/zero", "/dev/zero", "/dev/zero: larger than 16 MiB"},
		{"name too long", strings.Repeat("f", 5000), `"` + strings.Repeat("f", 64) + `"… (5000 bytes) is too long for a file name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.filter == "/dev/zero" {
				if _, err := os.Stat("/dev/zero"); err != nil {
					t.Skip("no /dev/zero")
				}
			}
			path := filepath.Join(dir, "weir.yaml")
			if err := os.WriteFile(path, []byte("mirror:\n  sessions:\n    - vni: 1\n      filter: "+tc.filter+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if want := path + ":4: mirror.sessions[0].filter: " + tc.want; err == nil || err.Error() != want {
				t.Errorf("error %v\nwant %s", err, want)
			}
		})
	}
}

// TestLongValuesCut: a value repeated in an error is cut to its first 64 bytes
// and its length, whatever key it is under.
func TestLongValuesCut(t *testing.T) {
	long := strings.Repeat("a", 1<<20)
	cut := `"` + long[:64] + `"… (1048576 bytes)`
	for _, tc := range []struct{ name, data, want string }{
		{"enum", "log:\n  level: " + long + "\n", "log.level: " + cut + " is not one of debug"},
		{"address", "gwlb:\n  listen: " + long + "\n", "gwlb.listen: " + cut + " is not ADDRESS:PORT"},
		{"CIDR", "gwlb:\n  allowed_sources: [" + long + "]\n", "gwlb.allowed_sources: " + cut + " is not a CIDR"},
		{"unknown key", "log:\n  ? " + long + "\n  : 1\n", `unknown key "log.` + long[:60] + `"… (1048580 bytes)`},
		{"session name", "mirror:\n  sessions:\n    - {vni: 1, name: " + long + "}\n    - {vni: 2, name: " + long + "}\n", "session name " + cut + " is already used"},
		{"filter id", "mirror:\n  sessions:\n    - vni: 1\n      filter_id: " + long + "\n      filter: {TrafficMirrorFilterId: tmf-1}\n",
			`holds filter "tmf-1", not ` + long[:64] + "… (1048576 bytes)"},
		{"inline filter value", "mirror:\n  sessions:\n    - vni: 1\n      filter:\n        EgressFilterRules:\n          - {RuleNumber: 1, RuleAction: " + long + "}\n",
			"bad RuleAction " + cut},
		{"multi-byte characters", "log:\n  level: " + strings.Repeat("é", 1000) + "\n", `"` + strings.Repeat("é", 32) + `"… (2000 bytes)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) || len(err.Error()) > 1024 {
				t.Errorf("error of %d bytes %.300q, want it short and holding %.200q", len(errString(err)), errString(err), tc.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestYAMLBombs: YAML built to explode fails, and cheaply: the configuration is
// walked without expanding aliases, and yaml.v3 refuses nesting deeper than 10000.
func TestYAMLBombs(t *testing.T) {
	// Each level refers to the one before ten times: 10^9 leaves if expanded.
	laughs := func(indent string) string {
		var b strings.Builder
		b.WriteString(indent + "a0: &a0 [lol]\n")
		for i := 1; i <= 9; i++ {
			fmt.Fprintf(&b, "%sa%d: &a%d [%s]\n", indent, i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
		}
		return b.String()
	}
	for _, tc := range []struct{ name, data, want string }{
		{"billion laughs", laughs(""), `unknown key "a0"`},
		// The configuration's own keys do not follow aliases.
		{"alias under a known key", "gwlb:\n  allowed_sources: &x [10.0.0.0/8]\nmirror:\n  amazon_dns: *x\n", "mirror.amazon_dns: expected a list"},
		// A filter follows them, but reads only a filter's fixed shape: a list
		// where a rule should be is an error, not a walk of 10^9 nodes.
		{"billion laughs in an inline filter", "mirror:\n  sessions:\n    - vni: 1\n      filter:\n        Tags:\n" + laughs("          ") +
			"        EgressFilterRules: *a9\n        IngressFilterRules: [*a9, *a9]\n", "want an object, got an array"},
		{"nested flow lists", "gwlb:\n  allowed_sources: " + strings.Repeat("[", 20000) + "\n", "exceeded max depth of 10000"},
		{"nested flow mappings", "log: " + strings.Repeat("{a: ", 20000) + "\n", "exceeded max depth of 10000"},
		{"nested block lists", strings.Repeat("- ", 20000) + "\n", "exceeded max depth of 10000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
