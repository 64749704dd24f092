// Package gcpercent sets the garbage collector's pace for slaves. A slave's
// live heap is a few megabytes (the tasks it holds), while fast tasks make
// it allocate a hundred megabytes a second: at Go's default GOGC=100 the
// collector then runs dozens of times a second and takes about a fifth of
// the slave's CPU time. Letting the heap grow to five times the live data
// instead of twice costs a slave about ten megabytes and gives that CPU
// back to the tasks. The master keeps the default: its live heap is the
// queued items, and five times that is not a price worth paying.
package gcpercent

import (
	"os"
	"runtime/debug"
	"strconv"
)

// Slave is the GOGC a slave runs at unless told otherwise.
const Slave = 400

// Set sets the collector's percent unless the GOGC environment variable
// chose one: the user's word wins. It reports whether it set it. A GOGC the
// runtime ignored (empty, or not a number) chose nothing.
func Set(percent int) bool {
	if v := os.Getenv("GOGC"); v == "off" {
		return false
	} else if _, err := strconv.Atoi(v); err == nil {
		return false
	}
	debug.SetGCPercent(percent)
	return true
}
