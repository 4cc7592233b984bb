// Package aws is weir's boundary with the AWS APIs: peer discovery with
// ec2:DescribeInstances, the Auto Scaling termination lifecycle hook (IMDS's
// target-lifecycle-state, then autoscaling:CompleteLifecycleAction) and the
// configuration from SSM Parameter Store. It uses the AWS SDK for Go v2, which
// signs, retries throttled calls and takes the instance role's credentials and
// the region from IMDSv2. Nothing here touches packets: callers get plain values
// (seed addresses, a "terminate now" signal, configuration bytes).
//
// The SDK's own environment variables point it elsewhere (tests use them):
// AWS_REGION, AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_ENDPOINT_URL and
// AWS_ENDPOINT_URL_EC2 / _AUTO_SCALING / _SSM, AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY.
package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	sdk "github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go"
)

// Options say how a Session reaches AWS.
type Options struct {
	// Region is the region to call; "" = AWS_REGION (or the shared config),
	// else the instance's, from the IMDSv2 identity document.
	Region string
	// SDK are more options for config.LoadDefaultConfig (tests: static
	// credentials, BaseEndpoint, a quick retryer).
	SDK []func(*awsconfig.LoadOptions) error
	// IMDS are more options for the metadata client (tests: Endpoint).
	IMDS []func(*imds.Options)
	// Logger receives what goes wrong and is retried; nil = discard.
	Logger *slog.Logger
}

// Session is the SDK configuration and the metadata client, loaded once they
// can be (IMDS or AWS may be unreachable at start) and shared by discovery, the
// lifecycle hook and SSM.
type Session struct {
	opts Options
	imds *imds.Client
	log  *slog.Logger

	mu         sync.Mutex
	cfg        *sdk.Config
	instanceID string
}

// NewSession prepares a session; nothing is called until it is needed.
func NewSession(opts Options) *Session {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Session{opts: opts, imds: imds.New(imds.Options{}, opts.IMDS...), log: log.With("component", "aws")}
}

// IMDS is the instance metadata client (IMDSv2: every read carries a session
// token from a PUT).
func (s *Session) IMDS() *imds.Client { return s.imds }

// Config is the SDK configuration, loaded on the first call that succeeds: it
// fails while no region is known (IMDS down and none configured).
func (s *Session) Config(ctx context.Context) (sdk.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg != nil {
		return *s.cfg, nil
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithEC2IMDSRegion(func(o *awsconfig.UseEC2IMDSRegion) { o.Client = s.imds }),
	}
	if s.opts.Region != "" {
		opts = append(opts, awsconfig.WithRegion(s.opts.Region))
	}
	opts = append(opts, s.opts.SDK...)
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return sdk.Config{}, fmt.Errorf("aws: configuration: %w", err)
	}
	if cfg.Region == "" {
		return sdk.Config{}, errors.New("aws: no region: set it in the configuration or AWS_REGION, or run on EC2 with IMDSv2")
	}
	s.cfg = &cfg
	s.log.Info("aws: configured", "region", cfg.Region)
	return cfg, nil
}

// InstanceID is this instance's id, from IMDSv2 (kept once read).
func (s *Session) InstanceID(ctx context.Context) (string, error) {
	s.mu.Lock()
	id := s.instanceID
	s.mu.Unlock()
	if id != "" {
		return id, nil
	}
	id, err := s.metadata(ctx, "instance-id")
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(id, "i-") {
		return "", fmt.Errorf("aws: IMDS instance-id %q is not an instance id", id)
	}
	s.mu.Lock()
	s.instanceID = id
	s.mu.Unlock()
	return id, nil
}

// metadata reads a meta-data path (at most 4 KiB: every value weir reads is short).
func (s *Session) metadata(ctx context.Context, path string) (string, error) {
	out, err := s.imds.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", fmt.Errorf("aws: IMDS %s: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 4<<10))
	if err != nil {
		return "", fmt.Errorf("aws: IMDS %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// httpStatus is the HTTP status of a failed call, 0 when it got no answer.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// errorCode is an AWS API error's code (RequestLimitExceeded, AccessDenied, ...).
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// backoff is a retry delay that doubles from min to max, with jitter so that a
// fleet started together does not call AWS in step.
type backoff struct {
	min, max, next time.Duration
}

func (b *backoff) delay() time.Duration {
	if b.next < b.min {
		b.next = b.min
	}
	d := b.next
	b.next = min(b.next*2, b.max)
	return d + time.Duration(rand.Int64N(int64(d/4)+1))
}

func (b *backoff) reset() { b.next = b.min }

// sleep waits d, or less if ctx ends (then false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
