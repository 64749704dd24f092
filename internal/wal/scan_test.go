package wal_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/distq/distq/internal/wal"
)

// Recovery's scan past an unreadable record skips runs of zeros a block at
// a time (the unused rest of a segment): a record zeroed out whole, 200 KiB
// of zeros, with synced records after it is still found to be damage in
// the middle, at its offset, not read as the end of the log.
func TestScanFindsFramesPastLongZeros(t *testing.T) {
	o := testOpts(t)
	o.SegmentSize, o.MaxRecord = 1<<20, 256<<10
	dir := t.TempDir()
	l, _, _ := open(t, dir, o)
	appendN(t, l, 0, 3)
	big := bytes.Repeat([]byte("b"), 200<<10)
	lsn, err := l.Append(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitContext(t.Context(), lsn); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 10, 3) // their synced marks cover the big record
	mustClose(t, l)

	loc := frameIndex(t, dir)[lsn]
	if loc.size < 200<<10 {
		t.Fatalf("the big record takes %d bytes", loc.size)
	}
	b, err := os.ReadFile(loc.path)
	if err != nil {
		t.Fatal(err)
	}
	clear(b[loc.off : loc.off+int64(loc.size)])
	if err := os.WriteFile(loc.path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = wal.Open(dir, o, nil, func(uint64, []byte) error { return nil })
	var de *wal.DamageError
	if !errors.As(err, &de) || de.File != loc.path || de.Offset != loc.off || de.LSN != lsn {
		t.Fatalf("open: %v, want damage at %s offset %d record %d", err, loc.path, loc.off, lsn)
	}
}
