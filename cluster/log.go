package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strings"
)

// Reasons a peer's traffic is rejected.
const (
	reasonDecrypt = iota // wrong key, no key, or clear text to an encrypting node
	numReasons
)

var reasonNames = [numReasons]string{"decrypt"}

// Rejected counts the packets and connections refused for reason ("decrypt": a
// peer with a wrong or missing key, never admitted).
func (n *Node) Rejected(reason string) uint64 {
	for i, r := range reasonNames {
		if r == reason {
			return n.rejected[i].Load()
		}
	}
	return 0
}

// logSink receives memberlist's log lines ("[LEVEL] memberlist: message"), routes
// them to slog, and learns from them what memberlist reports nowhere else: refused
// decryption and suspicion.
type logSink struct{ n *Node }

var suspectLine = regexp.MustCompile(`^Suspect (\S+) has failed`)

func (s *logSink) Write(p []byte) (int, error) {
	for line := range bytes.SplitSeq(bytes.TrimRight(p, "\n"), []byte("\n")) {
		s.line(string(line))
	}
	return len(p), nil
}

func (s *logSink) line(text string) {
	n := s.n
	if n.state.Load() == 2 {
		return // memberlist's timers outlive its Shutdown
	}
	level, msg := slog.LevelInfo, text
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{{"[DEBUG] ", slog.LevelDebug}, {"[INFO] ", slog.LevelInfo}, {"[WARN] ", slog.LevelWarn}, {"[ERR] ", slog.LevelWarn}, {"[ERROR] ", slog.LevelWarn}} {
		if i := strings.Index(text, l.tag); i >= 0 {
			level, msg = l.level, text[i+len(l.tag):]
			break
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	if isDecryptFailure(msg) {
		n.rejected[reasonDecrypt].Add(1)
		if ok, held := n.logLimiter.allow(); ok {
			n.log.Warn("cluster peer refused: it does not share our key (wrong or missing cluster.secret_key_file, or insecure)",
				"detail", msg, "refused_since_last_report", held)
		}
		return
	}
	if m := suspectLine.FindStringSubmatch(msg); m != nil {
		n.markSuspect(m[1])
	}
	if level == slog.LevelInfo {
		level = slog.LevelDebug // memberlist's info is chatty; membership changes are logged by us
	}
	n.log.Log(context.Background(), level, "memberlist: "+msg)
}

// isDecryptFailure tells memberlist's messages about traffic it could not
// authenticate: a UDP packet ("Decrypt packet failed") or a TCP stream ("failed to
// receive: No installed keys could decrypt the message", or one in clear text).
func isDecryptFailure(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "decrypt") ||
		strings.Contains(m, "remote state is not encrypted") ||
		strings.Contains(m, "remote state is encrypted and encryption is not configured")
}
