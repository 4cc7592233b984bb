package aws

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	sdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"weir/config"
)

// ASGTag is the tag Auto Scaling puts on its instances, naming the group.
const ASGTag = "aws:autoscaling:groupName"

// Discovery lists the running instances of the fleet (by a tag, or by their Auto
// Scaling group) and keeps their private IPv4 addresses as cluster seeds.
type Discovery struct {
	s       *Session
	filters []types.Filter
	port    uint16
	refresh time.Duration
	// Retry is the first delay after a failed listing (doubling up to refresh).
	Retry time.Duration

	seeds atomic.Pointer[[]string]
	ok    atomic.Uint64 // listings that succeeded
}

// NewDiscovery prepares discovery as cluster.discover says; port is the gossip
// port of the peers.
func NewDiscovery(s *Session, c config.DiscoverConfig, port int) *Discovery {
	f := []types.Filter{{Name: sdk.String("instance-state-name"), Values: []string{"running"}}}
	if c.ASGName != "" {
		f = append(f, types.Filter{Name: sdk.String("tag:" + ASGTag), Values: []string{c.ASGName}})
	} else {
		f = append(f, types.Filter{Name: sdk.String("tag:" + c.TagKey), Values: []string{c.TagValue}})
	}
	refresh := c.Refresh
	if refresh <= 0 {
		refresh = config.DefaultDiscoverRefresh
	}
	d := &Discovery{s: s, filters: f, port: uint16(port), refresh: refresh, Retry: time.Second}
	d.seeds.Store(&[]string{})
	return d
}

// Seeds are the peers found by the last listing that succeeded, as IP:PORT; the
// cluster calls it from its join loop.
func (d *Discovery) Seeds() []string { return *d.seeds.Load() }

// Listings is how many listings have succeeded.
func (d *Discovery) Listings() uint64 { return d.ok.Load() }

// Run lists the fleet every refresh until ctx ends. A failure (throttling, IMDS
// or AWS unreachable, a wrong region, access denied) is logged and retried with
// backoff; the last good list stays in force meanwhile.
func (d *Discovery) Run(ctx context.Context) {
	b := backoff{min: d.Retry, max: d.refresh}
	for {
		seeds, err := d.List(ctx)
		wait := d.refresh
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = b.delay()
			d.s.log.Warn("aws discovery failed; retrying", "err", err, "code", errorCode(err), "retry_in", wait.String())
		} else {
			b.reset()
			d.ok.Add(1)
			if old := d.Seeds(); !slices.Equal(old, seeds) {
				d.s.log.Info("aws discovery: peers", "peers", seeds)
			}
			d.seeds.Store(&seeds)
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// List calls ec2:DescribeInstances (every page) once and returns the private
// IPv4 addresses of the running instances that match, this one left out, as
// sorted IP:PORT strings.
func (d *Discovery) List(ctx context.Context) ([]string, error) {
	cfg, err := d.s.Config(ctx)
	if err != nil {
		return nil, err
	}
	// The cluster also leaves out its own address; the id covers an instance
	// whose gossip address is not its primary one.
	self, err := d.s.InstanceID(ctx)
	if err != nil {
		d.s.log.Debug("aws discovery: own instance id unknown; the cluster leaves out its own address", "err", err)
	}
	client := ec2.NewFromConfig(cfg)
	pages := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{Filters: d.filters})
	var out []string
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ec2:DescribeInstances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				if sdk.ToString(in.InstanceId) == self && self != "" {
					continue
				}
				ip, err := netip.ParseAddr(sdk.ToString(in.PrivateIpAddress))
				if err != nil || !ip.Is4() {
					continue
				}
				out = append(out, netip.AddrPortFrom(ip, d.port).String())
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
