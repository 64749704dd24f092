package queue

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
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
)

type mItem struct {
	id       uint64
	state    mState
	attempts uint32
	lastErr  string
	lease    uint64
	owner    *mConsumer // nil for a lease taken by Get
	deadline int64
	due      int64 // when delayed
	acks     int   // times acknowledged (auto-ack included)
	replies  int   // replies put for it
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
	want           Stats // of "tasks"
	deadPut        uint64
	replies        int
	acked          int
	closeAt        int // step at which the queue is closed
	closed, drains bool
	nextCons       int
	log            []logEntry
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
	it.state = mDead
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
	it.lastErr = reason
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
	n := min(max, r.ready.len())
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
		}
	}
	var got []Refusal
	if settler != nil {
		got = settler.c.Ack(acks)
	} else {
		got = r.q.Ack(acks)
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
		it.due = 0
		r.toReady(it)
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
	if err != nil || n != want {
		r.fail("Requeue(%v) = %d, %v; want %d", ids, n, err, want)
	}
	for id := range moved {
		it := r.items[id]
		r.dead.del(id)
		it.attempts, it.lastErr = 0, ""
		r.toReady(it)
	}
}

func (r *modelRun) opClose() {
	r.q.Close()
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
	if r.unfinished()+r.dead.len()+r.acked != len(r.items) {
		r.fail("states do not add up")
	}
	want := r.want
	want.Name, want.MaxSize = "tasks", r.maxSize
	want.Ready, want.Leased, want.Dead = r.ready.len(), r.leased.len(), r.dead.len()
	want.Delayed = r.delayed.len()
	if got := r.q.Stats(); got != want {
		r.fail("stats\n got %+v\nwant %+v", got, want)
	}
	if st := r.res.Stats(); st.Ready != r.replies || st.PutTotal != uint64(r.replies) || st.Leased != 0 {
		r.fail("results stats %+v, want %d replies", st, r.replies)
	}
	if st := r.dq.Stats(); st.Ready != r.dead.len() || st.PutTotal != r.deadPut {
		r.fail("dead stats %+v, want %d ready, %d put", st, r.dead.len(), r.deadPut)
	}
	for _, mc := range r.cons {
		if mc.c.Held() != mc.held.len() || mc.got > mc.granted {
			r.fail("%s holds %d, model %d; got %d of %d granted", mc.name, mc.c.Held(), mc.held.len(), mc.got, mc.granted)
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
	case x < 93:
		r.opRequeue()
	case x < 98:
		r.opJoin()
	default:
		r.opPeek()
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
	for i := range runs {
		seed := base + uint64(i)
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		maxSize := []int{0, 4, 16}[rng.IntN(3)]
		retryMin := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}[rng.IntN(3)]
		b, clk := newTestBroker(t, Config{
			Queues:      []QueueConfig{{Name: "tasks", MaxSize: maxSize}, {Name: "results"}},
			LeaseTime:   10 * time.Second,
			MaxAttempts: 1 + rng.IntN(4),
			RetryMin:    retryMin,
			RetryMax:    retryMin << rng.IntN(4),
		})
		r := &modelRun{
			t: t, seed: seed, rng: rng, b: b, clk: clk,
			q: mustQueue(t, b, "tasks"), dq: mustQueue(t, b, "tasks.dead"), res: mustQueue(t, b, "results"),
			leaseTime: b.LeaseTime(), maxAttempts: b.MaxAttempts(), maxSize: maxSize,
			retryMin: retryMin, retryMax: b.cfg.RetryMax,
			items: make(map[uint64]*mItem),
			// About one run in three closes its queue part way.
			closeAt: steps/2 + rng.IntN(steps*3/2),
		}
		for range 2 {
			r.opNewConsumer()
		}
		for r.step = 0; r.step < steps; r.step++ {
			r.randomStep()
			r.check()
		}
		r.finish()
		r.check()
		r.deepCheck()
		r.opPeek()
		b.Close()
	}
}
