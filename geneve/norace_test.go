//go:build !race

package geneve_test

const raceEnabled = false
