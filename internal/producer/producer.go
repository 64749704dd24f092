// Package producer is the recipe's producer as a process of its own
// (cmd/producer), for runs that outlive their master: it puts the numbers
// 1..N into the task queue through the Go client, reads the squares the
// slaves put into the result queue, and checks that every put the master
// answered has exactly one result, the right one.
//
// It expects at least once delivery from a master that restarts: a result
// read again (its ack was lost) is counted once. A put that got no answer
// even after the client's own resends (which the master deduplicates) is
// put again as a new put, so its items may be stored twice; their extra
// results are recognised by value (task k's result is k*k), tolerated and
// counted. Against a master with -data-dir nothing answered may be
// missing, no task done again once its result was read, and no result id
// given twice.
package producer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/distq/distq"
)

// Config configures a run.
type Config struct {
	Client *distq.Client
	// N tasks, the numbers 1..N, put Batch at a time (default 100), at
	// most Rate tasks a second (0: as fast as the master answers).
	N     int
	Batch int
	Rate  float64
	// Tasks and Results name the queues (default tasks and results).
	Tasks, Results string
	// CloseTasks closes the task queue once every task is in, so that
	// slaves end by themselves when the work is done.
	CloseTasks bool
	// Slaves, if positive, holds the first put until that many consumers
	// read the task queue, so that a run's pace does not depend on how
	// long the slaves take to start.
	Slaves int
	// PutTimeout bounds one put (default 30 s); a put that runs out is
	// unanswered, and put again.
	PutTimeout time.Duration
	// Drain is how long to wait, once every answered put has its result,
	// for the queues to empty, so that the results of items stored twice
	// are counted too (default 30 s).
	Drain time.Duration
	// Readers is how many results are handled at once (default 4).
	Readers int
	// LogInterval is the time between progress lines (default 2 s).
	LogInterval time.Duration
	Logger      hclog.Logger
}

// Run puts the tasks and reads their results until every answered put has
// its result and the queues are drained, or ctx ends. The summary judges
// what was read; the error says why the run stopped early.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if cfg.Client == nil || cfg.N <= 0 {
		return Summary{}, errors.New("producer: want a client and N > 0 tasks")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Tasks == "" {
		cfg.Tasks = "tasks"
	}
	if cfg.Results == "" {
		cfg.Results = "results"
	}
	if cfg.PutTimeout <= 0 {
		cfg.PutTimeout = 30 * time.Second
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 30 * time.Second
	}
	if cfg.Readers <= 0 {
		cfg.Readers = 4
	}
	if cfg.LogInterval <= 0 {
		cfg.LogInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	log := cfg.Logger
	if cfg.Slaves > 0 {
		if err := waitSlaves(ctx, cfg); err != nil {
			return Summary{Tasks: cfg.N, Missing: cfg.N}, err
		}
	}
	chk := newChecker(cfg.N)
	start := time.Now()
	summary := func() Summary {
		s := chk.summary()
		s.Elapsed = time.Since(start)
		for _, n := range s.Notes {
			log.Info("check", "note", n)
		}
		return s
	}

	ctx, cancel := context.WithCancel(ctx) // ends the putter when the run stops early
	defer cancel()
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	w, err := cfg.Client.NewWorker(distq.WorkerConfig{
		Queue:           cfg.Results,
		NoReply:         true,
		Concurrency:     cfg.Readers,
		MaxBackoff:      2 * time.Second,
		ShutdownTimeout: 5 * time.Second,
		OnConnection: func(connected bool) {
			if !connected {
				chk.disconnected()
			}
		},
		Logger: log.Named("results"),
	}, func(_ context.Context, t *distq.Task) ([]byte, error) {
		chk.result(t.ID, t.ReplyTo, t.Payload)
		return nil, nil
	})
	if err != nil {
		return Summary{}, err
	}
	readDone := make(chan error, 1)
	go func() { readDone <- w.Run(readCtx) }()
	putDone := make(chan error, 1)
	go func() { putDone <- put(ctx, cfg, chk) }()

	ticker := time.NewTicker(cfg.LogInterval)
	defer ticker.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	show := func() {
		answered, done, reads := chk.progress()
		log.Info("progress", "answered", answered, "done", done, "total", cfg.N, "results_read", reads,
			"rate", fmt.Sprintf("%.0f/s", float64(done)/time.Since(start).Seconds()))
	}
	var runErr error
	allPut := false
wait:
	for {
		select {
		case err := <-putDone:
			if err != nil {
				runErr = err
				break wait
			}
			allPut = true
			log.Info("all tasks put and answered", "tasks", cfg.N)
		case err := <-readDone:
			readDone = nil
			runErr = fmt.Errorf("producer: reading results: %w", err)
			if err == nil {
				runErr = errors.New("producer: reading results: the result queue was closed")
			}
			break wait
		case <-ctx.Done():
			runErr = ctx.Err()
			break wait
		case <-ticker.C:
			show()
		case <-poll.C:
		}
		if _, done, _ := chk.progress(); allPut && done == cfg.N {
			break wait
		}
	}
	if runErr == nil {
		show()
		log.Info("every answered put has a result; draining the queues for results of items stored twice")
		drain(ctx, cfg, log)
	}
	stopReading()
	if readDone != nil {
		if err := <-readDone; err != nil && runErr == nil && ctx.Err() == nil {
			runErr = fmt.Errorf("producer: reading results: %w", err)
		}
	}
	return summary(), runErr
}

// put puts task k = 1..N, a batch at a time, until the master has
// answered a put of each: the items of an unanswered put are put again.
func put(ctx context.Context, cfg Config, chk *checker) error {
	log := cfg.Logger
	tasks := cfg.Client.Queue(cfg.Tasks)
	start := time.Now()
	msgs := make([]distq.Message, 0, cfg.Batch)
	ks := make([]int, 0, cfg.Batch)
	outage, resentInOutage := time.Time{}, 0
	for next := 1; next <= cfg.N; {
		if cfg.Rate > 0 {
			// Task k is due (k-1)/Rate seconds after the start.
			due := start.Add(time.Duration(float64(next-1) / cfg.Rate * float64(time.Second)))
			if err := sleep(ctx, time.Until(due)); err != nil {
				return err
			}
		}
		ks = ks[:0]
		for k := next; k <= cfg.N && len(ks) < cfg.Batch; k++ {
			ks = append(ks, k)
		}
		next += len(ks)
		backoff := 100 * time.Millisecond
		for len(ks) > 0 {
			msgs = msgs[:0]
			for _, k := range ks {
				msgs = append(msgs, distq.Message{Payload: strconv.AppendInt(nil, int64(k), 10)})
			}
			pctx, cancel := context.WithTimeout(ctx, cfg.PutTimeout)
			ids, err := tasks.PutBatch(pctx, msgs)
			cancel()
			chk.putAnswered(ks[:len(ids)], ids)
			ks = ks[len(ids):]
			if err == nil {
				if !outage.IsZero() {
					log.Info("puts answered again", "after", time.Since(outage).Round(time.Millisecond), "items_put_again", resentInOutage)
					outage, resentInOutage = time.Time{}, 0
				}
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if distq.IsPermanent(err) || errors.Is(err, distq.ErrClosed) {
				return fmt.Errorf("producer: put: %w", err)
			}
			// No answer: the items may or may not be stored. Put them
			// again; a master that does not deduplicate may then hold
			// them twice, which the summary counts.
			chk.putUnanswered(ks)
			resentInOutage += len(ks)
			if outage.IsZero() {
				outage = time.Now()
				log.Warn("put unanswered; putting its items again", "items", len(ks), "error", err)
			} else {
				log.Debug("put unanswered again", "items", len(ks), "error", err)
			}
			if err := sleep(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
	if cfg.CloseTasks {
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
			err := tasks.Close(ctx)
			if err == nil || errors.Is(err, distq.ErrClosed) {
				break
			}
			if ctx.Err() != nil || distq.IsPermanent(err) {
				return fmt.Errorf("producer: closing %s: %w", cfg.Tasks, err)
			}
			log.Warn("closing the task queue failed; trying again", "error", err)
			if err := sleep(ctx, backoff); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitSlaves waits until cfg.Slaves consumers read the task queue.
func waitSlaves(ctx context.Context, cfg Config) error {
	cfg.Logger.Info("waiting for slaves", "slaves", cfg.Slaves)
	tasks := cfg.Client.Queue(cfg.Tasks)
	for {
		st, err := tasks.Stats(ctx)
		switch {
		case err == nil && st.Consumers >= cfg.Slaves:
			cfg.Logger.Info("slaves connected", "slaves", st.Consumers)
			return nil
		case err != nil && (distq.IsPermanent(err) || ctx.Err() != nil):
			return fmt.Errorf("producer: waiting for %d slaves: %w", cfg.Slaves, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("producer: waiting for %d slaves: %w", cfg.Slaves, err)
		}
	}
}

// drain waits until nothing is left in the task queue and nothing ready or
// leased in the result queue, or for cfg.Drain.
func drain(ctx context.Context, cfg Config, log hclog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Drain)
	defer cancel()
	for {
		left := -1
		if tq, err := cfg.Client.Queue(cfg.Tasks).Stats(ctx); err == nil {
			if rq, err := cfg.Client.Queue(cfg.Results).Stats(ctx); err == nil {
				left = tq.Ready + tq.Leased + tq.Delayed + rq.Ready + rq.Leased + rq.Delayed
			}
		}
		if left == 0 {
			return
		}
		if sleep(ctx, 200*time.Millisecond) != nil {
			log.Warn("queues not drained in time; results still to come are not counted", "drain", cfg.Drain, "items_left", left)
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
