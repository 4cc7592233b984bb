package weir_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"gopkg.in/yaml.v3"
)

// The deploy/ artifacts checked by the tools that read them for real. Each test
// skips when its tool is missing, except under CI (.ci/run installs them all).

// lookTool finds a tool on PATH; without it the test skips, or fails in CI.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed, and this is CI (.ci/run installs Debian's %s)", name, pkg)
		}
		t.Skipf("%s is not installed (Debian package %s)", name, pkg)
	}
	return bin
}

// weirBinary builds cmd/weir into the test's temporary folder.
func weirBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "weir")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/weir").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/weir: %v\n%s", err, out)
	}
	return bin
}

// checkConfig runs `weir check-config` on config text, with a cluster key
// beside it (the config names cluster.key; the AMI gets it at boot).
func checkConfig(t *testing.T, name string, config []byte) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "weir.yaml")
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	if err := os.WriteFile(path, config, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.key"), []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(weirBinary(t), "check-config", path).CombinedOutput()
	if err != nil {
		t.Errorf("%s: weir check-config: %v\n%s", name, err, out)
	}
}

// TestDeployConfig: the example production config passes check-config, and its
// drain delay fits the unit's stop timeout.
func TestDeployConfig(t *testing.T) {
	data, err := os.ReadFile("deploy/config/weir.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, "deploy/config/weir.yaml", data)

	unit, err := os.ReadFile("deploy/systemd/weir.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\d+)s$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("weir.service: no TimeoutStopSec=Ns")
	}
	stop, _ := strconv.Atoi(string(m[1]))
	if drain := drainDelay(t); time.Duration(stop)*time.Second <= drain {
		t.Errorf("TimeoutStopSec=%ds does not exceed health.drain_delay %v: systemd would kill weir mid-drain", stop, drain)
	}
}

// TestSystemdUnit: systemd-analyze verify accepts the unit without a warning,
// and its sandbox scores an exposure of at most 3.0 ("OK").
func TestSystemdUnit(t *testing.T) {
	bin := lookTool(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile("deploy/systemd/weir.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStart=/usr/local/bin/weir run -config /etc/weir/weir.yaml",
		"ExecReload=/bin/kill -HUP $MAINPID",
		"Restart=always",
		"User=weir",
		"AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_BPF CAP_IPC_LOCK",
		"CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN CAP_BPF CAP_IPC_LOCK",
		"NoNewPrivileges=yes",
		"ProtectSystem=strict",
		"ReadWritePaths=/var/log/weir /var/lib/weir",
		"LimitMEMLOCK=infinity",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX AF_PACKET AF_XDP",
	} {
		if !strings.Contains(string(unit), "\n"+want+"\n") {
			t.Errorf("weir.service lacks the line %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^SystemCallFilter=@system-service .*\bbpf\b`).Match(unit) {
		t.Error("SystemCallFilter does not allow bpf(2), which loading the XDP program needs")
	}

	// verify checks that ExecStart's binary exists and is executable: on a test
	// machine /usr/local/bin/weir does not, so a copy runs /bin/true instead.
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "weir.service")
	if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/weir", "/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "verify", copyPath).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err = exec.Command(bin, "security", "--offline=yes", "--threshold=30", "deploy/systemd/weir.service").CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for weir.service: (\d+\.\d)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	exposure, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security exposure: %.1f", exposure)
	if exposure > 3.0 {
		t.Errorf("exposure %.1f, want at most 3.0", exposure)
	}
}

// usedMetrics is every weir_ metric name in a file.
func usedMetrics(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`\bweir_[a-z_]+[a-z]\b`).FindAllString(string(data), -1)
	slices.Sort(names)
	return slices.Compact(names)
}

// exportedMetrics is every weir_ metric name the Go code defines (string
// literals outside tests).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`"(weir_[a-z_]+)"`)
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "deploy") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestPromRules: promtool accepts the alert rules and passes their unit tests,
// and every metric they use is one weir exports.
func TestPromRules(t *testing.T) {
	exported := exportedMetrics(t)
	for _, f := range []string{"deploy/prometheus/weir-alerts.yml", "deploy/grafana/weir-dashboard.json"} {
		used := usedMetrics(t, f)
		if len(used) < 5 {
			t.Errorf("%s uses only %v", f, used)
		}
		for _, name := range used {
			if !exported[name] {
				t.Errorf("%s uses %s, which weir does not export", f, name)
			}
		}
	}

	bin := lookTool(t, "promtool", "prometheus")
	if out, err := exec.Command(bin, "check", "rules", "deploy/prometheus/weir-alerts.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "test", "rules", "deploy/prometheus/weir-alerts_test.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

// TestPromGrafanaDashboard: the dashboard is Grafana JSON of schema 39 whose
// panels query the data source variable and cover what the issue asks.
func TestPromGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("deploy/grafana/weir-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr string `json:"expr"`
	}
	type panel struct {
		ID         int               `json:"id"`
		Type       string            `json:"type"`
		Title      string            `json:"title"`
		Datasource map[string]string `json:"datasource"`
		GridPos    struct{ X, Y, W, H int }
		Targets    []target `json:"targets"`
	}
	var dash struct {
		SchemaVersion int `json:"schemaVersion"`
		Templating    struct {
			List []struct{ Name, Type, Query any } `json:"list"`
		} `json:"templating"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.SchemaVersion != 39 {
		t.Errorf("schemaVersion %d, want 39", dash.SchemaVersion)
	}
	var dsVar bool
	for _, v := range dash.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = true
		}
	}
	if !dsVar {
		t.Error("no Prometheus data source variable named datasource")
	}
	ids := map[int]bool{}
	var exprs []string
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want the variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		"weir_packets_total", "weir_decode_errors_total", "weir_flows_active", "weir_flows_ended_total",
		"weir_flows_evicted_total", "weir_xdp_packets_total", "weir_cluster_members", "weir_cluster_sync_flows_total", "ALERTS{",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel queries %s", want)
		}
	}
}

// TestShellScripts: every script under deploy/ passes shellcheck and stops at
// its first error.
func TestShellScripts(t *testing.T) {
	scripts := deployFiles(t, ".sh")
	if len(scripts) < 2 {
		t.Fatalf("scripts under deploy/: %v, want the Packer build and install scripts", scripts)
	}
	for _, s := range scripts {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "\nset -euo pipefail\n") {
			t.Errorf("%s lacks set -euo pipefail", s)
		}
		if info, err := os.Stat(s); err != nil || info.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable (%v)", s, err)
		}
	}
	bin := lookTool(t, "shellcheck", "shellcheck")
	if out, err := exec.Command(bin, scripts...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// renderUserData renders the module's user-data template as Terraform's
// templatefile would, with these variables; it also checks that they are
// exactly the ones the module passes.
func renderUserData(t *testing.T, vars map[string]string) []byte {
	t.Helper()
	m := loadModule(t, "deploy/terraform/modules/gwlb-appliance")
	ud := attr(t, m.block(t, "resource", "aws_launch_template", "weir").Body, "user_data")
	call, ok := ud.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "base64encode" {
		t.Fatalf("user_data = %s", m.text(ud))
	}
	tf, ok := call.Args[0].(*hclsyntax.FunctionCallExpr)
	if !ok || tf.Name != "templatefile" || len(tf.Args) != 2 {
		t.Fatalf("user_data = %s", m.text(ud))
	}
	var passed []string
	for _, item := range tf.Args[1].(*hclsyntax.ObjectConsExpr).Items {
		passed = append(passed, hcl.ExprAsKeyword(item.KeyExpr))
	}
	var given []string
	for k := range vars {
		given = append(given, k)
	}
	slices.Sort(passed)
	slices.Sort(given)
	if !slices.Equal(passed, given) {
		t.Fatalf("the module passes the template %v; this test renders it with %v", passed, given)
	}

	path := "deploy/terraform/modules/gwlb-appliance/user-data.yaml.tftpl"
	if got := m.text(tf.Args[0]); got != `"${path.module}/user-data.yaml.tftpl"` {
		t.Fatalf("templatefile reads %s", got)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, diags := hclsyntax.ParseTemplate(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	ctxVars := map[string]cty.Value{}
	for k, v := range vars {
		ctxVars[k] = cty.StringVal(v)
	}
	base64encode := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "str", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.StringVal(base64.StdEncoding.EncodeToString([]byte(args[0].AsString()))), nil
		},
	})
	out, diags := tmpl.Value(&hcl.EvalContext{Variables: ctxVars, Functions: map[string]function.Function{"base64encode": base64encode}})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return []byte(out.AsString())
}

type cloudConfig struct {
	WriteFiles []struct {
		Path     string `yaml:"path"`
		Encoding string `yaml:"encoding"`
		Content  string `yaml:"content"`
	} `yaml:"write_files"`
	Runcmd [][]string `yaml:"runcmd"`
}

// TestCloudInitUserData: the user data, rendered both ways (config inline, or
// from SSM), passes cloud-init's schema; inline it carries the config byte for
// byte, from SSM it runs the fetch script, which passes shellcheck.
func TestCloudInitUserData(t *testing.T) {
	config, err := os.ReadFile("deploy/config/weir.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		vars       map[string]string
		wantConfig bool
	}{
		{"inline", map[string]string{"region": "us-east-1", "weir_config": string(config), "config_ssm_parameter": "", "cluster_key_ssm_parameter": ""}, true},
		{"ssm", map[string]string{"region": "eu-west-1", "weir_config": "", "config_ssm_parameter": "/weir/prod/weir.yaml", "cluster_key_ssm_parameter": "/weir/prod/cluster.key"}, false},
	}
	cloudInit, haveCloudInit := exec.LookPath("cloud-init")
	shellcheck, haveShellcheck := exec.LookPath("shellcheck")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rendered := renderUserData(t, tc.vars)
			if !strings.HasPrefix(string(rendered), "#cloud-config\n") {
				t.Fatalf("rendered user data does not start with #cloud-config:\n%s", rendered)
			}
			var cc cloudConfig
			if err := yaml.Unmarshal(rendered, &cc); err != nil {
				t.Fatalf("rendered user data is not YAML: %v\n%s", err, rendered)
			}
			var gotConfig, script string
			for _, f := range cc.WriteFiles {
				switch f.Path {
				case "/etc/weir/weir.yaml":
					if f.Encoding != "b64" {
						t.Fatalf("weir.yaml encoding %q", f.Encoding)
					}
					data, err := base64.StdEncoding.DecodeString(f.Content)
					if err != nil {
						t.Fatal(err)
					}
					gotConfig = string(data)
				case "/usr/local/sbin/weir-fetch-config":
					script = f.Content
				}
			}
			if tc.wantConfig != (gotConfig != "") {
				t.Errorf("writes weir.yaml: %v, want %v", gotConfig != "", tc.wantConfig)
			}
			if tc.wantConfig && gotConfig != string(config) {
				t.Error("the weir.yaml written differs from the config given")
			}
			if runs := len(cc.Runcmd) > 0 && slices.Equal(cc.Runcmd[0], []string{"/usr/local/sbin/weir-fetch-config"}); runs == tc.wantConfig {
				t.Errorf("runcmd %v (fetching from SSM: %v)", cc.Runcmd, !tc.wantConfig)
			}
			if !tc.wantConfig && !strings.Contains(script, `config_parameter="`+tc.vars["config_ssm_parameter"]+`"`) {
				t.Errorf("the fetch script does not name the parameter:\n%s", script)
			}

			dir := t.TempDir()
			file := filepath.Join(dir, "user-data.yaml")
			if err := os.WriteFile(file, rendered, 0o644); err != nil {
				t.Fatal(err)
			}
			if haveShellcheck == nil {
				sh := filepath.Join(dir, "weir-fetch-config")
				if err := os.WriteFile(sh, []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command(shellcheck, sh).CombinedOutput(); err != nil {
					t.Errorf("shellcheck weir-fetch-config: %v\n%s", err, out)
				}
			}
			if haveCloudInit != nil {
				lookTool(t, "cloud-init", "cloud-init") // skips, or fails in CI
			}
			out, err := exec.Command(cloudInit, "schema", "--config-file", file).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
				t.Errorf("cloud-init schema: %v\n%s\n--- rendered:\n%s", err, out, rendered)
			}
		})
	}
	if haveShellcheck != nil {
		lookTool(t, "shellcheck", "shellcheck")
	}
}

// TestPackerTemplate: Packer reads the template. Debian 12's Packer is 1.6.6:
// it knows no required_plugins (so plugins.pkr.hcl is a file of its own, and
// only weir.pkr.hcl is given to it) and its built-in amazon-ebs builder lacks
// imds_support and metadata_options, which the current plugin has. So with
// 1.6 the test runs the syntax check on the template, then a full validate on
// a copy without those two settings (with the files it uploads in place); with
// a Packer of 1.7 or later it validates the folder's syntax.
func TestPackerTemplate(t *testing.T) {
	bin := lookTool(t, "packer", "packer")
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("packer version: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "Packer v1.6.") {
		t.Logf("%s: validating deploy/packer (syntax)", strings.TrimSpace(string(out)))
		if out, err := exec.Command(bin, "validate", "-syntax-only", "deploy/packer").CombinedOutput(); err != nil {
			t.Errorf("packer validate -syntax-only deploy/packer: %v\n%s", err, out)
		}
		return
	}
	if out, err := exec.Command(bin, "validate", "-syntax-only", "deploy/packer/weir.pkr.hcl").CombinedOutput(); err != nil {
		t.Errorf("packer validate -syntax-only: %v\n%s", err, out)
	}

	src, err := os.ReadFile("deploy/packer/weir.pkr.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclwrite.ParseConfig(src, "weir.pkr.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	stripped := 0
	for _, b := range f.Body().Blocks() {
		if b.Type() != "source" {
			continue
		}
		if b.Body().GetAttribute("imds_support") != nil {
			b.Body().RemoveAttribute("imds_support")
			stripped++
		}
		for _, md := range b.Body().Blocks() {
			if md.Type() == "metadata_options" {
				b.Body().RemoveBlock(md)
				stripped++
			}
		}
	}
	if stripped != 4 {
		t.Errorf("stripped %d newer-plugin settings, want 4 (imds_support and metadata_options in both sources)", stripped)
	}
	// The tree the template's path.root-relative paths expect.
	abs, err := filepath.Abs("deploy")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "deploy", "packer", "build"), 0o755))
	for _, d := range []string{"systemd", "sysctl", "config", "logrotate"} {
		must(os.Symlink(filepath.Join(abs, d), filepath.Join(root, "deploy", d)))
	}
	must(os.Symlink(filepath.Join(abs, "packer", "scripts"), filepath.Join(root, "deploy", "packer", "scripts")))
	must(os.Symlink(filepath.Join(filepath.Dir(abs), "README.md"), filepath.Join(root, "README.md")))
	for _, arch := range []string{"arm64", "amd64"} {
		must(os.WriteFile(filepath.Join(root, "deploy", "packer", "build", "weir-linux-"+arch), []byte("stand-in"), 0o755))
	}
	tmpl := filepath.Join(root, "deploy", "packer", "weir.pkr.hcl")
	must(os.WriteFile(tmpl, f.Bytes(), 0o644))
	cmd := exec.Command(bin, "validate", tmpl)
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "PACKER_CACHE_DIR="+filepath.Join(root, "cache"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("packer validate (1.6, without imds_support and metadata_options): %v\n%s", err, out)
	}
}

// TestDeploySysctl: every setting in deploy/sysctl/90-weir.conf names a sysctl
// this kernel has (a misspelt one is skipped by systemd-sysctl with only a
// log line), and the buffer ceilings are at least weir's default recv_buffer.
func TestDeploySysctl(t *testing.T) {
	data, err := os.ReadFile("deploy/sysctl/90-weir.conf")
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("line %d: %q is not KEY = VALUE", i+1, line)
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		settings[key] = value
		if _, err := os.Stat(filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))); err != nil {
			t.Errorf("line %d: %s: %v", i+1, key, err)
		}
	}
	for _, key := range []string{"net.core.rmem_max", "net.core.wmem_max", "net.core.rmem_default", "net.core.netdev_max_backlog", "net.core.bpf_jit_enable"} {
		if _, ok := settings[key]; !ok {
			t.Errorf("%s is not set", key)
		}
	}
	if n, err := strconv.Atoi(settings["net.core.rmem_max"]); err != nil || n < 4<<20 {
		t.Errorf("net.core.rmem_max %q, want at least 4 MiB (dataplane.recv_buffer's default)", settings["net.core.rmem_max"])
	}
}

// TestSystemdUnitNoRestartAfterLifecycle: with aws.lifecycle, weir drains,
// completes the termination lifecycle action and exits 0 on its own, with no
// `systemctl stop`. Restart=always alone restarts it 2s later on the instance
// Auto Scaling is terminating: the new weir rejoins the fleet (peers re-join a
// discovered instance that answers), bulk-syncs flows it will never forward,
// reads Terminated again and drains a second time, sends a second
// CompleteLifecycleAction, and on the EC2 shutdown's SIGTERM drains yet again
// for health.drain_delay, holding up the termination. A clean exit must not be
// restarted.
func TestSystemdUnitNoRestartAfterLifecycle(t *testing.T) {
	unit, err := os.ReadFile("deploy/systemd/weir.service")
	if err != nil {
		t.Fatal(err)
	}
	restart := regexp.MustCompile(`(?m)^Restart=(\S+)$`).FindSubmatch(unit)
	if restart == nil {
		t.Fatal("weir.service: no Restart=")
	}
	switch string(restart[1]) {
	case "no", "on-failure", "on-abnormal", "on-abort", "on-watchdog":
		return // a clean exit is not restarted
	}
	for _, m := range regexp.MustCompile(`(?m)^RestartPreventExitStatus=(.*)$`).FindAllSubmatch(unit, -1) {
		if slices.Contains(strings.Fields(string(m[1])), "0") {
			return
		}
	}
	t.Errorf("Restart=%s restarts weir after it exits 0 on its own (aws.lifecycle: drained and completed the lifecycle action); add RestartPreventExitStatus=0", restart[1])
}

// TestCloudInitUserDataKeepsAMIConfig: with neither weir_config nor
// config_ssm_parameter (both default to ""), the user data wrote an empty
// /etc/weir/weir.yaml over the AMI's: weir then ran on the defaults, standalone
// (no cluster, no flow sync, no aws.lifecycle) with a 5s drain delay, healthy
// to the GWLB, so the fleet silently lost flow failover and the scale-in drain.
// Without a config to write, the AMI's stays.
func TestCloudInitUserDataKeepsAMIConfig(t *testing.T) {
	rendered := renderUserData(t, map[string]string{"region": "us-east-1", "weir_config": "", "config_ssm_parameter": "", "cluster_key_ssm_parameter": ""})
	var cc cloudConfig
	if err := yaml.Unmarshal(rendered, &cc); err != nil {
		t.Fatalf("rendered user data is not YAML: %v\n%s", err, rendered)
	}
	for _, f := range cc.WriteFiles {
		if f.Path == "/etc/weir/weir.yaml" {
			t.Errorf("writes /etc/weir/weir.yaml (%q, base64) though no config was given: the AMI's is replaced by an empty one", f.Content)
		}
	}
}
