package wal

import (
	"errors"
	"io"
	"os"
	"slices"
)

// FS is the file system the log works through. The log never touches the
// disk another way (except the lock, which must be the kernel's own), so a
// test can put an FS in between that fails a write, an fdatasync or the
// creation of a segment, writes short, runs out of space, or crashes and
// keeps only what was synced (waltest.FS). Names are full paths.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// ReadDir returns the names of the entries of a directory, sorted.
	ReadDir(name string) ([]string, error)
	MkdirAll(name string, perm os.FileMode) error
	Rename(oldname, newname string) error
	Remove(name string) error
	// SyncDir makes the directory's entries durable (creations, renames and
	// removals in it), as fsync of the directory does.
	SyncDir(name string) error
}

// File is an open file of an FS.
type File interface {
	io.ReaderAt
	// WriteAt writes all of p or returns an error, as os.File does.
	io.WriterAt
	Size() (int64, error)
	// Datasync makes the file's data durable: fdatasync where the system
	// has it. The log writes only over blocks it wrote before (segments
	// are pre-written with zeros), so the size never changes and the
	// file's metadata need not be synced with it.
	Datasync() error
	Close() error
}

// OSFS is the operating system's file system.
type OSFS struct{}

var _ FS = OSFS{}

func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (OSFS) ReadDir(name string) ([]string, error) {
	ents, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names, nil
}

func (OSFS) MkdirAll(name string, perm os.FileMode) error { return os.MkdirAll(name, perm) }
func (OSFS) Rename(oldname, newname string) error         { return os.Rename(oldname, newname) }
func (OSFS) Remove(name string) error                     { return os.Remove(name) }

func (OSFS) SyncDir(name string) error {
	d, err := os.Open(name)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type osFile struct{ f *os.File }

func (f osFile) ReadAt(p []byte, off int64) (int, error)  { return f.f.ReadAt(p, off) }
func (f osFile) WriteAt(p []byte, off int64) (int, error) { return f.f.WriteAt(p, off) }
func (f osFile) Datasync() error                          { return datasync(f.f) }
func (f osFile) Close() error                             { return f.f.Close() }

func (f osFile) Size() (int64, error) {
	st, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// writeFull writes all of p at off. A WriterAt must return an error when it
// writes less, but a short write without one would leave a hole the log
// believes written, so it is turned into io.ErrShortWrite.
func writeFull(f File, p []byte, off int64) error {
	n, err := f.WriteAt(p, off)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return err
}

// readFull reads the whole file into buf, grown as needed.
func readFull(f File, buf []byte) ([]byte, error) {
	size, err := f.Size()
	if err != nil {
		return buf, err
	}
	n := int(size)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return buf, err
	}
	return buf, nil
}
