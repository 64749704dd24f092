package wal

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Snapshot files (design §3.7, the file side): DIR/snap/<20-digit start
// LSN>.snap holds opaque chunks the caller produced, each with its own
// CRC32C, and a trailer with the counts and the end LSN. A snapshot is
// written as .tmp, and installed (renamed, the directory synced) only once
// every record up to its end LSN is fdatasynced: the caller's snapshot is
// fuzzy (taken while commands go on), so it may hold effects of records up
// to the end, and those must not be lost while the snapshot is kept. Once
// installed, the previous snapshot is removed and the segments whose
// records all precede the start are recycled or deleted. Restore reads the
// snapshot, then the log from start+1 (the caller's commands are
// idempotent, so records the snapshot already holds change nothing).
//
//	header  | magic "DQSNAP\0\0" | version u32 | flags u32 | start u64 | 0 u32 | crc u32 |   (32 bytes)
//	chunk   | len u32 | crc u32 = CRC32C(data || len) | data | 0-7 zero pad |
//	trailer | 0xFFFFFFFF | crc u32 = CRC32C(the 24 bytes after it || marker) | chunks u64 | bytes u64 | end u64 |
//
// A damaged snapshot cannot be torn (it is synced before it is installed),
// so it is damage of the medium: Open refuses to start, naming the file
// and offset. Only with Salvage does it fall back to the previous
// snapshot, which exists only if the crash came between installing the
// new one and removing it, and helps only if the log still covers it;
// otherwise the state the snapshot held is nowhere else, and guessing
// would lose it silently.

const (
	snapMagic      = "DQSNAP\x00\x00"
	snapVersion    = 1
	snapHeaderSize = 32
	snapTrailer    = 0xFFFFFFFF
	snapTrailerLen = 32
	// MaxChunk bounds a snapshot chunk; a longer length is damage.
	MaxChunk = 16 << 20
	// snapFlushAt is the write buffer of a snapshot being written.
	snapFlushAt = 1 << 20
)

func snapName(start uint64) string { return fmt.Sprintf("%020d.snap", start) }

func parseSnapName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, ".snap")
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func isSnapshotFile(path string) bool {
	return strings.HasSuffix(path, ".snap") || strings.HasSuffix(path, ".tmp")
}

// Snapshot reads a snapshot's chunks in order; Open verified them all
// before it called restore.
type Snapshot struct {
	File       string
	Start, End uint64 // the records it covers for sure, and may hold effects of
	Chunks     int
	Bytes      int64 // chunk data
	f          File
	r          *bufio.Reader
	off        int64
	read       int
}

// Next returns the next chunk, in a new slice the caller may keep, or
// io.EOF after the last.
func (s *Snapshot) Next() ([]byte, error) {
	if s.r == nil {
		return nil, ErrClosed
	}
	b, err := readChunk(s.r, s.File, s.off)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, io.EOF
	}
	s.off += int64(8 + pad8(len(b)))
	s.read++
	return b, nil
}

// Close releases the file.
func (s *Snapshot) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f, s.r = nil, nil
	return err
}

// readChunk reads the chunk at off (nil at the trailer), checking its CRC.
func readChunk(r *bufio.Reader, file string, off int64) ([]byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, snapDamage(file, off, err)
	}
	n := binary.LittleEndian.Uint32(h[0:])
	if n == snapTrailer {
		return nil, nil
	}
	if n > MaxChunk {
		return nil, snapDamage(file, off, fmt.Errorf("chunk length %d out of bounds", n))
	}
	b := make([]byte, pad8(int(n)))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, snapDamage(file, off, err)
	}
	b = b[:n]
	if crcUpdate(bodyCRC(b), h[0:4]) != binary.LittleEndian.Uint32(h[4:]) {
		return nil, snapDamage(file, off, errCRC)
	}
	return b, nil
}

func snapDamage(file string, off int64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = errors.New("file ends early")
	}
	return &DamageError{File: file, Offset: off, Reason: err}
}

// openSnapshot reads the whole snapshot at path, checking everything, and
// returns it positioned at its first chunk.
func openSnapshot(fsys FS, path string) (*Snapshot, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	s, err := verifySnapshot(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func verifySnapshot(f File, path string) (*Snapshot, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20)
	var h [snapHeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, snapDamage(path, 0, err)
	}
	if string(h[:8]) != snapMagic || binary.LittleEndian.Uint32(h[28:]) != bodyCRC(h[:28]) {
		return nil, snapDamage(path, 0, errors.New("not a snapshot header"))
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != snapVersion {
		return nil, snapDamage(path, 0, fmt.Errorf("snapshot version %d; this master reads %d", v, snapVersion))
	}
	s := &Snapshot{File: path, Start: binary.LittleEndian.Uint64(h[16:])}
	off := int64(snapHeaderSize)
	for {
		b, err := readChunk(r, path, off)
		if err != nil {
			return nil, err
		}
		if b == nil {
			break
		}
		s.Chunks++
		s.Bytes += int64(len(b))
		off += int64(8 + pad8(len(b)))
	}
	var t [snapTrailerLen]byte
	binary.LittleEndian.PutUint32(t[0:], snapTrailer)
	if _, err := io.ReadFull(r, t[8:]); err != nil {
		return nil, snapDamage(path, off, err)
	}
	if _, err := f.ReadAt(t[4:8], off+4); err != nil {
		return nil, snapDamage(path, off, err)
	}
	if crcUpdate(bodyCRC(t[8:]), t[0:4]) != binary.LittleEndian.Uint32(t[4:]) {
		return nil, snapDamage(path, off, errors.New("trailer checksum mismatch"))
	}
	if c, n := binary.LittleEndian.Uint64(t[8:]), binary.LittleEndian.Uint64(t[16:]); c != uint64(s.Chunks) || n != uint64(s.Bytes) {
		return nil, snapDamage(path, off, fmt.Errorf("trailer counts %d chunks of %d bytes, the file holds %d of %d", c, n, s.Chunks, s.Bytes))
	}
	s.End = binary.LittleEndian.Uint64(t[24:])
	if off+snapTrailerLen != size {
		return nil, snapDamage(path, off+snapTrailerLen, errors.New("bytes after the trailer"))
	}
	if s.End < s.Start {
		return nil, snapDamage(path, off, fmt.Errorf("end %d before start %d", s.End, s.Start))
	}
	s.f = f
	s.r = bufio.NewReaderSize(io.NewSectionReader(f, snapHeaderSize, size-snapHeaderSize), 1<<20)
	s.off = snapHeaderSize
	return s, nil
}

// loadSnapshot finds the newest valid snapshot (nil when none), removing
// abandoned .tmp files.
func (l *Log) loadSnapshot(rep *Recovery) (*Snapshot, error) {
	names, err := l.fs.ReadDir(l.snapDir)
	if err != nil {
		return nil, err
	}
	var snaps []string
	for _, n := range names {
		if strings.HasSuffix(n, ".tmp") {
			_ = l.fs.Remove(filepath.Join(l.snapDir, n))
			continue
		}
		if _, ok := parseSnapName(n); ok {
			snaps = append(snaps, n)
		}
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		s, err := openSnapshot(l.fs, filepath.Join(l.snapDir, snaps[i]))
		if err == nil {
			return s, nil
		}
		var de *DamageError
		if !errors.As(err, &de) || !l.opts.Salvage {
			return nil, err
		}
		rep.SkippedSnapshots = append(rep.SkippedSnapshots, err)
	}
	return nil, nil
}

// SnapshotWriter writes one snapshot. Its methods are for one goroutine.
type SnapshotWriter struct {
	l         *Log
	start     uint64
	f         File
	tmp, path string
	off       int64
	buf       []byte
	chunks    uint64
	bytes     uint64
	base      int64 // the log's appended bytes at the start
	done      bool
}

// BeginSnapshot starts a snapshot that holds the effects of every record
// up to start (the caller notes LastLSN before it starts copying its
// state). One snapshot is written at a time.
func (l *Log) BeginSnapshot(start uint64) (*SnapshotWriter, error) {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	if l.snapActive {
		return nil, errors.New("a snapshot is being written already")
	}
	l.mu.Lock()
	last, closing, base := l.next-1, l.closing, l.appended
	l.mu.Unlock()
	if closing {
		return nil, ErrClosed
	}
	if start > last {
		return nil, fmt.Errorf("snapshot start %d after the last record %d", start, last)
	}
	w := &SnapshotWriter{l: l, start: start, base: base,
		path: filepath.Join(l.snapDir, snapName(start)),
		tmp:  filepath.Join(l.snapDir, fmt.Sprintf("%020d.tmp", start)),
		buf:  make([]byte, snapHeaderSize, snapFlushAt+64<<10)}
	f, err := l.fs.OpenFile(w.tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	w.f = f
	copy(w.buf, snapMagic)
	binary.LittleEndian.PutUint32(w.buf[8:], snapVersion)
	binary.LittleEndian.PutUint64(w.buf[16:], start)
	binary.LittleEndian.PutUint32(w.buf[28:], bodyCRC(w.buf[:28]))
	l.snapActive = true
	return w, nil
}

// WriteChunk appends one chunk (about 64 KiB is a good size: each is
// checked on its own, and restore gets them back one by one).
func (w *SnapshotWriter) WriteChunk(b []byte) error {
	if w.done {
		return errors.New("snapshot already committed or aborted")
	}
	if len(b) > MaxChunk {
		return fmt.Errorf("snapshot chunk of %d bytes; at most %d", len(b), MaxChunk)
	}
	var h [8]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(b)))
	binary.LittleEndian.PutUint32(h[4:], crcUpdate(bodyCRC(b), h[0:4]))
	w.buf = append(w.buf, h[:]...)
	w.buf = append(w.buf, b...)
	w.buf = append(w.buf, zeros[:pad8(len(b))-len(b)]...)
	w.chunks++
	w.bytes += uint64(len(b))
	if len(w.buf) >= snapFlushAt {
		return w.flush()
	}
	return nil
}

func (w *SnapshotWriter) flush() error {
	if err := writeFull(w.f, w.buf, w.off); err != nil {
		return fmt.Errorf("snapshot %s: %w", w.tmp, err)
	}
	w.off += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// Commit finishes the snapshot: end is the log's LastLSN once the caller
// had copied its whole state (the snapshot may hold effects of records up
// to it). It waits until end is fdatasynced, syncs the file, installs it,
// then removes the previous snapshot and the segments it made useless. On
// error the snapshot is abandoned (its file removed) and the previous one
// stays in force.
func (w *SnapshotWriter) Commit(ctx context.Context, end uint64) (err error) {
	if w.done {
		return errors.New("snapshot already committed or aborted")
	}
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	if end < w.start {
		return fmt.Errorf("snapshot end %d before its start %d", end, w.start)
	}
	var t [snapTrailerLen]byte
	binary.LittleEndian.PutUint32(t[0:], snapTrailer)
	binary.LittleEndian.PutUint64(t[8:], w.chunks)
	binary.LittleEndian.PutUint64(t[16:], w.bytes)
	binary.LittleEndian.PutUint64(t[24:], end)
	binary.LittleEndian.PutUint32(t[4:], crcUpdate(bodyCRC(t[8:]), t[0:4]))
	w.buf = append(w.buf, t[:]...)
	if err := w.flush(); err != nil {
		return err
	}
	if err := w.l.waitSynced(ctx, end); err != nil {
		return fmt.Errorf("snapshot %s: waiting for record %d to be synced: %w", w.tmp, end, err)
	}
	if err := w.f.Datasync(); err != nil {
		return fmt.Errorf("snapshot %s: %w", w.tmp, err)
	}
	f := w.f
	w.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("snapshot %s: %w", w.tmp, err)
	}
	if err := w.l.fs.Rename(w.tmp, w.path); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := w.l.fs.SyncDir(w.l.snapDir); err != nil {
		// Installed or not, the previous snapshot and the segments are
		// still there: nothing is lost either way.
		w.tmp = w.path
		return fmt.Errorf("snapshot: %w", err)
	}
	w.done = true
	w.l.installed(w)
	return nil
}

// Abort abandons the snapshot and removes its file.
func (w *SnapshotWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
	_ = w.l.fs.Remove(w.tmp)
	w.l.snapMu.Lock()
	w.l.snapActive = false
	w.l.snapMu.Unlock()
}

// installed removes what the snapshot w made useless: the older snapshots
// and every segment whose records all precede its start.
func (l *Log) installed(w *SnapshotWriter) {
	if names, err := l.fs.ReadDir(l.snapDir); err == nil {
		for _, n := range names {
			if p := filepath.Join(l.snapDir, n); p != w.path && strings.HasSuffix(n, ".snap") {
				if err := l.fs.Remove(p); err != nil {
					l.log.Warn("cannot remove an old snapshot", "file", p, "error", err)
				}
			}
		}
	}
	l.segMu.Lock()
	var free []*segment
	keep := l.sealed[:0]
	for _, s := range l.sealed {
		if s.last <= w.start {
			free = append(free, s)
		} else {
			keep = append(keep, s)
		}
	}
	clear(l.sealed[len(keep):])
	l.sealed = keep
	l.segMu.Unlock()
	for _, s := range free {
		l.recycle(s)
	}
	if err := l.fs.SyncDir(l.walDir); err != nil {
		l.log.Warn("cannot sync the log directory after removing segments", "error", err)
	}
	l.mu.Lock()
	l.snapBase = w.base
	l.mu.Unlock()
	l.snapMu.Lock()
	l.snapActive = false
	l.snapMu.Unlock()
}

// SizeSinceSnapshot is the bytes of log written since the start of the
// last snapshot (since the log began, when there is none): the caller
// snapshots once it passes max(64 MiB, the last snapshot's size).
func (l *Log) SizeSinceSnapshot() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appended - l.snapBase
}
