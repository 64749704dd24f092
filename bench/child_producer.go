package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distq/distq"
)

// ProducerResult is what the producer subcommand prints.
type ProducerResult struct {
	Tasks      int     `json:"tasks"`
	Seconds    float64 `json:"seconds"`
	TasksPerS  float64 `json:"tasks_per_s"`
	Wrong      int     `json:"wrong"`
	Duplicates int     `json:"duplicates"`
	Missing    int     `json:"missing"`
}

// runProducer puts n recipe tasks with PutBatch from a few concurrent
// putters, reads the n results back with GetMany, checks every one is the
// square of its task, and reports tasks/s from the first put to the last
// result.
func runProducer(ctx context.Context, args []string, stdout io.Writer) error {
	var cf childFlags
	fs := flag.NewFlagSet("producer", flag.ContinueOnError)
	cf.register(fs)
	n := fs.Int("n", 100000, "tasks to put")
	batch := fs.Int("batch", 1000, "tasks per PutBatch")
	putters := fs.Int("putters", 2, "concurrent putters, each on its own connection")
	slaves := fs.Int("slaves", 0, "start the clock once this many slaves read the task queue")
	if err := cf.parse(fs, args); err != nil {
		return err
	}
	if *n < 1 || *batch < 1 || *putters < 1 {
		return errors.New("-n, -batch and -putters must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	clients, err := cf.dialN(ctx, *putters+1)
	if err != nil {
		return err
	}
	defer closeAll(clients)

	if err := waitSlaves(ctx, clients[0].Queue("tasks"), *slaves); err != nil {
		return err
	}
	total, bs := *n, *batch
	chk := newSquareCheck(total)
	batches := (total + bs - 1) / bs
	var next atomic.Int64
	start := time.Now()
	errc := make(chan error, *putters+1)
	var wg sync.WaitGroup
	for p := range *putters {
		wg.Add(1)
		go func(q *distq.Queue) {
			defer wg.Done()
			msgs := make([]distq.Message, 0, bs)
			squares := make([]int64, 0, bs)
			for {
				b := int(next.Add(1)) - 1
				if b >= batches {
					return
				}
				msgs, squares = msgs[:0], squares[:0]
				for i := b * bs; i < min((b+1)*bs, total); i++ {
					payload, sq := recipeTask()
					msgs = append(msgs, distq.Message{Payload: payload})
					squares = append(squares, sq)
				}
				ids, err := q.PutBatch(ctx, msgs)
				chk.expect(ids, squares)
				if err != nil {
					errc <- fmt.Errorf("put: %w", err)
					cancel()
					return
				}
			}
		}(clients[p].Queue("tasks"))
	}
	var last time.Time
	wg.Add(1)
	go func() {
		defer wg.Done()
		results := clients[*putters].Queue("results")
		for got := 0; got < *n; {
			ts, err := results.GetMany(ctx, 4096, time.Second)
			if errors.Is(err, distq.ErrEmpty) {
				continue
			}
			if err != nil {
				errc <- fmt.Errorf("get results (%d of %d in): %w", got, *n, err)
				cancel()
				return
			}
			for _, t := range ts {
				chk.result(t.ReplyTo, t.Payload)
			}
			got += len(ts)
		}
		last = time.Now()
	}()
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	elapsed := last.Sub(start)
	wrong, dups, missing := chk.verdict()
	res := ProducerResult{Tasks: *n, Seconds: elapsed.Seconds(), TasksPerS: float64(*n) / elapsed.Seconds(),
		Wrong: wrong, Duplicates: dups, Missing: missing}
	if err := writeJSON(stdout, res); err != nil {
		return err
	}
	if wrong+dups+missing > 0 {
		return fmt.Errorf("results wrong: %d wrong, %d duplicate, %d missing", wrong, dups, missing)
	}
	return nil
}

// squareCheck matches results to tasks by id. A result may arrive before
// PutBatch has returned its task's id; it waits in early.
type squareCheck struct {
	mu    sync.Mutex
	want  map[uint64]int64 // id -> expected square; matched once: -1
	early map[uint64][]byte
	wrong int
	dups  int
}

func newSquareCheck(n int) *squareCheck {
	return &squareCheck{want: make(map[uint64]int64, n), early: map[uint64][]byte{}}
}

func (c *squareCheck) expect(ids []uint64, squares []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range ids {
		c.want[id] = squares[i]
		if p, ok := c.early[id]; ok {
			delete(c.early, id)
			c.judge(id, p)
		}
	}
}

func (c *squareCheck) result(id uint64, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.want[id]; !ok {
		if _, dup := c.early[id]; dup {
			c.dups++
			return
		}
		c.early[id] = payload
		return
	}
	c.judge(id, payload)
}

func (c *squareCheck) judge(id uint64, payload []byte) {
	w := c.want[id]
	if w < 0 {
		c.dups++
		return
	}
	if got, err := strconv.ParseInt(string(payload), 10, 64); err != nil || got != w {
		c.wrong++
	}
	c.want[id] = -1
}

// verdict: wrong results, duplicates, and tasks without a result (results
// for unknown ids count as wrong).
func (c *squareCheck) verdict() (wrong, dups, missing int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.want {
		if w >= 0 {
			missing++
		}
	}
	return c.wrong + len(c.early), c.dups, missing
}
