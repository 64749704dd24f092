package logbench

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"

	dqwal "github.com/distq/distq/internal/wal"
)

// walLog is the seglog engine: the master's own log (internal/wal), its
// journal and its segments, as the master runs them. Unless keep, it is
// compacted as the master will compact it: a snapshot (of nothing, here)
// once 64 MiB were logged since the last, which hands the segments before
// it back to the preparer, so the steady state writes over recycled
// segments and never makes new ones.
type walLog struct {
	l    *dqwal.Log
	cmds atomic.Uint64
	// serial: each batch is appended and waited for alone, under one
	// lock (the "a sync per batch"; the writer may still split a
	// batch it caught half appended).
	serial   bool
	serialMu sync.Mutex
	stop     chan struct{}
	wg       sync.WaitGroup
	err      atomic.Pointer[error]
}

// snapshotEvery is the log written between two snapshots (the master's
// threshold when its state is small).
const snapshotEvery = 64 << 20

func openMasterLog(dir string, keep bool, syncTime *Samples) (*walLog, error) {
	l, _, err := dqwal.Open(dir, dqwal.Options{FS: syncTimedFS{syncTime}}, nil, func(uint64, []byte) error { return nil })
	if err != nil {
		return nil, err
	}
	w := &walLog{l: l, stop: make(chan struct{})}
	if !keep {
		w.wg.Add(1)
		go w.compactor()
	}
	return w, nil
}

func (w *walLog) compactor() {
	defer w.wg.Done()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		if w.l.SizeSinceSnapshot() < snapshotEvery {
			continue
		}
		s, err := w.l.BeginSnapshot(w.l.LastLSN())
		if err == nil {
			if err = s.WriteChunk([]byte("logbench")); err == nil {
				err = s.Commit(context.Background(), w.l.LastLSN())
			} else {
				s.Abort()
			}
		}
		if err != nil {
			w.err.Store(&err)
			return
		}
	}
}

func (w *walLog) Append(body []byte, _ uint32) (uint64, error) {
	lsn, err := w.l.Append(body)
	if err == nil {
		w.cmds.Add(1)
	}
	return lsn, err
}

func (w *walLog) AppendBatch(bodies [][]byte, _ []uint32) (uint64, error) {
	if w.serial {
		w.serialMu.Lock()
		defer w.serialMu.Unlock()
	}
	var last uint64
	for _, b := range bodies {
		lsn, err := w.Append(b, 0)
		if err != nil {
			return 0, err
		}
		last = lsn
	}
	if w.serial {
		return last, w.l.WaitContext(context.Background(), last)
	}
	return last, nil
}

func (w *walLog) Wait(lsn uint64) error { return w.l.WaitContext(context.Background(), lsn) }

func (w *walLog) Close() error {
	close(w.stop)
	w.wg.Wait()
	err := w.l.Close()
	if p := w.err.Load(); p != nil && err == nil {
		err = *p
	}
	return err
}

func (w *walLog) counts() (groups, bytes, cmds uint64) {
	s := w.l.Stats()
	return s.Groups, s.Bytes, w.cmds.Load()
}

// syncTimedFS is the system's file system with every fdatasync timed.
type syncTimedFS struct{ syncTime *Samples }

func (t syncTimedFS) OpenFile(name string, flag int, perm os.FileMode) (dqwal.File, error) {
	f, err := dqwal.OSFS{}.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return syncTimedFile{File: f, syncTime: t.syncTime}, nil
}

func (syncTimedFS) ReadDir(name string) ([]string, error) { return dqwal.OSFS{}.ReadDir(name) }
func (syncTimedFS) MkdirAll(name string, perm os.FileMode) error {
	return dqwal.OSFS{}.MkdirAll(name, perm)
}
func (syncTimedFS) Rename(oldname, newname string) error {
	return dqwal.OSFS{}.Rename(oldname, newname)
}
func (syncTimedFS) Remove(name string) error  { return dqwal.OSFS{}.Remove(name) }
func (syncTimedFS) SyncDir(name string) error { return dqwal.OSFS{}.SyncDir(name) }

type syncTimedFile struct {
	dqwal.File
	syncTime *Samples
}

func (f syncTimedFile) Datasync() error {
	t0 := time.Now()
	err := f.File.Datasync()
	f.syncTime.Add(time.Since(t0))
	return err
}
