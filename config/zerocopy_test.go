package config

import (
	"strings"
	"testing"
)

// TestZeroCopyOnOff: yaml.v3 hands the parser on/off as the plain strings
// (it resolves only true/false as booleans), quoted or not.
func TestZeroCopyOnOff(t *testing.T) {
	for _, v := range []string{"on", "off", `"on"`, "'off'", "auto"} {
		c, err := Parse("t.yaml", []byte("dataplane:\n  zerocopy: "+v+"\n"))
		if err != nil {
			t.Errorf("%s: %v", v, err)
			continue
		}
		if want := strings.Trim(v, `"'`); c.Dataplane.ZeroCopy != want {
			t.Errorf("%s read as %q, want %q", v, c.Dataplane.ZeroCopy, want)
		}
	}
	for _, v := range []string{"true", "false", "yes", "On", "OFF", "~", ""} {
		_, err := Parse("t.yaml", []byte("dataplane:\n  zerocopy: "+v+"\n"))
		if err == nil {
			t.Errorf("%q accepted", v)
		} else {
			t.Logf("%q -> %v", v, err)
		}
	}
}
