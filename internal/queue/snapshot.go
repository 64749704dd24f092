package queue

import "github.com/distq/distq/internal/state"

// SnapshotSink receives a snapshot of the queues' logged state: records
// of internal/state that rebuild it, applied in order to an empty state
// and followed by the log's records after Begin's start.
type SnapshotSink interface {
	// Begin is called first, with the LSN of the last record whose effects
	// the snapshot surely holds: restoring it replays the log after it.
	Begin(start uint64) error
	// Write takes one record; the slice is reused after Write returns.
	Write(rec []byte) error
}

// Snapshot writes the queues' logged state to sink while the queues go
// on serving, and returns the journal's last LSN once it had read it all:
// the snapshot may hold effects of records up to there (the log must have
// them on disk before the snapshot replaces it). Each queue is locked for
// one chunk of items at a time (state.SnapshotChunk), and every queue at
// once only at the start, for their own small state: the producers
// (state.Machine.Snapshot says why), the ids given, whether closed, and the
// lease ids reserved. Replaying the log from the start over the items read
// later makes the snapshot exact, as every command is idempotent.
func (b *Broker) Snapshot(sink SnapshotSink) (end uint64, err error) {
	if b.j == nil {
		return 0, ErrInvalid
	}
	var recs [][]byte
	add := func(c state.Command) { recs = append(recs, state.AppendCommand(nil, c)) }
	all := append([]*Queue(nil), b.order...)
	lockQueues(all)
	b.leaseMu.Lock()
	start := b.j.LastLSN()
	add(&state.Leases{HW: b.m.LeaseHW()})
	for _, q := range b.order {
		add(&state.QueueMeta{Queue: q.name, Origin: q.s.Origin(), NextID: q.s.NextID(), Closed: q.s.Closed(), Paused: q.s.Paused()})
		ps := &state.Producers{Queue: q.name}
		q.s.Producers(func(r *state.ProducerRecord) bool {
			ps.Producers = append(ps.Producers, *r)
			if len(ps.Producers) == state.SnapshotChunk {
				add(ps)
				ps.Producers = ps.Producers[:0]
			}
			return true
		})
		if len(ps.Producers) > 0 {
			add(ps)
		}
	}
	b.leaseMu.Unlock()
	unlockQueues(all)
	if err := sink.Begin(start); err != nil {
		return 0, err
	}
	for _, rec := range recs {
		if err := sink.Write(rec); err != nil {
			return 0, err
		}
	}
	// Origins before their dead-letter queues: an item a Fail moves from
	// one to the other while they are read is then seen in one of them at
	// least, and the replay of the Fail finishes the move.
	var buf []byte
	chunk := &state.Items{}
	for _, dead := range []bool{false, true} {
		for _, q := range b.order {
			if q.IsDead() != dead {
				continue
			}
			chunk.Queue = q.name
			for from := uint64(0); ; {
				q.mu.Lock()
				chunk.Items = chunk.Items[:0]
				q.s.AscendFrom(from, func(it *state.Item) bool {
					chunk.Items = append(chunk.Items, *it)
					return len(chunk.Items) < state.SnapshotChunk
				})
				n := len(chunk.Items)
				if n > 0 {
					from = chunk.Items[n-1].ID + 1
					// Encoded before the lock goes: the items share
					// their extensions with the state.
					buf = state.AppendCommand(buf[:0], chunk)
				}
				clear(chunk.Items) // keeps no payload alive
				q.mu.Unlock()
				if n == 0 {
					break
				}
				if err := sink.Write(buf); err != nil {
					return 0, err
				}
			}
		}
	}
	return b.j.LastLSN(), nil
}

// ReleaseLeases ends every lease still held at a clean shutdown, once the
// consumers are gone: the items of unary Gets not yet settled are ready
// again, their attempt counted (and logged, so that a restart keeps it).
// It reports how many.
func (b *Broker) ReleaseLeases() int {
	now := b.now()
	total := 0
	for _, q := range b.order {
		q.mu.Lock()
		var fx effects
		n := 0
		for l := q.fifoHead; l != nil; l = q.fifoHead {
			id, attempt := q.unlease(l)
			q.giveBack(id, attempt, "master stopped")
			n++
			if len(q.failed) == maxCmdItems {
				q.fail(state.CauseShutdown, now, &fx)
			}
		}
		for l := q.leases.peek(); l != nil; l = q.leases.peek() {
			id, attempt := q.unlease(l)
			q.giveBack(id, attempt, "master stopped")
			n++
			if len(q.failed) == maxCmdItems {
				q.fail(state.CauseShutdown, now, &fx)
			}
		}
		q.fail(state.CauseShutdown, now, &fx)
		if n > 0 {
			q.checkDrained()
		}
		q.report(&fx)
		q.mu.Unlock()
		total += n
	}
	return total
}
