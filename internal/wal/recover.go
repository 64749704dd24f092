package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Recovery (design §3.5). Segments are read in number order from the one
// holding the record after the snapshot's start; their numbers must follow
// one another and each base must be the LSN the one before ended at. At
// the first frame that cannot be read (its expected LSN e, file F, offset
// o) recovery scans on, at 8-byte steps through the rest of the log, for
// whole frames with an LSN from e on, and takes S, the largest synced mark
// of every frame read. If e <= S, a record that was synced, and so may
// have been answered, is broken: Open refuses with a *DamageError (or,
// with Salvage, skips to the next readable record and reports the loss).
// Otherwise the rest was never synced, so never answered: a torn tail. It
// is cut (zeroed, then synced) and reported.
//
// The rule trusts the last synced group when no later frame carries its
// mark: damage there reads as a torn tail, as in raft-wal and etcd. The
// writer narrows that window with a no-op frame whenever it goes idle.

// Recovery is what Open found, for the caller to log.
type Recovery struct {
	// Snapshot restored (nil when none): closed once restore returned;
	// its fields still describe it.
	Snapshot     *Snapshot
	SnapshotFile string
	// SkippedSnapshots: damaged snapshots passed over (Salvage only).
	SkippedSnapshots []error
	// First and Last are the LSNs of the first and last records replayed
	// (0 when none), Records how many, Bytes the log read after the
	// snapshot's start.
	First, Last uint64
	Records     int
	Bytes       int64
	// Next is the LSN the next record gets.
	Next uint64
	// Torn: a torn tail was cut.
	Torn *TornTail
	// Lost: records skipped by Salvage.
	Lost []LostRange
}

// TornTail describes a tail that was written and never synced, cut at
// recovery. None of it was acknowledged (with FsyncInterval, after a power
// loss rather than a crash of the process, records answered since the
// last sync may be among them).
type TornTail struct {
	File   string
	Offset int64
	// First is the first LSN not recovered; Last the largest LSN of a
	// whole frame found after the cut (First when none was).
	First, Last uint64
	Records     int   // whole records found after the cut
	Bytes       int64 // bytes cut that held data
}

func (t *TornTail) String() string {
	return fmt.Sprintf("dropped a torn tail at %s offset %d: records from %d (%d whole after the cut, up to %d), %d bytes; none was acknowledged",
		t.File, t.Offset, t.First, t.Records, t.Last, t.Bytes)
}

// LostRange is a run of records Salvage could not read.
type LostRange struct {
	File        string
	Offset      int64
	First, Last uint64
	Reason      error
}

func (r LostRange) String() string {
	return fmt.Sprintf("lost records %d to %d at %s offset %d: %v", r.First, r.Last, r.File, r.Offset, r.Reason)
}

var errSegHeader = errors.New("segment header unreadable")

// recovered is recoverLog's result.
type recovered struct {
	used    []*segment // oldest first; the last is the one to write, positioned at its end
	spares  []*segment // files to reuse: prepared and never used, obsolete, or cut
	last    uint64     // last LSN in the log (records and no-ops), or the start when none
	first   uint64
	lastRec uint64
	records int
	bytes   int64
	torn    *TornTail
	lost    []LostRange
}

func (r *recovered) closeAll() {
	for _, s := range r.used {
		s.close()
	}
	for _, s := range r.spares {
		s.close()
	}
}

type recoverer struct {
	fs        FS
	dir       string
	start     uint64
	max       int
	salvage   bool
	replay    func(uint64, []byte) error
	out       *recovered
	files     []*segment // every segment file, by number
	valid     []bool
	used      []*segment
	later     []*segment // files after the used ones, whose header is not theirs
	maxSynced uint64
	buf, buf2 []byte
}

// recoverLog reads the segments in dir from the one holding start+1,
// calling replay for each record after start.
func recoverLog(fsys FS, dir string, start uint64, max int, salvage bool, replay func(uint64, []byte) error) (out *recovered, err error) {
	r := &recoverer{fs: fsys, dir: dir, start: start, max: max, salvage: salvage, replay: replay,
		out: &recovered{last: start}}
	defer func() {
		if err != nil {
			for _, s := range r.files {
				s.close()
			}
			out = nil
		}
	}()
	if err := r.list(); err != nil {
		return nil, err
	}
	if err := r.pick(); err != nil {
		return nil, err
	}
	if len(r.used) == 0 {
		if err := r.noneUsed(); err != nil {
			return nil, err
		}
		return r.out, nil
	}
	if err := r.read(); err != nil {
		return nil, err
	}
	return r.out, nil
}

// list opens every segment file and reads its header.
func (r *recoverer) list() error {
	names, err := r.fs.ReadDir(r.dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		no, ok := parseSegName(name)
		if !ok {
			continue
		}
		path := filepath.Join(r.dir, name)
		f, err := r.fs.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		s := &segment{f: f, path: path, no: no}
		r.files = append(r.files, s)
		if s.size, err = f.Size(); err != nil {
			return err
		}
		var h [segHeaderSize]byte
		valid := false
		if s.size >= segHeaderSize {
			if _, err := f.ReadAt(h[:], 0); err != nil {
				return err
			}
			if hd, ok := readSegHeader(h[:]); ok && hd.no == no {
				valid = true
				s.base, s.recycled = hd.base, hd.flags&segRecycled != 0
			}
		}
		r.valid = append(r.valid, valid)
	}
	return nil
}

// pick finds the used segments: from the last one based at or before
// start+1, consecutive and with readable headers. The ones before are
// obsolete (the snapshot holds them); files after, whose header is not
// theirs, were prepared and never used, or their header never reached the
// disk: they are scanned for records all the same.
func (r *recoverer) pick() error {
	k := -1
	for i, s := range r.files {
		if r.valid[i] && s.base <= r.start+1 {
			k = i
		}
	}
	if k < 0 {
		for i, s := range r.files {
			if r.valid[i] {
				return &DamageError{File: s.path, LSN: r.start + 1,
					Reason: fmt.Errorf("the log begins at record %d; records %d to %d are missing", s.base, r.start+1, s.base-1)}
			}
		}
		r.later = r.files
		return nil
	}
	r.out.spares = append(r.out.spares, r.files[:k]...)
	j := k
	for j+1 < len(r.files) && r.valid[j+1] && r.files[j+1].no == r.files[j].no+1 {
		j++
	}
	r.used = r.files[k : j+1]
	rest := r.files[j+1:]
	for i, s := range rest {
		if !r.valid[j+1+i] {
			continue
		}
		if r.valid[j+1] {
			return &DamageError{File: s.path, Reason: fmt.Errorf("segment %d is missing before it", r.files[j].no+1)}
		}
		return &DamageError{File: rest[0].path, Reason: fmt.Errorf("%w, and %s after it is in use", errSegHeader, filepath.Base(s.path))}
	}
	r.later = rest
	return nil
}

// noneUsed: no segment is in use. The files there may still hold records
// whose segment header never reached the disk (torn) or was damaged.
func (r *recoverer) noneUsed() error {
	e := r.start + 1
	sc, err := r.scan(nil, -1, nil, 0, r.later, e)
	if err != nil {
		return err
	}
	if e <= sc.maxSynced {
		return &DamageError{File: sc.ackFile, LSN: e, Acked: sc.maxSynced, Reason: errSegHeader}
	}
	if sc.frames > 0 {
		r.out.torn = &TornTail{File: sc.firstFile, Offset: segHeaderSize, First: e, Last: max(e, sc.lastLSN), Records: sc.records, Bytes: sc.laterBytes}
		if err := r.zeroFiles(sc.withFrames); err != nil {
			return err
		}
	}
	r.out.spares = append(r.out.spares, r.later...)
	return nil
}

func (r *recoverer) load(s *segment, buf *[]byte) ([]byte, error) {
	b, err := readFull(s.f, *buf)
	*buf = b
	return b, err
}

// read replays the used segments.
func (r *recoverer) read() error {
	used := r.used
	e := used[0].base
	i, off := 0, int64(segHeaderSize)
	b, err := r.load(used[0], &r.buf)
	if err != nil {
		return err
	}
	for {
		s := used[i]
		f, bad := parseFrame(b[off:], r.max)
		if bad == nil && f.lsn != e {
			bad = fmt.Errorf("record %d where %d was expected", f.lsn, e)
		}
		if bad == nil {
			if err := r.take(s, off, f); err != nil {
				return err
			}
			e++
			off += int64(f.size)
			continue
		}
		// The end of a full segment: the next goes on from here.
		if i+1 < len(used) && used[i+1].base == e {
			s.last = e - 1
			i, off = i+1, segHeaderSize
			if b, err = r.load(used[i], &r.buf); err != nil {
				return err
			}
			continue
		}
		// Records the snapshot holds need not be read: go on at the first
		// one it does not, if it can be found.
		if e <= r.start {
			if p, ok, err := r.find(i, off, func(f frame) bool { return f.lsn == r.start+1 }); err != nil {
				return err
			} else if ok {
				if b, err = r.jump(&i, &off, p); err != nil {
					return err
				}
				e = r.start + 1
				continue
			}
			// No record after the snapshot's start can be read: the log
			// ends there, unless one of them was synced.
			e = r.start + 1
		}
		sc, err := r.scan(s, i, b, off, append(used[i+1:len(used):len(used)], r.later...), e)
		if err != nil {
			return err
		}
		acked := max(r.maxSynced, sc.maxSynced)
		if e <= acked {
			if !r.salvage {
				// The segment ends cleanly, and the records said synced are
				// in a file whose header is not its own: that header is
				// the damage.
				atEnd := errors.Is(bad, errZero) || int64(len(b))-off < frameHeader
				if atEnd && sc.ackInLater {
					return &DamageError{File: sc.ackFile, LSN: e, Acked: acked, Reason: errSegHeader}
				}
				return &DamageError{File: s.path, Offset: off, LSN: e, Acked: acked, Reason: bad}
			}
			if sc.next != nil {
				r.out.lost = append(r.out.lost, LostRange{File: s.path, Offset: off, First: e, Last: sc.next.lsn - 1, Reason: bad})
				for j := i; j < sc.next.i; j++ {
					used[j].last = used[j+1].base - 1
				}
				if b, err = r.jump(&i, &off, *sc.next); err != nil {
					return err
				}
				e = sc.next.lsn
				continue
			}
			// What was synced is only in files whose header is not
			// theirs: it cannot be read in order. Report it, and cut.
			r.out.lost = append(r.out.lost, LostRange{File: sc.ackFile, First: e, Last: sc.lastLSN, Reason: errSegHeader})
		}
		return r.end(i, off, e, b, sc)
	}
}

// take replays one frame.
func (r *recoverer) take(s *segment, off int64, f frame) error {
	if f.synced < f.lsn {
		r.maxSynced = max(r.maxSynced, f.synced)
	}
	r.out.last = f.lsn
	if f.lsn <= r.start {
		return nil
	}
	r.out.bytes += int64(f.size)
	if f.noop() {
		return nil
	}
	if err := r.replay(f.lsn, f.body); err != nil {
		return fmt.Errorf("replay of record %d (%s offset %d): %w", f.lsn, s.path, off, err)
	}
	if r.out.records == 0 {
		r.out.first = f.lsn
	}
	r.out.records++
	r.out.lastRec = f.lsn
	return nil
}

// pos is a frame's place among the used segments.
type pos struct {
	i   int
	off int64
	lsn uint64
}

func (r *recoverer) jump(i *int, off *int64, p pos) ([]byte, error) {
	*i, *off = p.i, p.off
	return r.load(r.used[p.i], &r.buf)
}

// find looks after (i, off), in the used segments, for a whole frame that
// satisfies ok.
func (r *recoverer) find(i int, off int64, ok func(frame) bool) (pos, bool, error) {
	for j := i; j < len(r.used); j++ {
		b, err := r.load(r.used[j], &r.buf2)
		if err != nil {
			return pos{}, false, err
		}
		from := int64(segHeaderSize)
		if j == i {
			from = off + 8
		}
		for p := from; p+frameHeader <= int64(len(b)); p += 8 {
			f, err := parseFrame(b[p:], r.max)
			if err == nil && ok(f) {
				return pos{i: j, off: p, lsn: f.lsn}, true, nil
			}
		}
	}
	return pos{}, false, nil
}

// scanSkip is the run of zeros a scan skips at once.
const scanSkip = 64 << 10

// scanned is what a scan found after the end of the readable log.
type scanned struct {
	frames, records int
	maxSynced       uint64
	lastLSN         uint64
	next            *pos   // the frame with the smallest LSN in a used segment
	ackFile         string // the first file holding a frame whose mark reaches e
	ackInLater      bool   // ... and that file's header is not its own
	firstFile       string
	firstEnd        int64 // end of the last frame found in the first buffer
	laterBytes      int64 // bytes of frames found in later files
	withFrames      []*segment
}

// scan walks the current segment cur (index ci among the used ones, or
// -1; its bytes b) from off+8, then each later file from its header on,
// at 8-byte steps, for whole frames with an LSN from e on. A frame found
// is stepped over whole, so frames inside a record's body are not
// counted.
func (r *recoverer) scan(cur *segment, ci int, b []byte, off int64, later []*segment, e uint64) (scanned, error) {
	var sc scanned
	walk := func(b []byte, from int64, s *segment, idx int, first bool) {
		found := false
		for p := from; p+frameHeader <= int64(len(b)); {
			lsn := frameLSN(b[p:])
			if lsn == 0 {
				// The unused rest of a segment is zeros: a block of them
				// is skipped at once, since no position whose LSN word
				// lies in it holds a frame. (Word by word, a restart on
				// three fresh segments of 32 MiB spent 0.15 s of CPU
				// here, and 5 to 17 s under the race detector.)
				if q := p + 8; q+scanSkip <= int64(len(b)) && bytes.Equal(b[q:q+scanSkip], zeroBlock[:scanSkip]) {
					p += scanSkip
					continue
				}
			}
			if lsn < e || lsn-e >= lsnWindow {
				p += 8
				continue
			}
			f, err := parseFrame(b[p:], r.max)
			if err != nil {
				p += 8
				continue
			}
			found = true
			sc.frames++
			if !f.noop() {
				sc.records++
			}
			if f.synced < f.lsn {
				sc.maxSynced = max(sc.maxSynced, f.synced)
				if f.synced >= e && sc.ackFile == "" {
					sc.ackFile, sc.ackInLater = s.path, idx < 0
				}
			}
			sc.lastLSN = max(sc.lastLSN, f.lsn)
			if sc.firstFile == "" {
				sc.firstFile = s.path
			}
			if idx >= 0 && (sc.next == nil || f.lsn < sc.next.lsn) {
				sc.next = &pos{i: idx, off: p, lsn: f.lsn}
			}
			end := p + int64(f.size)
			if first {
				sc.firstEnd = max(sc.firstEnd, end)
			} else {
				sc.laterBytes += int64(f.size)
			}
			p = end
		}
		if found && !first {
			sc.withFrames = append(sc.withFrames, s)
		}
	}
	if cur != nil {
		walk(b, off+8, cur, ci, true)
	}
	for _, s := range later {
		lb, err := r.load(s, &r.buf2)
		if err != nil {
			return sc, err
		}
		idx := -1
		for j, u := range r.used {
			if u == s {
				idx = j
			}
		}
		walk(lb, segHeaderSize, s, idx, false)
	}
	return sc, nil
}

// end closes the readable log at (used[i], off), expecting LSN e next:
// a clean end, or a torn tail to cut.
func (r *recoverer) end(i int, off int64, e uint64, b []byte, sc scanned) error {
	s := r.used[i]
	s.off = off
	dropped := r.used[i+1:]
	torn := sc.frames > 0 || len(dropped) > 0
	var dataEnd int64
	if s.recycled {
		// Stale frames of the segment's earlier life follow: only a new
		// frame, whole or with its header's LSN written, says a write
		// was torn. The frame at the cut can only be record e.
		dataEnd = max(off, sc.firstEnd)
		if off+frameHeader <= int64(len(b)) {
			if frameLSN(b[off:]) == e {
				torn = true
				dataEnd = max(dataEnd, min(off+int64(frameSize(min(frameLen(b[off:]), r.max))), int64(len(b))))
			}
		}
	} else {
		dataEnd = lastNonZero(b)
		torn = torn || dataEnd > off
	}
	r.out.used = r.used[:i+1]
	r.out.spares = append(r.out.spares, dropped...)
	r.out.spares = append(r.out.spares, r.later...)
	r.out.last = e - 1
	if !torn {
		return nil
	}
	r.out.torn = &TornTail{File: s.path, Offset: off, First: e, Last: max(e, sc.lastLSN),
		Records: sc.records, Bytes: max(dataEnd, off) - off + sc.laterBytes}
	// Cut: zero the rest of the segment, and whole files after it that
	// hold frames, so that no frame of the torn tail is read again (its
	// LSNs will be given to new records).
	for p := off; p < s.size; p += int64(len(zeroBlock)) {
		if err := writeFull(s.f, zeroBlock[:min(int64(len(zeroBlock)), s.size-p)], p); err != nil {
			return err
		}
	}
	if err := s.f.Datasync(); err != nil {
		return err
	}
	seen := map[*segment]bool{}
	var zero []*segment
	for _, t := range append(dropped[:len(dropped):len(dropped)], sc.withFrames...) {
		if !seen[t] {
			seen[t] = true
			zero = append(zero, t)
		}
	}
	return r.zeroFiles(zero)
}

// zeroFiles zeroes whole files (their header too: they become spares).
func (r *recoverer) zeroFiles(files []*segment) error {
	for _, t := range files {
		for p := int64(0); p < t.size; p += int64(len(zeroBlock)) {
			if err := writeFull(t.f, zeroBlock[:min(int64(len(zeroBlock)), t.size-p)], p); err != nil {
				return err
			}
		}
		if err := t.f.Datasync(); err != nil {
			return err
		}
	}
	return nil
}

// lastNonZero is the offset after the last byte of b that is not zero.
func lastNonZero(b []byte) int64 {
	n := len(b)
	for n > 0 {
		k := min(n, len(zeroBlock))
		if bytes.Equal(b[n-k:n], zeroBlock[:k]) {
			n -= k
			continue
		}
		for n > 0 && b[n-1] == 0 {
			n--
		}
		break
	}
	return int64(n)
}
