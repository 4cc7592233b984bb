package xdpbench

import (
	"errors"
	"math"
	"testing"
)

// fakeTarget loses what is offered above its capacity, behind a generator
// that cannot offer more than genMax.
type fakeTarget struct {
	capacity, genMax float64
	asked            []float64
}

func (f *fakeTarget) trial(rate float64) (TrialResult, error) {
	f.asked = append(f.asked, rate)
	offered := min(rate, f.genMax)
	sent := uint64(offered) // a one-second trial
	good := sent
	if offered > f.capacity {
		good = uint64(f.capacity)
	}
	return TrialResult{Offered: offered, Sent: sent, Good: good}, nil
}

var searchCfg = SearchConfig{Start: 100e3, Max: 10e6, MaxLoss: 0.01, Precision: 0.02, MaxTrials: 20}

func TestSearchFindsCapacity(t *testing.T) {
	for _, capacity := range []float64{150e3, 777e3, 3.3e6, 9.9e6} {
		f := &fakeTarget{capacity: capacity, genMax: math.Inf(1)}
		res, err := Search(searchCfg, f.trial)
		if err != nil {
			t.Fatal(err)
		}
		// Passing means loss < 1%: up to capacity/0.99.
		got := res.Best.Offered
		if got > capacity/0.99 || got < capacity*(1-2*searchCfg.Precision) {
			t.Errorf("capacity %.0f: found %.0f after %v", capacity, got, f.asked)
		}
		if res.Best.Loss() >= 0.01 {
			t.Errorf("capacity %.0f: best trial lost %.3f", capacity, res.Best.Loss())
		}
		if len(res.Trials) != len(f.asked) || len(res.Trials) > searchCfg.MaxTrials {
			t.Errorf("capacity %.0f: %d trials recorded, %d run", capacity, len(res.Trials), len(f.asked))
		}
		for i, r := range res.Trials {
			if r.Asked != f.asked[i] {
				t.Errorf("trial %d: asked %.0f recorded as %.0f", i, f.asked[i], r.Asked)
			}
		}
	}
}

// A generator that cannot reach the target's limit ends the search at the
// rate it managed, marked as limited, without trials beyond.
func TestSearchStopsAtGeneratorLimit(t *testing.T) {
	f := &fakeTarget{capacity: 5e6, genMax: 450e3}
	res, err := Search(searchCfg, f.trial)
	if err != nil {
		t.Fatal(err)
	}
	if res.Best.Offered != 450e3 || !res.Best.GenLimited() {
		t.Fatalf("best %+v", res.Best)
	}
	if want := []float64{100e3, 200e3, 400e3, 800e3}; len(f.asked) != len(want) {
		t.Fatalf("asked %v, want %v", f.asked, want)
	}
}

func TestSearchCapsAtMax(t *testing.T) {
	cfg := searchCfg
	cfg.Max = 300e3
	f := &fakeTarget{capacity: 5e6, genMax: math.Inf(1)}
	res, err := Search(cfg, f.trial)
	if err != nil {
		t.Fatal(err)
	}
	if res.Best.Offered != 300e3 || f.asked[len(f.asked)-1] != 300e3 {
		t.Fatalf("best %.0f after %v", res.Best.Offered, f.asked)
	}
}

// A target that loses at the first rate gets a bisection below it.
func TestSearchBelowStart(t *testing.T) {
	f := &fakeTarget{capacity: 30e3, genMax: math.Inf(1)}
	res, err := Search(searchCfg, f.trial)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Best.Offered; got < 28e3 || got > 30e3/0.99 {
		t.Fatalf("found %.0f after %v", got, f.asked)
	}
}

func TestSearchNothingPasses(t *testing.T) {
	cfg := searchCfg
	cfg.MaxTrials = 5
	f := &fakeTarget{capacity: 0, genMax: math.Inf(1)}
	res, err := Search(cfg, f.trial)
	if err != nil {
		t.Fatal(err)
	}
	if res.Best.Sent != 0 || len(res.Trials) != 5 {
		t.Fatalf("best %+v after %d trials", res.Best, len(res.Trials))
	}
}

func TestSearchTrialError(t *testing.T) {
	boom := errors.New("boom")
	n := 0
	_, err := Search(searchCfg, func(rate float64) (TrialResult, error) {
		if n++; n == 3 {
			return TrialResult{}, boom
		}
		return TrialResult{Offered: rate, Sent: 100, Good: 100}, nil
	})
	if !errors.Is(err, boom) || n != 3 {
		t.Fatalf("err %v after %d trials", err, n)
	}
}

func TestSearchConfigRefused(t *testing.T) {
	for _, cfg := range []SearchConfig{{}, {Start: 10, Max: 5, MaxLoss: 0.01, Precision: 0.1, MaxTrials: 3}, {Start: 10, Max: 20, MaxLoss: 0.01, Precision: 0.1}} {
		if _, err := Search(cfg, nil); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

func TestTrialLoss(t *testing.T) {
	for _, c := range []struct {
		r    TrialResult
		want float64
	}{
		{TrialResult{Sent: 0}, 1},
		{TrialResult{Sent: 100, Good: 99}, 0.01},
		{TrialResult{Sent: 100, Good: 100}, 0},
		{TrialResult{Sent: 100, Good: 101}, 0}, // a late reply of an earlier trial
	} {
		if got := c.r.Loss(); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%+v: loss %v, want %v", c.r, got, c.want)
		}
	}
}
