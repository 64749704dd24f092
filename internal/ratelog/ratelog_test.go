package ratelog

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

type buffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{} // a tick per line written
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return b.b.Write(p)
}

func (b *buffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.b.String()), "\n")
}

func newLog(t *testing.T, cfg Config) (*Log, *buffer) {
	t.Helper()
	out := &buffer{wrote: make(chan struct{}, 1<<16)}
	if cfg.What == "" {
		cfg.What = "refusals"
	}
	l := New(hclog.New(&hclog.LoggerOptions{Output: out, Level: hclog.Info}), cfg)
	t.Cleanup(l.Close)
	return l, out
}

func TestBurstThenSummary(t *testing.T) {
	// An hour's interval: the test ends intervals itself with flush.
	l, out := newLog(t, Config{Interval: time.Hour, Burst: 3, MaxPeers: 2})
	for i := range 1000 {
		l.Note("login refused", "wrong proof", fmt.Sprintf("10.0.0.%d:%d", i%3, 1000+i))
	}
	l.Note("call refused", "bad distq-mac", "10.0.0.9:1")
	if got := len(out.lines()); got != 3 {
		t.Fatalf("%d lines before the interval ended; want the burst of 3:\n%s", got, strings.Join(out.lines(), "\n"))
	}
	for _, line := range out.lines() {
		if !strings.Contains(line, "login refused") || !strings.Contains(line, "peer=10.0.0.") || !strings.Contains(line, `reason="wrong proof"`) {
			t.Fatalf("a refusal logged in full lacks what, who or why: %s", line)
		}
	}
	l.flush()
	lines := out.lines()
	if len(lines) != 4 {
		t.Fatalf("%d lines after the interval; want the burst and one summary:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	sum := lines[3]
	for _, want := range []string{"count=998", "login refused: wrong proof=997", "call refused: bad distq-mac=1", "10.0.0.0=", "others="} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q: %s", want, sum)
		}
	}
	// The next interval starts with a fresh burst.
	l.Note("login refused", "wrong proof", "10.0.0.1:1")
	if got := len(out.lines()); got != 5 {
		t.Fatalf("%d lines; want the next interval's first refusal logged at once", got)
	}
	if n := l.Totals()["login refused: wrong proof"]; n != 1001 {
		t.Fatalf("total %d; want 1001", n)
	}
}

func TestQuietIntervalLogsNoSummary(t *testing.T) {
	l, out := newLog(t, Config{Interval: time.Hour, Burst: 5})
	l.Note("connection closed", "timeout", "127.0.0.1:5")
	l.flush()
	if got := len(out.lines()); got != 1 {
		t.Fatalf("%d lines; want the one refusal and no summary", got)
	}
}

func TestTimerEndsTheInterval(t *testing.T) {
	l, out := newLog(t, Config{Interval: time.Millisecond, Burst: 1})
	l.Note("call refused", "x", "a:1")
	l.Note("call refused", "x", "a:2")
	hang := time.After(time.Minute) // a bound for a hang only
	for range 2 {                   // the refusal, then the summary
		select {
		case <-out.wrote:
		case <-hang:
			t.Fatalf("no summary from the interval's timer: %q", out.lines())
		}
	}
	if !strings.Contains(out.lines()[1], "count=1") {
		t.Fatalf("summary %q", out.lines()[1])
	}
}

func TestCloseFlushesAndNilLoggerDiscards(t *testing.T) {
	l, out := newLog(t, Config{Interval: time.Hour, Burst: 1})
	l.Note("call refused", "x", "a:1")
	l.Note("call refused", "x", "a:1")
	l.Close()
	l.Close()
	if lines := out.lines(); len(lines) != 2 || !strings.Contains(lines[1], "count=1") {
		t.Fatalf("after Close: %q; want the counted refusal summarised", lines)
	}
	d := New(nil, Config{})
	d.Note("call refused", "x", "a:1")
	d.Close()
}
