package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/distq/distq"
	"github.com/distq/distq/internal/gcpercent"
)

// ConsumersResult is what the consumers subcommand prints last.
type ConsumersResult struct {
	Consumers      int     `json:"consumers"`
	Processed      uint64  `json:"processed"`
	ConnectSeconds float64 `json:"connect_seconds"`
	Seconds        float64 `json:"seconds"`
}

// readyPrefix starts the line the consumers subcommand prints once every
// client has authenticated.
const readyPrefix = "ready "

// consumingPrefix starts the line the consumers subcommand prints, with
// -expect N, once the task queue has N consumers (its own and others').
const consumingPrefix = "consuming "

// runConsumers opens n clients, each its own connection (NewClient), runs
// a Worker with concurrency 1 on each, squaring like cmd/slave, until the
// task queue is closed and drained.
func runConsumers(ctx context.Context, args []string, stdout io.Writer) error {
	var cf childFlags
	fs := flag.NewFlagSet("consumers", flag.ContinueOnError)
	cf.register(fs)
	n := fs.Int("n", 250, "consumers (connections)")
	prefetch := fs.Int("prefetch", 2, "worker prefetch")
	expect := fs.Int("expect", 0, "once the task queue has this many consumers (of every process), print \""+consumingPrefix+"N\" (0: do not wait)")
	if err := cf.parse(fs, args); err != nil {
		return err
	}
	if *n < 1 || *prefetch < 1 || *expect < 0 {
		return errors.New("-n and -prefetch must be positive, -expect at least 0")
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	gcpercent.Set(gcpercent.Slave) // these consumers stand for slaves

	start := time.Now()
	clients := make([]*distq.Client, *n)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	errs := make(chan error, *n)
	var wg sync.WaitGroup
	for i := range clients {
		c, err := distq.NewClient(cf.master, distq.Options{AuthKey: cf.key})
		if err != nil {
			return err
		}
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Connect(ctx); err != nil {
				errs <- fmt.Errorf("connect: %w", err)
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	connected := time.Since(start)
	fmt.Fprintf(stdout, "%s%d %.3f\n", readyPrefix, *n, connected.Seconds())

	workers := make([]*distq.Worker, *n)
	for i, c := range clients {
		w, err := c.NewWorker(distq.WorkerConfig{Concurrency: 1, Prefetch: *prefetch}, square)
		if err != nil {
			return err
		}
		workers[i] = w
	}
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(ctx); err != nil {
				errs <- fmt.Errorf("worker: %w", err)
			}
		}()
	}
	if *expect > 0 {
		// Asked on the first client's connection every 10 ms until
		// then, and never after: the idle scenario measures from here.
		if err := waitSlaves(ctx, clients[0].Queue("tasks"), *expect); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s%d\n", consumingPrefix, *expect)
	}
	wg.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("workers still running after %v", cf.timeout)
	}
	select {
	case err := <-errs:
		return err
	default:
	}
	var processed uint64
	for _, w := range workers {
		processed += w.Stats().Processed
	}
	return writeJSON(stdout, ConsumersResult{
		Consumers:      *n,
		Processed:      processed,
		ConnectSeconds: connected.Seconds(),
		Seconds:        time.Since(start).Seconds(),
	})
}

// square is cmd/slave's handler: the payload is a decimal integer, the
// reply its square.
func square(_ context.Context, t *distq.Task) ([]byte, error) {
	n, err := strconv.ParseInt(string(t.Payload), 10, 64)
	if err != nil {
		return nil, distq.Permanent(fmt.Errorf("payload %q is not a decimal integer", t.Payload))
	}
	return strconv.AppendInt(nil, n*n, 10), nil
}
