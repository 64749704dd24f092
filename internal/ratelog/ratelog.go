// Package ratelog logs events that peers can cause at any rate (refused
// logins, calls, connections and settles; dead-lettered items; expired
// leases) without letting a peer flood the log. The first few events of
// each interval are logged one by one, in full; the rest are counted, and
// one summary line at the end of the interval gives their number by reason
// and by peer. An attack stays visible, and the disk stays safe: a peer
// that is refused 15,000 times a second costs a handful of lines per
// interval, not 15,000 (one keyless client once wrote 2 MB/s of warnings).
package ratelog

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults of Config.
const (
	DefaultInterval = 10 * time.Second
	DefaultBurst    = 5
	DefaultMaxPeers = 1024
)

// Config configures a Log. Zero values take the defaults.
type Config struct {
	// Interval is how often the counted refusals are summarised. Default 10 s.
	Interval time.Duration
	// Burst is how many refusals of an interval are logged one by one
	// before the rest are only counted. Default 5.
	Burst int
	// MaxPeers bounds the peers counted apart in one interval; the others
	// are counted together as "others". Default 1024.
	MaxPeers int
	// Level is the level of every line. Default Warn.
	Level hclog.Level
	// What names the events in the summary line, in the plural: "more
	// refusals, not logged one by one". Default "events".
	What string
}

// Log counts and logs events. Safe for concurrent use. It has no
// goroutine of its own: a timer runs only while an interval has refusals
// waiting to be summarised.
type Log struct {
	log      hclog.Logger
	level    hclog.Level
	summary  string
	interval time.Duration
	burst    int
	maxPeers int

	mu       sync.Mutex
	logged   int            // events logged one by one this interval
	counted  int            // events only counted this interval
	byReason map[kind]int   // of the counted ones
	byPeer   map[string]int // of the counted ones, by host
	others   int            // counted ones from peers past maxPeers
	timer    *time.Timer    // set while the interval has counted refusals
	start    time.Time      // when this interval's first event came
	closed   bool
	totals   map[kind]uint64 // every event since New, by reason
}

// kind is an event's msg and reason: a map key built without allocating,
// as "msg: reason" was on every Note (an expired lease's, say).
type kind struct{ msg, reason string }

func (k kind) String() string { return k.msg + ": " + k.reason }

// New returns a Log writing to log at cfg.Level.
func New(log hclog.Logger, cfg Config) *Log {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.Level == hclog.NoLevel {
		cfg.Level = hclog.Warn
	}
	if cfg.What == "" {
		cfg.What = "events"
	}
	return &Log{
		log:      log,
		level:    cfg.Level,
		summary:  "more " + cfg.What + ", not logged one by one",
		interval: cfg.Interval,
		burst:    cfg.Burst,
		maxPeers: cfg.MaxPeers,
		byReason: make(map[kind]int),
		byPeer:   make(map[string]int),
		totals:   make(map[kind]uint64),
	}
}

// Note records one event: msg says what happened ("login refused", "item
// dead-lettered", ...), reason why (a fixed string, never text a peer
// chose: the summary counts by it), peer who caused it (host:port, or ""
// when unknown), and kv adds detail for the line logged in full. msg and
// reason together name the kind in the summary.
func (l *Log) Note(msg, reason, peer string, kv ...any) {
	l.mu.Lock()
	key := kind{msg, reason}
	l.totals[key]++
	if l.closed || l.logged < l.burst {
		if l.logged == 0 && l.timer == nil {
			l.start = time.Now()
			l.timer = time.AfterFunc(l.interval, l.flush)
		}
		l.logged++
		l.mu.Unlock()
		args := make([]any, 0, 4+len(kv))
		if peer != "" {
			args = append(args, "peer", peer)
		}
		l.log.Log(l.level, msg, append(append(args, "reason", reason), kv...)...)
		return
	}
	l.counted++
	l.byReason[key]++
	if peer != "" {
		host := hostOf(peer)
		if _, ok := l.byPeer[host]; ok || len(l.byPeer) < l.maxPeers {
			l.byPeer[host]++
		} else {
			l.others++
		}
	}
	l.mu.Unlock()
}

// Totals returns every event counted since New, by "msg: reason".
func (l *Log) Totals() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.totals))
	for k, v := range l.totals {
		out[k.String()] += v
	}
	return out
}

// flush ends an interval: it logs the summary of what was only counted,
// and starts the next interval with a clean slate.
func (l *Log) flush() {
	l.mu.Lock()
	counted, since := l.counted, time.Since(l.start)
	byReason, byPeer, others := l.byReason, l.byPeer, l.others
	l.logged, l.counted, l.others = 0, 0, 0
	l.timer = nil
	if counted > 0 {
		l.byReason = make(map[kind]int)
		l.byPeer = make(map[string]int)
	}
	l.mu.Unlock()
	if counted == 0 {
		return
	}
	reasons := make(map[string]int, len(byReason))
	for k, v := range byReason {
		reasons[k.String()] += v
	}
	args := []any{"count", counted, "in", since.Round(time.Second), "by_reason", top(reasons, len(reasons), 0)}
	if len(byPeer) > 0 || others > 0 {
		args = append(args, "top_peers", top(byPeer, 10, others))
	}
	l.log.Log(l.level, l.summary, args...)
}

// Close logs what is still counted. Later events are logged one by one.
// Safe to call twice.
func (l *Log) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	t := l.timer
	l.mu.Unlock()
	if t != nil && t.Stop() {
		l.flush()
	}
}

// top formats the n largest counts as "k=v, k=v", largest first, with the
// rest (and others) summed as "others=v".
func top(m map[string]int, n, others int) string {
	type kv struct {
		k string
		v int
	}
	all := make([]kv, 0, len(m))
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int {
		if c := cmp.Compare(b.v, a.v); c != 0 {
			return c
		}
		return strings.Compare(a.k, b.k)
	})
	var b strings.Builder
	for i, e := range all {
		if i >= n {
			others += e.v
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", e.k, e.v)
	}
	if others > 0 {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "others=%d", others)
	}
	return b.String()
}

// hostOf drops the port: an attacker's connections differ in port only.
func hostOf(peer string) string {
	if h, _, err := net.SplitHostPort(peer); err == nil {
		return h
	}
	return peer
}
