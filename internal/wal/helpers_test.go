package wal_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/distq/distq/internal/testlog"
	"github.com/distq/distq/internal/wal"
)

const testSeg = 8 << 10 // small segments: a few dozen records each

func testOpts(t testing.TB) wal.Options {
	return wal.Options{SegmentSize: testSeg, MaxRecord: 2 << 10, Logger: testlog.New(t, "wal")}
}

// body is record n's content: the tests check every record they read.
func body(n int) []byte {
	return []byte(fmt.Sprintf("record %d %s", n, bytes.Repeat([]byte{'x'}, n%41)))
}

// replayed is what a recovery handed the caller.
type replayed struct {
	mu     sync.Mutex
	lsns   []uint64
	bodies map[uint64][]byte
	chunks [][]byte
}

func (r *replayed) replay(lsn uint64, b []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.lsns); n > 0 && r.lsns[n-1] >= lsn {
		return fmt.Errorf("record %d after %d", lsn, r.lsns[n-1])
	}
	r.lsns = append(r.lsns, lsn)
	if r.bodies == nil {
		r.bodies = map[uint64][]byte{}
	}
	r.bodies[lsn] = slices.Clone(b)
	return nil
}

func (r *replayed) restore(s *wal.Snapshot) error {
	for {
		c, err := s.Next()
		if err != nil {
			if err.Error() == "EOF" {
				return nil
			}
			return err
		}
		r.chunks = append(r.chunks, c)
	}
}

// open opens dir, failing the test on error.
func open(t testing.TB, dir string, o wal.Options) (*wal.Log, *wal.Recovery, *replayed) {
	t.Helper()
	r := &replayed{}
	l, rec, err := wal.Open(dir, o, r.restore, r.replay)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l, rec, r
}

// appendN appends n records numbered from first, waiting for the last;
// it returns their LSNs.
func appendN(t testing.TB, l *wal.Log, first, n int) []uint64 {
	t.Helper()
	var lsns []uint64
	for i := first; i < first+n; i++ {
		lsn, err := l.Append(body(i))
		if err != nil {
			t.Fatal(err)
		}
		lsns = append(lsns, lsn)
	}
	if err := l.WaitContext(context.Background(), lsns[len(lsns)-1]); err != nil {
		t.Fatal(err)
	}
	return lsns
}

func mustClose(t testing.TB, l *wal.Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// copyDir and the like let each case of a loop start from the same bytes.
func saveDir(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func restoreDir(t testing.TB, m map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for rel, b := range m {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// segments lists the segment files of dir, by number.
func segments(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "wal", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(segs)
	return segs
}

// where is each record: the segment file and offset, by LSN.
type at struct {
	path string
	off  int64
	size int
	f    wal.Frame
}

func frameIndex(t testing.TB, dir string) map[uint64]at {
	t.Helper()
	m := map[uint64]at{}
	for _, p := range segments(t, dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		_, frames, offs := wal.Frames(b)
		for i, f := range frames {
			m[f.LSN] = at{path: p, off: offs[i], size: f.Size, f: f}
		}
	}
	return m
}
