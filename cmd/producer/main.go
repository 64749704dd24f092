// Command producer is the recipe's producer as a process of its own, for
// runs that outlive their master: it puts the numbers 1..N into the task
// queue, reads the squares the slaves put into the result queue, and checks
// that every put the master answered has exactly one result, the right
// one. It goes on through a master restart (puts that got no answer are put
// again; see internal/producer), prints a summary on stdout, and exits 0
// only when nothing answered is missing, doubled or wrong.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/distq/distq"
	"github.com/distq/distq/internal/logging"
	"github.com/distq/distq/internal/masterflags"
	"github.com/distq/distq/internal/producer"
)

func main() {
	m := &Main{stdout: os.Stdout, stderr: os.Stderr}
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}

// Main is the producer program.
type Main struct {
	stdout, stderr io.Writer

	conn       masterflags.Flags
	n          int
	batch      int
	rate       float64
	tasks      string
	results    string
	closeTasks bool
	slaves     int
	timeout    time.Duration
	drain      time.Duration
	progress   time.Duration
	logLevel   string
	logFormat  string
}

// ParseFlags reads the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("producer", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	m.conn.Register(fs)
	fs.IntVar(&m.n, "n", 10000, "tasks to put: the numbers 1..`N`")
	fs.IntVar(&m.batch, "batch", 100, "tasks per put")
	fs.Float64Var(&m.rate, "rate", 0, "put at most this many tasks a second (0: as fast as the master answers)")
	fs.StringVar(&m.tasks, "queue", "tasks", "queue to put the tasks into")
	fs.StringVar(&m.results, "reply-queue", "results", "queue the results come back in")
	fs.BoolVar(&m.closeTasks, "close", true, "close the task queue once every task is in, so that slaves end when the work is done")
	fs.IntVar(&m.slaves, "slaves", 0, "put the first task once `N` consumers (slaves) read the task queue (0: at once)")
	fs.DurationVar(&m.timeout, "timeout", 30*time.Minute, "give up after this long (the summary then counts what is missing)")
	fs.DurationVar(&m.drain, "drain", 30*time.Second, "once every answered put has its result, wait this long at most for the queues to empty, to count the results of tasks stored twice")
	fs.DurationVar(&m.progress, "progress", 2*time.Second, "time between progress lines")
	fs.StringVar(&m.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	fs.StringVar(&m.logFormat, "log-format", "text", "text, or json for machines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	switch {
	case m.n < 1 || m.n > 1<<30:
		return fmt.Errorf("-n %d: want 1 to %d tasks", m.n, 1<<30)
	case m.batch < 1 || m.batch > 10000:
		return fmt.Errorf("-batch %d: want 1 to 10000", m.batch)
	case m.slaves < 0:
		return fmt.Errorf("-slaves %d: want 0 or more", m.slaves)
	case m.rate < 0:
		return fmt.Errorf("-rate %v: want 0 or more tasks a second", m.rate)
	case m.timeout <= 0 || m.drain <= 0 || m.progress <= 0:
		return errors.New("-timeout, -drain and -progress must be positive")
	}
	return nil
}

// Run connects (waiting for the master to answer), runs the producer and
// prints its summary.
func (m *Main) Run(ctx context.Context) error {
	log, err := logging.New(logging.Config{Name: "producer", Level: m.logLevel, Format: m.logFormat}, m.stderr)
	if err != nil {
		return err
	}
	opts, err := m.conn.Options()
	if err != nil {
		return err
	}
	opts.Logger = log.Named("client")
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	client, err := distq.NewClient(m.conn.Master, opts)
	if err != nil {
		return err
	}
	defer client.Close()
	// Wait for the master before the first put, so that a put refused
	// because the master is not up yet is not counted as unanswered.
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		err := client.Connect(ctx)
		if err == nil {
			break
		}
		if distq.IsPermanent(err) || ctx.Err() != nil {
			return err
		}
		log.Info("waiting for the master", "master", m.conn.Master, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	log.Info("producer starting", "master", m.conn.Master, "tasks", m.n, "batch", m.batch, "rate", m.rate, "slaves", m.slaves, "tls", opts.TLS != nil)
	sum, err := producer.Run(ctx, producer.Config{
		Client:      client,
		N:           m.n,
		Batch:       m.batch,
		Rate:        m.rate,
		Tasks:       m.tasks,
		Results:     m.results,
		CloseTasks:  m.closeTasks,
		Slaves:      m.slaves,
		Drain:       m.drain,
		LogInterval: m.progress,
		Logger:      log,
	})
	sum.Write(m.stdout)
	if err != nil {
		return err
	}
	if !sum.OK() {
		return errors.New("not every answered put came back exactly once with the right square")
	}
	return nil
}
