package distq

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"

	"github.com/distq/distq/internal/queue"

	"github.com/distq/distq/internal/clock"
)

func TestNewClientNeedsAKey(t *testing.T) {
	if _, err := NewClient("127.0.0.1:1", Options{}); err == nil {
		t.Fatal("NewClient accepted an empty authkey")
	}
}

func TestDialWithWrongKeyIsPermanent(t *testing.T) {
	m := startMaster(t, masterConfig{})
	_, err := Dial(testContext(t), m.addr, Options{AuthKey: []byte("not the key")})
	if err == nil {
		t.Fatal("Dial with a wrong key succeeded")
	}
	if !IsPermanent(err) || !errors.Is(err, ErrMasterUnverified) {
		t.Fatalf("wrong key: %v; want a permanent ErrMasterUnverified", err)
	}
	if !strings.Contains(err.Error(), m.addr) {
		t.Fatalf("error %q does not name the master", err)
	}
}

func TestPutAndGet(t *testing.T) {
	m := startMaster(t, masterConfig{})
	c := m.dial(t)
	ctx := testContext(t)
	tasks := c.Queue("tasks")
	if tasks.Name() != "tasks" {
		t.Fatal(tasks.Name())
	}

	id, err := tasks.Put(ctx, []byte("one"))
	if err != nil || id != 1 {
		t.Fatalf("Put = %d, %v", id, err)
	}
	ids, err := tasks.PutBatch(ctx, []Message{{Payload: []byte("two"), Headers: map[string]string{"h": "v"}}, {Payload: []byte("three")}, {Payload: []byte("four")}})
	if err != nil || !slices.Equal(ids, []uint64{2, 3, 4}) {
		t.Fatalf("PutBatch = %v, %v", ids, err)
	}
	if n, err := tasks.Qsize(ctx); err != nil || n != 4 {
		t.Fatalf("Qsize = %d, %v", n, err)
	}
	if empty, err := tasks.Empty(ctx); err != nil || empty {
		t.Fatalf("Empty = %v, %v", empty, err)
	}

	got, err := tasks.Get(ctx)
	if err != nil || got.ID != 1 || string(got.Payload) != "one" || got.Attempt != 1 {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	got, err = tasks.GetNowait(ctx)
	if err != nil || got.ID != 2 || got.Headers["h"] != "v" {
		t.Fatalf("GetNowait = %+v, %v", got, err)
	}
	many, err := tasks.GetMany(ctx, 10, time.Second)
	if err != nil || len(many) != 2 || many[0].ID != 3 || many[1].ID != 4 {
		t.Fatalf("GetMany = %v, %v", many, err)
	}
	// Taken with Get, the items are settled already.
	if st, err := tasks.Stats(ctx); err != nil || st.Ready != 0 || st.Leased != 0 || st.AckedTotal != 4 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}

	if _, err := tasks.GetNowait(ctx); !errors.Is(err, ErrEmpty) {
		t.Fatalf("GetNowait on empty: %v, want ErrEmpty", err)
	}
	if _, err := tasks.GetTimeout(ctx, 10*time.Millisecond); !errors.Is(err, ErrEmpty) {
		t.Fatalf("GetTimeout on empty: %v, want ErrEmpty", err)
	}
	if _, err := tasks.GetMany(ctx, 5, 10*time.Millisecond); !errors.Is(err, ErrEmpty) {
		t.Fatalf("GetMany on empty: %v, want ErrEmpty", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := tasks.Get(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get bounded by ctx: %v, want DeadlineExceeded", err)
	}
	if empty, err := tasks.Empty(ctx); err != nil || !empty {
		t.Fatalf("Empty = %v, %v", empty, err)
	}
}

func TestGetWaitsForAPut(t *testing.T) {
	m := startMaster(t, masterConfig{})
	c := m.dial(t)
	ctx := testContext(t)
	got := make(chan *Task, 1)
	go func() {
		task, err := c.Queue("results").Get(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- task
	}()
	if _, err := c.Queue("results").Put(ctx, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if task := <-got; task == nil || string(task.Payload) != "late" {
		t.Fatalf("Get = %+v", task)
	}
}

func TestPutOnFullQueue(t *testing.T) {
	m := startMaster(t, masterConfig{Queues: []queue.QueueConfig{{Name: "tasks", MaxSize: 2}, {Name: "results"}}})
	c := m.dial(t)
	ctx := testContext(t)
	tasks := c.Queue("tasks")
	if full, err := tasks.Full(ctx); err != nil || full {
		t.Fatalf("Full = %v, %v", full, err)
	}
	ids, err := tasks.PutBatch(ctx, []Message{{Payload: []byte("a")}, {Payload: []byte("b")}, {Payload: []byte("c")}}, Nowait())
	if !errors.Is(err, ErrFull) {
		t.Fatalf("PutBatch past the bound: %v, want ErrFull", err)
	}
	if !slices.Equal(ids, []uint64{1, 2}) {
		t.Fatalf("accepted ids %v, want [1 2]", ids)
	}
	if full, err := tasks.Full(ctx); err != nil || !full {
		t.Fatalf("Full = %v, %v", full, err)
	}
	if _, err := tasks.PutNowait(ctx, []byte("d")); !errors.Is(err, ErrFull) {
		t.Fatalf("PutNowait: %v, want ErrFull", err)
	}
	var e *Error
	if _, err := tasks.Put(ctx, []byte("d"), Timeout(10*time.Millisecond)); !errors.As(err, &e) || e.Kind != ErrFull || e.Code != codes.ResourceExhausted {
		t.Fatalf("Put with a timeout: %v, want ErrFull", err)
	}
	if IsPermanent(e) {
		t.Fatal("a full queue is not permanent")
	}
	// Without options a put waits for room.
	done := make(chan error, 1)
	go func() {
		_, err := tasks.Put(ctx, []byte("e"))
		done <- err
	}()
	if _, err := tasks.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a waiting put: %v", err)
	}
	if st := m.stats("tasks"); st.Ready != 2 || st.PutTotal != 3 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestCloseDrainsThenErrClosed(t *testing.T) {
	m := startMaster(t, masterConfig{})
	c := m.dial(t)
	ctx := testContext(t)
	tasks := c.Queue("tasks")
	if _, err := tasks.Put(ctx, []byte("last")); err != nil {
		t.Fatal(err)
	}
	if err := tasks.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.Put(ctx, []byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
	if got, err := tasks.Get(ctx); err != nil || string(got.Payload) != "last" {
		t.Fatalf("Get of what is left: %+v, %v", got, err)
	}
	for _, get := range []func() error{
		func() error { _, err := tasks.Get(ctx); return err },
		func() error { _, err := tasks.GetNowait(ctx); return err },
		func() error { _, err := tasks.Lease(ctx, time.Second); return err },
	} {
		if err := get(); !errors.Is(err, ErrClosed) {
			t.Fatalf("get on closed and drained: %v, want ErrClosed", err)
		}
	}
	if st, err := tasks.Stats(ctx); err != nil || !st.Closed {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	if err := tasks.Join(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownQueueIsPermanent(t *testing.T) {
	m := startMaster(t, masterConfig{})
	c := m.dial(t)
	ctx := testContext(t)
	nope := c.Queue("nope")
	_, err := nope.Put(ctx, []byte("x"))
	if !errors.Is(err, ErrUnknownQueue) || !IsPermanent(err) {
		t.Fatalf("Put: %v, want a permanent ErrUnknownQueue", err)
	}
	if _, err := nope.GetNowait(ctx); !errors.Is(err, ErrUnknownQueue) {
		t.Fatalf("GetNowait: %v", err)
	}
	if _, err := nope.Stats(ctx); !errors.Is(err, ErrUnknownQueue) {
		t.Fatalf("Stats: %v", err)
	}
}

func TestClientStats(t *testing.T) {
	m := startMaster(t, masterConfig{Queues: []queue.QueueConfig{{Name: "tasks", MaxSize: 7}, {Name: "results"}}})
	c := m.dial(t)
	ctx := testContext(t)
	if _, err := c.Queue("tasks").Put(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	all, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range all {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"tasks", "tasks.dead", "results", "results.dead"}) {
		t.Fatalf("queues %v", names)
	}
	if all[0].Ready != 1 || all[0].MaxSize != 7 || all[0].PutTotal != 1 {
		t.Fatalf("tasks: %+v", all[0])
	}
	if c.Addr() != m.addr {
		t.Fatalf("Addr %q, want %q", c.Addr(), m.addr)
	}
	for range 2 {
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestLeaseAndSettle(t *testing.T) {
	clock := clock.NewManual(time.Unix(1700000000, 0))
	m := startMaster(t, masterConfig{Clock: clock, LeaseTime: time.Minute, MaxAttempts: 3})
	c := m.dial(t)
	ctx := testContext(t)
	tasks := c.Queue("tasks")
	if _, err := tasks.PutBatch(ctx, []Message{{Payload: []byte("a")}, {Payload: []byte("b")}, {Payload: []byte("c")}}); err != nil {
		t.Fatal(err)
	}

	// Done.
	a, err := tasks.Lease(ctx, time.Second)
	if err != nil || string(a.Payload) != "a" || a.Attempt != 1 {
		t.Fatalf("Lease = %+v, %v", a, err)
	}
	if want := clock.Now().Add(time.Minute); !a.Deadline.Equal(want) || a.LeaseTime != time.Minute {
		t.Fatalf("deadline %v, lease time %v; want %v, 1m0s", a.Deadline, a.LeaseTime, want)
	}
	if err := a.Done(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Done(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("second Done: %v, want ErrLeaseLost", err)
	}

	// Release: the attempt does not count.
	b, err := tasks.Lease(ctx, time.Second)
	if err != nil || string(b.Payload) != "b" {
		t.Fatalf("Lease = %+v, %v", b, err)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b, err = tasks.Lease(ctx, time.Second)
	if err != nil || string(b.Payload) != "b" || b.Attempt != 1 {
		t.Fatalf("after Release: %+v, %v", b, err)
	}

	// Fail: retried with the next attempt once its backoff is over, the
	// error kept.
	if err := b.Fail(ctx, errors.New("flaky")); err != nil {
		t.Fatal(err)
	}
	if st := m.stats("tasks"); st.Delayed != 1 || st.Ready != 1 {
		t.Fatalf("after Fail: %+v", st)
	}
	clock.Advance(queue.DefaultRetryMin)
	if n := m.broker.PromoteDelayed(); n != 1 {
		t.Fatalf("%d retries due after the first backoff, want 1", n)
	}
	if peek, err := tasks.Peek(ctx, 0, 1); err != nil || len(peek) != 1 || peek[0].Error != "flaky" {
		t.Fatalf("Peek after Fail: %+v, %v", peek, err)
	}
	b, err = tasks.Lease(ctx, time.Second)
	if err != nil || string(b.Payload) != "b" || b.Attempt != 2 {
		t.Fatalf("after Fail: %+v, %v", b, err)
	}

	// Extend keeps the lease past its first deadline.
	if err := b.Extend(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	if n := m.broker.ExpireLeases(); n != 0 {
		t.Fatalf("%d leases expired despite the extension", n)
	}
	// Reply: acked, and the reply put into results in the same step.
	if err := b.Reply(ctx, "results", []byte("B")); err != nil {
		t.Fatal(err)
	}
	r, err := c.Queue("results").GetNowait(ctx)
	if err != nil || r.ReplyTo != b.ID || string(r.Payload) != "B" || r.LeaseTime != 0 {
		t.Fatalf("reply: %+v, %v", r, err)
	}

	// A lease that runs out is lost: every settle is refused.
	cTask, err := tasks.Lease(ctx, time.Second)
	if err != nil || string(cTask.Payload) != "c" {
		t.Fatalf("Lease = %+v, %v", cTask, err)
	}
	clock.Advance(time.Minute)
	if n := m.broker.ExpireLeases(); n != 1 {
		t.Fatalf("%d leases expired, want 1", n)
	}
	for name, settle := range map[string]func() error{
		"Done":    func() error { return cTask.Done(ctx) },
		"Reply":   func() error { return cTask.Reply(ctx, "results", []byte("late")) },
		"Fail":    func() error { return cTask.Fail(ctx, errors.New("late")) },
		"Release": func() error { return cTask.Release(ctx) },
		"Extend":  func() error { return cTask.Extend(ctx, 0) },
	} {
		if err := settle(); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("%s after expiry: %v, want ErrLeaseLost", name, err)
		}
	}
	again, err := tasks.Lease(ctx, time.Second)
	if err != nil || again.ID != cTask.ID || again.Attempt != 2 {
		t.Fatalf("redelivery: %+v, %v", again, err)
	}
	// Fail(nil) is a failure too, not a crash.
	if err := again.Fail(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if st := m.stats("results"); st.PutTotal != 1 {
		t.Fatalf("late reply reached results: %+v", st)
	}
}

func TestDeadAndRequeue(t *testing.T) {
	m := startMaster(t, masterConfig{MaxAttempts: 2, RetryMin: time.Millisecond})
	c := m.dial(t)
	ctx := testContext(t)
	tasks := c.Queue("tasks")
	if _, err := tasks.PutBatch(ctx, []Message{{Payload: []byte("retried")}, {Payload: []byte("hopeless")}}); err != nil {
		t.Fatal(err)
	}
	// Two failed attempts of "retried", one permanent failure of
	// "hopeless".
	for range 3 {
		task, err := tasks.Lease(ctx, 0) // the retry comes after its backoff
		if err != nil {
			t.Fatal(err)
		}
		cause := errors.New("failed " + string(task.Payload))
		if string(task.Payload) == "hopeless" {
			cause = Permanent(errors.New("cannot decode hopeless"))
		}
		if err := task.Fail(ctx, cause); err != nil {
			t.Fatal(err)
		}
	}
	dead, err := tasks.Dead(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	errs := map[string]string{}
	for _, d := range dead {
		errs[string(d.Payload)] = d.Error
	}
	if len(dead) != 2 || errs["retried"] != "failed retried" || errs["hopeless"] != "cannot decode hopeless" {
		t.Fatalf("dead items: %+v", dead)
	}
	if st, err := tasks.Stats(ctx); err != nil || st.Dead != 2 || st.Ready != 0 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	n, err := tasks.Requeue(ctx, dead[0].ID)
	if err != nil || n != 1 {
		t.Fatalf("Requeue one = %d, %v", n, err)
	}
	if n, err = tasks.Requeue(ctx); err != nil || n != 1 {
		t.Fatalf("Requeue the rest = %d, %v", n, err)
	}
	if n, err := tasks.Qsize(ctx); err != nil || n != 2 {
		t.Fatalf("Qsize = %d, %v", n, err)
	}
	task, err := tasks.Lease(ctx, time.Second)
	if err != nil || task.Attempt != 1 {
		t.Fatalf("a requeued item starts over: %+v, %v", task, err)
	}
}

func TestOversizedPutIsNotErrFull(t *testing.T) {
	m := startMaster(t, masterConfig{MaxMessageSize: 1024})
	c := m.dial(t)
	ctx := testContext(t)
	_, err := c.Queue("tasks").Put(ctx, make([]byte, 4096))
	var e *Error
	if !errors.As(err, &e) || e.Code != codes.ResourceExhausted || errors.Is(err, ErrFull) {
		t.Fatalf("oversized put: %v; want RESOURCE_EXHAUSTED that is not ErrFull", err)
	}
	if _, err := c.Queue("tasks").Put(ctx, []byte("small")); err != nil {
		t.Fatalf("the master stopped serving: %v", err)
	}
}

// A master that restarts forgets every session: the client authenticates
// again by itself and the call goes through.
func TestClientReauthenticatesAfterMasterRestart(t *testing.T) {
	m1 := startMaster(t, masterConfig{})
	c := m1.dial(t, grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	ctx := testContext(t)
	if _, err := c.Queue("tasks").Put(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	m1.stop()
	// A call made before the connection noticed the loss would go out on
	// the dead transport and fail with ErrUnavailable, which the client
	// rightly does not retry (a put is not idempotent). Wait for the event.
	if c.conn.GetState() == connectivity.Ready && !c.conn.WaitForStateChange(ctx, connectivity.Ready) {
		t.Fatal("the connection did not notice the master's end")
	}
	m2 := startMaster(t, masterConfig{Listen: m1.addr})
	if _, err := c.Queue("tasks").Put(ctx, []byte("after")); err != nil {
		t.Fatalf("put after the restart: %v", err)
	}
	if st := m2.stats("tasks"); st.PutTotal != 1 {
		t.Fatalf("new master: %+v", st)
	}
}
