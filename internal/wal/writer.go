package wal

import (
	"errors"
	"time"
)

// The writer's I/O: it places groups of frames in segments, syncs them,
// and when a write or an fdatasync fails it keeps the bytes and writes them
// again at the same offsets, then syncs, with backoff, until that works
// (§3.6). After a failed fdatasync the kernel may have dropped the dirty
// pages (PostgreSQL's fsync lesson), so the bytes are rewritten from the
// log's own copy rather than trusted to the page cache. Nothing is
// answered meanwhile, nothing is written out of order, and admission
// refuses new commands, so memory runs ahead of the disk by what was
// already appended.

// Backoff of the rewrite loop (tests shorten them).
var (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// errGaveUp ends the retries: the log is closing.
var errGaveUp = errors.New("gave up at close")

// writer is the state only the writer goroutine touches.
type writer struct {
	act *segment
	// unsynced is every byte range written since the last successful
	// sync, in order: what a failure makes the writer write again.
	unsynced []extent
	// keep holds copies of groups not synced when their turn ends
	// (interval mode, and the idle no-op), since the journal reuses their
	// buffer. Extents point into it; append may move it, but the bytes an
	// extent points to are never written over before the next sync drops
	// them all.
	keep    []byte
	placed  uint64 // LSN of the last frame placed
	rewrite bool   // a write or sync failed: write every unsynced extent again first
	// realUnsynced: a caller's record was placed since the last sync; the
	// sync that covers it is followed by a no-op frame once idle.
	realUnsynced bool
	needNoop     bool
	failing      error // the failure being retried, for the log's messages
	failures     int
	failedAt     time.Time
}

type extent struct {
	s   *segment
	off int64
	b   []byte
}

// place writes frames after everything placed before. It records each
// extent before writing it, so after an error *rest holds what is left and
// a retry writes the recorded extents again, then goes on.
func (l *Log) place(rest *[]byte) error {
	w := &l.w
	for b := *rest; len(b) > 0; b = *rest {
		need := int64(frameSize(frameLen(b)))
		if w.act == nil || w.act.off+need > w.act.size {
			if w.act != nil {
				// Roll over: what is in the full segment is synced first.
				if err := l.syncAll(); err != nil {
					return err
				}
			}
			if err := l.activate(frameLSN(b)); err != nil {
				return err
			}
		}
		// As many whole frames as fit.
		n, last := 0, uint64(0)
		for room := w.act.size - w.act.off; n < len(b); {
			sz := frameSize(frameLen(b[n:]))
			if int64(n+sz) > room {
				break
			}
			last = frameLSN(b[n:])
			n += sz
		}
		e := extent{s: w.act, off: w.act.off, b: b[:n]}
		w.unsynced = append(w.unsynced, e)
		w.act.off += int64(n)
		w.placed = last
		*rest = b[n:]
		l.stats.bytes.Add(uint64(n))
		if err := writeFull(e.s.f, e.b, e.off); err != nil {
			return err
		}
	}
	return nil
}

// rewriteUnsynced writes every unsynced extent again, after a failure.
func (l *Log) rewriteUnsynced() error {
	for _, e := range l.w.unsynced {
		if err := writeFull(e.s.f, e.b, e.off); err != nil {
			return err
		}
	}
	return nil
}

// syncAll fdatasyncs every segment with unsynced extents, oldest first,
// then publishes the new synced mark. After a failure the caller writes
// the extents again first.
func (l *Log) syncAll() error {
	w := &l.w
	var last *segment
	t0 := time.Now()
	for _, e := range w.unsynced {
		if e.s == last {
			continue
		}
		last = e.s
		if err := e.s.f.Datasync(); err != nil {
			return err
		}
	}
	l.stats.syncs.Add(1)
	l.stats.syncNanos.Add(uint64(time.Since(t0)))
	clear(w.unsynced) // drop the references to buffers
	w.unsynced = w.unsynced[:0]
	w.keep = w.keep[:0]
	w.rewrite = false
	if w.realUnsynced {
		w.realUnsynced = false
		w.needNoop = true
	}
	l.publishSynced(w.placed)
	return nil
}

// persist writes one group and, if sync, fdatasyncs it, retrying until it
// is done; false if the log closed first.
func (l *Log) persist(frames []byte, sync, real bool) bool {
	w := &l.w
	if !sync {
		// Not synced within its turn: the journal will reuse the buffer.
		at := len(w.keep)
		w.keep = append(w.keep, frames...)
		frames = w.keep[at:]
	}
	if real {
		w.realUnsynced = true
	}
	rest := frames
	return l.retry(func() error {
		if w.rewrite {
			if err := l.rewriteUnsynced(); err != nil {
				return err
			}
		}
		if err := l.place(&rest); err != nil {
			return err
		}
		if sync || w.rewrite {
			return l.syncAll()
		}
		return nil
	})
}

// flush syncs what was written and not yet synced (interval mode's tick, a
// snapshot's request, Close).
func (l *Log) flush() bool {
	w := &l.w
	return l.retry(func() error {
		if w.rewrite {
			if err := l.rewriteUnsynced(); err != nil {
				return err
			}
		}
		return l.syncAll()
	})
}

// retry runs op until it succeeds, with backoff. While it fails, admission
// refuses every change with a *WriteError. It gives up (false) once the
// log is closing.
func (l *Log) retry(op func() error) bool {
	w := &l.w
	backoff := retryMin
	for {
		err := op()
		if err == nil {
			if w.failing != nil {
				l.log.Info("log writes work again; the records kept were rewritten and synced",
					"failures", w.failures, "after", time.Since(w.failedAt).Round(time.Millisecond))
				w.failing, w.failures = nil, 0
				l.setWriteErr(nil)
			}
			return true
		}
		if errors.Is(err, errGaveUp) {
			l.giveUp(err)
			return false
		}
		w.rewrite = true
		w.failures++
		l.stats.writeErrors.Add(1)
		if w.failing == nil || w.failing.Error() != err.Error() {
			if w.failing == nil {
				w.failedAt = time.Now()
			}
			w.failing = err
			l.setWriteErr(&WriteError{Dir: l.dir, Err: err})
			l.log.Error("log write failed; the records are kept and written again until it works; changes are refused meanwhile",
				"error", err, "retry_in", backoff)
		} else {
			l.log.Debug("log write failed again", "error", err, "failures", w.failures, "retry_in", backoff)
		}
		if l.closingFlag.Load() {
			l.giveUp(err)
			return false
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-l.closingCh:
			t.Stop()
		}
		backoff = min(2*backoff, retryMax)
	}
}
