package aws

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	sdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"weir/config"
)

// TargetLifecycleStatePath is the IMDS path where Auto Scaling says what it
// wants of the instance: InService, then Terminated once scale-in (or an instance
// refresh) has picked it and a termination lifecycle hook holds it.
const TargetLifecycleStatePath = "autoscaling/target-lifecycle-state"

// Lifecycle waits for the Auto Scaling group to terminate this instance and then
// completes the termination lifecycle hook, once weir has drained.
type Lifecycle struct {
	s    *Session
	hook string
	asg  string // "" = from the instance's aws:autoscaling:groupName tag
	poll time.Duration
	// NotFoundPoll is the poll interval while IMDS answers 404 (not in an Auto
	// Scaling group, or no hook yet): there is nothing to wait for soon.
	NotFoundPoll time.Duration
	// Retry is the first delay after a failed call (doubling up to 30s).
	Retry time.Duration
}

// NewLifecycle prepares the lifecycle hook as aws.lifecycle says.
func NewLifecycle(s *Session, c config.LifecycleConfig) *Lifecycle {
	poll := c.Poll
	if poll <= 0 {
		poll = config.DefaultLifecyclePoll
	}
	return &Lifecycle{s: s, hook: c.HookName, asg: c.ASGName, poll: poll, NotFoundPoll: max(time.Minute, poll), Retry: time.Second}
}

// WaitTerminated polls IMDS's target-lifecycle-state and returns nil once it
// reads Terminated, or ctx's error when ctx ends first. IMDS errors are logged
// (once until it answers again) and polled through: they never stop weir.
func (l *Lifecycle) WaitTerminated(ctx context.Context) error {
	var notFound, failing bool
	for {
		state, err := l.s.metadata(ctx, TargetLifecycleStatePath)
		wait := l.poll
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && httpStatus(err) == http.StatusNotFound:
			if !notFound {
				l.s.log.Debug("aws lifecycle: IMDS has no target-lifecycle-state (not in an Auto Scaling group, or no lifecycle hook); polling slowly",
					"every", l.NotFoundPoll.String())
				notFound = true
			}
			wait = l.NotFoundPoll
		case err != nil:
			if !failing {
				l.s.log.Warn("aws lifecycle: reading IMDS failed; polling on", "err", err)
				failing = true
			}
		case state == "Terminated":
			l.s.log.Info("aws lifecycle: Auto Scaling is terminating this instance", "hook", l.hook)
			return nil
		default:
			if failing || notFound {
				l.s.log.Info("aws lifecycle: target-lifecycle-state", "state", state)
			}
			notFound, failing = false, false
		}
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// Complete calls autoscaling:CompleteLifecycleAction with CONTINUE, so that
// Auto Scaling terminates the instance now rather than at the hook's timeout.
// Failures are retried with backoff until ctx ends, except an answer that no
// action waits (the hook timed out, or there was none): that is final.
func (l *Lifecycle) Complete(ctx context.Context) error {
	b := backoff{min: l.Retry, max: 30 * time.Second}
	for {
		err := l.complete(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("aws lifecycle: giving up: %w", err)
		}
		if errorCode(err) == "ValidationError" {
			return fmt.Errorf("aws lifecycle: %w", err)
		}
		wait := b.delay()
		l.s.log.Warn("aws lifecycle: completing the lifecycle action failed; retrying", "err", err, "retry_in", wait.String())
		if !sleep(ctx, wait) {
			return fmt.Errorf("aws lifecycle: giving up: %w", err)
		}
	}
}

func (l *Lifecycle) complete(ctx context.Context) error {
	cfg, err := l.s.Config(ctx)
	if err != nil {
		return err
	}
	id, err := l.s.InstanceID(ctx)
	if err != nil {
		return err
	}
	if l.asg == "" {
		if l.asg, err = l.groupOf(ctx, cfg, id); err != nil {
			return err
		}
	}
	_, err = autoscaling.NewFromConfig(cfg).CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName:  sdk.String(l.asg),
		LifecycleHookName:     sdk.String(l.hook),
		InstanceId:            sdk.String(id),
		LifecycleActionResult: sdk.String("CONTINUE"),
	})
	if err != nil {
		return fmt.Errorf("autoscaling:CompleteLifecycleAction: %w", err)
	}
	l.s.log.Info("aws lifecycle: action completed; Auto Scaling terminates the instance", "group", l.asg, "hook", l.hook, "instance", id)
	return nil
}

// groupOf reads the instance's aws:autoscaling:groupName tag.
func (l *Lifecycle) groupOf(ctx context.Context, cfg sdk.Config, id string) (string, error) {
	out, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return "", fmt.Errorf("ec2:DescribeInstances %s: %w", id, err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			for _, t := range in.Tags {
				if sdk.ToString(t.Key) == ASGTag {
					return sdk.ToString(t.Value), nil
				}
			}
		}
	}
	return "", errors.New("aws lifecycle: instance " + id + " has no " + ASGTag + " tag: set aws.lifecycle.asg_name")
}
