//go:build !race

package vxlan_test

const raceEnabled = false
