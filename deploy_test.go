package weir_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogrotateSnippet: deploy/logrotate/weir parses with logrotate, and with its
// paths pointed at a scratch folder it renames the logs, creates no new ones (weir
// does, on SIGHUP) and runs its postrotate script once for both.
func TestLogrotateSnippet(t *testing.T) {
	bin, err := exec.LookPath("logrotate")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("logrotate is not installed, and this is CI (.ci/run installs it)")
		}
		t.Skip("logrotate is not installed")
	}
	snippet, err := os.ReadFile("deploy/logrotate/weir")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out, err := exec.Command(bin, "-d", "-s", filepath.Join(dir, "state"), "deploy/logrotate/weir").CombinedOutput()
	if err != nil || strings.Contains(string(out), "error") {
		t.Fatalf("logrotate -d: %v\n%s", err, out)
	}

	// The same snippet on scratch files, with a postrotate that leaves a mark
	// instead of signalling weir.service.
	const postrotate = "systemctl kill -s HUP --kill-who=main weir.service 2>/dev/null || true"
	conf := string(snippet)
	if !strings.Contains(conf, "/var/log/weir/eve.json /var/log/weir/flows.log /var/log/weir/weir.log {") || !strings.Contains(conf, postrotate) {
		t.Fatalf("the snippet's paths or postrotate changed; update this test:\n%s", conf)
	}
	eve, flows, own := filepath.Join(dir, "eve.json"), filepath.Join(dir, "flows.log"), filepath.Join(dir, "weir.log")
	mark := filepath.Join(dir, "hups")
	conf = strings.Replace(conf, "/var/log/weir/eve.json /var/log/weir/flows.log /var/log/weir/weir.log", eve+" "+flows+" "+own, 1)
	conf = strings.Replace(conf, postrotate, "echo hup >> "+mark, 1)
	confPath := filepath.Join(dir, "weir.conf")
	for p, data := range map[string]string{confPath: conf, eve: "{}\n", flows: "version\n", own: "{}\n"} {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err = exec.Command(bin, "-f", "-s", filepath.Join(dir, "state"), confPath).CombinedOutput()
	if err != nil {
		t.Fatalf("logrotate -f: %v\n%s", err, out)
	}
	for _, p := range []string{eve, flows, own} {
		if _, err := os.Stat(p + ".1"); err != nil {
			t.Errorf("%s was not rotated to .1 (uncompressed: delaycompress): %v", p, err)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after rotation (%v); weir creates it on SIGHUP", p, err)
		}
	}
	if data, err := os.ReadFile(mark); err != nil || string(data) != "hup\n" {
		t.Errorf("postrotate ran %q (%v), want once", data, err)
	}
}
