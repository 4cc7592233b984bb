//go:build race

package vxlan_test

// raceEnabled skips allocation counts, which the race detector inflates.
const raceEnabled = true
