package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRuleNameAfterReload: a flow decided by rule 0 ("web", allow) that ends after a
// reload whose rule 0 is "block-telnet" still says weir.rule "web"; a flow decided
// after the reload names the new policy's rule.
func TestRuleNameAfterReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "weir.yaml")
	evePath := filepath.Join(dir, "eve.json")
	head := "outputs:\n  eve: " + evePath + "\n"
	e := load(t, path, head+"policy:\n  default: drop\n  rules:\n    - {name: web, action: allow, proto: tcp, dst_port: 443}\n")
	w := e.Pipeline.NewWorker()
	next(w, tcpConv(40000, 443))
	write(t, path, head+"policy:\n  default: allow\n  rules:\n    - {name: block-telnet, action: drop, proto: tcp, dst_port: 23}\n    - {action: allow, proto: tcp, dst_port: 443}\n")
	if _, err := e.Reload(path); err != nil {
		t.Fatal(err)
	}
	next(w, tcpConv(40001, 443)) // decided by the new policy's unnamed rules[1]
	e.Flush(2e18)
	e.CloseOutputs()
	b, _ := os.ReadFile(evePath)
	if !strings.Contains(string(b), `"rule":"web"`) || !strings.Contains(string(b), `"rule":"rules[1]"`) ||
		strings.Contains(string(b), "block-telnet") {
		t.Errorf("want one flow named web and one rules[1], none block-telnet; EVE:\n%s", b)
	}
}
