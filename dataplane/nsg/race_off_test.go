//go:build !race

package nsg

const raceEnabled = false
