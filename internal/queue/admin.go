package queue

import (
	"cmp"
	"slices"
	"time"

	"github.com/distq/distq/internal/state"
)

// An operator's commands: purging a queue, pausing and resuming its
// deliveries, and seeing its consumers. Purge and pause change logged
// state, so each is a command of internal/state applied under the queue's
// lock and recorded in the journal, as Close and Requeue are; the caller
// (the gRPC edge) waits for Broker.Sync before it answers.

// Purge throws away the items of the queue that are ready or delayed, and
// reports how many. Leased items stay: their consumers hold them, and
// settle them (or, should they fail, the items come back and a later
// purge takes them). On a dead-letter queue it throws away its dead items
// (those not leased by someone reading it). Nothing is dead-lettered:
// purged items are gone. It fails only when the master cannot log it.
func (q *Queue) Purge() (int, error) {
	now := q.b.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.ready.len() + len(q.delayed)
	if n == 0 {
		return 0, nil
	}
	if err := q.b.admit(); err != nil {
		return 0, err
	}
	// Taken as deliveries take them: the ready index then forgets them
	// and moves on exactly as it would for a delivery.
	ids := make([]uint64, 0, n)
	for it := q.ready.take(); it != nil; it = q.ready.take() {
		ids = append(ids, it.ID)
	}
	for _, d := range q.delayed {
		ids = append(ids, d.id)
	}
	q.delayed = nil
	// Sorted, the ids of a purge are a byte each in its record.
	slices.Sort(ids)
	for part := range slices.Chunk(ids, maxCmdItems) {
		cmd := state.Purge{Queue: q.name, Time: now, IDs: part}
		q.s.Purge(&cmd)
		q.record(&cmd)
	}
	q.st.PurgedTotal += uint64(len(ids))
	q.readyShrank() // blocked puts have room; Join may be done
	return len(ids), nil
}

// Pause stops the queue's deliveries: consumers and Gets wait, as on an
// empty queue, while puts, settles of what is leased, expiries and retries
// go on (an item that comes back waits, ready, for Resume). A paused queue
// that is closed and drained still ends its consumers. Pausing a paused
// queue changes nothing. It fails only when the master cannot log it; a
// durable master keeps the pause across restarts.
func (q *Queue) Pause() error { return q.setPaused(true) }

// Resume undoes Pause: the ready items go to the waiting consumers.
func (q *Queue) Resume() error { return q.setPaused(false) }

func (q *Queue) setPaused(paused bool) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.s.Paused() == paused {
		return nil
	}
	if err := q.b.admit(); err != nil {
		return err
	}
	cmd := state.Pause{Queue: q.name, Time: q.b.now(), Paused: paused}
	q.b.m.Apply(&cmd)
	q.record(&cmd)
	if !paused {
		q.readyGrew(q.ready.len())
	}
	return nil
}

// Paused reports whether the queue is paused.
func (q *Queue) Paused() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.s.Paused()
}

// ConsumerInfo is what an operator sees of one consumer (one Consume
// stream).
type ConsumerInfo struct {
	Queue string
	// Peer is the consumer's network address, as the edge gave it ("" for
	// a consumer in the master's own process).
	Peer string
	// Credit is how many more deliveries it may be sent now.
	Credit int
	// Held is how many items are leased to it.
	Held int
	// Delivered, Acked and Failed count its deliveries, its acks, and its
	// deliveries that failed (nacked for a retry or as dead, or their
	// lease ran out) since it connected. Items handed back untouched
	// (a release) are neither.
	Delivered, Acked, Failed uint64
	// Since is when it connected; LastSeen when its peer last sent
	// anything (a grant of credit, a settle), as the edge told (Touch).
	Since, LastSeen time.Time
}

// Consumers lists the queue's consumers, oldest first.
func (q *Queue) Consumers() []ConsumerInfo {
	type entry struct {
		seq uint64
		ConsumerInfo
	}
	q.mu.Lock()
	all := make([]entry, 0, len(q.consumers))
	for c := range q.consumers {
		all = append(all, entry{c.seq, ConsumerInfo{
			Queue:     q.name,
			Peer:      c.peer,
			Credit:    c.credit,
			Held:      c.nleased,
			Delivered: c.delivered,
			Acked:     c.acked,
			Failed:    c.failed,
			Since:     time.Unix(0, c.since),
			LastSeen:  time.Unix(0, c.lastSeen.Load()),
		}})
	}
	q.mu.Unlock()
	slices.SortFunc(all, func(a, b entry) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]ConsumerInfo, len(all))
	for i := range all {
		out[i] = all[i].ConsumerInfo
	}
	return out
}

// Touch records that the consumer's peer sent something at t. The edge
// calls it for every request of the stream: one atomic store, no lock.
func (c *Consumer) Touch(t time.Time) { c.lastSeen.Store(t.UnixNano()) }
