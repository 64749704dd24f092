package wal_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/distq/distq/internal/wal"
)

// Records go in across many segments and come back, in order, each with
// its content; the log goes on from where it stopped, twice.
func TestRoundTripAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t)
	l, rec, _ := open(t, dir, o)
	if rec.Records != 0 || rec.Next != 1 {
		t.Fatalf("a new log recovered %+v", rec)
	}
	want := map[uint64][]byte{}
	n := 0
	for g := 0; g < 60; g++ {
		for _, lsn := range appendN(t, l, n, 7) {
			want[lsn] = body(n)
			n++
		}
	}
	mustClose(t, l)
	if segs := segments(t, dir); len(segs) < 5 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	for round := 0; round < 2; round++ {
		l, rec, r := open(t, dir, o)
		if rec.Torn != nil || len(rec.Lost) != 0 {
			t.Fatalf("round %d: torn %v lost %v", round, rec.Torn, rec.Lost)
		}
		if len(r.lsns) != len(want) || rec.Records != len(want) {
			t.Fatalf("round %d: %d records replayed (report %d), want %d", round, len(r.lsns), rec.Records, len(want))
		}
		for lsn, b := range want {
			if !bytes.Equal(r.bodies[lsn], b) {
				t.Fatalf("round %d: record %d is %q, want %q", round, lsn, r.bodies[lsn], b)
			}
		}
		// Enough to fill the ready segments and more: numbering goes on
		// from the last segment used.
		for g := 0; g < 40; g++ {
			for _, lsn := range appendN(t, l, n, 7) {
				if lsn < rec.Next {
					t.Fatalf("new record got lsn %d, the log recovered up to %d", lsn, rec.Next-1)
				}
				want[lsn] = body(n)
				n++
			}
		}
		mustClose(t, l)
	}
}

// Append refuses what it cannot log, and a closed log refuses everything.
func TestAppendRefusals(t *testing.T) {
	l, _, _ := open(t, t.TempDir(), testOpts(t))
	if _, err := l.Append(nil); !errors.Is(err, wal.ErrEmpty) {
		t.Fatalf("empty record: %v", err)
	}
	if _, err := l.Append(make([]byte, 2<<10+1)); !errors.Is(err, wal.ErrTooLarge) {
		t.Fatalf("large record: %v", err)
	}
	mustClose(t, l)
	if _, err := l.Append([]byte("x")); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if err := l.AdmitPut(); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("admission after close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	_ = slices.Clone([]int(nil))
}
