// Package queue is the master's core: named in-memory queues whose items are
// leased to consumers until settled, with bounded puts, credit-based delivery,
// lease expiry, retries, dead-letter queues and join. It knows nothing of the
// network; the gRPC edge (internal/server) maps its errors to status codes.
package queue

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/distq/distq/internal/clock"
)

// DeadSuffix is appended to a queue's name to name its dead-letter queue.
const DeadSuffix = ".dead"

// Defaults for Config fields left zero.
const (
	DefaultLeaseTime   = 30 * time.Second
	DefaultMaxAttempts = 5
)

// QueueConfig declares one named queue.
type QueueConfig struct {
	Name string
	// MaxSize bounds the number of ready items; 0 means unbounded.
	MaxSize int
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
	// ScanInterval is how often expired leases are looked for. Default: a
	// tenth of LeaseTime, between 5 ms and 1 s. The scan runs on a real
	// ticker even with a clock.Manual: tests that expire leases by calling
	// ExpireLeases themselves set a long ScanInterval.
	ScanInterval time.Duration
	// Clock tells the time. Default: the system clock.
	Clock clock.Clock
	// IDBase and LeaseBase name this incarnation of the queues: item ids
	// count up from IDBase+1 and lease ids from LeaseBase+1, in every
	// queue. A master draws both at random at every start (up to
	// MaxIDBase), so that a settle naming a lease of an earlier
	// incarnation, a late ack from before a restart, is refused rather than
	// taken for a lease of this one: with ids counted from 1 each time, an
	// old holder's ack of item 1, lease 1 settled a different item. Default
	// 0 (ids from 1).
	IDBase, LeaseBase uint64
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
	if c.IDBase > MaxIDBase || c.LeaseBase > MaxIDBase {
		return fmt.Errorf("%w: id base %d or lease base %d above %d", ErrInvalid, c.IDBase, c.LeaseBase, uint64(MaxIDBase))
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
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
// expires leases.
type Broker struct {
	cfg    Config
	log    hclog.Logger
	queues map[string]*Queue
	order  []*Queue // by lock order

	mu       sync.Mutex
	draining bool

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// New validates cfg, creates the queues and starts the lease scan loop.
func New(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:    cfg,
		log:    cfg.Logger,
		queues: make(map[string]*Queue),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	for _, qc := range cfg.Queues {
		q := newQueue(b, qc.Name, qc.MaxSize, len(b.order))
		b.add(q)
		dq := newQueue(b, qc.Name+DeadSuffix, 0, len(b.order))
		dq.origin = q
		q.dead = dq
		b.add(dq)
	}
	go b.scanLoop()
	return b, nil
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

// MaxAttempts is the configured number of deliveries before dead-lettering.
func (b *Broker) MaxAttempts() int { return b.cfg.MaxAttempts }

func (b *Broker) now() int64 { return b.cfg.Clock.Now().UnixNano() }

// scanLoop is the single background job: it returns expired leases to
// their queues. There is no timer per item.
func (b *Broker) scanLoop() {
	defer close(b.done)
	t := time.NewTicker(b.cfg.ScanInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.ExpireLeases()
		}
	}
}

// ExpireLeases returns every lease whose deadline has passed to its queue
// (or dead-letters it after the last attempt) and reports how many. The scan
// loop calls it; tests call it after advancing a manual clock.
func (b *Broker) ExpireLeases() int {
	now := b.now()
	n := 0
	for _, q := range b.order {
		n += q.expire(now)
	}
	return n
}

// Drain starts a shutdown: consumers get no new deliveries, while settles of
// what they hold are still taken. Consumer.Next returns ErrShutdown once its
// consumer holds nothing; Get returns ErrShutdown at once.
func (b *Broker) Drain() {
	b.mu.Lock()
	b.draining = true
	b.mu.Unlock()
	for _, q := range b.order {
		q.mu.Lock()
		for c := range q.consumers {
			c.wake()
		}
		q.notEmpty.broadcast() // blocked Gets end
		q.mu.Unlock()
	}
}

func (b *Broker) isDraining() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.draining
}

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
	return nil
}

// lockQueues locks the queues of set, which must be distinct, in lock order
// (it sorts set). Acks with replies touch two queues; a fixed order keeps
// two opposite acks from deadlocking.
func lockQueues(set []*Queue) {
	slices.SortFunc(set, func(a, b *Queue) int { return cmp.Compare(a.idx, b.idx) })
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
