package logbench

// Functional probes of raft-wal v0.4.0, the log engine of option (a). They
// assert what raft-wal does today, so that docs/durable-engine.md can say it
// and a raft-wal upgrade that changes it fails here. Nothing is timed.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/raft"
)

// walFrame is one frame of a raft-wal segment file, read by its documented
// format: a 32-byte file header, then frames of an 8-byte header (type,
// 3 reserved, length or CRC) and a payload padded to 8 bytes.
type walFrame struct {
	typ    byte
	offset int64 // of the header
	length int
}

const (
	walEntry  = 1
	walIndex  = 2
	walCommit = 3
)

func walFrames(t *testing.T, path string) []walFrame {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []walFrame
	for off := int64(32); off+8 <= int64(len(b)); {
		typ := b[off]
		if typ == 0 {
			break
		}
		n := int(binary.LittleEndian.Uint32(b[off+4:]))
		f := walFrame{typ: typ, offset: off, length: n}
		out = append(out, f)
		if typ == walCommit {
			n = 0
		}
		off += 8 + int64(pad8(n))
	}
	return out
}

// walSegments lists raft-wal's segment files, oldest first.
func walSegments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segment files in %s (%v)", dir, err)
	}
	slices.Sort(m)
	return m
}

func entryData(i uint64, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, size)
	copy(b, fmt.Sprintf("entry %d.", i))
	return b
}

// storeEach stores entries from..to with one StoreLogs each: each is
// acknowledged (synced) before the next.
func storeEach(t *testing.T, w *walStore, from, to uint64, size int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := w.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: entryData(i, size)}}); err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
}

func flip(t *testing.T, path string, off int64, mask byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// A damaged frame header in the middle of the tail segment: raft-wal opens
// without an error and silently drops every acknowledged entry from there on.
// It reads it as a torn last write ("we assume that previously committed
// data is not silently corrupted").
func TestRaftWALDropsAcknowledgedEntriesAfterDamagedHeader(t *testing.T) {
	dir := t.TempDir()
	w, err := openWAL(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	storeEach(t, w, 1, 100, 100)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs := walSegments(t, dir)
	tail := segs[len(segs)-1]
	var entries []walFrame
	for _, f := range walFrames(t, tail) {
		if f.typ == walEntry {
			entries = append(entries, f)
		}
	}
	if len(entries) != 100 {
		t.Fatalf("%d entry frames in the tail, want 100", len(entries))
	}
	flip(t, tail, entries[49].offset, 0xF0) // entry 50's type byte: an unknown type

	w, err = openWAL(dir, 0, nil)
	if err != nil {
		t.Fatalf("raft-wal refused the damaged log (%v); update docs/durable-engine.md", err)
	}
	defer w.Close()
	last, err := w.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if last != 49 {
		t.Fatalf("last index %d after damage at entry 50, want 49 (entries 50..100 dropped)", last)
	}
	var l raft.Log
	if err := w.GetLog(60, &l); err == nil {
		t.Fatalf("entry 60 still readable")
	}
	// And it appends after entry 49 as if nothing happened.
	storeEach(t, w, 50, 50, 10)
}

// Damaged entry data: raft-wal checks no checksum when it reads an entry,
// in a sealed segment or in the middle of the tail. GetLog returns the
// damaged bytes without an error. Our frames inside the entry do catch it:
// (a) would need its own checksum in every entry.
func TestRaftWALReturnsDamagedDataWithoutError(t *testing.T) {
	dir := t.TempDir()
	w, err := openWAL(dir, 64<<10, nil) // 64 KiB segments: the first ones seal
	if err != nil {
		t.Fatal(err)
	}
	// Entries that are our frames, so that our CRC can be checked too.
	var frames [][]byte
	for i := uint64(1); i <= 300; i++ {
		fr := appendFrame(nil, entryData(i, 1000), bodyCRC(entryData(i, 1000)), i, i-1)
		frames = append(frames, fr)
		if err := w.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: fr}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs := walSegments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several sealed ones", len(segs))
	}
	sealed := walFrames(t, segs[0])
	if sealed[len(sealed)-1].typ != walCommit || !slices.ContainsFunc(sealed, func(f walFrame) bool { return f.typ == walIndex }) {
		t.Fatalf("the first segment is not sealed")
	}
	// Entry 5 is the fifth entry frame of the first (sealed) segment.
	flip(t, segs[0], sealed[4].offset+8+200, 0x01)
	// An entry in the middle of the tail segment, not in its last batch.
	tail := walFrames(t, segs[len(segs)-1])
	var tailEntries []walFrame
	for _, f := range tail {
		if f.typ == walEntry {
			tailEntries = append(tailEntries, f)
		}
	}
	mid := tailEntries[len(tailEntries)/2]
	flip(t, segs[len(segs)-1], mid.offset+8+300, 0x01)

	w, err = openWAL(dir, 64<<10, nil)
	if err != nil {
		t.Fatalf("raft-wal refused the damaged log (%v); update docs/durable-engine.md", err)
	}
	defer w.Close()
	last, _ := w.LastIndex()
	if last != 300 {
		t.Fatalf("last index %d, want 300", last)
	}
	damaged := 0
	for i := uint64(1); i <= 300; i++ {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if bytes.Equal(l.Data, frames[i-1]) {
			continue
		}
		damaged++
		if _, err := parseFrame(l.Data); !errors.Is(err, errCRC) {
			t.Fatalf("entry %d damaged but our frame CRC says %v", i, err)
		}
	}
	if damaged != 2 {
		t.Fatalf("%d entries came back damaged without an error, want 2", damaged)
	}
}

// A failed write (disk full, through raft-wal's VFS): StoreLogs fails, and
// later StoreLogs fail too even once the disk has room again: the tail
// segment's in-memory index already counts the entries that were not
// written. Only a reopen recovers; what was acknowledged before is kept.
func TestRaftWALWedgedAfterFailedWrite(t *testing.T) {
	dir := t.TempDir()
	w, err := openWAL(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	storeEach(t, w, 1, 10, 100)
	w.vfs.FailWrites(syscall.ENOSPC)
	if err := w.StoreLogs([]*raft.Log{{Index: 11, Term: 1, Type: raft.LogCommand, Data: entryData(11, 100)}}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("store with a full disk: %v, want ENOSPC", err)
	}
	w.vfs.FailWrites(nil)
	err = w.StoreLogs([]*raft.Log{{Index: 11, Term: 1, Type: raft.LogCommand, Data: entryData(11, 100)}})
	if err == nil || !strings.Contains(err.Error(), "non-monotonic") {
		t.Fatalf("store after the disk has room again: %v, want raft-wal's non-monotonic append error; update docs/durable-engine.md", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = openWAL(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if last, _ := w.LastIndex(); last != 10 {
		t.Fatalf("last index %d after reopen, want 10", last)
	}
	storeEach(t, w, 11, 12, 100)
}
