package distq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/distq/distq/internal/clock"
)

// Tasks held for more than two leases, one running and two waiting in the
// pool's queue, are all kept: the worker extends their leases by itself,
// so none expires, none is redelivered and no ack is refused.
func TestWorkerExtendsLeasesOfSlowTasks(t *testing.T) {
	// The master's clock moves only when the test says, and only after
	// the worker has renewed every lease since the last move: however
	// slow the machine, a lease can run out only if the worker failed to
	// renew it. (On the real clock, a stall of half a lease failed this.)
	const lease = time.Second
	clk := clock.NewManual(time.Unix(1700000000, 0))
	m := startMaster(t, masterConfig{Clock: clk, LeaseTime: lease})
	c := m.dial(t)
	ctx := testContext(t)
	const n = 3
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Payload: []byte(fmt.Sprint(i))}
	}
	if _, err := c.Queue("tasks").PutBatch(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	started := make(chan *Task, n)
	release := make(chan struct{})
	w, err := c.NewWorker(WorkerConfig{Concurrency: 1, Prefetch: n}, func(ctx context.Context, t *Task) ([]byte, error) {
		started <- t
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return t.Payload, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)
	first := <-started
	if first.LeaseTime != lease {
		t.Fatalf("task's lease time %v, want %v", first.LeaseTime, lease)
	}
	s := first.settler.(*workerStream)
	waitFor(t, "the worker to hold all the tasks", func() bool { return s.held.Load() == n })
	// Four rounds: once every task has been renewed since the clock last
	// moved, the clock moves on by three quarters of a lease and the
	// master expires what ran out. Without renewals the first lease would
	// run out in the second round. (All three tasks are one chunk,
	// renewed together: a renewal adds n. The first n counted after the
	// move may have been sent before it; the next n were sent after.)
	for round := 1; round <= 4; round++ {
		want := w.Stats().Extended + 2*n
		waitFor(t, fmt.Sprintf("renewal round %d", round), func() bool { return w.Stats().Extended >= want })
		clk.Advance(lease * 3 / 4)
		if k := m.broker.ExpireLeases(); k != 0 {
			t.Fatalf("round %d: %d leases ran out although the worker renews them", round, k)
		}
	}
	if st := m.stats("tasks"); st.Leased != n || st.ExpiredTotal != 0 {
		t.Fatalf("tasks while held: %+v", st)
	}

	close(release)
	if err := c.Queue("tasks").Join(ctx); err != nil {
		t.Fatal(err)
	}
	if st := m.stats("tasks"); st.AckedTotal != n || st.ExpiredTotal != 0 || st.RedeliveredTotal != 0 || st.RefusedTotal != 0 {
		t.Fatalf("tasks: %+v", st)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Processed != n || st.Refused != 0 {
		t.Fatalf("worker stats: %+v", st)
	}
	if st := m.stats("results"); st.Ready != n {
		t.Fatalf("results: %+v", st)
	}
}

func TestWorkerWithoutAutoExtendLosesOverrunningTask(t *testing.T) {
	m := startMaster(t, masterConfig{LeaseTime: 500 * time.Millisecond, MaxAttempts: 100})
	c := m.dial(t)
	ctx := testContext(t)
	id, err := c.Queue("tasks").Put(ctx, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	w, err := c.NewWorker(WorkerConfig{Concurrency: 1, Prefetch: 1, NoAutoExtend: true}, func(ctx context.Context, t *Task) ([]byte, error) {
		if t.Attempt == 1 {
			started <- struct{}{}
			<-release
			return []byte("late"), nil
		}
		return []byte("again"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)
	<-started
	waitFor(t, "the master to expire the lease", func() bool { return m.stats("tasks").ExpiredTotal >= 1 })
	close(release)
	reply, err := c.Queue("results").Get(ctx)
	if err != nil || reply.ReplyTo != id || string(reply.Payload) != "again" {
		t.Fatalf("reply: %+v, %v; want the second attempt's", reply, err)
	}
	if err := c.Queue("tasks").Join(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	ws := w.Stats()
	if ws.Refused < 1 || ws.Extended != 0 {
		t.Fatalf("worker stats: %+v", ws)
	}
	if st := m.stats("tasks"); st.AckedTotal != 1 || st.RedeliveredTotal < 1 || st.RefusedTotal != ws.Refused {
		t.Fatalf("tasks: %+v", st)
	}
	if st := m.stats("results"); st.PutTotal != 1 {
		t.Fatalf("results: %+v; want only the second attempt's reply", st)
	}
}

// A renewal the master refuses (the lease was lost meanwhile) is counted,
// and that lease is no longer renewed.
func TestWorkerCountsRefusedRenewals(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 0))
	m := startMaster(t, masterConfig{Clock: clk, LeaseTime: time.Second})
	c := m.dial(t)
	ctx := testContext(t)
	if _, err := c.Queue("tasks").Put(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	started := make(chan *Task, 1)
	release := make(chan struct{})
	w, err := c.NewWorker(WorkerConfig{Concurrency: 1, Prefetch: 1}, func(ctx context.Context, t *Task) ([]byte, error) {
		if t.Attempt == 1 {
			started <- t
			<-release
		}
		return t.Payload, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)
	first := <-started
	waitFor(t, "a renewal", func() bool { return w.Stats().Extended > 0 })
	// A renewal landing between the two steps would save the lease; go
	// on until the master takes it back.
	waitFor(t, "the master to expire the lease", func() bool {
		clk.Advance(time.Second)
		return m.broker.ExpireLeases() == 1
	})
	waitFor(t, "the renewal to be refused", func() bool { return w.Stats().Refused >= 1 })
	rn := first.settler.(*workerStream).renew
	waitFor(t, "the lost lease to be marked", func() bool {
		rn.mu.Lock()
		defer rn.mu.Unlock()
		return rn.marks[first].lost
	})
	close(release)
	if err := c.Queue("tasks").Join(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	// A renewal (or two, if the refusal was slower than a tick) and the
	// late ack.
	ws := w.Stats()
	if ws.Refused < 2 {
		t.Fatalf("worker stats: %+v", ws)
	}
	if st := m.stats("tasks"); st.AckedTotal != 1 || st.ExpiredTotal != 1 || st.RefusedTotal != ws.Refused {
		t.Fatalf("tasks: %+v", st)
	}
}

// A handler stuck past MaxHold loses its task, as a hung process does: its
// context ends, the worker stops extending the lease, the master takes the
// task back when the lease runs out, and the stuck handler's late answer is
// refused.
func TestWorkerLetsGoOfTasksHeldPastMaxHold(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 0))
	const lease = time.Second
	m := startMaster(t, masterConfig{Clock: clk, LeaseTime: lease, MaxAttempts: 100})
	c := m.dial(t)
	ctx := testContext(t)
	id, err := c.Queue("tasks").Put(ctx, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	const maxHold = 100 * time.Millisecond
	deadline := make(chan bool, 1)
	release := make(chan struct{})
	w, err := c.NewWorker(WorkerConfig{Concurrency: 1, Prefetch: 1, MaxHold: maxHold}, func(ctx context.Context, t *Task) ([]byte, error) {
		if t.Attempt == 1 {
			_, ok := ctx.Deadline()
			deadline <- ok
			<-release // stuck: it does not even look at ctx
			return []byte("late"), nil
		}
		return []byte("again"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)
	if !<-deadline {
		t.Fatal("the handler's context has no deadline under MaxHold")
	}
	waitFor(t, "the worker to let go of the task", func() bool { return w.Stats().Abandoned == 1 })
	// A renewal sent before it let go may still land after a move of the
	// clock; go on until the master takes the task back.
	waitFor(t, "the master to expire the lease", func() bool {
		clk.Advance(lease)
		return m.broker.ExpireLeases() == 1
	})
	close(release)
	reply, err := c.Queue("results").Get(ctx)
	if err != nil || reply.ReplyTo != id || string(reply.Payload) != "again" {
		t.Fatalf("reply: %+v, %v; want the second attempt's", reply, err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if st := m.stats("tasks"); st.AckedTotal != 1 || st.ExpiredTotal != 1 || st.RefusedTotal < 1 {
		t.Fatalf("tasks: %+v; want one ack, the lease expired, the late answer refused", st)
	}
}
