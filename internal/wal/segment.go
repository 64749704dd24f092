package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A segment is DIR/wal/<20-digit number>.seg (design §3.2): a 64-byte
// header, then frames. Segments are pre-written with zeros (not
// fallocated: on ext4 the first write to a fallocated block converts an
// unwritten extent, and the fdatasync after it commits the file system's
// journal) or recycled, so the writer only ever overwrites blocks the file
// already has: an fdatasync then syncs data alone, and a write cannot fail
// for want of space. A frame never straddles two segments.
//
//	0       8         12        16       24         32          60        64
//	| magic | version | flags   | no u64 | base u64 | 0 …       | crc u32 |
//
// base is the LSN of the segment's first frame; recovery checks that
// segment numbers and bases follow one another. A recycled segment keeps
// the frames of its earlier life after the new ones; their LSNs are below
// its base, so they are never read as records.
const (
	segHeaderSize = 64
	segMagic      = "DQWAL\x00\x00\x00"
	segVersion    = 1
	// segRecycled: stale frames of an earlier life may follow the data, so
	// only a new frame (an LSN from the base on) proves a torn write.
	segRecycled = 1

	// readySegments is how many segments the preparer keeps ready: the
	// next one, and a reserve that lets settles go on (into the rest of
	// the active segment and the reserve) while puts are refused for want
	// of space (§3.6).
	readySegments = 2
	// maxSpares bounds the segments freed by compaction kept for reuse;
	// beyond them freed segments are deleted.
	maxSpares = 2
)

// prepareRetry is how long the preparer waits after a failure before it
// tries again (tests shorten it).
var prepareRetry = time.Second

// zeroBlock is written to make segments and to cut torn tails.
var zeroBlock [1 << 20]byte

func segName(no uint64) string { return fmt.Sprintf("%020d.seg", no) }

func parseSegName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(s) != 20 {
		return 0, false
	}
	no, err := strconv.ParseUint(s, 10, 64)
	return no, err == nil
}

type segHeader struct {
	no, base uint64
	flags    uint32
}

func putSegHeader(b []byte, h segHeader) {
	clear(b[:segHeaderSize])
	copy(b, segMagic)
	binary.LittleEndian.PutUint32(b[8:], segVersion)
	binary.LittleEndian.PutUint32(b[12:], h.flags)
	binary.LittleEndian.PutUint64(b[16:], h.no)
	binary.LittleEndian.PutUint64(b[24:], h.base)
	binary.LittleEndian.PutUint32(b[60:], bodyCRC(b[:60]))
}

// readSegHeader reads a header; ok is false if it is not one of ours (a
// segment prepared and never used, or damage).
func readSegHeader(b []byte) (h segHeader, ok bool) {
	if len(b) < segHeaderSize || string(b[:8]) != segMagic ||
		binary.LittleEndian.Uint32(b[8:]) != segVersion ||
		binary.LittleEndian.Uint32(b[60:]) != bodyCRC(b[:60]) {
		return h, false
	}
	return segHeader{
		no:    binary.LittleEndian.Uint64(b[16:]),
		base:  binary.LittleEndian.Uint64(b[24:]),
		flags: binary.LittleEndian.Uint32(b[12:]),
	}, true
}

// segment is an open segment file.
type segment struct {
	f        File
	path     string
	no       uint64
	base     uint64 // LSN of its first frame
	last     uint64 // LSN of its last frame, once sealed
	size     int64
	off      int64 // where the next frame goes (the writer's)
	recycled bool
	hdr      [segHeaderSize]byte // kept until synced: a failed write is rewritten from it
}

func (s *segment) close() {
	if s != nil && s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
}

// preparer keeps readySegments segments ready, numbered in turn, so that
// the writer activates one with a header write and no directory sync. It
// reuses a spare (a segment compaction freed, renamed) or writes a new one
// with zeros, fdatasyncs it and syncs the directory. When it fails (disk
// full), puts are refused until it succeeds again; it retries every
// prepareRetry, and at once when compaction hands it a spare.
func (l *Log) preparer() {
	defer close(l.prepDone)
	for {
		if len(l.ready) == cap(l.ready) {
			select {
			case <-l.prepWake:
				continue
			case <-l.stop:
				return
			}
		}
		s, err := l.prepare()
		if err == nil {
			l.ready <- s // never blocks: only the preparer sends, and there was room
			l.setPrepErr(nil)
			continue
		}
		if errors.Is(err, errStopped) {
			return
		}
		l.setPrepErr(err)
		t := time.NewTimer(prepareRetry)
		select {
		case <-t.C:
		case <-l.prepWake:
			t.Stop()
		case <-l.stop:
			t.Stop()
			return
		}
	}
}

var errStopped = errors.New("stopped")

// prepare makes segment l.prepNo.
func (l *Log) prepare() (*segment, error) {
	if s := l.prepPending; s != nil {
		// Renamed or written before, but the directory sync failed.
		if err := l.fs.SyncDir(l.walDir); err != nil {
			return nil, err
		}
		l.prepPending = nil
		l.prepNo++
		return s, nil
	}
	path := filepath.Join(l.walDir, segName(l.prepNo))
	if s := l.takeSpare(); s != nil {
		if err := l.fs.Rename(s.path, path); err != nil {
			l.recycle(s)
			return nil, err
		}
		s.path, s.no, s.off = path, l.prepNo, 0
		if err := l.fs.SyncDir(l.walDir); err != nil {
			l.prepPending = s
			return nil, err
		}
		l.prepNo++
		return s, nil
	}
	f, err := l.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*segment, error) {
		_ = f.Close()
		// A partial segment is removed, which gives its space back.
		_ = l.fs.Remove(path)
		return nil, err
	}
	size := l.opts.SegmentSize
	for off := int64(0); off < size; off += int64(len(zeroBlock)) {
		select {
		case <-l.stop:
			return fail(errStopped)
		default:
		}
		if err := writeFull(f, zeroBlock[:min(int64(len(zeroBlock)), size-off)], off); err != nil {
			return fail(err)
		}
	}
	if err := f.Datasync(); err != nil {
		return fail(err)
	}
	s := &segment{f: f, path: path, no: l.prepNo, size: size}
	if err := l.fs.SyncDir(l.walDir); err != nil {
		l.prepPending = s
		return nil, err
	}
	l.prepNo++
	return s, nil
}

// takeReady is the writer's: the next prepared segment, waiting for the
// preparer if it must. Once the log is closing it gives up if the
// preparer is failing.
func (l *Log) takeReady() (*segment, error) {
	closing := l.closingCh
	for {
		select {
		case s := <-l.ready:
			l.pokePrep()
			l.updateAdmission()
			return s, nil
		default:
		}
		changed := l.changedCh()
		if l.closingFlag.Load() {
			if err := l.prepErrNow(); err != nil {
				return nil, fmt.Errorf("%w: no segment to write to: %w", errGaveUp, err)
			}
		}
		select {
		case s := <-l.ready:
			l.pokePrep()
			l.updateAdmission()
			return s, nil
		case <-changed:
		case <-closing:
			closing = nil
		}
	}
}

func (l *Log) pokePrep() {
	select {
	case l.prepWake <- struct{}{}:
	default:
	}
}

// recycle keeps a segment no longer needed as a spare for the preparer, or
// deletes it when there are spares enough.
func (l *Log) recycle(s *segment) {
	l.segMu.Lock()
	keep := len(l.spares) < maxSpares && s.size == l.opts.SegmentSize && s.f != nil
	if keep {
		s.recycled = true
		l.spares = append(l.spares, s)
	}
	l.segMu.Unlock()
	if keep {
		l.pokePrep()
		return
	}
	s.close()
	_ = l.fs.Remove(s.path)
}

func (l *Log) takeSpare() *segment {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	n := len(l.spares)
	if n == 0 {
		return nil
	}
	s := l.spares[n-1]
	l.spares = l.spares[:n-1]
	return s
}

// activate makes the next prepared segment the one written, based at
// lsn. Everything before it is synced (the writer syncs before it rolls
// over), so a segment's header reaches the disk only after the whole of
// the segments before it: a used segment never follows one that is not.
func (l *Log) activate(lsn uint64) error {
	s, err := l.takeReady()
	if err != nil {
		return err
	}
	var flags uint32
	if s.recycled {
		flags |= segRecycled
	}
	s.base, s.off = lsn, segHeaderSize
	putSegHeader(s.hdr[:], segHeader{no: s.no, base: lsn, flags: flags})
	if old := l.w.act; old != nil {
		old.last = lsn - 1
		l.segMu.Lock()
		l.sealed = append(l.sealed, old)
		l.segMu.Unlock()
	}
	l.w.act = s
	l.w.unsynced = append(l.w.unsynced, extent{s: s, off: 0, b: s.hdr[:]})
	return writeFull(s.f, s.hdr[:], 0)
}
