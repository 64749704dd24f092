package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distq/distq"
)

// FillResult is what the fill subcommand prints.
type FillResult struct {
	Put      int     `json:"put"`
	Seconds  float64 `json:"seconds"`
	Complete bool    `json:"complete"` // false: the budget ran out first
	Ready    int     `json:"ready"`    // the queue's ready count afterwards
}

// runFill puts n small tasks into "tasks" in large batches, with nobody
// consuming, for the memory scenario. It stops early, without failing,
// when its time budget runs out, and says how many it put.
func runFill(ctx context.Context, args []string, stdout io.Writer) error {
	var cf childFlags
	fs := flag.NewFlagSet("fill", flag.ContinueOnError)
	cf.register(fs)
	n := fs.Int("n", 1000000, "tasks to put")
	size := fs.Int("size", 8, "payload bytes")
	batchSize := fs.Int("batch", 10000, "tasks per PutBatch")
	putters := fs.Int("putters", 2, "concurrent putters, each on its own connection")
	budget := fs.Duration("budget", 5*time.Minute, "stop putting after this long")
	if err := cf.parse(fs, args); err != nil {
		return err
	}
	if *n < 1 || *size < 1 || *batchSize < 1 || *putters < 1 {
		return errors.New("-n, -size, -batch and -putters must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	clients, err := cf.dialN(ctx, *putters)
	if err != nil {
		return err
	}
	defer closeAll(clients)

	putCtx, stopPuts := context.WithTimeout(ctx, *budget)
	defer stopPuts()
	total, bs := *n, *batchSize
	batches := (total + bs - 1) / bs
	var next, put atomic.Int64
	errc := make(chan error, *putters)
	start := time.Now()
	var wg sync.WaitGroup
	for p := range *putters {
		wg.Add(1)
		go func(q *distq.Queue) {
			defer wg.Done()
			for {
				b := int(next.Add(1)) - 1
				if b >= batches {
					return
				}
				msgs := make([]distq.Message, 0, bs)
				for i := b * bs; i < min((b+1)*bs, total); i++ {
					msgs = append(msgs, distq.Message{Payload: fixedPayload(i, *size)})
				}
				ids, err := q.PutBatch(putCtx, msgs)
				put.Add(int64(len(ids)))
				if err != nil {
					if putCtx.Err() == nil || ctx.Err() != nil {
						errc <- fmt.Errorf("put: %w", err)
					}
					return
				}
			}
		}(clients[p].Queue("tasks"))
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	st, err := clients[0].Queue("tasks").Stats(ctx)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	return writeJSON(stdout, FillResult{
		Put:      int(put.Load()),
		Seconds:  elapsed.Seconds(),
		Complete: int(put.Load()) == total,
		Ready:    st.Ready,
	})
}

// fixedPayload is i in decimal, zero-padded or cut to size bytes.
func fixedPayload(i, size int) []byte {
	b := make([]byte, size)
	for j := size - 1; j >= 0; j-- {
		b[j] = byte('0' + i%10)
		i /= 10
	}
	return b
}
