// Package testlog gives tests an hclog logger that writes to t.Log, the way
// raft's tests do, so a failing test shows the logs of what it ran.
package testlog

import (
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// writer sends lines to t.Log until the test is over, and drops the lines
// of goroutines that outlive it (a stream's receiver ends a moment after
// its handler): t.Log after the end of a test panics.
type writer struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// New returns a debug-level logger named name that writes to t.Log.
func New(t testing.TB, name string) hclog.Logger {
	w := &writer{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: w, Level: hclog.Debug})
}
