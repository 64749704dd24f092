// Package wal is the master's write-ahead log: records of opaque bytes in
// preallocated, recycled segment files, made durable by group commit (one
// writer, one fdatasync per group), recovered after a crash by telling a
// torn tail (cut, and reported) from damage in the middle (refused, naming
// the file and offset), and compacted by snapshot files that let whole
// segments go. It knows nothing about queues: the queue layer encodes its
// commands, appends them while it holds its own locks, and answers once
// they are durable. The design is docs/durable-design.md §3.
//
// Files in the data directory DIR:
//
//	DIR/LOCK      flock'ed while a process has the directory open
//	DIR/FORMAT    "distq-data 1"
//	DIR/wal/      <20-digit number>.seg, 64-byte header then frames
//	DIR/snap/     <20-digit start LSN>.snap (.tmp while written)
package wal

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// FsyncMode says when an appended record counts as durable.
type FsyncMode int

const (
	// FsyncAlways: once fdatasynced. An answer given survives a power loss.
	FsyncAlways FsyncMode = iota
	// FsyncInterval: once written to the file; fdatasync runs every
	// SyncInterval when anything was written. An answer given survives
	// kill -9 of the process, not a power loss of the machine.
	FsyncInterval
)

func (m FsyncMode) String() string {
	if m == FsyncInterval {
		return "interval"
	}
	return "always"
}

// ParseFsyncMode reads "always" or "interval".
func ParseFsyncMode(s string) (FsyncMode, error) {
	switch s {
	case "always":
		return FsyncAlways, nil
	case "interval":
		return FsyncInterval, nil
	}
	return 0, fmt.Errorf("fsync mode %q: want always or interval", s)
}

// Defaults of Options.
const (
	DefaultSegmentSize  = 32 << 20
	DefaultMaxRecord    = 8 << 20 // twice the master's default message size
	DefaultSyncInterval = 100 * time.Millisecond
)

// Options configure Open. The zero value is the default of every field.
type Options struct {
	// FS is the file system (default OSFS{}); tests put faults in it.
	FS FS
	// Logger receives the background jobs' events: a segment that cannot
	// be made, write failures and their end (default: none).
	Logger hclog.Logger
	// SegmentSize of new segments (default DefaultSegmentSize).
	SegmentSize int64
	// MaxRecord is the longest record (default DefaultMaxRecord). Recovery
	// reads a longer frame as damage, so it must never be lowered below a
	// length once written.
	MaxRecord int
	// Fsync says when a record is durable (default FsyncAlways).
	Fsync FsyncMode
	// SyncInterval is FsyncInterval's period (default DefaultSyncInterval).
	SyncInterval time.Duration
	// Salvage: recovery skips damaged records instead of refusing to start,
	// and reports what it lost (-salvage-log). A damaged snapshot is then
	// passed over for the one before it, if any is whole and the log still
	// covers it.
	Salvage bool
	// LockInfo is written into DIR/LOCK after "pid host started-at", for
	// the message a second process gets (e.g. "listening on :4000").
	LockInfo string
	// OnGroup, if set, is called by the writer goroutine after each group
	// it wrote (once per group, never per record), for metrics. It must
	// return quickly: the next group waits for it.
	OnGroup func(Group)
}

// Group describes one group the writer wrote: one write and, when
// Synced, one fdatasync.
type Group struct {
	Records  int           // frames in the group (callers' records and the idle no-op)
	Bytes    int           // their bytes
	Duration time.Duration // to write the group and, when Synced, fdatasync it
	Synced   bool          // fdatasynced within its turn (-fsync always)
}

func (o *Options) defaults() error {
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.MaxRecord == 0 {
		o.MaxRecord = DefaultMaxRecord
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	switch {
	case o.SegmentSize < 4096 || o.SegmentSize%8 != 0:
		return fmt.Errorf("segment size %d: at least 4096 and a multiple of 8", o.SegmentSize)
	case o.MaxRecord < 1 || int64(frameSize(o.MaxRecord)) > o.SegmentSize-segHeaderSize:
		return fmt.Errorf("max record %d: must fit a segment of %d bytes with its header", o.MaxRecord, o.SegmentSize)
	case o.Fsync != FsyncAlways && o.Fsync != FsyncInterval:
		return fmt.Errorf("fsync mode %d unknown", o.Fsync)
	case o.SyncInterval < 0:
		return fmt.Errorf("sync interval %v is negative", o.SyncInterval)
	}
	return nil
}

// formatLine is DIR/FORMAT's content.
const formatLine = "distq-data 1"

// Log is an open write-ahead log. Append, Admit, AdmitPut, Wait,
// WaitContext, Durable and Stats may be called from any goroutine.
type Log struct {
	dir, walDir, snapDir string
	fs                   FS
	opts                 Options
	log                  hclog.Logger
	lock                 *dirLock

	// The journal (journal.go), under mu.
	mu       sync.Mutex
	buf      []byte // frames appended since the writer took the last group
	spare    []byte // the other buffer
	bufReal  bool   // buf holds a caller's record
	next     uint64 // LSN of the next record
	synced   uint64 // last LSN fdatasynced: new frames carry it
	appended int64  // frame bytes appended since Open
	snapBase int64  // bytes of log since the snapshot before Open, minus appended at the last snapshot's start
	cur, nxt epoch  // the group being written, the one being gathered
	closing  bool
	stopped  bool  // the writer has stopped
	stopErr  error // why, if records were left unwritten
	syncReq  bool  // someone waits for a sync (waitSynced)
	syncedCh chan struct{}

	wake        chan struct{}
	closingCh   chan struct{}
	closingFlag atomic.Bool
	writerDone  chan struct{}
	durable     atomic.Uint64
	syncedA     atomic.Uint64

	w writer // the writer goroutine's own

	// Segments.
	segMu       sync.Mutex
	sealed      []*segment // full segments still needed, oldest first
	spares      []*segment // freed segments kept for the preparer
	ready       chan *segment
	prepNo      uint64   // number of the next segment to prepare (the preparer's)
	prepPending *segment // made, but its directory sync failed (the preparer's)
	prepWake    chan struct{}
	prepDone    chan struct{}
	stop        chan struct{}

	// Admission (admit.go).
	stateMu  sync.Mutex
	writeErr error
	prepErr  error
	adm      atomic.Pointer[admission]
	changed  chan struct{}

	snapMu     sync.Mutex
	snapActive bool

	stats     stats
	closeOnce sync.Once
	closeErr  error
}

type stats struct {
	groups, bytes, syncs, syncNanos, writeErrors atomic.Uint64
}

// Stats are counters since Open, for metrics.
type Stats struct {
	Groups      uint64        // groups written (a group is one write, and with FsyncAlways one fdatasync)
	Bytes       uint64        // frame bytes written
	Syncs       uint64        // fdatasync rounds
	SyncTime    time.Duration // spent in them
	WriteErrors uint64        // failed writes and syncs (each retried)
	Durable     uint64        // as Durable
	Synced      uint64        // last LSN fdatasynced
}

// Stats reads the counters; it takes no lock.
func (l *Log) Stats() Stats {
	return Stats{
		Groups:      l.stats.groups.Load(),
		Bytes:       l.stats.bytes.Load(),
		Syncs:       l.stats.syncs.Load(),
		SyncTime:    time.Duration(l.stats.syncNanos.Load()),
		WriteErrors: l.stats.writeErrors.Load(),
		Durable:     l.durable.Load(),
		Synced:      l.syncedA.Load(),
	}
}

// Open locks dir (created if missing), restores the newest valid snapshot
// by calling restore (not called when there is none), replays every record
// after the snapshot's start by calling replay in LSN order, and returns
// the log ready to append, with a report of what it found: the caller logs
// it (a torn tail cut, records lost to -salvage-log). restore and replay
// returning an error fail Open.
//
// Open refuses to start with a *DamageError when a record that may have
// been acknowledged cannot be read, a segment is missing, or the snapshot
// is damaged (unless Salvage); with a *LockedError when another process
// has dir open.
func Open(dir string, opts Options, restore func(*Snapshot) error, replay func(lsn uint64, body []byte) error) (*Log, *Recovery, error) {
	if err := opts.defaults(); err != nil {
		return nil, nil, err
	}
	fsys := opts.FS
	l := &Log{
		dir: dir, walDir: filepath.Join(dir, "wal"), snapDir: filepath.Join(dir, "snap"),
		fs: fsys, opts: opts, log: opts.Logger,
		wake: make(chan struct{}, 1), closingCh: make(chan struct{}), writerDone: make(chan struct{}),
		ready: make(chan *segment, readySegments), prepWake: make(chan struct{}, 1),
		prepDone: make(chan struct{}), stop: make(chan struct{}), changed: make(chan struct{}),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	lock, err := lockDir(dir, opts.LockInfo, time.Now())
	if err != nil {
		return nil, nil, err
	}
	l.lock = lock
	rep, err := l.open(restore, replay)
	if err != nil {
		l.closeFiles()
		_ = l.lock.unlock()
		return nil, nil, err
	}
	go l.preparer()
	go l.writer()
	return l, rep, nil
}

func (l *Log) open(restore func(*Snapshot) error, replay func(uint64, []byte) error) (*Recovery, error) {
	if err := l.checkFormat(); err != nil {
		return nil, err
	}
	for _, d := range []string{l.walDir, l.snapDir} {
		if err := l.fs.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	rep := &Recovery{}
	snap, err := l.loadSnapshot(rep)
	if err != nil {
		return nil, err
	}
	var start, end uint64
	if snap != nil {
		start, end = snap.Start, snap.End
		rep.Snapshot, rep.SnapshotFile = snap, snap.File
		if restore == nil {
			snap.Close()
			return nil, fmt.Errorf("%s: a snapshot to restore, and no restore function", snap.File)
		}
		err := restore(snap)
		snap.Close()
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", snap.File, err)
		}
	}
	r, err := recoverLog(l.fs, l.walDir, start, l.opts.MaxRecord, l.opts.Salvage, replay)
	if err != nil {
		return nil, err
	}
	if r.last < end {
		r.closeAll()
		return nil, &DamageError{File: rep.SnapshotFile, LSN: 0,
			Reason: fmt.Errorf("the snapshot holds records up to %d, and the log ends at %d: records it depends on are missing", end, r.last)}
	}
	rep.First, rep.Last, rep.Records, rep.Bytes = r.first, r.lastRec, r.records, r.bytes
	rep.Torn, rep.Lost = r.torn, r.lost
	rep.Next = r.last + 1

	// What was read is what the disk holds: a process killed in interval
	// mode may leave written, unsynced frames that a later power loss
	// would take; new frames must not claim them synced.
	if n := len(r.used); n > 0 {
		if err := r.used[n-1].f.Datasync(); err != nil {
			r.closeAll()
			return nil, err
		}
	}
	l.next = r.last + 1
	l.synced = r.last
	l.durable.Store(r.last)
	l.syncedA.Store(r.last)
	l.w.placed = r.last
	l.snapBase = -r.bytes
	if n := len(r.used); n > 0 {
		l.w.act = r.used[n-1]
		l.sealed = r.used[:n-1]
	}
	if err := l.adoptSpares(r); err != nil {
		r.closeAll()
		return nil, err
	}
	l.buf = make([]byte, 0, 64<<10)
	l.spare = make([]byte, 0, 64<<10)
	l.updateAdmission()
	return rep, nil
}

// adoptSpares deals with the segment files recovery did not use. Segment
// numbers must follow one another, so the next segments are numbered from
// the last used one: files already named so, whole, are taken as the
// ready segments they were; every other one is removed (keeping it under
// its number could collide with the numbers to come, and the preparer
// makes new ones in the background).
func (l *Log) adoptSpares(r *recovered) error {
	l.prepNo = 1
	if n := len(r.used); n > 0 {
		l.prepNo = r.used[n-1].no + 1
	}
	slices.SortFunc(r.spares, func(a, b *segment) int { return cmp.Compare(a.no, b.no) })
	removed := false
	for _, s := range r.spares {
		if s.no == l.prepNo && s.size == l.opts.SegmentSize && len(l.ready) < cap(l.ready) {
			s.recycled, s.off = true, 0
			l.ready <- s
			l.prepNo++
			continue
		}
		s.close()
		if err := l.fs.Remove(s.path); err != nil {
			return err
		}
		removed = true
	}
	r.spares = nil
	if removed {
		return l.fs.SyncDir(l.walDir)
	}
	return nil
}

// checkFormat reads DIR/FORMAT, or writes it in a new directory.
func (l *Log) checkFormat() error {
	path := filepath.Join(l.dir, "FORMAT")
	f, err := l.fs.OpenFile(path, os.O_RDONLY, 0)
	if err == nil {
		b, err := readFull(f, nil)
		f.Close()
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(string(b)); got != formatLine {
			return fmt.Errorf("data dir %s holds format %q; this master reads %q only (a newer master's data, or not a distq data dir)", l.dir, got, formatLine)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n != lockName && n != "FORMAT.tmp" {
			return fmt.Errorf("data dir %s is not empty and has no FORMAT file: it is not a distq data dir; choose an empty or new directory", l.dir)
		}
	}
	tmp := path + ".tmp"
	f, err = l.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = writeFull(f, []byte(formatLine+"\n"), 0)
	if err == nil {
		err = f.Datasync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.Rename(tmp, path)
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	return err
}

// Close writes and syncs what was appended, stops the background jobs,
// closes the files and releases the directory. If the log cannot be
// written at that moment it does not wait for the disk: the records not
// written are reported in the error (and their waiters get it).
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closing = true
		l.mu.Unlock()
		l.closingFlag.Store(true)
		close(l.closingCh)
		l.poke()
		<-l.writerDone
		close(l.stop)
		<-l.prepDone
		l.mu.Lock()
		l.closeErr = l.stopErr
		l.mu.Unlock()
		l.updateAdmission()
		l.closeFiles()
		if err := l.lock.unlock(); err != nil && l.closeErr == nil {
			l.closeErr = err
		}
	})
	return l.closeErr
}

// closeFiles closes every segment file the log holds.
func (l *Log) closeFiles() {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	for _, s := range l.sealed {
		s.close()
	}
	for _, s := range l.spares {
		s.close()
	}
	l.sealed, l.spares = nil, nil
	l.w.act.close()
	l.prepPending.close()
	for {
		select {
		case s := <-l.ready:
			s.close()
		default:
			return
		}
	}
}
