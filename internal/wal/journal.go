package wal

import (
	"context"
	"fmt"
	"time"
)

// The journal is the group commit of the design (§3.3). Callers append
// records under one mutex, each getting an LSN; nothing else happens in
// Append: no I/O, and no allocation once the buffers have grown to the
// load. One writer goroutine takes everything appended so far (the
// buffers are double: it swaps them), writes it as one group and
// fdatasyncs it; whatever arrives during that sync is the next group. So
// a group's size follows the load and the sync's latency, with no timer
// and no coalescing delay. Answers wait on Wait(lsn): one channel per
// group that has waiters, closed when the group is durable.

// epoch is one group's completion; ch is made only when someone waits.
type epoch struct {
	end uint64
	ch  chan struct{}
}

// closedChan is returned by Wait once the writer has stopped.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Append adds a record and returns its LSN. It does not wait: answers that
// promise durability wait with Wait or WaitContext. The caller appends
// while it holds its own locks, so that log order is apply order; Append
// is cheap enough for that. It fails only when the log is closed or the
// record is empty or too large: admission (Admit, AdmitPut) is checked by
// the caller before it applies a command, since a command applied must
// then be logged.
func (l *Log) Append(body []byte) (uint64, error) {
	if len(body) == 0 {
		return 0, ErrEmpty
	}
	if len(body) > l.opts.MaxRecord {
		return 0, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(body), l.opts.MaxRecord)
	}
	crc := bodyCRC(body)
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	lsn := l.next
	l.next++
	at := len(l.buf)
	l.buf = appendFrame(l.buf, body, crc, lsn, l.synced)
	l.appended += int64(len(l.buf) - at)
	l.bufReal = true
	l.mu.Unlock()
	l.poke()
	return lsn, nil
}

func (l *Log) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Durable is the last LSN that may be answered: fdatasynced with
// FsyncAlways, written to the file with FsyncInterval.
func (l *Log) Durable() uint64 { return l.durable.Load() }

// LastLSN is the last LSN handed out (by Append, or to the log's own
// no-op frames).
func (l *Log) LastLSN() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - 1
}

// Wait returns nil if lsn is durable, or else a channel closed once the
// group holding lsn is durable, or once the log has stopped (closed, or
// given up at Close): then Durable tells which. lsn must come from Append.
func (l *Log) Wait(lsn uint64) <-chan struct{} {
	if lsn <= l.durable.Load() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lsn <= l.durable.Load() {
		return nil
	}
	if l.stopped {
		return closedChan
	}
	if l.cur.end != 0 && lsn <= l.cur.end {
		if l.cur.ch == nil {
			l.cur.ch = make(chan struct{})
		}
		return l.cur.ch
	}
	if l.nxt.ch == nil {
		l.nxt.ch = make(chan struct{})
	}
	return l.nxt.ch
}

// WaitContext returns once lsn is durable (nil), the log has stopped
// without writing it (an error that is ErrClosed), or ctx ends. While the
// log cannot be written it does not return early: the writer retries, and
// the answer may still be given. If ctx ends meanwhile, the error wraps
// both ctx's and the write failure (ErrUnavailable), so the caller can say
// why.
func (l *Log) WaitContext(ctx context.Context, lsn uint64) error {
	for {
		ch := l.Wait(lsn)
		if ch == nil {
			return nil
		}
		select {
		case <-ch:
			if lsn <= l.durable.Load() {
				return nil
			}
			l.mu.Lock()
			stopped, err := l.stopped, l.stopErr
			l.mu.Unlock()
			if stopped {
				if err == nil {
					err = ErrClosed
				}
				return fmt.Errorf("record %d: %w", lsn, err)
			}
		case <-ctx.Done():
			if err := l.writeErrNow(); err != nil {
				return fmt.Errorf("%w: %w", ctx.Err(), err)
			}
			return ctx.Err()
		}
	}
}

// group is what the writer takes from the journal in one turn.
type group struct {
	frames []byte
	end    uint64 // LSN of its last frame
	real   bool   // holds a caller's record (not only the idle no-op)
}

// publishSynced records that every LSN up to lsn is fdatasynced: new
// frames carry it, and with FsyncAlways it may be answered.
func (l *Log) publishSynced(lsn uint64) {
	l.mu.Lock()
	l.synced = lsn
	l.syncReq = false
	ch := l.syncedCh
	l.syncedCh = nil
	l.mu.Unlock()
	l.syncedA.Store(lsn)
	if l.opts.Fsync == FsyncAlways {
		l.setDurable(lsn)
	}
	if ch != nil {
		close(ch)
	}
}

// setDurable raises the durable mark (only the writer stores it).
func (l *Log) setDurable(lsn uint64) {
	if lsn > l.durable.Load() {
		l.durable.Store(lsn)
	}
}

// waitSynced returns once lsn is fdatasynced, asking the writer for a sync
// if it must (in interval mode a snapshot cannot wait for the tick).
func (l *Log) waitSynced(ctx context.Context, lsn uint64) error {
	for {
		if l.syncedA.Load() >= lsn {
			return nil
		}
		l.mu.Lock()
		if l.stopped {
			err := l.stopErr
			l.mu.Unlock()
			if err == nil {
				err = ErrClosed
			}
			return err
		}
		if l.syncedCh == nil {
			l.syncedCh = make(chan struct{})
		}
		ch := l.syncedCh
		l.syncReq = true
		l.mu.Unlock()
		l.poke()
		select {
		case <-ch:
		case <-l.writerDone:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// writer is the one goroutine that writes the log.
func (l *Log) writer() {
	defer close(l.writerDone)
	var tick <-chan time.Time
	if l.opts.Fsync == FsyncInterval {
		t := time.NewTicker(l.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	tickDue := false
	for {
		l.mu.Lock()
		if len(l.buf) > 0 {
			g := group{frames: l.buf, end: l.next - 1, real: l.bufReal}
			l.buf, l.spare, l.bufReal = l.spare[:0], nil, false
			l.cur = epoch{end: g.end, ch: l.nxt.ch}
			l.nxt = epoch{}
			l.mu.Unlock()

			sync := g.real && l.opts.Fsync == FsyncAlways
			prev, t0 := l.w.placed, time.Now()
			ok := l.persist(g.frames, sync, g.real)
			l.stats.groups.Add(1)
			if ok && l.opts.OnGroup != nil {
				l.opts.OnGroup(Group{Records: int(g.end - prev), Bytes: len(g.frames), Duration: time.Since(t0), Synced: sync})
			}
			if ok && l.opts.Fsync == FsyncInterval {
				l.setDurable(l.w.placed)
			}
			l.mu.Lock()
			l.spare = g.frames[:0]
			ch := l.cur.ch
			l.cur = epoch{}
			l.mu.Unlock()
			if ch != nil {
				close(ch)
			}
			if !ok {
				return
			}
			continue
		}
		closing, syncReq := l.closing, l.syncReq
		if l.w.needNoop {
			// Idle after a sync: a no-op frame carries the synced mark, so
			// that damage to the last synced group is not read as a torn
			// tail (§3.5). It is written, not synced: the next group's
			// sync (or the kernel's writeback) takes it along, and a
			// sequential caller's next record does not wait behind it.
			l.w.needNoop = false
			l.buf = appendFrame(l.buf, nil, bodyCRC(nil), l.next, l.synced)
			l.next++
			l.mu.Unlock()
			continue
		}
		l.mu.Unlock()
		if len(l.w.unsynced) > 0 && (tickDue || syncReq || closing) {
			tickDue = false
			if !l.flush() {
				return
			}
			continue
		}
		if closing {
			l.stop1(nil)
			return
		}
		select {
		case <-l.wake:
		case <-tick:
			tickDue = true
		}
	}
}

// giveUp stops the writer at Close with records it could not write: their
// waiters get the error.
func (l *Log) giveUp(err error) {
	l.mu.Lock()
	first, last := l.durable.Load()+1, l.next-1
	l.mu.Unlock()
	l.stop1(fmt.Errorf("%w with records %d to %d not on disk: %w", ErrClosed, first, last, err))
}

// stop1 marks the writer stopped and wakes every waiter.
func (l *Log) stop1(err error) {
	l.mu.Lock()
	l.stopped, l.stopErr = true, err
	chs := []chan struct{}{l.cur.ch, l.nxt.ch, l.syncedCh}
	l.cur, l.nxt, l.syncedCh = epoch{}, epoch{}, nil
	l.mu.Unlock()
	for _, ch := range chs {
		if ch != nil {
			close(ch)
		}
	}
}
