package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Procs starts child processes and keeps track of the live ones, so that
// KillAll can end every one of them however the run ends.
type Procs struct {
	mu   sync.Mutex
	live map[*Proc]struct{}
}

// NewProcs returns an empty set of children.
func NewProcs() *Procs { return &Procs{live: map[*Proc]struct{}{}} }

// Proc is one child process: its stdout is kept line by line, the tail of
// its stderr for error messages.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	out  *lineBuffer
	errb *tailBuffer
	done chan struct{}
	err  error // exit status, valid once done is closed
}

// Start runs argv as a child named name. Each child gets its own process
// group (so that a Python recipe's own children die with it) and is killed
// if this process dies.
func (ps *Procs) Start(name string, argv ...string) (*Proc, error) {
	p := &Proc{Name: name, out: newLineBuffer(), errb: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.errb
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A grandchild holding the output pipes must not keep Wait waiting.
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ps.mu.Lock()
	ps.live[p] = struct{}{}
	ps.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		ps.mu.Lock()
		delete(ps.live, p)
		ps.mu.Unlock()
		p.out.close()
		close(p.done)
	}()
	return p, nil
}

// KillAll kills every live child's process group and waits briefly for
// them to be reaped.
func (ps *Procs) KillAll() {
	ps.mu.Lock()
	live := make([]*Proc, 0, len(ps.live))
	for p := range ps.live {
		live = append(live, p)
	}
	ps.mu.Unlock()
	for _, p := range live {
		p.Kill()
	}
	for _, p := range live {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// CPUSeconds is the CPU time (user and system, every thread) the child
// has used: in all once it has exited, so far while it runs.
func (p *Proc) CPUSeconds() (float64, error) {
	if p.Exited() {
		st := p.cmd.ProcessState
		if st == nil {
			return 0, errors.New("no exit state")
		}
		return (st.UserTime() + st.SystemTime()).Seconds(), nil
	}
	return cpuSeconds(p.Pid())
}

// cpuOf is the CPU seconds the processes have used, added up.
func cpuOf(ps ...*Proc) (float64, error) {
	total := 0.0
	for _, p := range ps {
		sec, err := p.CPUSeconds()
		if err != nil {
			return 0, p.failure(err)
		}
		total += sec
	}
	return total, nil
}

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the child has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the child has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL to the child's process group, unless the child is
// already reaped: its group id may have been reused by then.
func (p *Proc) Kill() {
	if !p.Exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// Signal sends sig to the child (not its group).
func (p *Proc) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Stdout is everything the child wrote to stdout so far.
func (p *Proc) Stdout() string { return p.out.String() }

// Stderr is the tail of what the child wrote to stderr.
func (p *Proc) Stderr() string { return p.errb.String() }

// Wait waits up to timeout for the child to exit and returns an error
// unless it exited with status 0. On timeout or when ctx ends the child is
// killed.
func (p *Proc) Wait(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.Kill()
		<-p.done
		return p.failure(fmt.Errorf("%w within %v (killed)", errNoExit, timeout))
	case <-ctx.Done():
		p.Kill()
		return ctx.Err()
	}
	if p.err != nil {
		return p.failure(fmt.Errorf("exited: %w", p.err))
	}
	return nil
}

// Stop sends SIGTERM and waits up to timeout for a clean exit.
func (p *Proc) Stop(ctx context.Context, timeout time.Duration) error {
	if !p.Exited() {
		p.Signal(syscall.SIGTERM)
	}
	return p.Wait(ctx, timeout)
}

// WaitLine waits up to timeout for a line of stdout that match accepts and
// returns it. It fails if the child exits first.
func (p *Proc) WaitLine(ctx context.Context, timeout time.Duration, match func(string) bool) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		lines, changed, closed := p.out.snapshot()
		for _, l := range lines[seen:] {
			if match(l) {
				return l, nil
			}
		}
		seen = len(lines)
		if closed {
			<-p.done
			return "", p.failure(fmt.Errorf("exited before printing the expected line (%v)", p.err))
		}
		select {
		case <-changed:
		case <-deadline.C:
			return "", p.failure(fmt.Errorf("no expected line within %v", timeout))
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// failure wraps err with the child's name and the tail of its stderr.
func (p *Proc) failure(err error) error {
	msg := strings.TrimSpace(p.Stderr())
	if msg == "" {
		return &ChildError{Name: p.Name, Err: err}
	}
	return &ChildError{Name: p.Name, Err: err, Stderr: lastLines(msg, 12)}
}

// ChildError is a child process that failed.
type ChildError struct {
	Name   string
	Err    error
	Stderr string
}

func (e *ChildError) Error() string {
	if e.Stderr == "" {
		return e.Name + ": " + e.Err.Error()
	}
	return e.Name + ": " + e.Err.Error() + "\n--- stderr of " + e.Name + " (last lines) ---\n" + e.Stderr
}

func (e *ChildError) Unwrap() error { return e.Err }

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lineBuffer keeps what a child writes as complete lines and wakes waiters
// on each new line.
type lineBuffer struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	changed chan struct{}
	closed  bool
}

func newLineBuffer() *lineBuffer { return &lineBuffer{changed: make(chan struct{})} }

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partial = append(b.partial, p...)
	grew := false
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		b.lines = append(b.lines, string(b.partial[:i]))
		b.partial = b.partial[i+1:]
		grew = true
	}
	if grew {
		close(b.changed)
		b.changed = make(chan struct{})
	}
	return len(p), nil
}

func (b *lineBuffer) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.partial) > 0 {
		b.lines = append(b.lines, string(b.partial))
		b.partial = nil
	}
	b.closed = true
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *lineBuffer) snapshot() (lines []string, changed <-chan struct{}, closed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lines, b.changed, b.closed
}

func (b *lineBuffer) String() string {
	lines, _, _ := b.snapshot()
	return strings.Join(lines, "\n")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

var (
	// errInterrupted marks a run ended by a signal.
	errInterrupted = errors.New("interrupted")
	// errNoExit: a child did not exit in time.
	errNoExit = errors.New("did not exit")
)
