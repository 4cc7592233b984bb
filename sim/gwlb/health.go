package gwlb

import (
	"context"
	"io"
	"net/http"
	"time"
)

func newHealthClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		// GWLB judges the status code it gets; it does not follow redirects.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// check performs one health check: GET url, healthy on 200-399.
func check(ctx context.Context, hc *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "ELB-HealthChecker/2.0")
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// health checks t every HealthInterval until ctx is done. The first check sets the
// initial state; after that HealthyThreshold consecutive passes make t healthy and
// UnhealthyThreshold consecutive failures unhealthy.
func (r *runner) health(ctx context.Context, hc *http.Client, t *target) {
	record := func(ok bool) {
		r.mu.Lock()
		t.checks++
		if !ok {
			t.failures++
		}
		r.mu.Unlock()
	}
	ok := check(ctx, hc, t.url)
	if ctx.Err() != nil {
		close(t.first)
		return
	}
	record(ok)
	t.setHealthy(ok)
	close(t.first)

	tick := time.NewTicker(r.cfg.HealthInterval)
	defer tick.Stop()
	passes, fails := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ok := check(ctx, hc, t.url)
		if ctx.Err() != nil {
			return
		}
		record(ok)
		if ok {
			passes++
			fails = 0
			if passes >= r.cfg.HealthyThreshold {
				t.setHealthy(true)
			}
		} else {
			fails++
			passes = 0
			if fails >= r.cfg.UnhealthyThreshold {
				t.setHealthy(false)
			}
		}
	}
}

// waitHealthy waits for every target's first health check, then until at least one
// target is healthy.
func (r *runner) waitHealthy(ctx context.Context) error {
	for _, t := range r.targets {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.first:
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, t := range r.targets {
			if t.healthy.Load() {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
