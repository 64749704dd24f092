package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/distq/distq"
)

// LatencyResult is what the latency subcommand prints.
type LatencyResult struct {
	TargetRate   float64 `json:"target_rate"`
	AchievedRate float64 `json:"achieved_rate"`
	Seconds      float64 `json:"seconds"`
	Sent         int     `json:"sent"`
	Latencies
}

// runLatency puts tasks open loop at a fixed rate for a while, each tick
// putting what is due (one task with Put, several with PutBatch), and times
// each task from the start of its put to the arrival of its result, read by
// GetMany on another connection and matched by ReplyTo.
func runLatency(ctx context.Context, args []string, stdout io.Writer) error {
	var cf childFlags
	fs := flag.NewFlagSet("latency", flag.ContinueOnError)
	cf.register(fs)
	rate := fs.Float64("rate", 1000, "tasks per second")
	duration := fs.Duration("duration", 10*time.Second, "how long to put")
	tick := fs.Duration("tick", time.Millisecond, "how often to put what is due")
	drain := fs.Duration("drain", 30*time.Second, "how long to wait for the last results")
	slaves := fs.Int("slaves", 0, "start once this many slaves read the task queue")
	if err := cf.parse(fs, args); err != nil {
		return err
	}
	if *rate <= 0 || *duration <= 0 || *tick <= 0 {
		return errors.New("-rate, -duration and -tick must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	clients, err := cf.dialN(ctx, 2)
	if err != nil {
		return err
	}
	defer closeAll(clients)
	tasks, results := clients[0].Queue("tasks"), clients[1].Queue("results")
	if err := waitSlaves(ctx, tasks, *slaves); err != nil {
		return err
	}

	tm := newTimings(int(*rate * duration.Seconds()))
	putDone := make(chan int, 1) // how many were sent
	readErr := make(chan error, 1)
	go func() { readErr <- readTimings(ctx, results, tm, putDone, *drain) }()

	start := time.Now()
	ticker := time.NewTicker(*tick)
	defer ticker.Stop()
	sent := 0
	var putErr error
	total := int(duration.Seconds() * *rate)
	for putErr == nil && sent < total {
		elapsed := min(time.Since(start), *duration)
		if due := int(elapsed.Seconds()**rate) - sent; due > 0 {
			sent += due
			putErr = putDue(ctx, tasks, due, tm)
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			putErr = ctx.Err()
		}
	}
	putTime := time.Since(start)
	putDone <- sent
	if putErr != nil {
		cancel()
		<-readErr
		return fmt.Errorf("put: %w", putErr)
	}
	if err := <-readErr; err != nil {
		return err
	}
	res := LatencyResult{
		TargetRate:   *rate,
		AchievedRate: float64(sent) / putTime.Seconds(),
		Seconds:      putTime.Seconds(),
		Sent:         sent,
		Latencies:    SummarizeLatencies(tm.samples),
	}
	return writeJSON(stdout, res)
}

// putDue puts n tasks now: with Put for one, PutBatch for more.
func putDue(ctx context.Context, q *distq.Queue, n int, tm *timings) error {
	t0 := time.Now()
	if n == 1 {
		payload, _ := recipeTask()
		id, err := q.Put(ctx, payload)
		if err != nil {
			return err
		}
		tm.sent([]uint64{id}, t0)
		return nil
	}
	msgs := make([]distq.Message, n)
	for i := range msgs {
		payload, _ := recipeTask()
		msgs[i] = distq.Message{Payload: payload}
	}
	ids, err := q.PutBatch(ctx, msgs)
	tm.sent(ids, t0)
	return err
}

// readTimings reads results until every sent task has answered, or fails
// once drain has passed after the last put.
func readTimings(ctx context.Context, q *distq.Queue, tm *timings, putDone <-chan int, drain time.Duration) error {
	total := -1
	var deadline time.Time
	for {
		if total < 0 {
			select {
			case total = <-putDone:
				deadline = time.Now().Add(drain)
			default:
			}
		}
		got := tm.count()
		if total >= 0 && got >= total {
			return nil
		}
		if total >= 0 && time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d results within %v of the last put", got, total, drain)
		}
		ts, err := q.GetMany(ctx, 4096, 100*time.Millisecond)
		now := time.Now()
		if errors.Is(err, distq.ErrEmpty) {
			continue
		}
		if err != nil {
			return fmt.Errorf("get results: %w", err)
		}
		tm.received(ts, now)
	}
}

// timings pairs put times with result times by task id; either may come
// first.
type timings struct {
	mu      sync.Mutex
	putAt   map[uint64]time.Time
	gotAt   map[uint64]time.Time
	samples []time.Duration
	results int
}

func newTimings(n int) *timings {
	return &timings{putAt: map[uint64]time.Time{}, gotAt: map[uint64]time.Time{}, samples: make([]time.Duration, 0, n)}
}

func (t *timings) sent(ids []uint64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		if got, ok := t.gotAt[id]; ok {
			delete(t.gotAt, id)
			t.samples = append(t.samples, got.Sub(at))
			continue
		}
		t.putAt[id] = at
	}
}

func (t *timings) received(ts []*distq.Task, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, task := range ts {
		t.results++
		if put, ok := t.putAt[task.ReplyTo]; ok {
			delete(t.putAt, task.ReplyTo)
			t.samples = append(t.samples, at.Sub(put))
			continue
		}
		t.gotAt[task.ReplyTo] = at
	}
}

func (t *timings) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.samples)
}
