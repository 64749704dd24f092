package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis lists as a task queue, the usual way: the producer LPUSHes tasks
// onto the list "tasks", workers BRPOP a task, compute, and LPUSH the
// result onto "results", which the producer BRPOPs. Redis itself is
// Debian's redis-server, started by the peers scenario without persistence.

// Redis list names.
const (
	redisTasks   = "tasks"
	redisResults = "results"
)

// redisFlags are the flags of the Redis roles.
type redisFlags struct {
	addr     string
	timeout  time.Duration
	wait     time.Duration
	addrFile string
}

func (f *redisFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "redis", "", "the redis-server's host:port")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.DurationVar(&f.wait, "result-timeout", 10*time.Second, "longest wait for one task or result")
}

func (f *redisFlags) client(ctx context.Context, pool int) (*redis.Client, error) {
	if f.addr == "" {
		return nil, errors.New("-redis is required")
	}
	c := redis.NewClient(&redis.Options{Addr: f.addr, PoolSize: pool, MinIdleConns: pool})
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis %s: %w", f.addr, err)
	}
	return c, nil
}

// runRedisWorker is one worker: BRPOP a task, LPUSH its square, until
// stopped (SIGTERM). It writes -addr-file once connected.
func runRedisWorker(ctx context.Context, args []string, _ io.Writer) error {
	var f redisFlags
	fs := flag.NewFlagSet("redis-worker", flag.ContinueOnError)
	f.register(fs)
	fs.StringVar(&f.addrFile, "addr-file", "", "write \"ready\" here once connected")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rdb, err := f.client(ctx, 1)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := writeReady(f.addrFile, "ready"); err != nil {
		return err
	}
	for ctx.Err() == nil {
		// A bounded block, so that a stop is noticed within a second.
		v, err := rdb.BRPop(ctx, time.Second, redisTasks).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("brpop: %w", err)
		}
		sq, err := squareOf([]byte(v[1]))
		if err != nil {
			return err
		}
		if err := rdb.LPush(ctx, redisResults, sq).Err(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("lpush: %w", err)
		}
	}
	return nil
}

// runRedisClient is the producer. -mode latency: one task in flight (LPUSH
// it, BRPOP its result, check, next). -mode throughput: -putters
// goroutines LPUSH -batch tasks per command (one LPUSH with many values)
// while a reader takes results up to 1,000 at a time (RPOP with a count,
// BRPOP when the list is empty) and checks them; tasks/s from the first
// push to the last result.
func runRedisClient(ctx context.Context, args []string, stdout io.Writer) error {
	var f redisFlags
	fs := flag.NewFlagSet("redis-client", flag.ContinueOnError)
	f.register(fs)
	mode := fs.String("mode", "latency", "latency (one task in flight) or throughput")
	n := fs.Int("n", 20000, "measured trips (latency) or tasks (throughput)")
	warmup := fs.Int("warmup", 100, "unmeasured trips first (latency)")
	batch := fs.Int("batch", 1000, "tasks per LPUSH (throughput)")
	putters := fs.Int("putters", 2, "concurrent pushers (throughput)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *warmup < 0 || *batch < 1 || *putters < 1 {
		return errors.New("-n, -batch and -putters must be positive, -warmup at least 0")
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	rdb, err := f.client(ctx, *putters+1)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := rdb.Del(ctx, redisTasks, redisResults).Err(); err != nil {
		return err
	}
	switch *mode {
	case "latency":
		res, err := closedLoop(ctx, *n, *warmup, func() error {
			payload, _ := recipeTask()
			if err := rdb.LPush(ctx, redisTasks, payload).Err(); err != nil {
				return fmt.Errorf("lpush: %w", err)
			}
			v, err := rdb.BRPop(ctx, f.wait, redisResults).Result()
			if err != nil {
				return fmt.Errorf("brpop result: %w", err)
			}
			return checkSquare(payload, []byte(v[1]))
		})
		if err != nil {
			return err
		}
		return writeJSON(stdout, res)
	case "throughput":
		res, err := redisThroughput(ctx, rdb, *n, *batch, *putters, f.wait)
		if err != nil {
			return err
		}
		if err := writeJSON(stdout, res); err != nil {
			return err
		}
		return res.checkSquares()
	default:
		return errPeerMode
	}
}

func redisThroughput(ctx context.Context, rdb *redis.Client, n, bs, putters int, wait time.Duration) (PeerThroughputResult, error) {
	// Every batch is made before the clock starts.
	tally := newSquareTally()
	var batches [][]any
	for i := 0; i < n; i += bs {
		b := make([]any, 0, min(bs, n-i))
		for range cap(b) {
			payload, sq := recipeTask()
			b = append(b, payload)
			tally.expect(sq)
		}
		batches = append(batches, b)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, putters)
	next := make(chan []any, len(batches))
	for _, b := range batches {
		next <- b
	}
	close(next)
	start := time.Now()
	var wg sync.WaitGroup
	for range putters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				if err := rdb.LPush(ctx, redisTasks, b...).Err(); err != nil {
					errc <- fmt.Errorf("lpush: %w", err)
					cancel()
					return
				}
			}
		}()
	}
	got := 0
	var readErr error
	lastProgress := time.Now()
	for got < n && readErr == nil {
		vals, err := rdb.RPopCount(ctx, redisResults, 1000).Result()
		if errors.Is(err, redis.Nil) {
			if time.Since(lastProgress) > wait {
				readErr = fmt.Errorf("no result for %v (%d of %d in)", wait, got, n)
				break
			}
			var v []string
			v, err = rdb.BRPop(ctx, time.Second, redisResults).Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if len(v) == 2 {
				vals = v[1:]
			}
		}
		if err != nil {
			readErr = fmt.Errorf("read results (%d of %d in): %w", got, n, err)
			break
		}
		for _, v := range vals {
			tally.result([]byte(v))
		}
		got += len(vals)
		lastProgress = time.Now()
	}
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil && readErr == nil {
		readErr = err
	}
	if readErr != nil {
		return PeerThroughputResult{}, readErr
	}
	extra, missing := tally.verdict()
	return PeerThroughputResult{Tasks: n, Seconds: elapsed.Seconds(), TasksPerS: float64(n) / elapsed.Seconds(),
		Extra: extra, Missing: missing}, nil
}
