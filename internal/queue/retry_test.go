package queue

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const lo, hi = time.Second, 8 * time.Second
	// The delay d doubles from lo with every attempt, up to hi.
	for _, tc := range []struct {
		attempts uint32
		d        time.Duration
	}{
		{0, lo}, // not an attempt: taken as the first
		{1, lo}, {2, 2 * lo}, {3, 4 * lo}, {4, hi}, {5, hi},
		{64, hi}, {100, hi}, {math.MaxUint32, hi}, // no overflow
	} {
		if got := backoff(lo, hi, tc.attempts, 0); got != tc.d/2 {
			t.Errorf("attempt %d, jitter 0: %v, want %v", tc.attempts, got, tc.d/2)
		}
		if got := backoff(lo, hi, tc.attempts, 0.5); got != tc.d*3/4 {
			t.Errorf("attempt %d, jitter 0.5: %v, want %v", tc.attempts, got, tc.d*3/4)
		}
		// Jitter out of [0, 1) is taken as 0.
		for _, j := range []float64{-0.5, 1, 2, math.NaN(), math.Inf(1)} {
			if got := backoff(lo, hi, tc.attempts, j); got != tc.d/2 {
				t.Errorf("attempt %d, jitter %v: %v, want %v", tc.attempts, j, got, tc.d/2)
			}
		}
		// Any jitter in [0, 1) waits in [d/2, d).
		rng := rand.New(rand.NewPCG(uint64(tc.attempts), 1))
		for _, j := range []float64{0.999999999, rng.Float64(), rng.Float64()} {
			if got := backoff(lo, hi, tc.attempts, j); got < tc.d/2 || got >= tc.d {
				t.Errorf("attempt %d, jitter %v: %v outside [%v, %v)", tc.attempts, j, got, tc.d/2, tc.d)
			}
		}
	}
	// Bounds far apart: lo<<n must not overflow on the way to hi.
	if got := backoff(time.Nanosecond, MaxRetryDelay, 63, 0); got != MaxRetryDelay/2 {
		t.Errorf("1ns..24h at attempt 63: %v", got)
	}
	if got := backoff(time.Hour, MaxRetryDelay, 64, 0); got != MaxRetryDelay/2 {
		t.Errorf("1h..24h at attempt 64: %v", got)
	}
}

// retryQueue is a queue on a manual clock with retries from 1 s to 8 s.
func retryQueue(t *testing.T, maxAttempts int) (*Broker, *Queue, *Consumer, func(time.Duration) int) {
	t.Helper()
	b, clk := newTestBroker(t, Config{
		LeaseTime:   time.Hour,
		MaxAttempts: maxAttempts,
		RetryMin:    time.Second,
		RetryMax:    8 * time.Second,
	})
	q := mustQueue(t, b, "tasks")
	c := mustConsumer(t, q)
	// advance moves the clock by d and makes what is due ready.
	advance := func(d time.Duration) int {
		clk.Advance(d)
		return b.PromoteDelayed()
	}
	return b, q, c, advance
}

// TestRetryWaitsItsBackoff: a retried item is not delivered before its due
// time and is at it; its delay doubles with every attempt up to the
// maximum, and the jitter places it between half the delay and the delay.
func TestRetryWaitsItsBackoff(t *testing.T) {
	_, q, c, advance := retryQueue(t, 10)
	id := mustPut(t, q, msgs("a")...)[0]
	delays := []time.Duration{1, 2, 4, 8, 8, 8, 8, 8, 8} // seconds, after attempts 1..9
	jitters := []float64{0, 0.75, 0.5, 0, 0.999, 0.25}
	for k, d := range delays {
		attempt := uint32(k + 1)
		c.Grant(1)
		got := mustNext(t, c, 1)[0]
		if got.ID != id || got.Attempt != attempt || (attempt > 1 && got.Error != "boom") {
			t.Fatalf("attempt %d: delivery %+v", attempt, got)
		}
		j := jitters[k%len(jitters)]
		if r := c.Nack([]Nack{{ID: got.ID, Lease: got.Lease, Error: "boom", Jitter: j}}); r != nil {
			t.Fatal(r)
		}
		d *= time.Second
		wait := d/2 + time.Duration(j*float64(d/2))
		if wait < d/2 || wait >= d {
			t.Fatalf("attempt %d: wait %v outside [%v, %v)", attempt, wait, d/2, d)
		}
		if st := q.Stats(); st.Delayed != 1 || st.Ready != 0 || st.Leased != 0 {
			t.Fatalf("attempt %d: stats after the nack %+v", attempt, st)
		}
		if n := advance(wait - time.Nanosecond); n != 0 {
			t.Fatalf("attempt %d: ready %v early", attempt, time.Nanosecond)
		}
		if ds, err := tryNext(c); len(ds) != 0 || !errors.Is(err, context.Canceled) {
			t.Fatalf("attempt %d: delivered before its due time: %+v, %v", attempt, ds, err)
		}
		if n := advance(time.Nanosecond); n != 1 {
			t.Fatalf("attempt %d: not ready after %v", attempt, wait)
		}
		if st := q.Stats(); st.Delayed != 0 || st.Ready != 1 {
			t.Fatalf("attempt %d: stats when due %+v", attempt, st)
		}
	}
	mustCheck(t, q)
}

// TestNackDelay: a nack's own delay is honoured exactly, without jitter and
// whatever the attempt, up to MaxRetryDelay; zero or less takes the backoff.
func TestNackDelay(t *testing.T) {
	_, q, c, advance := retryQueue(t, 10)
	mustPut(t, q, msgs("a")...)
	for _, tc := range []struct {
		delay, wait time.Duration
	}{
		{3 * time.Second, 3 * time.Second},   // after attempt 1
		{time.Millisecond, time.Millisecond}, // below the backoff's minimum
		{time.Minute, time.Minute},           // above its maximum
		{48 * time.Hour, MaxRetryDelay},      // capped
		{math.MaxInt64, MaxRetryDelay},       // capped, without overflow
		{0, 4 * time.Second},                 // the backoff after attempt 6: 8 s, jitter 0
		{-time.Second, 4 * time.Second},      // the backoff too
		{time.Nanosecond, time.Nanosecond},   // after attempt 8
	} {
		c.Grant(1)
		d := mustNext(t, c, 1)[0]
		if r := c.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Error: "later", Delay: tc.delay, Jitter: 0}}); r != nil {
			t.Fatal(r)
		}
		if n := advance(tc.wait - time.Nanosecond); n != 0 {
			t.Fatalf("delay %v: ready before %v", tc.delay, tc.wait)
		}
		if n := advance(time.Nanosecond); n != 1 {
			t.Fatalf("delay %v: not ready after %v", tc.delay, tc.wait)
		}
	}
	// The jitter does not change an explicit delay.
	c.Grant(1)
	d := mustNext(t, c, 1)[0]
	c.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Delay: 3 * time.Second, Jitter: 0.9}})
	if advance(3*time.Second-1) != 0 || advance(1) != 1 {
		t.Fatal("an explicit delay was jittered")
	}
	mustCheck(t, q)
}

// TestOnlyRetriesWait: releases, dead-letterings, expired leases and a lost
// consumer's items are not delayed, whatever delay a nack carries (the
// attempts of the last two count all the same), and an item that had its
// last attempt is dead-lettered at once.
func TestOnlyRetriesWait(t *testing.T) {
	b, clk := newTestBroker(t, Config{LeaseTime: time.Minute, MaxAttempts: 3, RetryMin: time.Second})
	q, dq := mustQueue(t, b, "tasks"), mustQueue(t, b, "tasks.dead")
	want := func(what string, ready, dead int) {
		t.Helper()
		if st := q.Stats(); st.Delayed != 0 || st.Ready != ready || st.Dead != dead {
			t.Fatalf("after %s: %+v; want %d ready, %d dead, none delayed", what, st, ready, dead)
		}
		mustCheck(t, q, dq)
	}
	ids := mustPut(t, q, msgs("a", "b", "c")...)
	c := mustConsumer(t, q)
	c.Grant(3)
	ds := mustNext(t, c, 3)
	c.Nack([]Nack{{ID: ds[0].ID, Lease: ds[0].Lease, Action: NackRelease, Delay: time.Hour}})
	want("a release", 1, 0)
	c.Nack([]Nack{{ID: ds[1].ID, Lease: ds[1].Lease, Action: NackDead, Delay: time.Hour}})
	want("a nack to the dead-letter queue", 1, 1)
	clk.Advance(time.Minute)
	if n := b.ExpireLeases(); n != 1 {
		t.Fatalf("ExpireLeases = %d", n)
	}
	want("an expired lease", 2, 1)

	c2 := mustConsumer(t, q)
	c2.Grant(2)
	if ds := mustNext(t, c2, 2); ds[0].ID != ids[2] || ds[0].Attempt != 2 || ds[1].ID != ids[0] || ds[1].Attempt != 1 {
		t.Fatalf("after expiry: %+v", ds)
	}
	if n := c2.Close(); n != 2 {
		t.Fatalf("Close gave back %d", n)
	}
	want("a lost consumer", 2, 1)

	// "c" had two attempts; its third and last fails: dead at once.
	c.Grant(1)
	d := mustNext(t, c, 1)[0]
	if d.ID != ids[2] || d.Attempt != 3 || d.Error != "consumer disconnected" {
		t.Fatalf("third attempt %+v", d)
	}
	c.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Error: "last", Delay: time.Hour}})
	want("the last attempt's failure", 1, 2)
	if dead := dq.Peek(0, 10); len(dead) != 2 || dead[1].ID != ids[2] || dead[1].Attempt != 3 || dead[1].Error != "last" {
		t.Fatalf("dead %+v", dead)
	}
}

// TestDelayedItemsAreUnfinished: Join waits for a delayed item, and a
// closed queue that holds one is not drained: Get and Next wait for it
// rather than report the end, and see the end once it is settled.
func TestDelayedItemsAreUnfinished(t *testing.T) {
	b, clk, q, _ := twoQueues(t, 0)
	mustPut(t, q, msgs("a")...)
	d := mustGet(t, q, 1, false)[0]
	q.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Error: "later"}})
	if st := q.Stats(); st.Delayed != 1 || st.Ready != 0 || st.Leased != 0 {
		t.Fatalf("stats %+v", st)
	}
	if q.Join(cancelled(), 0) {
		t.Fatal("Join true with an item delayed")
	}
	q.Close()
	if ds, err := q.Get(context.Background(), 1, true, 0, false); err != nil || ds != nil {
		t.Fatalf("nowait Get on a closed queue with an item delayed: %v, %v; want nothing, no error", ds, err)
	}
	c := mustConsumer(t, q)
	c.Grant(1)
	if ds, err := tryNext(c); len(ds) != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Next on a closed queue with an item delayed: %v, %v; want a wait", ds, err)
	}

	joined := make(chan bool, 1)
	go func() { joined <- q.Join(context.Background(), 0) }()
	got := make(chan []Delivery, 1)
	go func() {
		ds, err := c.Next(context.Background(), nil)
		if err != nil {
			t.Error(err)
		}
		got <- ds
	}()
	waitFor(t, "Join and Next to block", func() bool { return waitingForDrain(q) && isWaiter(c) })
	if n := promoteAll(t, b, clk); n != 1 {
		t.Fatalf("PromoteDelayed = %d", n)
	}
	ds := <-got
	if len(ds) != 1 || ds[0].ID != d.ID || ds[0].Attempt != 2 || ds[0].Error != "later" {
		t.Fatalf("retry %+v", ds)
	}
	select {
	case ok := <-joined:
		t.Fatalf("Join returned %v with the item leased", ok)
	default:
	}
	c.Ack([]Ack{ackOf(ds[0])})
	if !<-joined {
		t.Fatal("Join = false")
	}
	c.Grant(1)
	if _, err := tryNext(c); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next on the drained queue: %v", err)
	}
	mustCheck(t, q)
}

// TestRetryOverrides: a queue's own backoff, its dead-letter queue's, and
// the master's for the others.
func TestRetryOverrides(t *testing.T) {
	b, clk := newTestBroker(t, Config{
		RetryMin: time.Second,
		RetryMax: 2 * time.Second,
		Queues: []QueueConfig{
			{Name: "plain"},
			{Name: "slow", RetryMin: 10 * time.Second, RetryMax: time.Minute},
			{Name: "fixed", RetryMin: time.Hour}, // above the master's max: fixed
			{Name: "capped", RetryMax: 1500 * time.Millisecond},
		},
	})
	for _, tc := range []struct {
		queue  string
		lo, hi time.Duration
	}{
		{"plain", time.Second, 2 * time.Second},
		{"plain.dead", time.Second, 2 * time.Second},
		{"slow", 10 * time.Second, time.Minute},
		{"slow.dead", 10 * time.Second, time.Minute},
		{"fixed", time.Hour, time.Hour},
		{"capped", time.Second, 1500 * time.Millisecond},
	} {
		q := mustQueue(t, b, tc.queue)
		if lo, hi := q.RetryBackoff(); lo != tc.lo || hi != tc.hi {
			t.Errorf("%s: backoff %v..%v, want %v..%v", tc.queue, lo, hi, tc.lo, tc.hi)
		}
		if q.IsDead() {
			continue
		}
		// The first retry waits half the minimum (jitter 0).
		mustPut(t, q, msgs("x")...)
		d := mustGet(t, q, 1, false)[0]
		q.Nack([]Nack{{ID: d.ID, Lease: d.Lease}})
		clk.Advance(tc.lo/2 - 1)
		if n := b.PromoteDelayed(); n != 0 {
			t.Errorf("%s: ready before %v", tc.queue, tc.lo/2)
		}
		clk.Advance(1)
		if n := b.PromoteDelayed(); n != 1 {
			t.Errorf("%s: not ready after %v", tc.queue, tc.lo/2)
		}
	}
}

// TestNextDeadline: the scan loop sleeps until the earliest of the leases'
// deadlines and the delayed items' due times.
func TestNextDeadline(t *testing.T) {
	_, clk, q, _ := twoQueues(t, 0) // 10 s leases
	now := clk.Now().UnixNano()
	if next := q.scan(now); next != 0 {
		t.Fatalf("empty queue: next %d", next)
	}
	mustPut(t, q, msgs("a", "b", "c")...)
	ds := mustGet(t, q, 3, false)
	if next := q.scan(now); next != now+int64(10*time.Second) {
		t.Fatalf("leases: next %v", time.Duration(next-now))
	}
	q.Nack([]Nack{{ID: ds[0].ID, Lease: ds[0].Lease, Delay: 3 * time.Second}})
	if next := q.scan(now); next != now+int64(3*time.Second) {
		t.Fatalf("a delayed item: next %v", time.Duration(next-now))
	}
	q.Extend([]Extend{{ID: ds[1].ID, Lease: ds[1].Lease, Duration: time.Second}})
	if next := q.scan(now); next != now+int64(time.Second) {
		t.Fatalf("an extended lease: next %v", time.Duration(next-now))
	}
	// A scan at a later time expires and promotes what is due then.
	if next := q.scan(now + int64(3*time.Second)); next != now+int64(10*time.Second) {
		t.Fatalf("after the scan: next %v", time.Duration(next-now))
	}
	if st := q.Stats(); st.Ready != 2 || st.Delayed != 0 || st.Leased != 1 || st.ExpiredTotal != 1 {
		t.Fatalf("after the scan: %+v", st)
	}
}

// TestWakeBy: the loop is poked only for a deadline earlier than the one
// it sleeps for, and that deadline becomes its wake-up time.
func TestWakeBy(t *testing.T) {
	b, _ := newTestBroker(t, Config{})
	poked := func() bool {
		select {
		case <-b.poke:
			return true
		default:
			return false
		}
	}
	b.wakeAt.Store(100)
	b.wakeBy(100)
	b.wakeBy(200)
	if poked() || b.wakeAt.Load() != 100 {
		t.Fatal("poked for a later deadline")
	}
	b.wakeBy(50)
	b.wakeBy(70) // later than 50 now
	if !poked() || b.wakeAt.Load() != 50 {
		t.Fatalf("not poked for an earlier deadline (wakeAt %d)", b.wakeAt.Load())
	}
	if poked() {
		t.Fatal("poked twice")
	}
}

// loopAsleep reports whether the scan loop has scanned and is going to
// sleep, with no poke pending. (No event tells; this is polled.)
func loopAsleep(b *Broker) bool {
	return len(b.poke) == 0 && b.wakeAt.Load() != math.MaxInt64
}

// TestScanLoopPromotesRetries uses the real clock and a loop that sleeps
// for an hour: a retry due within milliseconds must poke it, and a blocked
// consumer gets the item back from the loop, not from the test.
func TestScanLoopPromotesRetries(t *testing.T) {
	b, err := New(Config{LeaseTime: time.Hour, ScanInterval: time.Hour, RetryMin: time.Millisecond, RetryMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q := mustQueue(t, b, "tasks")
	mustPut(t, q, msgs("held", "retried")...)
	held := mustGet(t, q, 1, false) // the loop now sleeps for its hour-long lease
	if len(held) != 1 {
		t.Fatal("Get")
	}
	c := mustConsumer(t, q)
	c.Grant(1)
	first := mustNext(t, c, 1)[0]
	waitFor(t, "the scan loop to sleep", func() bool { return loopAsleep(b) })
	c.Nack([]Nack{{ID: first.ID, Lease: first.Lease, Error: "flaky"}})
	c.Grant(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ds, err := c.Next(ctx, nil)
	if err != nil || len(ds) != 1 || ds[0].ID != first.ID || ds[0].Attempt != 2 || ds[0].Error != "flaky" {
		t.Fatalf("retry: %+v, %v", ds, err)
	}
}

// TestScanLoopExpiresShortenedLease: an extension that brings a lease's
// deadline forward pokes a loop that sleeps for later.
func TestScanLoopExpiresShortenedLease(t *testing.T) {
	b, err := New(Config{LeaseTime: time.Hour, ScanInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q := mustQueue(t, b, "tasks")
	mustPut(t, q, msgs("x")...)
	d := mustGet(t, q, 1, false)[0]
	waitFor(t, "the scan loop to sleep", func() bool { return loopAsleep(b) })
	q.Extend([]Extend{{ID: d.ID, Lease: d.Lease, Duration: time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	again, err := q.Get(ctx, 1, false, 0, false)
	if err != nil || len(again) != 1 || again[0].ID != d.ID || again[0].Attempt != 2 {
		t.Fatalf("after the shortened lease: %+v, %v", again, err)
	}
}
