//go:build race

package eve

// raceEnabled skips allocation counts, which the race detector inflates.
const raceEnabled = true
