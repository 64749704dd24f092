package queue

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/distq/distq/internal/clock"
	"github.com/distq/distq/internal/state"
)

func twoQueues(t *testing.T, maxSize int) (*Broker, *clock.Manual, *Queue, *Queue) {
	t.Helper()
	b, clk := newTestBroker(t, Config{
		Queues:      []QueueConfig{{Name: "tasks", MaxSize: maxSize}, {Name: "results"}},
		LeaseTime:   10 * time.Second,
		MaxAttempts: 3,
	})
	return b, clk, mustQueue(t, b, "tasks"), mustQueue(t, b, "results")
}

func payloads(ds []Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Payload)
	}
	return out
}

func TestPutGetFIFO(t *testing.T) {
	_, _, q, _ := twoQueues(t, 0)
	ids := mustPut(t, q, Message{Payload: []byte("a"), Headers: map[string]string{"k": "v"}}, Message{Payload: []byte("b")})
	ids = append(ids, mustPut(t, q, msgs("c")...)...)
	if !slices.Equal(ids, []uint64{1, 2, 3}) {
		t.Fatalf("ids %v", ids)
	}
	ds := mustGet(t, q, 10, true)
	if got := payloads(ds); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("order %v", got)
	}
	d := ds[0]
	if d.ID != 1 || d.Lease != 0 || d.Attempt != 1 || d.Headers["k"] != "v" || !d.Deadline.IsZero() {
		t.Fatalf("auto-acked delivery %+v", d)
	}
	if ids, err := q.Put(context.Background(), nil, false, 0); err != nil || len(ids) != 0 {
		t.Fatalf("empty Put: %v, %v", ids, err)
	}
	mustCheck(t, q)
}

func TestPutNowaitFull(t *testing.T) {
	_, _, q, _ := twoQueues(t, 2)
	ids, err := q.Put(context.Background(), msgs("a", "b", "c"), true, 0)
	if !errors.Is(err, ErrFull) || len(ids) != 2 {
		t.Fatalf("Put over the bound: %v, %v", ids, err)
	}
	ids, err = q.Put(context.Background(), msgs("d"), true, 0)
	if !errors.Is(err, ErrFull) || len(ids) != 0 {
		t.Fatalf("Put into a full queue: %v, %v", ids, err)
	}
	if st := q.Stats(); st.Ready != 2 || st.PutTotal != 2 || st.MaxSize != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Leased items do not count against the bound.
	mustGet(t, q, 2, false)
	mustPut(t, q, msgs("e", "f")...)
}

func TestPutTimeout(t *testing.T) {
	_, _, q, _ := twoQueues(t, 1)
	mustPut(t, q, msgs("a")...)
	start := time.Now()
	ids, err := q.Put(context.Background(), msgs("b"), false, 5*time.Millisecond)
	if !errors.Is(err, ErrFull) || len(ids) != 0 {
		t.Fatalf("Put with timeout: %v, %v", ids, err)
	}
	if time.Since(start) < 5*time.Millisecond {
		t.Fatal("Put returned before its timeout")
	}
}

func TestPutContext(t *testing.T) {
	_, _, q, _ := twoQueues(t, 1)
	mustPut(t, q, msgs("a")...)
	// Already ended: no wait.
	if ids, err := q.Put(cancelled(), msgs("b"), false, 0); !errors.Is(err, context.Canceled) || len(ids) != 0 {
		t.Fatalf("Put with ended ctx: %v, %v", ids, err)
	}
	// Ended while blocked; the part that fitted is reported.
	mustGet(t, q, 1, true)
	ctx, cancel := context.WithCancel(context.Background())
	type res struct {
		ids []uint64
		err error
	}
	done := make(chan res, 1)
	go func() {
		ids, err := q.Put(ctx, msgs("b", "c"), false, 0)
		done <- res{ids, err}
	}()
	waitFor(t, "Put to block", func() bool { return waitingForRoom(q) })
	cancel()
	r := <-done
	if !errors.Is(r.err, context.Canceled) || len(r.ids) != 1 {
		t.Fatalf("cancelled Put: %v, %v", r.ids, r.err)
	}
	if st := q.Stats(); st.Ready != 1 || st.PutTotal != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPutClosedAndDead(t *testing.T) {
	b, _, q, _ := twoQueues(t, 1)
	dq := mustQueue(t, b, "tasks.dead")
	if _, err := dq.Put(context.Background(), msgs("x"), true, 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Put into dead queue: %v", err)
	}
	mustPut(t, q, msgs("a")...)
	done := make(chan error, 1)
	go func() {
		_, err := q.Put(context.Background(), msgs("b"), false, 0)
		done <- err
	}()
	waitFor(t, "Put to block", func() bool { return waitingForRoom(q) })
	q.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Put on Close: %v", err)
	}
	if _, err := q.Put(context.Background(), msgs("c"), true, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if !q.Closed() || !q.Stats().Closed {
		t.Fatal("not closed")
	}
}

// TestBlockedPutUnblocks: a Put waiting for room goes on as soon as a
// consumer or a Get takes items, and a batch larger than the room goes in
// part by part.
func TestBlockedPutUnblocks(t *testing.T) {
	_, _, q, _ := twoQueues(t, 2)
	mustPut(t, q, msgs("a", "b")...)
	type res struct {
		ids []uint64
		err error
	}
	done := make(chan res, 1)
	go func() {
		ids, err := q.Put(context.Background(), msgs("c", "d", "e"), false, 0)
		done <- res{ids, err}
	}()
	waitFor(t, "Put to block", func() bool { return waitingForRoom(q) })

	c := mustConsumer(t, q)
	c.Grant(1)
	mustNext(t, c, 1) // room for "c"
	waitFor(t, "Put to block again", func() bool { return waitingForRoom(q) && q.Stats().Ready == 2 })
	mustGet(t, q, 2, true) // room for "d", "e"
	r := <-done
	if r.err != nil || !slices.Equal(r.ids, []uint64{3, 4, 5}) {
		t.Fatalf("Put: %v, %v", r.ids, r.err)
	}
	if got := payloads(mustGet(t, q, 10, true)); !slices.Equal(got, []string{"d", "e"}) {
		t.Fatalf("left %v", got)
	}
}

func TestGetVariants(t *testing.T) {
	_, _, q, _ := twoQueues(t, 0)
	if ds, err := q.Get(context.Background(), 1, true, 0, false); ds != nil || err != nil {
		t.Fatalf("nowait on empty: %v, %v", ds, err)
	}
	if ds, err := q.Get(context.Background(), 1, false, 2*time.Millisecond, false); ds != nil || err != nil {
		t.Fatalf("timeout on empty: %v, %v", ds, err)
	}
	if _, err := q.Get(cancelled(), 1, false, 0, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended ctx on empty: %v", err)
	}

	// max 0 means 1; max above what is ready returns what is ready.
	mustPut(t, q, msgs("a", "b", "c")...)
	if ds := mustGet(t, q, 0, true); len(ds) != 1 {
		t.Fatalf("max 0: %d items", len(ds))
	}
	if ds := mustGet(t, q, 5, false); len(ds) != 2 || ds[0].Lease == 0 || ds[0].Lease == ds[1].Lease {
		t.Fatalf("max 5: %+v", ds)
	}

	// A blocked Get is woken by a Put.
	got := make(chan []Delivery, 1)
	go func() {
		ds, err := q.Get(context.Background(), 3, false, 0, true)
		if err != nil {
			t.Error(err)
		}
		got <- ds
	}()
	waitFor(t, "Get to block", func() bool { return waitingForItems(q) })
	mustPut(t, q, msgs("d")...)
	if ds := <-got; len(ds) != 1 || string(ds[0].Payload) != "d" {
		t.Fatalf("woken Get: %+v", ds)
	}
	mustCheck(t, q)
}

func TestGetClosed(t *testing.T) {
	_, _, q, _ := twoQueues(t, 0)
	mustPut(t, q, msgs("a", "b")...)
	leased := mustGet(t, q, 1, false)
	q.Close()
	// Closed but not drained: items still come out.
	if ds := mustGet(t, q, 5, true); len(ds) != 1 {
		t.Fatalf("Get after Close: %+v", ds)
	}
	// A blocked Get ends with ErrClosed when the last lease is settled.
	done := make(chan error, 1)
	go func() {
		_, err := q.Get(context.Background(), 1, false, 0, false)
		done <- err
	}()
	waitFor(t, "Get to block", func() bool { return waitingForDrain(q) })
	if r := q.Ack([]Ack{ackOf(leased[0])}); r != nil {
		t.Fatal(r)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Get on drained queue: %v", err)
	}
	if _, err := q.Get(context.Background(), 1, true, 0, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("nowait Get on drained queue: %v", err)
	}
}

// TestGetLeases: items taken by Get without auto-ack are leased to nobody
// in particular; only Queue.Ack/Nack/Extend settle them, and those cannot
// settle a consumer's lease.
func TestGetLeases(t *testing.T) {
	b, clk, q, res := twoQueues(t, 0)
	mustPut(t, q, msgs("a", "b", "c")...)
	ds := mustGet(t, q, 3, false)
	want := clk.Now().Add(b.LeaseTime())
	for _, d := range ds {
		if d.Attempt != 1 || d.Lease == 0 || !d.Deadline.Equal(want) {
			t.Fatalf("leased delivery %+v", d)
		}
	}
	c := mustConsumer(t, q)
	if r := c.Ack([]Ack{ackOf(ds[0])}); len(r) != 1 || r[0].Reason != ReasonNotLeased {
		t.Fatalf("consumer acking a Get lease: %v", r)
	}
	if r := q.Ack([]Ack{replyAck(ds[0], res, "r")}); r != nil {
		t.Fatal(r)
	}
	if r := q.Extend([]Extend{{ID: ds[1].ID, Lease: ds[1].Lease, Duration: time.Minute}}); r != nil {
		t.Fatal(r)
	}
	if r := q.Nack([]Nack{{ID: ds[2].ID, Lease: ds[2].Lease, Error: "e"}}); r != nil {
		t.Fatal(r)
	}
	if res.Stats().Ready != 1 {
		t.Fatal("reply not put")
	}
	promoteAll(t, b, clk)
	// A consumer's lease cannot be settled through the queue.
	c.Grant(1)
	cd := mustNext(t, c, 1)[0]
	if cd.ID != ds[2].ID || cd.Attempt != 2 {
		t.Fatalf("redelivery %+v", cd)
	}
	if r := q.Ack([]Ack{ackOf(cd)}); len(r) != 1 || r[0].Reason != ReasonNotLeased {
		t.Fatalf("Queue.Ack of a consumer lease: %v", r)
	}
	mustCheck(t, q, res)
}

func TestAckWithReply(t *testing.T) {
	_, _, q, res := twoQueues(t, 0)
	ids := mustPut(t, q, msgs("task")...)
	c := mustConsumer(t, q)
	c.Grant(1)
	d := mustNext(t, c, 1)[0]
	ack := replyAck(d, res, "result")
	ack.Reply.Headers = map[string]string{"h": "1"}
	if r := c.Ack([]Ack{ack}); r != nil {
		t.Fatal(r)
	}
	// The same ack again is refused and puts nothing.
	if r := c.Ack([]Ack{ack}); len(r) != 1 || r[0].Reason != ReasonUnknownItem || r[0].ID != d.ID || r[0].Lease != d.Lease {
		t.Fatalf("second ack: %v", r)
	}
	got := res.Peek(0, 10)
	if len(got) != 1 || got[0].ReplyTo != ids[0] || string(got[0].Payload) != "result" || got[0].Headers["h"] != "1" {
		t.Fatalf("results %+v", got)
	}
	st, rst := q.Stats(), res.Stats()
	if st.AckedTotal != 1 || st.Leased != 0 || st.RefusedTotal != 1 || rst.PutTotal != 1 || rst.Ready != 1 {
		t.Fatalf("stats %+v / %+v", st, rst)
	}
	if c.Held() != 0 {
		t.Fatal("consumer still holds the item")
	}
	mustCheck(t, q, res)
}

// TestAckReplyIgnoresMaxSize: an ack never waits for room in the reply queue.
func TestAckReplyIgnoresMaxSize(t *testing.T) {
	b, _ := newTestBroker(t, Config{Queues: []QueueConfig{{Name: "tasks"}, {Name: "results", MaxSize: 1}}})
	q, res := mustQueue(t, b, "tasks"), mustQueue(t, b, "results")
	mustPut(t, q, msgs("a", "b")...)
	mustPut(t, res, msgs("x")...)
	ds := mustGet(t, q, 2, false)
	if r := q.Ack([]Ack{replyAck(ds[0], res, "1"), replyAck(ds[1], res, "2")}); r != nil {
		t.Fatal(r)
	}
	if res.Stats().Ready != 3 {
		t.Fatal("replies not put")
	}
}

func TestAckReplyQueueRefused(t *testing.T) {
	b, _, q, res := twoQueues(t, 0)
	dq := mustQueue(t, b, "results.dead")
	mustPut(t, q, msgs("a")...)
	d := mustGet(t, q, 1, false)[0]
	if r := q.Ack([]Ack{replyAck(d, dq, "r")}); len(r) != 1 || r[0].Reason != ReasonReplyQueue {
		t.Fatalf("reply into a dead-letter queue: %v", r)
	}
	res.Close()
	if r := q.Ack([]Ack{replyAck(d, res, "r")}); len(r) != 1 || r[0].Reason != ReasonReplyQueue {
		t.Fatalf("reply into a closed queue: %v", r)
	}
	if st := q.Stats(); st.Leased != 1 || st.AckedTotal != 0 || st.RefusedTotal != 2 {
		t.Fatalf("refused acks settled the item: %+v", st)
	}
	if res.Stats().PutTotal != 0 || dq.Stats().PutTotal != 0 {
		t.Fatal("reply put although refused")
	}
	// Reply into the queue itself is fine.
	if r := q.Ack([]Ack{replyAck(d, q, "again")}); r != nil {
		t.Fatal(r)
	}
	if ds := mustGet(t, q, 1, true); len(ds) != 1 || ds[0].ReplyTo != d.ID {
		t.Fatalf("self reply %+v", ds)
	}
	mustCheck(t, q, res, dq)
}

// TestLeaseOwnership: consumer B cannot settle A's lease, and a lease that
// expired and was redelivered is dead: A's late ack is refused and puts no
// reply, while the new holder's ack goes through.
func TestLeaseOwnership(t *testing.T) {
	b, clk, q, res := twoQueues(t, 0)
	mustPut(t, q, msgs("a")...)
	A, B := mustConsumer(t, q), mustConsumer(t, q)
	A.Grant(1)
	B.Grant(1)
	da := mustNext(t, A, 1)[0]
	if r := B.Ack([]Ack{replyAck(da, res, "by B")}); len(r) != 1 || r[0].Reason != ReasonNotLeased {
		t.Fatalf("B acks A's lease: %v", r)
	}
	if r := B.Nack([]Nack{{ID: da.ID, Lease: da.Lease}}); len(r) != 1 {
		t.Fatalf("B nacks A's lease: %v", r)
	}
	if r := B.Extend([]Extend{{ID: da.ID, Lease: da.Lease}}); len(r) != 1 {
		t.Fatalf("B extends A's lease: %v", r)
	}
	if r := A.Ack([]Ack{{ID: da.ID, Lease: da.Lease + 1}}); len(r) != 1 || r[0].Reason != ReasonNotLeased {
		t.Fatalf("A acks with a wrong lease: %v", r)
	}
	if r := A.Ack([]Ack{{ID: 999, Lease: da.Lease}}); len(r) != 1 || r[0].Reason != ReasonUnknownItem {
		t.Fatalf("A acks an unknown item: %v", r)
	}

	clk.Advance(b.LeaseTime())
	if n := b.ExpireLeases(); n != 1 {
		t.Fatalf("ExpireLeases = %d", n)
	}
	db := mustNext(t, B, 1)[0]
	if db.ID != da.ID || db.Lease == da.Lease || db.Attempt != 2 {
		t.Fatalf("redelivery %+v", db)
	}
	if r := A.Ack([]Ack{replyAck(da, res, "late")}); len(r) != 1 || r[0].Reason != ReasonNotLeased {
		t.Fatalf("late ack: %v", r)
	}
	if r := A.Extend([]Extend{{ID: da.ID, Lease: da.Lease}}); len(r) != 1 {
		t.Fatalf("late extend: %v", r)
	}
	if res.Stats().Ready != 0 {
		t.Fatal("late ack put a reply")
	}
	if r := B.Ack([]Ack{replyAck(db, res, "ok")}); r != nil {
		t.Fatal(r)
	}
	got := res.Peek(0, 10)
	if len(got) != 1 || string(got[0].Payload) != "ok" || got[0].ReplyTo != da.ID {
		t.Fatalf("results %+v", got)
	}
	if st := q.Stats(); st.RefusedTotal != 7 || st.AckedTotal != 1 || st.ExpiredTotal != 1 || st.RedeliveredTotal != 1 {
		t.Fatalf("stats %+v", st)
	}
	mustCheck(t, q, res)
}

func TestNackRetry(t *testing.T) {
	b, clk, q, _ := twoQueues(t, 0)
	dq := mustQueue(t, b, "tasks.dead")
	ids := mustPut(t, q, msgs("a", "b")...)
	c := mustConsumer(t, q)
	for attempt := uint32(1); attempt <= 3; attempt++ {
		if attempt > 1 && promoteAll(t, b, clk) != 1 {
			t.Fatalf("attempt %d: the retried item is not delayed", attempt)
		}
		c.Grant(1)
		d := mustNext(t, c, 1)[0]
		if d.ID != ids[0] || d.Attempt != attempt {
			t.Fatalf("attempt %d: got %+v", attempt, d)
		}
		if attempt > 1 && d.Error != "failed" {
			t.Fatalf("attempt %d: error %q", attempt, d.Error)
		}
		if r := c.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Error: "failed", Action: NackRetry}}); r != nil {
			t.Fatal(r)
		}
	}
	// The third failure was the last attempt (MaxAttempts 3).
	dead := dq.Peek(0, 10)
	if len(dead) != 1 || dead[0].ID != ids[0] || dead[0].Attempt != 3 || dead[0].Error != "failed" || dead[0].Lease != 0 {
		t.Fatalf("dead %+v", dead)
	}
	st := q.Stats()
	if st.NackedTotal != 3 || st.DeadTotal != 1 || st.Dead != 1 || st.Ready != 1 || st.Delayed != 0 || st.RedeliveredTotal != 2 {
		t.Fatalf("stats %+v", st)
	}
	if dst := dq.Stats(); dst.PutTotal != 1 || dst.Ready != 1 {
		t.Fatalf("dead stats %+v", dst)
	}
	if q.Join(cancelled(), 0) {
		t.Fatal("Join true with an item ready")
	}
	mustCheck(t, q, dq)
}

func TestNackDeadAndRelease(t *testing.T) {
	b, _, q, _ := twoQueues(t, 0)
	dq := mustQueue(t, b, "tasks.dead")
	ids := mustPut(t, q, msgs("a", "b")...)
	c := mustConsumer(t, q)

	// Release never counts an attempt, however often.
	for range 10 {
		c.Grant(1)
		d := mustNext(t, c, 1)[0]
		if d.ID != ids[0] || d.Attempt != 1 {
			t.Fatalf("released item came back as %+v", d)
		}
		if r := c.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Action: NackRelease}}); r != nil {
			t.Fatal(r)
		}
	}
	c.Grant(2)
	ds := mustNext(t, c, 2)
	if r := c.Nack([]Nack{{ID: ds[1].ID, Lease: ds[1].Lease, Error: "poison", Action: NackDead}}); r != nil {
		t.Fatal(r)
	}
	dead := dq.Peek(0, 10)
	if len(dead) != 1 || dead[0].ID != ids[1] || dead[0].Attempt != 1 || dead[0].Error != "poison" {
		t.Fatalf("dead %+v", dead)
	}
	st := q.Stats()
	if st.NackedTotal != 11 || st.DeadTotal != 1 || st.Dead != 1 || st.Leased != 1 || st.RedeliveredTotal != 0 || st.DeliveredTotal != 12 {
		t.Fatalf("stats %+v", st)
	}
	mustCheck(t, q, dq)
}

// TestDeadQueueConsumer: a dead-letter queue can be read; its items never
// move further, whatever the nack.
func TestDeadQueueConsumer(t *testing.T) {
	b, clk, q, _ := twoQueues(t, 0)
	dq := mustQueue(t, b, "tasks.dead")
	mustPut(t, q, msgs("a")...)
	d := mustGet(t, q, 1, false)[0]
	q.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Error: "x", Action: NackDead}})
	c := mustConsumer(t, dq)
	for _, action := range []NackAction{NackRetry, NackRetry, NackRetry, NackDead, NackRelease} {
		c.Grant(1)
		dd := mustNext(t, c, 1)[0]
		if r := c.Nack([]Nack{{ID: dd.ID, Lease: dd.Lease, Error: "again", Action: action}}); r != nil {
			t.Fatal(r)
		}
		if q.Stats().Dead != 1 {
			t.Fatal("Dead gauge") // a delayed dead item counts too
		}
		promoteAll(t, b, clk)
	}
	if st := dq.Stats(); st.Ready != 1 || st.NackedTotal != 5 || st.DeadTotal != 0 {
		t.Fatalf("dead queue stats %+v", st)
	}
	if q.Stats().Dead != 1 {
		t.Fatal("Dead gauge")
	}
	mustCheck(t, q, dq)
}

func TestExpiry(t *testing.T) {
	b, clk, q, _ := twoQueues(t, 0)
	dq := mustQueue(t, b, "tasks.dead")
	ids := mustPut(t, q, msgs("a", "b")...)
	c := mustConsumer(t, q)
	c.Grant(1)
	d := mustNext(t, c, 1)[0]
	if !d.Deadline.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("deadline %v", d.Deadline)
	}
	clk.Advance(10*time.Second - 1)
	if n := b.ExpireLeases(); n != 0 {
		t.Fatalf("expired %d before the deadline", n)
	}
	clk.Advance(1)
	if n := b.ExpireLeases(); n != 1 {
		t.Fatalf("expired %d at the deadline", n)
	}
	if c.Held() != 0 {
		t.Fatal("consumer still holds the expired item")
	}
	// Back at the front, with the reason.
	p := q.Peek(0, 10)
	if len(p) != 2 || p[0].ID != ids[0] || p[0].Error != "lease expired" || p[0].Attempt != 1 {
		t.Fatalf("ready %+v", p)
	}
	// Expiry counts attempts: after the last one the item is dead.
	for range 2 {
		c.Grant(1)
		mustNext(t, c, 1)
		clk.Advance(time.Hour)
		if n := b.ExpireLeases(); n != 1 {
			t.Fatalf("ExpireLeases = %d", n)
		}
	}
	if dead := dq.Peek(0, 1); len(dead) != 1 || dead[0].ID != ids[0] || dead[0].Error != "lease expired" {
		t.Fatalf("dead %+v", dead)
	}
	if st := q.Stats(); st.ExpiredTotal != 3 || st.DeadTotal != 1 || st.Ready != 1 {
		t.Fatalf("stats %+v", st)
	}
	mustCheck(t, q, dq)
}

func TestExtend(t *testing.T) {
	b, clk, q, _ := twoQueues(t, 0)
	mustPut(t, q, msgs("a", "b", "c")...)
	c := mustConsumer(t, q)
	c.Grant(3)
	ds := mustNext(t, c, 3)
	clk.Advance(5 * time.Second)
	refused := c.Extend([]Extend{
		{ID: ds[0].ID, Lease: ds[0].Lease, Duration: time.Minute},
		{ID: ds[1].ID, Lease: ds[1].Lease}, // lease time from now
		{ID: ds[2].ID, Lease: ds[2].Lease + 7},
	})
	if len(refused) != 1 || refused[0].ID != ds[2].ID {
		t.Fatalf("refused %v", refused)
	}
	clk.Advance(5 * time.Second) // t0+10s: only the unextended lease ends
	if n := b.ExpireLeases(); n != 1 {
		t.Fatalf("ExpireLeases at +10s = %d", n)
	}
	clk.Advance(5 * time.Second) // t0+15s: the lease-time extension ends
	if n := b.ExpireLeases(); n != 1 {
		t.Fatalf("ExpireLeases at +15s = %d", n)
	}
	if c.Held() != 1 {
		t.Fatal("the long extension expired")
	}
	// Shortening works too.
	if r := c.Extend([]Extend{{ID: ds[0].ID, Lease: ds[0].Lease, Duration: time.Nanosecond}}); r != nil {
		t.Fatal(r)
	}
	clk.Advance(time.Nanosecond)
	if n := b.ExpireLeases(); n != 1 || c.Held() != 0 {
		t.Fatalf("short extension: expired %d, held %d", n, c.Held())
	}
	mustCheck(t, q)
}

func TestJoin(t *testing.T) {
	_, _, q, _ := twoQueues(t, 0)
	if !q.Join(context.Background(), 0) {
		t.Fatal("Join of an empty queue")
	}
	mustPut(t, q, msgs("a", "b")...)
	if q.Join(context.Background(), time.Millisecond) {
		t.Fatal("Join with items, timeout")
	}
	if q.Join(cancelled(), 0) {
		t.Fatal("Join with items, ended ctx")
	}
	done := make(chan bool, 1)
	go func() { done <- q.Join(context.Background(), 0) }()
	waitFor(t, "Join to block", func() bool { return waitingForDrain(q) })
	ds := mustGet(t, q, 2, false)
	q.Ack([]Ack{ackOf(ds[0])})
	q.Nack([]Nack{{ID: ds[1].ID, Lease: ds[1].Lease, Action: NackDead}})
	if !<-done {
		t.Fatal("Join = false")
	}
}

// TestCloseDrainsConsumers: after Close consumers get what is left, then a
// clean ErrClosed, including one blocked in Next when the last item is
// settled.
func TestCloseDrainsConsumers(t *testing.T) {
	_, _, q, res := twoQueues(t, 0)
	mustPut(t, q, msgs("a", "b")...)
	A, B := mustConsumer(t, q), mustConsumer(t, q)
	A.Grant(1)
	da := mustNext(t, A, 1)[0]
	q.Close()
	q.Close() // harmless
	B.Grant(5)
	db := mustNext(t, B, 1)[0]
	if _, err := tryNext(B); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next while A still holds an item: %v", err)
	}
	if r := B.Ack([]Ack{replyAck(db, res, "b")}); r != nil {
		t.Fatal(r)
	}
	done := make(chan error, 1)
	go func() {
		_, err := B.Next(context.Background(), nil)
		done <- err
	}()
	waitFor(t, "Next to block", func() bool { return isWaiter(B) })
	// Acks with replies still work on a closed queue.
	if r := A.Ack([]Ack{replyAck(da, res, "a")}); r != nil {
		t.Fatal(r)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Next after drain: %v", err)
	}
	// A consumer without credit ends too, and so does a new one.
	if _, err := tryNext(A); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next without credit: %v", err)
	}
	if _, err := tryNext(mustConsumer(t, q)); !errors.Is(err, ErrClosed) {
		t.Fatalf("new consumer: %v", err)
	}
	if res.Stats().Ready != 2 {
		t.Fatal("replies")
	}
	mustCheck(t, q, res)
}

func TestPeek(t *testing.T) {
	_, _, q, _ := twoQueues(t, 0)
	mustPut(t, q, msgs("a", "b", "c", "d")...)
	mustGet(t, q, 1, false) // "a" leased: not listed
	for _, tc := range []struct {
		offset, limit int
		want          []string
	}{
		{0, 100, []string{"b", "c", "d"}},
		{1, 1, []string{"c"}},
		{2, 5, []string{"d"}},
		{3, 5, nil},
		{-1, 5, nil},
		{0, 0, nil},
	} {
		got := q.Peek(tc.offset, tc.limit)
		if !slices.Equal(payloads(got), tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("Peek(%d, %d) = %v, want %v", tc.offset, tc.limit, payloads(got), tc.want)
		}
	}
	if st := q.Stats(); st.Ready != 3 || st.DeliveredTotal != 1 {
		t.Fatal("Peek took items")
	}
}

func TestRequeue(t *testing.T) {
	b, _, q, _ := twoQueues(t, 0)
	dq := mustQueue(t, b, "tasks.dead")
	if _, err := dq.Requeue(nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Requeue on a dead-letter queue: %v", err)
	}
	ids := mustPut(t, q, msgs("a", "b", "c", "d")...)
	ds := mustGet(t, q, 4, false)
	for _, d := range ds {
		q.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Error: "e", Action: NackDead}})
	}
	// One dead item is being read from the dead-letter queue: it stays.
	held := mustGet(t, dq, 1, false)[0]
	if held.ID != ids[0] {
		t.Fatalf("dead order: %+v", held)
	}
	n, err := q.Requeue([]uint64{ids[2], ids[0], 12345})
	if err != nil || n != 1 {
		t.Fatalf("Requeue(some) = %d, %v", n, err)
	}
	n, err = q.Requeue(nil)
	if err != nil || n != 2 {
		t.Fatalf("Requeue(all) = %d, %v", n, err)
	}
	got := q.Peek(0, 10)
	if len(got) != 3 || got[0].ID != ids[2] || got[1].ID != ids[1] || got[2].ID != ids[3] {
		t.Fatalf("requeued %+v", got)
	}
	for _, d := range got {
		if d.Error != "" || d.Attempt != 0 {
			t.Fatalf("not reset: %+v", d)
		}
	}
	if st := q.Stats(); st.Dead != 1 || st.Ready != 3 {
		t.Fatalf("stats %+v", st)
	}
	// Requeued items get a fresh set of attempts.
	if d := mustGet(t, q, 1, false)[0]; d.Attempt != 1 {
		t.Fatalf("attempt after requeue %d", d.Attempt)
	}
	mustCheck(t, q, dq)
}

// TestStatsCounters walks one item of each fate and checks every counter.
func TestStatsCounters(t *testing.T) {
	b, clk, q, res := twoQueues(t, 5)
	mustPut(t, q, msgs("ack", "nack", "expire", "auto", "dead")...)
	c := mustConsumer(t, q)
	c.Grant(3)
	ds := mustNext(t, c, 3)
	c.Ack([]Ack{replyAck(ds[0], res, "r")})
	c.Nack([]Nack{{ID: ds[1].ID, Lease: ds[1].Lease, Error: "x"}})
	c.Ack([]Ack{ackOf(ds[0])}) // refused
	if st := q.Stats(); st.Delayed != 1 {
		t.Fatalf("nacked item not delayed: %+v", st)
	}
	clk.Advance(time.Minute)
	b.ExpireLeases()   // "expire"
	b.PromoteDelayed() // "nack"
	// Ready now: nack, expire, auto, dead (returned items go to the front).
	auto := mustGet(t, q, 2, true) // nack (attempt 2), expire (attempt 2)
	if auto[0].Attempt != 2 || auto[1].Attempt != 2 {
		t.Fatalf("auto-acked %+v", auto)
	}
	d := mustGet(t, q, 1, false)[0]
	q.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Action: NackDead}})
	want := Stats{
		Name: "tasks", Ready: 1, Leased: 0, Dead: 1, Consumers: 1, MaxSize: 5,
		PutTotal: 5, AckedTotal: 3, NackedTotal: 2, DeliveredTotal: 6, RedeliveredTotal: 2,
		ExpiredTotal: 1, RefusedTotal: 1, DeadTotal: 1,
	}
	if got := q.Stats(); got != want {
		t.Fatalf("stats\n got %+v\nwant %+v", got, want)
	}
	if got := res.Stats(); got.Ready != 1 || got.PutTotal != 1 || got.Name != "results" {
		t.Fatalf("results stats %+v", got)
	}
	c.Close()
	if q.Stats().Consumers != 0 {
		t.Fatal("Consumers gauge after Close")
	}
}

// GetAppend appends to the caller's buffer and leaves it as it was when it
// takes nothing.
func TestGetAppend(t *testing.T) {
	_, _, q, _ := twoQueues(t, 0)
	buf := make([]Delivery, 1, 8)
	buf[0].ID = 99
	if ds, err := q.GetAppend(context.Background(), buf, 4, true, 0, true); err != nil || len(ds) != 1 || ds[0].ID != 99 {
		t.Fatalf("nowait on empty: %+v, %v", ds, err)
	}
	mustPut(t, q, msgs("a", "b")...)
	ds, err := q.GetAppend(context.Background(), buf, 4, true, 0, true)
	if err != nil || len(ds) != 3 || &ds[0] != &buf[0] || ds[0].ID != 99 {
		t.Fatalf("GetAppend: %+v, %v (want the old item and two new ones in buf's array)", ds, err)
	}
	if got := payloads(ds[1:]); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("appended %v", got)
	}
}

// TestPutOnceInProgress: a retry of a named put that is still waiting for
// room is refused, rather than storing its rest twice; once the first has
// stored everything, the retry is answered with its ids.
func TestPutOnceInProgress(t *testing.T) {
	b, _ := newTestBroker(t, Config{Queues: []QueueConfig{{Name: "q", MaxSize: 1}}})
	q := mustQueue(t, b, "q")
	id := PutID{Producer: state.Producer{1}, Seq: 1, CRC: 7}
	msgs := []Message{{Payload: []byte("a")}, {Payload: []byte("b")}}
	type result struct {
		ids []uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		ids, _, err := q.PutOnce(context.Background(), msgs, false, 0, id)
		done <- result{ids, err}
	}()
	// The first put stores "a", then waits for room for "b".
	waitFor(t, "the first item stored", func() bool { return q.Stats().PutTotal == 1 })
	if _, _, err := q.PutOnce(context.Background(), msgs, true, 0, id); !errors.Is(err, ErrPutInProgress) {
		t.Fatalf("retry while in progress: %v, want ErrPutInProgress", err)
	}
	if _, err := q.Get(context.Background(), 1, true, 0, true); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || len(r.ids) != 2 {
		t.Fatalf("first put: %v, %v", r.ids, r.err)
	}
	ids, dup, err := q.PutOnce(context.Background(), msgs, true, 0, id)
	if err != nil || !dup || !slices.Equal(ids, r.ids) {
		t.Fatalf("retry after: %v %v %v, want %v, duplicate", ids, dup, err, r.ids)
	}
	if st := q.Stats(); st.PutTotal != 2 {
		t.Fatalf("stored %d items, want 2", st.PutTotal)
	}
}
