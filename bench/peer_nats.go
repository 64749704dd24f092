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

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A NATS JetStream work queue, the usual way: a stream with WorkQueue
// retention on file storage holds the tasks, and workers share one durable
// pull consumer of it, each task acked once its result is published. The
// results go to a second WorkQueue stream on file storage (not core
// request/reply), read by the producer through its own durable pull
// consumer and acked: like distq's "results" queue, a result then waits in
// the server for a producer that is slow or reconnecting. The server is
// nats-server embedded in this tool as a library (the nats-server
// subcommand), each role in its own process.

// The streams, their subjects and the durable consumers.
const (
	natsTasksStream   = "TASKS"
	natsResultsStream = "RESULTS"
	natsTasks         = "tasks"
	natsResults       = "results"
	natsWorkers       = "workers"
	natsCollector     = "collector"
)

// runNATSServer serves JetStream on 127.0.0.1 (a random port) with file
// storage in -store, makes the two streams and their consumers, writes the
// client URL to -addr-file, and serves until stopped.
func runNATSServer(ctx context.Context, args []string, _ io.Writer) error {
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	addrFile := fs.String("addr-file", "", "write the client URL here once the streams exist")
	store := fs.String("store", "", "JetStream's file storage `dir`")
	syncAlways := fs.Bool("sync-always", false, "fsync every write (nats-server's sync_interval: always); default: its own default, an fsync every 2 minutes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addrFile == "" || *store == "" {
		return errors.New("-addr-file and -store are required")
	}
	ns, err := startNATS(*store, *syncAlways)
	if err != nil {
		return err
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	if err := natsSetup(ctx, ns.ClientURL()); err != nil {
		return err
	}
	if err := writeReady(*addrFile, ns.ClientURL()); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// startNATS starts an embedded nats-server with JetStream on file storage
// in store.
func startNATS(store string, syncAlways bool) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   store,
		SyncAlways: syncAlways,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return nil, err
	}
	ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("nats-server: not ready within 15s")
	}
	return ns, nil
}

// natsSetup makes the task and result streams (WorkQueue retention, file
// storage) and the durable pull consumers of each.
func natsSetup(ctx context.Context, url string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	for _, s := range []struct{ stream, subject, consumer string }{
		{natsTasksStream, natsTasks, natsWorkers},
		{natsResultsStream, natsResults, natsCollector},
	} {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: s.stream, Subjects: []string{s.subject},
			Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage}); err != nil {
			return fmt.Errorf("stream %s: %w", s.stream, err)
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, s.stream, jetstream.ConsumerConfig{Durable: s.consumer,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second}); err != nil {
			return fmt.Errorf("consumer %s: %w", s.consumer, err)
		}
	}
	return nil
}

// natsFlags are the flags of the NATS client roles.
type natsFlags struct {
	url     string
	timeout time.Duration
	wait    time.Duration
}

func (f *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "nats", "", "the nats-server's client URL")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.DurationVar(&f.wait, "result-timeout", 10*time.Second, "longest wait for one result")
}

func (f *natsFlags) connect(opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	if f.url == "" {
		return nil, nil, errors.New("-nats is required")
	}
	nc, err := nats.Connect(f.url)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// runNATSWorker is one worker: it consumes tasks through the shared durable
// pull consumer, publishes each square to "results" (waiting for the
// stream's ack), then acks the task; until stopped. It writes -addr-file
// once consuming.
func runNATSWorker(ctx context.Context, args []string, _ io.Writer) error {
	var f natsFlags
	fs := flag.NewFlagSet("nats-worker", flag.ContinueOnError)
	f.register(fs)
	addrFile := fs.String("addr-file", "", "write \"ready\" here once consuming")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, js, err := f.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	cons, err := js.Consumer(ctx, natsTasksStream, natsWorkers)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var first error
	var once sync.Once
	fail := func(err error) { once.Do(func() { first = err; cancel() }) }
	cc, err := cons.Consume(func(m jetstream.Msg) {
		sq, err := squareOf(m.Data())
		if err != nil {
			fail(err)
			return
		}
		if _, err := js.Publish(ctx, natsResults, sq); err != nil {
			if ctx.Err() == nil {
				fail(fmt.Errorf("publish result: %w", err))
			}
			return
		}
		if err := m.Ack(); err != nil {
			fail(fmt.Errorf("ack: %w", err))
		}
	})
	if err != nil {
		return err
	}
	defer cc.Stop()
	if err := writeReady(*addrFile, "ready"); err != nil {
		return err
	}
	<-ctx.Done()
	return first
}

// runNATSClient is the producer. -mode latency: one task in flight
// (publish it, waiting for the stream's ack; take its result from the
// results consumer, ack it, check; next). -mode throughput: publish every
// task asynchronously with at most -batch unacknowledged, while the
// results consumer checks and acks the results; tasks/s from the first
// publish to the last result.
func runNATSClient(ctx context.Context, args []string, stdout io.Writer) error {
	var f natsFlags
	fs := flag.NewFlagSet("nats-client", flag.ContinueOnError)
	f.register(fs)
	mode := fs.String("mode", "latency", "latency (one task in flight) or throughput")
	n := fs.Int("n", 20000, "measured trips (latency) or tasks (throughput)")
	warmup := fs.Int("warmup", 100, "unmeasured trips first (latency)")
	batch := fs.Int("batch", 1000, "most publishes awaiting their ack (throughput)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *warmup < 0 || *batch < 1 {
		return errors.New("-n and -batch must be positive, -warmup at least 0")
	}
	if *mode != "latency" && *mode != "throughput" {
		return errPeerMode
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	nc, js, err := f.connect(jetstream.WithPublishAsyncMaxPending(*batch))
	if err != nil {
		return err
	}
	defer nc.Close()
	for _, s := range []string{natsTasksStream, natsResultsStream} {
		st, err := js.Stream(ctx, s)
		if err == nil {
			err = st.Purge(ctx)
		}
		if err != nil {
			return fmt.Errorf("purge %s: %w", s, err)
		}
	}
	cons, err := js.Consumer(ctx, natsResultsStream, natsCollector)
	if err != nil {
		return err
	}
	if *mode == "latency" {
		results := make(chan []byte, 16)
		cc, err := cons.Consume(func(m jetstream.Msg) {
			_ = m.Ack()
			results <- m.Data()
		})
		if err != nil {
			return err
		}
		defer cc.Stop()
		res, err := closedLoop(ctx, *n, *warmup, func() error {
			payload, _ := recipeTask()
			if _, err := js.Publish(ctx, natsTasks, payload); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			select {
			case r := <-results:
				return checkSquare(payload, r)
			case <-time.After(f.wait):
				return fmt.Errorf("no result within %v", f.wait)
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil {
			return err
		}
		return writeJSON(stdout, res)
	}

	res, err := natsThroughput(ctx, js, cons, *n, f.wait)
	if err != nil {
		return err
	}
	if err := writeJSON(stdout, res); err != nil {
		return err
	}
	return res.checkSquares()
}

func natsThroughput(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer, n int, wait time.Duration) (PeerThroughputResult, error) {
	tally := newSquareTally()
	payloads := make([][]byte, n)
	for i := range payloads {
		var sq int64
		payloads[i], sq = recipeTask()
		tally.expect(sq)
	}
	var got atomic.Int64
	done := make(chan struct{})
	var mu sync.Mutex // the handler runs on one goroutine; the lock orders it with the verdict
	start := time.Now()
	var last time.Time
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		mu.Lock()
		tally.result(m.Data())
		mu.Unlock()
		if got.Add(1) == int64(n) {
			last = time.Now()
			close(done)
		}
	})
	if err != nil {
		return PeerThroughputResult{}, err
	}
	defer cc.Stop()
	var pubErr error
	for _, p := range payloads {
		if _, pubErr = js.PublishAsync(natsTasks, p); pubErr != nil {
			break
		}
	}
	if pubErr == nil {
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			pubErr = ctx.Err()
		}
	}
	if pubErr != nil {
		return PeerThroughputResult{}, fmt.Errorf("publish: %w", pubErr)
	}
	for {
		before := got.Load()
		select {
		case <-done:
			mu.Lock()
			extra, missing := tally.verdict()
			mu.Unlock()
			elapsed := last.Sub(start)
			return PeerThroughputResult{Tasks: n, Seconds: elapsed.Seconds(), TasksPerS: float64(n) / elapsed.Seconds(),
				Extra: extra, Missing: missing}, nil
		case <-ctx.Done():
			return PeerThroughputResult{}, ctx.Err()
		case <-time.After(wait):
			if got.Load() == before {
				return PeerThroughputResult{}, fmt.Errorf("no result for %v (%d of %d in)", wait, before, n)
			}
		}
	}
}
