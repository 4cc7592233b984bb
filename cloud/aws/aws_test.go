package aws_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"weir/cloud/aws"
	"weir/cloud/aws/awsfake"
	"weir/config"
)

const region = "eu-west-1"

// logBuffer collects a session's log for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// session points the real SDK at the fakes: static credentials, the fake API as
// every service's endpoint, the fake IMDS, and retries without waiting.
func session(t *testing.T, m *awsfake.IMDS, api *awsfake.API, configRegion string) (*aws.Session, *logBuffer) {
	t.Helper()
	// No real AWS setting of the machine the tests run on may take part.
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_ENDPOINT_URL", "")
	log := &logBuffer{}
	s := aws.NewSession(aws.Options{
		Region: configRegion,
		SDK: []func(*awsconfig.LoadOptions) error{
			awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDFAKE", "fake-secret", "")),
			awsconfig.WithBaseEndpoint(api.URL),
			awsconfig.WithRetryer(func() sdk.Retryer {
				return retry.NewStandard(func(o *retry.StandardOptions) {
					o.MaxAttempts = 2
					o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
				})
			}),
		},
		IMDS:   []func(*imds.Options){func(o *imds.Options) { o.Endpoint = m.URL }},
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	return s, log
}

func fleet(api *awsfake.API) {
	asg := map[string]string{aws.ASGTag: "weir-asg", "weir-fleet": "prod"}
	api.SetInstances(
		awsfake.Instance{ID: "i-self", PrivateIP: "10.0.1.5", State: "running", Tags: asg},
		awsfake.Instance{ID: "i-b", PrivateIP: "10.0.2.6", State: "running", Tags: asg},
		awsfake.Instance{ID: "i-c", PrivateIP: "10.0.3.7", State: "running", Tags: map[string]string{"weir-fleet": "prod"}},
		awsfake.Instance{ID: "i-stopped", PrivateIP: "10.0.2.8", State: "stopped", Tags: asg},
		awsfake.Instance{ID: "i-other", PrivateIP: "10.0.2.9", State: "running", Tags: map[string]string{aws.ASGTag: "other", "weir-fleet": "dev"}},
		awsfake.Instance{ID: "i-nonet", State: "running", Tags: asg}, // no private IPv4 (yet)
	)
}

func TestDiscoveryList(t *testing.T) {
	m := awsfake.NewIMDS(t, region, "i-self", "10.0.1.5")
	api := awsfake.NewAPI(t, region)
	fleet(api)
	s, _ := session(t, m, api, "")
	ctx := context.Background()

	byASG := aws.NewDiscovery(s, config.DiscoverConfig{Provider: "aws", ASGName: "weir-asg"}, 7946)
	got, err := byASG.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.2.6:7946"}; !slices.Equal(got, want) {
		t.Errorf("by group: %q, want %q (running, in the group, not this instance)", got, want)
	}
	byTag := aws.NewDiscovery(s, config.DiscoverConfig{Provider: "aws", TagKey: "weir-fleet", TagValue: "prod"}, 7000)
	if got, err = byTag.List(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.2.6:7000", "10.0.3.7:7000"}; !slices.Equal(got, want) {
		t.Errorf("by tag: %q, want %q", got, want)
	}
	// The region came from the identity document, through IMDSv2.
	if m.Reads("dynamic/instance-identity/document") == 0 || m.Reads("meta-data/instance-id") == 0 {
		t.Errorf("IMDS reads: document %d, instance-id %d", m.Reads("dynamic/instance-identity/document"), m.Reads("meta-data/instance-id"))
	}
}

func TestDiscoveryPaginates(t *testing.T) {
	m := awsfake.NewIMDS(t, region, "i-self", "10.0.1.5")
	api := awsfake.NewAPI(t, region)
	var in []awsfake.Instance
	var want []string
	for i := range 25 {
		ip := fmt.Sprintf("10.1.0.%d", i+1)
		in = append(in, awsfake.Instance{ID: fmt.Sprintf("i-%03d", i), PrivateIP: ip, State: "running",
			Tags: map[string]string{aws.ASGTag: "g"}})
		want = append(want, ip+":7946")
	}
	api.SetInstances(in...)
	api.PageSize = 10
	s, _ := session(t, m, api, "")
	got, err := aws.NewDiscovery(s, config.DiscoverConfig{Provider: "aws", ASGName: "g"}, 7946).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got %d peers %q, want all %d", len(got), got, len(want))
	}
	if n := api.Calls("DescribeInstances"); n != 3 {
		t.Errorf("%d DescribeInstances calls, want 3 pages of 10", n)
	}
}

// TestDiscoveryRetries: throttling (more than the SDK retries itself), then IMDS
// down at start (no region, no identity), then a wrong region: Run logs each and
// keeps retrying, and the list arrives once AWS answers.
func TestDiscoveryRetries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		region string // configured; "" = from IMDS
		break_ func(m *awsfake.IMDS, api *awsfake.API)
		mend   func(m *awsfake.IMDS, api *awsfake.API)
		logged string
	}{
		{"throttled", "", func(_ *awsfake.IMDS, api *awsfake.API) { api.Throttle(5) }, nil, "RequestLimitExceeded"},
		{"imds down", "", func(m *awsfake.IMDS, _ *awsfake.API) { m.SetDown(true) }, func(m *awsfake.IMDS, _ *awsfake.API) { m.SetDown(false) }, "aws discovery failed"},
		{"wrong region", "us-east-2", func(_ *awsfake.IMDS, api *awsfake.API) { api.SetRegion("us-east-2x") }, nil, "AuthFailure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := awsfake.NewIMDS(t, region, "i-self", "10.0.1.5")
			api := awsfake.NewAPI(t, region)
			fleet(api)
			tc.break_(m, api)
			s, log := session(t, m, api, tc.region)
			d := aws.NewDiscovery(s, config.DiscoverConfig{Provider: "aws", ASGName: "weir-asg", Refresh: time.Hour}, 7946)
			d.Retry = 20 * time.Millisecond
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				d.Run(ctx)
				close(done)
			}()
			defer func() {
				cancel()
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Error("Run did not return after its context ended")
				}
			}()
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(log.String(), tc.logged) {
				if time.Now().After(deadline) {
					t.Fatalf("no %q logged:\n%s", tc.logged, log.String())
				}
				time.Sleep(10 * time.Millisecond) // polling the log, bounded
			}
			if d.Listings() != 0 && tc.mend != nil {
				t.Fatal("a listing succeeded while AWS was broken")
			}
			if tc.mend != nil {
				tc.mend(m, api)
			}
			if tc.name == "wrong region" {
				api.SetRegion("us-east-2") // the fake now serves the configured region
			}
			for len(d.Seeds()) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("no peers after the fault was mended:\n%s", log.String())
				}
				time.Sleep(10 * time.Millisecond) // polling, bounded
			}
			if got := d.Seeds(); !slices.Equal(got, []string{"10.0.2.6:7946"}) {
				t.Errorf("seeds %q", got)
			}
		})
	}
}

func TestLifecycleDrainAndComplete(t *testing.T) {
	m := awsfake.NewIMDS(t, region, "i-self", "10.0.1.5")
	api := awsfake.NewAPI(t, region)
	fleet(api)
	s, log := session(t, m, api, "")
	l := aws.NewLifecycle(s, config.LifecycleConfig{HookName: "weir-drain", Poll: time.Second})
	l.NotFoundPoll = 20 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.WaitTerminated(ctx) }()
	// Not in a group yet (404): a debug line, once, and no return.
	deadline := time.Now().Add(5 * time.Second)
	for m.Reads("meta-data/"+aws.TargetLifecycleStatePath) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("IMDS target-lifecycle-state not polled")
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded
	}
	if n := strings.Count(log.String(), "no target-lifecycle-state"); n != 1 {
		t.Errorf("the 404 was logged %d times, want once:\n%s", n, log.String())
	}
	m.SetLifecycleState("InService")
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("returned %v while InService", err)
	default:
	}
	m.SetLifecycleState("Terminated")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Terminated not seen within 5s (poll 1s)")
	}
	if len(api.Actions()) != 0 {
		t.Fatal("the action was completed before weir drained")
	}
	api.Throttle(1) // the group's name comes from DescribeInstances; a throttled call is retried
	l.Retry = 10 * time.Millisecond
	if err := l.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	want := []awsfake.LifecycleAction{{Group: "weir-asg", Hook: "weir-drain", InstanceID: "i-self", Result: "CONTINUE"}}
	if got := api.Actions(); !slices.Equal(got, want) {
		t.Errorf("actions %+v, want %+v", got, want)
	}
}

func TestLifecycleWaitEndsWithContext(t *testing.T) {
	m := awsfake.NewIMDS(t, region, "i-self", "10.0.1.5")
	m.SetDown(true)
	api := awsfake.NewAPI(t, region)
	s, _ := session(t, m, api, "")
	l := aws.NewLifecycle(s, config.LifecycleConfig{HookName: "h", Poll: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := l.WaitTerminated(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitTerminated = %v, want the context's end (IMDS down is not terminal)", err)
	}
	// Completing with IMDS down (no instance id) gives up when its context ends.
	l.Retry = 10 * time.Millisecond
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if err := l.Complete(ctx2); err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Errorf("Complete = %v, want giving up", err)
	}
}

func TestSSMConfig(t *testing.T) {
	m := awsfake.NewIMDS(t, region, "i-self", "10.0.1.5")
	api := awsfake.NewAPI(t, region)
	api.SetParameter("/weir/config", "health:\n  drain_delay: 7s\nflows:\n  max: 1000\n")
	api.SetParameter("/weir/bad", "health:\n  drain_delay: 7s\nflows:\n  max: lots\n")
	s, _ := session(t, m, api, "")
	ctx := context.Background()
	c, err := aws.LoadConfig(ctx, s, "ssm:/weir/config")
	if err != nil {
		t.Fatal(err)
	}
	if c.Health.DrainDelay != 7*time.Second || c.Flows.Max != 1000 {
		t.Errorf("config: drain_delay %s, flows.max %d", c.Health.DrainDelay, c.Flows.Max)
	}
	_, err = aws.LoadConfig(ctx, s, "ssm:/weir/bad")
	if err == nil || !strings.HasPrefix(err.Error(), "ssm:/weir/bad:4: flows.max") {
		t.Errorf("bad value: %v, want ssm:/weir/bad:4: flows.max ...", err)
	}
	_, err = aws.LoadConfig(ctx, s, "ssm:/weir/none")
	if err == nil || !strings.HasPrefix(err.Error(), "ssm:/weir/none: ") || !strings.Contains(err.Error(), "ParameterNotFound") {
		t.Errorf("missing parameter: %v", err)
	}
	if !aws.IsSSM("ssm:/x") || aws.IsSSM("/etc/weir/weir.yaml") {
		t.Error("IsSSM")
	}
}
