package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"weir/cloud/aws"
	"weir/cloud/aws/awsfake"
	"weir/cluster"
)

// The AWS tests run weir on loopback addresses of their own (no privileges
// needed), with the SDK's standard environment variables pointing it at the fakes.
const (
	awsNodeA = "127.77.0.1"
	awsNodeB = "127.77.0.2"
)

// startAWSNode runs the weir binary with args, its SDK aimed at imds and api.
func startAWSNode(t *testing.T, m *awsfake.IMDS, api *awsfake.API, args ...string) *process {
	t.Helper()
	p := &process{done: make(chan struct{})}
	p.cmd = exec.Command(weirBinary(t), args...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Env = awsEnv(m, api)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// awsEnv is this environment without AWS settings, and the fakes' endpoints
// with static credentials; the region is left to IMDS.
func awsEnv(m *awsfake.IMDS, api *awsfake.API) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT="+m.URL,
		"AWS_ENDPOINT_URL="+api.URL,
		"AWS_ACCESS_KEY_ID=AKIDFAKE", "AWS_SECRET_ACCESS_KEY=fake-secret",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent")
}

func healthCode(addr string) int {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func clusterState(addr, name string) string {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/cluster")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var st cluster.Status
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st) != nil {
		return ""
	}
	for _, m := range st.Members {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

// waitAWS polls cond every 20ms for at most d.
func waitAWS(t *testing.T, d time.Duration, what string, cond func() bool, procs ...*process) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("weir exited while waiting for %s: %v\n%s", what, p.err, p.stderr.String())
			}
		}
		if time.Now().After(deadline) {
			for _, p := range procs {
				t.Log(p.stderr.String())
			}
			t.Fatalf("no %s within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, bounded by d
	}
}

func awsNodeConfig(ip, name, lifecycle string) string {
	return fmt.Sprintf(`
gwlb: {listen: "%[1]s:16081"}
mirror: {listen: ""}
dataplane: {backend: socket, workers: 1}
health: {listen: "%[1]s:18080", drain_delay: 2s}
metrics: {listen: ""}
cluster:
  bind: %[1]s:17946
  node_name: %[2]s
  insecure: true
  discover: {provider: aws, asg_name: weir-asg, refresh: 5s}
log: {level: debug}
%[3]s`, ip, name, lifecycle)
}

// TestE2EAWSLifecycleDrain: two weir nodes find each other with
// ec2:DescribeInstances alone (no cluster.join); node a reads its configuration
// from SSM and a SIGHUP reads it again. Then Auto Scaling terminates a (IMDS
// target-lifecycle-state turns Terminated): its health fails at once, it keeps
// running for the drain delay, leaves the cluster (b sees it left, not dead),
// completes the lifecycle action with the right fields only after the drain
// delay, and exits 0.
func TestE2EAWSLifecycleDrain(t *testing.T) {
	imdsA := awsfake.NewIMDS(t, "eu-west-1", "i-0aaaaaaaaaaaaaaa1", awsNodeA)
	imdsB := awsfake.NewIMDS(t, "eu-west-1", "i-0bbbbbbbbbbbbbbb2", awsNodeB)
	api := awsfake.NewAPI(t, "eu-west-1")
	tags := map[string]string{aws.ASGTag: "weir-asg"}
	api.SetInstances(
		awsfake.Instance{ID: "i-0aaaaaaaaaaaaaaa1", PrivateIP: awsNodeA, State: "running", Tags: tags},
		awsfake.Instance{ID: "i-0bbbbbbbbbbbbbbb2", PrivateIP: awsNodeB, State: "running", Tags: tags},
	)
	imdsA.SetLifecycleState("InService") // in the group, with its hook (else IMDS says 404)
	configA := awsNodeConfig(awsNodeA, "a", "aws:\n  lifecycle: {hook_name: weir-drain, poll: 1s}\n")
	api.SetParameter("/weir/a", configA)
	var mu sync.Mutex
	var completedAt time.Time
	api.OnComplete(func(awsfake.LifecycleAction) {
		mu.Lock()
		completedAt = time.Now()
		mu.Unlock()
	})
	pathB := filepath.Join(t.TempDir(), "b.yaml")
	if err := os.WriteFile(pathB, []byte(awsNodeConfig(awsNodeB, "b", "")), 0o644); err != nil {
		t.Fatal(err)
	}

	// check-config reads SSM too, and names the parameter in errors.
	api.SetParameter("/weir/bad", "health:\n  drain_delay: soon\n")
	missing := startAWSNode(t, imdsA, api, "check-config", "ssm:/weir/none")
	if err := missing.wait(t, 30*time.Second); err == nil || !strings.Contains(missing.stderr.String(), "ssm:/weir/none: ssm:GetParameter") {
		t.Errorf("check-config of a missing parameter: %v\n%s", err, missing.stderr.String())
	}
	bad := startAWSNode(t, imdsA, api, "check-config", "ssm:/weir/bad")
	if err := bad.wait(t, 30*time.Second); err == nil || !strings.Contains(bad.stderr.String(), "ssm:/weir/bad:2: health.drain_delay") {
		t.Errorf("check-config: %v\n%s", err, bad.stderr.String())
	}

	a := startAWSNode(t, imdsA, api, "run", "-config", "ssm:/weir/a")
	b := startAWSNode(t, imdsB, api, "run", "-config", pathB)
	healthA, healthB := awsNodeA+":18080", awsNodeB+":18080"
	waitAWS(t, 30*time.Second, "healthy nodes", func() bool { return healthCode(healthA) == 200 && healthCode(healthB) == 200 }, a, b)
	waitAWS(t, 15*time.Second, "a fleet found by discovery", func() bool {
		return clusterState(healthB, "a") == cluster.StateAlive && clusterState(healthA, "b") == cluster.StateAlive
	}, a, b)

	// SIGHUP reads the parameter again.
	api.SetParameter("/weir/a", configA+"policy:\n  default: allow\n  rules: [{name: no-telnet, action: drop, proto: tcp, dst_port: 23}]\n")
	sendSignal(t, a, syscall.SIGHUP)
	waitAWS(t, 10*time.Second, "a reload from SSM", func() bool {
		return strings.Contains(a.stderr.String(), `"msg":"reloaded","config":"ssm:/weir/a","policy_rules":1`)
	}, a)

	start := time.Now()
	imdsA.SetLifecycleState("Terminated")
	waitAWS(t, 5*time.Second, "a's health failing", func() bool { return healthCode(healthA) == http.StatusServiceUnavailable }, a)
	failedAt := time.Now()
	if d := failedAt.Sub(start); d > 3*time.Second {
		t.Errorf("health failed %s after Terminated, want within a poll (1s) or so", d)
	}
	if len(api.Actions()) != 0 {
		t.Error("the lifecycle action was completed before the drain")
	}
	if err := a.wait(t, 20*time.Second); err != nil {
		t.Fatalf("weir exited with %v, want 0\n%s", err, a.stderr.String())
	}
	want := []awsfake.LifecycleAction{{Group: "weir-asg", Hook: "weir-drain", InstanceID: "i-0aaaaaaaaaaaaaaa1", Result: "CONTINUE"}}
	if got := api.Actions(); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("lifecycle actions %+v, want %+v", got, want)
	}
	mu.Lock()
	drained := completedAt.Sub(failedAt)
	mu.Unlock()
	if drained < 1900*time.Millisecond {
		t.Errorf("the action was completed %s after health failed, before the 2s drain delay", drained)
	}
	t.Logf("health 503 %s after Terminated; CompleteLifecycleAction %s after that", failedAt.Sub(start).Round(time.Millisecond), drained.Round(time.Millisecond))
	if st := clusterState(healthB, "a"); st != cluster.StateLeft {
		t.Errorf("b sees a %q, want left", st)
	}
	for _, msg := range []string{"Auto Scaling terminates this instance", "cluster left", "flows flushed", "action completed"} {
		if !strings.Contains(a.stderr.String(), msg) {
			t.Errorf("a's log has no %q:\n%s", msg, a.stderr.String())
		}
	}
	sendSignal(t, b, syscall.SIGTERM)
	if err := b.wait(t, 20*time.Second); err != nil {
		t.Errorf("b: %v", err)
	}
}

// TestE2EAWSUnreachableAtStart: with IMDS down (no region, no identity) weir
// still starts and serves; discovery and the lifecycle watch retry, and the peers
// arrive once IMDS answers.
func TestE2EAWSUnreachableAtStart(t *testing.T) {
	m := awsfake.NewIMDS(t, "eu-west-1", "i-0ccccccccccccccc3", "127.77.0.3")
	m.SetDown(true)
	api := awsfake.NewAPI(t, "eu-west-1")
	api.SetInstances(awsfake.Instance{ID: "i-0ddddddddddddddd4", PrivateIP: "127.77.0.4", State: "running",
		Tags: map[string]string{aws.ASGTag: "weir-asg"}})
	path := filepath.Join(t.TempDir(), "weir.yaml")
	cfg := awsNodeConfig("127.77.0.3", "c", "aws:\n  lifecycle: {hook_name: weir-drain, poll: 1s}\n")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startAWSNode(t, m, api, "run", "-config", path)
	// Alone, with discovery on, health passes once the node gave up waiting for
	// peers (joinWait) and synced alone.
	waitAWS(t, 30*time.Second, "a healthy node", func() bool { return healthCode("127.77.0.3:18080") == 200 }, p)
	waitAWS(t, 10*time.Second, "a logged discovery failure", func() bool {
		return strings.Contains(p.stderr.String(), "aws discovery failed; retrying")
	}, p)
	m.SetDown(false)
	waitAWS(t, 20*time.Second, "discovered peers", func() bool {
		log := p.stderr.String()
		return strings.Contains(log, `"msg":"aws discovery: peers"`) && strings.Contains(log, `"peers":["127.77.0.4:17946"]`)
	}, p)
	sendSignal(t, p, syscall.SIGTERM)
	if err := p.wait(t, 20*time.Second); err != nil {
		t.Errorf("weir: %v", err)
	}
	if n := len(api.Actions()); n != 0 {
		t.Errorf("%d lifecycle actions completed on SIGTERM, want none (only Auto Scaling's termination completes it)", n)
	}
}
