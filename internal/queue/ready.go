package queue

import "github.com/distq/distq/internal/state"

// readyIndex is the order in which a queue hands out its ready items. The
// items live in the queue's logged state (state.Queue), by id; the live
// master keeps only this index over them, so an item is never copied into
// a second structure and a settle finds it by id in O(1).
//
// New items of an ordinary queue come with increasing ids, into the state's
// window of consecutive ids: the index walks that window with a cursor and
// needs no entry per item. Everything else that becomes ready (an item
// handed back by an expired lease, a lost consumer or a release; a retry
// that is due; a requeued item; every item of a dead-letter queue, whose
// ids come in the order items fail) is named in redo, which is handed out
// first: items handed back go to its front, so they are redone before new
// ones, as the ready deque did; requeued items go to its back, still before
// new ones (the deque put them behind every item then ready).
type readyIndex struct {
	s *state.Queue
	// ordered: new items come with increasing ids (not a dead-letter
	// queue), and the cursor walks them.
	ordered bool
	// cursor is the next id the walk looks at: every item of the window
	// from there on is new, not yet taken in this run of the master.
	cursor uint64
	redo   idDeque
	n      int // ready items
}

func newReadyIndex(s *state.Queue, ordered bool) readyIndex {
	return readyIndex{s: s, ordered: ordered}
}

// len is the number of ready items.
func (r *readyIndex) len() int { return r.n }

// added counts n new items with the ids first, first+1, ..., which went
// into the state's window if inWindow. The walk meets them if they are in
// the window at or after the cursor, as items put in order are; otherwise
// they are named in redo.
//
// It is inlined: items put in order, as nearly all are, cost a count and
// a test.
func (r *readyIndex) added(first uint64, n int, inWindow bool) {
	r.n += n
	if r.ordered && first >= r.cursor && inWindow {
		return
	}
	r.addRedo(first, n)
}

// addRedo names the n items from first in redo (see added).
func (r *readyIndex) addRedo(first uint64, n int) {
	for i := range n {
		r.redo.pushBack(first + uint64(i))
	}
}

// pushFront makes the item id ready before every other: handed back. An
// item that the walk has yet to meet (a retry recovered from the log, which
// was handed out when due before the walk got to it) is left to the walk
// once its failure cleared its due time: named in redo as well, it would be
// handed out twice.
func (r *readyIndex) pushFront(id uint64) {
	r.n++
	if r.ordered && id >= r.cursor && r.s.InWindow(id) {
		if it := r.s.Item(id); it != nil && it.Due() == 0 {
			return // the walk will meet it
		}
	}
	r.redo.pushFront(id)
}

// pushBack makes the item id ready after the other items handed back, but
// before new items (requeued, or dead-lettered into a dead-letter queue).
func (r *readyIndex) pushBack(id uint64) {
	r.n++
	if r.ordered && id >= r.cursor && r.s.InWindow(id) {
		return // the walk will meet it
	}
	r.redo.pushBack(id)
}

// take returns the next ready item and counts it taken, or nil. The item
// stays in the state: the caller leases or settles it.
func (r *readyIndex) take() *state.Item {
	for r.redo.len() > 0 {
		if it := r.s.Item(r.redo.popFront()); it != nil {
			r.n--
			return it
		}
	}
	if !r.ordered {
		return nil
	}
	for it := r.s.NextFrom(r.cursor); it != nil; it = r.s.NextFrom(r.cursor) {
		r.cursor = it.ID + 1
		r.s.Pin(r.cursor)
		if it.Due() != 0 {
			// A retry recovered from the log: it waits in the delayed
			// heap, which names it in redo when it is due.
			continue
		}
		r.n--
		return it
	}
	return nil
}

// ascend calls fn with the ready items in the order take would hand them
// out, until fn returns false.
func (r *readyIndex) ascend(fn func(*state.Item) bool) {
	for i := range r.redo.len() {
		if it := r.s.Item(r.redo.at(i)); it != nil && !fn(it) {
			return
		}
	}
	if !r.ordered {
		return
	}
	for it := r.s.NextFrom(r.cursor); it != nil; it = r.s.NextFrom(it.ID + 1) {
		if it.Due() == 0 && !fn(it) {
			return
		}
	}
}

// removeRedo takes out of redo the ids for which drop is true and returns
// them, in order. Only a dead-letter queue's items (all in redo) are taken
// out this way: by a requeue.
func (r *readyIndex) removeRedo(drop func(id uint64) bool) []uint64 {
	var out []uint64
	var keep idDeque
	for i := range r.redo.len() {
		id := r.redo.at(i)
		if drop(id) {
			out = append(out, id)
		} else {
			keep.pushBack(id)
		}
	}
	r.redo = keep
	r.n -= len(out)
	return out
}

// rebuild indexes a state recovered from the log: every item is ready,
// in id order, but the retries that wait, which it hands to delayed. The
// walk starts at the front of the window; items outside it are named in
// redo.
func (r *readyIndex) rebuild(delayed func(*state.Item)) {
	r.redo = idDeque{}
	r.n = 0
	r.cursor = 0
	walk := false
	r.s.Ascend(func(it *state.Item) bool {
		if !walk && r.ordered && r.s.InWindow(it.ID) {
			r.cursor, walk = it.ID, true
		}
		if it.Due() != 0 {
			delayed(it)
			return true
		}
		r.n++
		if !r.ordered || !r.s.InWindow(it.ID) || it.ID < r.cursor {
			r.redo.pushBack(it.ID)
		}
		return true
	})
	if r.ordered && !walk {
		r.cursor = r.s.NextID() + 1
	}
	r.s.Pin(r.cursor)
}
