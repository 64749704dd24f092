package logbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// SegLog is a compact prototype of the design's segment log (§3.2, §3.5):
// frames of §3.1 in 32 MiB segments that a background preparer writes (or
// recycles) ahead of use, so that activating one costs no metadata sync; a
// frame never straddles segments; recovery tells a torn tail from damage in
// the middle by the frames' synced watermark. Group commit is the Journal's:
// SegLog is its Sink, one write and one fdatasync per group.
type SegLog struct {
	dir  string
	opt  SegLogOptions
	act  *segFile
	old  []*segFile // sealed, oldest first
	prep chan prepared
	ret  chan *segFile // sealed segments handed back for reuse
	stop chan struct{}
	wg   sync.WaitGroup
	// The preparer starts with the first segment the log needs, so that a
	// recovery that only reads writes nothing.
	started bool
	nextNo  uint64
}

// SegLogOptions tunes the prototype.
type SegLogOptions struct {
	SegmentSize int64 // default SegmentSize
	// Recycle > 0 keeps that many sealed segments and reuses older ones, as if
	// compaction had freed them (the throughput runs); 0 keeps everything.
	Recycle int
	// Spare segments written at open for the preparer to use first, as a
	// log in its steady state has (compaction hands segments back).
	Spare    int
	SyncTime *Samples
}

type segFile struct {
	f     *os.File
	no    uint64
	base  uint64
	off   int64
	path  string
	stale bool // recycled: stale frames of an earlier life follow the data
}

type prepared struct {
	f     *os.File
	no    uint64
	stale bool
	err   error
}

const (
	segHeader  = 64
	segMagic   = "DQWAL\x00\x00\x00"
	segVersion = 1
)

func segName(no uint64) string { return fmt.Sprintf("%020d.seg", no) }

// The segment header's flags.
const segRecycled = 1 // stale frames may follow the data: only a new frame proves a torn write

func putSegHeader(b []byte, no, base uint64, flags uint32) {
	clear(b[:segHeader])
	copy(b, segMagic)
	binary.LittleEndian.PutUint32(b[8:], segVersion)
	binary.LittleEndian.PutUint32(b[12:], flags)
	binary.LittleEndian.PutUint64(b[16:], no)
	binary.LittleEndian.PutUint64(b[24:], base)
	binary.LittleEndian.PutUint32(b[60:], bodyCRC(b[:60]))
}

// readSegHeader returns the segment's number, base LSN and flags; ok false
// if the header is not one of ours (a prepared segment not yet used, or
// damage).
func readSegHeader(b []byte) (no, base uint64, flags uint32, ok bool) {
	if len(b) < segHeader || string(b[:8]) != segMagic ||
		binary.LittleEndian.Uint32(b[8:]) != segVersion ||
		binary.LittleEndian.Uint32(b[60:]) != bodyCRC(b[:60]) {
		return 0, 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:]), binary.LittleEndian.Uint32(b[12:]), true
}

// DamageError is damage in the middle of the log: a frame that was synced,
// and so may have been acknowledged, cannot be read.
type DamageError struct {
	File   string
	Offset int64
	LSN    uint64 // the record expected there
	Acked  uint64 // records up to this LSN were synced
	Reason error
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("%s offset %d: %v in record %d (records up to %d were acknowledged after it); the log is damaged in the middle",
		e.File, e.Offset, e.Reason, e.LSN, e.Acked)
}

func (e *DamageError) Unwrap() error { return e.Reason }

// TornTail says what recovery cut: frames written but never synced.
type TornTail struct {
	File      string
	Offset    int64
	FirstLSN  uint64 // the first record dropped
	ValidLost int    // whole, valid frames after the cut (never synced)
}

// Recovered is what OpenSegLog found.
type Recovered struct {
	First, Last uint64 // LSNs replayed (0, 0 when empty)
	Records     int
	Torn        *TornTail
}

// OpenSegLog recovers the log in dir (created if empty), calling fn for every
// record in order, and returns it ready to append LSN Last+1.
func OpenSegLog(dir string, opt SegLogOptions, fn func(lsn uint64, body []byte) error) (*SegLog, Recovered, error) {
	if opt.SegmentSize == 0 {
		opt.SegmentSize = SegmentSize
	}
	l := &SegLog{dir: dir, opt: opt, prep: make(chan prepared, 1), ret: make(chan *segFile, 64), stop: make(chan struct{})}
	rec, used, nextNo, err := l.recover(fn)
	if err != nil {
		return nil, rec, err
	}
	if n := len(used); n > 0 {
		l.act = used[n-1]
		l.old = used[:n-1]
	}
	for i := 0; i < opt.Spare; i++ {
		p := filepath.Join(dir, fmt.Sprintf("spare-%d.tmp", i))
		f, err := prewrite(p, int(opt.SegmentSize))
		if err != nil {
			l.closeFiles()
			return nil, rec, err
		}
		l.ret <- &segFile{f: f, path: p}
	}
	l.nextNo = nextNo
	return l, rec, nil
}

// recover reads every used segment. It returns them oldest first, each
// positioned after its last good frame, and the number for the next segment.
func (l *SegLog) recover(fn func(uint64, []byte) error) (Recovered, []*segFile, uint64, error) {
	var rec Recovered
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return rec, nil, 0, err
	}
	var nos []uint64
	for _, e := range ents {
		if s, ok := strings.CutSuffix(e.Name(), ".seg"); ok {
			if no, err := strconv.ParseUint(s, 10, 64); err == nil {
				nos = append(nos, no)
			}
		}
	}
	slices.Sort(nos)
	var used []*segFile
	var unused []string
	closeAll := func() {
		for _, s := range used {
			s.f.Close()
		}
	}
	nextNo := uint64(1)
	for _, no := range nos {
		nextNo = no + 1
		p := filepath.Join(l.dir, segName(no))
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			closeAll()
			return rec, nil, 0, err
		}
		var h [segHeader]byte
		_, err = f.ReadAt(h[:], 0)
		hno, base, flags, ok := readSegHeader(h[:])
		if err != nil || !ok || hno != no {
			// Prepared and never used: only the newest files may be so.
			f.Close()
			unused = append(unused, p)
			continue
		}
		if len(unused) > 0 {
			f.Close()
			closeAll()
			return rec, nil, 0, &DamageError{File: unused[0], Reason: errors.New("segment header unreadable before a used segment")}
		}
		if n := len(used); n > 0 && used[n-1].no+1 != no {
			f.Close()
			closeAll()
			return rec, nil, 0, &DamageError{File: p, Reason: fmt.Errorf("segment %d missing", used[n-1].no+1)}
		}
		used = append(used, &segFile{f: f, no: no, base: base, path: p, stale: flags&segRecycled != 0})
	}
	if len(used) == 0 {
		return rec, nil, nextNo, removeAll(unused)
	}
	expected := used[0].base
	rec.First = expected
	var synced uint64 // the largest synced watermark read
	var buf []byte
	for i := 0; i < len(used); i++ {
		s := used[i]
		if buf, err = readAll(s.f, buf); err != nil {
			closeAll()
			return rec, nil, 0, err
		}
		b := buf
		if s.base != expected {
			closeAll()
			return rec, nil, 0, &DamageError{File: s.path, Offset: 0, LSN: expected, Acked: synced,
				Reason: fmt.Errorf("segment starts at record %d", s.base)}
		}
		off := int64(segHeader)
		var bad error
		for {
			f, err := parseFrame(b[off:])
			if err == nil && f.lsn != expected {
				err = fmt.Errorf("record %d where %d was expected", f.lsn, expected)
			}
			if err != nil {
				bad = err
				break
			}
			if err := fn(f.lsn, f.body); err != nil {
				closeAll()
				return rec, nil, 0, fmt.Errorf("%s offset %d: record %d: %w", s.path, off, f.lsn, err)
			}
			synced = max(synced, f.synced)
			expected++
			rec.Records++
			off += int64(f.size)
		}
		s.off = off
		// The end of a sealed segment: the next one goes on from here.
		if i+1 < len(used) && used[i+1].base == expected {
			continue
		}
		// The end of the readable log: a torn tail, or damage in the middle?
		lostS, lostN, err := scanAfter(b, off, used[i+1:], expected)
		if err != nil {
			closeAll()
			return rec, nil, 0, err
		}
		synced = max(synced, lostS)
		if expected <= synced {
			closeAll()
			return rec, nil, 0, &DamageError{File: s.path, Offset: off, LSN: expected, Acked: synced, Reason: bad}
		}
		// Was anything written after the end? In a fresh segment, any byte
		// that is not zero says so. In a recycled one, stale bytes of its
		// earlier life follow the data: only a new frame, whole or with its
		// header's LSN written, does.
		torn := lostN > 0 || i+1 < len(used)
		if s.stale {
			lsn := binary.LittleEndian.Uint64(b[off+8:])
			torn = torn || (lsn >= expected && lsn <= expected+1<<40)
		} else {
			_, perr := parseFrame(b[off:])
			torn = torn || !errors.Is(perr, errZero)
		}
		if torn {
			rec.Torn = &TornTail{File: s.path, Offset: off, FirstLSN: expected, ValidLost: lostN}
			if err := cutTail(s, off, used[i+1:]); err != nil {
				closeAll()
				return rec, nil, 0, err
			}
			used = used[:i+1]
		}
		break
	}
	rec.Last = expected - 1
	if rec.Records == 0 {
		rec.First = 0
	}
	return rec, used, nextNo, removeAll(unused)
}

func removeAll(paths []string) error {
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

// readAll reads the whole file into buf (grown as needed).
func readAll(f *os.File, buf []byte) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return buf, err
	}
	n := int(st.Size())
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return buf, err
	}
	return buf, nil
}

// scanAfter looks at every 8-byte step after off in b, and in the later
// segments, for whole, valid frames with an LSN of at least from. It returns
// the largest synced watermark among them and how many it found.
func scanAfter(b []byte, off int64, later []*segFile, from uint64) (synced uint64, n int, err error) {
	scan := func(b []byte, start int64) {
		for p := start; p+frameHeader <= int64(len(b)); p += 8 {
			lsn := binary.LittleEndian.Uint64(b[p+8:])
			if lsn < from || lsn > from+1<<40 {
				continue
			}
			f, err := parseFrame(b[p:])
			if err != nil {
				continue
			}
			synced = max(synced, f.synced)
			n++
		}
	}
	scan(b, off+8)
	var buf []byte
	for _, s := range later {
		if buf, err = readAll(s.f, buf); err != nil {
			return 0, 0, err
		}
		scan(buf, segHeader)
	}
	return synced, n, nil
}

// cutTail zeroes s from off to its end and drops the headers of later
// segments (they hold only unsynced frames), then syncs.
func cutTail(s *segFile, off int64, later []*segFile) error {
	st, err := s.f.Stat()
	if err != nil {
		return err
	}
	zero := make([]byte, 1<<20)
	for p := off; p < st.Size(); p += int64(len(zero)) {
		if _, err := s.f.WriteAt(zero[:min(int64(len(zero)), st.Size()-p)], p); err != nil {
			return err
		}
	}
	if err := fdatasync(s.f, nil); err != nil {
		return err
	}
	for _, t := range later {
		if _, err := t.f.WriteAt(zero[:segHeader], 0); err != nil {
			return err
		}
		if err := fdatasync(t.f, nil); err != nil {
			return err
		}
		t.f.Close()
	}
	return nil
}

// preparer keeps one segment ready: a sealed one handed back for reuse
// (renamed), or a new one written with zeros; then it syncs the directory.
func (l *SegLog) preparer(no uint64) {
	defer l.wg.Done()
	for {
		var p prepared
		p.no = no
		path := filepath.Join(l.dir, segName(no))
		select {
		case s := <-l.ret:
			if err := os.Rename(s.path, path); err != nil {
				p.err = err
			}
			p.f, p.stale = s.f, s.stale
		default:
			p.f, p.err = prewrite(path, int(l.opt.SegmentSize))
		}
		if p.err == nil {
			p.err = syncDir(l.dir)
		}
		select {
		case l.prep <- p:
			no++
		case <-l.stop:
			if p.f != nil {
				p.f.Close()
			}
			return
		}
	}
}

// activate makes the next prepared segment the active one, based at lsn.
func (l *SegLog) activate(lsn uint64) error {
	if !l.started {
		l.started = true
		l.wg.Add(1)
		go l.preparer(l.nextNo)
	}
	p := <-l.prep
	if p.err != nil {
		return p.err
	}
	var h [segHeader]byte
	var flags uint32
	if p.stale {
		flags |= segRecycled
	}
	putSegHeader(h[:], p.no, lsn, flags)
	if _, err := p.f.WriteAt(h[:], 0); err != nil {
		return err
	}
	if l.act != nil {
		l.old = append(l.old, l.act)
		if l.opt.Recycle > 0 && len(l.old) > l.opt.Recycle {
			r := l.old[0]
			r.stale = true
			l.ret <- r
			l.old = l.old[1:]
		}
	}
	l.act = &segFile{f: p.f, no: p.no, base: lsn, off: segHeader, path: filepath.Join(l.dir, segName(p.no)), stale: p.stale}
	return nil
}

// Append writes the group's frames, splitting it at a frame boundary when the
// active segment is full, and fdatasyncs.
func (l *SegLog) Append(g *Group) error {
	b := g.Frames
	for len(b) > 0 {
		if l.act == nil {
			if err := l.activate(binary.LittleEndian.Uint64(b[8:])); err != nil {
				return err
			}
		}
		room := l.opt.SegmentSize - l.act.off
		n := 0
		for n < len(b) {
			sz := frameSize(int(binary.LittleEndian.Uint32(b[n:])))
			if int64(n+sz) > room {
				break
			}
			n += sz
		}
		if n > 0 {
			if _, err := l.act.f.WriteAt(b[:n], l.act.off); err != nil {
				return err
			}
			l.act.off += int64(n)
			b = b[n:]
		}
		if len(b) > 0 {
			if n == 0 && l.act.off == segHeader {
				return fmt.Errorf("a frame of %d bytes does not fit a segment", len(b))
			}
			if err := fdatasync(l.act.f, l.opt.SyncTime); err != nil {
				return err
			}
			if err := l.activate(binary.LittleEndian.Uint64(b[8:])); err != nil {
				return err
			}
		}
	}
	return fdatasync(l.act.f, l.opt.SyncTime)
}

// Close stops the preparer and closes the files.
func (l *SegLog) Close() error {
	close(l.stop)
	l.wg.Wait()
	select {
	case p := <-l.prep: // prepared, never used
		if p.f != nil {
			p.f.Close()
		}
	default:
	}
	return l.closeFiles()
}

func (l *SegLog) closeFiles() error {
	var first error
	for _, s := range append(l.old, l.act) {
		if s == nil {
			continue
		}
		if err := s.f.Close(); err != nil && first == nil && !errors.Is(err, os.ErrClosed) {
			first = err
		}
	}
	for {
		select {
		case s := <-l.ret:
			s.f.Close()
		default:
			return first
		}
	}
}

var _ io.Closer = (*SegLog)(nil)
