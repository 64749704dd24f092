package wal_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distq/distq/internal/wal"
)

// A second Open of a data dir in use fails at once, naming the holder;
// once the holder closes, it succeeds.
func TestLockRefusedWhileHeld(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t)
	o.LockInfo = "listening on :4000"
	l, _, _ := open(t, dir, o)
	_, _, err := wal.Open(dir, testOpts(t), nil, func(uint64, []byte) error { return nil })
	var le *wal.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("second open: %v, want a LockedError", err)
	}
	host, _ := os.Hostname()
	for _, s := range []string{dir, fmt.Sprintf("pid %d", os.Getpid()), "host " + host, "listening on :4000", "since ", "stop it or choose another -data-dir"} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("message %q does not say %q", err, s)
		}
	}
	mustClose(t, l)
	l, _, _ = open(t, dir, testOpts(t))
	mustClose(t, l)
}

// A data dir of another format, or a directory holding something else,
// is refused.
func TestFormatRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "FORMAT"), []byte("distq-data 2\n"), 0o644)
	if _, _, err := wal.Open(dir, testOpts(t), nil, nil); err == nil || !strings.Contains(err.Error(), `"distq-data 2"`) {
		t.Fatalf("unknown format: %v", err)
	}
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	if _, _, err := wal.Open(dir, testOpts(t), nil, nil); err == nil || !strings.Contains(err.Error(), "not a distq data dir") {
		t.Fatalf("foreign directory: %v", err)
	}
}
