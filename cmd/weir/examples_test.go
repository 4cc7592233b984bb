package main

import (
	"os"
	"path/filepath"
	"testing"

	"weir/config"
)

// TestExamplesCheckConfig: every configuration under examples/ passes weir
// check-config (as root, which may create their output folders; otherwise their
// keys and values, and the filter files they name).
func TestExamplesCheckConfig(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"inline-only.yaml": true, "mirror-only.yaml": true, "both.yaml": true, "fleet-node.yaml": true,
		"inline-ips.yaml": true}
	// What check-config says of each example's detection, before "ok".
	detection := map[string]string{"inline-ips.yaml": ": 9 rules loaded, 0 skipped, 5 threat-intel entries\n"}
	for _, f := range files {
		delete(want, filepath.Base(f))
		t.Run(filepath.Base(f), func(t *testing.T) {
			if os.Geteuid() != 0 {
				if _, err := config.Load(f); err != nil {
					t.Error(err)
				}
				return
			}
			code, out, errs := runWeir(t, "check-config", f)
			wantOut := f + ": ok\n"
			if d := detection[filepath.Base(f)]; d != "" {
				wantOut = f + d + wantOut
			}
			if code != 0 || out != wantOut {
				t.Errorf("check-config %s = %d, %q %q", f, code, out, errs)
			}
		})
	}
	for f := range want {
		t.Errorf("examples/%s is missing", f)
	}

	// The mirror example's filter file is read, as describe-traffic-mirror-filters
	// prints it.
	c, err := config.Load("../../examples/mirror-only.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Mirror.Sessions; len(s) == 0 || s[0].Filter == nil || len(s[0].Filter.Egress) != 3 || len(s[0].Filter.Ingress) != 2 {
		t.Errorf("examples/filters/web.json as read: %+v", s)
	}
}
