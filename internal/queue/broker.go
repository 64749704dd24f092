// Package queue is the master's core: named in-memory queues whose items are
// leased to consumers until settled, with bounded puts, credit-based delivery,
// lease expiry, retries with backoff, dead-letter queues and join. It knows
// nothing of the network; the gRPC edge (internal/server) maps its errors to
// status codes.
package queue

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/distq/distq/internal/clock"
	"github.com/distq/distq/internal/ratelog"
	"github.com/distq/distq/internal/state"
)

// DeadSuffix is appended to a queue's name to name its dead-letter queue.
const DeadSuffix = ".dead"

// Defaults for Config fields left zero.
const (
	DefaultLeaseTime   = 30 * time.Second
	DefaultMaxAttempts = 5
	DefaultRetryMin    = 500 * time.Millisecond
	DefaultRetryMax    = 60 * time.Second
	DefaultDedupWindow = 10 * time.Minute
)

// MaxRetryDelay bounds every retry delay: a backoff's maximum, and the
// delay a nack asks for.
const MaxRetryDelay = 24 * time.Hour

// QueueConfig declares one named queue.
type QueueConfig struct {
	Name string
	// MaxSize bounds the number of ready items; 0 means unbounded.
	MaxSize int
	// RetryMin and RetryMax override the master's retry backoff (see
	// Config) for this queue and its dead-letter queue. Zero takes the
	// master's; a zero RetryMax under a RetryMin above the master's maximum
	// takes that RetryMin.
	RetryMin, RetryMax time.Duration
}

// Config configures a Broker.
type Config struct {
	// Queues to host. Default: "tasks" and "results", unbounded.
	Queues []QueueConfig
	// LeaseTime is how long a delivery stays leased without a settle or an
	// extension. Default 30 s.
	LeaseTime time.Duration
	// MaxAttempts is how many deliveries an item gets before it is moved to
	// its dead-letter queue. Default 5.
	MaxAttempts int
	// RetryMin and RetryMax bound the backoff of an item nacked for a retry
	// without a delay of its own: after its k-th delivery it waits between
	// d/2 and d, d = min(RetryMax, RetryMin·2^(k-1)), before it is ready
	// again (see backoff). Defaults 500 ms and 60 s (or RetryMin, if that is
	// longer); RetryMax may not exceed MaxRetryDelay. A queue may override
	// both. Only nacks wait: an expired lease or a lost consumer's item
	// comes back at once (see Queue.giveBack).
	RetryMin, RetryMax time.Duration
	// ScanInterval is the longest the scan loop sleeps. The loop wakes at
	// the earliest deadline (a lease's or a delayed item's), so this only
	// bounds how late a deadline is seen if the wall clock steps forward
	// (deadlines are wall-clock times; timers are not). Default: a tenth of
	// LeaseTime, between 5 ms and 1 s.
	ScanInterval time.Duration
	// ManualScan starts no scan loop: leases expire and delayed items become
	// ready only when the caller calls ExpireLeases and PromoteDelayed.
	// Tests on a clock.Manual set it, so that nothing moves behind their
	// back: the loop sleeps on real timers, and would act whenever it woke
	// after the test moved the clock.
	ManualScan bool
	// Clock tells the time. Default: the system clock.
	Clock clock.Clock
	// Incarnation names this run of the master. Leases taken by Get are
	// settled through unary calls that say which incarnation leased them,
	// and the gRPC edge refuses those of another: a late ack from before a
	// restart must not settle the new master's item that has the same
	// numbers. The master draws it at random at every start. Never 0,
	// which stands for "not said"; default 1.
	Incarnation uint64
	// IDBase and LeaseBase are where item ids and lease ids count from:
	// the first item is IDBase+1, the first lease LeaseBase+1, in every
	// queue. Default 0. (Durable queues will carry their counters over
	// restarts through them.)
	IDBase, LeaseBase uint64
	// DedupWindow is how long after a producer's last put the sequences of
	// its puts are remembered, so that its retries are stored once
	// (PutOnce). Default 10 minutes.
	DedupWindow time.Duration
	// Journal, if set, logs every change of the queues' logged state: the
	// master is durable. Default: none (queues live in memory only).
	Journal Journal
	// State, if set, is the queues' logged state to start from: what a
	// durable master recovered from its log. Its items are ready (or wait
	// for their retry's due time), none leased. Default: empty.
	State *state.Machine
	// Logger receives the broker's logs. Default: a null logger.
	Logger hclog.Logger
}

// MaxIDBase bounds Config.IDBase and LeaseBase, leaving 2^62 ids and
// leases to count up before a counter could wrap.
const MaxIDBase = 1 << 62

// DefaultQueues are the recipe's two queues.
func DefaultQueues() []QueueConfig {
	return []QueueConfig{{Name: "tasks"}, {Name: "results"}}
}

// Validate checks the configuration and fills in defaults.
func (c *Config) Validate() error {
	if len(c.Queues) == 0 {
		c.Queues = DefaultQueues()
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	if err := validateRetry(c.RetryMin, c.RetryMax); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, q := range c.Queues {
		if err := ValidateName(q.Name); err != nil {
			return err
		}
		if q.MaxSize < 0 {
			return fmt.Errorf("%w: queue %q: maxsize %d is negative", ErrInvalid, q.Name, q.MaxSize)
		}
		if seen[q.Name] {
			return fmt.Errorf("%w: queue %q declared twice", ErrInvalid, q.Name)
		}
		seen[q.Name] = true
		if err := validateRetry(c.retryOf(q)); err != nil {
			return fmt.Errorf("queue %q: %w", q.Name, err)
		}
	}
	if c.LeaseTime == 0 {
		c.LeaseTime = DefaultLeaseTime
	}
	if c.LeaseTime < time.Millisecond || c.LeaseTime > 24*time.Hour {
		return fmt.Errorf("%w: lease time %v out of range [1ms, 24h]", ErrInvalid, c.LeaseTime)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 1000000 {
		return fmt.Errorf("%w: max attempts %d out of range [1, 1000000]", ErrInvalid, c.MaxAttempts)
	}
	if c.ScanInterval == 0 {
		c.ScanInterval = min(max(c.LeaseTime/10, 5*time.Millisecond), time.Second)
	}
	if c.ScanInterval < time.Millisecond {
		return fmt.Errorf("%w: scan interval %v below 1ms", ErrInvalid, c.ScanInterval)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Incarnation == 0 {
		c.Incarnation = 1
	}
	if c.IDBase > MaxIDBase || c.LeaseBase > MaxIDBase {
		return fmt.Errorf("%w: id base %d or lease base %d above %d", ErrInvalid, c.IDBase, c.LeaseBase, uint64(MaxIDBase))
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.DedupWindow < time.Second || c.DedupWindow > 7*24*time.Hour {
		return fmt.Errorf("%w: dedup window %v out of range [1s, 168h]", ErrInvalid, c.DedupWindow)
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}

// validateRetry checks the bounds of a retry backoff.
func validateRetry(lo, hi time.Duration) error {
	switch {
	case lo <= 0:
		return fmt.Errorf("%w: retry min %v is not positive", ErrInvalid, lo)
	case lo > MaxRetryDelay:
		return fmt.Errorf("%w: retry min %v is above %v", ErrInvalid, lo, MaxRetryDelay)
	case hi < lo:
		return fmt.Errorf("%w: retry max %v is below retry min %v", ErrInvalid, hi, lo)
	case hi > MaxRetryDelay:
		return fmt.Errorf("%w: retry max %v is above %v", ErrInvalid, hi, MaxRetryDelay)
	}
	return nil
}

// retryOf returns the backoff bounds of queue qc: its own, else the
// master's. A queue that raises only the minimum above the master's
// maximum gets a fixed delay rather than an error: a maximum below the
// minimum cannot be what was meant.
func (c *Config) retryOf(qc QueueConfig) (lo, hi time.Duration) {
	lo, hi = c.RetryMin, c.RetryMax
	if qc.RetryMin != 0 {
		lo = qc.RetryMin
	}
	if qc.RetryMax != 0 {
		hi = qc.RetryMax
	} else {
		hi = max(hi, lo)
	}
	return lo, hi
}

// ValidateName checks a queue name declared by the operator.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty queue name", ErrInvalid)
	case len(name) > 200:
		return fmt.Errorf("%w: queue name longer than 200 bytes", ErrInvalid)
	case strings.HasSuffix(name, DeadSuffix):
		return fmt.Errorf("%w: queue name %q may not end in %q (reserved for dead-letter queues)", ErrInvalid, name, DeadSuffix)
	}
	for _, r := range name {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("%w: queue name %q: only letters, digits, '-', '_' and '.' are allowed", ErrInvalid, name)
		}
	}
	return nil
}

// Broker hosts the named queues and runs the one background loop that
// expires leases and makes delayed items ready.
type Broker struct {
	cfg Config
	log hclog.Logger
	// Events that workers can cause at any rate are logged at a bounded
	// rate (see ratelog): dead-letterings and lease expiries.
	deadLog, expiryLog *ratelog.Log
	queues             map[string]*Queue
	order              []*Queue // by lock order
	// m is the logged state of every queue. Each queue's part of it is
	// guarded by that queue's lock; the map of queues in it is made in New
	// and only read after.
	m *state.Machine
	j Journal // nil: in memory only
	// leaseHW is the highest lease id reserved in the log (see
	// reserveLeases); leaseMu orders its reservations.
	leaseHW atomic.Uint64
	leaseMu sync.Mutex
	// leaseLSN is the LSN of the latest reservation: a delivery waits for
	// it (syncNeed), so no lease id is handed out before its reservation
	// is on disk.
	leaseLSN atomic.Uint64
	// lastLSN is the highest LSN of the records the broker appended, or
	// unloggedLSN once the journal refused one.
	lastLSN atomic.Uint64

	// draining is set once by Drain. It is read on every delivery (Next,
	// Get), so it is an atomic rather than a field under a broker-wide
	// mutex that every queue's hot path would take.
	draining atomic.Bool

	// wakeAt is when the scan loop will next scan (unix nanoseconds), or
	// math.MaxInt64 while it scans: a queue that adds a deadline earlier
	// than wakeAt lowers it and pokes the loop (see wakeBy).
	wakeAt atomic.Int64
	poke   chan struct{} // capacity 1

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// New validates cfg, creates the queues and starts the scan loop.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:       cfg,
		log:       cfg.Logger,
		deadLog:   ratelog.New(cfg.Logger, ratelog.Config{What: "dead-letterings", Level: hclog.Warn}),
		expiryLog: ratelog.New(cfg.Logger, ratelog.Config{What: "lease expiries", Level: hclog.Info}),
		queues:    make(map[string]*Queue),
		poke:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	b.wakeAt.Store(math.MaxInt64)
	b.m = cfg.State
	if b.m == nil {
		b.m = state.New()
	}
	b.j = cfg.Journal
	// Lease ids go on above those a log reserved: no lease id is given
	// twice, across restarts too.
	b.cfg.LeaseBase = max(b.cfg.LeaseBase, b.m.LeaseHW())
	b.leaseHW.Store(b.cfg.LeaseBase)
	if b.j == nil {
		b.leaseHW.Store(math.MaxUint64) // nothing to reserve
	}
	for _, qc := range cfg.Queues {
		lo, hi := cfg.retryOf(qc)
		s := b.m.Declare(qc.Name, "")
		if cfg.State == nil && cfg.IDBase > 0 {
			b.m.Apply(&state.QueueMeta{Queue: qc.Name, NextID: cfg.IDBase})
		}
		q := newQueue(b, qc.Name, s, qc.MaxSize, len(b.order), lo, hi)
		q.ready = newReadyIndex(s, true)
		b.add(q)
		// A dead-letter queue's items retry as its origin's do.
		dname := qc.Name + DeadSuffix
		dq := newQueue(b, dname, b.m.Declare(dname, qc.Name), 0, len(b.order), lo, hi)
		dq.ready = newReadyIndex(dq.s, false)
		dq.origin = q
		q.dead = dq
		b.add(dq)
	}
	for _, name := range b.m.Queues() {
		if _, ok := b.queues[name]; !ok && b.m.Queue(name).Len() > 0 {
			// Not served, its items would be left out of the next
			// snapshot: lost.
			origin := strings.TrimSuffix(name, DeadSuffix)
			return nil, fmt.Errorf("%w: the recovered state holds %d items in queue %q, which is not declared; declare queue %q (-queue) to serve them", ErrInvalid, b.m.Queue(name).Len(), name, origin)
		}
	}
	for _, q := range b.order {
		// Every item of a recovered state is ready, but the retries that
		// wait for their due time.
		q.ready.rebuild(func(it *state.Item) { q.delayed.push(delayed{due: it.Due(), id: it.ID}) })
		q.resetDue()
	}
	if cfg.ManualScan {
		close(b.done)
	} else {
		go b.scanLoop()
	}
	return b, nil
}

// leaseBlock is how many lease ids one reservation covers: a Leases
// record per million deliveries.
const leaseBlock = 1 << 20

// reserveLeases logs that lease ids up to a block above q's next are
// reserved, before q hands that one out: a restarted master starts above
// what a log reserved, so no lease id is ever given twice. Called with
// q.mu held.
func (b *Broker) reserveLeases(q *Queue) {
	b.leaseMu.Lock()
	defer b.leaseMu.Unlock()
	if q.nextLease <= b.leaseHW.Load() {
		return // another queue reserved past it meanwhile
	}
	cmd := state.Leases{HW: q.nextLease + leaseBlock, Time: b.now()}
	b.m.Apply(&cmd)
	b.leaseLSN.Store(q.record(&cmd))
	b.leaseHW.Store(cmd.HW)
}

func (b *Broker) add(q *Queue) {
	b.queues[q.name] = q
	b.order = append(b.order, q)
}

// Queue returns the queue of that name, including "<name>.dead" queues.
func (b *Broker) Queue(name string) (*Queue, error) {
	q, ok := b.queues[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownQueue, name)
	}
	return q, nil
}

// Queues returns every queue in declaration order, each followed by its
// dead-letter queue.
func (b *Broker) Queues() []*Queue {
	return append([]*Queue(nil), b.order...)
}

// LeaseTime is the configured lease length.
func (b *Broker) LeaseTime() time.Duration { return b.cfg.LeaseTime }

// Incarnation names this run of the master (Config.Incarnation).
func (b *Broker) Incarnation() uint64 { return b.cfg.Incarnation }

// MaxAttempts is the configured number of deliveries before dead-lettering.
func (b *Broker) MaxAttempts() int { return b.cfg.MaxAttempts }

// RetryBackoff returns the master's bounds of the retry backoff; a queue
// may have its own (Queue.RetryBackoff).
func (b *Broker) RetryBackoff() (min, max time.Duration) { return b.cfg.RetryMin, b.cfg.RetryMax }

func (b *Broker) now() int64 { return b.cfg.Clock.Now().UnixNano() }

// scanLoop is the single background job: it returns expired leases to
// their queues and makes delayed items ready when they are due. There is no
// timer per item: the loop sleeps until the earliest deadline of all the
// queues (or for ScanInterval at most), and a queue that adds an earlier
// deadline while it sleeps pokes it (see wakeBy). It used to tick every
// ScanInterval, up to a second: far too coarse for retries due within a
// quarter of a second.
func (b *Broker) scanLoop() {
	defer close(b.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		// While it scans, every deadline added pokes: a queue it has
		// already scanned may gain one before it sleeps.
		b.wakeAt.Store(math.MaxInt64)
		now := b.now()
		next := now + int64(b.cfg.ScanInterval)
		for _, q := range b.order {
			if due := q.scan(now); due != 0 && due < next {
				next = due
			}
		}
		b.wakeAt.Store(next)
		wait := time.Duration(next - b.now())
		if wait <= 0 {
			continue
		}
		t.Reset(wait)
		select {
		case <-b.stop:
			return
		case <-b.poke:
		case <-t.C:
		}
	}
}

// wakeBy makes sure the scan loop wakes by due: if it sleeps for later, it
// is poked. Queues call it, under their lock, when they add a deadline that
// may be their earliest; one earlier than another of theirs needs no call,
// since the loop wakes for that one.
func (b *Broker) wakeBy(due int64) {
	for {
		at := b.wakeAt.Load()
		if due >= at {
			return
		}
		if b.wakeAt.CompareAndSwap(at, due) {
			break
		}
	}
	select {
	case b.poke <- struct{}{}:
	default:
	}
}

// ExpireLeases returns every lease whose deadline has passed to its queue
// (or dead-letters it after the last attempt) and reports how many. The scan
// loop does this; tests with ManualScan call it after advancing a manual
// clock.
func (b *Broker) ExpireLeases() int {
	now := b.now()
	n := 0
	for _, q := range b.order {
		n += q.expire(now)
	}
	return n
}

// PromoteDelayed makes every delayed item that is due ready again, at the
// front of its queue, and reports how many. The scan loop does this; tests
// with ManualScan call it after advancing a manual clock.
func (b *Broker) PromoteDelayed() int {
	now := b.now()
	n := 0
	for _, q := range b.order {
		n += q.promote(now)
	}
	return n
}

// Drain starts a shutdown: consumers get no new deliveries, while settles of
// what they hold are still taken. Consumer.Next returns ErrShutdown once its
// consumer holds nothing; Get returns ErrShutdown at once.
func (b *Broker) Drain() {
	b.draining.Store(true)
	for _, q := range b.order {
		q.mu.Lock()
		for c := range q.consumers {
			c.wake()
		}
		q.notEmpty.broadcast() // blocked Gets end
		q.mu.Unlock()
	}
}

func (b *Broker) isDraining() bool { return b.draining.Load() }

// WaitSettled blocks until no queue has leased items, or ctx ends. It
// reports whether everything was settled.
func (b *Broker) WaitSettled(ctx context.Context) bool {
	for {
		var ch <-chan struct{}
		for _, q := range b.order {
			q.mu.Lock()
			if q.nleased > 0 {
				ch = q.noLeases.wait()
			}
			q.mu.Unlock()
			if ch != nil {
				break
			}
		}
		if ch == nil {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// Close stops the scan loop. Safe to call more than once.
func (b *Broker) Close() error {
	b.stopOnce.Do(func() { close(b.stop) })
	<-b.done
	b.deadLog.Close()
	b.expiryLog.Close()
	return nil
}

// lockQueues locks the queues of set, which must be distinct, in lock order
// (it sorts set). Acks with replies touch two queues; a fixed order keeps
// two opposite acks from deadlocking.
func lockQueues(set []*Queue) {
	if len(set) <= 8 {
		// The usual set is a queue and one reply queue: sorted in place
		// here, without the generic sort's calls.
		for i := 1; i < len(set); i++ {
			for j := i; j > 0 && set[j].idx < set[j-1].idx; j-- {
				set[j], set[j-1] = set[j-1], set[j]
			}
		}
	} else {
		slices.SortFunc(set, func(a, b *Queue) int { return cmp.Compare(a.idx, b.idx) })
	}
	for _, q := range set {
		q.mu.Lock()
	}
}

// unlockQueues unlocks what lockQueues locked.
func unlockQueues(set []*Queue) {
	for i := len(set) - 1; i >= 0; i-- {
		set[i].mu.Unlock()
	}
}
