package queue

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestConsumerCredit(t *testing.T) {
	_, _, q, _ := twoQueues(t, 0)
	mustPut(t, q, numbered(10)...)
	c := mustConsumer(t, q)
	if _, err := tryNext(c); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next without credit: %v", err)
	}
	c.Grant(0)
	c.Grant(-3)
	if _, err := tryNext(c); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after empty grants: %v", err)
	}
	c.Grant(2)
	c.Grant(1)
	buf := make([]Delivery, 0, 8)
	buf, err := c.Next(cancelled(), buf)
	if err != nil || len(buf) != 3 {
		t.Fatalf("Next with credit 3: %d, %v", len(buf), err)
	}
	// Settling does not restore credit.
	c.Ack([]Ack{ackOf(buf[0])})
	if ds, err := tryNext(c); len(ds) != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with credit used up: %d, %v", len(ds), err)
	}
	// Next appends to buf.
	c.Grant(1)
	buf, err = c.Next(cancelled(), buf)
	if err != nil || len(buf) != 4 || buf[3].ID != 4 {
		t.Fatalf("append: %+v, %v", buf, err)
	}
	if c.Held() != 3 {
		t.Fatalf("Held = %d", c.Held())
	}
	// More credit than items: only what is ready, credit kept.
	c.Grant(100)
	if ds := mustNext(t, c, 6); ds[5].ID != 10 {
		t.Fatal("order")
	}
	mustPut(t, q, numbered(3)...)
	mustNext(t, c, 3)
	if st := q.Stats(); st.DeliveredTotal != 13 || st.Leased != 12 || st.Consumers != 1 {
		t.Fatalf("stats %+v", st)
	}
	if c.Queue() != q {
		t.Fatal("Queue()")
	}
	mustCheck(t, q)
}

// A grant wakes a consumer only when it had no credit: one with credit waits
// for items, and their arrival wakes it. A wake-up for nothing costs the
// master a goroutine switch per ack (a worker grants with nearly each one).
func TestGrantWakesOnlyAStarvedConsumer(t *testing.T) {
	_, _, q, _ := twoQueues(t, 0)
	c := mustConsumer(t, q)
	pending := func() bool {
		select {
		case <-c.notify:
			return true
		default:
			return false
		}
	}
	c.Grant(1)
	if !pending() {
		t.Fatal("a grant to a consumer without credit did not wake it")
	}
	c.Grant(1)
	if pending() {
		t.Fatal("a grant to a consumer with credit woke it")
	}
	// Still served: the items' arrival wakes it, and it takes as many as
	// its whole credit allows.
	done := make(chan []Delivery)
	go func() {
		ds, _ := c.Next(context.Background(), nil)
		done <- ds
	}()
	mustPut(t, q, numbered(3)...)
	if ds := <-done; len(ds) != 2 {
		t.Fatalf("Next took %d, want 2", len(ds))
	}
	mustCheck(t, q)
}

func TestConsumerNextBlocks(t *testing.T) {
	b, clk, q, _ := twoQueues(t, 0)
	c := mustConsumer(t, q)
	got := make(chan []Delivery, 1)
	next := func() {
		ds, err := c.Next(context.Background(), nil)
		if err != nil {
			t.Error(err)
		}
		got <- ds
	}
	// Woken by a Put.
	c.Grant(2)
	go next()
	waitFor(t, "Next to block", func() bool { return isWaiter(c) })
	mustPut(t, q, msgs("a")...)
	if ds := <-got; len(ds) != 1 || string(ds[0].Payload) != "a" {
		t.Fatalf("woken by Put: %+v", ds)
	}
	// Woken by a Grant while items wait.
	mustPut(t, q, msgs("b", "c")...)
	go next() // one credit left: takes "b"
	if ds := <-got; len(ds) != 1 {
		t.Fatalf("%+v", ds)
	}
	go next()
	waitFor(t, "Next to block", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(c.notify) == 0 && q.ready.len() == 1
	})
	c.Grant(1)
	if ds := <-got; len(ds) != 1 || string(ds[0].Payload) != "c" {
		t.Fatalf("woken by Grant: %+v", ds)
	}
	// Woken by an item coming back, once its retry is due.
	d := mustPut(t, q, msgs("d")...)
	x := mustGet(t, q, 1, false)[0]
	if x.ID != d[0] {
		t.Fatal("order")
	}
	c.Grant(1)
	go next()
	waitFor(t, "Next to block", func() bool { return isWaiter(c) })
	q.Nack([]Nack{{ID: x.ID, Lease: x.Lease}})
	if n := promoteAll(t, b, clk); n != 1 {
		t.Fatalf("%d items due", n)
	}
	if ds := <-got; len(ds) != 1 || ds[0].ID != x.ID || ds[0].Attempt != 2 {
		t.Fatalf("woken by a nack: %+v", ds)
	}
	// Ended by its context.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	c.Grant(1)
	go func() {
		_, err := c.Next(ctx, nil)
		errc <- err
	}()
	waitFor(t, "Next to block", func() bool { return isWaiter(c) })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Next: %v", err)
	}
	mustCheck(t, q)
}

// TestConsumerWakeupNotLost is the regression test for the waiter list: a
// consumer whose Next ended (here by its context) must not keep the
// wake-up for a new item from a consumer that is still waiting.
func TestConsumerWakeupNotLost(t *testing.T) {
	_, _, q, _ := twoQueues(t, 0)
	A, B := mustConsumer(t, q), mustConsumer(t, q)
	A.Grant(1)
	B.Grant(1)
	if _, err := tryNext(A); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		_, err := B.Next(ctx, nil)
		got <- err
	}()
	waitFor(t, "B to wait", func() bool { return isWaiter(B) })
	mustPut(t, q, msgs("x")...)
	if err := <-got; err != nil {
		t.Fatalf("B's Next: %v (its wake-up went to A)", err)
	}

	// A consumer woken for an item that is closed before it takes it passes
	// the wake-up on. C is made to look blocked in Next, first in line.
	C := mustConsumer(t, q)
	C.Grant(1)
	q.mu.Lock()
	C.waiting = true
	q.waiters = append(q.waiters, C)
	q.mu.Unlock()
	B.Grant(1)
	go func() {
		_, err := B.Next(ctx, nil)
		got <- err
	}()
	waitFor(t, "B to wait", func() bool { return isWaiter(B) })
	mustPut(t, q, msgs("y")...) // wakes C only: C's credit covers it
	if isWaiter(C) || !isWaiter(B) {
		t.Fatal("setup: C should have been woken instead of B")
	}
	C.Close()
	if err := <-got; err != nil {
		t.Fatalf("B's Next: %v (its wake-up went to C)", err)
	}
	mustCheck(t, q)
}

func TestConsumerCloseReturnsLeases(t *testing.T) {
	b, _, q, res := twoQueues(t, 0)
	ids := mustPut(t, q, numbered(4)...)
	A, B := mustConsumer(t, q), mustConsumer(t, q)
	A.Grant(3)
	ds := mustNext(t, A, 3)
	if n := A.Close(); n != 3 {
		t.Fatalf("Close returned %d", n)
	}
	if n := A.Close(); n != 0 {
		t.Fatalf("second Close returned %d", n)
	}
	if _, err := tryNext(A); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Next after Close: %v", err)
	}
	if r := A.Ack([]Ack{replyAck(ds[0], res, "late")}); len(r) != 1 {
		t.Fatalf("ack after Close: %v", r)
	}
	if res.Stats().Ready != 0 {
		t.Fatal("ack after Close put a reply")
	}
	// The three are at the front again, ahead of the one never delivered,
	// each with its attempt counted.
	p := q.Peek(0, 10)
	if len(p) != 4 || p[3].ID != ids[3] {
		t.Fatalf("ready %+v", p)
	}
	for _, d := range p[:3] {
		if d.Attempt != 1 || d.Error != "consumer disconnected" {
			t.Fatalf("returned %+v", d)
		}
	}
	if st := q.Stats(); st.Consumers != 1 || st.Leased != 0 || st.ExpiredTotal != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A blocked Next on another goroutine ends when its consumer closes.
	errc := make(chan error, 1)
	go func() {
		_, err := B.Next(context.Background(), nil) // no credit: blocks
		errc <- err
	}()
	B.Close()
	if err := <-errc; !errors.Is(err, ErrInvalid) {
		t.Fatalf("blocked Next on Close: %v", err)
	}
	// Closing consumers counts attempts: the last one dead-letters.
	for range 2 {
		c := mustConsumer(t, q)
		c.Grant(1)
		mustNext(t, c, 1)
		c.Close()
	}
	if st := q.Stats(); st.Dead != 1 || st.DeadTotal != 1 {
		t.Fatalf("stats %+v", st)
	}
	if dead := mustQueue(t, b, "tasks.dead").Peek(0, 1); dead[0].Attempt != 3 || dead[0].Error != "consumer disconnected" {
		t.Fatalf("dead %+v", dead)
	}
	mustCheck(t, q, res)
}

func TestWaitConsumers(t *testing.T) {
	_, _, q, _ := twoQueues(t, 0)
	if err := q.WaitConsumers(cancelled(), 0); err != nil {
		t.Fatalf("wait for none: %v", err)
	}
	if err := q.WaitConsumers(cancelled(), 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait for one with none there and ctx done: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- q.WaitConsumers(t.Context(), 2) }()
	// A consumer that leaves does not count.
	gone := mustConsumer(t, q)
	gone.Close()
	first := mustConsumer(t, q)
	if err := q.WaitConsumers(cancelled(), 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait for two with one there and one gone: %v", err)
	}
	mustConsumer(t, q)
	if err := <-done; err != nil {
		t.Fatalf("wait for two: %v", err)
	}
	first.Close()
	if err := q.WaitConsumers(cancelled(), 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait for two with one there: %v", err)
	}
}
