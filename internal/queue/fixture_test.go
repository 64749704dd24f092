package queue

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/distq/distq/internal/clock"
	"github.com/distq/distq/internal/state"
)

// t0 is where every manual clock starts.
var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// newTestBroker starts a broker on a manual clock with no scan loop, so
// leases expire only when the test calls ExpireLeases, and delayed items
// become ready only when it calls PromoteDelayed.
func newTestBroker(t testing.TB, cfg Config) (*Broker, *clock.Manual) {
	t.Helper()
	clk := clock.NewManual(t0)
	if cfg.Clock == nil {
		cfg.Clock = clk
	}
	cfg.ManualScan = true
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b, clk
}

// promoteAll moves the manual clock on to the due time of the last delayed
// item, if that is later, and makes every delayed item ready. It reports
// how many it made ready.
func promoteAll(t testing.TB, b *Broker, clk *clock.Manual) int {
	t.Helper()
	var last int64
	for _, q := range b.order {
		q.mu.Lock()
		for _, d := range q.delayed {
			last = max(last, d.due)
		}
		q.mu.Unlock()
	}
	if d := time.Duration(last - clk.Now().UnixNano()); d > 0 {
		clk.Advance(d)
	}
	return b.PromoteDelayed()
}

func mustQueue(t testing.TB, b *Broker, name string) *Queue {
	t.Helper()
	q, err := b.Queue(name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func mustConsumer(t testing.TB, q *Queue) *Consumer {
	t.Helper()
	c, err := q.NewConsumer()
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	return c
}

// msgs makes one message per payload.
func msgs(payloads ...string) []Message {
	out := make([]Message, len(payloads))
	for i, p := range payloads {
		out[i] = Message{Payload: []byte(p)}
	}
	return out
}

// numbered makes n messages with payloads "0", "1", ...
func numbered(n int) []Message {
	out := make([]Message, n)
	for i := range out {
		out[i] = Message{Payload: []byte(strconv.Itoa(i))}
	}
	return out
}

func mustPut(t testing.TB, q *Queue, ms ...Message) []uint64 {
	t.Helper()
	ids, err := q.Put(context.Background(), ms, true, 0)
	if err != nil || len(ids) != len(ms) {
		t.Fatalf("Put(%d): ids %v, err %v", len(ms), ids, err)
	}
	return ids
}

// cancelled is a context that has already ended: Next and Get given it
// return at once with what is available.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// tryNext is a Next that never blocks.
func tryNext(c *Consumer) ([]Delivery, error) {
	return c.Next(cancelled(), nil)
}

// mustNext takes exactly n deliveries without blocking.
func mustNext(t testing.TB, c *Consumer, n int) []Delivery {
	t.Helper()
	ds, err := c.Next(cancelled(), nil)
	if len(ds) != n || (n > 0 && err != nil) {
		t.Fatalf("Next: %d deliveries (want %d), err %v", len(ds), n, err)
	}
	return ds
}

func mustGet(t testing.TB, q *Queue, max int, autoAck bool) []Delivery {
	t.Helper()
	ds, err := q.Get(context.Background(), max, true, 0, autoAck)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return ds
}

func ackOf(d Delivery) Ack { return Ack{ID: d.ID, Lease: d.Lease} }

func replyAck(d Delivery, to *Queue, payload string) Ack {
	return Ack{ID: d.ID, Lease: d.Lease, ReplyQueue: to, Reply: Message{Payload: []byte(payload)}}
}

// waitFor polls cond, which reads state that has no event to wait on (such
// as "a goroutine is now blocked in Put"), for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond) // polling, not synchronisation
	}
}

// blockedPuts and friends report whether someone waits on q's signals.
func waitingForRoom(q *Queue) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.notFull.ch != nil
}

func waitingForItems(q *Queue) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.notEmpty.ch != nil
}

func waitingForDrain(q *Queue) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.drained.ch != nil
}

func waitingForNoLeases(q *Queue) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.noLeases.ch != nil
}

func isWaiter(c *Consumer) bool {
	c.q.mu.Lock()
	defer c.q.mu.Unlock()
	return c.waiting
}

// checkLeaseIndex verifies q's lease index, with q.mu held, and returns
// the leases in flight by item id. The window holds the consecutive lease
// ids winBase..nextLease, its front slot a lease, every other slot a lease
// with that lease id or nothing; the overflow map holds leases from before
// the window under their lease ids, and is nil rather than empty; every
// lease is there once, every item in flight once, and nleased counts them.
func checkLeaseIndex(q *Queue) (map[uint64]*lease, error) {
	if n := len(q.win); n&(n-1) != 0 || (n > 0 && n < minWin) || q.winN > n || q.winHead < 0 || (n > 0 && q.winHead >= n) || (n == 0 && q.winHead != 0) {
		return nil, fmt.Errorf("%s: lease window ring of %d slots, head %d, %d in use", q.name, n, q.winHead, q.winN)
	}
	if q.winBase+uint64(q.winN) != q.nextLease+1 {
		return nil, fmt.Errorf("%s: lease window from %d of %d slots, last lease given %d", q.name, q.winBase, q.winN, q.nextLease)
	}
	if q.winN > 0 && *q.winSlot(0) == nil {
		return nil, fmt.Errorf("%s: lease window's front slot is empty", q.name)
	}
	for i := q.winN; i < len(q.win); i++ {
		if *q.winSlot(i) != nil {
			return nil, fmt.Errorf("%s: lease window's spare slot %d keeps a lease", q.name, i)
		}
	}
	if q.overflow != nil && len(q.overflow) == 0 {
		return nil, fmt.Errorf("%s: empty overflow map kept", q.name)
	}
	byItem := make(map[uint64]*lease, q.nleased)
	seen := make(map[*lease]bool, q.nleased)
	add := func(n uint64, l *lease) error {
		if l.lease != n {
			return fmt.Errorf("%s: lease %d indexed as %d", q.name, l.lease, n)
		}
		if seen[l] {
			return fmt.Errorf("%s: lease %d indexed twice", q.name, n)
		}
		seen[l] = true
		if _, ok := byItem[l.id]; ok {
			return fmt.Errorf("%s: item %d in flight twice", q.name, l.id)
		}
		byItem[l.id] = l
		if q.leaseByID(n) != l {
			return fmt.Errorf("%s: lease %d not found by its id", q.name, n)
		}
		return nil
	}
	for i := range q.winN {
		if l := *q.winSlot(i); l != nil {
			if err := add(q.winBase+uint64(i), l); err != nil {
				return nil, err
			}
		}
	}
	for n, l := range q.overflow {
		if n >= q.winBase {
			return nil, fmt.Errorf("%s: overflow lease %d not before the window (from %d)", q.name, n, q.winBase)
		}
		if err := add(n, l); err != nil {
			return nil, err
		}
	}
	if len(byItem) != q.nleased {
		return nil, fmt.Errorf("%s: %d leases indexed, %d counted", q.name, len(byItem), q.nleased)
	}
	return byItem, nil
}

// checkQueue verifies q's internal bookkeeping: every item is in exactly one
// place (the ready ring, the delayed heap or a lease), every lease in flight is in exactly one
// of the deadline FIFO (linked both ways, deadlines never decreasing) and
// the lease heap (ordered, indexes right), every lease is in its owner's
// list (linked both ways, counted) and nobody else's, recycled lease records
// are blank and used nowhere, and the waiter list is consistent. With idle
// set nobody may be blocked in Next.
func checkQueue(q *Queue, idle bool) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	inflight, err := checkLeaseIndex(q)
	if err != nil {
		return err
	}
	// Every item of the logged state is in exactly one place: ready,
	// delayed or in flight.
	var ids []uint64
	var bad error
	q.ready.ascend(func(it *state.Item) bool {
		ids = append(ids, it.ID)
		if _, ok := inflight[it.ID]; ok {
			bad = fmt.Errorf("%s: item %d both ready and in flight", q.name, it.ID)
		}
		if it.ID == 0 || (q.origin == nil && it.ID > q.s.NextID()) {
			bad = fmt.Errorf("%s: ready item has id %d (last given %d)", q.name, it.ID, q.s.NextID())
		}
		return bad == nil
	})
	if bad != nil {
		return bad
	}
	if len(ids) != q.ready.len() {
		return fmt.Errorf("%s: %d ready items found, %d counted", q.name, len(ids), q.ready.len())
	}
	// Delayed items: in heap order, each in no other place.
	for i := range q.delayed {
		d := &q.delayed[i]
		if i > 0 && q.delayed.less(i, (i-1)/2) {
			return fmt.Errorf("%s: delayed heap order broken at %d", q.name, i)
		}
		if _, ok := inflight[d.id]; ok {
			return fmt.Errorf("%s: item %d both delayed and in flight", q.name, d.id)
		}
		it := q.s.Item(d.id)
		if it == nil || d.due == 0 || it.Due() != d.due || (q.origin == nil && (d.id > q.s.NextID() || it.Attempts == 0)) {
			return fmt.Errorf("%s: bad delayed item %+v: %+v", q.name, *d, it)
		}
		ids = append(ids, d.id)
	}
	if len(q.ids) != 0 || len(q.replies) != 0 || len(q.failed) != 0 ||
		slices.ContainsFunc(q.replies[:cap(q.replies)], func(m Message) bool { return m.Payload != nil || m.Headers != nil }) ||
		slices.ContainsFunc(q.failed[:cap(q.failed)], func(f state.Failed) bool { return f != (state.Failed{}) }) {
		return fmt.Errorf("%s: scratch space keeps items", q.name)
	}
	slices.Sort(ids)
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			return fmt.Errorf("%s: item %d twice among ready and delayed", q.name, ids[i])
		}
	}
	for id := range inflight {
		if q.s.Item(id) == nil {
			return fmt.Errorf("%s: item %d in flight is not in the logged state", q.name, id)
		}
	}
	if n := len(ids) + len(inflight); n != q.s.Len() {
		return fmt.Errorf("%s: the logged state holds %d items, %d are ready, delayed or in flight", q.name, q.s.Len(), n)
	}
	// The FIFO: walked from its head, bounded so that a cycle is caught.
	inFIFO := make(map[*lease]bool)
	var prev *lease
	for l := q.fifoHead; l != nil; l = l.next {
		if inFIFO[l] || len(inFIFO) > q.nleased {
			return fmt.Errorf("%s: deadline FIFO loops", q.name)
		}
		inFIFO[l] = true
		if l.prev != prev {
			return fmt.Errorf("%s: FIFO item %d has a wrong prev link", q.name, l.id)
		}
		if l.heapIdx != -1 {
			return fmt.Errorf("%s: FIFO item %d also has heapIdx %d", q.name, l.id, l.heapIdx)
		}
		if prev != nil && prev.deadline > l.deadline {
			return fmt.Errorf("%s: FIFO deadlines out of order at item %d", q.name, l.id)
		}
		if inflight[l.id] != l {
			return fmt.Errorf("%s: FIFO item %d not in flight", q.name, l.id)
		}
		prev = l
	}
	if q.fifoTail != prev {
		return fmt.Errorf("%s: FIFO tail is not its last item", q.name)
	}
	if len(inFIFO)+len(q.leases) != q.nleased {
		return fmt.Errorf("%s: %d leases in FIFO, %d in heap, %d in flight", q.name, len(inFIFO), len(q.leases), q.nleased)
	}
	for i, l := range q.leases {
		if inFIFO[l] || l.prev != nil || l.next != nil {
			return fmt.Errorf("%s: heap item %d linked in the FIFO", q.name, l.id)
		}
		if l.heapIdx != i {
			return fmt.Errorf("%s: heap[%d] has heapIdx %d", q.name, i, l.heapIdx)
		}
		if i > 0 && q.leases[(i-1)/2].deadline > l.deadline {
			return fmt.Errorf("%s: heap order broken at %d", q.name, i)
		}
		if inflight[l.id] != l {
			return fmt.Errorf("%s: heap item %d not in flight", q.name, l.id)
		}
	}
	owned := 0
	for id, l := range inflight {
		if l.id != id || l.lease == 0 || l.lease > q.nextLease || l.attempt == 0 || l.deadline == 0 {
			return fmt.Errorf("%s: bad in-flight item %d: %+v", q.name, id, *l)
		}
		if l.owner != nil {
			owned++
			if _, ok := q.consumers[l.owner]; !ok {
				return fmt.Errorf("%s: item %d leased to an unregistered consumer", q.name, id)
			}
		} else if l.oprev != nil || l.onext != nil {
			return fmt.Errorf("%s: item %d leased by Get is in a consumer's list", q.name, id)
		}
	}
	if len(q.free) > maxFreeLeases {
		return fmt.Errorf("%s: %d free lease records, at most %d kept", q.name, len(q.free), maxFreeLeases)
	}
	for i, l := range q.free {
		if l.id != 0 || l.attempt != 0 || l.lease != 0 || l.owner != nil || l.deadline != 0 || l.heapIdx != -1 ||
			l.prev != nil || l.next != nil || l.oprev != nil || l.onext != nil {
			return fmt.Errorf("%s: free lease record %d not blank: %+v", q.name, i, *l)
		}
		if inFIFO[l] || slices.Contains(q.leases, l) || slices.Contains(q.free[:i], l) {
			return fmt.Errorf("%s: free lease record %d in use", q.name, i)
		}
	}
	held := 0
	for c := range q.consumers {
		if c.closed {
			return fmt.Errorf("%s: closed consumer registered", q.name)
		}
		if c.credit < 0 {
			return fmt.Errorf("%s: negative credit %d", q.name, c.credit)
		}
		n := 0
		var prev *lease
		for l := c.lhead; l != nil; l = l.onext {
			if n++; n > q.nleased {
				return fmt.Errorf("%s: a consumer's lease list loops", q.name)
			}
			if inflight[l.id] != l || l.owner != c {
				return fmt.Errorf("%s: consumer holds item %d it does not own", q.name, l.id)
			}
			if l.oprev != prev {
				return fmt.Errorf("%s: consumer's item %d has a wrong prev link", q.name, l.id)
			}
			prev = l
		}
		if c.ltail != prev {
			return fmt.Errorf("%s: a consumer's tail is not its last lease", q.name)
		}
		if n != c.nleased {
			return fmt.Errorf("%s: consumer counts %d leases, lists %d", q.name, c.nleased, n)
		}
		held += n
	}
	if held != owned {
		return fmt.Errorf("%s: consumers hold %d, %d items owned", q.name, held, owned)
	}
	for i, c := range q.waiters {
		if !c.waiting || c.closed {
			return fmt.Errorf("%s: waiter %d: waiting=%v closed=%v", q.name, i, c.waiting, c.closed)
		}
		for _, d := range q.waiters[:i] {
			if d == c {
				return fmt.Errorf("%s: consumer twice in waiters", q.name)
			}
		}
	}
	for _, c := range q.waiters[len(q.waiters):cap(q.waiters)] {
		if c != nil {
			return fmt.Errorf("%s: the waiter list's spare room keeps a consumer", q.name)
		}
	}
	if idle && len(q.waiters) > 0 {
		return fmt.Errorf("%s: %d waiters while nobody is in Next", q.name, len(q.waiters))
	}
	return nil
}

func mustCheck(t testing.TB, qs ...*Queue) {
	t.Helper()
	for _, q := range qs {
		if err := checkQueue(q, true); err != nil {
			t.Fatal(err)
		}
	}
}
