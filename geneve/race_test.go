//go:build race

package geneve_test

// raceEnabled skips allocation counts, which the race detector inflates.
const raceEnabled = true
