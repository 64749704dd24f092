package queue

import (
	"context"
	"slices"

	"github.com/distq/distq/internal/state"
)

// A delivery is handed out only once the record that made its item is
// durable, and the record that reserved its lease id: the log applies a
// change before it is on disk, and what a crash cuts off never happened.
// A reader could otherwise take a result whose record a crash then lost,
// see its task run again and get a second result; and an item or lease id
// handed out before its record was on disk could be given to another item
// or delivery after the restart. So every id a peer ever sees is on disk
// (a put's answer waits for Broker.Sync): ids never repeat across
// restarts.
//
// The wait costs nothing when the queue has a backlog, whose items were
// made long enough ago; a task put into an empty queue waits for the sync
// its put waits for too.

// addedRange is a run of ids a queue gained by one record, at lsn.
type addedRange struct {
	first, last uint64
	lsn         uint64
}

// noteAdded records that ids first, first+1, ... (n of them) were made by
// the record at lsn (0: not logged). Called with q.mu held, in the order
// the ids were given, so the list stays sorted by id and by LSN.
//
// It is inlined: the ids of an unlogged record (no journal) cost a test.
func (q *Queue) noteAdded(first uint64, n int, lsn uint64) {
	if lsn == 0 || n == 0 {
		return
	}
	q.addUnsynced(first, n, lsn)
}

// addUnsynced is noteAdded for a logged record. It is kept out of line so
// that noteAdded stays small enough to be inlined.
//
//go:noinline
func (q *Queue) addUnsynced(first uint64, n int, lsn uint64) {
	q.pruneUnsynced()
	q.unsynced = append(q.unsynced, addedRange{first: first, last: first + uint64(n) - 1, lsn: lsn})
}

// pruneUnsynced drops the ranges whose records are durable: the list
// holds at most what the log wrote since its last sync. Called with q.mu
// held.
func (q *Queue) pruneUnsynced() {
	d := q.b.j.Durable()
	i := 0
	for i < len(q.unsynced) && q.unsynced[i].lsn <= d {
		i++
	}
	if i == len(q.unsynced) {
		q.unsynced = q.unsynced[:0]
	} else {
		q.unsynced = q.unsynced[i:]
	}
}

// syncNeed is the LSN that must be durable before ds, just taken from q,
// may be handed out: the latest record that made one of their items, and
// the latest lease reservation if one of them is leased. Called with q.mu
// held.
// Inlined, it costs a broker without a journal a test.
func (q *Queue) syncNeed(ds []Delivery) uint64 {
	if q.b.j == nil || len(ds) == 0 {
		return 0
	}
	return q.logNeed(ds)
}

// logNeed is syncNeed with a journal.
func (q *Queue) logNeed(ds []Delivery) uint64 {
	var need, top uint64
	for i := range ds {
		top = max(top, ds[i].ID)
		if ds[i].Lease != 0 {
			need = q.b.leaseLSN.Load()
		}
	}
	return max(need, q.idsNeed(top))
}

// idsNeed is the latest LSN of the records not yet durable that made an
// item of id top or below (0: none). Called with q.mu held.
func (q *Queue) idsNeed(top uint64) uint64 {
	q.pruneUnsynced()
	// The ranges are in order of id and of LSN: the last one that begins
	// at or below the highest id has the latest record of any of them.
	k, _ := slices.BinarySearchFunc(q.unsynced, top+1, func(r addedRange, id uint64) int {
		if r.first < id {
			return -1
		}
		return 1
	})
	if k == 0 {
		return 0
	}
	return q.unsynced[k-1].lsn
}

// readyNeed is the LSN that must be durable before the n front ready
// items may be taken with auto-ack (see Queue.GetAppend), or 0 when they
// wait for nothing. Called with q.mu held.
func (q *Queue) readyNeed(n int) uint64 {
	if q.b.j == nil {
		return 0
	}
	if q.pruneUnsynced(); len(q.unsynced) == 0 {
		return 0 // the usual backlog: every record that made an item is durable
	}
	var top uint64
	q.ready.ascend(func(it *state.Item) bool {
		top = max(top, it.ID)
		n--
		return n > 0
	})
	return q.idsNeed(top)
}

// waitDurable returns once lsn (from syncNeed) is durable. Called without
// locks.
// Inlined, it costs a delivery that waits for nothing (no journal) a test.
func (b *Broker) waitDurable(ctx context.Context, lsn uint64) error {
	if lsn == 0 {
		return nil
	}
	return b.waitLog(ctx, lsn)
}

// waitLog is waitDurable for a logged record.
func (b *Broker) waitLog(ctx context.Context, lsn uint64) error {
	if lsn <= b.j.Durable() {
		return nil
	}
	if lsn == unloggedLSN {
		return errUnlogged
	}
	return b.j.WaitContext(ctx, lsn)
}
