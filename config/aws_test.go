package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDiscover(t *testing.T) {
	c, err := Parse("w.yaml", []byte(`
cluster:
  bind: 10.0.1.5:7000
  insecure: true
  discover: {provider: aws, tag_key: weir-fleet, tag_value: prod}
`))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Cluster.Discover
	if d.Provider != "aws" || d.TagKey != "weir-fleet" || d.TagValue != "prod" || d.ASGName != "" || d.Refresh != DefaultDiscoverRefresh {
		t.Errorf("discover = %+v", d)
	}
	if p := c.Cluster.DiscoverPort(); p != 7000 {
		t.Errorf("port = %d, want cluster.bind's 7000", p)
	}
	c, err = Parse("w.yaml", []byte(`
cluster:
  insecure: true
  discover: {provider: aws, asg_name: weir-asg, port: 7947, refresh: 30s, region: eu-central-1}
  bind: 0.0.0.0:7946
`))
	if err != nil {
		t.Fatal(err)
	}
	d = c.Cluster.Discover
	if d.ASGName != "weir-asg" || d.Port != 7947 || d.Refresh != 30*time.Second || d.Region != "eu-central-1" || c.Cluster.DiscoverPort() != 7947 {
		t.Errorf("discover = %+v", d)
	}
	if Default().Cluster.Discover.Provider != "" {
		t.Error("discovery is on by default")
	}
}

func TestParseLifecycle(t *testing.T) {
	c, err := Parse("w.yaml", []byte("aws:\n  lifecycle: {hook_name: weir-drain}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.AWS.Lifecycle; l.HookName != "weir-drain" || l.ASGName != "" || l.Poll != DefaultLifecyclePoll {
		t.Errorf("lifecycle = %+v", l)
	}
	c, err = Parse("w.yaml", []byte("aws:\n  lifecycle:\n    hook_name: h\n    asg_name: g\n    poll: 2s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.AWS.Lifecycle; l.HookName != "h" || l.ASGName != "g" || l.Poll != 2*time.Second {
		t.Errorf("lifecycle = %+v", l)
	}
}

func TestParseAWSErrors(t *testing.T) {
	const bind = "cluster:\n  bind: 10.0.1.5:7946\n  insecure: true\n"
	for _, tc := range []struct {
		name, data string
		line       int
		want       string
	}{
		{"no provider", bind + "  discover: {asg_name: g}\n", 4, "provider: aws is required"},
		{"other provider", bind + "  discover: {provider: gcp, asg_name: g}\n", 4, `"gcp" is not one of aws`},
		{"both", bind + "  discover:\n    provider: aws\n    asg_name: g\n    tag_key: k\n    tag_value: v\n", 5, "not both"},
		{"neither", bind + "  discover: {provider: aws}\n", 4, "say which instances"},
		{"tag key alone", bind + "  discover: {provider: aws, tag_key: k}\n", 4, "go together"},
		{"empty tag value", bind + "  discover: {provider: aws, tag_key: k, tag_value: \"\"}\n", 4, "cluster.discover.tag_value"},
		{"bad port", bind + "  discover: {provider: aws, asg_name: g, port: 0}\n", 4, "cluster.discover.port"},
		{"short refresh", bind + "  discover: {provider: aws, asg_name: g, refresh: 1s}\n", 4, "cluster.discover.refresh"},
		{"bad region", bind + "  discover: {provider: aws, asg_name: g, region: mars}\n", 4, "not an AWS region"},
		{"unknown key", bind + "  discover:\n    provider: aws\n    asg: g\n", 6, `unknown key "cluster.discover.asg"`},
		{"no bind", "cluster:\n  insecure: true\n  discover: {provider: aws, asg_name: g}\n", 3, "needs cluster.bind"},
		{"no hook", "aws:\n  lifecycle:\n    poll: 5s\n", 3, "hook_name is required"},
		{"short poll", "aws:\n  lifecycle:\n    hook_name: h\n    poll: 10ms\n", 4, "aws.lifecycle.poll"},
		{"unknown aws key", "aws:\n  region: us-east-1\n", 2, `unknown key "aws.region"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("w.yaml", []byte(tc.data))
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Line != tc.line || !strings.Contains(e.Msg, tc.want) {
				t.Errorf("err = %v, want line %d and %q", err, tc.line, tc.want)
			}
		})
	}
}
