// Package demo is the recipe's producer run inside the master (-demo N): it
// puts N random numbers 1..100 into the task queue, collects one result per
// task from the result queue, checks each is the square of its task, shows
// progress, and sums up.
package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/distq/distq/internal/progress"
	"github.com/distq/distq/internal/queue"
)

// Config configures a demo run.
type Config struct {
	N       int
	Tasks   *queue.Queue
	Results *queue.Queue
	// Bar, if set, receives a progress bar redrawn in place (a terminal).
	// Otherwise progress goes to Logger every LogInterval.
	Bar         io.Writer
	Logger      hclog.Logger
	LogInterval time.Duration // default 2 s
	// Slaves, if positive, holds the first put until that many consumers
	// read the task queue: the clock then times the work, not the slaves'
	// start-up, as the recipe's benchmark does.
	Slaves int
	// CloseTasks closes the task queue once all tasks are in, so that
	// slaves end by themselves when the work is done. Default true in the
	// master.
	CloseTasks bool
	// Sync, if set, waits until the master's changes so far are durable
	// (queue.Broker.Sync): a durable master's demo counts a put as done,
	// and a result as read, only then, as a client's answers would.
	Sync func(context.Context) error
}

// syncEvery is how many put batches the demo's producer keeps in flight
// before it waits for them to be durable: a pipelining producer, not one
// that pays a disk sync per batch.
const syncEvery = 8

// checker matches results to tasks. The task queue hands out increasing
// ids, so expectations live in slices indexed from the first id: a map of
// millions of entries would cost more than the rest of the master's work.
// Results may come back before the producer has recorded the ids of their
// batch, so unknown ids wait in pending.
type checker struct {
	mu       sync.Mutex
	base     uint64  // the first task id
	want     []int64 // want[id-base]: expected square, 0 when not ours
	seen     []bool  // seen[id-base]: a result arrived
	pending  map[uint64][]byte
	received int
	wrong    int
	dups     int
}

func (c *checker) index(id uint64) (int, bool) {
	if len(c.want) == 0 || id < c.base || id-c.base >= uint64(len(c.want)) {
		return 0, false
	}
	return int(id - c.base), true
}

func (c *checker) expect(ids []uint64, squares []int64) {
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.want) == 0 {
		c.base = ids[0]
	}
	for k, id := range ids {
		if id < c.base {
			continue // cannot happen with one producer; never ours then
		}
		i := int(id - c.base)
		if i >= len(c.want) {
			c.want = extend(c.want, i+1)
			c.seen = extend(c.seen, i+1)
		}
		c.want[i] = squares[k]
		if p, ok := c.pending[id]; ok {
			delete(c.pending, id)
			c.seen[i] = true
			c.judge(i, p)
		}
	}
}

// extend lengthens s to n, the new elements zero. Within the capacity it
// only reslices, which is right for the checker's slices alone: they start
// empty from make and never get shorter, so what lies past their length was
// never written. Growing them by appending a zeroed slice instead
// reallocated and copied them past their capacity: 8 % of the master's CPU
// profile in a 5,000,000-task demo, 2 % now.
func extend[T any](s []T, n int) []T {
	if n <= cap(s) {
		return s[:n]
	}
	return append(s, make([]T, n-len(s))...)
}

func (c *checker) result(id uint64, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.received++
	i, ok := c.index(id)
	if !ok || c.want[i] == 0 {
		if _, dup := c.pending[id]; dup {
			c.dups++
			return
		}
		c.pending[id] = payload
		return
	}
	if c.seen[i] {
		c.dups++
		return
	}
	c.seen[i] = true
	c.judge(i, payload)
}

func (c *checker) judge(i int, payload []byte) {
	if got, ok := parseDecimal(payload); !ok || got != c.want[i] {
		c.wrong++
	}
}

// parseDecimal reads a non-negative decimal without allocating.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

func (c *checker) counts() (received, wrong, dups, pending int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received, c.wrong, c.dups, len(c.pending)
}

// Run runs the demo until all results are in, every missing task is
// accounted for in the dead-letter queue, or ctx ends.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if cfg.N <= 0 {
		return Summary{}, fmt.Errorf("demo: N must be positive, got %d", cfg.N)
	}
	if cfg.LogInterval <= 0 {
		cfg.LogInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Slaves > 0 {
		cfg.Logger.Info("waiting for slaves", "slaves", cfg.Slaves)
		if err := cfg.Tasks.WaitConsumers(ctx, cfg.Slaves); err != nil {
			return Summary{Tasks: cfg.N, Missing: cfg.N}, fmt.Errorf("demo: waiting for %d slaves: %w", cfg.Slaves, err)
		}
	}
	chk := &checker{want: make([]int64, 0, cfg.N), seen: make([]bool, 0, cfg.N), pending: map[uint64][]byte{}}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	putErr := make(chan error, 1)
	go func() { putErr <- produce(ctx, cfg, chk) }()

	collected := make(chan error, 1)
	go func() { collected <- collect(ctx, cfg, chk) }()

	tick := cfg.LogInterval
	if cfg.Bar != nil {
		tick = 100 * time.Millisecond
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	show := func() {
		received, _, _, _ := chk.counts()
		snap := progress.Snapshot{Done: received, Total: cfg.N, Elapsed: time.Since(start)}
		if cfg.Bar != nil {
			progress.Redraw(cfg.Bar, progress.Bar(snap, 30))
			return
		}
		cfg.Logger.Info("progress", "done", snap.Done, "total", snap.Total,
			"percent", fmt.Sprintf("%.1f", snap.Percent()), "rate", fmt.Sprintf("%.0f/s", snap.Rate()),
			"eta", etaString(snap))
	}
	var runErr error
loop:
	for {
		select {
		case err := <-putErr:
			if err != nil {
				runErr = err
				break loop
			}
			putErr = nil
			if cfg.Bar == nil { // a log line would break the bar's line
				cfg.Logger.Info("all tasks queued", "tasks", cfg.N)
			}
		case err := <-collected:
			runErr = err
			break loop
		case <-ticker.C:
			show()
			// Tasks that died will never answer: stop waiting for them.
			received, _, _, _ := chk.counts()
			if putErr == nil && received+cfg.Tasks.Stats().Dead >= cfg.N {
				break loop
			}
		}
	}
	show()
	if cfg.Bar != nil {
		fmt.Fprintln(cfg.Bar)
	}
	received, wrong, dups, pending := chk.counts()
	st := cfg.Tasks.Stats()
	sum := Summary{
		Tasks:       cfg.N,
		Results:     received - dups,
		Wrong:       wrong + pending,
		Duplicates:  dups,
		Missing:     cfg.N - (received - dups),
		Elapsed:     time.Since(start),
		Redelivered: st.RedeliveredTotal,
		Expired:     st.ExpiredTotal,
		Refused:     st.RefusedTotal,
		Dead:        uint64(st.Dead),
	}
	return sum, runErr
}

func etaString(s progress.Snapshot) string {
	if d := s.ETA(); d >= 0 {
		return progress.Clock(d)
	}
	return "unknown"
}

func produce(ctx context.Context, cfg Config, chk *checker) error {
	const batch = 1000
	msgs := make([]queue.Message, 0, batch)
	squares := make([]int64, 0, batch)
	batches := 0
	for sent := 0; sent < cfg.N; {
		msgs, squares = msgs[:0], squares[:0]
		// One buffer per batch holds its payloads, as on the wire.
		buf := make([]byte, 0, 3*batch)
		for i := 0; i < batch && sent+i < cfg.N; i++ {
			n := rand.Int64N(100) + 1
			start := len(buf)
			buf = strconv.AppendInt(buf, n, 10)
			msgs = append(msgs, queue.Message{Payload: buf[start:len(buf):len(buf)]})
			squares = append(squares, n*n)
		}
		ids, err := cfg.Tasks.Put(ctx, msgs, false, 0)
		chk.expect(ids, squares[:len(ids)])
		if err != nil {
			return fmt.Errorf("demo: put tasks: %w", err)
		}
		sent += len(msgs)
		if batches++; cfg.Sync != nil && (batches%syncEvery == 0 || sent >= cfg.N) {
			if err := cfg.Sync(ctx); err != nil {
				return fmt.Errorf("demo: put tasks: %w", err)
			}
		}
	}
	if cfg.CloseTasks {
		cfg.Tasks.Close()
	}
	return nil
}

func collect(ctx context.Context, cfg Config, chk *checker) error {
	var ds []queue.Delivery
	for {
		received, _, _, _ := chk.counts()
		if received >= cfg.N {
			return nil
		}
		var err error
		ds, err = cfg.Results.GetAppend(ctx, ds[:0], 4096, false, 0, true)
		if err == nil && cfg.Sync != nil && len(ds) > 0 {
			err = cfg.Sync(ctx) // taken with auto-ack: read once that is durable
		}
		if err != nil {
			return fmt.Errorf("demo: read results: %w", err)
		}
		for _, d := range ds {
			chk.result(d.ReplyTo, d.Payload)
		}
		// A delivery left in the buffer would pin its reply's buffer.
		clear(ds)
	}
}
