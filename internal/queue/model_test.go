package queue

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distq/distq/internal/clock"
	"github.com/distq/distq/internal/state"
)

var errText = []string{"err-a", "err-b", "err-c", "err-d"}

var modelSeed = flag.Uint64("model.seed", 0, "first seed of TestModelRandomized (0: from the time)")

// The reference model of TestModelRandomized: every item put into "tasks"
// is in exactly one state, and every lease the queue handed out is recorded.

type mState int

const (
	mReady mState = iota + 1
	mLeased
	mDelayed // nacked for a retry, until due
	mAcked
	mDead
	mPurged // thrown away by an operator (Purge)
)

type mItem struct {
	id       uint64
	state    mState
	attempts uint32
	lastErr  string
	lease    uint64
	owner    *mConsumer // nil for a lease taken by Get
	deadline int64
	// due is the retry's due time as logged: set by a nack for a retry,
	// kept once the item is ready again (nothing is logged then), cleared
	// by a failure logged without one, a dead-lettering or a requeue. A
	// restart makes an item with a due delayed until then.
	due     int64
	acks    int // times acknowledged (auto-ack included)
	replies int // replies put for it
}

type mConsumer struct {
	c       *Consumer
	name    string
	credit  int
	granted int
	got     int // deliveries received in total
	held    idSet
	closed  bool
}

// leaseRec is one delivery ever made, for settles with stale leases.
type leaseRec struct {
	id, lease uint64
	owner     *mConsumer
}

// idSet is a set of ids that can pick a member at random in O(1).
type idSet struct {
	pos map[uint64]int
	ids []uint64
}

func (s *idSet) add(id uint64) {
	if s.pos == nil {
		s.pos = make(map[uint64]int)
	}
	if _, ok := s.pos[id]; ok {
		panic(fmt.Sprintf("idSet: %d added twice", id))
	}
	s.pos[id] = len(s.ids)
	s.ids = append(s.ids, id)
}

func (s *idSet) del(id uint64) {
	i, ok := s.pos[id]
	if !ok {
		panic(fmt.Sprintf("idSet: %d not a member", id))
	}
	last := s.ids[len(s.ids)-1]
	s.ids[i] = last
	s.pos[last] = i
	s.ids = s.ids[:len(s.ids)-1]
	delete(s.pos, id)
}

func (s *idSet) has(id uint64) bool { _, ok := s.pos[id]; return ok }
func (s *idSet) len() int           { return len(s.ids) }

func (s *idSet) pick(rng *rand.Rand) uint64 { return s.ids[rng.IntN(len(s.ids))] }

type modelRun struct {
	t           *testing.T
	seed        uint64
	step        int
	rng         *rand.Rand
	b           *Broker
	clk         *clock.Manual
	q, dq, res  *Queue
	leaseTime   time.Duration
	maxAttempts int
	maxSize     int
	retryMin    time.Duration
	retryMax    time.Duration

	items          map[uint64]*mItem
	ready, dead    idSet
	leased         idSet
	delayed        idSet
	cons           []*mConsumer // open
	closedCons     []*mConsumer
	history        []leaseRec
	lastLease      uint64
	want           Stats  // of "tasks"
	deadPut        uint64 // items into the dead-letter queue since the broker started
	replies        int    // replies kept in results
	replyPut       int    // replies put since the broker started
	acked          int
	purged         int // items in mPurged
	closeAt        int // step at which the queue is closed
	closed, drains bool
	paused         bool
	nextCons       int
	log            []logEntry

	// Crash and restart, in runs with a journal (see durableStep).
	cfg      Config // of the broker, to start it again
	j        *memJournal
	snap     *memSnapshot // the last snapshot, once the log has its end
	plan     crashPlan
	restarts int
	tally    *restartTally
}

// restartTally counts what the runs' crashes and restarts exercised.
type restartTally struct {
	crashes, cutTail, cleanStops, snapshots, fromSnapshot int
	lostPuts, lostAcks, lostFails                         int
}

func (r *modelRun) fail(format string, args ...any) {
	r.t.Helper()
	var ops []string
	for _, e := range r.log {
		ops = append(ops, fmt.Sprintf("%d: ", e.step)+fmt.Sprintf(e.format, e.args...))
	}
	r.t.Fatalf("seed %d, step %d: %s\nlast operations:\n  %s", r.seed, r.step, fmt.Sprintf(format, args...), strings.Join(ops, "\n  "))
}

// logEntry is one operation, formatted only if the run fails.
type logEntry struct {
	step   int
	format string
	args   []any
}

func (r *modelRun) logf(format string, args ...any) {
	if len(r.log) == 40 {
		r.log = r.log[1:]
	}
	r.log = append(r.log, logEntry{r.step, format, args})
}

func (r *modelRun) now() int64 { return r.clk.Now().UnixNano() }

// ownerName names a settler in logs: a consumer, or "queue" for Get leases.
func ownerName(mc *mConsumer) string {
	if mc == nil {
		return "queue"
	}
	return mc.name
}

// ---- model transitions ----

func (r *modelRun) unlease(it *mItem) {
	r.leased.del(it.id)
	if it.owner != nil {
		it.owner.held.del(it.id)
	}
	it.owner, it.lease, it.deadline = nil, 0, 0
}

func (r *modelRun) toReady(it *mItem) {
	it.state = mReady
	r.ready.add(it.id)
}

func (r *modelRun) toDead(it *mItem) {
	it.state, it.due = mDead, 0
	r.dead.add(it.id)
	r.want.DeadTotal++
	r.deadPut++
}

func (r *modelRun) ack(it *mItem) {
	if it.acks != 0 || it.replies != 0 {
		r.fail("item %d acknowledged again", it.id)
	}
	it.state = mAcked
	it.acks++
	r.acked++
	r.want.AckedTotal++
}

func (r *modelRun) giveBack(it *mItem, reason string) {
	it.lastErr, it.due = reason, 0
	if int(it.attempts) >= r.maxAttempts {
		r.toDead(it)
	} else {
		r.toReady(it)
	}
}

// retry is a nack for a retry: dead after the last attempt, else delayed
// for wait.
func (r *modelRun) retry(it *mItem, reason string, wait time.Duration) {
	it.lastErr = reason
	if int(it.attempts) >= r.maxAttempts {
		r.toDead(it)
		return
	}
	it.state = mDelayed
	it.due = r.now() + int64(wait)
	r.delayed.add(it.id)
}

// modelBackoff is backoff written the slow way: the delay doubles from
// lo with every attempt after the first, up to hi, and the wait is its
// half plus the jitter's share of the other half.
func modelBackoff(lo, hi time.Duration, attempts uint32, jitter float64) time.Duration {
	d := lo
	for k := uint32(1); k < attempts && d < hi; k++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(jitter*float64(d/2))
}

// unfinished: items ready, leased or delayed.
func (r *modelRun) unfinished() int { return r.ready.len() + r.leased.len() + r.delayed.len() }

// takeReady checks one delivery of a ready item and moves it on.
func (r *modelRun) takeReady(d Delivery, owner *mConsumer, autoAck bool) {
	r.t.Helper()
	it := r.items[d.ID]
	if it == nil || it.state != mReady {
		r.fail("delivered item %d is not ready (%+v)", d.ID, it)
	}
	it.attempts++
	if d.Attempt != it.attempts || d.Error != it.lastErr {
		r.fail("delivery %+v: want attempt %d, error %q", d, it.attempts, it.lastErr)
	}
	r.ready.del(it.id)
	r.want.DeliveredTotal++
	if it.attempts > 1 {
		r.want.RedeliveredTotal++
	}
	if autoAck {
		if d.Lease != 0 || !d.Deadline.IsZero() {
			r.fail("auto-acked delivery with lease: %+v", d)
		}
		r.ack(it)
		return
	}
	if d.Lease <= r.lastLease {
		r.fail("lease %d not new (last %d)", d.Lease, r.lastLease)
	}
	r.lastLease = d.Lease
	deadline := r.clk.Now().Add(r.leaseTime)
	if !d.Deadline.Equal(deadline) {
		r.fail("deadline %v, want %v", d.Deadline, deadline)
	}
	it.state, it.lease, it.owner, it.deadline = mLeased, d.Lease, owner, deadline.UnixNano()
	r.leased.add(it.id)
	if owner != nil {
		owner.held.add(it.id)
	}
	r.history = append(r.history, leaseRec{d.ID, d.Lease, owner})
}

// expect says whether settler may settle (id, lease) now, and if not why.
func (r *modelRun) expect(settler *mConsumer, id, lease uint64) (*mItem, string) {
	it := r.items[id]
	if it == nil || it.state != mLeased {
		return nil, ReasonUnknownItem
	}
	if it.lease != lease || it.owner != settler {
		return nil, ReasonNotLeased
	}
	return it, ""
}

// ---- operations ----

func (r *modelRun) opPut() {
	k := 1 + r.rng.IntN(4)
	room := k
	if r.maxSize > 0 {
		room = max(0, min(k, r.maxSize-r.ready.len()))
	}
	nowait := room < k || r.rng.IntN(2) == 0 // never block
	ids, err := r.q.Put(context.Background(), numbered(k), nowait, 0)
	r.logf("put %d nowait=%v -> %v %v", k, nowait, ids, err)
	if len(ids) > 0 {
		r.sync() // answered once on disk, as the gRPC edge does
	}
	switch {
	case r.closed:
		if !errors.Is(err, ErrClosed) || len(ids) != 0 {
			r.fail("Put on closed queue: %v, %v", ids, err)
		}
	case room < k:
		if !errors.Is(err, ErrFull) || len(ids) != room {
			r.fail("Put of %d with room %d: %v, %v", k, room, ids, err)
		}
	default:
		if err != nil || len(ids) != k {
			r.fail("Put of %d: %v, %v", k, ids, err)
		}
	}
	for _, id := range ids {
		if r.items[id] != nil {
			r.fail("id %d reused", id)
		}
		it := &mItem{id: id}
		r.items[id] = it
		r.toReady(it)
	}
	r.want.PutTotal += uint64(len(ids))
}

func (r *modelRun) pickConsumer() *mConsumer {
	if len(r.cons) == 0 {
		return nil
	}
	return r.cons[r.rng.IntN(len(r.cons))]
}

func (r *modelRun) opGrant() {
	mc := r.pickConsumer()
	if mc == nil {
		return
	}
	n := 1 + r.rng.IntN(3)
	mc.c.Grant(n)
	mc.credit += n
	mc.granted += n
	r.logf("grant %s %d", mc.name, n)
}

func (r *modelRun) opNext() {
	mc := r.pickConsumer()
	if mc == nil {
		return
	}
	ds, err := tryNext(mc.c)
	r.logf("next %s (credit %d, ready %d) -> %d %v", mc.name, mc.credit, r.ready.len(), len(ds), err)
	n := min(mc.credit, r.ready.len())
	if r.paused {
		n = 0
	}
	switch {
	case r.drains:
		want := error(context.Canceled)
		switch {
		case r.closed && r.unfinished() == 0:
			want = ErrClosed // a finished queue ends cleanly even while draining
		case mc.held.len() == 0:
			want = ErrShutdown
		}
		if !errors.Is(err, want) || len(ds) != 0 {
			r.fail("Next while draining: %d, %v; want %v", len(ds), err, want)
		}
		return
	case n > 0:
		if err != nil || len(ds) != n {
			r.fail("Next: %d deliveries, %v; want %d", len(ds), err, n)
		}
	case r.closed && r.unfinished() == 0:
		if !errors.Is(err, ErrClosed) || len(ds) != 0 {
			r.fail("Next on drained queue: %d, %v", len(ds), err)
		}
		return
	default:
		if !errors.Is(err, context.Canceled) || len(ds) != 0 {
			r.fail("Next with nothing to give: %d, %v", len(ds), err)
		}
		return
	}
	for _, d := range ds {
		r.takeReady(d, mc, false)
	}
	mc.credit -= n
	mc.got += n
	if mc.got > mc.granted {
		r.fail("%s got %d deliveries with %d credit granted", mc.name, mc.got, mc.granted)
	}
}

func (r *modelRun) opGet(autoAck bool) {
	max := 1 + r.rng.IntN(3)
	ds, err := r.q.Get(context.Background(), max, true, 0, autoAck)
	r.logf("get %d autoAck=%v -> %d %v", max, autoAck, len(ds), err)
	if autoAck && len(ds) > 0 {
		r.sync()
	}
	n := min(max, r.ready.len())
	if r.paused {
		n = 0
	}
	switch {
	case r.drains:
		if !errors.Is(err, ErrShutdown) || ds != nil {
			r.fail("Get while draining: %v, %v", ds, err)
		}
	case n > 0:
		if err != nil || len(ds) != n {
			r.fail("Get: %d, %v; want %d", len(ds), err, n)
		}
	case r.closed && r.unfinished() == 0:
		if !errors.Is(err, ErrClosed) || ds != nil {
			r.fail("Get on drained queue: %v, %v", ds, err)
		}
	default:
		if err != nil || ds != nil {
			r.fail("Get on empty queue: %v, %v", ds, err)
		}
	}
	for _, d := range ds {
		r.takeReady(d, nil, autoAck)
	}
}

// settleTargets picks the settler and what it settles: mostly its own
// current leases, sometimes stale ones from the history, another owner's
// current lease, a duplicate or an unknown id.
func (r *modelRun) settleTargets() (*mConsumer, []leaseRec) {
	var settler *mConsumer
	if len(r.cons) > 0 && r.rng.IntN(4) != 0 {
		settler = r.pickConsumer()
		if r.rng.IntN(4) != 0 { // mostly one that holds something
			for _, mc := range r.cons {
				if mc.held.len() > 0 {
					settler = mc
					break
				}
			}
		}
	}
	var own []uint64
	if settler != nil {
		own = settler.held.ids
	} else {
		for _, id := range r.leased.ids {
			if r.items[id].owner == nil {
				own = append(own, id)
			}
		}
	}
	var out []leaseRec
	for range 1 + r.rng.IntN(3) {
		switch x := r.rng.IntN(20); {
		case x < 14 && len(own) > 0:
			it := r.items[own[r.rng.IntN(len(own))]]
			out = append(out, leaseRec{it.id, it.lease, settler})
		case x < 17 && len(r.history) > 0:
			h := r.history[r.rng.IntN(len(r.history))]
			out = append(out, leaseRec{h.id, h.lease, settler})
		case x < 19 && r.leased.len() > 0:
			it := r.items[r.leased.pick(r.rng)]
			out = append(out, leaseRec{it.id, it.lease, settler})
		case len(out) > 0:
			out = append(out, out[0]) // the same settle twice in one batch
		default:
			out = append(out, leaseRec{uint64(1 << 40), 1, settler})
		}
	}
	return settler, out
}

func checkRefusals(r *modelRun, what string, got, want []Refusal) {
	r.t.Helper()
	if len(got) != len(want) {
		r.fail("%s: refused %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			r.fail("%s: refused %v, want %v", what, got, want)
		}
	}
}

func (r *modelRun) opAck() {
	settler, targets := r.settleTargets()
	acks := make([]Ack, len(targets))
	var want []Refusal
	for i, tg := range targets {
		acks[i] = Ack{ID: tg.id, Lease: tg.lease}
		withReply := r.rng.IntN(4) != 0
		if withReply {
			acks[i].ReplyQueue = r.res
			acks[i].Reply = Message{Payload: replyPayload(tg.id)}
		}
		it, reason := r.expect(settler, tg.id, tg.lease)
		if it == nil {
			want = append(want, Refusal{ID: tg.id, Lease: tg.lease, Reason: reason})
			r.want.RefusedTotal++
			continue
		}
		r.unlease(it)
		r.ack(it)
		if withReply {
			it.replies++
			r.replies++
			r.replyPut++
		}
	}
	var got []Refusal
	if settler != nil {
		got = settler.c.Ack(acks)
	} else {
		got = r.q.Ack(acks)
		r.sync() // a unary ack is answered once on disk
	}
	r.logf("ack by %s %v -> refused %v", ownerName(settler), targets, got)
	checkRefusals(r, "Ack", got, want)
}

func (r *modelRun) opNack() {
	settler, targets := r.settleTargets()
	nacks := make([]Nack, len(targets))
	var want []Refusal
	for i, tg := range targets {
		n := Nack{ID: tg.id, Lease: tg.lease, Action: NackAction(r.rng.IntN(3)), Error: errText[r.step%len(errText)]}
		// Any action may carry a delay and a jitter; only a retry uses
		// them. Whole half-seconds, so that due times are often hit
		// exactly.
		if r.rng.IntN(4) == 0 {
			n.Delay = time.Duration(1+r.rng.IntN(10)) * 500 * time.Millisecond
		}
		n.Jitter = []float64{0, 0.5, 0.999999, r.rng.Float64()}[r.rng.IntN(4)]
		nacks[i] = n
		it, reason := r.expect(settler, tg.id, tg.lease)
		if it == nil {
			want = append(want, Refusal{ID: tg.id, Lease: tg.lease, Reason: reason})
			r.want.RefusedTotal++
			continue
		}
		r.unlease(it)
		r.want.NackedTotal++
		switch n.Action {
		case NackRelease:
			it.attempts--
			r.toReady(it)
		case NackDead:
			it.lastErr = n.Error
			r.toDead(it)
		default:
			wait := n.Delay
			if wait == 0 {
				wait = modelBackoff(r.retryMin, r.retryMax, it.attempts, n.Jitter)
			}
			r.retry(it, n.Error, wait)
		}
	}
	var got []Refusal
	if settler != nil {
		got = settler.c.Nack(nacks)
	} else {
		got = r.q.Nack(nacks)
		r.sync()
	}
	r.logf("nack by %s %v -> refused %v", ownerName(settler), nacks, got)
	checkRefusals(r, "Nack", got, want)
}

func (r *modelRun) opExtend() {
	settler, targets := r.settleTargets()
	ext := make([]Extend, len(targets))
	var want []Refusal
	for i, tg := range targets {
		var d time.Duration
		if r.rng.IntN(3) != 0 {
			d = time.Duration(1+r.rng.IntN(40)) * 500 * time.Millisecond
		}
		ext[i] = Extend{ID: tg.id, Lease: tg.lease, Duration: d}
		it, reason := r.expect(settler, tg.id, tg.lease)
		if it == nil {
			want = append(want, Refusal{ID: tg.id, Lease: tg.lease, Reason: reason})
			r.want.RefusedTotal++
			continue
		}
		if d <= 0 {
			d = r.leaseTime
		}
		it.deadline = r.now() + int64(d)
	}
	var got []Refusal
	if settler != nil {
		got = settler.c.Extend(ext)
	} else {
		got = r.q.Extend(ext)
	}
	r.logf("extend by %s %v -> refused %v", ownerName(settler), ext, got)
	checkRefusals(r, "Extend", got, want)
}

func (r *modelRun) opExpire() {
	// Whole half-seconds, so that deadlines are often hit exactly.
	d := time.Duration(r.rng.IntN(6)) * 500 * time.Millisecond
	if r.rng.IntN(4) == 0 {
		d = time.Duration(r.rng.IntN(31)) * 500 * time.Millisecond
	}
	r.clk.Advance(d)
	now := r.now()
	var due []*mItem
	for _, id := range r.leased.ids {
		if it := r.items[id]; it.deadline <= now {
			due = append(due, it)
		}
	}
	n := r.b.ExpireLeases()
	r.logf("advance %v, expire -> %d", d, n)
	if n != len(due) {
		r.fail("ExpireLeases = %d, want %d", n, len(due))
	}
	for _, it := range due {
		r.unlease(it)
		r.want.ExpiredTotal++
		r.giveBack(it, "lease expired")
	}
	var ready []*mItem
	for _, id := range r.delayed.ids {
		if it := r.items[id]; it.due <= now {
			ready = append(ready, it)
		}
	}
	n = r.b.PromoteDelayed()
	r.logf("promote -> %d", n)
	if n != len(ready) {
		r.fail("PromoteDelayed = %d, want %d", n, len(ready))
	}
	for _, it := range ready {
		r.delayed.del(it.id)
		r.toReady(it) // its due stays logged
	}
}

func (r *modelRun) opNewConsumer() {
	c, err := r.q.NewConsumer()
	r.logf("new consumer -> %v", err)
	if r.drains {
		if !errors.Is(err, ErrShutdown) {
			r.fail("NewConsumer while draining: %v", err)
		}
		return
	}
	if err != nil {
		r.fail("NewConsumer: %v", err)
	}
	r.nextCons++
	r.cons = append(r.cons, &mConsumer{c: c, name: fmt.Sprint("c", r.nextCons)})
	r.want.Consumers++
}

func (r *modelRun) opCloseConsumer() {
	if len(r.cons) == 0 {
		return
	}
	i := r.rng.IntN(len(r.cons))
	mc := r.cons[i]
	want := mc.held.len()
	for _, id := range append([]uint64(nil), mc.held.ids...) {
		it := r.items[id]
		r.unlease(it)
		r.giveBack(it, "consumer disconnected")
	}
	n := mc.c.Close()
	r.logf("close %s -> %d", mc.name, n)
	if n != want {
		r.fail("Close of %s returned %d, want %d", mc.name, n, want)
	}
	if _, err := tryNext(mc.c); !errors.Is(err, ErrInvalid) {
		r.fail("Next after Close: %v", err)
	}
	mc.closed = true
	r.cons = append(r.cons[:i], r.cons[i+1:]...)
	r.closedCons = append(r.closedCons, mc)
	r.want.Consumers--
}

func (r *modelRun) opRequeue() {
	var ids []uint64
	want := 0
	if r.rng.IntN(3) != 0 {
		for range r.rng.IntN(4) {
			var id uint64
			if r.dead.len() > 0 && r.rng.IntN(4) != 0 {
				id = r.dead.pick(r.rng)
			} else {
				id = uint64(1 + r.rng.IntN(len(r.items)+1))
			}
			ids = append(ids, id)
		}
	}
	moved := map[uint64]bool{}
	for _, id := range ids {
		if r.dead.has(id) {
			moved[id] = true
		}
	}
	if len(ids) == 0 {
		for _, id := range r.dead.ids {
			moved[id] = true
		}
	}
	want = len(moved)
	n, err := r.q.Requeue(ids)
	r.logf("requeue %v -> %d %v", ids, n, err)
	r.sync()
	if err != nil || n != want {
		r.fail("Requeue(%v) = %d, %v; want %d", ids, n, err, want)
	}
	for _, id := range slices.Sorted(maps.Keys(moved)) { // the sets' order is the run's
		it := r.items[id]
		r.dead.del(id)
		it.attempts, it.lastErr, it.due = 0, "", 0
		r.toReady(it)
	}
}

func (r *modelRun) opClose() {
	if err := r.q.Close(); err != nil {
		r.fail("Close: %v", err)
	}
	r.sync()
	r.closed = true
	r.want.Closed = true
	r.logf("close queue")
}

func (r *modelRun) opJoin() {
	want := r.unfinished() == 0
	if got := r.q.Join(cancelled(), 0); got != want {
		r.fail("Join = %v, want %v", got, want)
	}
}

// opPurge purges "tasks" (its ready and delayed items go; leased ones
// stay) or "tasks.dead" (its dead items go).
func (r *modelRun) opPurge() {
	q, set := r.q, []*idSet{&r.ready, &r.delayed}
	if r.rng.IntN(2) == 0 {
		q, set = r.dq, []*idSet{&r.dead}
	}
	want := 0
	for _, s := range set {
		want += s.len()
	}
	n, err := q.Purge()
	r.logf("purge %s -> %d %v", q.name, n, err)
	r.sync()
	if err != nil || n != want {
		r.fail("Purge(%s) = %d, %v; want %d", q.name, n, err, want)
	}
	for _, s := range set {
		for _, id := range slices.Clone(s.ids) {
			it := r.items[id]
			s.del(id)
			it.state = mPurged
			r.purged++
		}
	}
	if q == r.q {
		r.want.PurgedTotal += uint64(n)
	}
}

// opPause pauses or resumes "tasks".
func (r *modelRun) opPause() {
	paused := r.rng.IntN(2) == 0
	var err error
	if paused {
		err = r.q.Pause()
	} else {
		err = r.q.Resume()
	}
	r.logf("paused=%v -> %v", paused, err)
	r.sync()
	if err != nil {
		r.fail("pause %v: %v", paused, err)
	}
	r.paused = paused
}

// opPeek compares what Peek lists with the model, including the results.
func (r *modelRun) opPeek() {
	ready := r.q.Peek(0, 1<<30)
	if len(ready) != r.ready.len() {
		r.fail("Peek: %d ready, want %d", len(ready), r.ready.len())
	}
	for _, d := range ready {
		if it := r.items[d.ID]; it == nil || it.state != mReady || d.Attempt != it.attempts || d.Error != it.lastErr || d.Lease != 0 {
			r.fail("Peek: %+v vs %+v", d, it)
		}
	}
	dead := r.dq.Peek(0, 1<<30)
	if len(dead) != r.dead.len() {
		r.fail("Peek dead: %d, want %d", len(dead), r.dead.len())
	}
	for _, d := range dead {
		if it := r.items[d.ID]; it == nil || it.state != mDead || d.Error != it.lastErr || d.Attempt != it.attempts {
			r.fail("Peek dead: %+v vs %+v", d, it)
		}
	}
	r.checkReplies()
}

func replyPayload(id uint64) []byte { return strconv.AppendUint([]byte("reply-"), id, 10) }

// checkReplies: results hold exactly one reply per task acked with a reply.
func (r *modelRun) checkReplies() {
	seen := map[uint64]bool{}
	for _, d := range r.res.Peek(0, 1<<30) {
		it := r.items[d.ReplyTo]
		if it == nil || it.state != mAcked || it.replies != 1 || seen[d.ReplyTo] {
			r.fail("reply %+v for %+v (seen %v)", d, it, seen[d.ReplyTo])
		}
		if string(d.Payload) != string(replyPayload(d.ReplyTo)) {
			r.fail("reply payload %q for %d", d.Payload, d.ReplyTo)
		}
		seen[d.ReplyTo] = true
	}
	if len(seen) != r.replies {
		r.fail("%d replies, want %d", len(seen), r.replies)
	}
}

// check compares the queues with the model after every step: the counts
// and Stats always, and item by item while the queue is small or every 8th
// step (to keep 100,000 steps fast under -race).
func (r *modelRun) check() {
	r.t.Helper()
	// Every item is in exactly one state, and the states add up.
	if r.unfinished()+r.dead.len()+r.acked+r.purged != len(r.items) {
		r.fail("states do not add up")
	}
	want := r.want
	want.Name, want.MaxSize = "tasks", r.maxSize
	want.Ready, want.Leased, want.Dead = r.ready.len(), r.leased.len(), r.dead.len()
	want.Delayed = r.delayed.len()
	want.Paused = r.paused
	if got := r.q.Stats(); got != want {
		r.fail("stats\n got %+v\nwant %+v", got, want)
	}
	if st := r.res.Stats(); st.Ready != r.replies || st.PutTotal != uint64(r.replyPut) || st.Leased != 0 {
		r.fail("results stats %+v, want %d replies, %d put", st, r.replies, r.replyPut)
	}
	if st := r.dq.Stats(); st.Ready != r.dead.len() || st.PutTotal != r.deadPut {
		r.fail("dead stats %+v, want %d ready, %d put", st, r.dead.len(), r.deadPut)
	}
	for _, mc := range r.cons {
		if mc.c.Held() != mc.held.len() || mc.got > mc.granted {
			r.fail("%s holds %d, model %d; got %d of %d granted", mc.name, mc.c.Held(), mc.held.len(), mc.got, mc.granted)
		}
	}
	// What an operator sees of the consumers (Consumers), by consumer.
	infos := r.q.Consumers()
	if len(infos) != len(r.cons) {
		r.fail("Consumers lists %d, model %d", len(infos), len(r.cons))
	}
	for i, mc := range r.cons { // both oldest first
		if in := infos[i]; in.Held != mc.held.len() || in.Credit != mc.credit || in.Delivered != uint64(mc.got) || in.Queue != "tasks" {
			r.fail("Consumers[%d] %+v; model %s holds %d, credit %d, got %d", i, in, mc.name, mc.held.len(), mc.credit, mc.got)
		}
	}
	if r.step%8 == 0 || r.unfinished()+r.dead.len() <= 16 {
		r.deepCheck()
	}
}

// deepCheck compares the queue's items one by one with the model.
func (r *modelRun) deepCheck() {
	r.t.Helper()
	qs := []*Queue{r.q, r.dq}
	if r.step%64 == 0 {
		qs = append(qs, r.res) // holds every reply: checked now and then
	}
	for _, q := range qs {
		if err := checkQueue(q, true); err != nil {
			r.fail("%v", err)
		}
	}
	q := r.q
	q.mu.Lock()
	inflight, err := checkLeaseIndex(q)
	if err != nil {
		q.mu.Unlock()
		r.fail("%v", err)
	}
	if q.ready.len() != r.ready.len() || q.nleased != r.leased.len() {
		q.mu.Unlock()
		r.fail("queue holds %d ready, %d leased; model %d, %d", q.ready.len(), q.nleased, r.ready.len(), r.leased.len())
	}
	var bad string
	q.ready.ascend(func(it *state.Item) bool {
		if m := r.items[it.ID]; m == nil || m.state != mReady || it.Attempts != m.attempts || it.LastErr() != m.lastErr {
			bad = fmt.Sprintf("ready item %d: %+v, model %+v", it.ID, *it, m)
		}
		return bad == ""
	})
	if bad != "" {
		q.mu.Unlock()
		r.fail("%s", bad)
	}
	for id, l := range inflight {
		m := r.items[id]
		var owner *Consumer
		if m != nil && m.owner != nil {
			owner = m.owner.c
		}
		if m == nil || m.state != mLeased || l.lease != m.lease || l.owner != owner || l.attempt != m.attempts || q.s.Item(id).LastErr() != m.lastErr || l.deadline != m.deadline {
			q.mu.Unlock()
			r.fail("leased item %d: %+v, model %+v", id, *l, m)
		}
	}
	if len(q.delayed) != r.delayed.len() {
		q.mu.Unlock()
		r.fail("queue holds %d delayed; model %d", len(q.delayed), r.delayed.len())
	}
	for _, d := range q.delayed {
		m := r.items[d.id]
		it := q.s.Item(d.id)
		if m == nil || m.state != mDelayed || d.due != m.due || it.Attempts != m.attempts || it.LastErr() != m.lastErr {
			q.mu.Unlock()
			r.fail("delayed item %d: %+v, model %+v", d.id, d, m)
		}
	}
	for _, mc := range r.cons {
		if mc.c.credit != mc.credit || mc.c.nleased != mc.held.len() {
			q.mu.Unlock()
			r.fail("%s: credit %d, holds %d; model %d, %d", mc.name, mc.c.credit, mc.c.nleased, mc.credit, mc.held.len())
		}
	}
	q.mu.Unlock()
	r.dq.mu.Lock()
	ok := r.dq.ready.len() == r.dead.len()
	r.dq.ready.ascend(func(it *state.Item) bool {
		m := r.items[it.ID]
		ok = ok && m != nil && m.state == mDead && it.LastErr() == m.lastErr && it.Attempts == m.attempts
		return ok
	})
	r.dq.mu.Unlock()
	if !ok {
		r.fail("dead-letter queue differs from the model")
	}
}

func (r *modelRun) randomStep() {
	switch x := r.rng.IntN(100); {
	case x < 18:
		switch {
		case !r.closed && r.step >= r.closeAt:
			r.opClose()
		case r.maxSize == 0 && r.ready.len() > 64:
			r.opGet(true) // keep unbounded runs small
		default:
			r.opPut()
		}
	case x < 28:
		r.opGrant()
	case x < 43:
		r.opNext()
	case x < 56:
		r.opAck()
	case x < 63:
		r.opNack()
	case x < 67:
		r.opExtend()
	case x < 73:
		r.opExpire()
	case x < 76:
		if len(r.cons) > 1 {
			r.opCloseConsumer()
		}
	case x < 80:
		if len(r.cons) < 4 {
			r.opNewConsumer()
		}
	case x < 86:
		r.opGet(false)
	case x < 89:
		r.opGet(true)
	case x < 92:
		r.opRequeue()
	case x < 96:
		r.opJoin()
	case x < 97:
		r.opPeek()
	case x < 98:
		if r.rng.IntN(3) == 0 {
			r.opPurge()
		}
	default:
		r.opPause()
	}
}

// ---- crash and restart ----

// crashPlan is a crash to come and where it cuts the log. Recording the
// broker's state (Canonical) at every record would cost more than the rest
// of the run, so the cut is chosen ahead: extra records after base, the
// synced mark when planned, or wherever the log has got to at the crash if
// it is shorter. Only that record's state is kept. A sync beyond the
// planned cut plans it again from there: a crash keeps everything synced.
type crashPlan struct {
	armed bool
	in    int    // steps until the crash
	base  uint64 // the synced mark (and the log's last LSN) when planned
	extra uint64 // records after base that the cut keeps
	cut   uint64 // the cut, once the log reached it (0: not yet)
	canon string // the broker's logged state at the cut
}

// sync waits for the log, as the gRPC edge does before it answers an
// operation that promises something: the journal marks everything synced.
// While a crash is planned, most answers are still on their way (their
// records written, not synced) when it comes: the crash may lose them.
func (r *modelRun) sync() {
	if r.plan.armed && r.rng.IntN(4) != 0 {
		return
	}
	r.syncLog()
}

// syncLog waits until the whole log is synced.
func (r *modelRun) syncLog() {
	if err := r.b.Sync(context.Background()); err != nil {
		r.fail("Sync: %v", err)
	}
}

// onAppend is the journal's: the state at the planned cut is recorded as
// its record is appended (the broker holds the locks of the command's
// queues and has applied it).
func (r *modelRun) onAppend(lsn uint64) {
	if p := &r.plan; p.armed && p.cut == 0 && lsn == p.base+p.extra {
		p.cut, p.canon = lsn, r.b.m.Canonical()
	}
}

// onSync is the journal's: a sync past the planned cut plans it again.
func (r *modelRun) onSync(synced uint64) {
	if p := &r.plan; p.armed && p.base+p.extra < synced {
		r.planCut()
	}
}

// planCut plans the cut from the log's end, which is synced.
func (r *modelRun) planCut() {
	p := &r.plan
	p.base, p.extra, p.cut, p.canon = r.j.LastLSN(), uint64(r.rng.IntN(3)), 0, ""
	if p.extra == 0 {
		p.cut, p.canon = p.base, r.b.m.Canonical()
	}
}

// durableStep takes the step's turn for a crash, a clean restart or a
// snapshot, in a run with a journal, and reports whether it did. A crash
// is planned (the log synced, its cut chosen) a few steps before it comes.
func (r *modelRun) durableStep() bool {
	if r.j == nil {
		return false
	}
	if r.plan.armed {
		if r.plan.in == 0 {
			r.opCrash()
			return true
		}
		r.plan.in--
		return false
	}
	switch x := r.rng.IntN(2000); {
	case x < 4:
		r.syncLog()
		r.plan = crashPlan{armed: true, in: r.rng.IntN(10)}
		r.planCut()
		r.logf("crash planned in %d steps, at LSN %d+%d", r.plan.in, r.plan.base, r.plan.extra)
	case x < 5:
		r.opCleanRestart()
		return true
	case x < 11:
		r.opSnapshot()
		return true
	}
	return false
}

// opCrash stops the broker as kill -9 would, its log cut as planned,
// restarts it from the log (or its last snapshot and the log) and checks it
// is the state logged up to the cut.
func (r *modelRun) opCrash() {
	p := r.plan
	r.plan = crashPlan{}
	last := r.j.LastLSN()
	if p.cut == 0 { // the log did not get as far as planned
		p.cut, p.canon = last, r.b.m.Canonical()
	}
	r.logf("crash: log cut at LSN %d of %d (synced %d)", p.cut, last, r.j.Synced())
	r.tally.crashes++
	if p.cut < last {
		r.tally.cutTail++
	}
	r.restart(p.cut, p.canon, p.cut == last)
}

// opCleanRestart stops the broker as a clean shutdown does (its consumers
// gone, the leases of Gets released, the log synced) and restarts it from
// the whole log: every attempt counted survives.
func (r *modelRun) opCleanRestart() {
	for len(r.cons) > 0 {
		r.opCloseConsumer() // their leases failed and logged
	}
	var held []*mItem
	for _, id := range r.leased.ids {
		held = append(held, r.items[id])
	}
	for _, it := range held {
		r.unlease(it)
		r.giveBack(it, "master stopped")
	}
	n := r.b.ReleaseLeases()
	r.logf("clean stop: %d leases released", n)
	if n != len(held) {
		r.fail("ReleaseLeases = %d, want %d", n, len(held))
	}
	r.syncLog()
	r.check()
	r.tally.cleanStops++
	r.restart(r.j.LastLSN(), r.b.m.Canonical(), true)
}

// opSnapshot writes a snapshot while the queues go on changing: random
// steps run between its records, when the broker holds no lock. It is kept
// for the restarts to come once the log holds everything it may have read.
func (r *modelRun) opSnapshot() {
	snap := &memSnapshot{between: func() {
		if r.rng.IntN(2) == 0 {
			return
		}
		for range 1 + r.rng.IntN(3) {
			r.step++
			r.randomStep()
			r.check()
		}
	}}
	end, err := r.b.Snapshot(snap)
	if err != nil {
		r.fail("Snapshot: %v", err)
	}
	snap.end, snap.between = end, nil
	r.syncLog() // the snapshot counts once the log holds what it read
	r.snap = snap
	r.tally.snapshots++
	r.logf("snapshot from LSN %d to %d, %d records", snap.start, end, len(snap.recs))
}

// restart starts a new broker on the same clock and journal from the log's
// first cut records, or from the last snapshot and them, and checks that
// it holds the state logged at the cut (want, a Canonical), nothing
// leased. The model then takes that state (resetModel): with exact, the
// cut kept the whole log, and every item must be as the model says.
func (r *modelRun) restart(cut uint64, want string, exact bool) {
	r.t.Helper()
	log, err := r.j.crash(cut)
	if err != nil {
		r.fail("%v", err)
	}
	r.b.Close()
	snap := r.snap
	if snap != nil && r.rng.IntN(4) == 0 {
		snap = nil // the whole log, now and then
	}
	m, err := rebuild(snap, log)
	if err != nil {
		r.fail("rebuild: %v", err)
	}
	cfg := r.cfg
	cfg.State = m
	b, err := New(cfg)
	if err != nil {
		r.fail("New from the rebuilt state: %v", err)
	}
	r.restarts++
	if snap != nil {
		r.tally.fromSnapshot++
	}
	r.logf("restart %d from LSN %d (snapshot: %v)", r.restarts, cut, snap != nil)
	if got := b.m.Canonical(); got != want {
		b.Close()
		r.fail("the state rebuilt from the log (snapshot: %v) differs from the one logged at LSN %d, at %s", snap != nil, cut, firstDiff(got, want))
	}
	if err := checkNoLeases(b); err != nil {
		b.Close()
		r.fail("%v", err)
	}
	r.b = b
	r.q, r.dq, r.res = mustQueue(r.t, b, "tasks"), mustQueue(r.t, b, "tasks.dead"), mustQueue(r.t, b, "results")
	r.resetModel(exact)
	for range 2 {
		r.opNewConsumer()
	}
}

// resetModel makes the model the restarted broker's: every item is as
// the log left it (leased ones ready again with their logged attempts, or
// delayed until their logged due), acks and puts the cut lost are undone,
// consumers and the counters since the start are gone. With exact (the
// log kept whole), it first checks every item against the model: a
// delivery in flight comes back with the attempts logged before it.
func (r *modelRun) resetModel(exact bool) {
	ts, ds, rs := r.b.m.Queue("tasks"), r.b.m.Queue("tasks.dead"), r.b.m.Queue("results")
	r.ready, r.leased, r.delayed, r.dead = idSet{}, idSet{}, idSet{}, idSet{}
	r.acked, r.replies, r.purged = 0, 0, 0
	if exact && ts.Paused() != r.paused {
		r.fail("restarted paused=%v, model %v", ts.Paused(), r.paused)
	}
	for _, id := range slices.Sorted(maps.Keys(r.items)) { // the sets' order is the run's
		it := r.items[id]
		if exact {
			r.checkRestored(it, ts.Item(id), ds.Item(id))
		}
		it.owner, it.lease, it.deadline = nil, 0, 0
		if it.state == mAcked && (ts.Item(id) != nil || ds.Item(id) != nil) {
			// The ack was lost, its reply with it (and perhaps the
			// requeue of a dead item before it).
			it.acks, it.replies = 0, 0
			r.tally.lostAcks++
		}
		if got := ts.Item(id); got != nil {
			if it.state != mAcked && got.Attempts != it.attempts && !(it.state == mLeased && got.Attempts == it.attempts-1) {
				r.tally.lostFails++
			}
			it.attempts, it.lastErr, it.due = got.Attempts, got.LastErr(), got.Due()
			if it.due != 0 {
				it.state = mDelayed
				r.delayed.add(id)
			} else {
				r.toReady(it)
			}
		} else if got := ds.Item(id); got != nil {
			it.state, it.attempts, it.lastErr, it.due = mDead, got.Attempts, got.LastErr(), 0
			r.dead.add(id)
		} else if id <= ts.NextID() {
			switch it.state {
			case mPurged:
				r.purged++
				continue
			case mAcked:
			default:
				r.fail("item %d lost in the restart: %+v", id, it)
			}
			r.acked++
			r.replies += it.replies
		} else {
			// Its put was cut off: never answered, and never handed out
			// (a delivery waits for its item's record). A purge may have
			// thrown it away meanwhile: the purge's record came after
			// the put's, so the crash cut it off too.
			if (it.state != mReady && it.state != mPurged) || it.attempts > 0 {
				r.fail("item %d, whose put the crash cut off, was handed out: %+v", id, it)
			}
			delete(r.items, id)
			r.tally.lostPuts++
		}
	}
	if ts.Len() != r.unfinished() || ds.Len() != r.dead.len() || rs.Len() != r.replies {
		r.fail("restarted with %d items, %d dead, %d replies; the model knows %d, %d, %d", ts.Len(), ds.Len(), rs.Len(), r.unfinished(), r.dead.len(), r.replies)
	}
	r.closed = ts.Closed()
	r.paused = ts.Paused()
	r.want = Stats{Closed: r.closed, Paused: r.paused}
	r.deadPut, r.replyPut = 0, 0
	r.cons, r.closedCons = nil, nil
	r.drains = false
	// Lease ids go on above those reserved in the log, and every lease id
	// handed out was reserved on disk before it was.
	if r.lastLease > r.b.m.LeaseHW() {
		r.fail("lease %d was handed out, but the log reserved lease ids up to %d only", r.lastLease, r.b.m.LeaseHW())
	}
	r.lastLease = r.b.m.LeaseHW()
	r.checkReplies()
}

// checkRestored checks item it as a restart from the whole log restores
// it: got in the queue, dead in its dead-letter queue.
func (r *modelRun) checkRestored(it *mItem, got, dead *state.Item) {
	attempts := it.attempts
	switch it.state {
	case mAcked, mPurged:
		if got != nil || dead != nil {
			r.fail("acked or purged item %d back after the restart: %+v %+v", it.id, got, dead)
		}
		return
	case mDead:
		got = dead
	case mLeased:
		attempts-- // the delivery in flight was not logged
	}
	if got == nil || got.Attempts != attempts || got.LastErr() != it.lastErr || got.Due() != it.due {
		r.fail("item %d after the restart: %+v, want %d attempts, error %q, due %d (model %+v)", it.id, got, attempts, it.lastErr, it.due, *it)
	}
}

// finish ends the run either by closing the queue and draining it through
// the consumers, or by a broker drain; both must end cleanly.
func (r *modelRun) finish() {
	if r.rng.IntN(2) == 0 {
		r.drains = true
		r.b.Drain()
		r.logf("drain")
		for _, mc := range r.cons {
			r.opNextOf(mc)
		}
		r.opGet(false)
		r.opGet(true)
		// Settle everything that is out; Next ends with ErrShutdown.
		for r.leased.len() > 0 {
			r.opAck()
			r.opNack()
			r.check()
		}
		for _, mc := range r.cons {
			r.opNextOf(mc)
		}
		if !r.b.WaitSettled(cancelled()) {
			r.fail("WaitSettled = false with nothing leased")
		}
		r.opNewConsumer()
		return
	}
	if !r.closed {
		r.opClose()
	}
	if r.paused {
		if err := r.q.Resume(); err != nil {
			r.fail("Resume: %v", err)
		}
		r.sync()
		r.paused = false
		r.logf("resume")
	}
	r.opRequeue() // dead items back, to be drained as well
	if len(r.cons) == 0 {
		r.opNewConsumer()
	}
	for i := 0; r.unfinished() > 0; i++ {
		if i > 100000 {
			r.fail("queue does not drain")
		}
		r.step++
		switch r.rng.IntN(4) {
		case 0:
			r.opGrant()
		case 1:
			r.opNext()
		case 2:
			r.opAck()
		default:
			r.opExpire()
		}
		r.check()
	}
	for _, mc := range r.cons {
		if _, err := tryNext(mc.c); !errors.Is(err, ErrClosed) {
			r.fail("Next on the drained queue: %v", err)
		}
	}
	if !r.q.Join(cancelled(), 0) {
		r.fail("Join = false on a drained queue")
	}
}

func (r *modelRun) opNextOf(mc *mConsumer) {
	cons := r.cons
	r.cons = []*mConsumer{mc}
	r.opNext()
	r.cons = cons
}

// TestModelRandomized drives the queue with random operations, compares it
// after every step with a reference model, and checks that no item is lost
// or acknowledged twice, that results hold exactly one reply per task acked
// with a reply, that only the current lease holder settles, that no
// consumer gets more than its credit, that a retried item is ready again
// exactly when its backoff (or the delay its nack asked for) has passed, and
// that Stats tell the truth.
//
// Two runs in three log their changes to a journal in memory, and crash
// and restart at random points (issue 9): a crash keeps any prefix of the
// log at least as long as its synced part; the state rebuilt from it (or
// from a snapshot written while steps went on between its records, and the
// log after its start) must be the state the broker had when it logged the
// cut's last record, with nothing leased. The model then takes that state
// (leased items ready again with the attempts last logged, what the cut
// lost undone) and the run goes on. A clean stop (consumers closed, the
// leases of Gets released, the log synced) must keep every attempt.
func TestModelRandomized(t *testing.T) {
	runs, steps := 50, 2000
	if testing.Short() {
		runs = 10
	}
	base := *modelSeed
	if base == 0 {
		base = uint64(time.Now().UnixNano())
	}
	t.Logf("seeds %d..%d (rerun one with -args -model.seed=N)", base, base+uint64(runs)-1)
	var tally restartTally
	defer func() {
		t.Logf("%d crashes (%d cut an unsynced tail, losing %d puts, %d acks, %d failed attempts), %d clean stops, %d snapshots, %d restarts from one",
			tally.crashes, tally.cutTail, tally.lostPuts, tally.lostAcks, tally.lostFails, tally.cleanStops, tally.snapshots, tally.fromSnapshot)
	}()
	for i := range runs {
		seed := base + uint64(i)
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		maxSize := []int{0, 4, 16}[rng.IntN(3)]
		retryMin := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}[rng.IntN(3)]
		cfg := Config{
			Queues:      []QueueConfig{{Name: "tasks", MaxSize: maxSize}, {Name: "results"}},
			LeaseTime:   10 * time.Second,
			MaxAttempts: 1 + rng.IntN(4),
			RetryMin:    retryMin,
			RetryMax:    retryMin << rng.IntN(4),
		}
		// Two runs in three log their changes, and crash and restart.
		var j *memJournal
		if rng.IntN(3) != 0 {
			j = &memJournal{}
			cfg.Journal = j
		}
		b, clk := newTestBroker(t, cfg)
		cfg.Clock, cfg.ManualScan = clk, true
		r := &modelRun{
			t: t, seed: seed, rng: rng, b: b, clk: clk, cfg: cfg, j: j, tally: &tally,
			q: mustQueue(t, b, "tasks"), dq: mustQueue(t, b, "tasks.dead"), res: mustQueue(t, b, "results"),
			leaseTime: b.LeaseTime(), maxAttempts: b.MaxAttempts(), maxSize: maxSize,
			retryMin: retryMin, retryMax: b.cfg.RetryMax,
			items: make(map[uint64]*mItem),
			// About one run in three closes its queue part way.
			closeAt: steps/2 + rng.IntN(steps*3/2),
		}
		if j != nil {
			j.onAppend, j.onSync = r.onAppend, r.onSync
		}
		for range 2 {
			r.opNewConsumer()
		}
		for r.step = 0; r.step < steps; r.step++ {
			if !r.durableStep() {
				r.randomStep()
			}
			r.check()
		}
		r.finish()
		r.check()
		r.deepCheck()
		r.opPeek()
		if r.j != nil {
			// The whole run's log rebuilds its end.
			r.opCleanRestart()
			r.check()
			r.deepCheck()
		}
		r.b.Close()
	}
}
