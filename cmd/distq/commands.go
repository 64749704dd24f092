package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/distq/distq"
	"github.com/distq/distq/internal/auth"
)

// command is one subcommand of distq.
type command struct {
	name     string
	synopsis string // its arguments, after "distq NAME [flags]"
	summary  string // one line for the list of commands
	help     string // what it does, and examples
	queueArg bool   // its first argument is a queue
	flags    func(m *Main, fs *flag.FlagSet)
	check    func(m *Main, args []string) error // the arguments after the queue
	// run runs it on a Client (put, get, peek), admin on an Inspector.
	run   func(ctx context.Context, m *Main, c *distq.Client) error
	admin func(ctx context.Context, m *Main, in *distq.Inspector) error
}

var commands []*command

func init() {
	commands = []*command{
		{
			name: "stats", synopsis: "[QUEUE...]", summary: "the depths and counters of the queues, as a table or JSON",
			help: `Show each queue's depths (ready, leased, delayed before a retry, dead) and
its counters since the master started, as a table, or with -json as a JSON
array of objects, one per queue. With QUEUE arguments, only those queues.

Examples:
  distq stats
  distq stats tasks results
  distq stats -json | jq '.[] | select(.name == "tasks") | .ready'`,
			flags: func(m *Main, fs *flag.FlagSet) {
				fs.BoolVar(&m.json, "json", false, "print JSON instead of a table")
			},
			check: keepArgs,
			admin: runStats,
		},
		{
			name: "watch", synopsis: "[QUEUE...]", summary: "a live view of the queues' depths and rates",
			help: `Show the queues' depths and their rates (items put, delivered, acked and
nacked per second, from the difference of two successive stats) every
-interval, with the time left to drain each queue at the current rates.
On a terminal the view is redrawn in place; otherwise one line is printed
per refresh, every queue on it. Runs until interrupted, or for -count
refreshes. A master that cannot be reached is shown, and watched for again.

Examples:
  distq watch
  distq watch -interval 5s tasks
  distq watch -count 10 -interval 1s > rates.log`,
			flags: func(m *Main, fs *flag.FlagSet) {
				fs.DurationVar(&m.interval, "interval", time.Second, "time between refreshes")
				fs.IntVar(&m.count, "count", 0, "stop after this many refreshes (0: run until interrupted)")
			},
			check: func(m *Main, args []string) error {
				if m.interval < 10*time.Millisecond {
					return fmt.Errorf("-interval %v: want at least 10ms", m.interval)
				}
				if m.count < 0 {
					return fmt.Errorf("-count %d: want 0 or more", m.count)
				}
				m.args = args
				return nil
			},
			admin: runWatch,
		},
		{
			name: "workers", synopsis: "[QUEUE]", summary: "the connected consumers (slaves, workers) and what they hold",
			help: `List the consumers connected to the master (each open stream of a slave or
a worker), or those of QUEUE: the queue, the peer's address, the items it
holds, the credit it has left, its deliveries, acks and failures (nacks and
expired leases) since it connected, how long ago it connected and when it
last sent anything (by the master's clock). A consumer that holds items and
has not been seen for a long time is stuck. -json for JSON.

Examples:
  distq workers
  distq workers tasks
  distq workers -json | jq '[.[].held] | add'`,
			flags: func(m *Main, fs *flag.FlagSet) {
				fs.BoolVar(&m.json, "json", false, "print JSON instead of a table")
			},
			check: func(m *Main, args []string) error {
				if len(args) > 1 {
					return fmt.Errorf("unexpected argument %q (usage: distq workers [QUEUE])", args[1])
				}
				m.args = args
				return nil
			},
			admin: runWorkers,
		},
		{
			name: "peek", synopsis: "QUEUE", summary: "list the ready items of a queue without taking them", queueArg: true,
			help: `List the ready items of QUEUE without taking them: each item's id, its
attempts so far, its payload (cut at 60 characters in the table; -json
shows it whole) and, if it failed before, its last error. Paged with
-offset and -limit. QUEUE may be a dead-letter queue ("tasks.dead"); see also
'distq dead'.

Examples:
  distq peek tasks
  distq peek -offset 100 -limit 50 tasks
  distq peek -json -limit 1000 tasks | jq -r '.[].payload'`,
			flags: pageFlags,
			check: checkPage,
			run:   runPeek,
		},
		{
			name: "dead", synopsis: "QUEUE", summary: "list a queue's dead items with their last error and attempts", queueArg: true,
			help: `List the dead items of QUEUE (those in its dead-letter queue QUEUE.dead;
"distq dead tasks.dead" is the same as "distq dead tasks"), oldest first:
each item's id, its attempts, its payload and the last error it failed
with. Paged with -offset and -limit; the table says how many there are and
where the next page starts. Requeue them with 'distq requeue'.

Examples:
  distq dead tasks
  distq dead -offset 20 -limit 20 tasks
  distq dead -json tasks | jq -r '.[] | "\(.id) \(.error)"'`,
			flags: pageFlags,
			check: checkPage,
			admin: runDead,
		},
		{
			name: "requeue", synopsis: "QUEUE (ID... | -all)", summary: "move dead items back into their queue", queueArg: true,
			help: `Move dead items of QUEUE back into QUEUE, with their attempts reset: those
with the given ids (as 'distq dead' lists them), or all of them with -all.
Fails (exit 1) if some of the ids are not dead items of QUEUE; the others
are requeued all the same.

Examples:
  distq requeue tasks 17 42
  distq requeue -all tasks`,
			flags: func(m *Main, fs *flag.FlagSet) {
				fs.BoolVar(&m.all, "all", false, "requeue every dead item of the queue")
			},
			check: func(m *Main, args []string) error {
				switch {
				case m.all && len(args) > 0:
					return errors.New("give ids or -all, not both")
				case !m.all && len(args) == 0:
					return errors.New("give the ids of the dead items to requeue, or -all")
				}
				for _, a := range args {
					id, err := strconv.ParseUint(a, 10, 64)
					if err != nil || id == 0 {
						return fmt.Errorf("%q is not an item id (a positive integer)", a)
					}
					if !slices.Contains(m.ids, id) {
						m.ids = append(m.ids, id)
					}
				}
				return nil
			},
			admin: runRequeue,
		},
		{
			name: "purge", synopsis: "QUEUE", summary: "throw away a queue's ready and delayed items", queueArg: true,
			help: `Throw away the ready and delayed items of QUEUE, for good: they are not
dead-lettered and do not come back after a restart. Leased items stay with
their consumers. On a dead-letter queue ("tasks.dead") it throws away the
dead items. Prints how many items went.

Examples:
  distq purge tasks
  distq purge tasks.dead`,
			flags: noFlags,
			check: noArgs,
			admin: runPurge,
		},
		{
			name: "pause", synopsis: "QUEUE", summary: "stop handing out a queue's items; puts go on", queueArg: true,
			help: `Pause QUEUE: it takes puts and hands out nothing; slaves and gets wait as on
an empty queue, while settles and retries go on. 'distq stats' shows it
paused. A master with -data-dir keeps the pause across restarts. Pausing a
paused queue does nothing. Undo with 'distq resume'.

Example:
  distq pause tasks`,
			flags: noFlags,
			check: noArgs,
			admin: runPause,
		},
		{
			name: "resume", synopsis: "QUEUE", summary: "hand out a paused queue's items again", queueArg: true,
			help: `Resume QUEUE after 'distq pause': its items are handed out again. Resuming
a queue that is not paused does nothing.

Example:
  distq resume tasks`,
			flags: noFlags,
			check: noArgs,
			admin: runResume,
		},
		{
			name: "close", synopsis: "QUEUE", summary: "refuse further puts; consumers drain the queue and end", queueArg: true,
			help: `Close QUEUE: further puts are refused; consumers drain what is left
(delayed items included) and then see a clean end, as slaves do when they
exit 0. Closing cannot be undone while the master runs.

Example:
  distq close tasks`,
			flags: noFlags,
			check: noArgs,
			admin: runClose,
		},
		{
			name: "put", synopsis: "QUEUE [PAYLOAD...]", summary: "put items, from arguments or stdin lines", queueArg: true,
			help: `Put one item per PAYLOAD argument into QUEUE, or, with none, one item per
line of standard input (without its line ending), in batches. While a
bounded queue is full, put waits for room (-timeout bounds the wait,
-nowait fails at once). Prints how many items were put, or with -ids their
ids, one per line. A payload that starts with "-" goes after "--".

Examples:
  distq put tasks 1 2 3
  seq 1 100000 | distq put tasks
  distq put -ids tasks -- -1`,
			flags: func(m *Main, fs *flag.FlagSet) {
				fs.BoolVar(&m.nowait, "nowait", false, "fail at once if the queue is full")
				fs.DurationVar(&m.timeout, "timeout", 0, "wait at most this long for room in a full queue (0: as long as it takes)")
				fs.BoolVar(&m.printIDs, "ids", false, "print the ids of the items put, one per line")
			},
			check: func(m *Main, args []string) error {
				if m.nowait && m.timeout != 0 {
					return errors.New("-nowait and -timeout do not go together")
				}
				if m.timeout < 0 {
					return fmt.Errorf("-timeout %v: want 0 or more", m.timeout)
				}
				m.args = args
				return nil
			},
			run: runPut,
		},
		{
			name: "get", synopsis: "QUEUE", summary: "take items, acknowledged at once, and print them", queueArg: true,
			help: `Take up to -n items from QUEUE and print their payloads, one per line. Like
the recipe's queue.get(), items are acknowledged as they are taken: they
are gone from the master once printed (use a worker for work that must
not be lost). Waits until -n items came, or until -timeout has passed;
with -nowait, takes only what is ready now. Exit 4 when nothing came, 5
when the queue is closed and drained.

Examples:
  distq get results
  distq get -n 100 -timeout 5s results
  distq get -nowait tasks || echo "nothing ready"`,
			flags: func(m *Main, fs *flag.FlagSet) {
				fs.IntVar(&m.n, "n", 1, "take up to this many items")
				fs.DurationVar(&m.timeout, "timeout", 0, "wait at most this long in all (0: until -n items came)")
				fs.BoolVar(&m.nowait, "nowait", false, "take only the items ready now; do not wait")
			},
			check: func(m *Main, args []string) error {
				if err := noArgs(m, args); err != nil {
					return err
				}
				switch {
				case m.n < 1:
					return fmt.Errorf("-n %d: want 1 or more", m.n)
				case m.nowait && m.timeout != 0:
					return errors.New("-nowait and -timeout do not go together")
				case m.timeout < 0:
					return fmt.Errorf("-timeout %v: want 0 or more", m.timeout)
				case m.timeout > 0 && m.timeout < time.Millisecond:
					return fmt.Errorf("-timeout %v: want at least 1ms", m.timeout)
				}
				return nil
			},
			run: runGet,
		},
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func noFlags(*Main, *flag.FlagSet) {}

func keepArgs(m *Main, args []string) error { m.args = args; return nil }

func noArgs(m *Main, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q (usage: distq %s %s)", args[0], m.cmd.name, m.cmd.synopsis)
	}
	return nil
}

func pageFlags(m *Main, fs *flag.FlagSet) {
	fs.BoolVar(&m.json, "json", false, "print JSON instead of a table")
	fs.IntVar(&m.offset, "offset", 0, "skip this many items")
	fs.IntVar(&m.limit, "limit", 20, "list at most this many items (1 to 10000)")
}

func checkPage(m *Main, args []string) error {
	if m.offset < 0 {
		return fmt.Errorf("-offset %d: want 0 or more", m.offset)
	}
	if m.limit < 1 || m.limit > distq.MaxGetItems {
		return fmt.Errorf("-limit %d: want 1 to %d", m.limit, distq.MaxGetItems)
	}
	return noArgs(m, args)
}

// usage prints the tool's help.
func (m *Main) usage(w io.Writer) {
	fmt.Fprint(w, `distq looks at and steers a running distq master.

Usage:
  distq [connection flags] COMMAND [flags] [arguments]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, `
Run 'distq COMMAND -h' for a command's flags and examples. Connection flags
go before or after COMMAND; a command's flags and arguments in any order.

Examples:
  export DISTQ_AUTHKEY_FILE=$HOME/.distq/authkey
  distq -master 10.0.0.1:4000 stats
  distq watch
  distq dead tasks
  distq requeue -all tasks
  seq 1 10 | distq put tasks
  distq get -n 10 -timeout 30s results

`)
	m.connectionHelp(w)
	fmt.Fprint(w, `
Exit status:
  0  done
  1  the master refused or failed the operation (unknown queue, closed or
     full queue, ids that are not dead items, ...)
  2  bad usage: unknown command or flag, a missing or bad argument
  3  cannot reach the master or authenticate: unreachable, wrong or missing
     key, bad TLS files
  4  get: nothing to get (nothing ready with -nowait, or nothing within
     -timeout)
  5  get: the queue is closed and drained; nothing more will come
`)
}

// connectionHelp prints the connection flags and the environment.
func (m *Main) connectionHelp(w io.Writer) {
	fmt.Fprintln(w, "Connection flags (as the slave's):")
	fs := flag.NewFlagSet("distq", flag.ContinueOnError)
	NewMain(nil, nil, nil).connFlags(fs)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintf(w, `
Environment:
  %s  file holding the authkey, when -authkey-file is not given
  %s       the authkey itself, when neither is given
`, auth.EnvKeyFile, auth.EnvKey)
}

// commandUsage prints the help of m.cmd.
func (m *Main) commandUsage(w io.Writer) {
	c := m.cmd
	fmt.Fprintf(w, "Usage: distq %s [flags] %s\n\n%s\n", c.name, c.synopsis, c.help)
	fs := flag.NewFlagSet("distq "+c.name, flag.ContinueOnError)
	c.flags(NewMain(nil, nil, nil), fs)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	fmt.Fprintln(w)
	m.connectionHelp(w)
	fmt.Fprintln(w, "\nExit status: see 'distq -h'.")
}

func runStats(ctx context.Context, m *Main, in *distq.Inspector) error {
	st, err := queueStats(ctx, in, m.args)
	if err != nil {
		return err
	}
	if m.json {
		return writeStatsJSON(m.stdout, st)
	}
	return writeStatsTable(m.stdout, st)
}

// queueStats returns the stats of the named queues, or of all when none
// are, from one call.
func queueStats(ctx context.Context, in *distq.Inspector, names []string) ([]distq.Stats, error) {
	all, err := in.Queues(ctx)
	if err != nil || len(names) == 0 {
		return all, err
	}
	out := make([]distq.Stats, 0, len(names))
	for _, n := range names {
		i := slices.IndexFunc(all, func(s distq.Stats) bool { return s.Name == n })
		if i < 0 {
			return nil, &kindError{fmt.Sprintf("unknown queue %q", n), distq.ErrUnknownQueue}
		}
		out = append(out, all[i])
	}
	return out, nil
}

func runWorkers(ctx context.Context, m *Main, in *distq.Inspector) error {
	queue := ""
	if len(m.args) == 1 {
		queue = m.args[0]
	}
	cs, err := in.Consumers(ctx, queue)
	if err != nil {
		return err
	}
	if m.json {
		return writeConsumersJSON(m.stdout, cs)
	}
	return writeConsumersTable(m.stdout, cs, time.Now())
}

func runPeek(ctx context.Context, m *Main, c *distq.Client) error {
	q := c.Queue(m.queue)
	items, err := q.Peek(ctx, m.offset, m.limit)
	if err != nil {
		return err
	}
	if m.json {
		return writeItemsJSON(m.stdout, items)
	}
	total := -1
	if st, err := q.Stats(ctx); err == nil {
		total = st.Ready
	}
	return writeItemsTable(m.stdout, items, m.offset, total, "ready")
}

func runDead(ctx context.Context, m *Main, in *distq.Inspector) error {
	items, total, err := in.Dead(ctx, m.queue, m.offset, m.limit)
	if err != nil {
		return err
	}
	if m.json {
		return writeItemsJSON(m.stdout, items)
	}
	return writeItemsTable(m.stdout, items, m.offset, total, "dead")
}

func runRequeue(ctx context.Context, m *Main, in *distq.Inspector) error {
	var n int
	var err error
	if m.all {
		n, err = in.RequeueAll(ctx, m.queue)
	} else {
		n, err = in.Requeue(ctx, m.queue, m.ids...)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(m.stdout, "requeued %s into %s\n", plural(n, "dead item"), m.queue)
	switch {
	case m.all || n >= len(m.ids):
	case len(m.ids) == 1:
		return fmt.Errorf("item %d is not a dead item of %s", m.ids[0], m.queue)
	default:
		return fmt.Errorf("%d of the %d ids given are not dead items of %s", len(m.ids)-n, len(m.ids), m.queue)
	}
	return nil
}

func runClose(ctx context.Context, m *Main, in *distq.Inspector) error {
	if err := in.CloseQueue(ctx, m.queue); err != nil {
		return err
	}
	fmt.Fprintf(m.stdout, "closed %s: puts are refused; consumers drain it and end\n", m.queue)
	return nil
}

func runPurge(ctx context.Context, m *Main, in *distq.Inspector) error {
	n, err := in.Purge(ctx, m.queue)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.stdout, "purged %s from %s\n", plural(n, "item"), m.queue)
	return nil
}

func runPause(ctx context.Context, m *Main, in *distq.Inspector) error {
	if err := in.Pause(ctx, m.queue); err != nil {
		return err
	}
	fmt.Fprintf(m.stdout, "paused %s: it takes puts and hands out nothing until 'distq resume %s'\n", m.queue, m.queue)
	return nil
}

func runResume(ctx context.Context, m *Main, in *distq.Inspector) error {
	if err := in.Resume(ctx, m.queue); err != nil {
		return err
	}
	fmt.Fprintf(m.stdout, "resumed %s\n", m.queue)
	return nil
}

// putBatch bounds a batch of stdin lines: items, and bytes (under the
// master's 4 MiB message limit).
const (
	putBatchItems = 1000
	putBatchBytes = 1 << 20
)

func runPut(ctx context.Context, m *Main, c *distq.Client) error {
	q := c.Queue(m.queue)
	var opts []distq.PutOption
	switch {
	case m.nowait:
		opts = append(opts, distq.Nowait())
	case m.timeout > 0:
		opts = append(opts, distq.Timeout(m.timeout))
	}
	out := bufio.NewWriter(m.stdout)
	defer out.Flush()
	var ids []uint64
	put := func(msgs []distq.Message) error {
		got, err := q.PutBatch(ctx, msgs, opts...)
		if m.printIDs {
			for _, id := range got {
				fmt.Fprintln(out, id)
			}
		}
		ids = append(ids, got...)
		return err
	}
	var err error
	if len(m.args) > 0 {
		msgs := make([]distq.Message, len(m.args))
		for i, a := range m.args {
			msgs[i] = distq.Message{Payload: []byte(a)}
		}
		err = put(msgs)
	} else {
		err = putLines(m.stdin, put)
	}
	if err != nil {
		if len(ids) > 0 {
			return fmt.Errorf("put %s into %s, then: %w", plural(len(ids), "item"), m.queue, err)
		}
		return err
	}
	if !m.printIDs {
		fmt.Fprintf(out, "put %s into %s\n", plural(len(ids), "item"), m.queue)
	}
	return nil
}

// putLines calls put with batches of the lines of r.
func putLines(r io.Reader, put func([]distq.Message) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), putBatchBytes)
	var msgs []distq.Message
	size := 0
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		msgs = append(msgs, distq.Message{Payload: line})
		size += len(line)
		if len(msgs) == putBatchItems || size >= putBatchBytes {
			if err := put(msgs); err != nil {
				return err
			}
			msgs, size = msgs[:0], 0
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("a line of standard input is longer than %d bytes", putBatchBytes)
		}
		if len(msgs) > 0 {
			if perr := put(msgs); perr != nil {
				return perr
			}
		}
		return err
	}
	if len(msgs) > 0 {
		return put(msgs)
	}
	return nil
}

func runGet(ctx context.Context, m *Main, c *distq.Client) error {
	q := c.Queue(m.queue)
	out := bufio.NewWriter(m.stdout)
	defer out.Flush()
	var deadline time.Time
	if m.timeout > 0 {
		deadline = time.Now().Add(m.timeout)
	}
	got := 0
	for got < m.n {
		want := min(m.n-got, distq.MaxGetItems)
		var ts []*distq.Task
		var err error
		switch {
		case m.nowait && got == 0:
			var t *distq.Task
			if t, err = q.GetNowait(ctx); err == nil {
				ts = []*distq.Task{t}
			}
		case m.nowait:
			// What is ready now comes at once; a millisecond is the
			// shortest wait a get can ask for when nothing is.
			ts, err = q.GetMany(ctx, want, time.Millisecond)
		case !deadline.IsZero():
			left := time.Until(deadline)
			if left < time.Millisecond {
				err = distq.ErrEmpty
				break
			}
			ts, err = q.GetMany(ctx, want, left)
		default:
			ts, err = q.GetMany(ctx, want, 0)
		}
		for _, t := range ts {
			out.Write(t.Payload)
			out.WriteByte('\n')
		}
		got += len(ts)
		if ferr := out.Flush(); ferr != nil {
			return ferr
		}
		switch {
		case err == nil:
		case errors.Is(err, distq.ErrEmpty):
			if got == 0 {
				if m.nowait {
					return &kindError{"queue " + m.queue + " is empty: nothing ready", distq.ErrEmpty}
				}
				return &kindError{fmt.Sprintf("queue %s: nothing came within %v", m.queue, m.timeout), distq.ErrEmpty}
			}
			return nil
		case errors.Is(err, distq.ErrClosed):
			if got == 0 {
				return &kindError{"queue " + m.queue + " is closed and drained: nothing more will come", errDrained}
			}
			return nil
		default:
			return err
		}
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// kindError is an error of a kind (errors.Is) with its own message.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
