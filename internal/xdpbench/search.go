package xdpbench

import "fmt"

// TrialResult is what one trial at a fixed offered rate gave.
type TrialResult struct {
	Asked   float64 // the rate asked of the generator, packets a second
	Offered float64 // the rate it sent at
	Sent    uint64
	Good    uint64 // replies that passed the checker
	Bad     uint64 // replies that did not
}

// Loss is the share of sent packets without a good reply.
func (r TrialResult) Loss() float64 {
	if r.Sent == 0 {
		return 1
	}
	if r.Good >= r.Sent {
		return 0
	}
	return 1 - float64(r.Good)/float64(r.Sent)
}

// GenLimited reports whether the generator fell short of the asked rate by
// more than 2%: the target may take more than the generator can give.
func (r TrialResult) GenLimited() bool { return r.Offered < 0.98*r.Asked }

// Trial runs one trial at rate packets a second.
type Trial func(rate float64) (TrialResult, error)

// SearchConfig bounds the search for the highest rate with loss under
// MaxLoss.
type SearchConfig struct {
	Start     float64 // first rate tried
	Max       float64 // never ask for more
	MaxLoss   float64 // e.g. 0.01
	Precision float64 // stop bisecting when the bracket is this narrow, relative (e.g. 0.05)
	MaxTrials int     // at most this many trials in all
}

// SearchResult is the outcome of Search.
type SearchResult struct {
	Best   TrialResult   // the passing trial at the highest offered rate; zero (Sent 0) if none passed
	Trials []TrialResult // every trial, in order
}

// Search finds the highest rate whose trial loses less than MaxLoss: it
// doubles the rate from Start until a trial fails (or Max or the generator's
// own limit is reached), then bisects between the last pass and the first
// failure. Rates are what the generator offered, not what was asked, so a
// generator that falls short is never credited with the asked rate.
func Search(cfg SearchConfig, trial Trial) (SearchResult, error) {
	if cfg.Start <= 0 || cfg.Max < cfg.Start || cfg.MaxLoss <= 0 || cfg.Precision <= 0 || cfg.MaxTrials < 1 {
		return SearchResult{}, fmt.Errorf("xdpbench: bad search config %+v", cfg)
	}
	var res SearchResult
	run := func(rate float64) (TrialResult, bool, error) {
		r, err := trial(rate)
		if err != nil {
			return r, false, err
		}
		r.Asked = rate
		res.Trials = append(res.Trials, r)
		pass := r.Loss() < cfg.MaxLoss
		if pass && r.Offered > res.Best.Offered {
			res.Best = r
		}
		return r, pass, nil
	}
	lo, hi := 0.0, 0.0 // last passing and first failing asked rates
	for rate := cfg.Start; len(res.Trials) < cfg.MaxTrials; {
		r, pass, err := run(rate)
		if err != nil {
			return res, err
		}
		if !pass {
			hi = rate
			break
		}
		lo = rate
		if r.GenLimited() || rate >= cfg.Max {
			return res, nil // nothing higher can be offered
		}
		rate = min(rate*2, cfg.Max)
	}
	if hi == 0 {
		return res, nil // out of trials while ramping
	}
	for len(res.Trials) < cfg.MaxTrials && hi-lo > cfg.Precision*hi {
		mid := (lo + hi) / 2
		r, pass, err := run(mid)
		if err != nil {
			return res, err
		}
		if pass {
			lo = mid
			if r.GenLimited() {
				break
			}
		} else {
			hi = mid
		}
	}
	return res, nil
}
