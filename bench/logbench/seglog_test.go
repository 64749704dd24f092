package logbench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const testSeg = 4 << 10 // small segments: a few records each

func testBody(lsn uint64) []byte {
	return []byte(fmt.Sprintf("record %d %s", lsn, bytes.Repeat([]byte{'x'}, int(lsn%37))))
}

// group frames LSNs from..to, each carrying synced.
func testGroup(from, to, synced uint64) *Group {
	g := &Group{First: from, Last: to, N: int(to - from + 1)}
	for l := from; l <= to; l++ {
		b := testBody(l)
		g.Frames = appendFrame(g.Frames, b, bodyCRC(b), l, synced)
	}
	return g
}

// writeGroups appends groups of size n from LSN first to last, each synced
// (its frames carry the previous group's last LSN), to the log in dir.
func writeGroups(t *testing.T, dir string, opt SegLogOptions, first, last uint64, n int) {
	t.Helper()
	l, rec, err := OpenSegLog(dir, opt, func(uint64, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if rec.Last != 0 && rec.Last+1 != first {
		t.Fatalf("log ends at %d, appending from %d", rec.Last, first)
	}
	for from := first; from <= last; from += uint64(n) {
		to := min(from+uint64(n)-1, last)
		if err := l.Append(testGroup(from, to, from-1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

type reopened struct {
	lsns []uint64
	rec  Recovered
	err  error
}

// reopen recovers dir, checking every record's content.
func reopen(t *testing.T, dir string, opt SegLogOptions) reopened {
	t.Helper()
	var r reopened
	l, rec, err := OpenSegLog(dir, opt, func(lsn uint64, b []byte) error {
		if !bytes.Equal(b, testBody(lsn)) {
			return fmt.Errorf("record %d: wrong content", lsn)
		}
		r.lsns = append(r.lsns, lsn)
		return nil
	})
	r.rec, r.err = rec, err
	if err == nil {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func seq(from, to uint64) []uint64 {
	var s []uint64
	for l := from; l <= to; l++ {
		s = append(s, l)
	}
	return s
}

// where is each frame: the segment file and offset, by LSN.
type at struct {
	path string
	off  int64
	size int
}

func frameIndex(t *testing.T, dir string) map[uint64]at {
	t.Helper()
	m := map[uint64]at{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		_, base, _, ok := readSegHeader(b)
		if !ok {
			continue
		}
		for off := segHeader; ; {
			f, err := parseFrame(b[off:])
			if err != nil || f.lsn < base {
				break
			}
			m[f.lsn] = at{p, int64(off), f.size}
			off += f.size
		}
	}
	return m
}

// snapshotDir and restoreDir copy a log's files, so that each case of a
// loop starts from the same bytes.
func snapshotDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}

func restoreDir(t *testing.T, m map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range m {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSegLogRoundTripAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	opt := SegLogOptions{SegmentSize: testSeg}
	writeGroups(t, dir, opt, 1, 300, 7)
	r := reopen(t, dir, opt)
	if r.err != nil || r.rec.Torn != nil || !slices.Equal(r.lsns, seq(1, 300)) {
		t.Fatalf("reopen: %v torn %+v, %d records", r.err, r.rec.Torn, len(r.lsns))
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(segs) < 5 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	// It goes on from where it stopped, and again after that.
	writeGroups(t, dir, opt, 301, 400, 5)
	r = reopen(t, dir, opt)
	if r.err != nil || r.rec.Torn != nil || !slices.Equal(r.lsns, seq(1, 400)) {
		t.Fatalf("second reopen: %v torn %+v, %d records", r.err, r.rec.Torn, len(r.lsns))
	}
}

// Recycled segments keep stale frames of their earlier life; they end the
// log cleanly and are never read as records.
func TestSegLogRecycledSegments(t *testing.T) {
	dir := t.TempDir()
	opt := SegLogOptions{SegmentSize: testSeg, Recycle: 1, Spare: 2}
	writeGroups(t, dir, opt, 1, 500, 9)
	r := reopen(t, dir, SegLogOptions{SegmentSize: testSeg})
	if r.err != nil || r.rec.Torn != nil {
		t.Fatalf("reopen: %v torn %+v", r.err, r.rec.Torn)
	}
	if r.rec.First <= 1 || r.rec.Last != 500 || !slices.Equal(r.lsns, seq(r.rec.First, 500)) {
		t.Fatalf("recovered %d..%d (%d records), want a suffix ending at 500", r.rec.First, r.rec.Last, len(r.lsns))
	}
}

// A crash while the last group was being written: for every length of what
// reached the disk (followed by the pre-written zeros, or by garbage), the
// log reopens with every synced record, the whole frames that made it, and
// nothing else; the cut is reported unless the write stopped at a frame
// boundary before zeros. The log then takes appends again.
func TestSegLogTornTailAtEveryOffset(t *testing.T) {
	base := t.TempDir()
	opt := SegLogOptions{SegmentSize: 64 << 10}
	writeGroups(t, base, opt, 1, 40, 8) // synced: 1..40
	idx := frameIndex(t, base)
	end := idx[40].off + int64(idx[40].size)
	tail := testGroup(41, 43, 40).Frames // written, never synced
	saved := snapshotDir(t, base)
	// Frame k starts at bounds[k]; its header and command end at dataEnd[k]
	// (the zero padding after it need not reach the disk).
	bounds := []int{0}
	var dataEnd []int
	for off := 0; off < len(tail); {
		f, _ := parseFrame(tail[off:])
		dataEnd = append(dataEnd, off+frameHeader+len(f.body))
		off += f.size
		bounds = append(bounds, off)
	}
	for _, garbage := range []bool{false, true} {
		for cut := 1; cut < len(tail); cut++ {
			dir := restoreDir(t, saved)
			data := slices.Clone(tail[:cut])
			if garbage {
				data = append(data, bytes.Repeat([]byte{0xA5}, len(tail)-cut)...)
			}
			f, err := os.OpenFile(filepath.Join(dir, filepath.Base(idx[40].path)), os.O_RDWR, 0)
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
			r := reopen(t, dir, opt)
			name := fmt.Sprintf("garbage=%v cut=%d", garbage, cut)
			if r.err != nil {
				t.Fatalf("%s: %v", name, r.err)
			}
			if want := seq(1, 40+uint64(whole)); !slices.Equal(r.lsns, want) {
				t.Fatalf("%s: recovered %d records, want %d", name, len(r.lsns), len(want))
			}
			// Nothing of the next frame written, and zeros after: a clean end.
			clean := !garbage && cut <= bounds[whole]
			if (r.rec.Torn == nil) != clean {
				t.Fatalf("%s: torn %+v", name, r.rec.Torn)
			}
			if r.rec.Torn != nil && (r.rec.Torn.FirstLSN != 41+uint64(whole) || r.rec.Torn.Offset != end+int64(bounds[whole])) {
				t.Fatalf("%s: torn %+v, want lsn %d at offset %d", name, *r.rec.Torn, 41+uint64(whole), end+int64(bounds[whole]))
			}
			next := 41 + uint64(whole)
			writeGroups(t, dir, opt, next, next+4, 2)
			if r := reopen(t, dir, opt); r.err != nil || r.rec.Torn != nil || !slices.Equal(r.lsns, seq(1, next+4)) {
				t.Fatalf("%s: after appending: %v torn %+v %d records", name, r.err, r.rec.Torn, len(r.lsns))
			}
		}
	}
}

// Damage to a record that a later frame says was synced: the log refuses to
// open, naming the file, the offset and the record, and changes nothing.
func TestSegLogRefusesDamageInTheMiddle(t *testing.T) {
	opt := SegLogOptions{SegmentSize: testSeg}
	base := t.TempDir()
	writeGroups(t, base, opt, 1, 200, 6)
	idx := frameIndex(t, base)
	saved := snapshotDir(t, base)
	cases := []struct {
		name string
		lsn  uint64
		hurt func(b []byte)
	}{
		{"bit in a body, tail segment", 190, func(b []byte) { b[frameHeader+3] ^= 0x10 }},
		{"bit in a body, sealed segment", 5, func(b []byte) { b[frameHeader] ^= 0x01 }},
		{"length", 100, func(b []byte) { b[1] ^= 0x40 }},
		{"header zeroed (a lost sector)", 120, func(b []byte) { clear(b[:frameHeader]) }},
	}
	for _, c := range cases {
		dir := restoreDir(t, saved)
		loc := idx[c.lsn]
		path := filepath.Join(dir, filepath.Base(loc.path))
		b, _ := os.ReadFile(path)
		c.hurt(b[loc.off:])
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		before := snapshotDir(t, dir)
		r := reopen(t, dir, opt)
		var de *DamageError
		if !errors.As(r.err, &de) {
			t.Fatalf("%s: %v, want a DamageError", c.name, r.err)
		}
		if de.File != path || de.Offset != loc.off || de.LSN != c.lsn || de.Acked < c.lsn {
			t.Fatalf("%s: %+v, want %s offset %d record %d", c.name, de, path, loc.off, c.lsn)
		}
		after := snapshotDir(t, dir)
		for name, b := range before {
			if !bytes.Equal(after[name], b) {
				t.Fatalf("%s: recovery changed %s", c.name, name)
			}
		}
	}
}

// The limit of the rule: damage to the last synced group, with no later
// frame to carry its synced mark, reads as a torn tail (as in raft-wal and
// etcd). The design narrows the window with a small frame after going idle.
func TestSegLogDamageInLastSyncedGroupReadsAsTorn(t *testing.T) {
	dir := t.TempDir()
	opt := SegLogOptions{SegmentSize: 64 << 10}
	writeGroups(t, dir, opt, 1, 40, 8) // the last group, 33..40, was synced
	loc := frameIndex(t, dir)[36]
	b, _ := os.ReadFile(loc.path)
	b[loc.off+frameHeader] ^= 1
	if err := os.WriteFile(loc.path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := reopen(t, dir, opt)
	if r.err != nil || r.rec.Torn == nil || r.rec.Torn.FirstLSN != 36 || !slices.Equal(r.lsns, seq(1, 35)) {
		t.Fatalf("%v torn %+v, %d records", r.err, r.rec.Torn, len(r.lsns))
	}
}

// A missing segment in the middle refuses to start.
func TestSegLogRefusesMissingSegment(t *testing.T) {
	dir := t.TempDir()
	opt := SegLogOptions{SegmentSize: testSeg}
	writeGroups(t, dir, opt, 1, 300, 7)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	slices.Sort(segs)
	if err := os.Remove(segs[2]); err != nil {
		t.Fatal(err)
	}
	var de *DamageError
	if r := reopen(t, dir, opt); !errors.As(r.err, &de) {
		t.Fatalf("%v, want a DamageError", r.err)
	}
}
