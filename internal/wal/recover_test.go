package wal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distq/distq/internal/wal"
	"github.com/distq/distq/internal/wal/waltest"
)

// A log of synced records in several segments, closed: what a master
// leaves at a clean stop. It returns the bodies by LSN.
func writeLog(t *testing.T, dir string, o wal.Options, groups, per int) map[uint64][]byte {
	t.Helper()
	l, _, _ := open(t, dir, o)
	want := map[uint64][]byte{}
	n := 0
	for g := 0; g < groups; g++ {
		for _, lsn := range appendN(t, l, n, per) {
			want[lsn] = body(n)
			n++
		}
	}
	mustClose(t, l)
	return want
}

// reopenCheck opens dir and checks that exactly the records of want with
// an LSN in keep(lsn) came back, each with its content.
func reopenCheck(t *testing.T, name, dir string, o wal.Options, want map[uint64][]byte, keep func(uint64) bool) *wal.Recovery {
	t.Helper()
	o.FS = fastFS(dir)
	l, rec, r := open(t, dir, o)
	defer mustClose(t, l)
	var exp []uint64
	for lsn := range want {
		if keep(lsn) {
			exp = append(exp, lsn)
		}
	}
	slices.Sort(exp)
	if !slices.Equal(r.lsns, exp) {
		t.Fatalf("%s: recovered %d records (%v…), want %d (%v…)", name, len(r.lsns), head(r.lsns), len(exp), head(exp))
	}
	for _, lsn := range exp {
		if !bytes.Equal(r.bodies[lsn], want[lsn]) {
			t.Fatalf("%s: record %d is %q, want %q", name, lsn, r.bodies[lsn], want[lsn])
		}
	}
	return rec
}

// fastFS is the system's file system without its syncs, for loops that
// reopen a log hundreds of times.
func fastFS(dir string) wal.FS {
	f := waltest.New(dir)
	f.SetSkipSync(true)
	return f
}

func head(s []uint64) []uint64 { return s[:min(len(s), 5)] }

// lastFrame is the frame with the largest LSN.
func lastFrame(idx map[uint64]at) (uint64, at) {
	var max uint64
	for lsn := range idx {
		max = maxU(max, lsn)
	}
	return max, idx[max]
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// A crash while the last group was being written: for every length of what
// reached the disk (followed by the pre-written zeros, by garbage, or by a
// recycled segment's stale frames), the log reopens with every synced
// record and the whole frames that made it, and nothing else. The cut is
// reported whenever anything of a frame after them was written (in a
// recycled segment: its LSN), at the right LSN and offset. The log then
// takes new records in the place of the dropped ones, and keeps them.
func TestTornTailAtEveryOffset(t *testing.T) {
	for _, recycled := range []bool{false, true} {
		t.Run(fmt.Sprintf("recycled=%v", recycled), func(t *testing.T) {
			o := testOpts(t)
			base := t.TempDir()
			var want map[uint64][]byte
			if recycled {
				want = writeRecycled(t, base, o)
			} else {
				want = writeLog(t, base, o, 5, 8)
			}
			idx := frameIndex(t, base)
			last, loc := lastFrame(idx)
			seg, _ := os.ReadFile(loc.path)
			if wal.SegRecycled(seg) != recycled {
				t.Fatalf("the last segment's recycled flag is %v", !recycled)
			}
			end := loc.off + int64(loc.size)
			// Three records written and never synced: they carry the mark
			// of the last sync.
			var tail []byte
			var bounds = []int{0}
			var dataEnd []int
			tailBody := map[uint64][]byte{}
			for k := uint64(1); k <= 3; k++ {
				b := []byte(fmt.Sprintf("tail %d%s", k, strings.Repeat("t", int(k*k*2))))
				tailBody[last+k] = b
				tail = wal.AppendFrame(tail, b, last+k, last)
				dataEnd = append(dataEnd, bounds[len(bounds)-1]+wal.FrameHeader+len(b))
				bounds = append(bounds, len(tail))
			}
			if end+int64(len(tail)) > int64(len(seg)) {
				t.Fatalf("no room for the tail in %s", loc.path)
			}
			saved := saveDir(t, base)
			rel, _ := filepath.Rel(base, loc.path)
			for _, garbage := range []bool{false, true} {
				for cut := 1; cut < len(tail); cut++ {
					name := fmt.Sprintf("garbage=%v cut=%d", garbage, cut)
					dir := restoreDir(t, saved)
					data := slices.Clone(tail[:cut])
					if garbage {
						data = append(data, bytes.Repeat([]byte{0xA5}, len(tail)-cut)...)
					}
					f, err := os.OpenFile(filepath.Join(dir, rel), os.O_RDWR, 0)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := f.WriteAt(data, end); err != nil {
						t.Fatal(err)
					}
					f.Close()

					whole := 0
					for _, e := range dataEnd {
						if e <= cut {
							whole++
						}
					}
					all := maps2(want, tailBody)
					rec := reopenCheck(t, name, dir, o, all, func(lsn uint64) bool { return lsn <= last+uint64(whole) })
					written := garbage || cut > bounds[whole]
					if recycled {
						// Only a new frame's LSN tells a torn write from
						// stale bytes; part of it may do, or not.
						// Garbage over the LSN reads as stale bytes.
						written = cut >= bounds[whole]+16
						if cut > bounds[whole]+8 && cut < bounds[whole]+16 {
							written = rec.Torn != nil
						}
					}
					if (rec.Torn != nil) != (written && whole < 3) {
						t.Fatalf("%s: torn %v, want a report: %v", name, rec.Torn, written)
					}
					if rec.Torn != nil && (rec.Torn.First != last+1+uint64(whole) || rec.Torn.Offset != end+int64(bounds[whole]) || rec.Torn.File != filepath.Join(dir, rel)) {
						t.Fatalf("%s: torn %+v, want record %d at offset %d", name, *rec.Torn, last+1+uint64(whole), end+int64(bounds[whole]))
					}
					if cut%5 != 0 {
						continue
					}
					// New records go where the dropped ones were.
					fo := o
					fo.FS = fastFS(dir)
					l, _, _ := open(t, dir, fo)
					more := map[uint64][]byte{}
					for i, lsn := range appendN(t, l, 5000, 6) {
						more[lsn] = body(5000 + i)
					}
					mustClose(t, l)
					all = maps2(maps2(want, more), tailBody)
					if rec := reopenCheck(t, name+" then appended", dir, o, all, func(lsn uint64) bool {
						return lsn <= last+uint64(whole) || more[lsn] != nil
					}); rec.Torn != nil {
						t.Fatalf("%s: after appending: torn %v", name, rec.Torn)
					}
				}
			}
		})
	}
}

func maps2(a, b map[uint64][]byte) map[uint64][]byte {
	m := map[uint64][]byte{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		if m[k] == nil {
			m[k] = v
		}
	}
	return m
}

// writeRecycled writes a log whose active segment is a recycled one, so
// that stale frames of its earlier life follow the data. It returns the
// records after the last snapshot's start.
func writeRecycled(t *testing.T, dir string, o wal.Options) map[uint64][]byte {
	t.Helper()
	l, _, _ := open(t, dir, o)
	want := map[uint64][]byte{}
	n := 0
	for round := 0; ; round++ {
		for g := 0; g < 12; g++ {
			for _, lsn := range appendN(t, l, n, 6) {
				want[lsn] = body(n)
				n++
			}
		}
		start := l.LastLSN()
		w, err := l.BeginSnapshot(start)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteChunk([]byte("state")); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(context.Background(), l.LastLSN()); err != nil {
			t.Fatal(err)
		}
		for lsn := range want {
			if lsn <= start {
				delete(want, lsn)
			}
		}
		for _, lsn := range appendN(t, l, n, 4) {
			want[lsn] = body(n)
			n++
		}
		segs := segments(t, dir)
		idx := frameIndex(t, dir)
		_, loc := lastFrame(idx)
		b, _ := os.ReadFile(loc.path)
		if wal.SegRecycled(b) && loc.off+int64(loc.size)+600 < testSeg && len(segs) > 0 {
			break
		}
		if round > 50 {
			t.Fatal("no recycled segment became active")
		}
	}
	mustClose(t, l)
	return want
}

// damage flips bits at off in file.
func damage(t *testing.T, path string, off int64, mask byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= mask
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A byte flipped in any field of a record that later frames say was
// synced: the log refuses to open, naming the file, the offset and the
// record, and changes nothing. With Salvage it opens, keeps every other
// record and reports the one it lost.
func TestDamageInTheMiddle(t *testing.T) {
	o := testOpts(t)
	base := t.TempDir()
	want := writeLog(t, base, o, 30, 6)
	idx := frameIndex(t, base)
	saved := saveDir(t, base)
	last, _ := lastFrame(idx)
	var lsns []uint64
	for lsn := range want {
		lsns = append(lsns, lsn)
	}
	slices.Sort(lsns)
	// One in the first segment, one in the middle, one in the last.
	targets := []uint64{lsns[2], lsns[len(lsns)/2], lsns[len(lsns)-4]}
	if idx[targets[0]].path == idx[targets[2]].path {
		t.Fatal("the targets are in one segment")
	}
	fields := []struct {
		name string
		at   int64
	}{{"length", 1}, {"crc", 5}, {"lsn", 9}, {"synced", 17}, {"body", wal.FrameHeader + 2}}
	for _, lsn := range targets {
		for _, fl := range fields {
			name := fmt.Sprintf("record %d %s", lsn, fl.name)
			dir := restoreDir(t, saved)
			loc := idx[lsn]
			path := filepath.Join(dir, "wal", filepath.Base(loc.path))
			damage(t, path, loc.off+fl.at, 0x10)
			before := saveDir(t, dir)
			_, _, err := wal.Open(dir, o, nil, func(uint64, []byte) error { return nil })
			var de *wal.DamageError
			if !errors.As(err, &de) {
				t.Fatalf("%s: %v, want a DamageError", name, err)
			}
			if de.File != path || de.Offset != loc.off || de.LSN != lsn || de.Acked < lsn {
				t.Fatalf("%s: %+v, want %s offset %d record %d", name, de, path, loc.off, lsn)
			}
			msg := err.Error()
			for _, s := range []string{path, fmt.Sprintf("offset %d", loc.off), "-salvage-log", "Restore the data directory"} {
				if !strings.Contains(msg, s) {
					t.Fatalf("%s: message %q does not say %q", name, msg, s)
				}
			}
			after := saveDir(t, dir)
			for f, b := range before {
				if f != "LOCK" && !bytes.Equal(after[f], b) {
					t.Fatalf("%s: a refused recovery changed %s", name, f)
				}
			}
			so := o
			so.Salvage = true
			rec := reopenCheck(t, name+" salvaged", dir, so, want, func(l uint64) bool { return l != lsn })
			if len(rec.Lost) != 1 || rec.Lost[0].First != lsn || rec.Lost[0].Last != lsn || rec.Lost[0].Offset != loc.off {
				t.Fatalf("%s: salvage reported %v, want record %d lost", name, rec.Lost, lsn)
			}
			if rec.Next <= last {
				t.Fatalf("%s: salvage goes on at %d, the log held %d", name, rec.Next, last)
			}
		}
	}
}

// The idle no-op after a sync carries the synced mark of the last group,
// so damage there is refused rather than read as a torn tail; damage to
// the no-op itself (nothing after it says it was synced) reads as a torn
// tail, and costs no record.
func TestIdleNoopProtectsTheLastGroup(t *testing.T) {
	o := testOpts(t)
	base := t.TempDir()
	want := writeLog(t, base, o, 3, 5)
	idx := frameIndex(t, base)
	last, noop := lastFrame(idx)
	if len(noop.f.Body) != 0 {
		t.Fatalf("the last frame (record %d) is not a no-op: %q", last, noop.f.Body)
	}
	var lastRec uint64
	for lsn := range want {
		lastRec = maxU(lastRec, lsn)
	}
	saved := saveDir(t, base)

	dir := restoreDir(t, saved)
	loc := idx[lastRec]
	damage(t, filepath.Join(dir, "wal", filepath.Base(loc.path)), loc.off+wal.FrameHeader, 1)
	_, _, err := wal.Open(dir, o, nil, func(uint64, []byte) error { return nil })
	var de *wal.DamageError
	if !errors.As(err, &de) || de.LSN != lastRec {
		t.Fatalf("damage to the last record: %v, want a DamageError at record %d", err, lastRec)
	}

	dir = restoreDir(t, saved)
	damage(t, filepath.Join(dir, "wal", filepath.Base(noop.path)), noop.off+9, 1)
	rec := reopenCheck(t, "damaged no-op", dir, o, want, func(uint64) bool { return true })
	if rec.Torn == nil || rec.Torn.First != last || rec.Torn.Records != 0 {
		t.Fatalf("damaged no-op: torn %+v, want a torn tail at %d", rec.Torn, last)
	}
}

// Missing or unreadable segments before the end refuse to start, naming
// the file; an unreadable header of the last segment too, since it holds
// synced records.
func TestMissingOrUnreadableSegment(t *testing.T) {
	o := testOpts(t)
	base := t.TempDir()
	writeLog(t, base, o, 80, 6)
	saved := saveDir(t, base)
	segs := segments(t, base)
	used := 0
	for _, p := range segs {
		b, _ := os.ReadFile(p)
		if base, fr, _ := wal.Frames(b); base > 0 && len(fr) > 0 {
			used++
		}
	}
	if used < 4 {
		t.Fatalf("%d used segments", used)
	}
	cases := []struct {
		name  string
		hurt  func(dir string) string // returns the file the error must name
		cause string
	}{
		{"missing", func(dir string) string {
			p := filepath.Join(dir, "wal", filepath.Base(segs[2]))
			os.Remove(p)
			return filepath.Join(dir, "wal", filepath.Base(segs[3]))
		}, "missing"},
		{"header of a middle one", func(dir string) string {
			p := filepath.Join(dir, "wal", filepath.Base(segs[1]))
			damage(t, p, 20, 1)
			return p
		}, "header unreadable"},
		{"header of the last", func(dir string) string {
			p := filepath.Join(dir, "wal", filepath.Base(segs[used-1]))
			damage(t, p, 3, 1)
			return p
		}, "header unreadable"},
	}
	for _, c := range cases {
		dir := restoreDir(t, saved)
		file := c.hurt(dir)
		_, _, err := wal.Open(dir, o, nil, func(uint64, []byte) error { return nil })
		var de *wal.DamageError
		if !errors.As(err, &de) || de.File != file || !strings.Contains(err.Error(), c.cause) {
			t.Fatalf("%s: %v, want a DamageError naming %s (%s)", c.name, err, file, c.cause)
		}
	}
}
