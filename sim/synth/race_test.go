//go:build race

package synth_test

// raceEnabled skips allocation counts, which the race detector inflates.
const raceEnabled = true
