// Command weir is an appliance for AWS packet visibility and inline security: a
// Gateway Load Balancer target that decodes GENEVE, tracks flows, applies policy and
// returns or drops each packet.
//
//	weir run -config FILE      run the appliance
//	weir check-config FILE     validate a configuration file
//	weir replay -eve OUT PCAP  run capture files through the pipeline
//	weir sim gwlb [flags]      simulate a Gateway Load Balancer against targets
//	weir sim mirror [flags]    send AWS-style Traffic Mirroring traffic
//	weir demo                  appliance and simulators on loopback, for ten seconds
//	weir version               print the version, VCS revision and Go version
//
// Every command answers -h with its own usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"weir/cloud/aws"
	"weir/config"
	"weir/dataplane/engine"

	"golang.org/x/sys/unix"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: weir COMMAND [FLAGS] [ARGS]

commands:
  run [-config FILE]           run the appliance (defaults without -config)
  check-config FILE            check a configuration file as run would, without
                               privileges: exit 0 when valid, else FILE:LINE: message
  replay -eve OUT.json [-config FILE] [-simulate-ips] [-pcap-dir DIR] [-flowlog FILE] PCAP...
                               run capture files through the pipeline
  sim gwlb -target ADDR:PORT[,HEALTH_URL] [-rate N] [-flows N] [-failover MODE] [-progress]
                               simulate a Gateway Load Balancer against targets
  sim mirror -target ADDR:PORT -eni IP,MAC,VNI [-both-ends] [-pcap FILE]
                               send AWS-style Traffic Mirroring traffic
  demo [-duration 10s] [-keep] run an appliance and both simulators on loopback
  cluster status -addr HOST:PORT
                               print the fleet as the node at HOST:PORT (its
                               health.listen) sees it
  version                      print the version, VCS revision and Go version
  help                         print this

weir COMMAND -h prints a command's own usage and all its flags.
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
		err = cmdRun(args, stdout, stderr)
	case "check-config":
		err = cmdCheckConfig(args, stdout, stderr)
	case "replay":
		err = cmdReplay(args, stdout, stderr)
	case "sim":
		err = cmdSim(args, stdout, stderr)
	case "demo":
		err = cmdDemo(args, stdout, stderr)
	case "cluster":
		err = cmdCluster(args, stdout, stderr)
	case "version", "-version", "--version":
		err = cmdVersion(args, stdout, stderr)
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
		if errors.As(err, new(flagError)) {
			return 2 // parseFlags printed the error and the usage
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

// flagError is a bad flag, already reported with the command's usage.
type flagError struct{ error }

// parseFlags parses a command's flags. -h, -help and --help print the command's
// usage (fs.Usage, which writes to fs.Output()) on stdout and return flag.ErrHelp,
// which exits 0; a bad flag prints the error and the usage on the flag set's output
// (stderr) and returns a flagError, which exits 2.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		fs.SetOutput(out)
		return flag.ErrHelp
	case err != nil:
		fs.Usage()
		return flagError{err}
	}
	return nil
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// commandUsage is a flag set's Usage: text, then the flags.
func commandUsage(fs *flag.FlagSet, text string) func() {
	return func() {
		fmt.Fprint(fs.Output(), text)
		fs.PrintDefaults()
	}
}

// versionString is the version weir reports: the one set at build time, else the
// module version, else "dev" and the VCS revision.
func versionString() string {
	if version != "dev" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	if rev, modified := vcsInfo(bi); len(rev) >= 12 {
		v := "dev-" + rev[:12]
		if modified {
			v += "-dirty"
		}
		return v
	}
	return version
}

// vcsInfo is the VCS revision the binary was built from and whether the tree had
// uncommitted changes; rev is empty when go build did not stamp it (go run, tests,
// -buildvcs=false).
func vcsInfo(bi *debug.BuildInfo) (rev string, modified bool) {
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return rev, modified
}

const versionUsage = `usage: weir version

Prints weir's version, then the module, the VCS revision it was built from (and
whether the tree had uncommitted changes) and the Go version, from the build
information Go stamps into the binary.
`

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = commandUsage(fs, versionUsage)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	fmt.Fprintln(stdout, "weir", versionString())
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(stdout, "  no build information (not built with module support)")
		return nil
	}
	mod := bi.Main.Path
	if mod == "" {
		mod = "weir"
	}
	if v := bi.Main.Version; v != "" {
		mod += " " + v
	}
	fmt.Fprintf(stdout, "  module    %s\n", mod)
	rev, modified := vcsInfo(bi)
	switch {
	case rev == "":
		fmt.Fprintln(stdout, "  revision  unknown (not stamped: go run, a test, or -buildvcs=false)")
	case modified:
		fmt.Fprintf(stdout, "  revision  %s (modified: built with uncommitted changes)\n", rev)
	default:
		fmt.Fprintf(stdout, "  revision  %s\n", rev)
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.time" {
			fmt.Fprintf(stdout, "  committed %s\n", s.Value)
		}
	}
	fmt.Fprintf(stdout, "  go        %s %s/%s\n", bi.GoVersion, runtime.GOOS, runtime.GOARCH)
	return nil
}

const checkConfigUsage = `usage: weir check-config FILE
       weir check-config ssm:/NAME

Checks a configuration file as weir run would, short of what needs privileges
(binding ports, raw sockets): the YAML, every key and value, the filter files, and
that the output files (outputs.eve, outputs.flowlog.path, outputs.pcap.dir) can be
created and opened for append, cluster.secret_key_file's keys, and with
dataplane.backend afxdp that the interface exists on this machine. Prints "FILE: ok" and exits 0 when valid, else
prints FILE:LINE: message and exits 1. ssm:/NAME reads the configuration from that
SSM Parameter Store parameter (decrypted) instead of a file.
`

func cmdCheckConfig(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = commandUsage(fs, checkConfigUsage)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("usage: weir check-config FILE")}
	}
	path := fs.Arg(0)
	cfg, err := loadConfig(path, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	if err := cfg.CheckPaths(); err != nil {
		return err
	}
	if err := cfg.CheckClusterKeys(); err != nil {
		return err
	}
	if err := checkDataplane(cfg); err != nil {
		return err
	}
	if cfg.Detect.Enabled() {
		info, err := engine.CheckDetect(cfg)
		if err != nil {
			return err
		}
		for _, s := range info.Skipped {
			fmt.Fprintln(stdout, s.String())
		}
		fmt.Fprintf(stdout, "%s: %d rules loaded, %d skipped, %d threat-intel entries\n", path, info.Rules, len(info.Skipped), info.IntelEntries)
	} else if cfg.Detect.Mode == "ips" {
		fmt.Fprintf(stdout, "%s: detect.mode is ips, but no rules, threat intel or detector is configured: detection is off\n", path)
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return nil
}

const runUsage = `usage: weir run [-config FILE | -config ssm:/NAME]

Runs the appliance: the GWLB target (GENEVE on gwlb.listen), the Traffic Mirroring
sink (VXLAN on mirror.listen), /healthz and /metrics, and the outputs the
configuration names. Without -config it runs on the defaults. Needs CAP_NET_RAW
for the fast reply path (it falls back to per-port UDP sockets, and says so), and
CAP_NET_ADMIN and CAP_BPF for the AF_XDP backend (auto falls back to sockets, and
says why).
SIGTERM or SIGINT drains and stops. With aws.lifecycle, so does Auto Scaling's
termination (IMDS target-lifecycle-state Terminated), after which weir completes
the lifecycle action and exits 0. -config ssm:/NAME reads the configuration from
SSM Parameter Store, and SIGHUP reads it again.

flags:
`

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = commandUsage(fs, runUsage)
	path := fs.String("config", "", "configuration `FILE` (YAML), or ssm:/NAME for an SSM parameter; defaults when empty")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	cfg := config.Default()
	if *path != "" {
		var err error
		// The log is not configured yet: what goes wrong reading SSM is in the error.
		if cfg, err = loadConfig(*path, nil); err != nil {
			return err
		}
	}
	level := new(slog.LevelVar)
	var logf *logFile
	if cfg.Log.File != "" {
		// Its folder is made as the outputs' are (engine.New makes them too, later).
		if err := cfg.MakeOutputDirs(); err != nil {
			return err
		}
		var err error
		if logf, err = openLogFile(cfg.Log.File); err != nil {
			return cfg.KeyError("log.file", err)
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
	detection := "off"
	if n.Detect != nil {
		info := n.DetectInfo()
		detection = fmt.Sprintf("%s, %d rules (%d skipped), %d threat-intel entries",
			cfg.Detect.Mode, info.Rules, len(info.Skipped), info.IntelEntries)
	}
	log.Info("weir running", "version", versionString(), "backend", n.backendName(),
		"gwlb", cfg.GWLB.Listen.String(), "mirror", listenText(cfg.Mirror.Listen),
		"health", n.healthAddr(), "metrics", n.metricsAddr(), "detect", detection)
	// A reload runs beside this loop, so that SIGTERM is served even while a log
	// reopen waits for a stuck reader; HUPs meanwhile wait for it in the channel.
	hupc, reloaded := hups, make(chan struct{}, 1)
	// Auto Scaling's termination drains as SIGTERM does, then completes the
	// lifecycle hook so that the instance goes at once.
	terminate, terminated := make(chan struct{}, 1), false
	var lifecycle *aws.Lifecycle
	if cfg.AWS.Lifecycle.HookName != "" {
		// The instance's own region (AWS_REGION, else IMDS), whatever
		// cluster.discover.region says: its group and hook live there.
		lifecycle = aws.NewLifecycle(aws.NewSession(aws.Options{Logger: log}), cfg.AWS.Lifecycle)
		lctx, stop := context.WithCancel(context.Background())
		defer stop()
		go watchLifecycle(lctx, lifecycle, terminate)
	}
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
		case <-terminate:
			log.Info("stopping: Auto Scaling terminates this instance; health now fails; forwarding continues for the drain delay",
				"hook", cfg.AWS.Lifecycle.HookName, "drain_delay", cfg.Health.DrainDelay.String())
			terminated = true
			break wait
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
	if terminated {
		// A signal now (systemd stopping weir) gives up; the hook's timeout
		// then lets Auto Scaling go on.
		ctx, cancel := context.WithTimeout(context.Background(), awsCompleteTimeout)
		go func() {
			select {
			case <-sigs:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := lifecycle.Complete(ctx)
		cancel()
		if err != nil {
			log.Error("the lifecycle action was not completed; Auto Scaling goes on at the hook's timeout", "err", err)
		}
	}
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

// listenText is a listen address for the log, "off" when the listener is off.
func listenText(a netip.AddrPort) string {
	if !a.IsValid() {
		return "off"
	}
	return a.String()
}
