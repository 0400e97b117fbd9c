//go:build race

package nsg

// raceEnabled scales the randomized tests down under the race detector,
// which slows their single-goroutine loops tenfold and finds nothing there.
const raceEnabled = true
