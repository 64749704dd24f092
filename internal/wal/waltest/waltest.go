// Package waltest gives tests of the write-ahead log, and of what runs on
// it, a file system that fails on demand: a hook sees every operation
// before it runs and may fail it or make a write short; a capacity makes
// writes that grow files fail with ENOSPC, as a full disk does (writes
// over blocks a file already has still succeed, which is what the log's
// pre-written segments rely on); and Crash computes what a power loss
// would leave: the bytes of every file as of its last Datasync, plus an
// arbitrary selection of the writes since (each kept, dropped, cut short,
// or cut short and followed by garbage).
//
// Metadata operations (create, rename, remove) are taken as durable at
// once; the log syncs its directories after them, and the model does not
// test that.
package waltest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"github.com/distq/distq/internal/wal"
)

// Op names an operation of the file system.
type Op int

const (
	OpOpen Op = iota
	OpRead
	OpWrite
	OpDatasync
	OpSize
	OpRename
	OpRemove
	OpSyncDir
	OpMkdir
	OpReadDir
)

func (o Op) String() string {
	return [...]string{"open", "read", "write", "datasync", "size", "rename", "remove", "syncdir", "mkdir", "readdir"}[o]
}

// Call is an operation about to run.
type Call struct {
	Op      Op
	Name    string // the file (its current name) or directory
	NewName string // OpRename
	Off     int64  // OpRead, OpWrite
	Len     int    // OpRead, OpWrite
}

// ShortWrite, returned by a hook for an OpWrite, writes the first N bytes
// only and returns Err (a WriterAt that breaks its contract when Err is
// nil).
type ShortWrite struct {
	N   int
	Err error
}

func (s *ShortWrite) Error() string { return fmt.Sprintf("short write of %d bytes: %v", s.N, s.Err) }

// ErrCrashed is every operation's error after Crash.
var ErrCrashed = errors.New("waltest: the machine crashed")

// FS wraps the operating system's file system under root.
type FS struct {
	inner wal.FS
	root  string

	mu       sync.Mutex
	hook     func(Call) error
	capacity int64
	crashed  bool
	skipSync bool
	files    map[string]*track
	counts   [OpReadDir + 1]int
}

var _ wal.FS = (*FS)(nil)

// track is what a crash keeps of one file.
type track struct {
	path    string
	base    []byte // the content as of the last Datasync
	pending []write
}

type write struct {
	off int64
	b   []byte
}

// New returns a file system over the operating system's, with no faults;
// capacity is counted over the files under root.
func New(root string) *FS {
	return &FS{inner: wal.OSFS{}, root: root, capacity: -1, files: map[string]*track{}}
}

// SetHook sets the function called before every operation (nil: none). An
// error it returns fails the operation, which does not run (see
// ShortWrite). It runs without the FS's lock held, so it may block.
func (f *FS) SetHook(h func(Call) error) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

// SetCapacity bounds the bytes the files under root may take (< 0: no
// bound). A write that would grow the total past it fails with ENOSPC.
func (f *FS) SetCapacity(n int64) {
	f.mu.Lock()
	f.capacity = n
	f.mu.Unlock()
}

// SetSkipSync makes Datasync and SyncDir skip the system's sync (what a
// crash keeps is still tracked): for tests whose loops would otherwise
// spend their time waiting for the disk.
func (f *FS) SetSkipSync(skip bool) {
	f.mu.Lock()
	f.skipSync = skip
	f.mu.Unlock()
}

func (f *FS) skipping() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.skipSync
}

// Usage is the bytes the files under root take.
func (f *FS) Usage() int64 {
	var n int64
	_ = filepath.WalkDir(f.root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// Count is how many times op ran (or was attempted).
func (f *FS) Count(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op]
}

func (f *FS) before(c Call) error {
	f.mu.Lock()
	f.counts[c.Op]++
	crashed, hook := f.crashed, f.hook
	f.mu.Unlock()
	if crashed {
		return &os.PathError{Op: c.Op.String(), Path: c.Name, Err: ErrCrashed}
	}
	if hook != nil {
		return hook(c)
	}
	return nil
}

func pathErr(c Call, err error) error {
	var sw *ShortWrite
	if errors.As(err, &sw) {
		return err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &os.PathError{Op: c.Op.String(), Path: c.Name, Err: err}
}

func (f *FS) OpenFile(name string, flag int, perm os.FileMode) (wal.File, error) {
	c := Call{Op: OpOpen, Name: name}
	if err := f.before(c); err != nil {
		return nil, pathErr(c, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crashed {
		return nil, pathErr(c, ErrCrashed)
	}
	in, err := f.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	t := f.files[name]
	switch {
	case flag&os.O_TRUNC != 0:
		t = &track{path: name}
		f.files[name] = t
	case t == nil:
		// A file seen for the first time is taken as durable as it is.
		b, err := os.ReadFile(name)
		if err != nil {
			in.Close()
			return nil, err
		}
		t = &track{path: name, base: b}
		f.files[name] = t
	}
	return &file{fs: f, in: in, t: t}, nil
}

func (f *FS) ReadDir(name string) ([]string, error) {
	c := Call{Op: OpReadDir, Name: name}
	if err := f.before(c); err != nil {
		return nil, pathErr(c, err)
	}
	return f.inner.ReadDir(name)
}

func (f *FS) MkdirAll(name string, perm os.FileMode) error {
	c := Call{Op: OpMkdir, Name: name}
	if err := f.before(c); err != nil {
		return pathErr(c, err)
	}
	return f.inner.MkdirAll(name, perm)
}

func (f *FS) Rename(oldname, newname string) error {
	c := Call{Op: OpRename, Name: oldname, NewName: newname}
	if err := f.before(c); err != nil {
		return pathErr(c, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crashed {
		return pathErr(c, ErrCrashed)
	}
	if err := f.inner.Rename(oldname, newname); err != nil {
		return err
	}
	if t := f.files[oldname]; t != nil {
		delete(f.files, oldname)
		t.path = newname
		f.files[newname] = t
	} else {
		delete(f.files, newname)
	}
	return nil
}

func (f *FS) Remove(name string) error {
	c := Call{Op: OpRemove, Name: name}
	if err := f.before(c); err != nil {
		return pathErr(c, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crashed {
		return pathErr(c, ErrCrashed)
	}
	if err := f.inner.Remove(name); err != nil {
		return err
	}
	delete(f.files, name)
	return nil
}

func (f *FS) SyncDir(name string) error {
	c := Call{Op: OpSyncDir, Name: name}
	if err := f.before(c); err != nil {
		return pathErr(c, err)
	}
	if f.skipping() {
		return nil
	}
	return f.inner.SyncDir(name)
}

type file struct {
	fs *FS
	in wal.File
	t  *track
}

func (h *file) name() string {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return h.t.path
}

func (h *file) ReadAt(p []byte, off int64) (int, error) {
	c := Call{Op: OpRead, Name: h.name(), Off: off, Len: len(p)}
	if err := h.fs.before(c); err != nil {
		return 0, pathErr(c, err)
	}
	return h.in.ReadAt(p, off)
}

func (h *file) WriteAt(p []byte, off int64) (int, error) {
	c := Call{Op: OpWrite, Name: h.name(), Off: off, Len: len(p)}
	var short *ShortWrite
	if err := h.fs.before(c); err != nil {
		if !errors.As(err, &short) {
			return 0, pathErr(c, err)
		}
		p = p[:min(short.N, len(p))]
	}
	// Writes, syncs and the crash are atomic with one another: a write
	// either happened before the crash (and may be in its image) or fails.
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.fs.crashed {
		return 0, pathErr(c, ErrCrashed)
	}
	size, err := h.in.Size()
	if err != nil {
		return 0, err
	}
	if grow := off + int64(len(p)) - size; h.fs.capacity >= 0 && grow > 0 && h.fs.Usage()+grow > h.fs.capacity {
		return 0, &os.PathError{Op: "write", Path: c.Name, Err: syscall.ENOSPC}
	}
	n, err := h.in.WriteAt(p, off)
	if n > 0 {
		h.t.pending = append(h.t.pending, write{off: off, b: slices.Clone(p[:n])})
	}
	if err == nil && short != nil {
		err = short.Err
		if err != nil {
			err = pathErr(c, err)
		}
	}
	return n, err
}

func (h *file) Size() (int64, error) {
	c := Call{Op: OpSize, Name: h.name()}
	if err := h.fs.before(c); err != nil {
		return 0, pathErr(c, err)
	}
	return h.in.Size()
}

func (h *file) Datasync() error {
	c := Call{Op: OpDatasync, Name: h.name()}
	if err := h.fs.before(c); err != nil {
		return pathErr(c, err)
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.fs.crashed {
		return pathErr(c, ErrCrashed)
	}
	if !h.fs.skipSync {
		if err := h.in.Datasync(); err != nil {
			return err
		}
	}
	for _, w := range h.t.pending {
		h.t.base = apply(h.t.base, w.off, w.b)
	}
	h.t.pending = nil
	return nil
}

// Close closes the file, after a crash too (the descriptor is the
// process's, not the disk's).
func (h *file) Close() error { return h.in.Close() }

func apply(b []byte, off int64, p []byte) []byte {
	if end := off + int64(len(p)); end > int64(len(b)) {
		b = append(b, make([]byte, end-int64(len(b)))...)
	}
	copy(b[off:], p)
	return b
}

// Image is what a crash left on the disk: the content of every file the
// FS saw.
type Image map[string][]byte

// Crash stops the FS (every later operation fails with ErrCrashed) and
// returns what a power loss at this moment could leave, drawn with rng.
func (f *FS) Crash(rng *rand.Rand) Image {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashed = true
	img := Image{}
	for path, t := range f.files {
		b := slices.Clone(t.base)
		for _, w := range t.pending {
			switch rng.IntN(4) {
			case 0: // reached the disk
				b = apply(b, w.off, w.b)
			case 1: // did not
			case 2: // in part
				b = apply(b, w.off, w.b[:rng.IntN(len(w.b)+1)])
			case 3: // in part, the rest garbage
				g := slices.Clone(w.b)
				cut := rng.IntN(len(g) + 1)
				for i := cut; i < len(g); i++ {
					g[i] = byte(rng.Uint32())
				}
				b = apply(b, w.off, g)
			}
		}
		img[path] = b
	}
	return img
}

// Restore writes the image's files over the real ones.
func (img Image) Restore() error {
	for path, b := range img {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

var _ io.WriterAt = (*file)(nil)
