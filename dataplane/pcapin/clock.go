package pcapin

import "time"

// Clock runs a dataplane's housekeeping on capture time rather than the wall clock,
// so that replaying a day of traffic in seconds ends idle flows and writes flow-log
// intervals as they would have been live. Tick it with each packet's capture time
// (Config.OnTime); it calls Expire once per second of capture time and Interval once
// per Every.
type Clock struct {
	Expire   func(now int64) // ends idle flows
	Interval func(now int64) // writes flow-log records; nil or Every <= 0: never
	Every    time.Duration

	nextExpire, nextInterval int64
}

// Tick tells the clock that capture time is now (unix ns).
func (c *Clock) Tick(now int64) {
	if c.nextExpire == 0 {
		c.nextExpire = now + int64(time.Second)
		c.nextInterval = now + int64(c.Every)
	}
	if now >= c.nextExpire {
		if c.Expire != nil {
			c.Expire(now)
		}
		c.nextExpire = now + int64(time.Second)
	}
	if iv := int64(c.Every); iv > 0 && c.Interval != nil && now >= c.nextInterval {
		c.Interval(now)
		// Realign after a gap in the capture: one walk, not one per interval missed.
		c.nextInterval = now + iv - (now-c.nextInterval)%iv
	}
}
