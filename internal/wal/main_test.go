package wal_test

import (
	"os"
	"testing"
	"time"

	"github.com/distq/distq/internal/wal"
)

func TestMain(m *testing.M) {
	// Failures are retried at once-ish: the tests wait on events, and this
	// only keeps them short.
	wal.SetRetriesForTest(2*time.Millisecond, time.Millisecond, 4*time.Millisecond)
	os.Exit(m.Run())
}
