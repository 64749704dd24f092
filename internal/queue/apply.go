package queue

// The changes that cross from one queue into another are commands: a value
// that names the queues it writes and records what the live caller decided
// (which item, with which attempts and error, with which id), and an apply
// method that makes the change and nothing else. The caller holds the locks
// of every queue the command names (lockQueues, or the dead-letter queue's
// lock taken after its origin's, which is lock order), and does what
// surrounds the change: before, it reads the clock and the configuration
// and decides; after, it counts, wakes waiters and logs (see effects.go).
// So apply reads no clock and no configuration and logs nothing, and once
// the commands are journaled (issue 9), a replay applies them again to the
// same state, silently (docs/durable-design.md §1.3: the outcome is
// logged, not the input).

// deadLetter moves an item that is no longer leased (it left its queue
// when its lease ended) into that queue's dead-letter queue.
type deadLetter struct {
	to  *Queue // the dead-letter queue
	e   entry  // with the attempts and the last error it dies with
	why string // whyMaxAttempts or whyFailed
}

func (c *deadLetter) apply() deadLettered {
	c.to.ready.pushBack(c.e)
	return deadLettered{id: c.e.id, attempts: c.e.attempts, err: c.e.lastErr(), why: c.why}
}

// settleReply puts the reply to an acknowledged item into the reply queue,
// with the id the caller gave it. It is the reply's half of an ack with a
// reply; the other half, the item leaving its queue, is unlease's as long
// as an item in flight lives in its lease. Both are made under the locks of
// both queues, in one step of the ack, so nobody sees one without the other.
type settleReply struct {
	to      *Queue // the reply queue
	id      uint64 // the reply's id: the reply queue's next
	replyTo uint64 // the acknowledged item's id
	reply   *Message
}

func (c *settleReply) apply() {
	r := c.to
	r.nextID = max(r.nextID, c.id)
	r.ready.pushBack(newEntry(c.id, c.reply, c.replyTo))
}

// requeue moves the ready items of a dead-letter queue back to the back of
// its origin, as fresh items: no attempts, no error. Leased or delayed dead
// items (someone is reading the dead-letter queue) are not ready and stay.
type requeue struct {
	origin *Queue
	all    bool            // every ready dead item; else those of ids
	ids    map[uint64]bool // the items asked for
}

// apply reports how many items moved.
func (c *requeue) apply() int {
	q := c.origin
	moved := q.dead.ready.remove(func(e *entry) bool { return c.all || c.ids[e.id] })
	for _, e := range moved {
		e.attempts = 0
		e.setLastErr("")
		q.ready.pushBack(e)
	}
	return len(moved)
}
