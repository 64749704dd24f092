package wal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distq/distq/internal/wal"
)

// snapshot writes a snapshot of n chunks starting at the log's last LSN.
func snapshot(t *testing.T, l *wal.Log, n int) (start uint64, chunks [][]byte) {
	t.Helper()
	start = l.LastLSN()
	w, err := l.BeginSnapshot(start)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		c := []byte(fmt.Sprintf("chunk %d of the snapshot at %d %s", i, start, strings.Repeat("s", i*13%50)))
		if err := w.WriteChunk(c); err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, c)
	}
	if err := w.Commit(context.Background(), l.LastLSN()); err != nil {
		t.Fatal(err)
	}
	return start, chunks
}

func snapFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "snap", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A snapshot replaces the log before its start: Open restores its chunks,
// replays the records after it only, and the segments it made useless are
// gone (recycled or deleted); the previous snapshot is removed.
func TestSnapshotRoundTripAndCompaction(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t)
	l, _, _ := open(t, dir, o)
	n := 0
	for g := 0; g < 100; g++ {
		appendN(t, l, n, 6)
		n += 6
	}
	segsBefore := len(segments(t, dir))
	if got := l.SizeSinceSnapshot(); got < 100*6*24 {
		t.Fatalf("SizeSinceSnapshot %d before any snapshot", got)
	}
	snapshot(t, l, 3)
	start, chunks := snapshot(t, l, 40)
	if got := l.SizeSinceSnapshot(); got > 200 {
		t.Fatalf("SizeSinceSnapshot %d right after a snapshot", got)
	}
	want := map[uint64][]byte{}
	for _, lsn := range appendN(t, l, n, 10) {
		want[lsn] = body(n)
		n++
	}
	mustClose(t, l)
	if segs := len(segments(t, dir)); segs >= segsBefore || segs > 5 {
		t.Fatalf("%d segment files after the snapshot, %d before", segs, segsBefore)
	}
	if files := snapFiles(t, dir); len(files) != 1 || !strings.HasSuffix(files[0], fmt.Sprintf("%020d.snap", start)) {
		t.Fatalf("snapshot files %v", files)
	}
	l, rec, r := open(t, dir, o)
	defer mustClose(t, l)
	if len(r.chunks) != len(chunks) {
		t.Fatalf("restored %d chunks, want %d", len(r.chunks), len(chunks))
	}
	for i := range chunks {
		if !bytes.Equal(r.chunks[i], chunks[i]) {
			t.Fatalf("chunk %d is %q, want %q", i, r.chunks[i], chunks[i])
		}
	}
	if rec.Snapshot == nil || rec.Snapshot.Start != start || rec.Records != len(want) || len(r.lsns) != len(want) {
		t.Fatalf("recovered %+v, %d records; want the snapshot at %d and %d records", rec, len(r.lsns), start, len(want))
	}
	for lsn, b := range want {
		if !bytes.Equal(r.bodies[lsn], b) {
			t.Fatalf("record %d is %q, want %q", lsn, r.bodies[lsn], b)
		}
	}
	if got := l.SizeSinceSnapshot(); got != rec.Bytes || got == 0 {
		t.Fatalf("SizeSinceSnapshot %d after Open, recovery read %d", got, rec.Bytes)
	}
}

// A damaged snapshot is refused, naming its file and the offset of the
// bad chunk. With Salvage, Open passes over it to the previous snapshot if
// the log still covers that one (a crash between installing the new one
// and removing the old).
func TestSnapshotDamaged(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t)
	l, _, _ := open(t, dir, o)
	appendN(t, l, 0, 20)
	startA, chunksA := snapshot(t, l, 2)
	fileA := snapFiles(t, dir)[0]
	oldA, _ := os.ReadFile(fileA)
	want := map[uint64][]byte{}
	for i, lsn := range appendN(t, l, 20, 5) {
		want[lsn] = body(20 + i)
	}
	startB, _ := snapshot(t, l, 3)
	if len(segments(t, dir)) == 0 {
		t.Fatal("no segments")
	}
	for i, lsn := range appendN(t, l, 25, 5) {
		want[lsn] = body(25 + i)
	}
	mustClose(t, l)
	if err := os.WriteFile(fileA, oldA, 0o644); err != nil { // the crash left A
		t.Fatal(err)
	}
	fileB := filepath.Join(dir, "snap", fmt.Sprintf("%020d.snap", startB))
	b, _ := os.ReadFile(fileB)
	// The second chunk's data: header 32, first chunk 8+len padded.
	first := 8 + (len(fmt.Sprintf("chunk 0 of the snapshot at %d ", startB))+7)&^7
	off := int64(32 + first)
	b[off+9] ^= 1
	os.WriteFile(fileB, b, 0o644)

	_, _, err := wal.Open(dir, o, func(*wal.Snapshot) error { return nil }, func(uint64, []byte) error { return nil })
	var de *wal.DamageError
	if !errors.As(err, &de) || de.File != fileB || de.Offset != off || !strings.Contains(err.Error(), "snapshot is damaged") {
		t.Fatalf("damaged snapshot: %v, want a DamageError at %s offset %d", err, fileB, off)
	}
	o.Salvage = true
	l, rec, r := open(t, dir, o)
	defer mustClose(t, l)
	if rec.Snapshot == nil || rec.Snapshot.Start != startA || len(rec.SkippedSnapshots) != 1 || len(r.chunks) != len(chunksA) {
		t.Fatalf("salvage restored %+v (skipped %v), want the snapshot at %d", rec.Snapshot, rec.SkippedSnapshots, startA)
	}
	for lsn, b := range want {
		if !bytes.Equal(r.bodies[lsn], b) {
			t.Fatalf("record %d is %q, want %q", lsn, r.bodies[lsn], b)
		}
	}
}

// In interval mode a snapshot cannot wait for the tick: Commit has the
// writer sync, since the snapshot may hold effects of every record up to
// its end.
func TestSnapshotSyncsItsEndInIntervalMode(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t)
	o.Fsync, o.SyncInterval = wal.FsyncInterval, time.Hour
	l, _, _ := open(t, dir, o)
	defer mustClose(t, l)
	lsns := appendN(t, l, 0, 10)
	if s := l.Stats(); s.Durable < lsns[9] || s.Synced >= lsns[9] {
		t.Fatalf("interval mode: durable %d synced %d after writing %d", s.Durable, s.Synced, lsns[9])
	}
	snapshot(t, l, 1)
	if s := l.Stats(); s.Synced < lsns[9] {
		t.Fatalf("synced %d after a snapshot ending at %d", s.Synced, lsns[9])
	}
}

// A snapshot abandoned leaves the previous one in force and no file.
func TestSnapshotAbort(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := open(t, dir, testOpts(t))
	defer mustClose(t, l)
	appendN(t, l, 0, 5)
	w, err := l.BeginSnapshot(l.LastLSN())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.BeginSnapshot(l.LastLSN()); err == nil {
		t.Fatal("two snapshots at once")
	}
	w.WriteChunk([]byte("x"))
	w.Abort()
	if files := snapFiles(t, dir); len(files) != 0 {
		t.Fatalf("files after abort: %v", files)
	}
	snapshot(t, l, 1)
}
