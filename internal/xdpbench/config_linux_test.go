package xdpbench

import (
	"testing"

	"weir/config"
)

// TestWeirConfig: each weir target's configuration is valid and names its
// backend, so that the default (auto) never picks for it.
func TestWeirConfig(t *testing.T) {
	for _, backend := range []string{TargetAFXDP, TargetSocket} {
		c, err := config.Parse("bench.yaml", []byte(weirConfig(backend, 18080, 19090)))
		if err != nil {
			t.Fatalf("%s: %v", backend, err)
		}
		if c.Dataplane.Backend != backend {
			t.Errorf("%s target's configuration runs backend %q", backend, c.Dataplane.Backend)
		}
	}
}
