package integration

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distq/distq"
)

// TestRetryBackoff runs a master whose tasks wait an hour before a retry
// while its "quick" queue retries within milliseconds: a failed task is
// delayed and not handed out again, in Stats and at exit; a quick task
// failed again and again comes back each time with its attempt count
// growing, and is dead-lettered after the last attempt; a delay asked with
// RetryAfter is honoured over the backoff.
func TestRetryBackoff(t *testing.T) {
	key := writeKey(t, testKey)
	m, addr := startMaster(t, key, "-retry-min", "1h", "-max-attempts", "3",
		"-queue", "tasks", "-queue", "results", "-queue", "quick,retry-min=1ms,retry-max=4ms")
	serving := m.waitLine("master serving", time.Minute)
	for _, want := range []string{"retry_min=1h0m0s", "retry_max=1h0m0s", "queue_retry=quick=1ms..4ms"} {
		if !strings.Contains(serving, want) {
			t.Errorf("serving line %q: want %q", serving, want)
		}
	}
	c := dial(t, addr, testKey)
	ctx := ctxTimeout(t, time.Minute)

	// An hour's backoff: the failed task waits, delayed.
	tasks := c.Queue("tasks")
	if _, err := tasks.Put(ctx, []byte("slow")); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.Lease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Fail(ctx, errors.New("dependency down")); err != nil {
		t.Fatal(err)
	}
	if st, err := tasks.Stats(ctx); err != nil || st.Delayed != 1 || st.Ready != 0 || st.Leased != 0 || st.Dead != 0 {
		t.Fatalf("tasks after Fail: %+v, %v; want 1 delayed and nothing else", st, err)
	}
	if _, err := tasks.GetNowait(ctx); !errors.Is(err, distq.ErrEmpty) {
		t.Fatalf("GetNowait of a delayed task: %v; want ErrEmpty", err)
	}
	// Closed, it is not drained: the delayed task is still to come.
	if err := tasks.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.GetNowait(ctx); !errors.Is(err, distq.ErrEmpty) {
		t.Fatalf("GetNowait on the closed queue: %v; want ErrEmpty, not ErrClosed", err)
	}

	// Milliseconds of backoff: each failure comes back, attempt by attempt,
	// from the master's scan loop; the third is the last.
	quick := c.Queue("quick")
	id, err := quick.Put(ctx, []byte("flaky"))
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		task, err := quick.Lease(ctx, 0)
		if err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if task.ID != id || task.Attempt != attempt {
			t.Fatalf("attempt %d: task %d, attempt %d", attempt, task.ID, task.Attempt)
		}
		if err := task.Fail(ctx, fmt.Errorf("failure %d", attempt)); err != nil {
			t.Fatal(err)
		}
	}
	dead := waitDead(t, c, "quick", 1)
	if dead[0].ID != id || dead[0].Attempts != 3 || dead[0].Error != "failure 3" {
		t.Fatalf("dead item %+v", dead[0])
	}
	if st, err := quick.Stats(ctx); err != nil || st.Delayed != 0 || st.Ready != 0 || st.Dead != 1 || st.RedeliveredTotal != 2 {
		t.Fatalf("quick: %+v, %v", st, err)
	}

	// RetryAfter overrides the queue's backoff.
	if _, err := quick.Put(ctx, []byte("later")); err != nil {
		t.Fatal(err)
	}
	task, err = quick.Lease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Fail(ctx, distq.RetryAfter(time.Hour, errors.New("come back in an hour"))); err != nil {
		t.Fatal(err)
	}
	if st, err := quick.Stats(ctx); err != nil || st.Delayed != 1 || st.Ready != 0 {
		t.Fatalf("quick after RetryAfter: %+v, %v", st, err)
	}
	if _, err := quick.GetNowait(ctx); !errors.Is(err, distq.ErrEmpty) {
		t.Fatalf("GetNowait of a task retried after an hour: %v; want ErrEmpty", err)
	}

	// At exit the master counts the delayed tasks among those it drops.
	m.signal(syscall.SIGTERM)
	if code := m.wait(time.Minute); code != 0 {
		t.Fatalf("master exited %d after SIGTERM", code)
	}
	for _, q := range []string{"tasks", "quick"} {
		line := m.waitLine("items dropped at exit: queues are in memory: queue="+q+" ", time.Second)
		if !strings.Contains(line, "items=1 delayed=1") {
			t.Errorf("exit line %q: want items=1 delayed=1", line)
		}
	}
}
