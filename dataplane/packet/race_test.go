//go:build race

package packet

// raceEnabled skips allocation counts, which the race detector inflates.
const raceEnabled = true
