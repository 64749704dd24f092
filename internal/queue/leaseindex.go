package queue

// The lease index finds a lease in flight by its lease id, which is how
// every settle names it, without hashing. (It replaced a map from item id
// to lease, whose assign, access and delete on every delivery and settle
// took a quarter of the master's CPU.)
//
// Lease ids are given out in increasing order, so the leases in flight are
// kept in a sliding window: a ring of slots for the consecutive lease ids
// winBase, winBase+1, ..., nextLease. A delivery appends its lease at the
// back; a settle clears its slot, and the window's front moves past cleared
// slots, so that its front slot always holds a lease (amortised O(1)).
//
// A lease that stays in flight long (an extended one, say) would hold the
// front back and let the window grow with every delivery made since. So
// when the window is much longer than the leases it holds, its oldest
// leases move to the overflow map, keyed by lease id, and the front moves
// on: the window stays within winFactor times the leases in it plus winSlack, and
// only those few long-lived leases are settled through a map.

// The window may grow to winFactor times its leases plus winSlack before
// its oldest leases move to the overflow map. Consumers settle at their own
// pace, so the window holds holes between the leases of a slow and a fast
// one; a generous bound keeps those settles off the map (8 bytes a slot).
const (
	winFactor = 8
	winSlack  = 16384
)

// minWin is the smallest ring the window keeps once it has one.
const minWin = 64

// winSlot returns the ring slot of the window's i-th slot from the front.
func (q *Queue) winSlot(i int) **lease {
	return &q.win[(q.winHead+i)&(len(q.win)-1)]
}

// leaseByID returns the lease in flight with lease id n, or nil.
func (q *Queue) leaseByID(n uint64) *lease {
	if d := n - q.winBase; d < uint64(q.winN) { // n < winBase wraps round
		return *q.winSlot(int(d))
	}
	return q.overflow[n] // nil map: nil
}

// winPush adds l, just given lease id nextLease, to the index.
func (q *Queue) winPush(l *lease) {
	if q.winN == len(q.win) {
		q.winResize(max(2*len(q.win), minWin))
	}
	*q.winSlot(q.winN) = l
	q.winN++
	q.nleased++
	if q.winN > winFactor*(q.nleased-len(q.overflow))+winSlack {
		q.winSpill()
	}
}

// winSpill moves the window's oldest leases to the overflow map until the
// window is short enough again for the leases in it.
func (q *Queue) winSpill() {
	for q.winN > 0 && q.winN > winFactor*(q.nleased-len(q.overflow))+winSlack {
		s := q.winSlot(0)
		if q.overflow == nil {
			q.overflow = make(map[uint64]*lease)
		}
		q.overflow[q.winBase] = *s
		*s = nil
		q.winHead = (q.winHead + 1) & (len(q.win) - 1)
		q.winBase++
		q.winN--
		q.winTrim()
	}
}

// winRemove takes l, which is in flight, out of the index.
func (q *Queue) winRemove(l *lease) {
	q.nleased--
	if d := l.lease - q.winBase; d < uint64(q.winN) {
		*q.winSlot(int(d)) = nil
		if d == 0 {
			q.winTrim()
		}
		return
	}
	delete(q.overflow, l.lease)
	if len(q.overflow) == 0 {
		q.overflow = nil // a map never shrinks: let it go
	}
}

// winTrim moves the window's front past cleared slots, and gives back most
// of a ring that has become much larger than the window.
func (q *Queue) winTrim() {
	mask := len(q.win) - 1
	for q.winN > 0 && q.win[q.winHead] == nil {
		q.winHead = (q.winHead + 1) & mask
		q.winBase++
		q.winN--
	}
	if len(q.win) > minWin && q.winN < len(q.win)/4 {
		q.winResize(len(q.win) / 2)
	}
}

// winResize moves the window to the start of a ring of size slots.
func (q *Queue) winResize(size int) {
	win := make([]*lease, size)
	for i := range q.winN {
		win[i] = *q.winSlot(i)
	}
	q.win, q.winHead = win, 0
}

// itemInFlight reports whether the item with that id is leased. It looks at
// every lease in flight: it serves only settles that are refused, to tell a
// stale lease of an item in flight again from an item not in flight.
func (q *Queue) itemInFlight(id uint64) bool {
	found := false
	q.eachInFlight(func(l *lease) bool {
		found = l.id == id
		return !found
	})
	return found
}

// eachInFlight calls fn with every lease in flight until fn returns false.
func (q *Queue) eachInFlight(fn func(*lease) bool) {
	for i := range q.winN {
		if l := *q.winSlot(i); l != nil && !fn(l) {
			return
		}
	}
	for _, l := range q.overflow {
		if !fn(l) {
			return
		}
	}
}

// flightCheck answers itemInFlight for the refused settles of one call. A
// slave that comes back after its leases expired sends a batch of settles
// that are all refused; a scan of the leases in flight for each of them,
// under the queue's lock, would cost O(in flight × batch) and stall the
// queue. So after a few scans it takes the ids in flight into a set, once,
// and the settles applied during the call take their items out of it.
type flightCheck struct {
	q     *Queue
	scans int
	ids   map[uint64]struct{}
}

// flightScans is how many refusals a call answers by scanning before it
// builds the set. Building it costs about as much as eight or nine scans
// (it allocates for every lease in flight), so a call with a few refusals
// is better off scanning.
const flightScans = 16

// inFlight reports whether item id is in flight, by a scan for the call's
// first flightScans refusals and by the set after.
func (f *flightCheck) inFlight(id uint64) bool {
	if f.ids == nil {
		if f.scans < flightScans {
			f.scans++
			return f.q.itemInFlight(id)
		}
		f.ids = make(map[uint64]struct{}, f.q.nleased)
		f.q.eachInFlight(func(l *lease) bool {
			f.ids[l.id] = struct{}{}
			return true
		})
	}
	_, ok := f.ids[id]
	return ok
}

// settled records that the call took item id out of flight.
func (f *flightCheck) settled(id uint64) {
	if f.ids != nil {
		delete(f.ids, id)
	}
}
