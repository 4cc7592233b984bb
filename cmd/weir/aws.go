package main

import (
	"context"
	"log/slog"
	"time"

	"weir/cloud/aws"
	"weir/config"
)

// awsConfigTimeout bounds reading the configuration from SSM Parameter Store:
// the SDK retries a throttled or failed call within it.
const awsConfigTimeout = 30 * time.Second

// loadConfig reads the configuration from a file, or from SSM Parameter Store
// when path is ssm:/NAME (errors then read ssm:/NAME:LINE: message).
func loadConfig(path string, log *slog.Logger) (*config.Config, error) {
	if !aws.IsSSM(path) {
		return config.Load(path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), awsConfigTimeout)
	defer cancel()
	return aws.LoadConfig(ctx, aws.NewSession(aws.Options{Logger: log}), path)
}

// awsSession is discovery's session, in the region cluster.discover.region
// names (else AWS_REGION, else the instance's); the lifecycle hook has its own,
// always in the instance's region.
func awsSession(cfg *config.Config, log *slog.Logger) *aws.Session {
	if cfg.Cluster.Discover.Provider != "aws" {
		return nil
	}
	return aws.NewSession(aws.Options{Region: cfg.Cluster.Discover.Region, Logger: log})
}

// awsCompleteTimeout bounds completing the lifecycle action after the drain;
// Auto Scaling terminates the instance at the hook's timeout anyway.
const awsCompleteTimeout = 5 * time.Minute

// watchLifecycle sends on terminate once Auto Scaling wants this instance
// terminated (its termination lifecycle hook holds it), until ctx ends.
func watchLifecycle(ctx context.Context, l *aws.Lifecycle, terminate chan<- struct{}) {
	if l.WaitTerminated(ctx) == nil {
		terminate <- struct{}{}
	}
}
