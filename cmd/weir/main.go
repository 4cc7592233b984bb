// Command weir is an appliance for AWS packet visibility and inline security: a
// Gateway Load Balancer target that decodes GENEVE, tracks flows, applies policy and
// returns or drops each packet.
//
//	weir run -config FILE      run the appliance
//	weir check-config FILE     validate a configuration file
//	weir replay -eve OUT PCAP  run capture files through the pipeline
//	weir sim gwlb [flags]      simulate a Gateway Load Balancer against targets
//	weir sim mirror [flags]    send AWS-style Traffic Mirroring traffic
//	weir demo                  appliance and simulator on loopback, for ten seconds
//	weir version               print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"weir/config"

	"golang.org/x/sys/unix"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: weir COMMAND [ARGS]

commands:
  run -config FILE     run the appliance
  check-config FILE    validate a configuration file (exit 0 when valid)
  replay [FLAGS] PCAP  run capture files through the pipeline (weir replay -h)
  sim gwlb [FLAGS]     simulate a Gateway Load Balancer (weir sim gwlb -h)
  sim mirror [FLAGS]   send AWS-style Traffic Mirroring traffic (weir sim mirror -h)
  demo                 run an appliance and the simulator on loopback for ten seconds
  version              print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(args, stderr)
	case "check-config":
		err = cmdCheckConfig(args, stdout)
	case "replay":
		err = cmdReplay(args, stdout, stderr)
	case "sim":
		err = cmdSim(args, stdout, stderr)
	case "demo":
		err = cmdDemo(args, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "weir", versionString())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "weir: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "weir %s: %v\n", cmd, err)
			return 2
		}
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

type usageError struct{ error }

func versionString() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return version
}

func cmdCheckConfig(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageError{errors.New("usage: weir check-config FILE")}
	}
	if _, err := config.Load(args[0]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[0])
	return nil
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `FILE` (YAML); defaults when empty")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	cfg := config.Default()
	if *path != "" {
		var err error
		if cfg, err = config.Load(*path); err != nil {
			return err
		}
	}
	level := new(slog.LevelVar)
	var logf *logFile
	if cfg.Log.File != "" {
		var err error
		if logf, err = openLogFile(cfg.Log.File); err != nil {
			return fmt.Errorf("log.file: %w", err)
		}
		defer logf.Close()
		stderr = logf
	}
	log := newLogger(cfg, stderr, level)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	// SIGHUP reopens the logs and reloads the configuration; it never stops weir,
	// also while it drains (a HUP then waits in the channel, unhandled).
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	n, err := startNode(context.Background(), cfg, log)
	if err != nil {
		return err
	}
	log.Info("weir running", "version", versionString(), "backend", n.backend.Name(),
		"gwlb", cfg.GWLB.Listen.String(), "mirror", cfg.Mirror.Listen.String(),
		"health", n.healthAddr(), "metrics", n.metricsAddr())
	// A reload runs beside this loop, so that SIGTERM is served even while a log
	// reopen waits for a stuck reader; HUPs meanwhile wait for it in the channel.
	hupc, reloaded := hups, make(chan struct{}, 1)
wait:
	for {
		select {
		case <-hupc:
			hupc = nil
			go func() {
				n.reload(*path, level, logf)
				reloaded <- struct{}{}
			}()
		case <-reloaded:
			hupc = hups
		case sig := <-sigs:
			log.Info("stopping: health now fails; forwarding continues for the drain delay (signal again to cut it short)",
				"signal", sig.String(), "drain_delay", cfg.Health.DrainDelay.String())
			break wait
		case err := <-n.failed:
			log.Error("dataplane failed", "err", err)
			n.shutdown(0, nil)
			return err
		}
	}
	// A second signal ends the drain early; the flows are still written out.
	n.shutdown(cfg.Health.DrainDelay, sigs)
	log.Info("stopped")
	return nil
}

// newLogger logs JSON unless stderr is a terminal (or log.format says otherwise),
// at log.level, which it sets in level (a reload can change it there).
func newLogger(cfg *config.Config, w io.Writer, level *slog.LevelVar) *slog.Logger {
	setLevel(level, cfg.Log.Level)
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Log.Format
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// setLevel sets v to the log.level name, which the config loader has checked.
func setLevel(v *slog.LevelVar, name string) {
	var l slog.Level
	_ = l.UnmarshalText([]byte(name))
	v.Set(l)
}
