package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/distq/distq"
	"github.com/distq/distq/internal/debug"
)

// A subcommand is a role this tool plays in a child process, talking to a
// master through the public distq package only. Each prints one JSON line
// on stdout and fails with a non-zero status.
type subcommand func(ctx context.Context, args []string, stdout io.Writer) error

var subcommands = map[string]subcommand{
	"producer":  runProducer,
	"latency":   runLatency,
	"fill":      runFill,
	"consumers": runConsumers,
	"roundtrip": runRoundTrip,
	"grpc-echo": runGRPCEcho,
	"grpc-ping": runGRPCPing,
	// The durable-latency scenario's.
	"put-latency": runPutLatency,
	"fdatasync":   runFdatasync,
	// The closed-loop scenario's, and the peers' (issue 11).
	"closed-loop":  runClosedLoop,
	"redis-worker": runRedisWorker,
	"redis-client": runRedisClient,
	"nats-server":  runNATSServer,
	"nats-worker":  runNATSWorker,
	"nats-client":  runNATSClient,
}

// childFlags are the flags every subcommand takes.
type childFlags struct {
	master  string
	keyFile string
	timeout time.Duration
	debug   string
	key     []byte
}

func (c *childFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.master, "master", "", "the master's host:port")
	fs.StringVar(&c.keyFile, "authkey-file", "", "file holding the authkey")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.StringVar(&c.debug, "debug-addr", "", "serve pprof on this `host:port` (profiling the child)")
}

// parse parses args and loads the key.
func (c *childFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.master == "" {
		return fmt.Errorf("-master is required")
	}
	key, err := distq.LoadKey(c.keyFile)
	if err != nil {
		return err
	}
	c.key = key
	if c.debug != "" {
		// Serves until the child exits.
		if _, err := debug.Listen(c.debug); err != nil {
			return err
		}
	}
	return nil
}

// dial connects and authenticates one client (one connection).
func (c *childFlags) dial(ctx context.Context) (*distq.Client, error) {
	return distq.Dial(ctx, c.master, distq.Options{AuthKey: c.key})
}

// dialN connects n clients.
func (c *childFlags) dialN(ctx context.Context, n int) ([]*distq.Client, error) {
	cs := make([]*distq.Client, 0, n)
	for range n {
		cl, err := c.dial(ctx)
		if err != nil {
			closeAll(cs)
			return nil, err
		}
		cs = append(cs, cl)
	}
	return cs, nil
}

func closeAll(cs []*distq.Client) {
	for _, c := range cs {
		c.Close()
	}
}

// waitSlaves returns once n consumers read q, as the recipe's benchmark
// waits for its slaves before it starts the clock. The master has no
// client call that blocks on this, so it asks every 10 ms.
func waitSlaves(ctx context.Context, q *distq.Queue, n int) error {
	for {
		st, err := q.Stats(ctx)
		if err != nil {
			return fmt.Errorf("wait for %d slaves: %w", n, err)
		}
		if st.Consumers >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d slaves: %d connected: %w", n, st.Consumers, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// recipeTask is a payload like the demo's: a random number 1..100 in
// decimal, and the square that should come back.
func recipeTask() (payload []byte, square int64) {
	n := rand.Int64N(100) + 1
	return strconv.AppendInt(nil, n, 10), n * n
}
