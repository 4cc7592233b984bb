package main

import (
	"fmt"
	"testing"

	"weir/config"
)

// TestDemoConfigParses: the demo's configuration, with its inline filter written as
// a user would (flow mappings over several lines), is valid.
func TestDemoConfigParses(t *testing.T) {
	data := fmt.Sprintf(demoConfig, "127.0.0.1:6081", "127.0.0.2", demoDenied, "127.0.0.1:4789",
		"127.0.0.3", "127.0.0.4", t.TempDir())
	c, err := config.Parse("demo.yaml", []byte(data))
	if err != nil {
		t.Fatalf("demo config: %v", err)
	}
	s := c.Mirror.Sessions
	if len(s) != 2 || s[0].Filter == nil || len(s[0].Filter.Egress) != 2 || len(s[0].Filter.Ingress) != 1 ||
		s[0].PacketLength != 128 || s[1].Filter != nil {
		t.Errorf("demo sessions: %+v", s)
	}
}
