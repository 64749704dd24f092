package distq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distq/distq/internal/errinfo"
	"github.com/distq/distq/internal/queue"
)

// TestInspector: every call of an Inspector against a master with a
// worker at work: the queues, the worker as a consumer, the dead item it
// made, pause (the worker gets nothing while puts go on), purge, resume,
// requeue (none, some, all), close, and errors with their reasons.
func TestInspector(t *testing.T) {
	m := startMaster(t, masterConfig{Queues: []queue.QueueConfig{{Name: "tasks"}, {Name: "results"}}})
	c := m.dial(t)
	ctx := testContext(t)
	in, err := NewInspector(m.addr, Options{AuthKey: testKey, Logger: testLogger(t, "inspector")})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}

	w, err := c.NewWorker(WorkerConfig{Concurrency: 1}, func(ctx context.Context, t *Task) ([]byte, error) {
		if string(t.Payload) == "bad" {
			return nil, Permanent(errors.New("cannot do bad"))
		}
		return t.Payload, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runWorker(t, w)
	tasks := c.Queue("tasks")
	for _, p := range []string{"a", "bad", "b"} {
		if _, err := tasks.Put(ctx, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	stats := func(name string) Stats {
		t.Helper()
		all, err := in.Queues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range all {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no queue %q in %+v", name, all)
		return Stats{}
	}
	waitFor(t, "the worker to do the three", func() bool {
		return stats("tasks").AckedTotal == 2 && stats("tasks").Dead == 1
	})

	cs, err := in.Consumers(ctx, "")
	if err != nil || len(cs) != 1 {
		t.Fatalf("Consumers: %+v, %v", cs, err)
	}
	if k := cs[0]; k.Queue != "tasks" || k.Peer == "" || k.Delivered != 3 || k.Acked != 2 || k.Failed != 1 || k.Held != 0 ||
		k.ConnectedAt.IsZero() || k.LastSeen.Before(k.ConnectedAt) {
		t.Fatalf("the worker as a consumer: %+v", k)
	}
	if cs, err := in.Consumers(ctx, "results"); err != nil || len(cs) != 0 {
		t.Fatalf("Consumers of results: %+v, %v", cs, err)
	}

	dead, total, err := in.Dead(ctx, "tasks", 0, 0)
	if err != nil || total != 1 || len(dead) != 1 || string(dead[0].Payload) != "bad" || dead[0].Error == "" || dead[0].Attempts != 1 {
		t.Fatalf("Dead: %+v (total %d), %v", dead, total, err)
	}

	// Paused, the worker gets nothing while puts go on.
	if err := in.Pause(ctx, "tasks"); err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.Put(ctx, []byte("held back")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // long enough for the worker to have taken it, were it not paused
	if s := stats("tasks"); !s.Paused || s.Ready != 1 || s.DeliveredTotal != 3 {
		t.Fatalf("paused: %+v", s)
	}
	if n, err := in.Purge(ctx, "tasks"); n != 1 || err != nil {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	if err := in.Resume(ctx, "tasks"); err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.Put(ctx, []byte("c")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker to go on after Resume", func() bool { return stats("tasks").AckedTotal == 3 })
	if s := stats("tasks"); s.Paused || s.PurgedTotal != 1 {
		t.Fatalf("resumed: %+v", s)
	}

	// Requeue: none without ids, the one named, then all.
	if n, err := in.Requeue(ctx, "tasks"); n != 0 || err != nil {
		t.Fatalf("Requeue without ids = %d, %v", n, err)
	}
	if n, err := in.Requeue(ctx, "tasks", dead[0].ID); n != 1 || err != nil {
		t.Fatalf("Requeue = %d, %v", n, err)
	}
	waitFor(t, "the requeued item to die again", func() bool { return stats("tasks").Dead == 1 && stats("tasks").DeadTotal == 2 })
	if n, err := in.RequeueAll(ctx, "tasks"); n != 1 || err != nil {
		t.Fatalf("RequeueAll = %d, %v", n, err)
	}
	waitFor(t, "it to die a third time", func() bool { return stats("tasks").DeadTotal == 3 })
	if n, err := in.Purge(ctx, "tasks.dead"); n != 1 || err != nil {
		t.Fatalf("Purge of the dead = %d, %v", n, err)
	}

	if err := in.CloseQueue(ctx, "tasks"); err != nil {
		t.Fatal(err)
	}
	if !stats("tasks").Closed {
		t.Fatal("not closed")
	}
	_, err = tasks.Put(ctx, []byte("late"))
	var e *Error
	if !errors.Is(err, ErrClosed) || !errors.As(err, &e) || e.Reason != errinfo.QueueClosed {
		t.Fatalf("put into a closed queue: %#v", err)
	}
	err = in.Pause(ctx, "nope")
	if !errors.Is(err, ErrUnknownQueue) || !errors.As(err, &e) || e.Reason != errinfo.UnknownQueue || !IsPermanent(err) {
		t.Fatalf("Pause of an unknown queue: %#v", err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if err := in.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
