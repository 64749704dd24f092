package distq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func echo(suffix string) Handler {
	return func(_ context.Context, t *Task) ([]byte, error) {
		return append(append([]byte(nil), t.Payload...), suffix...), nil
	}
}

func TestNewWorkerValidatesConfig(t *testing.T) {
	c, err := NewClient("127.0.0.1:1", Options{AuthKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.NewWorker(WorkerConfig{}, nil); err == nil {
		t.Error("NewWorker accepted a nil handler")
	}
	bad := map[string]WorkerConfig{
		"negative concurrency":  {Concurrency: -1},
		"huge concurrency":      {Concurrency: 100001},
		"negative prefetch":     {Prefetch: -2},
		"huge prefetch":         {Prefetch: 1001},
		"negative min backoff":  {MinBackoff: -time.Second},
		"max below min backoff": {MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	}
	for name, cfg := range bad {
		if _, err := c.NewWorker(cfg, echo("")); err == nil {
			t.Errorf("%s: NewWorker accepted %+v", name, cfg)
		}
	}
	w, err := c.NewWorker(WorkerConfig{NoReply: true, ReplyQueue: "ignored"}, echo(""))
	if err != nil {
		t.Fatal(err)
	}
	if w.cfg.Queue != "tasks" || w.cfg.ReplyQueue != "" || w.cfg.Concurrency < 1 || w.cfg.Prefetch != 0 {
		t.Fatalf("defaults not applied: %+v", w.cfg)
	}
}

func TestWorkerRepliesExactlyOnce(t *testing.T) {
	m := startMaster(t, masterConfig{})
	c := m.dial(t)
	ctx := testContext(t)
	const n = 40
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Payload: []byte(fmt.Sprint(i))}
	}
	ids, err := c.Queue("tasks").PutBatch(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.NewWorker(WorkerConfig{Concurrency: 4, Prefetch: 2}, echo("!"))
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)

	// Join returns once the worker has acknowledged everything.
	if err := c.Queue("tasks").Join(ctx); err != nil {
		t.Fatal(err)
	}
	if st := m.stats("tasks"); st.AckedTotal != n || st.Ready != 0 || st.Leased != 0 {
		t.Fatalf("tasks after Join: %+v", st)
	}
	replies := map[uint64]string{}
	for len(replies) < n {
		got, err := c.Queue("results").GetMany(ctx, n, time.Second)
		if err != nil {
			t.Fatalf("after %d replies: %v", len(replies), err)
		}
		for _, g := range got {
			if _, dup := replies[g.ReplyTo]; dup {
				t.Fatalf("second reply to task %d", g.ReplyTo)
			}
			replies[g.ReplyTo] = string(g.Payload)
		}
	}
	for i, id := range ids {
		if replies[id] != fmt.Sprint(i)+"!" {
			t.Fatalf("reply to task %d: %q", id, replies[id])
		}
	}
	if _, err := c.Queue("results").GetNowait(ctx); !errors.Is(err, ErrEmpty) {
		t.Fatalf("more replies than tasks: %v", err)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := w.Stats(); st.Processed != n || st.Failed != 0 || st.Refused != 0 {
		t.Fatalf("worker stats: %+v", st)
	}
}

func TestWorkerSettlesItselfButLetsHandlersExtend(t *testing.T) {
	m := startMaster(t, masterConfig{})
	c := m.dial(t)
	ctx := testContext(t)
	if _, err := c.Queue("tasks").Put(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := c.Queue("tasks").Close(ctx); err != nil {
		t.Fatal(err)
	}
	var doneErr, failErr, extendErr error
	w, err := c.NewWorker(WorkerConfig{Concurrency: 1, NoReply: true}, func(ctx context.Context, t *Task) ([]byte, error) {
		doneErr = t.Done(ctx)
		failErr = t.Fail(ctx, errors.New("no"))
		extendErr = t.Extend(ctx, time.Minute)
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := runWorker(t, w).wait(); err != nil {
		t.Fatal(err)
	}
	if doneErr == nil || failErr == nil || extendErr != nil {
		t.Fatalf("in a handler: Done %v, Fail %v, Extend %v; want errors, errors, nil", doneErr, failErr, extendErr)
	}
	if st := m.stats("tasks"); st.AckedTotal != 1 || st.NackedTotal != 0 {
		t.Fatalf("tasks: %+v", st)
	}
	if st := m.stats("results"); st.PutTotal != 0 {
		t.Fatalf("NoReply worker replied: %+v", st)
	}
}

func TestWorkerEndsWhenQueueClosedAndDrained(t *testing.T) {
	m := startMaster(t, masterConfig{})
	c := m.dial(t)
	ctx := testContext(t)
	if _, err := c.Queue("tasks").PutBatch(ctx, []Message{{Payload: []byte("a")}, {Payload: []byte("b")}, {Payload: []byte("c")}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Queue("tasks").Close(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := c.NewWorker(WorkerConfig{Concurrency: 2}, echo("."))
	if err != nil {
		t.Fatal(err)
	}
	if err := runWorker(t, w).wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := w.Stats(); st.Processed != 3 {
		t.Fatalf("worker stats: %+v", st)
	}
	if st := m.stats("results"); st.Ready != 3 {
		t.Fatalf("results: %+v", st)
	}
}

func TestWorkerPermanentFailureGoesToDeadLetters(t *testing.T) {
	m := startMaster(t, masterConfig{})
	c := m.dial(t)
	ctx := testContext(t)
	if _, err := c.Queue("tasks").Put(ctx, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	w, err := c.NewWorker(WorkerConfig{Concurrency: 1}, func(_ context.Context, t *Task) ([]byte, error) {
		return nil, Permanent(fmt.Errorf("cannot decode %q", t.Payload))
	})
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)
	// Dead-lettered counts as finished for Join.
	if err := c.Queue("tasks").Join(ctx); err != nil {
		t.Fatal(err)
	}
	dead, err := c.Queue("tasks").Dead(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].Error != `cannot decode "garbage"` || dead[0].Attempts != 1 {
		t.Fatalf("dead: %+v", dead)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Failed != 1 || st.Processed != 0 {
		t.Fatalf("worker stats: %+v", st)
	}
}

func TestWorkerHandlerPanicFailsTheTask(t *testing.T) {
	m := startMaster(t, masterConfig{})
	c := m.dial(t)
	ctx := testContext(t)
	id, err := c.Queue("tasks").Put(ctx, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.NewWorker(WorkerConfig{Concurrency: 1}, func(_ context.Context, t *Task) ([]byte, error) {
		if t.Attempt == 1 {
			panic("boom")
		}
		return []byte("ok"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)
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
	if st := m.stats("tasks"); st.NackedTotal != 1 || st.RedeliveredTotal != 1 || st.AckedTotal != 1 {
		t.Fatalf("tasks: %+v", st)
	}
}

// Cancelling Run while the worker holds tasks: the running one finishes and
// is acknowledged, the ones never started go back untouched, Run returns nil.
func TestWorkerGracefulStop(t *testing.T) {
	m := startMaster(t, masterConfig{LeaseTime: time.Hour})
	c := m.dial(t)
	ctx := testContext(t)
	if _, err := c.Queue("tasks").PutBatch(ctx, []Message{{Payload: []byte("a")}, {Payload: []byte("b")}, {Payload: []byte("c")}, {Payload: []byte("d")}}); err != nil {
		t.Fatal(err)
	}
	started := make(chan *Task, 4)
	release := make(chan struct{})
	w, err := c.NewWorker(WorkerConfig{Concurrency: 1, Prefetch: 4}, func(ctx context.Context, t *Task) ([]byte, error) {
		started <- t
		<-release
		return []byte("done"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)
	first := <-started
	if string(first.Payload) != "a" {
		t.Fatalf("first task %q", first.Payload)
	}
	// No event says the prefetched deliveries arrived; the stream's count
	// of what the worker holds does.
	held := &first.settler.(*workerStream).held
	waitFor(t, "the worker to hold all four tasks", func() bool { return held.Load() == 4 })

	r.cancel()
	close(release)
	if err := r.wait(); err != nil {
		t.Fatalf("Run after a graceful stop: %v", err)
	}
	if len(started) != 0 {
		t.Fatalf("a task was started after the stop: %q", (<-started).Payload)
	}
	st := m.stats("tasks")
	if st.AckedTotal != 1 || st.Leased != 0 || st.Ready != 3 || st.Consumers != 0 {
		t.Fatalf("tasks after the stop: %+v", st)
	}
	ws := w.Stats()
	if ws.Processed != 1 {
		t.Fatalf("worker stats: %+v", ws)
	}
	// Handed back untouched, a task keeps its attempt count at zero (one
	// the master took back from an ended stream would count the attempt).
	ready, err := c.Queue("tasks").Peek(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	untouched := 0
	for _, d := range ready {
		if d.Attempts == 0 {
			untouched++
		}
	}
	if untouched != 3 || ws.Released != 3 {
		t.Fatalf("released %d, %d untouched in the queue: %+v", ws.Released, untouched, ready)
	}
	if st := m.stats("results"); st.Ready != 1 {
		t.Fatalf("results: %+v", st)
	}
}

// The master dies and a new one (new broker, same key) comes up on the same
// address: the worker reconnects, authenticates again and goes on working.
func TestWorkerReconnectsToRestartedMaster(t *testing.T) {
	m1 := startMaster(t, masterConfig{})
	c := m1.dial(t)
	ctx := testContext(t)
	w, err := c.NewWorker(WorkerConfig{Concurrency: 2, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}, echo("!"))
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)
	if _, err := c.Queue("tasks").Put(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Queue("results").Get(ctx); err != nil || string(got.Payload) != "before!" {
		t.Fatalf("before the restart: %+v, %v", got, err)
	}

	m1.stop()
	m2 := startMaster(t, masterConfig{Listen: m1.addr})
	producer := m2.dial(t)
	id, err := producer.Queue("tasks").Put(ctx, []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := producer.Queue("results").Get(ctx)
	if err != nil || got.ReplyTo != id || string(got.Payload) != "after!" {
		t.Fatalf("after the restart: %+v, %v", got, err)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := w.Stats(); st.Processed != 2 || st.Reconnects == 0 {
		t.Fatalf("worker stats: %+v", st)
	}
}

func TestWorkerPermanentErrors(t *testing.T) {
	m := startMaster(t, masterConfig{})
	cases := map[string]struct {
		key   []byte
		queue string
		want  error
	}{
		"wrong key":     {[]byte("wrong"), "tasks", ErrMasterUnverified},
		"unknown queue": {testKey, "nope", ErrUnknownQueue},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := NewClient(m.addr, Options{AuthKey: tc.key, Logger: testLogger(t, "client")})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var calls atomic.Int32
			w, err := c.NewWorker(WorkerConfig{Queue: tc.queue, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}, func(context.Context, *Task) ([]byte, error) {
				calls.Add(1)
				return nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			err = runWorker(t, w).wait()
			if !IsPermanent(err) || !errors.Is(err, tc.want) {
				t.Fatalf("Run: %v; want a permanent %v", err, tc.want)
			}
			if calls.Load() != 0 {
				t.Fatal("the handler ran")
			}
		})
	}
}

// Two workers share the queue, one of them dies holding tasks (its stream
// is cut when its connection closes): the other finishes everything, and
// results hold one reply per task.
func TestWorkerCrashHandsTasksToAnother(t *testing.T) {
	m := startMaster(t, masterConfig{LeaseTime: time.Hour})
	ctx := testContext(t)
	producer := m.dial(t)
	const n = 10
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Payload: []byte(fmt.Sprint(i))}
	}
	if _, err := producer.Queue("tasks").PutBatch(ctx, msgs); err != nil {
		t.Fatal(err)
	}

	// The doomed worker takes tasks and never finishes one.
	doomedConn := m.dial(t)
	var mu sync.Mutex
	took := 0
	hang := make(chan struct{})
	doomed, err := doomedConn.NewWorker(WorkerConfig{Concurrency: 2, Prefetch: 1, ShutdownTimeout: time.Millisecond}, func(ctx context.Context, t *Task) ([]byte, error) {
		mu.Lock()
		took++
		mu.Unlock()
		select {
		case <-hang:
		case <-ctx.Done():
		}
		return nil, errors.New("never")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer close(hang)
	runWorker(t, doomed)
	waitFor(t, "the doomed worker to hold two tasks", func() bool { return m.stats("tasks").Leased == 2 })
	doomedConn.Close() // the connection dies under the worker

	healthy, err := m.dial(t).NewWorker(WorkerConfig{Concurrency: 3}, echo(""))
	if err != nil {
		t.Fatal(err)
	}
	healthyRun := runWorker(t, healthy)
	if err := producer.Queue("tasks").Join(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for len(seen) < n {
		got, err := producer.Queue("results").GetMany(ctx, n, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got {
			if seen[g.ReplyTo] {
				t.Fatalf("two replies to task %d", g.ReplyTo)
			}
			seen[g.ReplyTo] = true
		}
	}
	if _, err := producer.Queue("results").GetNowait(ctx); !errors.Is(err, ErrEmpty) {
		t.Fatalf("extra reply: %v", err)
	}
	if st := m.stats("tasks"); st.RedeliveredTotal < 2 {
		t.Fatalf("tasks: %+v", st)
	}
	if err := healthyRun.stop(); err != nil {
		t.Fatal(err)
	}
	if st := healthy.Stats(); st.Processed != n {
		t.Fatalf("healthy worker: %+v", st)
	}
}

// A worker stopped while deliveries are still arriving. Run used to close
// its jobs channel while the stream's receiver could still be handing
// deliveries over, and panicked with a send on a closed channel.
func TestWorkerStopWhileDeliveriesArrive(t *testing.T) {
	m := startMaster(t, masterConfig{LeaseTime: time.Hour})
	c := m.dial(t)
	ctx := testContext(t)
	feedCtx, stopFeed := context.WithCancel(ctx)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		msgs := make([]Message, 20)
		for i := range msgs {
			msgs[i] = Message{Payload: []byte("x")}
		}
		for feedCtx.Err() == nil {
			c.Queue("tasks").PutBatch(feedCtx, msgs)
			c.Queue("tasks").GetMany(feedCtx, 40, time.Millisecond) // keeps the queue short
		}
	}()
	defer func() {
		stopFeed()
		<-fed
	}()
	for range 50 {
		wctx, cancel := context.WithCancel(ctx)
		w, err := c.NewWorker(WorkerConfig{Concurrency: 1, Prefetch: 200, ShutdownTimeout: time.Microsecond, NoReply: true}, func(context.Context, *Task) ([]byte, error) {
			cancel() // stop while the rest of the batch is being handed over
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Run(wctx); err != nil {
			t.Fatalf("Run: %v", err)
		}
		cancel()
	}
}

// Fast tasks arriving one at a time run on the goroutine that received
// them, the rest in the pool: together never more than Concurrency at once,
// and each exactly once.
func TestWorkerConcurrencyBoundsInlineAndPool(t *testing.T) {
	m := startMaster(t, masterConfig{})
	c := m.dial(t)
	ctx := testContext(t)
	const conc, n = 2, 200
	var running, most atomic.Int64
	var calls atomic.Int64
	w, err := c.NewWorker(WorkerConfig{Concurrency: conc, Prefetch: 1}, func(ctx context.Context, t *Task) ([]byte, error) {
		now := running.Add(1)
		defer running.Add(-1)
		for {
			old := most.Load()
			if now <= old || most.CompareAndSwap(old, now) {
				break
			}
		}
		calls.Add(1)
		return t.Payload, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)
	q := c.Queue("tasks")
	for i := range n {
		// One at a time, and in pairs: lone deliveries, and deliveries
		// arriving while another runs.
		if _, err := q.Put(ctx, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			if err := q.Join(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := q.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := most.Load(); got > conc {
		t.Fatalf("%d handlers ran at once, Concurrency is %d", got, conc)
	}
	if st := w.Stats(); st.Processed != n || calls.Load() != n {
		t.Fatalf("processed %d, handler called %d times, want %d: %+v", st.Processed, calls.Load(), n, st)
	}
}

// The clock is read for flushAfter after every task until handlers are
// known to be fast; then every few tasks, never more than maxClockStride
// apart, so a chunk's settles wait for at most that many tasks beyond it.
func TestWorkerClockStride(t *testing.T) {
	for _, c := range []struct {
		avg  time.Duration
		want int
	}{
		{0, 1},
		{100 * time.Nanosecond, maxClockStride},
		{10 * time.Microsecond, 7},
		{flushAfter / 64, 1},
		{time.Second, 1},
	} {
		var w Worker
		w.taskNanos.Store(int64(c.avg))
		if got := w.clockStride(); got != c.want {
			t.Errorf("average %v: stride %d, want %d", c.avg, got, c.want)
		}
	}
}
