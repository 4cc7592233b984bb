package xsk

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestMain removes the namespaces an earlier, killed run of these tests left
// behind (their names carry its pid).
func TestMain(m *testing.M) {
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			name, _, _ := strings.Cut(line, " ")
			rest, ok := strings.CutPrefix(name, "weir-xsk-")
			pid, _, _ := strings.Cut(rest, "-")
			if n, err := strconv.Atoi(pid); ok && err == nil && syscall.Kill(n, 0) != nil {
				exec.Command("ip", "netns", "del", name).Run()
			}
		}
	}
	os.Exit(m.Run())
}
