package state

import (
	"fmt"
	"slices"
	"strings"
)

// Machine is the logged state of every queue. It is not safe for
// concurrent use: the live master guards it (per queue), and a replay or a
// raft follower applies commands from one goroutine.
//
// The commands a live master logs name only items that are there (it logs
// a settle or a failure only of an item it leased) and ids are never given
// twice in a queue: so a command replayed over a snapshot that already
// holds later effects meets either the item it named or nothing, never
// another item of the same id (TestFuzzySnapshot).
type Machine struct {
	queues  map[string]*Queue
	leaseHW uint64
}

// Queue is the logged state of one queue, a dead-letter queue included.
type Queue struct {
	name string
	// origin is the queue a dead-letter queue serves ("" for others).
	origin string
	// nextID is the highest id ever given to an item of the queue (a
	// dead-letter queue's items keep their origin's ids).
	nextID    uint64
	closed    bool
	paused    bool
	items     table
	producers producers
}

// New returns an empty machine.
func New() *Machine { return &Machine{queues: make(map[string]*Queue)} }

// Queue returns the named queue, or nil if no command named it yet.
func (m *Machine) Queue(name string) *Queue { return m.queues[name] }

// Queues returns the names of the queues, sorted.
func (m *Machine) Queues() []string {
	names := make([]string, 0, len(m.queues))
	for n := range m.queues {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// LeaseHW is the highest lease id reserved.
func (m *Machine) LeaseHW() uint64 { return m.leaseHW }

// queue returns the named queue, made empty if new.
func (m *Machine) queue(name string) *Queue {
	q := m.queues[name]
	if q == nil {
		q = &Queue{name: name}
		m.queues[name] = q
	}
	return q
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// Origin is the queue a dead-letter queue serves, or "".
func (q *Queue) Origin() string { return q.origin }

// NextID is the highest id given to an item of the queue.
func (q *Queue) NextID() uint64 { return q.nextID }

// Closed reports whether the queue was closed.
func (q *Queue) Closed() bool { return q.closed }

// Paused reports whether the queue hands out nothing (an operator paused
// it).
func (q *Queue) Paused() bool { return q.paused }

// Len is the number of unsettled items.
func (q *Queue) Len() int { return q.items.Len() }

// Item returns the item of id, or nil. The pointer is valid until the
// queue next changes.
func (q *Queue) Item(id uint64) *Item { return q.items.Get(id) }

// Ascend calls fn with every item in increasing id order until fn returns
// false. fn must not change the machine.
func (q *Queue) Ascend(fn func(*Item) bool) { q.items.Ascend(fn) }

// Pin tells the queue that the live master walks its items in id order
// from id on (see NextFrom): the items from there are kept where that walk
// finds them. It changes no logged state, only where items are held.
func (q *Queue) Pin(id uint64) { q.items.pin = id }

// InWindow reports whether a walk with NextFrom would meet id (if id is
// not behind the walk).
func (q *Queue) InWindow(id uint64) bool { return q.items.InWindow(id) }

// NextFrom returns the first item from id on in the queue's window of
// consecutive ids, or nil. Items put with consecutive ids are all in it
// (from the pin on); items inserted out of order (requeued, dead-lettered)
// may not be: NextFrom is for the live master's walk over new items.
func (q *Queue) NextFrom(id uint64) *Item { return q.items.NextFrom(id) }

// Effects is what a command did that its record does not say.
type Effects struct {
	// Missing counts the ids a command named that were not there: settled
	// already. Zero in a live master's own commands; a replay over a
	// snapshot that already holds a command's effect sees them.
	Missing int
}

// Apply applies c. It never fails: a command that names what is not there
// changes nothing for it (see Effects), which makes every command
// idempotent.
func (m *Machine) Apply(c Command) Effects {
	var fx Effects
	m.apply(c, &fx)
	return fx
}

func (m *Machine) apply(c Command, fx *Effects) {
	switch c := c.(type) {
	case *Put:
		m.ApplyPut(c)
	case *Settle:
		fx.Missing += m.ApplySettle(c)
	case *SettleReply:
		fx.Missing += m.ApplySettleReply(c)
	case *Fail:
		fx.Missing += m.ApplyFail(c)
	case *Requeue:
		m.ApplyRequeue(c)
	case *Close:
		m.queue(c.Queue).closed = true
	case *Purge:
		fx.Missing += m.queue(c.Queue).Purge(c)
	case *Pause:
		m.queue(c.Queue).paused = c.Paused
	case *Leases:
		m.leaseHW = max(m.leaseHW, c.HW)
	case *Start:
	case *Batch:
		for _, sub := range c.Commands {
			m.apply(sub, fx)
		}
	case *QueueMeta:
		q := m.queue(c.Queue)
		if c.Origin != "" {
			q.origin = c.Origin
		}
		q.nextID = max(q.nextID, c.NextID)
		q.closed = q.closed || c.Closed
		q.paused = c.Paused
	case *Items:
		q := m.queue(c.Queue)
		for _, it := range c.Items {
			q.items.Put(it)
			q.nextID = max(q.nextID, it.ID)
		}
	case *Producers:
		q := m.queue(c.Queue)
		for i := range c.Producers {
			q.producers.restore(&c.Producers[i])
		}
	}
}

// The live master applies the commands of its hot paths by their own
// methods, without an interface in between; Apply does the same for a
// replay.

// ApplyPut applies a Put.
func (m *Machine) ApplyPut(c *Put) { m.queue(c.Queue).Put(c) }

// ApplySettle applies a Settle and reports how many of its ids were not
// there.
func (m *Machine) ApplySettle(c *Settle) (missing int) { return m.queue(c.Queue).Settle(c) }

// ApplySettleReply applies a SettleReply and reports how many of its ids
// were not there.
func (m *Machine) ApplySettleReply(c *SettleReply) (missing int) {
	missing, _ = m.queue(c.Queue).SettleReply(c, m.queue(c.ReplyQueue))
	return missing
}

// ApplyRequeue applies a Requeue.
func (m *Machine) ApplyRequeue(c *Requeue) { m.queue(c.Queue).Requeue(c, m.queue(c.DeadQueue)) }

// The live master, which holds each queue's state, applies the commands of
// its hot paths to them directly, without looking the queues up by name:
// the caller passes the queues the command names.

// Put applies a Put of q's. It reports whether every item went into the
// window of consecutive ids (see NextFrom), as the items of a put in order
// do.
func (q *Queue) Put(c *Put) (inWindow bool) {
	inWindow = true
	for i := range c.Items {
		id := c.FirstID + uint64(i)
		s, in := q.items.insert(id)
		setNew(s, id, 0, &c.Items[i])
		inWindow = inWindow && in
	}
	if n := len(c.Items); n > 0 {
		q.nextID = max(q.nextID, c.FirstID+uint64(n)-1)
	}
	if c.Producer != (Producer{}) {
		q.producers.record(c)
	}
	return inWindow
}

// Settle applies a Settle of q's and reports how many of its ids were not
// there.
func (q *Queue) Settle(c *Settle) (missing int) {
	for _, id := range c.IDs {
		if !q.items.Remove(id) {
			missing++
		}
	}
	return missing
}

// Purge applies a Purge of q's and reports how many of its ids were not
// there.
func (q *Queue) Purge(c *Purge) (missing int) {
	for _, id := range c.IDs {
		if !q.items.Remove(id) {
			missing++
		}
	}
	return missing
}

// SettleReply applies a SettleReply from q into r, its reply queue. It
// reports how many of its ids were not there, and, as Put does, whether
// every reply went into r's window.
func (q *Queue) SettleReply(c *SettleReply, r *Queue) (missing int, inWindow bool) {
	inWindow = true
	for i, id := range c.IDs {
		if !q.items.Remove(id) {
			missing++
		}
		if i < len(c.Replies) {
			rid := c.FirstReplyID + uint64(i)
			s, in := r.items.insert(rid)
			setNew(s, rid, id, &c.Replies[i])
			inWindow = inWindow && in
		}
	}
	if n := min(len(c.IDs), len(c.Replies)); n > 0 {
		r.nextID = max(r.nextID, c.FirstReplyID+uint64(n)-1)
	}
	return missing, inWindow
}

// Requeue applies a Requeue from d, q's dead-letter queue, into q.
func (q *Queue) Requeue(c *Requeue, d *Queue) {
	d.origin = q.name
	for i := range c.Items {
		it := c.Items[i]
		d.items.Remove(it.ID)
		it.Attempts = 0
		it.setExt(it.Headers(), "", 0)
		q.items.Put(it)
		q.nextID = max(q.nextID, it.ID)
	}
}

// ApplyFail applies a Fail: each item that is there is ready again, now or
// at its due time, or moves to the dead-letter queue. It reports how many
// were not there.
func (m *Machine) ApplyFail(c *Fail) (missing int) {
	var d *Queue
	if c.DeadQueue != "" {
		d = m.queue(c.DeadQueue)
	}
	return m.queue(c.Queue).Fail(c, d)
}

// Fail applies a Fail of q's; d is q's dead-letter queue (nil if no item
// dies). It reports how many items were not there.
func (q *Queue) Fail(c *Fail, d *Queue) (missing int) {
	for i := range c.Items {
		f := &c.Items[i]
		if f.Outcome == OutcomeDead && d != nil {
			// The id was given to d even if the item is not here: a
			// replay over a snapshot that read neither queue while it was
			// dead (requeued in between) must count it as the live state
			// did.
			d.origin = q.name
			d.nextID = max(d.nextID, f.ID)
		}
		it := q.items.Get(f.ID)
		if it == nil {
			missing++
			continue
		}
		switch f.Outcome {
		case OutcomeDead:
			moved := *it
			q.items.Remove(f.ID)
			moved.Attempts = f.Attempts
			moved.setExt(moved.Headers(), f.Error, 0)
			d.items.Put(moved)
		default:
			it.Attempts = f.Attempts
			it.setExt(it.Headers(), f.Error, f.Due)
		}
	}
	return missing
}

// setNew fills slot s with the new item n under id.
//
// It sets the fields one by one rather than assigning a whole Item: the
// slot lives in a table block on the heap, and a struct assignment there
// is a typed clear and copy of all 56 bytes, with a bulk write barrier
// over them while the collector marks; field by field, only the two
// pointers that change take a barrier. A blank slot, as a put's always
// is, needs no ext cleared.
func setNew(s *Item, id, replyTo uint64, n *NewItem) {
	s.ID = id
	s.ReplyTo = replyTo
	s.Payload = n.Payload
	s.Attempts = 0
	if len(n.Headers) > 0 {
		s.ext = &itemExt{headers: n.Headers}
	} else if s.ext != nil {
		s.ext = nil
	}
}

// Canonical is a dump of the whole state in a fixed order, for tests that
// compare two machines (a replayed one against the one that was logged).
func (m *Machine) Canonical() string {
	var b strings.Builder
	fmt.Fprintf(&b, "leases %d\n", m.leaseHW)
	for _, name := range m.Queues() {
		q := m.queues[name]
		if q.Len() == 0 && q.nextID == 0 && !q.closed && !q.paused && q.origin == "" && q.producers.len() == 0 {
			continue // named by a command that changed nothing
		}
		fmt.Fprintf(&b, "queue %q origin %q next %d closed %v paused %v items %d\n", name, q.origin, q.nextID, q.closed, q.paused, q.Len())
		q.Ascend(func(it *Item) bool {
			fmt.Fprintf(&b, "  %d reply %d attempts %d due %d err %q payload %q", it.ID, it.ReplyTo, it.Attempts, it.Due(), it.LastErr(), it.Payload)
			if h := it.Headers(); h != nil {
				keys := make([]string, 0, len(h))
				for k := range h {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				for _, k := range keys {
					fmt.Fprintf(&b, " %q=%q", k, h[k])
				}
			}
			b.WriteByte('\n')
			return true
		})
		q.producers.canonical(&b)
	}
	return b.String()
}

// Declare makes the named queue, empty, if no command named it yet; origin
// names the queue a dead-letter queue serves. The live master declares its
// queues before it serves, so that applying commands never adds to the
// machine's map of queues while other queues are read.
func (m *Machine) Declare(name, origin string) *Queue {
	q := m.queue(name)
	if origin != "" {
		q.origin = origin
	}
	return q
}

// AscendFrom calls fn with every item whose id is at least from, in
// increasing id order, until fn returns false: a snapshot reads a queue in
// chunks this way, letting go of it between two.
func (q *Queue) AscendFrom(from uint64, fn func(*Item) bool) {
	q.items.AscendFrom(from, fn)
}
