package socket

import (
	"bytes"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"weir/dataplane"

	"golang.org/x/sys/unix"
)

const fallbackWarning = "raw sockets not permitted: replies go through per-port UDP sockets, slower; grant CAP_NET_RAW (AmbientCapabilities=CAP_NET_RAW in the unit)"

// autoReply opens a backend with reply: auto, logging to w, and returns the reply
// mode it settled on.
func autoReply(t *testing.T, w io.Writer) ReplyMode {
	be, err := New(Config{Listeners: []Listener{{Addr: netip.AddrPortFrom(applianceIP, freePort(t)), Encap: dataplane.EncapGeneve}},
		Workers: 1, Reply: ReplyAuto, Logger: slog.New(slog.NewTextHandler(w, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	return be.reply
}

// TestReplyAutoSaysItFallsBack: without CAP_NET_RAW, reply: auto falls back to UDP
// sockets and logs a warning naming the capability. As root, the test runs itself
// again as nobody, who has no capabilities.
func TestReplyAutoSaysItFallsBack(t *testing.T) {
	if os.Getenv("WEIR_TEST_FALLBACK_CHILD") == "1" {
		mode := autoReply(t, os.Stdout)
		os.Stdout.WriteString("reply=" + string(mode) + "\n")
		return
	}
	if fd, err := openRaw(); err != nil {
		// Already without the capability: look in this process.
		var log bytes.Buffer
		if mode := autoReply(t, &log); mode != ReplyUDP || !strings.Contains(log.String(), fallbackWarning) {
			t.Errorf("reply %s, log %q; want udp and the warning", mode, log.String())
		}
		return
	} else {
		unix.Close(fd)
	}
	if os.Geteuid() != 0 {
		t.Skip("raw sockets are permitted and the test cannot run itself as another user (not root)")
	}
	// The test binary lives in a folder only root may enter: copy it where nobody can.
	dir, err := os.MkdirTemp("", "weir-fallback-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "socket.test")
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestReplyAutoSaysItFallsBack$", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WEIR_TEST_FALLBACK_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the test as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fallbackWarning) || !strings.Contains(string(out), "reply=udp") {
		t.Errorf("as nobody: %s\nwant reply=udp and the warning %q", out, fallbackWarning)
	}
}
