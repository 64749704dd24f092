// Command slave (a worker) connects to a master with the shared authkey,
// takes numbers from the task queue, squares them and acks each with its
// result into the result queue: the slave side of Python's "distributed
// processes" recipe, with leases, retries and reconnection.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/distq/distq"
	"github.com/distq/distq/internal/debug"
	"github.com/distq/distq/internal/gcpercent"
	"github.com/distq/distq/internal/healthcheck"
	"github.com/distq/distq/internal/logging"
	"github.com/distq/distq/internal/masterflags"
	"github.com/distq/distq/internal/metrics"
)

func main() {
	m := NewMain(os.Stderr)
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "slave:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "slave:", err)
		os.Exit(1)
	}
}

// Main is the slave program.
type Main struct {
	stderr io.Writer

	conn            masterflags.Flags
	concurrency     int
	prefetch        int
	queue           string
	replyQueue      string
	delay           time.Duration
	shutdownTimeout time.Duration
	maxBackoff      time.Duration
	noAutoExtend    bool
	maxHold         time.Duration
	logLevel        string
	logFormat       string
	debugAddr       string
	healthAddr      string
	httpAddr        string
	healthcheck     bool
}

// NewMain returns a Main logging to stderr.
func NewMain(stderr io.Writer) *Main { return &Main{stderr: stderr} }

// ParseFlags reads the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("slave", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	m.conn.Register(fs)
	fs.IntVar(&m.concurrency, "concurrency", runtime.NumCPU(), "tasks run at once, like Pool(n)")
	fs.IntVar(&m.prefetch, "prefetch", 0, "deliveries held per concurrency slot (credit = concurrency*prefetch); 0 adapts to the task time, 1 to 1024")
	fs.StringVar(&m.queue, "queue", "tasks", "queue to take tasks from")
	fs.StringVar(&m.replyQueue, "reply-queue", "results", "queue the results go to")
	fs.DurationVar(&m.delay, "delay", 0, "simulated extra work per task, like the recipe's time.sleep")
	fs.BoolVar(&m.noAutoExtend, "no-auto-extend", false, "do not extend the leases of held tasks: a task that runs past -lease on the master is redone elsewhere")
	fs.DurationVar(&m.maxHold, "max-hold", 0, "keep a task at most this long from its delivery: past it the task's context ends and its lease is no longer extended, so a stuck task goes to another slave (0: no bound)")
	fs.DurationVar(&m.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long running tasks get to finish")
	fs.DurationVar(&m.maxBackoff, "max-backoff", 10*time.Second, "longest wait between reconnection attempts (randomised, exponential from 100ms)")
	fs.StringVar(&m.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	fs.StringVar(&m.logFormat, "log-format", "text", "text, or json for machines")
	fs.StringVar(&m.healthAddr, "health-addr", "", "serve the gRPC health service on this `host:port` (SERVING while connected to the master); off when empty")
	fs.BoolVar(&m.healthcheck, "healthcheck", false, "probe the health service at -health-addr, exit 0 if SERVING, 1 otherwise (for container healthchecks)")
	fs.StringVar(&m.debugAddr, "debug-addr", "", "serve Go profiles (/debug/pprof/) on this `host:port`; off when empty")
	fs.StringVar(&m.httpAddr, "http-addr", os.Getenv(EnvHTTPAddr), "serve Prometheus metrics at /metrics on this `host:port` (else $"+EnvHTTPAddr+"; a loopback address is best); off when empty")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	if m.concurrency < 1 {
		return fmt.Errorf("-concurrency %d: want at least 1", m.concurrency)
	}
	if m.prefetch < 0 || m.prefetch > 1000 {
		return fmt.Errorf("-prefetch %d: want 0 (adaptive) to 1000", m.prefetch)
	}
	if m.delay < 0 || m.shutdownTimeout < 0 || m.maxHold < 0 {
		return errors.New("-delay, -shutdown-timeout and -max-hold must not be negative")
	}
	if m.maxBackoff < 100*time.Millisecond {
		return fmt.Errorf("-max-backoff %v: want at least 100ms", m.maxBackoff)
	}
	return nil
}

// Run works until ctx ends, the task queue is closed and drained, or the
// master refuses the key. With -healthcheck it only probes -health-addr.
func (m *Main) Run(ctx context.Context) error {
	if m.healthcheck {
		if m.healthAddr == "" {
			return errors.New("-healthcheck needs -health-addr")
		}
		addr, err := healthcheck.LocalAddr(m.healthAddr)
		if err != nil {
			return err
		}
		return healthcheck.Probe(ctx, addr, false, 3*time.Second)
	}
	log, err := logging.New(logging.Config{Name: "slave", Level: m.logLevel, Format: m.logFormat}, m.stderr)
	if err != nil {
		return err
	}
	if gcpercent.Set(gcpercent.Slave) {
		log.Debug("garbage collector paced for a small heap", "gogc", gcpercent.Slave)
	}
	opts, err := m.conn.Options()
	if err != nil {
		return err
	}
	opts.Logger = log
	if m.debugAddr != "" {
		dbg, err := debug.Listen(m.debugAddr)
		if err != nil {
			return err
		}
		defer dbg.Close()
		log.Info("serving profiles", "addr", dbg.Addr().String())
	}
	var onConn func(bool)
	if m.healthAddr != "" {
		hs, err := healthcheck.Listen(m.healthAddr)
		if err != nil {
			return err
		}
		defer hs.Close()
		onConn = hs.SetServing
	}
	var wm *metrics.Worker
	var observe func(int, time.Duration)
	if m.httpAddr != "" {
		wm = metrics.NewWorker(m.queue)
		observe = wm.ObserveHandlers
		onConn = both(onConn, wm.SetConnected)
	}
	client, err := distq.NewClient(m.conn.Master, opts)
	if err != nil {
		return err
	}
	defer client.Close()
	w, err := client.NewWorker(distq.WorkerConfig{
		Queue:           m.queue,
		ReplyQueue:      m.replyQueue,
		Concurrency:     m.concurrency,
		Prefetch:        m.prefetch,
		ShutdownTimeout: m.shutdownTimeout,
		MaxBackoff:      m.maxBackoff,
		NoAutoExtend:    m.noAutoExtend,
		MaxHold:         m.maxHold,
		OnConnection:    onConn,
		ObserveHandlers: observe,
		Logger:          log.Named("worker"),
	}, m.square)
	if err != nil {
		return err
	}
	if wm != nil {
		wm.Attach(w.Stats)
		web, err := serveMetrics(m.httpAddr, wm, log.Named("http"))
		if err != nil {
			return err
		}
		defer web.Close()
	}
	log.Info("slave starting", "master", m.conn.Master, "queue", m.queue, "concurrency", m.concurrency, "auto_extend", !m.noAutoExtend, "max_hold", m.maxHold, "tls", opts.TLS != nil)
	return w.Run(ctx)
}

// square is the recipe's task: the payload is a decimal integer, the reply
// its square. A payload that is not a number can never succeed, so it is
// failed permanently and goes to the dead-letter queue.
func (m *Main) square(ctx context.Context, t *distq.Task) ([]byte, error) {
	n, err := strconv.ParseInt(string(t.Payload), 10, 64)
	if err != nil {
		return nil, distq.Permanent(fmt.Errorf("payload %q is not a decimal integer", truncate(t.Payload, 32)))
	}
	if n > 3037000499 || n < -3037000499 {
		return nil, distq.Permanent(fmt.Errorf("%d squared overflows int64", n))
	}
	if m.delay > 0 {
		t := time.NewTimer(m.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	return strconv.AppendInt(nil, n*n, 10), nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
