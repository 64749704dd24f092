package distq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/connectivity"

	"github.com/distq/distq/internal/auth"
	pb "github.com/distq/distq/proto/distq/v1"
)

// Handler runs one task and returns its reply. It must not settle the task
// itself: the worker acknowledges it (putting the reply into the reply queue)
// when the handler returns nil, and returns it to the queue with the error
// otherwise; wrap the error with Permanent to dead-letter the task at once.
// A handler that panics fails its task with the panic's message. ctx ends
// when the worker gives up waiting for running tasks at shutdown.
type Handler func(ctx context.Context, t *Task) ([]byte, error)

// WorkerConfig configures a Worker. Zero fields take their defaults.
type WorkerConfig struct {
	// Queue to take tasks from. Default "tasks".
	Queue string
	// ReplyQueue receives each handler's reply, in the same step as the
	// ack. Default "results"; set NoReply to acknowledge without replies.
	ReplyQueue string
	NoReply    bool
	// Concurrency is how many tasks run at once, like Pool(n). Default: the
	// number of CPUs.
	Concurrency int
	// Prefetch is how many deliveries the worker may hold per running slot
	// (its credit is Concurrency*Prefetch). More hides network latency; less
	// leaves more work for other workers. Default 0: adaptive, from 1 to 1024
	// per slot, so that each slot holds about 10 ms of work by the measured
	// handler time: fast tasks travel in large batches, slow ones are not
	// hoarded.
	Prefetch int
	// ShutdownTimeout bounds how long Run waits for running tasks once its
	// context ends; tasks not yet started are handed back at once. Default 10 s.
	ShutdownTimeout time.Duration
	// MinBackoff and MaxBackoff bound the randomised exponential backoff
	// between reconnection attempts. Defaults 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// KeepRunningOnClose keeps Run going after the queue was closed and
	// drained, waiting for a master that serves it open again (a restarted
	// master). By default Run returns nil then, as the recipe's slave ends
	// when its work is done.
	KeepRunningOnClose bool
	// NoAutoExtend turns off the automatic extension of leases. By default
	// the worker extends the lease of every task it holds, running or
	// waiting to run, once a quarter of the lease has passed since it
	// received or last extended it (by its own clock; the master says how
	// long its leases are), until the handler returns: a slow but live
	// worker keeps its tasks, and a hung process still loses them, as it
	// stops extending. A handler stuck inside a live worker keeps its task
	// too, until the worker stops, unless MaxHold bounds it. Set
	// NoAutoExtend for handlers that should lose a task they overrun to
	// another worker; Task.Extend still extends by hand.
	NoAutoExtend bool
	// MaxHold bounds how long the worker keeps a task, from its delivery:
	// past it the handler's context is cancelled and the worker no longer
	// extends the task's lease, so that a handler stuck in a live worker
	// (a deadlock, a call that never returns) loses its task to another
	// worker when the lease runs out, as a hung process does; its late
	// answer is refused. Default 0: no bound, for tasks that take as long
	// as they take.
	MaxHold time.Duration
	// OnConnection, if set, is called with true when a stream to the
	// master opens and with false when it ends; the slave reports it as
	// its health.
	OnConnection func(connected bool)
	// ObserveHandlers, if set, is told how long handlers take, for
	// metrics: it is called after each run of n handlers (one after the
	// other, in one of the pool's goroutines) that took d together. It is
	// called per chunk of tasks, not per task: a chunk of fast tasks (up to
	// about 5 ms of work) is one call, a slow task is a call of its own.
	// It is called from the pool's goroutines at once, so it must be safe
	// for concurrent use, and quick.
	ObserveHandlers func(n int, d time.Duration)
	// Logger. Default: the client's logger.
	Logger hclog.Logger
}

// WorkerStats count what a worker did.
type WorkerStats struct {
	Processed  uint64 // handler returned nil and the ack was sent
	Failed     uint64 // handler returned an error
	Released   uint64 // handed back unstarted at shutdown or reconnect
	Refused    uint64 // settles the master refused: the lease had moved on
	Extended   uint64 // lease extensions the worker sent by itself
	Abandoned  uint64 // tasks held past MaxHold, whose leases it let run out
	Reconnects uint64
	// Held is a gauge: deliveries received on the current stream and not
	// yet settled, running or waiting to run.
	Held int64
}

// Worker pulls tasks from a queue over one stream, runs a handler on a fixed
// pool of goroutines and streams acks (with replies) back in batches. It
// reconnects with backoff when the master is away, and at shutdown finishes
// or hands back what it holds.
type Worker struct {
	c   *Client
	cfg WorkerConfig
	h   Handler
	log hclog.Logger

	processed, failed, released, refused, extended, abandoned, reconnects atomic.Uint64
	// runInline runs a job on the calling goroutine if the handler is
	// fast and a slot is free, and reports whether it did; set by Run.
	runInline func(job) bool
	// cur is the open stream, if any (for WorkerStats.Held).
	cur atomic.Pointer[workerStream]
	// taskNanos is a moving average of the handler time per task, for the
	// adaptive prefetch; 0 until measured.
	taskNanos atomic.Int64
}

// NewWorker validates cfg and returns a worker; call Run to start it.
func (c *Client) NewWorker(cfg WorkerConfig, h Handler) (*Worker, error) {
	if h == nil {
		return nil, errors.New("distq: NewWorker needs a handler")
	}
	if cfg.Queue == "" {
		cfg.Queue = "tasks"
	}
	if cfg.ReplyQueue == "" && !cfg.NoReply {
		cfg.ReplyQueue = "results"
	}
	if cfg.NoReply {
		cfg.ReplyQueue = ""
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = runtime.NumCPU()
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > 100000 {
		return nil, fmt.Errorf("distq: concurrency %d out of range [1, 100000]", cfg.Concurrency)
	}
	if cfg.Prefetch < 0 || cfg.Prefetch > 1000 {
		return nil, fmt.Errorf("distq: prefetch %d out of range [0 (adaptive), 1000]", cfg.Prefetch)
	}
	perSlot := cfg.Prefetch
	if perSlot == 0 {
		perSlot = adaptiveMaxPerSlot
	}
	if credit := cfg.Concurrency * perSlot; credit > maxCredit {
		return nil, fmt.Errorf("distq: concurrency × prefetch = %d is above %d deliveries held at once", credit, maxCredit)
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.MaxHold < 0 {
		return nil, fmt.Errorf("distq: max hold %v is negative", cfg.MaxHold)
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.MinBackoff <= 0 || cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("distq: backoff bounds %v..%v are invalid", cfg.MinBackoff, cfg.MaxBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = c.log
	}
	return &Worker{c: c, cfg: cfg, h: h, log: cfg.Logger}, nil
}

// Stats returns the worker's counters so far.
func (w *Worker) Stats() WorkerStats {
	return WorkerStats{
		Processed:  w.processed.Load(),
		Failed:     w.failed.Load(),
		Released:   w.released.Load(),
		Refused:    w.refused.Load(),
		Extended:   w.extended.Load(),
		Abandoned:  w.abandoned.Load(),
		Reconnects: w.reconnects.Load(),
		Held:       w.held(),
	}
}

// held counts the deliveries the open stream holds.
func (w *Worker) held() int64 {
	if s := w.cur.Load(); s != nil {
		return max(s.held.Load(), 0)
	}
	return 0
}

// Adaptive prefetch: each slot holds about adaptiveWork of work, between 1
// and adaptiveMaxPerSlot deliveries, starting from adaptiveStartPerSlot
// until the handler time is known.
const (
	adaptiveWork         = 10 * time.Millisecond
	adaptiveMaxPerSlot   = 1024
	adaptiveStartPerSlot = 4
)

// maxCredit bounds what one worker may hold, and so its buffers.
const maxCredit = 1 << 20

// window is how many deliveries the worker wants to hold or have coming.
func (w *Worker) window() int {
	if w.cfg.Prefetch > 0 {
		return w.cfg.Concurrency * w.cfg.Prefetch
	}
	perSlot := adaptiveStartPerSlot
	if ns := w.taskNanos.Load(); ns > 0 {
		perSlot = int(min(max(int64(adaptiveWork)/ns, 1), adaptiveMaxPerSlot))
	}
	return w.cfg.Concurrency * perSlot
}

// maxWindow bounds window(), and sizes the pool's queue.
func (w *Worker) maxWindow() int {
	if w.cfg.Prefetch > 0 {
		return w.cfg.Concurrency * w.cfg.Prefetch
	}
	return w.cfg.Concurrency * adaptiveMaxPerSlot
}

// observe folds the handler time of n tasks into the moving average.
func (w *Worker) observe(d time.Duration, n int) {
	if n <= 0 {
		return
	}
	per := max(int64(d)/int64(n), 1)
	old := w.taskNanos.Load()
	if old == 0 {
		w.taskNanos.Store(per)
		return
	}
	w.taskNanos.Store(old + (per-old)/8)
}

// job is a chunk of tasks bound to the stream that delivered them. The
// receiver cuts each delivery batch into about one chunk per slot, so a
// large batch costs a few channel operations, not one per task.
type job struct {
	tasks    []*Task
	s        *workerStream
	held     *heldChunk // its place in s.renew; nil if its leases are not extended
	received time.Time  // when the worker received the tasks (for MaxHold)
}

// Run works until ctx ends (then it shuts down gracefully and returns nil),
// the queue is closed and drained (nil), or a permanent error occurs: a
// wrong authkey, a master that cannot prove the key, an unknown queue.
func (w *Worker) Run(ctx context.Context) error {
	// Handlers get a context that outlives ctx by the shutdown timeout.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopHandlers := context.AfterFunc(ctx, func() {
		t := time.NewTimer(w.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			hcancel()
		case <-hctx.Done():
		}
	})
	defer stopHandlers()

	jobs := make(chan job, w.maxWindow())
	// A slot is taken by whoever runs a chunk: at most Concurrency run at
	// once, in the pool or inline in the receiver.
	slots := make(chan struct{}, w.cfg.Concurrency)
	w.runInline = func(j job) bool {
		if ns := w.taskNanos.Load(); ns <= 0 || ns > int64(inlineMax) {
			return false
		}
		select {
		case slots <- struct{}{}:
		default:
			return false
		}
		w.runJob(ctx, hctx, j)
		<-slots
		return true
	}
	var wg sync.WaitGroup
	for range w.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				slots <- struct{}{}
				w.runJob(ctx, hctx, j)
				<-slots
			}
		}()
	}
	err := w.loop(ctx, jobs)
	close(jobs)
	wg.Wait()
	st := w.Stats()
	w.log.Info("worker stopped", "processed", st.Processed, "failed", st.Failed, "released", st.Released, "refused", st.Refused, "extended", st.Extended, "abandoned", st.Abandoned, "reconnects", st.Reconnects)
	return err
}

// inlineMax: a lone task whose handler is known to take less than this on
// average runs on the goroutine that received it, when a slot is free,
// instead of being handed to the pool. A hand-off wakes another thread,
// which on a small machine costs more than such a task; the receiver is
// kept from the stream for no longer than the task takes.
const inlineMax = 100 * time.Microsecond

// flushAfter: a chunk whose tasks take longer than this sends what it has
// settled so far, so slow tasks are not held back by their neighbours.
const flushAfter = 5 * time.Millisecond

// clockStride is how many tasks runJob runs between two looks at the clock
// for flushAfter: one when handlers are known to take a sizeable share of
// flushAfter, up to maxClockStride when they take next to nothing (reading
// the clock costs more than squaring a number: on a virtual machine a
// tenth of a microsecond, 6 % of a thousand consumers' CPU). A handler
// that turns slow in the middle of a chunk delays that chunk's settles by
// at most maxClockStride-1 of its tasks; their leases are renewed meanwhile.
func (w *Worker) clockStride() int {
	ns := w.taskNanos.Load()
	if ns <= 0 {
		return 1
	}
	return int(min(max(int64(flushAfter)/(64*ns), 1), maxClockStride))
}

const maxClockStride = 16

func (w *Worker) runJob(ctx, hctx context.Context, j job) {
	if j.s.isDone() {
		return // its stream is gone and the master took the leases back
	}
	replies := w.cfg.ReplyQueue != ""
	st := newSettles(len(j.tasks), replies)
	start := time.Now()
	ran := 0
	stride := w.clockStride()
	for i, t := range j.tasks {
		if ctx.Err() != nil {
			// Shutting down: hand back what we never started.
			w.released.Add(1)
			st.nacks = append(st.nacks, &pb.Nack{Id: t.ID, Lease: t.lease, Error: "worker shutting down", Action: pb.NackAction_NACK_ACTION_RELEASE})
			continue
		}
		reply, err := w.callHeld(hctx, j, t)
		ran++
		if err != nil {
			w.failed.Add(1)
			action := pb.NackAction_NACK_ACTION_RETRY
			if IsPermanentFailure(err) {
				action = pb.NackAction_NACK_ACTION_DEAD
			}
			w.log.Warn("task failed", "id", t.ID, "attempt", t.Attempt, "error", err, "permanent", action == pb.NackAction_NACK_ACTION_DEAD)
			st.nacks = append(st.nacks, &pb.Nack{Id: t.ID, Lease: t.lease, Error: err.Error(), Action: action, DelayMs: retryDelayMs(err)})
		} else {
			st.ack(t, reply, replies)
		}
		if i < len(j.tasks)-1 && ran%stride == 0 {
			if d := time.Since(start); d > flushAfter {
				w.observe(d, ran)
				w.report(d, ran)
				w.push(j, st, i+1)
				// Tasks this slow flush again soon: room for about as
				// many as ran, not for the whole rest of the chunk.
				st = newSettles(min(len(j.tasks)-i-1, 2*max(ran, 1)), replies)
				start, ran = time.Now(), 0
			}
		}
	}
	d := time.Since(start)
	w.observe(d, ran)
	w.report(d, ran)
	w.push(j, st, len(j.tasks))
}

// report tells WorkerConfig.ObserveHandlers of n handlers that took d.
func (w *Worker) report(d time.Duration, n int) {
	if f := w.cfg.ObserveHandlers; f != nil && n > 0 {
		f(n, d)
	}
}

// push hands the settles of j.tasks[:upto] to the sender, once their leases
// are no longer extended.
func (w *Worker) push(j job, st *settles, upto int) {
	if st.len() == 0 {
		return
	}
	s := j.s
	if j.held != nil {
		s.renew.settled(j.held, upto)
	}
	// Counted before the hand-off: from then on st belongs to the sender.
	acked := uint64(len(st.ackIDs))
	if s.settle(st) {
		w.processed.Add(acked)
	}
}

// callHeld runs the handler, with a context that ends at MaxHold after the
// task was received, if MaxHold is set.
func (w *Worker) callHeld(ctx context.Context, j job, t *Task) ([]byte, error) {
	if w.cfg.MaxHold <= 0 {
		return w.call(ctx, t)
	}
	ctx, cancel := context.WithDeadline(ctx, j.received.Add(w.cfg.MaxHold))
	defer cancel()
	return w.call(ctx, t)
}

// call runs the handler, turning a panic into a failure.
func (w *Worker) call(ctx context.Context, t *Task) (reply []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return w.h(ctx, t)
}

// loop opens streams until the work is over, backing off between failures.
func (w *Worker) loop(ctx context.Context, jobs chan<- job) error {
	failures := 0
	for {
		delivered, err := w.consume(ctx, jobs)
		switch {
		case err == nil:
			if !w.cfg.KeepRunningOnClose {
				w.log.Info("queue closed and drained; worker done", "queue", w.cfg.Queue)
				return nil
			}
		case ctx.Err() != nil:
			return nil
		case IsPermanent(err):
			return err
		case w.c.conn.GetState() == connectivity.Shutdown:
			return errors.New("distq: the worker's client was closed")
		case auth.IsSessionError(err):
			// The master forgot our session (it restarted): authenticate
			// again at once.
			if rerr := w.c.auth.Reauth(ctx, w.c.conn, w.c.auth.Session()); rerr != nil {
				if err := wrapAuth(rerr, w.c.addr); IsPermanent(err) {
					return err
				}
			}
			continue
		}
		if delivered {
			failures = 0
		}
		failures++
		d := w.backoff(failures)
		if err != nil {
			w.log.Warn("master unreachable; retrying", "master", w.c.addr, "error", err, "retry_in", d.Round(time.Millisecond))
		}
		w.reconnects.Add(1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff is exponential in the number of consecutive failures, with full
// jitter so that many workers do not reconnect in lockstep.
func (w *Worker) backoff(failures int) time.Duration {
	ceil := w.cfg.MinBackoff << min(failures-1, 20)
	if ceil > w.cfg.MaxBackoff || ceil <= 0 {
		ceil = w.cfg.MaxBackoff
	}
	return w.cfg.MinBackoff/2 + rand.N(ceil-w.cfg.MinBackoff/2+1)
}
