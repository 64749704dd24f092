package queue

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/distq/distq/internal/state"
)

// Bounds on one Next: a consumer that granted a large credit still gets its
// deliveries in messages of reasonable size.
const (
	MaxBatch      = 1024
	MaxBatchBytes = 1 << 20
)

// Consumer is one stream of deliveries under credit-based flow control: it
// receives at most as many deliveries as it was granted credit, and every
// item it holds is leased to it alone. Closing it (the stream ended for
// whatever reason) returns everything it holds to the queue at once.
//
// Grant, Ack, Nack, Extend and Close may be called from a goroutine other
// than the one calling Next.
type Consumer struct {
	q      *Queue
	notify chan struct{} // capacity 1: "something may have changed"

	// Guarded by q.mu.
	credit int
	// The leases this consumer holds, oldest first, linked through their
	// oprev and onext, and how many there are.
	lhead, ltail *lease
	nleased      int
	waiting      bool // in q.waiters
	closed       bool
	// What an operator sees of it (ConsumerInfo): counted per batch or
	// per call, under the lock the batch takes anyway.
	delivered, acked, failed uint64

	// Set once, before the consumer is shared.
	peer  string
	since int64  // unix ns
	seq   uint64 // its number among the queue's consumers, from 1
	// lastSeen is when its peer last sent anything (unix ns), told by
	// the edge (Touch) without the queue's lock.
	lastSeen atomic.Int64
}

// NewConsumer registers a consumer with no credit.
func (q *Queue) NewConsumer() (*Consumer, error) { return q.NewConsumerFrom("") }

// NewConsumerFrom registers a consumer with no credit, for peer (a network
// address, shown to operators by Consumers; "" for one in this process).
func (q *Queue) NewConsumerFrom(peer string) (*Consumer, error) {
	if q.b.isDraining() {
		return nil, ErrShutdown
	}
	now := q.b.now()
	c := &Consumer{q: q, notify: make(chan struct{}, 1), peer: peer, since: now}
	c.lastSeen.Store(now)
	q.mu.Lock()
	q.nconsumers++
	c.seq = q.nconsumers
	q.consumers[c] = struct{}{}
	q.joined.broadcast()
	q.mu.Unlock()
	return c, nil
}

// WaitConsumers blocks until at least n consumers read the queue at once,
// or ctx ends. A producer uses it to start once its slaves are connected,
// so that their start-up is not counted as its work's time. Only ctx ends
// the wait early: a closed or draining queue does not.
func (q *Queue) WaitConsumers(ctx context.Context, n int) error {
	for {
		q.mu.Lock()
		if len(q.consumers) >= n {
			q.mu.Unlock()
			return nil
		}
		ch := q.joined.wait()
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Queue is the queue this consumer reads.
func (c *Consumer) Queue() *Queue { return c.q }

func (c *Consumer) wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Grant adds n to the consumer's credit. It wakes the consumer only if it
// had none: with credit left, a consumer in Next waits for items, and an
// item's arrival wakes it (wakeWaiters). A worker grants credit with nearly
// every ack, so waking it each time cost a goroutine switch per task, and on a
// lone task the switch came just before the waiter of the ack's result ran.
func (c *Consumer) Grant(n int) {
	if n <= 0 {
		return
	}
	c.q.mu.Lock()
	starved := c.credit == 0
	c.credit += n
	c.q.mu.Unlock()
	if starved {
		c.wake()
	}
}

// Next blocks until it can return at least one delivery, at most as many as
// the remaining credit, appended to buf. It returns ErrClosed once the queue
// is closed and drained, ErrShutdown once the broker is draining and this
// consumer holds nothing, and ctx's error when ctx ends. With a journal,
// it returns its deliveries once the records that made their items are
// durable (see unsynced.go).
func (c *Consumer) Next(ctx context.Context, buf []Delivery) ([]Delivery, error) {
	q := c.q
	for {
		q.mu.Lock()
		if c.closed {
			q.mu.Unlock()
			return buf, fmt.Errorf("%w: consumer closed", ErrInvalid)
		}
		if q.s.Closed() && q.unfinished() == 0 {
			// Checked before draining: a consumer of a finished queue
			// gets its clean end even while the master shuts down.
			c.stopWaiting()
			q.mu.Unlock()
			return buf, fmt.Errorf("%w: %q", ErrClosed, q.name)
		}
		if q.b.isDraining() {
			if c.nleased == 0 {
				c.stopWaiting()
				q.mu.Unlock()
				return buf, ErrShutdown
			}
		} else if n := min(c.credit, q.ready.len(), MaxBatch); n > 0 && !q.s.Paused() {
			now := q.b.now() // when taken: a Next that waited gets full leases
			size := 0
			start := len(buf)
			for len(buf)-start < n && size < MaxBatchBytes {
				d := q.lease(c, now)
				size += len(d.Payload)
				buf = append(buf, d)
			}
			c.credit -= len(buf) - start
			c.delivered += uint64(len(buf) - start)
			c.stopWaiting()
			q.readyShrank()
			need := q.syncNeed(buf[start:])
			q.mu.Unlock()
			if err := q.b.waitDurable(ctx, need); err != nil {
				// Leased, and held by c until it closes.
				return buf[:start], err
			}
			return buf, nil
		} else if c.credit > 0 && !c.waiting {
			c.waiting = true
			q.waiters = append(q.waiters, c)
		}
		q.mu.Unlock()
		select {
		case <-c.notify:
		case <-ctx.Done():
			q.mu.Lock()
			c.stopWaiting()
			q.mu.Unlock()
			return buf, ctx.Err()
		}
	}
}

// stopWaiting is called with q.mu held whenever c leaves Next, so that
// q.waiters lists only consumers that are blocked in Next right now.
//
// Why: wakeWaiters spends the wake-ups for n new items on the first waiters
// whose credit covers n and leaves the rest asleep. Before this, a consumer
// stayed on the list after Next returned (on ctx's end, or with deliveries
// after a wake-up from Grant), and a wake-up spent on it, or on a consumer
// woken just before its ctx ended, was lost: items stayed ready while other
// consumers with credit slept in Next. So c leaves the list here, and if
// items are ready it passes the wake-up on to the remaining waiters.
func (c *Consumer) stopWaiting() {
	q := c.q
	if c.waiting {
		if i := slices.Index(q.waiters, c); i >= 0 {
			q.waiters = slices.Delete(q.waiters, i, i+1)
		}
		c.waiting = false
	}
	if n := q.ready.len(); n > 0 {
		q.wakeWaiters(n)
	}
}

// Ack settles items leased to this consumer, putting replies as asked.
func (c *Consumer) Ack(acks []Ack) []Refusal { return c.q.ack(c, acks) }

// Nack returns items leased to this consumer.
func (c *Consumer) Nack(nacks []Nack) []Refusal { return c.q.nack(c, nacks, c.q.b.now()) }

// Extend pushes the deadlines of leases this consumer holds.
func (c *Consumer) Extend(ext []Extend) []Refusal { return c.q.extend(c, ext, c.q.b.now()) }

// Held reports how many items are leased to this consumer.
func (c *Consumer) Held() int {
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	return c.nleased
}

// link appends l to the consumer's leases. Called with q.mu held.
func (c *Consumer) link(l *lease) {
	l.oprev, l.onext = c.ltail, nil
	if c.ltail != nil {
		c.ltail.onext = l
	} else {
		c.lhead = l
	}
	c.ltail = l
	c.nleased++
}

// unlink takes l out of the consumer's leases. Called with q.mu held.
func (c *Consumer) unlink(l *lease) {
	if l.oprev != nil {
		l.oprev.onext = l.onext
	} else {
		c.lhead = l.onext
	}
	if l.onext != nil {
		l.onext.oprev = l.oprev
	} else {
		c.ltail = l.oprev
	}
	l.oprev, l.onext = nil, nil
	c.nleased--
}

// Close unregisters the consumer and returns every item it holds to the
// front of the queue at once, without a retry's delay (see giveBack); the
// attempt counts, as the consumer may have crashed on it. It reports how
// many items went back. Safe to call twice.
func (c *Consumer) Close() int {
	q := c.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if c.closed {
		return 0
	}
	c.closed = true
	delete(q.consumers, c)
	c.stopWaiting()
	// Newest first: each goes back to the front, so the items end up in
	// the order they were leased. unlease recycles l, so prev is read first.
	var fx effects
	now := q.b.now()
	n := 0
	for l := c.ltail; l != nil; {
		prev := l.oprev
		id, attempt := q.unlease(l)
		q.giveBack(id, attempt, "consumer disconnected")
		if len(q.failed) == maxCmdItems {
			q.fail(state.CauseDisconnected, now, &fx)
		}
		n++
		l = prev
	}
	if n > 0 {
		q.fail(state.CauseDisconnected, now, &fx)
		q.checkDrained()
	}
	q.report(&fx)
	c.wake()
	return n
}
