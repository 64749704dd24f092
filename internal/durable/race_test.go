//go:build race

package durable_test

// raceEnabled: the race detector slows this package's heavy tests down
// about tenfold; they do less under it.
const raceEnabled = true
