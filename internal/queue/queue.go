package queue

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distq/distq/internal/state"
)

// Message is what a producer puts: opaque bytes and optional headers. The
// queue keeps the slices it is given; callers must not modify them after.
// It is the logged state's new item, so a put's messages go into the log's
// command as they are.
type Message = state.NewItem

// Delivery is one item handed out under one lease.
type Delivery struct {
	ID      uint64
	Lease   uint64 // names this delivery; 0 for items taken with auto-ack
	Attempt uint32
	Payload []byte
	Headers map[string]string
	// ReplyTo is the id of the acknowledged item this reply was put for.
	ReplyTo uint64
	// Error is the last error of a dead or retried item.
	Error string
	// Deadline is when the lease runs out (zero when not leased).
	Deadline time.Time
}

// deliver makes the delivery of item it under lease l (nil: taken with
// auto-ack) as its attempt-th delivery.
func deliver(it *state.Item, l *lease, attempt uint32) Delivery {
	d := Delivery{
		ID:      it.ID,
		Attempt: attempt,
		Payload: it.Payload,
		Headers: it.Headers(),
		ReplyTo: it.ReplyTo,
		Error:   it.LastErr(),
	}
	if l != nil {
		d.Lease = l.lease
		d.Deadline = time.Unix(0, l.deadline)
	}
	return d
}

// lease is an item in flight. It exists only while the item is leased: it
// is in the queue's lease index (see leaseindex.go), in exactly one of the queue's deadline
// lists (the FIFO of leases with their first deadline, or the heap of the
// others), and in its owner's list. Settled leases are recycled through the
// queue's free list.
type lease struct {
	id uint64 // the item's
	// attempt is this delivery's number: the item's logged attempts plus
	// one. It is what the item's attempts become if the delivery fails.
	attempt  uint32
	lease    uint64
	owner    *Consumer // nil for leases taken by Get
	deadline int64     // unix nanoseconds
	heapIdx  int       // in Queue.leases; -1 when not there (then in the FIFO)

	// prev and next link the lease in Queue's FIFO (nil while in the heap).
	prev, next *lease
	// oprev and onext link the lease in its owner's list.
	oprev, onext *lease
}

// maxFreeLeases bounds a queue's free list of lease records: enough for the
// churn of batches of deliveries and settles (a worker acks up to 4096 in one
// request; at 1024 most of each such batch went to the garbage collector),
// not a high-water mark of leases kept for ever.
const maxFreeLeases = 8192

// Stats are a queue's gauges and counters.
type Stats struct {
	Name   string
	Ready  int
	Leased int
	// Delayed items were nacked for a retry and wait out their delay; they
	// are not ready, but not finished either.
	Delayed   int
	Dead      int
	Consumers int
	MaxSize   int
	Closed    bool
	// Paused: an operator paused the queue; it takes puts and hands out
	// nothing until resumed.
	Paused bool

	PutTotal         uint64
	AckedTotal       uint64
	NackedTotal      uint64
	DeliveredTotal   uint64
	RedeliveredTotal uint64
	ExpiredTotal     uint64
	RefusedTotal     uint64
	DeadTotal        uint64
	// PurgedTotal counts the items an operator purged (Purge).
	PurgedTotal uint64
}

// Queue is one named queue. All state is guarded by mu: the queue's logged
// state s (its items, by id, and what a restart must know of it) and the
// live state around it (the order of ready items, leases, waiters,
// consumers). Every change of s is a command of internal/state, applied
// while the locks of the queues it names are held.
type Queue struct {
	b    *Broker
	name string
	// nameArg is name as a log line's value, boxed once: boxed at each
	// line, it was an allocation per scan that expired a lease.
	nameArg any
	idx     int // lock order
	maxSize int
	dead    *Queue // this queue's dead-letter queue; nil for a dead-letter queue
	origin  *Queue // for a dead-letter queue, the queue it serves
	// The backoff of retries: see Config.RetryMin and backoff.
	retryMin, retryMax time.Duration

	mu        sync.Mutex
	s         *state.Queue
	nextLease uint64
	ready     readyIndex
	// The leases in flight, by lease id: see leaseindex.go.
	win      []*lease // ring of the window; its length is 0 or a power of two
	winHead  int      // index in win of the window's front slot
	winN     int      // slots in the window
	winBase  uint64   // lease id of the front slot; winBase+winN == nextLease+1
	overflow map[uint64]*lease
	nleased  int // leases in flight
	// Every lease in flight is in exactly one of two deadline orders. All
	// leases are made with the same lease time from a clock that seldom
	// goes back, so their first deadlines come in order of creation: they
	// are appended to an intrusive FIFO, which settles and expires in O(1).
	// A lease whose deadline an Extend changed, or that would be due before
	// the FIFO's tail (the clock went back), is kept in the heap instead.
	fifoHead *lease
	fifoTail *lease
	leases   leaseHeap
	free     []*lease // recycled lease records, zeroed
	// Items nacked for a retry, until they are due: see delayed.go.
	delayed delayHeap
	// due is at or before the earliest lease deadline and delayed item's
	// due time of the queue (math.MaxInt64: none), so that expire and
	// promote, which the scan runs over every queue, skip a queue with
	// nothing due without taking its lock. Lowered (dueBy) wherever a
	// deadline is added, under mu; set exactly (resetDue) after a pass
	// that looked at them all. A settle leaves it low: the next pass then
	// takes the lock, finds nothing and sets it.
	due       atomic.Int64
	consumers map[*Consumer]struct{}
	// nconsumers counts the consumers ever registered (their seq).
	nconsumers uint64
	waiters    []*Consumer // consumers with credit, blocked for want of items
	// Scratch space of the commands one operation makes, kept empty.
	ids     []uint64
	rids    []uint64 // the acked items of replies
	replies []Message
	failed  []state.Failed
	rec     []byte // the journal's record of a command, being encoded
	// unsynced lists, oldest first, the ids this queue gained by records
	// the log has not made durable yet: a delivery of one waits for its
	// record (see unsynced.go).
	unsynced []addedRange
	// inProgress names the named puts under way (PutOnce).
	inProgress map[putKey]struct{}

	notEmpty signal // for Get
	notFull  signal // for Put
	drained  signal // nothing ready, leased or delayed (Join, closed consumers)
	noLeases signal // nothing leased (shutdown)
	joined   signal // a consumer registered (WaitConsumers)

	st Stats
}

func newQueue(b *Broker, name string, s *state.Queue, maxSize, idx int, retryMin, retryMax time.Duration) *Queue {
	q := &Queue{
		b:         b,
		name:      name,
		nameArg:   name,
		s:         s,
		idx:       idx,
		maxSize:   maxSize,
		retryMin:  retryMin,
		retryMax:  retryMax,
		nextLease: b.cfg.LeaseBase,
		winBase:   b.cfg.LeaseBase + 1,
		consumers: make(map[*Consumer]struct{}),
	}
	q.due.Store(math.MaxInt64)
	return q
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// MaxSize is the bound on ready items; 0 means unbounded.
func (q *Queue) MaxSize() int { return q.maxSize }

// IsDead reports whether this is a dead-letter queue.
func (q *Queue) IsDead() bool { return q.origin != nil }

// RetryBackoff returns the bounds of the queue's retry backoff.
func (q *Queue) RetryBackoff() (min, max time.Duration) { return q.retryMin, q.retryMax }

func (q *Queue) full() bool { return q.maxSize > 0 && q.ready.len() >= q.maxSize }

// unfinished counts the items not yet acknowledged or dead-lettered. A
// delayed item is one: Join waits for it, and a closed queue that holds one
// is not drained, since it will be ready again.
func (q *Queue) unfinished() int { return q.ready.len() + q.nleased + len(q.delayed) }

// Put adds msgs in order. While the queue is full it waits for room until
// ctx ends or, if timeout > 0, for at most timeout; with nowait it does not
// wait. It returns the ids of the items it accepted, which may be fewer than
// len(msgs) together with ErrFull, ErrClosed or the context's error.
//
// Each chunk of msgs that fits is one state change, made whole under the
// lock (put); the wait for room comes between two chunks and changes
// nothing. A Put that ends early has added the chunks whose ids it
// returns, and no part of another.
func (q *Queue) Put(ctx context.Context, msgs []Message, nowait bool, timeout time.Duration) ([]uint64, error) {
	ids, _, err := q.PutOnce(ctx, msgs, nowait, timeout, PutID{})
	return ids, err
}

// PutID names a put so that a retry of it is stored once: the producer
// that sent it, its sequence number among that producer's puts into the
// queue, and the CRC32C of its payloads (state.Put says more). The zero
// PutID names none: the put is stored each time it is made.
type PutID struct {
	Producer state.Producer
	Seq      uint64
	CRC      uint32
}

// putKey names a put in progress.
type putKey struct {
	p   state.Producer
	seq uint64
}

// PutOnce is Put for a put named by id: a retry of a put already stored,
// whole, is answered with the ids it got (duplicate true) and stores
// nothing; a retry of a put stored in part (it ended early: the queue was
// full, or closed) stores the rest. A retry that arrives while the put is
// still in progress (waiting for room) fails with ErrPutInProgress, one of
// a sequence the queue no longer remembers with ErrPutForgotten, one whose
// items differ (their CRC) with ErrInvalid.
func (q *Queue) PutOnce(ctx context.Context, msgs []Message, nowait bool, timeout time.Duration, id PutID) (ids []uint64, duplicate bool, err error) {
	if q.IsDead() {
		return nil, false, fmt.Errorf("%w: %q", ErrReadOnly, q.name)
	}
	named := id.Producer != (state.Producer{})
	offset := 0 // the index in the request of msgs[0]
	var timer <-chan time.Time
	var t *time.Timer // the wait's, once it waited
	var k putKey
	inProgress := false // k is in q.inProgress, to be taken out at the end
	// One deferred call for both, outside the loop: a defer in a loop (or
	// more defers than the compiler open-codes for so many returns) sends
	// every return through the runtime's slower path, waiting or not.
	defer func() {
		if t != nil {
			t.Stop()
		}
		if inProgress {
			q.mu.Lock()
			delete(q.inProgress, k)
			q.mu.Unlock()
		}
	}()
	q.mu.Lock()
	if named {
		k = putKey{id.Producer, id.Seq}
		if _, busy := q.inProgress[k]; busy {
			q.mu.Unlock()
			return nil, false, fmt.Errorf("%w: sequence %d of this producer into %q", ErrPutInProgress, id.Seq, q.name)
		}
		switch known, rec := q.s.Lookup(id.Producer, id.Seq); known {
		case state.SeqForgotten:
			q.mu.Unlock()
			return nil, false, fmt.Errorf("%w: sequence %d into %q is older than the %d the master remembers of this producer", ErrPutForgotten, id.Seq, q.name, state.SeqsPerProducer)
		case state.SeqStored:
			if rec.CRC != id.CRC {
				q.mu.Unlock()
				return nil, false, fmt.Errorf("%w: put sequence %d into %q was stored with other items (their CRC differs): a producer must resend a put unchanged", ErrInvalid, id.Seq, q.name)
			}
			ids = storedIDs(rec, len(msgs))
			if len(ids) >= len(msgs) {
				q.mu.Unlock()
				return ids[:len(msgs)], true, nil
			}
			offset = len(ids)
			msgs = msgs[offset:]
			duplicate = true
		}
		if q.inProgress == nil {
			q.inProgress = make(map[putKey]struct{})
		}
		q.inProgress[k] = struct{}{}
		inProgress = true
	}
	if ids == nil {
		ids = make([]uint64, 0, len(msgs))
	}
	for len(msgs) > 0 {
		if q.s.Closed() {
			q.mu.Unlock()
			return ids, duplicate, fmt.Errorf("%w: %q", ErrClosed, q.name)
		}
		n := q.b.putChunk(msgs)
		if q.maxSize > 0 {
			n = min(n, q.maxSize-q.ready.len())
		}
		if n > 0 {
			if err := q.b.admitPut(); err != nil {
				q.mu.Unlock()
				return ids, duplicate, err
			}
			ids = q.put(msgs[:n], ids, id, offset)
			msgs = msgs[n:]
			offset += n
			q.readyGrew(n)
			continue
		}
		if nowait {
			q.mu.Unlock()
			return ids, duplicate, fmt.Errorf("%w: %q holds %d items", ErrFull, q.name, q.maxSize)
		}
		ch := q.notFull.wait()
		q.mu.Unlock()
		if timer == nil && timeout > 0 {
			t = time.NewTimer(timeout)
			timer = t.C
		}
		select {
		case <-ch:
		case <-timer:
			return ids, duplicate, fmt.Errorf("%w: %q holds %d items (waited %v)", ErrFull, q.name, q.maxSize, timeout)
		case <-ctx.Done():
			return ids, duplicate, ctx.Err()
		}
		q.mu.Lock()
	}
	q.mu.Unlock()
	return ids, duplicate, nil
}

// storedIDs lists the ids a put named by rec got, in the order of its
// items, as far as its chunks were stored from the first on.
func storedIDs(rec *state.SeqRecord, max int) []uint64 {
	ranges := slices.Clone(rec.Ranges)
	slices.SortFunc(ranges, func(a, b state.IDRange) int { return int(int64(a.Offset) - int64(b.Offset)) })
	var ids []uint64
	for _, r := range ranges {
		if int(r.Offset) != len(ids) || len(ids) >= max {
			break // a gap: cannot happen, chunks are stored in order
		}
		for i := range uint64(r.N) {
			ids = append(ids, r.FirstID+i)
		}
	}
	return ids
}

// put makes every message of msgs a ready item, at the back, and appends
// their ids to ids: one chunk of a Put, which found room for all of them,
// and one Put command. A put named by id records that these are its items
// from offset on. Called with q.mu held.
func (q *Queue) put(msgs []Message, ids []uint64, id PutID, offset int) []uint64 {
	first := q.s.NextID() + 1
	// Declared, then filled: a composite literal is built in a temporary
	// and copied, 96 bytes twice per put.
	var cmd state.Put
	cmd.Queue, cmd.FirstID, cmd.Items = q.name, first, msgs
	if id.Producer != (state.Producer{}) {
		cmd.Producer, cmd.Seq, cmd.Offset, cmd.BatchCRC = id.Producer, id.Seq, uint32(offset), id.CRC
		cmd.DedupWindow = int64(q.b.cfg.DedupWindow)
		cmd.Time = q.b.now()
	} else if q.b.durable() {
		cmd.Time = q.b.now()
	}
	q.ready.added(first, len(msgs), q.s.Put(&cmd))
	q.noteAdded(first, len(msgs), q.record(&cmd))
	for i := range msgs {
		ids = append(ids, first+uint64(i))
	}
	q.st.PutTotal += uint64(len(msgs))
	return ids
}

// readyGrew wakes those who wait for items after n became ready.
func (q *Queue) readyGrew(n int) {
	q.notEmpty.broadcast()
	q.wakeWaiters(n)
}

// wakeWaiters wakes consumers blocked in Next, oldest first, until their
// credit covers n items. A consumer woken here is off the list; if it then
// leaves Next without taking what it was woken for, it must pass the
// wake-up on (see Consumer.stopWaiting).
func (q *Queue) wakeWaiters(n int) {
	if q.s.Paused() {
		return // nothing to hand out; Resume wakes them
	}
	k := 0
	for n > 0 && k < len(q.waiters) {
		c := q.waiters[k]
		k++
		c.waiting = false
		c.wake()
		n -= c.credit
	}
	if k > 0 {
		// Shifted down rather than resliced, so that the list keeps its
		// array and waiting again does not allocate.
		m := copy(q.waiters, q.waiters[k:])
		clear(q.waiters[m:])
		q.waiters = q.waiters[:m]
	}
}

// readyShrank is called after items left the ready deque.
func (q *Queue) readyShrank() {
	if !q.full() {
		q.notFull.broadcast()
	}
	q.checkDrained()
}

func (q *Queue) checkDrained() {
	if q.nleased == 0 {
		q.noLeases.broadcast()
		if q.ready.len() == 0 && len(q.delayed) == 0 {
			q.drained.broadcast()
			if q.s.Closed() {
				for c := range q.consumers {
					c.wake()
				}
			}
		}
	}
}

// lease hands out the front ready item, leased at now to owner (nil for
// Get), and returns its delivery. The item stays in the logged state: a
// delivery is not logged (a restart makes every leased item ready again).
func (q *Queue) lease(owner *Consumer, now int64) Delivery {
	it := q.ready.take()
	var l *lease
	if n := len(q.free); n > 0 {
		l = q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
	} else {
		l = new(lease)
	}
	l.id = it.ID
	l.attempt = it.Attempts + 1
	q.nextLease++
	if q.nextLease > q.b.leaseHW.Load() {
		q.b.reserveLeases(q)
	}
	l.lease = q.nextLease
	l.owner = owner
	l.deadline = now + int64(q.b.cfg.LeaseTime)
	if t := q.fifoTail; t == nil || l.deadline >= t.deadline {
		q.fifoPush(l)
	} else {
		q.leases.push(l) // the clock went back: out of order
	}
	if l.prev == nil {
		// The FIFO's head, or in the heap: perhaps the queue's earliest
		// deadline. (Behind the head, the scan loop wakes for the head.)
		q.dueBy(l.deadline)
	}
	q.winPush(l)
	if owner != nil {
		owner.link(l)
	}
	q.st.DeliveredTotal++
	if l.attempt > 1 {
		q.st.RedeliveredTotal++
	}
	return deliver(it, l, l.attempt)
}

// unlease takes l out of flight and returns its item's id and the number
// of its delivery. l is recycled: the caller must not use it after.
func (q *Queue) unlease(l *lease) (id uint64, attempt uint32) {
	if l.heapIdx >= 0 {
		q.leases.remove(l)
	} else {
		q.fifoRemove(l)
	}
	q.winRemove(l)
	if c := l.owner; c != nil {
		c.unlink(l)
		if c.nleased == 0 && q.b.isDraining() {
			// A draining consumer may now end. Only then: otherwise the
			// wake-up would be for nothing, and a lone task's ack would
			// pay a goroutine switch for it. Drain sets its flag before
			// it wakes every consumer under q.mu, so none is missed.
			c.wake()
		}
	}
	id, attempt = l.id, l.attempt
	// Zeroed field by field, not by assigning a lease{}: that is a typed
	// clear of all five pointers, with a bulk write barrier while the
	// collector marks. The four links are nil already (fifoRemove, the
	// heap's remove and unlink leave them so), the owner alone is not.
	l.id, l.attempt, l.lease, l.deadline, l.heapIdx = 0, 0, 0, 0, -1
	l.owner = nil
	if len(q.free) < maxFreeLeases {
		q.free = append(q.free, l)
	}
	return id, attempt
}

// fifoPush appends l, which is in no deadline order, to the FIFO.
func (q *Queue) fifoPush(l *lease) {
	l.heapIdx = -1
	l.prev, l.next = q.fifoTail, nil
	if q.fifoTail != nil {
		q.fifoTail.next = l
	} else {
		q.fifoHead = l
	}
	q.fifoTail = l
}

// fifoRemove takes l out of the FIFO; l must be in it.
func (q *Queue) fifoRemove(l *lease) {
	if l.prev != nil {
		l.prev.next = l.next
	} else {
		q.fifoHead = l.next
	}
	if l.next != nil {
		l.next.prev = l.prev
	} else {
		q.fifoTail = l.prev
	}
	l.prev, l.next = nil, nil
}

// giveBack records that the delivery attempt of item id ended for reason
// without a settle: the item is to be ready again at once, at the front,
// or dead-lettered when that was its last attempt (see fail).
//
// Expired leases and the items of a consumer that went away come back this
// way, with no delay: nobody said the item failed, only that its taker is
// gone (crashed, hung, cut off), and another consumer may well do it now.
// The attempt still counts, so an item that kills its consumers is
// dead-lettered all the same. Only an explicit nack for a retry waits
// (see nack).
func (q *Queue) giveBack(id uint64, attempt uint32, reason string) {
	f := state.Failed{ID: id, Attempts: attempt, Outcome: state.OutcomeReady, Error: reason}
	if q.lastAttempt(attempt) {
		f.Outcome = state.OutcomeDead
	}
	q.failed = append(q.failed, f)
}

// lastAttempt reports whether an item's attempt-th delivery was its last.
// Items of a dead-letter queue have no last attempt.
func (q *Queue) lastAttempt(attempt uint32) bool {
	return q.dead != nil && int(attempt) >= q.b.cfg.MaxAttempts
}

// delay holds item id back until due (unix nanoseconds), as a delayed
// item: the outcome of a nack for a retry, whose due time the caller
// worked out (see retryWait).
func (q *Queue) delay(id uint64, due int64) {
	if d := q.delayed.peek(); d == nil || due < d.due {
		q.dueBy(due) // the earliest of this queue's delayed items
	}
	q.delayed.push(delayed{due: due, id: id})
}

// retryWait is how long the item of nack n, after its attempts-th
// delivery, waits before its retry: the delay n asks for, at most
// MaxRetryDelay, or else the queue's backoff.
func (q *Queue) retryWait(n *Nack, attempts uint32) time.Duration {
	if n.Delay > 0 {
		return min(n.Delay, MaxRetryDelay)
	}
	return backoff(q.retryMin, q.retryMax, attempts, n.Jitter)
}

// promote makes the delayed items due at now ready, at the front of the
// queue like any item handed back, earliest due first. It reports how many.
func (q *Queue) promote(now int64) int {
	if q.due.Load() > now {
		return 0 // nothing due: see Queue.due
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var fx effects
	q.promoteLocked(now, &fx)
	q.resetDue()
	q.report(&fx)
	return fx.promoted
}

// dueBy records that the queue has a deadline or due time at t, and pokes
// the scan loop if it would sleep past it. Called with q.mu held.
func (q *Queue) dueBy(t int64) {
	if t < q.due.Load() {
		q.due.Store(t)
	}
	q.b.wakeBy(t)
}

// resetDue sets q.due to the queue's earliest deadline. Called with q.mu
// held.
func (q *Queue) resetDue() {
	next := q.nextDeadline()
	if next == 0 {
		next = math.MaxInt64
	}
	q.due.Store(next)
}

func (q *Queue) promoteLocked(now int64, fx *effects) {
	// The earliest due must end up at the front, so the due items are
	// pushed to the front latest first: ids gathered in q.ids, then pushed
	// in reverse. Nothing is logged: an item whose due time has passed is
	// ready, in the log as here.
	due := q.ids[:0]
	for d := q.delayed.peek(); d != nil && d.due <= now; d = q.delayed.peek() {
		due = append(due, q.delayed.pop().id)
	}
	n := len(due)
	if n == 0 {
		return
	}
	for i := n - 1; i >= 0; i-- {
		q.ready.pushFront(due[i])
	}
	q.ids = due[:0]
	q.readyGrew(n)
	fx.promoted += n
}

// scan is one pass of the scan loop over the queue: it expires the leases
// and promotes the delayed items due at now, and returns the earliest
// deadline left (unix nanoseconds; 0 if none).
func (q *Queue) scan(now int64) int64 {
	if due := q.due.Load(); due > now {
		// Nothing due: see Queue.due. Its bound may be early (a settled
		// lease), which only wakes the loop early.
		if due == math.MaxInt64 {
			return 0
		}
		return due
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var fx effects
	q.expireLocked(now, &fx)
	q.promoteLocked(now, &fx)
	q.resetDue()
	q.report(&fx)
	next := q.nextDeadline()
	if next != 0 && next <= now {
		// Leases past their deadline that the log could not take yet
		// (expireLocked): look again a little later, not at once.
		next = now + int64(blockedScan)
	}
	return next
}

// blockedScan is how long the scan loop waits before it tries again to
// expire leases that the log could not take (a full or failing disk).
const blockedScan = 100 * time.Millisecond

// nextDeadline returns the earliest lease deadline or due time of a
// delayed item (unix nanoseconds; 0 if none). Called with q.mu held.
func (q *Queue) nextDeadline() int64 {
	var next int64
	earlier := func(t int64) {
		if next == 0 || t < next {
			next = t
		}
	}
	if l := q.fifoHead; l != nil {
		earlier(l.deadline)
	}
	if l := q.leases.peek(); l != nil {
		earlier(l.deadline)
	}
	if d := q.delayed.peek(); d != nil {
		earlier(d.due)
	}
	return next
}

// fail applies the failed deliveries gathered in q.failed (see giveBack
// and nack) as one Fail command, then places each item as its outcome
// says: dead-lettered, delayed until its due time, or ready again (at the
// front, handed back, or with cause CauseNack at the back: a dead item
// nacked as dead stays in its dead-letter queue, behind the others). Called
// with q.mu held; when an item dies it takes the dead-letter queue's lock,
// which comes right after q's in lock order.
func (q *Queue) fail(cause state.Cause, now int64, fx *effects) {
	failed := q.failed
	if len(failed) == 0 {
		return
	}
	dies := false
	for i := range failed {
		dies = dies || failed[i].Outcome == state.OutcomeDead
	}
	var cmd state.Fail // filled, not copied from a literal (see put)
	cmd.Queue, cmd.Time, cmd.Cause, cmd.Items = q.name, now, cause, failed
	var d *Queue
	var ds *state.Queue
	if dies {
		d = q.dead
		cmd.DeadQueue, ds = d.name, d.s
		d.mu.Lock()
	}
	q.s.Fail(&cmd, ds)
	q.record(&cmd)
	ready, dead := 0, 0
	for i := range failed {
		f := &failed[i]
		switch {
		case f.Outcome == state.OutcomeDead:
			d.ready.pushBack(f.ID)
			why := whyMaxAttempts
			if cause == state.CauseNack && !q.lastAttempt(f.Attempts) {
				why = whyFailed
			}
			fx.dead = append(fx.dead, deadLettered{id: f.ID, attempts: f.Attempts, err: f.Error, why: why})
			dead++
		case f.Due != 0:
			q.delay(f.ID, f.Due)
		case cause == state.CauseNack:
			q.ready.pushBack(f.ID)
			ready++
		default:
			q.ready.pushFront(f.ID)
			ready++
		}
	}
	if dead > 0 {
		d.st.PutTotal += uint64(dead)
		d.readyGrew(dead)
		d.mu.Unlock()
		q.st.DeadTotal += uint64(dead)
	}
	if ready > 0 {
		q.readyGrew(ready)
	}
	// Keeps no error strings alive. Field by field: clear (or a loop of
	// whole zero elements, compiled into it) is a typed clear of the
	// slice, with a bulk write barrier while the collector marks; here
	// only Error, the one pointer, takes a barrier.
	for i := range failed {
		f := &failed[i]
		f.ID, f.Attempts, f.Outcome, f.Due, f.Error = 0, 0, 0, 0, ""
	}
	q.failed = failed[:0]
}

// expire returns the leases whose deadline is at or before now.
func (q *Queue) expire(now int64) int {
	if q.due.Load() > now {
		return 0 // nothing due: see Queue.due
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var fx effects
	q.expireLocked(now, &fx)
	q.resetDue()
	q.report(&fx)
	return fx.expired
}

func (q *Queue) expireLocked(now int64, fx *effects) {
	if q.b.admit() != nil {
		// The log cannot take the change: the leases stay, past their
		// deadline, until it can (the scan loop comes back).
		return
	}
	n := 0
	for {
		// The earlier of the two fronts, FIFO's and heap's.
		l := q.fifoHead
		if h := q.leases.peek(); h != nil && (l == nil || h.deadline < l.deadline) {
			l = h
		}
		if l == nil || l.deadline > now {
			break
		}
		if l.owner != nil {
			l.owner.failed++ // its consumer let the lease run out
		}
		id, attempt := q.unlease(l)
		q.st.ExpiredTotal++
		q.giveBack(id, attempt, "lease expired")
		if len(q.failed) == maxCmdItems {
			q.fail(state.CauseExpired, now, fx)
		}
		n++
	}
	if n > 0 {
		q.fail(state.CauseExpired, now, fx)
		q.checkDrained()
	}
	fx.expired += n
}

// Get takes up to max items. It waits for the first one until ctx ends or,
// if timeout > 0, for at most timeout, unless nowait. It returns no items
// and no error when nothing came in time, and ErrClosed when the queue is
// closed and drained. With autoAck the items are settled as they are taken;
// otherwise each is leased and must be settled by Ack or Nack with its lease.
//
// Get allocates the slice it returns; GetAppend reuses the caller's.
//
// Once the broker is draining Get returns ErrShutdown, like Consumer.Next:
// a lease handed out after Drain would hold up WaitSettled and be lost at
// shutdown. (Get used to go on delivering while draining.)
func (q *Queue) Get(ctx context.Context, max int, nowait bool, timeout time.Duration, autoAck bool) ([]Delivery, error) {
	return q.GetAppend(ctx, nil, max, nowait, timeout, autoAck)
}

// GetAppend is Get appending the items to buf: an in-process reader that
// loops (the master's demo) keeps one buffer instead of allocating a slice
// per call. It returns buf unchanged, or nil with an error, when it takes
// nothing.
func (q *Queue) GetAppend(ctx context.Context, buf []Delivery, max int, nowait bool, timeout time.Duration, autoAck bool) ([]Delivery, error) {
	if max <= 0 {
		max = 1
	}
	var timer <-chan time.Time
	var t *time.Timer // the wait's, once it waited
	// Deferred outside the loop, so that it is open-coded (see PutOnce).
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	q.mu.Lock()
	for {
		if q.b.isDraining() {
			q.mu.Unlock()
			return nil, ErrShutdown
		}
		if n := min(max, q.ready.len()); n > 0 && !q.s.Paused() {
			// The clock is read when the items are taken, not when the
			// call began: a Get that waited must not get shorter leases.
			if autoAck {
				// The items are settled as they are taken: a change.
				if err := q.b.admit(); err != nil {
					q.mu.Unlock()
					return nil, err
				}
				// And a settle cannot be taken back: if the wait for
				// their records failed after it (the caller gone, the
				// log failed), the items would be gone unseen, and a
				// crash could keep the settle. So the wait comes first,
				// while the items are still in the queue.
				if need := q.readyNeed(n); need != 0 {
					q.mu.Unlock()
					if err := q.b.waitLog(ctx, need); err != nil {
						return nil, err
					}
					q.mu.Lock()
					continue
				}
			}
			out := q.take(slices.Grow(buf, n), n, autoAck, q.b.now())
			q.readyShrank()
			need := q.syncNeed(out[len(buf):])
			q.mu.Unlock()
			if err := q.b.waitDurable(ctx, need); err != nil {
				return nil, err
			}
			return out, nil
		}
		if q.s.Closed() && q.unfinished() == 0 {
			q.mu.Unlock()
			return nil, fmt.Errorf("%w: %q", ErrClosed, q.name)
		}
		if nowait {
			q.mu.Unlock()
			return buf, nil
		}
		ch := q.notEmpty.wait()
		drained := q.drained.wait()
		q.mu.Unlock()
		if timer == nil && timeout > 0 {
			t = time.NewTimer(timeout)
			timer = t.C
		}
		select {
		case <-ch:
		case <-drained:
		case <-timer:
			return buf, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		q.mu.Lock()
	}
}

// take hands out the n front ready items for Get, appended to out: leased
// at now to no consumer, or with autoAck settled as they are taken (one
// Settle command). Called with q.mu held.
func (q *Queue) take(out []Delivery, n int, autoAck bool, now int64) []Delivery {
	if !autoAck {
		for range n {
			out = append(out, q.lease(nil, now))
		}
		return out
	}
	ids := q.ids[:0]
	for range n {
		it := q.ready.take()
		attempt := it.Attempts + 1
		q.st.DeliveredTotal++
		if attempt > 1 {
			// Counted as in lease: a retried item taken with auto-ack is
			// a redelivery too.
			q.st.RedeliveredTotal++
		}
		out = append(out, deliver(it, nil, attempt))
		ids = append(ids, it.ID)
	}
	cmd := state.Settle{Queue: q.name, Time: now, IDs: ids}
	q.s.Settle(&cmd)
	q.record(&cmd)
	q.st.AckedTotal += uint64(n)
	q.ids = ids[:0]
	return out
}

// Ack is one settle with an optional reply.
type Ack struct {
	ID, Lease uint64
	// Reply, when ReplyQueue is set, is put into that queue in the same step.
	Reply      Message
	ReplyQueue *Queue
}

// NackAction says what a Nack does with the item.
type NackAction int

const (
	// NackRetry returns the item, or dead-letters it after its last attempt.
	NackRetry NackAction = iota
	// NackDead dead-letters the item now.
	NackDead
	// NackRelease hands the item back untouched: the attempt does not count.
	NackRelease
)

// Nack is one refusal.
type Nack struct {
	ID, Lease uint64
	Error     string
	Action    NackAction
	// Delay, for NackRetry, is how long the item waits before it is ready
	// again, at most MaxRetryDelay; zero (or less) takes the queue's
	// backoff. Other actions do not wait.
	Delay time.Duration
	// Jitter, in [0, 1), places the backoff's wait between its two bounds
	// (see backoff). The caller draws it: the core draws no random numbers.
	Jitter float64
}

// Extend is one lease extension; a zero Duration means the lease time.
type Extend struct {
	ID, Lease uint64
	Duration  time.Duration
}

// Refusal names a settle that was not applied, and why.
type Refusal struct {
	ID, Lease uint64
	Reason    string
}

// held returns the lease of item id if it is lease n, current and held by
// owner; otherwise a refusal reason. fc serves the whole call's refusals.
func (q *Queue) held(owner *Consumer, id, n uint64, fc *flightCheck) (*lease, string) {
	// Found by its lease id, without hashing; the slow path only tells a
	// stale or wrong lease apart from an item that is not in flight.
	if l := q.leaseByID(n); l != nil && l.id == id {
		if l.owner != owner {
			return nil, ReasonNotLeased
		}
		return l, ""
	}
	if fc.inFlight(id) {
		return nil, ReasonNotLeased
	}
	return nil, ReasonUnknownItem
}

func (q *Queue) refuse(out []Refusal, id, lease uint64, reason string) []Refusal {
	q.st.RefusedTotal++
	return append(out, Refusal{ID: id, Lease: lease, Reason: reason})
}

// CountRefused counts n settles refused before they reached the queue
// (by the gRPC edge: of another incarnation), so that Stats' RefusedTotal
// counts every late settle.
func (q *Queue) CountRefused(n int) {
	q.mu.Lock()
	q.st.RefusedTotal += uint64(n)
	q.mu.Unlock()
}

// Ack settles leases taken by Get; see Consumer.Ack for stream leases.
func (q *Queue) Ack(acks []Ack) []Refusal { return q.ack(nil, acks) }

// Nack refuses leases taken by Get. Like every operation whose change
// depends on the time, it reads the clock once, here, and hands the time
// down: the state changes read no clock.
func (q *Queue) Nack(nacks []Nack) []Refusal { return q.nack(nil, nacks, q.b.now()) }

// Extend extends leases taken by Get.
func (q *Queue) Extend(ext []Extend) []Refusal { return q.extend(nil, ext, q.b.now()) }

func (q *Queue) ack(owner *Consumer, acks []Ack) []Refusal {
	if len(acks) == 0 {
		return nil
	}
	var qs [4]*Queue
	set := append(qs[:0], q)
	for i := range acks {
		if r := acks[i].ReplyQueue; r != nil && !slices.Contains(set, r) {
			set = append(set, r)
		}
	}
	lockQueues(set)
	defer unlockQueues(set)
	if err := q.b.admit(); err != nil {
		return refuseAll(q, acks, func(a *Ack) (uint64, uint64) { return a.ID, a.Lease })
	}
	var refused []Refusal
	fc := flightCheck{q: q}
	acked := 0
	// Plain acks gather in q.ids, acks with a reply in a run per reply
	// queue (q.replies and its ids after the plain ones' end): each run is
	// one SettleReply command, so an item is settled and its reply kept in
	// one step, and the plain ones one Settle at the end.
	settled := q.ids[:0]
	var run *Queue
	runIDs := q.rids[:0]
	replies := q.replies[:0]
	replyBytes := 0
	flush := func() {
		if run == nil || len(runIDs) == 0 {
			return
		}
		replyBytes = 0
		first := run.s.NextID() + 1
		var cmd state.SettleReply // filled, not copied from a literal (see put)
		cmd.Queue, cmd.ReplyQueue, cmd.IDs, cmd.FirstReplyID, cmd.Replies = q.name, run.name, runIDs, first, replies
		_, inWindow := q.s.SettleReply(&cmd, run.s)
		lsn := q.record(&cmd)
		n := len(runIDs)
		run.ready.added(first, n, inWindow)
		run.noteAdded(first, n, lsn)
		run.st.PutTotal += uint64(n)
		run.readyGrew(n)
		// Keeps no payload alive: the two pointers of each reply, not a
		// typed clear of the slice (see fail). (A loop of whole zero
		// elements would be compiled into that clear.)
		for i := range replies {
			replies[i].Payload, replies[i].Headers = nil, nil
		}
		replies = replies[:0]
		runIDs = runIDs[:0]
	}
	for i := range acks {
		a := &acks[i]
		l, reason := q.held(owner, a.ID, a.Lease, &fc)
		if l == nil {
			refused = q.refuse(refused, a.ID, a.Lease, reason)
			continue
		}
		if r := a.ReplyQueue; r != nil {
			if r.s.Closed() || r.IsDead() {
				refused = q.refuse(refused, a.ID, a.Lease, ReasonReplyQueue)
				continue
			}
			// Replies bypass maxsize: an ack must never block on a full
			// reply queue, or a slow result reader would stall every slave.
			if r != run {
				flush()
				run = r
			}
			if len(runIDs) == maxCmdItems || replyBytes+len(a.Reply.Payload) > maxCmdBytes {
				flush()
			}
			runIDs = append(runIDs, l.id)
			replies = append(replies, a.Reply)
			replyBytes += len(a.Reply.Payload)
		} else {
			if len(settled) == maxCmdItems {
				q.settle(settled)
				settled = settled[:0]
			}
			settled = append(settled, l.id)
		}
		fc.settled(a.ID)
		q.unlease(l)
		acked++
	}
	flush()
	q.st.AckedTotal += uint64(acked)
	if owner != nil {
		owner.acked += uint64(acked)
	}
	if len(settled) > 0 {
		q.settle(settled)
	}
	q.ids = settled[:0]
	q.rids = runIDs[:0]
	q.replies = replies[:0]
	q.checkDrained()
	return refused
}

// settle applies and logs a Settle of ids, acknowledged.
func (q *Queue) settle(ids []uint64) {
	cmd := state.Settle{Queue: q.name, IDs: ids}
	q.s.Settle(&cmd)
	q.record(&cmd)
}

// refuseAll refuses every settle of a call that the log cannot take now.
func refuseAll[T any](q *Queue, all []T, key func(*T) (id, lease uint64)) []Refusal {
	out := make([]Refusal, 0, len(all))
	for i := range all {
		id, lease := key(&all[i])
		out = q.refuse(out, id, lease, ReasonLog)
	}
	return out
}

// nack applies the nacks of owner's leases at now. It decides what becomes
// of each item, from the configuration (MaxAttempts, the backoff) and the
// nack (its action, delay and jitter), and applies that outcome with its
// values worked out: a retry is delayed until a due time, a dead-lettering
// says why.
func (q *Queue) nack(owner *Consumer, nacks []Nack, now int64) []Refusal {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.b.admit(); err != nil {
		return refuseAll(q, nacks, func(n *Nack) (uint64, uint64) { return n.ID, n.Lease })
	}
	var fx effects
	var refused []Refusal
	fc := flightCheck{q: q}
	for i := range nacks {
		n := &nacks[i]
		l, reason := q.held(owner, n.ID, n.Lease, &fc)
		if l == nil {
			refused = q.refuse(refused, n.ID, n.Lease, reason)
			continue
		}
		fc.settled(n.ID)
		id, attempt := q.unlease(l)
		// Every applied nack counts, whatever its action. (A release used
		// to count only on dead-letter queues, an inverted test that made
		// NackedTotal disagree with the nacks a queue actually took.)
		q.st.NackedTotal++
		if owner != nil && n.Action != NackRelease {
			owner.failed++ // a release is no failure
		}
		if n.Action == NackRelease {
			// The attempt does not count and nothing about the item
			// changes: nothing to log.
			q.ready.pushFront(id)
			q.readyGrew(1)
			continue
		}
		f := state.Failed{ID: id, Attempts: attempt, Outcome: state.OutcomeReady, Error: n.Error}
		switch {
		case n.Action == NackDead && q.dead == nil:
			// An item of a dead-letter queue has nowhere further to go:
			// it keeps its error, at the back (see fail).
		case n.Action == NackDead, q.lastAttempt(attempt):
			f.Outcome = state.OutcomeDead
		default:
			f.Due = now + int64(q.retryWait(n, attempt))
		}
		q.failed = append(q.failed, f)
		if len(q.failed) == maxCmdItems {
			q.fail(state.CauseNack, now, &fx)
		}
	}
	q.fail(state.CauseNack, now, &fx)
	q.checkDrained()
	q.report(&fx)
	return refused
}

// extend moves the deadlines of owner's leases to now plus their duration.
func (q *Queue) extend(owner *Consumer, ext []Extend, now int64) []Refusal {
	q.mu.Lock()
	defer q.mu.Unlock()
	var refused []Refusal
	fc := flightCheck{q: q}
	for _, e := range ext {
		l, reason := q.held(owner, e.ID, e.Lease, &fc)
		if l == nil {
			refused = q.refuse(refused, e.ID, e.Lease, reason)
			continue
		}
		d := e.Duration
		if d <= 0 {
			d = q.b.cfg.LeaseTime
		}
		l.deadline = now + int64(d)
		if l.heapIdx >= 0 {
			q.leases.fix(l)
		} else {
			q.fifoRemove(l)
			q.leases.push(l)
		}
		q.dueBy(l.deadline) // an extension may shorten a lease
	}
	return refused
}

// Stats returns the queue's gauges and counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	st := q.st
	st.Name = q.name
	st.Ready = q.ready.len()
	st.Leased = q.nleased
	st.Delayed = len(q.delayed)
	st.Consumers = len(q.consumers)
	st.MaxSize = q.maxSize
	st.Closed = q.s.Closed()
	st.Paused = q.s.Paused()
	q.mu.Unlock()
	if q.dead != nil {
		q.dead.mu.Lock()
		st.Dead = q.dead.unfinished()
		q.dead.mu.Unlock()
	}
	return st
}

// Join waits until the queue holds nothing ready, leased or delayed, like
// JoinableQueue.join, until ctx ends or, if timeout > 0, for at most timeout.
// It reports whether that state was reached.
func (q *Queue) Join(ctx context.Context, timeout time.Duration) bool {
	var timer <-chan time.Time
	for {
		q.mu.Lock()
		if q.unfinished() == 0 {
			q.mu.Unlock()
			return true
		}
		ch := q.drained.wait()
		q.mu.Unlock()
		if timer == nil && timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-ch:
		case <-timer:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Close refuses further puts. Consumers drain what is left and then end.
// Closing twice is harmless. It fails only when the master cannot log it.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.s.Closed() {
		return nil
	}
	if err := q.b.admit(); err != nil {
		return err
	}
	cmd := state.Close{Queue: q.name, Time: q.b.now()}
	q.b.m.Apply(&cmd)
	q.record(&cmd)
	q.notFull.broadcast() // blocked puts fail now
	q.notEmpty.broadcast()
	q.checkDrained()
	return nil
}

// Closed reports whether the queue was closed.
func (q *Queue) Closed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.s.Closed()
}

// Peek lists up to limit ready items from offset, oldest first, without
// taking them.
func (q *Queue) Peek(offset, limit int) []Delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	if offset < 0 || offset >= q.ready.len() || limit <= 0 {
		return nil
	}
	out := make([]Delivery, 0, min(limit, q.ready.len()-offset))
	q.ready.ascend(func(it *state.Item) bool {
		if offset > 0 {
			offset--
			return true
		}
		out = append(out, deliver(it, nil, it.Attempts))
		return len(out) < limit
	})
	return out
}

// Requeue moves dead items back into this queue with their attempts reset:
// those with the given ids, or all when ids is empty. It reports how many
// moved. Leased or delayed dead items (someone is reading the dead-letter
// queue) stay.
func (q *Queue) Requeue(ids []uint64) (int, error) {
	if q.dead == nil {
		return 0, fmt.Errorf("%w: %q is a dead-letter queue; requeue its origin %q", ErrInvalid, q.name, q.origin.name)
	}
	want := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	now := q.b.now()
	d := q.dead
	set := [...]*Queue{q, d}
	lockQueues(set[:])
	defer unlockQueues(set[:])
	if err := q.b.admit(); err != nil {
		return 0, err
	}
	// A dead-letter queue's ready items are all named in its redo.
	moved := d.ready.removeRedo(func(id uint64) bool { return len(ids) == 0 || want[id] })
	if len(moved) == 0 {
		return 0, nil
	}
	for part := range slices.Chunk(moved, maxCmdItems) {
		cmd := state.Requeue{Queue: q.name, DeadQueue: d.name, Time: now, Items: make([]state.Item, 0, len(part))}
		for _, id := range part {
			cmd.Items = append(cmd.Items, *d.s.Item(id))
		}
		q.s.Requeue(&cmd, d.s)
		q.record(&cmd)
	}
	for _, id := range moved {
		q.ready.pushBack(id)
	}
	q.readyGrew(len(moved))
	d.readyShrank()
	return len(moved), nil
}
