package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// FuzzRecover feeds arbitrary bytes to recovery as the frames of a segment
// (after a valid header based at 1). Recovery must not panic, and either
// refuse with a *DamageError or return exactly the readable prefix: the
// records of the frames that parse in order from the header on. Recovering
// again finds the same and nothing more to cut.
func FuzzRecover(f *testing.F) {
	var valid []byte
	for i := uint64(1); i <= 6; i++ {
		b := []byte(fmt.Sprintf("record %d", i))
		if i == 4 {
			b = nil // an idle no-op
		}
		valid = appendFrame(valid, b, bodyCRC(b), i, i-1)
	}
	f.Add(valid, false)
	f.Add(valid[:len(valid)-5], false)
	f.Add(append(slices.Clone(valid[:50]), 0xA5, 0xA5, 0xA5), false)
	damaged := slices.Clone(valid)
	damaged[frameHeader+2] ^= 1
	f.Add(damaged, false)
	f.Add(damaged, true)
	f.Fuzz(func(t *testing.T, data []byte, salvage bool) {
		if len(data) > 1<<16 {
			return
		}

		fsys := newMemFS()
		dir := "/d/wal"
		seg := make([]byte, segHeaderSize, segHeaderSize+len(data))
		putSegHeader(seg, segHeader{no: 1, base: 1})
		seg = append(seg, data...)
		fsys.files[filepath.Join(dir, segName(1))] = &memFile{fs: fsys, b: slices.Clone(seg)}
		run := func() ([]uint64, *recovered, error) {
			var got []uint64
			r, err := recoverLog(fsys, dir, 0, 1024, salvage, func(lsn uint64, b []byte) error {
				if len(b) == 0 {
					return errors.New("a no-op replayed")
				}
				got = append(got, lsn)
				return nil
			})
			if r != nil {
				r.closeAll()
			}
			return got, r, err
		}
		got, _, err := run()
		if err != nil {
			var de *DamageError
			if !errors.As(err, &de) {
				t.Fatalf("recovery failed with %v, not a DamageError", err)
			}
			return
		}
		if salvage {
			if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Fatalf("salvaged records out of order: %v", got)
			}
		} else {
			var want []uint64
			for off, e := segHeaderSize, uint64(1); ; e++ {
				fr, err := parseFrame(seg[off:], 1024)
				if err != nil || fr.lsn != e {
					break
				}
				if !fr.noop() {
					want = append(want, fr.lsn)
				}
				off += fr.size
			}
			if !slices.Equal(got, want) {
				t.Fatalf("recovered %v, want the readable prefix %v", got, want)
			}
		}
		again, r2, err := run()
		if err != nil || !slices.Equal(again, got) || (!salvage && r2.torn != nil) {
			t.Fatalf("second recovery: %v, %v (first %v), torn %v", err, again, got, r2.torn)
		}
	})
}

// FuzzSnapshot feeds arbitrary bytes to the snapshot reader: a
// *DamageError, or chunks that all read back.
func FuzzSnapshot(f *testing.F) {
	dir := f.TempDir()
	l, _, err := Open(dir, Options{SegmentSize: 8 << 10, MaxRecord: 1024}, nil, func(uint64, []byte) error { return nil })
	if err != nil {
		f.Fatal(err)
	}
	lsn, _ := l.Append([]byte("x"))
	w, err := l.BeginSnapshot(lsn)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range []string{"first chunk", "", "third"} {
		w.WriteChunk([]byte(c))
	}
	if err := w.Commit(context.Background(), lsn); err != nil {
		f.Fatal(err)
	}
	l.Close()
	b, err := os.ReadFile(filepath.Join(dir, "snap", snapName(lsn)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := newMemFS()
		path := "/d/snap/" + snapName(1)
		fsys.files[path] = &memFile{fs: fsys, b: data}
		s, err := openSnapshot(fsys, path)
		if err != nil {
			var de *DamageError
			if !errors.As(err, &de) {
				t.Fatalf("%v, not a DamageError", err)
			}
			return
		}
		defer s.Close()
		n := 0
		for {
			_, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("chunk %d of a verified snapshot: %v", n, err)
			}
			n++
		}
		if n != s.Chunks {
			t.Fatalf("%d chunks read, %d verified", n, s.Chunks)
		}
	})
}

// memFS is a file system in memory: fuzzing makes thousands of logs,
// and the disk of a busy machine would set the pace.
type memFS struct {
	mu    sync.Mutex
	files map[string]*memFile
}

type memFile struct {
	fs *memFS
	b  []byte
}

func newMemFS() *memFS { return &memFS{files: map[string]*memFile{}} }

func (m *memFS) OpenFile(name string, flag int, _ os.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.files[name]
	if f == nil {
		if flag&os.O_CREATE == 0 {
			return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
		}
		f = &memFile{fs: m}
		m.files[name] = f
	}
	if flag&os.O_TRUNC != 0 {
		f.b = nil
	}
	return f, nil
}

func (m *memFS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for p := range m.files {
		if filepath.Dir(p) == dir {
			names = append(names, filepath.Base(p))
		}
	}
	slices.Sort(names)
	return names, nil
}

func (m *memFS) MkdirAll(string, os.FileMode) error { return nil }
func (m *memFS) SyncDir(string) error               { return nil }

func (m *memFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[newname] = m.files[oldname]
	delete(m.files, oldname)
	return nil
}

func (m *memFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, name)
	return nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off >= int64(len(f.b)) {
		return 0, io.EOF
	}
	n := copy(p, f.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(f.b)) {
		f.b = append(f.b, make([]byte, end-int64(len(f.b)))...)
	}
	return copy(f.b[off:], p), nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return int64(len(f.b)), nil
}

func (f *memFile) Datasync() error { return nil }
func (f *memFile) Close() error    { return nil }
