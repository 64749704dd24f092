package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// runClosedLoop is one task in flight at a time, as a web request that
// offloads one task and waits for it: Put one task into "tasks", read its
// result with Queue("results").Get, check it, then the next. Both on one
// client (one connection), as a user's program would; the client keeps a
// Put stream for tasks and a GetStream for results, so a trip opens no
// call of its own. Each trip is timed
// from the start of the Put to the return of the Get.
func runClosedLoop(ctx context.Context, args []string, stdout io.Writer) error {
	var cf childFlags
	fs := flag.NewFlagSet("closed-loop", flag.ContinueOnError)
	cf.register(fs)
	n := fs.Int("n", 20000, "measured trips")
	warmup := fs.Int("warmup", 100, "trips before the measured ones (the connection and streams start)")
	slaves := fs.Int("slaves", 0, "start once this many slaves read the task queue")
	wait := fs.Duration("result-timeout", 10*time.Second, "longest wait for one result")
	if err := cf.parse(fs, args); err != nil {
		return err
	}
	if *n < 1 || *warmup < 0 || *wait <= 0 {
		return errors.New("-n and -result-timeout must be positive, -warmup at least 0")
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	tasks, results := c.Queue("tasks"), c.Queue("results")
	if err := waitSlaves(ctx, tasks, *slaves); err != nil {
		return err
	}
	res, err := closedLoop(ctx, *n, *warmup, func() error {
		payload, _ := recipeTask()
		id, err := tasks.Put(ctx, payload)
		if err != nil {
			return fmt.Errorf("put: %w", err)
		}
		t, err := results.GetTimeout(ctx, *wait)
		if err != nil {
			return fmt.Errorf("get result: %w", err)
		}
		if t.ReplyTo != id {
			return fmt.Errorf("result for task %d, want %d (one in flight)", t.ReplyTo, id)
		}
		return checkSquare(payload, t.Payload)
	})
	if err != nil {
		return err
	}
	return writeJSON(stdout, res)
}
