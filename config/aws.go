package config

import (
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"weir/internal/echo"

	"gopkg.in/yaml.v3"
)

// DiscoverConfig is cluster.discover: peers found with the EC2 API, by a tag or by
// their Auto Scaling group, merged with cluster.join. Provider "" means off.
type DiscoverConfig struct {
	Provider string        // "aws" or "" (off)
	TagKey   string        // with TagValue: instances tagged TagKey=TagValue
	TagValue string        //
	ASGName  string        // or: the members of this Auto Scaling group
	Port     int           // their gossip port; 0 = cluster.bind's (7946 when none)
	Refresh  time.Duration // how often the list is read again
	Region   string        // "" = the AWS_REGION environment, else the instance's (IMDSv2)
}

// LifecycleConfig is aws.lifecycle: an Auto Scaling termination lifecycle hook
// weir completes once it has drained. An empty HookName means off.
type LifecycleConfig struct {
	HookName string        // the hook's name
	ASGName  string        // "" = the instance's aws:autoscaling:groupName tag
	Poll     time.Duration // how often IMDS's target-lifecycle-state is read
}

// AWSConfig is the aws section.
type AWSConfig struct {
	Lifecycle LifecycleConfig
}

// DefaultDiscoverRefresh and DefaultLifecyclePoll are the defaults of
// cluster.discover.refresh and aws.lifecycle.poll.
const (
	DefaultDiscoverRefresh = 60 * time.Second
	DefaultLifecyclePoll   = 5 * time.Second
)

// DiscoverPort is the port discovered peers are reached on.
func (c *ClusterConfig) DiscoverPort() int {
	switch {
	case c.Discover.Port != 0:
		return c.Discover.Port
	case c.Bind.IsValid() && c.Bind.Port() != 0:
		return int(c.Bind.Port())
	}
	return DefaultClusterPort
}

func (p *parser) discover(n *yaml.Node, d *DiscoverConfig) {
	*d = DiscoverConfig{Refresh: DefaultDiscoverRefresh}
	p.mapping(n, "cluster.discover", map[string]func(*yaml.Node){
		"provider":  func(n *yaml.Node) { d.Provider = p.oneOf(n, "cluster.discover.provider", "aws") },
		"tag_key":   func(n *yaml.Node) { d.TagKey = p.awsName(n, "cluster.discover.tag_key", 128) },
		"tag_value": func(n *yaml.Node) { d.TagValue = p.awsName(n, "cluster.discover.tag_value", 256) },
		"asg_name":  func(n *yaml.Node) { d.ASGName = p.awsName(n, "cluster.discover.asg_name", 255) },
		"port":      func(n *yaml.Node) { d.Port = p.intRange(n, "cluster.discover.port", 1, 65535) },
		"refresh": func(n *yaml.Node) {
			d.Refresh = p.duration(n, "cluster.discover.refresh", 5*time.Second, 24*time.Hour)
		},
		"region": func(n *yaml.Node) { d.Region = p.region(n, "cluster.discover.region") },
	})
	if p.err != nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return
	}
	byTag := d.TagKey != "" || d.TagValue != ""
	switch {
	case d.Provider == "":
		p.fail(n, "cluster.discover: provider: aws is required (the only provider)")
	case byTag && d.ASGName != "":
		p.fail(n, "cluster.discover: tag_key/tag_value or asg_name, not both")
	case byTag && (d.TagKey == "" || d.TagValue == ""):
		p.fail(n, "cluster.discover: tag_key and tag_value go together")
	case !byTag && d.ASGName == "":
		p.fail(n, "cluster.discover: tag_key and tag_value, or asg_name, say which instances are peers")
	}
}

func (p *parser) aws(n *yaml.Node, c *Config) {
	p.mapping(n, "aws", map[string]func(*yaml.Node){
		"lifecycle": func(n *yaml.Node) {
			l := &c.AWS.Lifecycle
			*l = LifecycleConfig{Poll: DefaultLifecyclePoll}
			p.mapping(n, "aws.lifecycle", map[string]func(*yaml.Node){
				"hook_name": func(n *yaml.Node) { l.HookName = p.awsName(n, "aws.lifecycle.hook_name", 255) },
				"asg_name":  func(n *yaml.Node) { l.ASGName = p.awsName(n, "aws.lifecycle.asg_name", 255) },
				"poll":      func(n *yaml.Node) { l.Poll = p.duration(n, "aws.lifecycle.poll", time.Second, 5*time.Minute) },
			})
			if p.err == nil && l.HookName == "" && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
				p.fail(n, "aws.lifecycle: hook_name is required (the termination lifecycle hook of the Auto Scaling group)")
			}
		},
	})
}

// awsName reads a name AWS allows (a hook, a group, a tag key or value): 1 to max
// characters, no control characters. An empty tag value would match instances
// tagged with nothing useful, so it is refused too.
func (p *parser) awsName(n *yaml.Node, where string, max int) string {
	s, ok := p.scalar(n, where)
	if !ok {
		return ""
	}
	if s == "" || len(s) > max || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		p.fail(n, "%s: %s is not a name (1 to %d characters, no control characters)", where, echo.Quote(s), max)
		return ""
	}
	return s
}

// region reads an AWS region name (us-east-1, eu-central-2, us-gov-west-1).
func (p *parser) region(n *yaml.Node, where string) string {
	s, ok := p.scalar(n, where)
	if !ok {
		return ""
	}
	parts := strings.Split(s, "-")
	last := parts[len(parts)-1]
	if _, err := strconv.Atoi(last); err != nil || len(parts) < 3 || len(s) > 32 ||
		strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		p.fail(n, "%s: %s is not an AWS region (like us-east-1)", where, echo.Quote(s))
		return ""
	}
	return s
}

// dir is the folder relative paths in the configuration are read from: the
// file's, or the working directory for a configuration from SSM Parameter Store
// (ssm:/NAME), which has none.
func (p *parser) dir() string {
	if strings.HasPrefix(p.file, "ssm:") {
		return ""
	}
	return filepath.Dir(p.file)
}
