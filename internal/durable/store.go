// Package durable keeps a master's queues on disk: it opens the data
// directory's write-ahead log (internal/wal), rebuilds the queues' logged
// state (internal/state) from its snapshot and records, serves the queue
// core as its Journal, and compacts the log with snapshots. The design is
// docs/durable-design.md.
package durable

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/state"
	"github.com/distq/distq/internal/wal"
)

// Config configures a Store.
type Config struct {
	// Dir is the data directory (master -data-dir). Required.
	Dir string
	// Fsync says when a change counts as durable: wal.FsyncAlways (an
	// answer survives a power loss) or wal.FsyncInterval (it survives the
	// master's crash, not the machine's).
	Fsync        wal.FsyncMode
	SyncInterval time.Duration // with FsyncInterval; default 100 ms
	// Salvage starts from what is readable of a log damaged in the middle,
	// instead of refusing to (master -salvage-log).
	Salvage bool
	// LockInfo goes into the directory's lock, for the message a second
	// master gets (e.g. "listening on :4000").
	LockInfo string
	// SnapshotEvery is how many bytes of log since the last snapshot make
	// the next one, at least as many as that snapshot's size. Default
	// 64 MiB.
	SnapshotEvery int64
	// FS, SegmentSize and MaxRecord are the log's (tests; default the
	// OS, 32 MiB, 8 MiB): a segment must hold the longest record, so
	// small segments need a smaller MaxRecord.
	FS          wal.FS
	SegmentSize int64
	MaxRecord   int
	// SnapshotCheck is how often the snapshot loop looks at the log's
	// size (tests; default 500 ms). With small segments and SnapshotEvery
	// a test shortens it, or the log grows by whatever it takes between
	// two looks.
	SnapshotCheck time.Duration
	Logger        hclog.Logger
	// OnGroup, if set, is told of each group the log writes (wal.Options.OnGroup).
	OnGroup func(wal.Group)
}

// DefaultSnapshotEvery is Config.SnapshotEvery's default.
const DefaultSnapshotEvery = 64 << 20

// Store is an open data directory.
type Store struct {
	cfg  Config
	log  hclog.Logger
	wal  *wal.Log
	m    *state.Machine
	rec  *wal.Recovery
	took time.Duration

	stop chan struct{}
	done chan struct{}
	// ctx ends at Close: a snapshot waiting for the log to sync its end
	// gives up then, rather than hold up Close (which waits for the
	// snapshot loop before it closes the log) on a failing disk.
	ctx      context.Context
	cancel   context.CancelFunc
	started  bool
	closeErr error
	once     sync.Once

	mu       sync.Mutex // guards what follows
	lastSnap int64      // bytes of the last snapshot
	snaps    int        // snapshots written
}

// Open locks the data directory and rebuilds the queues' logged state from
// it (an empty state for a new directory). A second master on the same
// directory is refused; so is a log damaged in the middle, unless
// Config.Salvage.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("no data directory given")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = DefaultSnapshotEvery
	}
	if cfg.SnapshotCheck <= 0 {
		cfg.SnapshotCheck = snapshotCheck
	}
	s := &Store{cfg: cfg, log: cfg.Logger, m: state.New(), stop: make(chan struct{}), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	begun := time.Now()
	restore := func(snap *wal.Snapshot) error {
		for {
			chunk, err := snap.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			// A fresh slice per chunk: the items may keep pointing into it.
			c, err := state.Decode(chunk)
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", snap.File, err)
			}
			s.m.Apply(c)
		}
	}
	dec := state.Decoder{Copy: true} // the log's read buffer is reused
	replay := func(lsn uint64, body []byte) error {
		c, err := dec.Decode(body)
		if err != nil {
			if cfg.Salvage {
				s.log.Error("log record unreadable; skipped (-salvage-log)", "lsn", lsn, "error", err)
				return nil
			}
			return fmt.Errorf("log record %d: %w; run with -salvage-log to skip it", lsn, err)
		}
		s.m.Apply(c)
		return nil
	}
	l, rec, err := wal.Open(cfg.Dir, wal.Options{
		FS:           cfg.FS,
		Logger:       cfg.Logger.Named("wal"),
		SegmentSize:  cfg.SegmentSize,
		MaxRecord:    cfg.MaxRecord,
		Fsync:        cfg.Fsync,
		SyncInterval: cfg.SyncInterval,
		Salvage:      cfg.Salvage,
		LockInfo:     cfg.LockInfo,
		OnGroup:      cfg.OnGroup,
	}, restore, replay)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.wal, s.rec, s.took = l, rec, time.Since(begun)
	if rec.Snapshot != nil {
		s.lastSnap = rec.Snapshot.Bytes
	}
	return s, nil
}

// State is the queues' logged state as recovered: the broker starts from
// it (queue.Config.State).
func (s *Store) State() *state.Machine { return s.m }

// Journal is the log as the queue core's journal (queue.Config.Journal).
func (s *Store) Journal() queue.Journal { return journal{s.wal} }

// Recovery says what Open read and cut.
func (s *Store) Recovery() *wal.Recovery { return s.rec }

// LogRecovery logs what Open found: what it restored, and a torn tail it
// cut or records it lost, which are warnings.
func (s *Store) LogRecovery() {
	r := s.rec
	items := 0
	for _, name := range s.m.Queues() {
		items += s.m.Queue(name).Len()
	}
	args := []any{"dir", s.cfg.Dir, "items", items, "records", r.Records, "log_bytes", r.Bytes, "took", s.took.Round(time.Millisecond)}
	if r.Snapshot != nil {
		args = append(args, "snapshot", r.SnapshotFile)
	}
	s.log.Info("data recovered", args...)
	if r.Torn != nil {
		s.log.Warn("log: dropped a torn tail, written but never synced (nothing acknowledged)", "tail", r.Torn.String())
	}
	for _, lost := range r.Lost {
		s.log.Error("log: records lost to damage (-salvage-log)", "lost", fmt.Sprint(lost))
	}
	for _, skipped := range r.SkippedSnapshots {
		s.log.Error("snapshot passed over (-salvage-log)", "error", skipped)
	}
}

// Start logs this run's start in the log and starts the loop that writes
// snapshots, once the broker serves from the store's state.
func (s *Store) Start(b *queue.Broker, incarnation uint64, version string) error {
	rec := state.AppendCommand(nil, &state.Start{Time: time.Now().UnixNano(), Incarnation: incarnation, Version: version})
	if _, err := s.wal.Append(rec); err != nil {
		return err
	}
	s.started = true
	go s.snapshotLoop(b)
	return nil
}

// snapshotCheck is how often the loop looks at the log's size by default
// (Config.SnapshotCheck).
const snapshotCheck = 500 * time.Millisecond

// snapshotLoop writes a snapshot whenever the log since the last one has
// grown past SnapshotEvery and the last snapshot's size: disk stays within
// about twice the state plus that much log, and writing costs at most
// twice the log's bytes.
func (s *Store) snapshotLoop(b *queue.Broker) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.SnapshotCheck)
	defer t.Stop()
	failed := false
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		due := max(s.cfg.SnapshotEvery, s.lastSnap)
		s.mu.Unlock()
		if s.wal.SizeSinceSnapshot() < due {
			continue
		}
		if err := s.Snapshot(b); err != nil {
			if s.ctx.Err() != nil {
				return // closing: not a failure to report
			}
			if !failed {
				s.log.Error("snapshot failed; the log is not compacted until one succeeds", "error", err)
			}
			failed = true
			continue
		}
		if failed {
			s.log.Info("snapshot written; the log is compacted again")
		}
		failed = false
	}
}

// Snapshot writes a snapshot of b's queues now and lets the log go of
// what it replaces.
func (s *Store) Snapshot(b *queue.Broker) error {
	begun := time.Now()
	sink := &snapSink{l: s.wal}
	end, err := b.Snapshot(sink)
	if err == nil {
		ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
		err = sink.w.Commit(ctx, end)
		cancel()
	} else if sink.w != nil {
		sink.w.Abort()
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.lastSnap = sink.bytes
	s.snaps++
	s.mu.Unlock()
	s.log.Debug("snapshot written", "start", sink.start, "end", end, "bytes", sink.bytes, "took", time.Since(begun).Round(time.Millisecond))
	return nil
}

// Snapshots is how many snapshots this store wrote.
func (s *Store) Snapshots() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snaps
}

// Stats are the log's counters.
func (s *Store) Stats() wal.Stats { return s.wal.Stats() }

// Close stops the snapshot loop and closes the log, once everything
// appended is on disk. Safe to call twice.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.stop)
		s.cancel()
		if s.started {
			<-s.done
		}
		s.closeErr = s.wal.Close()
	})
	return s.closeErr
}

// snapSink writes a queue.Broker snapshot into the log's snapshot file, a
// record per chunk.
type snapSink struct {
	l     *wal.Log
	w     *wal.SnapshotWriter
	start uint64
	bytes int64
}

func (k *snapSink) Begin(start uint64) error {
	w, err := k.l.BeginSnapshot(start)
	if err != nil {
		return err
	}
	k.w, k.start = w, start
	return nil
}

func (k *snapSink) Write(rec []byte) error {
	k.bytes += int64(len(rec))
	return k.w.WriteChunk(rec)
}
