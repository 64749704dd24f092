// Command distq looks at and steers a running master from a shell: the
// depths and counters of its queues (stats, a live watch), the items
// waiting in a queue or dead in its dead-letter queue, requeueing dead
// items, closing a queue, and putting and getting items by hand. It reads
// the same key flags and environment as the slave.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/distq/distq"
	"github.com/distq/distq/internal/masterflags"
)

func main() {
	m := NewMain(os.Stdin, os.Stdout, os.Stderr)
	m.terminal = term.IsTerminal(int(os.Stdout.Fd()))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := m.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// Exit codes, as `distq -h` documents them.
const (
	exitOK      = 0 // done
	exitFailed  = 1 // the master refused or failed the operation
	exitUsage   = 2 // bad command line
	exitConnect = 3 // cannot reach the master or authenticate
	exitEmpty   = 4 // get: nothing to get (-nowait, or nothing within -timeout)
	exitDrained = 5 // get: the queue is closed and drained
)

// Main is the distq program: the command line parsed by ParseFlags, run by
// Run.
type Main struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	terminal       bool // stdout is a terminal: watch redraws in place

	conn           masterflags.Flags
	connectTimeout time.Duration

	cmd  *command
	args []string // the command's arguments, after its queue

	queue    string
	json     bool
	offset   int
	limit    int
	all      bool
	ids      []uint64
	n        int
	timeout  time.Duration
	nowait   bool
	printIDs bool
	interval time.Duration
	count    int
}

// NewMain returns a Main reading stdin and writing stdout and stderr.
func NewMain(stdin io.Reader, stdout, stderr io.Writer) *Main {
	return &Main{stdin: stdin, stdout: stdout, stderr: stderr, connectTimeout: 10 * time.Second}
}

// Main runs the command line args and returns the exit code; it prints
// errors to stderr, once.
func (m *Main) Main(ctx context.Context, args []string) int {
	if err := m.ParseFlags(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		m.printError(err)
		hint := "distq -h"
		if m.cmd != nil {
			hint = "distq " + m.cmd.name + " -h"
		}
		fmt.Fprintf(m.stderr, "run '%s' for help\n", hint)
		return exitUsage
	}
	err := m.Run(ctx)
	if err != nil {
		m.printError(err)
	}
	return exitCode(err)
}

// usageError is a bad command line: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// connectError is a failure to connect or authenticate: exit 3.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// errDrained: get found the queue closed and drained.
var errDrained = errors.New("queue closed and drained")

// exitCode maps an error of Run to the exit code.
func exitCode(err error) int {
	var ue *usageError
	var ce *connectError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ce), errors.Is(err, distq.ErrAuthFailed), errors.Is(err, distq.ErrMasterUnverified),
		errors.Is(err, distq.ErrUnavailable):
		return exitConnect
	case errors.Is(err, distq.ErrEmpty):
		return exitEmpty
	case errors.Is(err, errDrained):
		return exitDrained
	}
	return exitFailed
}

// printError prints err on one line that starts with "distq: " once: the
// Go client's own messages already carry that prefix, some of them twice.
func (m *Main) printError(err error) {
	fmt.Fprintln(m.stderr, "distq: "+cleanMessage(err.Error()))
}

func cleanMessage(msg string) string {
	for strings.HasPrefix(msg, "distq: ") {
		msg = strings.TrimPrefix(msg, "distq: ")
	}
	for strings.Contains(msg, ": distq: ") {
		msg = strings.ReplaceAll(msg, ": distq: ", ": ")
	}
	// "queue full: queue full: …": a kind of error, then the master's
	// message that starts with the same words.
	parts := strings.Split(msg, ": ")
	kept := parts[:0]
	for i, p := range parts {
		if i+1 < len(parts) && p != "" && (parts[i+1] == p || strings.HasPrefix(parts[i+1], p+" ")) {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, ": ")
}

// ParseFlags reads the command line: connection flags, the command, then
// the command's flags and arguments in any order (flags after "--" are
// arguments).
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("distq", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	m.connFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			m.usage(m.stdout)
			return err
		}
		return &usageError{err.Error()}
	}
	if fs.NArg() == 0 {
		names := make([]string, len(commands))
		for i, c := range commands {
			names[i] = c.name
		}
		return usagef("no command given (one of: %s)", strings.Join(names, ", "))
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		if len(rest) > 0 {
			if c := lookup(rest[0]); c != nil {
				m.cmd = c
				m.commandUsage(m.stdout)
				return flag.ErrHelp
			}
			return usagef("unknown command %q", rest[0])
		}
		m.usage(m.stdout)
		return flag.ErrHelp
	}
	m.cmd = lookup(name)
	if m.cmd == nil {
		return usagef("unknown command %q", name)
	}
	cfs := flag.NewFlagSet("distq "+name, flag.ContinueOnError)
	cfs.SetOutput(io.Discard)
	cfs.Usage = func() {}
	m.cmd.flags(m, cfs)
	m.connFlags(cfs)
	pos, err := parseInterleaved(cfs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			m.commandUsage(m.stdout)
			return err
		}
		return usagef("%s: %v", name, err)
	}
	if m.connectTimeout <= 0 {
		return usagef("-connect-timeout %v: want more than 0", m.connectTimeout)
	}
	if m.cmd.queueArg {
		if len(pos) == 0 {
			return usagef("%s: no queue named (usage: distq %s %s)", name, name, m.cmd.synopsis)
		}
		m.queue, pos = pos[0], pos[1:]
		if m.queue == "" {
			return usagef("%s: the queue name is empty", name)
		}
	}
	if err := m.cmd.check(m, pos); err != nil {
		return usagef("%s: %v", name, err)
	}
	return nil
}

func (m *Main) connFlags(fs *flag.FlagSet) {
	m.conn.Register(fs)
	fs.DurationVar(&m.connectTimeout, "connect-timeout", m.connectTimeout, "give up reaching the master and authenticating after this long")
}

// parseInterleaved parses fs from args, letting flags and arguments mix
// (the flag package stops at the first argument); it returns the
// arguments. Everything after "--" is an argument.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// Run connects to the master and runs the command.
func (m *Main) Run(ctx context.Context) error {
	opts, err := m.conn.Options()
	if err != nil {
		return &connectError{err}
	}
	// Administration goes through an Inspector; puts, gets and peeks
	// through a Client.
	var connect func(context.Context) error
	var run func(context.Context) error
	if m.cmd.admin != nil {
		in, err := distq.NewInspector(m.conn.Master, opts)
		if err != nil {
			return &connectError{err}
		}
		defer in.Close()
		connect = in.Connect
		run = func(ctx context.Context) error { return m.cmd.admin(ctx, m, in) }
	} else {
		client, err := distq.NewClient(m.conn.Master, opts)
		if err != nil {
			return &connectError{err}
		}
		defer client.Close()
		connect = client.Connect
		run = func(ctx context.Context) error { return m.cmd.run(ctx, m, client) }
	}
	cctx, cancel := context.WithTimeout(ctx, m.connectTimeout)
	err = connect(cctx)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("master %s: no answer within -connect-timeout %v", m.conn.Master, m.connectTimeout)
		}
		return &connectError{err}
	}
	return run(ctx)
}
