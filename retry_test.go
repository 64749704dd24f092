package distq

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distq/distq/internal/clock"
)

func TestRetryAfter(t *testing.T) {
	cause := errors.New("rate limited")
	err := RetryAfter(time.Minute, cause)
	if err.Error() != "rate limited" || !errors.Is(err, cause) || IsPermanentFailure(err) {
		t.Fatalf("RetryAfter: %v", err)
	}
	if RetryAfter(time.Minute, nil) != nil {
		t.Fatal("RetryAfter(d, nil) is not nil")
	}
	for _, tc := range []struct {
		err  error
		want uint32
	}{
		{cause, 0},
		{RetryAfter(0, cause), 0},
		{RetryAfter(-time.Second, cause), 0},
		{RetryAfter(time.Nanosecond, cause), 1},
		{RetryAfter(1500*time.Millisecond, cause), 1500},
		{RetryAfter(48*time.Hour, cause), 48 * 3600 * 1000}, // the master caps it
		{fmt.Errorf("wrapped: %w", RetryAfter(time.Second, cause)), 1000},
		{Permanent(RetryAfter(time.Second, cause)), 1000},
	} {
		if got := retryDelayMs(tc.err); got != tc.want {
			t.Errorf("retryDelayMs(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if !IsPermanentFailure(Permanent(RetryAfter(time.Second, cause))) {
		t.Error("Permanent over RetryAfter is not permanent")
	}
}

// Task.Fail with RetryAfter: the task waits exactly the asked delay, not
// the backoff; a plain Fail waits the backoff. Stats show it delayed.
func TestFailRetryAfter(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 0))
	m := startMaster(t, masterConfig{Clock: clk, RetryMin: time.Second, RetryMax: time.Second})
	c := m.dial(t)
	ctx := testContext(t)
	tasks := c.Queue("tasks")
	if _, err := tasks.Put(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.Lease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Fail(ctx, RetryAfter(10*time.Second, errors.New("later"))); err != nil {
		t.Fatal(err)
	}
	if st, err := tasks.Stats(ctx); err != nil || st.Delayed != 1 || st.Ready != 0 || st.Leased != 0 {
		t.Fatalf("Stats after Fail: %+v, %v", st, err)
	}
	if _, err := tasks.GetNowait(ctx); !errors.Is(err, ErrEmpty) {
		t.Fatalf("GetNowait of a delayed task: %v, want ErrEmpty", err)
	}
	clk.Advance(10*time.Second - time.Nanosecond)
	if n := m.broker.PromoteDelayed(); n != 0 {
		t.Fatal("ready before the asked delay")
	}
	clk.Advance(time.Nanosecond)
	if n := m.broker.PromoteDelayed(); n != 1 {
		t.Fatal("not ready after the asked delay")
	}
	task, err = tasks.Lease(ctx, 0)
	if err != nil || task.Attempt != 2 {
		t.Fatalf("retry: %+v, %v", task, err)
	}
	// A plain Fail: the backoff, at most 1 s here.
	if err := task.Fail(ctx, errors.New("again")); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if n := m.broker.PromoteDelayed(); n != 1 {
		t.Fatal("a plain Fail did not take the backoff")
	}
}

// A handler's RetryAfter reaches the master through the worker's stream.
func TestWorkerRetryAfter(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 0))
	m := startMaster(t, masterConfig{Clock: clk})
	c := m.dial(t)
	ctx := testContext(t)
	id, err := c.Queue("tasks").Put(ctx, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.NewWorker(WorkerConfig{Concurrency: 1}, func(_ context.Context, t *Task) ([]byte, error) {
		if t.Attempt == 1 {
			return nil, RetryAfter(time.Hour, errors.New("come back in an hour"))
		}
		return []byte("ok"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)
	waitFor(t, "the nack", func() bool { return m.stats("tasks").Delayed == 1 })
	clk.Advance(time.Hour - time.Nanosecond)
	if n := m.broker.PromoteDelayed(); n != 0 {
		t.Fatal("ready before the handler's delay")
	}
	clk.Advance(time.Nanosecond)
	if n := m.broker.PromoteDelayed(); n != 1 {
		t.Fatal("not ready after the handler's delay")
	}
	reply, err := c.Queue("results").Get(ctx)
	if err != nil || reply.ReplyTo != id || string(reply.Payload) != "ok" {
		t.Fatalf("reply: %+v, %v", reply, err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Failed != 1 || st.Processed != 1 {
		t.Fatalf("worker stats: %+v", st)
	}
}
