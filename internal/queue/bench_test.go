package queue

import (
	"context"
	"testing"
	"time"

	"github.com/distq/distq/internal/clock"
)

// Each benchmark runs at three queue sizes: that many ready items are put
// before the timer starts, and every operation leaves the size as it found
// it (extra items are taken away with the timer stopped). The cost per
// operation should not grow with the size beyond the O(log n) of the lease
// heap.

var benchSizes = []struct {
	name string
	n    int
}{{"size=1", 1}, {"size=1k", 1000}, {"size=1M", 1000000}}

var benchPayload = []byte("payload of a typical small task")

type benchFixture struct {
	b      *Broker
	clk    *clock.Manual
	q, res *Queue
	one    []Message
}

func newBenchFixture(b *testing.B, cfg Config, ready int) *benchFixture {
	b.Helper()
	clk := clock.NewManual(t0)
	cfg.Clock = clk
	cfg.ManualScan = true // only the benchmark expires leases
	if cfg.Queues == nil {
		cfg.Queues = DefaultQueues()
	}
	br, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	f := &benchFixture{b: br, clk: clk, q: mustQueue(b, br, "tasks"), res: mustQueue(b, br, "results"),
		one: []Message{{Payload: benchPayload}}}
	f.fill(b, f.q, ready)
	return f
}

func (f *benchFixture) fill(b *testing.B, q *Queue, n int) {
	batch := make([]Message, 4096)
	for i := range batch {
		batch[i] = Message{Payload: benchPayload}
	}
	for n > 0 {
		k := min(n, len(batch))
		if _, err := q.Put(context.Background(), batch[:k], true, 0); err != nil {
			b.Fatal(err)
		}
		n -= k
	}
}

// trim takes away, with the timer stopped, what the last 1024 operations
// added to q, so that its size stays put.
func trim(b *testing.B, q *Queue, i, size int) {
	if i%1024 != 0 {
		return
	}
	b.StopTimer()
	for extra := q.Stats().Ready - size; extra > 0; extra -= 4096 {
		q.Get(context.Background(), min(extra, 4096), true, 0, true)
	}
	b.StartTimer()
}

// BenchmarkPut: one Put of one item.
func BenchmarkPut(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			f := newBenchFixture(b, Config{}, sz.n)
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := f.q.Put(ctx, f.one, true, 0); err != nil {
					b.Fatal(err)
				}
				trim(b, f.q, i+1, sz.n)
			}
		})
	}
}

// BenchmarkCycle: the recipe's round trip on a stream: put a task, grant
// one credit, deliver it, ack it with a reply into "results".
func BenchmarkCycle(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			f := newBenchFixture(b, Config{}, sz.n)
			c, err := f.q.NewConsumer()
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			buf := make([]Delivery, 0, 1)
			acks := make([]Ack, 1)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := f.q.Put(ctx, f.one, true, 0); err != nil {
					b.Fatal(err)
				}
				c.Grant(1)
				buf, err = c.Next(ctx, buf[:0])
				if err != nil || len(buf) != 1 {
					b.Fatalf("Next: %v, %v", buf, err)
				}
				d := buf[0]
				acks[0] = Ack{ID: d.ID, Lease: d.Lease, ReplyQueue: f.res, Reply: Message{Payload: benchPayload}}
				if r := c.Ack(acks); r != nil {
					b.Fatal(r)
				}
				trim(b, f.res, i+1, 0)
			}
		})
	}
}

// BenchmarkExpire: lease one item, let the clock pass its deadline and
// expire it back to the front of the queue. Besides the ready items, as
// many other leases are in flight (due much later), so the lease heap
// holds size+1 entries.
func BenchmarkExpire(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			f := newBenchFixture(b, Config{LeaseTime: time.Millisecond, MaxAttempts: 1000000}, sz.n)
			// The other leases: put, leased and pushed a day out.
			f.fill(b, f.q, sz.n)
			for left := sz.n; left > 0; {
				ds, err := f.q.Get(context.Background(), min(left, 4096), true, 0, false)
				if err != nil || len(ds) == 0 {
					b.Fatalf("Get: %d, %v", len(ds), err)
				}
				ext := make([]Extend, len(ds))
				for i, d := range ds {
					ext[i] = Extend{ID: d.ID, Lease: d.Lease, Duration: 24 * time.Hour}
				}
				if r := f.q.Extend(ext); r != nil {
					b.Fatal(r)
				}
				left -= len(ds)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				got, err := f.q.Get(ctx, 1, true, 0, false)
				if len(got) == 0 {
					b.StopTimer() // after a million attempts the item is dead
					f.q.Requeue(nil)
					b.StartTimer()
					got, err = f.q.Get(ctx, 1, true, 0, false)
				}
				if err != nil || len(got) != 1 {
					b.Fatalf("Get: %v, %v", got, err)
				}
				f.clk.Advance(time.Millisecond)
				if n := f.b.ExpireLeases(); n != 1 {
					b.Fatalf("ExpireLeases = %d", n)
				}
			}
		})
	}
}

// BenchmarkNack: deliver the front item on a stream and nack it for a
// retry, which delays it; the clock moves past its backoff and it is made
// ready again, at the front.
func BenchmarkNack(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			f := newBenchFixture(b, Config{MaxAttempts: 1000000}, sz.n)
			c, err := f.q.NewConsumer()
			if err != nil {
				b.Fatal(err)
			}
			ctx := cancelled() // Next must not block when the item died
			buf := make([]Delivery, 0, 1)
			nacks := make([]Nack, 1)
			b.ReportAllocs()
			for b.Loop() {
				c.Grant(1)
				buf, err = c.Next(ctx, buf[:0])
				if err != nil || len(buf) != 1 {
					b.StopTimer() // after a million attempts the item is dead
					f.q.Requeue(nil)
					b.StartTimer()
					buf, err = c.Next(ctx, buf[:0])
				}
				if err != nil || len(buf) != 1 {
					b.Fatalf("Next: %v, %v", buf, err)
				}
				nacks[0] = Nack{ID: buf[0].ID, Lease: buf[0].Lease, Error: "retry"}
				if r := c.Nack(nacks); r != nil {
					b.Fatal(r)
				}
				f.clk.Advance(DefaultRetryMax)
				f.b.PromoteDelayed() // none when it died
			}
		})
	}
}
