package queue

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestPurge: a purge throws away what is ready and what is delayed, keeps
// what is leased (its consumer settles it as usual), makes room for a
// blocked put, and on a dead-letter queue throws away its dead items.
func TestPurge(t *testing.T) {
	b, clk := newTestBroker(t, Config{Queues: []QueueConfig{{Name: "tasks", MaxSize: 4}}, MaxAttempts: 1})
	q := mustQueue(t, b, "tasks")
	mustPut(t, q, msgs("a", "b", "c", "d")...)
	c := mustConsumer(t, q)
	c.Grant(3)
	ds := mustNext(t, c, 3) // 1, 2, 3 leased; 4 ready
	// 1 is nacked for a retry and waits (MaxAttempts 1: it would die, so
	// ask for a delay on a queue where it may retry).
	q.b.cfg.MaxAttempts = 5
	if r := c.Nack([]Nack{{ID: ds[0].ID, Lease: ds[0].Lease, Error: "later", Delay: time.Minute}}); r != nil {
		t.Fatal(r)
	}
	// 2 dies.
	if r := c.Nack([]Nack{{ID: ds[1].ID, Lease: ds[1].Lease, Error: "bad", Action: NackDead}}); r != nil {
		t.Fatal(r)
	}
	st := q.Stats()
	if st.Ready != 1 || st.Delayed != 1 || st.Leased != 1 || st.Dead != 1 {
		t.Fatalf("before the purge: %+v", st)
	}
	_ = st
	// The queue is full, and a put waits for room.
	mustPut(t, q, msgs("e", "f", "g")...)
	putDone := make(chan error, 1)
	go func() {
		_, err := q.Put(context.Background(), msgs("h"), false, 0)
		putDone <- err
	}()
	waitFor(t, "the put to wait for room", func() bool { return waitingForRoom(q) })
	st = q.Stats()
	n, err := q.Purge()
	if err != nil || n != st.Ready+st.Delayed {
		t.Fatalf("Purge = %d, %v; want %d", n, err, st.Ready+st.Delayed)
	}
	if err := <-putDone; err != nil {
		t.Fatalf("the put that waited: %v", err)
	}
	st = q.Stats()
	if n != 5 || st.Ready != 1 || st.Delayed != 0 || st.Leased != 1 || st.Dead != 1 || st.PurgedTotal != 5 {
		t.Fatalf("after the purge: %+v", st)
	}
	// The leased item stays leased and settles as usual.
	if r := c.Ack([]Ack{ackOf(ds[2])}); r != nil {
		t.Fatalf("ack of a leased item after a purge: %v", r)
	}
	// The delayed item never comes back.
	clk.Advance(2 * time.Minute)
	if n := b.PromoteDelayed(); n != 0 {
		t.Fatalf("a purged delayed item was promoted (%d)", n)
	}
	// The dead-letter queue's purge.
	dq := mustQueue(t, b, "tasks.dead")
	if n, err := dq.Purge(); n != 1 || err != nil {
		t.Fatalf("Purge of the dead = %d, %v", n, err)
	}
	if n, err := q.Requeue(nil); n != 0 || err != nil {
		t.Fatalf("Requeue after a purge of the dead = %d, %v", n, err)
	}
	// What is left is delivered in order: the put's items only.
	c.Grant(10)
	got := mustNext(t, c, 1)
	var payloads []string
	for _, d := range got {
		payloads = append(payloads, string(d.Payload))
	}
	if !slices.Equal(payloads, []string{"h"}) {
		t.Fatalf("after the purge: %v", payloads)
	}
	mustCheck(t, q, dq)
	if n, err := q.Purge(); n != 0 || err != nil {
		t.Fatalf("Purge of nothing ready = %d, %v", n, err)
	}
}

// TestPause: a paused queue takes puts and hands out nothing, to
// consumers or to Get; settles go on; Resume wakes the waiting consumers.
func TestPause(t *testing.T) {
	b, _ := newTestBroker(t, Config{})
	q := mustQueue(t, b, "tasks")
	c := mustConsumer(t, q)
	c.Grant(5)
	mustPut(t, q, msgs("a")...)
	d := mustNext(t, c, 1)[0]
	if err := q.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := q.Pause(); err != nil { // twice: no change
		t.Fatal(err)
	}
	mustPut(t, q, msgs("b", "c")...)
	if ds, err := tryNext(c); len(ds) != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Next on a paused queue: %d, %v", len(ds), err)
	}
	if ds, err := q.Get(context.Background(), 1, true, 0, false); len(ds) != 0 || err != nil {
		t.Fatalf("Get on a paused queue: %v, %v", ds, err)
	}
	if r := c.Ack([]Ack{ackOf(d)}); r != nil {
		t.Fatalf("ack on a paused queue: %v", r)
	}
	if st := q.Stats(); !st.Paused || st.Ready != 2 || !q.Paused() {
		t.Fatalf("stats of a paused queue: %+v", st)
	}
	if q.Join(cancelled(), 0) {
		t.Fatal("a paused queue with items ready joined")
	}
	// A consumer blocked in Next and a Get waiting get them on Resume.
	c3 := mustConsumer(t, q)
	c3.Grant(1)
	next := make(chan []Delivery, 1)
	go func() {
		ds, _ := c3.Next(context.Background(), nil)
		next <- ds
	}()
	get := make(chan []Delivery, 1)
	go func() {
		ds, _ := q.Get(context.Background(), 1, false, 0, true)
		get <- ds
	}()
	waitFor(t, "the consumer to wait", func() bool { return isWaiter(c3) })
	waitFor(t, "the Get to wait", func() bool { return waitingForItems(q) })
	if err := q.Resume(); err != nil {
		t.Fatal(err)
	}
	got := len(<-next) + len(<-get)
	if got != 2 {
		t.Fatalf("after Resume: %d items handed out, want 2", got)
	}
	if st := q.Stats(); st.Paused {
		t.Fatalf("still paused: %+v", st)
	}
}

// TestPauseClosedDrainedEnds: a paused queue that is closed and drained
// still ends its consumers cleanly (pausing holds back items, not the end).
func TestPauseClosedDrainedEnds(t *testing.T) {
	b, _ := newTestBroker(t, Config{})
	q := mustQueue(t, b, "tasks")
	c := mustConsumer(t, q)
	if err := q.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tryNext(c); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next on a paused, closed, empty queue: %v", err)
	}
}

// TestPausePurgeSurviveRestart: with a journal, a pause and a purge are
// logged; a restart (from the log, and from a snapshot plus the log) comes
// back paused, without the purged items, and a resume after it is logged
// as well.
func TestPausePurgeSurviveRestart(t *testing.T) {
	j := &memJournal{}
	cfg := Config{Journal: j}
	b, clk := newTestBroker(t, cfg)
	cfg.Clock = clk
	q := mustQueue(t, b, "tasks")
	mustPut(t, q, msgs("a", "b", "c")...)
	c := mustConsumer(t, q)
	c.Grant(1)
	mustNext(t, c, 1) // 1 leased: the purge keeps it
	if n, err := q.Purge(); n != 2 || err != nil {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	if err := q.Pause(); err != nil {
		t.Fatal(err)
	}
	mustPut(t, q, msgs("d")...)
	if err := b.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap := &memSnapshot{}
	if _, err := b.Snapshot(snap); err != nil {
		t.Fatal(err)
	}
	want := b.m.Canonical()
	b.Close()
	for _, from := range []*memSnapshot{nil, snap} {
		b2 := restartBroker(t, cfg, j, j.LastLSN(), from, want)
		q2 := mustQueue(t, b2, "tasks")
		st := q2.Stats()
		// The leased item (1) is ready again; 2 and 3 are gone; 4 was put.
		if !st.Paused || st.Ready != 2 {
			t.Fatalf("restarted (snapshot %v): %+v", from != nil, st)
		}
		c2 := mustConsumer(t, q2)
		c2.Grant(5)
		if ds, _ := tryNext(c2); len(ds) != 0 {
			t.Fatalf("a restarted paused queue handed out %d", len(ds))
		}
		b2.Close()
	}
	// Resumed, logged, and restarted again: it delivers.
	b3 := restartBroker(t, cfg, j, j.LastLSN(), nil, want)
	q3 := mustQueue(t, b3, "tasks")
	if err := q3.Resume(); err != nil {
		t.Fatal(err)
	}
	want = b3.m.Canonical()
	b3.Close()
	b4 := restartBroker(t, cfg, j, j.LastLSN(), nil, want)
	q4 := mustQueue(t, b4, "tasks")
	c4 := mustConsumer(t, q4)
	c4.Grant(5)
	ds := mustNext(t, c4, 2)
	if string(ds[0].Payload) != "a" || string(ds[1].Payload) != "d" {
		t.Fatalf("after resume and restart: %q, %q", ds[0].Payload, ds[1].Payload)
	}
}

// TestConsumerInfo: what an operator sees of a consumer, counted per
// batch: deliveries, acks, failures (nacks and expired leases, not
// releases), credit, held items, its peer and when it was last seen.
func TestConsumerInfo(t *testing.T) {
	b, clk := newTestBroker(t, Config{LeaseTime: time.Minute})
	q := mustQueue(t, b, "tasks")
	c, err := q.NewConsumerFrom("10.0.0.7:5000")
	if err != nil {
		t.Fatal(err)
	}
	since := clk.Now()
	mustPut(t, q, msgs("a", "b", "c", "d", "e")...)
	c.Grant(6)
	ds := mustNext(t, c, 5)
	c.Ack([]Ack{ackOf(ds[0]), ackOf(ds[1])})
	c.Nack([]Nack{{ID: ds[2].ID, Lease: ds[2].Lease, Error: "x"}})
	c.Nack([]Nack{{ID: ds[3].ID, Lease: ds[3].Lease, Action: NackRelease}})
	clk.Advance(2 * time.Minute)
	b.ExpireLeases() // ds[4]'s lease runs out
	seen := clk.Now()
	c.Touch(seen)
	infos := q.Consumers()
	if len(infos) != 1 {
		t.Fatalf("Consumers: %+v", infos)
	}
	in := infos[0]
	want := ConsumerInfo{Queue: "tasks", Peer: "10.0.0.7:5000", Credit: 1, Held: 0, Delivered: 5, Acked: 2, Failed: 2}
	got := in
	got.Since, got.LastSeen = time.Time{}, time.Time{}
	if got != want || !in.Since.Equal(since) || !in.LastSeen.Equal(seen) {
		t.Fatalf("Consumers()[0] = %+v\nwant %+v since %v last seen %v", in, want, since, seen)
	}
	c.Close()
	if infos := q.Consumers(); len(infos) != 0 {
		t.Fatalf("a closed consumer is listed: %+v", infos)
	}
}
