package distq

import (
	"sync"
	"time"

	pb "github.com/distq/distq/proto/distq/v1"
)

// renewals keeps the leases of the tasks one Consume stream holds, running
// or waiting in the pool's queue, so that a slow but live worker does not
// lose them to another. The stream's sender ticks every quarter lease and
// renews each task received or last renewed before the previous tick: a
// quarter lease ago or more, so a lease is renewed at the latest halfway
// through, by the worker's own clock. Counting ticks rather than comparing
// times makes a late tick (a loaded machine) renew what the tick before
// renewed, not skip it until the tick after.
//
// It keeps chunks, not tasks. The receiver hands the pool each batch in
// chunks, one goroutine's work each; a chunk's tasks arrive together, are
// renewed together, and are settled in order, so a chunk needs only the
// index of its first task not yet settled. Chunks are linked into one list,
// least recently renewed first. Every renewal is one lease long, so that is
// also deadline order: a tick takes the due chunks from the head and moves
// them to the tail, and a tick that finds nothing due looks at one chunk.
// Receiving a batch and settling part of a chunk take the mutex once each
// and do no work per task: fast tasks pay almost nothing. Only a tick that
// finds chunks due, held a quarter lease or more, visits their tasks. There
// is no timer per task.
type renewals struct {
	mu         sync.Mutex
	head, tail *heldChunk
	ticks      uint64        // ticks so far
	lease      time.Duration // the master's lease length; 0 until a delivery says
	maxHold    time.Duration // WorkerConfig.MaxHold; 0: no bound
	abandoned  int           // tasks let go at maxHold, not yet reported

	// marks are the few tasks renewed differently: held longer by their
	// handler's own Extend, or whose lease the master refused. A mark goes
	// when its task is settled.
	marks map[*Task]mark
	// refusals the master sent lately, by lease. A tick looks up the tasks
	// it renews among them; a refusal is kept for two ticks, long enough
	// for its task to come due, then forgotten: most are late acks'.
	refusals, refusalsBefore map[leaseKey]struct{}

	// known hands the sender the tick period once the first delivery with
	// a lease length arrives.
	known chan time.Duration
	now   func() time.Time // time.Now; a test's clock
}

type mark struct {
	until time.Time // the handler's own Extend holds the lease until then
	lost  bool      // the master refused to renew the lease
}

type leaseKey struct{ id, lease uint64 }

// heldChunk is one chunk of tasks handed to a pool goroutine.
type heldChunk struct {
	tasks      []*Task // tasks[from:] are held: not yet settled
	from       int
	prev, next *heldChunk
	at         uint64    // the tick count when received or last renewed
	received   time.Time // when received, for maxHold
	linked     bool
}

func newRenewals(maxHold time.Duration) *renewals {
	return &renewals{known: make(chan time.Duration, 1), now: time.Now, maxHold: maxHold}
}

// add starts renewing the chunks of a batch just received, whose leases
// last lease. A master that sends no lease length (an older one) leaves
// its tasks to Task.Extend.
func (r *renewals) add(chunks []heldChunk, lease time.Duration) {
	if lease <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease == 0 {
		// One lease length per master, and so per stream.
		r.lease = lease
		r.known <- max(lease/4, time.Microsecond)
	}
	for i := range chunks {
		r.push(&chunks[i])
	}
}

// settled stops renewing c.tasks[:upto], whose handlers have returned. The
// pool calls it before it hands their settles to the sender, which sends
// renewals itself: a renewal is then never sent after the settle of its
// task.
func (r *renewals) settled(c *heldChunk, upto int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.marks) > 0 {
		for _, t := range c.tasks[c.from:upto] {
			delete(r.marks, t)
		}
	}
	c.from = upto
	if c.from == len(c.tasks) && c.linked {
		r.unlink(c)
	}
}

// extended notes a handler's own Task.Extend for d, and returns the
// extension to ask for: never less than a lease (0), as a shorter one
// would run out before the next renewal. A hold longer than a lease is not
// cut short: renewals resume when less than a lease of it is left.
func (r *renewals) extended(t *Task, d time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease == 0 {
		return d // not renewing
	}
	m, marked := r.marks[t]
	switch {
	case m.lost:
		return d // refused anyway
	case d <= r.lease:
		if marked {
			delete(r.marks, t) // an earlier, longer hold is replaced
		}
		return 0
	}
	if r.marks == nil {
		r.marks = make(map[*Task]mark)
	}
	r.marks[t] = mark{until: r.now().Add(d)}
	return d
}

// refused notes settles the master refused: those that were renewals name
// leases that are lost, and renewing them again would only be refused
// again.
func (r *renewals) refused(rs []*pb.Refused) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease == 0 {
		return // renewing nothing yet: no refusal is a renewal's
	}
	if r.refusals == nil {
		r.refusals = make(map[leaseKey]struct{}, len(rs))
	}
	for _, x := range rs {
		r.refusals[leaseKey{x.GetId(), x.GetLease()}] = struct{}{}
	}
}

// due is a tick: it appends to out the tasks to renew now, and counts them
// as renewed. Chunks held for maxHold are let go instead: no longer
// renewed, their leases run out (takeAbandoned counts their tasks).
func (r *renewals) due(out []*Task) []*Task {
	r.mu.Lock()
	defer r.mu.Unlock()
	var now time.Time
	for c := r.head; c != nil && c.at < r.ticks; c = r.head {
		r.unlink(c)
		if r.maxHold > 0 {
			if now.IsZero() {
				now = r.now()
			}
			if now.Sub(c.received) >= r.maxHold {
				r.abandoned += len(c.tasks) - c.from
				continue
			}
		}
		r.push(c)
		for _, t := range c.tasks[c.from:] {
			if r.skip(t, &now) {
				continue
			}
			out = append(out, t)
		}
	}
	r.ticks++
	r.refusals, r.refusalsBefore = r.refusalsBefore, r.refusals
	clear(r.refusals)
	return out
}

// takeAbandoned returns how many tasks were let go at maxHold since the
// last call.
func (r *renewals) takeAbandoned() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.abandoned
	r.abandoned = 0
	return n
}

// skip reports whether a due task is not to be renewed: its lease was
// lost, or its handler holds it for more than a lease yet. Called with mu
// held; now is read once per tick, when first needed.
func (r *renewals) skip(t *Task, now *time.Time) bool {
	if len(r.refusals) > 0 || len(r.refusalsBefore) > 0 {
		k := leaseKey{t.ID, t.lease}
		_, lately := r.refusals[k]
		_, before := r.refusalsBefore[k]
		if lately || before {
			if r.marks == nil {
				r.marks = make(map[*Task]mark)
			}
			r.marks[t] = mark{lost: true}
			return true
		}
	}
	if len(r.marks) == 0 {
		return false
	}
	m, ok := r.marks[t]
	switch {
	case !ok:
		return false
	case m.lost:
		return true
	}
	if now.IsZero() {
		*now = r.now()
	}
	if m.until.Sub(*now) >= r.lease {
		return true
	}
	delete(r.marks, t) // the hold ends within a lease: renewals take over
	return false
}

// push links c at the tail, renewed at this tick. Called with mu held.
func (r *renewals) push(c *heldChunk) {
	c.at, c.linked = r.ticks, true
	c.prev, c.next = r.tail, nil
	if r.tail != nil {
		r.tail.next = c
	} else {
		r.head = c
	}
	r.tail = c
}

// unlink takes c out of the list. Called with mu held.
func (r *renewals) unlink(c *heldChunk) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		r.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		r.tail = c.prev
	}
	c.prev, c.next, c.linked = nil, nil, false
}
