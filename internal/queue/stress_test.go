package queue

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestStressConcurrent runs producers, stream consumers, a Get-based worker
// and a result reader at once on the real clock with a short lease and short
// retries, so that leases expire, settles arrive late, retries wait out their
// backoff, consumers vanish with work in hand and puts block on a bounded
// queue. Every task must end up with exactly one
// reply in "results".
func TestStressConcurrent(t *testing.T) {
	const (
		producers   = 4
		consumers   = 6
		perProducer = 5000
		total       = producers * perProducer
	)
	b, err := New(Config{
		Queues:    []QueueConfig{{Name: "tasks", MaxSize: 64}, {Name: "results"}},
		LeaseTime: 20 * time.Millisecond,
		// The scan loop wakes only for deadlines (leases, retries): a
		// missed wake-up would hold items back and time the test out.
		ScanInterval: time.Hour,
		RetryMin:     time.Millisecond,
		RetryMax:     4 * time.Millisecond,
		MaxAttempts:  1000000, // nothing may be dead-lettered here
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tasks, results := mustQueue(t, b, "tasks"), mustQueue(t, b, "results")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var producing sync.WaitGroup
	for p := range producers {
		producing.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for sent := 0; sent < perProducer; {
				n := min(1+rng.IntN(8), perProducer-sent)
				ids, err := tasks.Put(ctx, numbered(n), false, 0)
				if err != nil || len(ids) != n {
					t.Errorf("producer %d: Put: %v, %v", p, ids, err)
					return
				}
				sent += n
			}
		})
	}

	reply := func(d Delivery) Ack {
		return Ack{ID: d.ID, Lease: d.Lease, ReplyQueue: results, Reply: Message{Payload: strconv.AppendUint(nil, d.ID, 10)}}
	}

	var consuming sync.WaitGroup
	for w := range consumers {
		consuming.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			c, err := tasks.NewConsumer()
			if err != nil {
				t.Error(err)
				return
			}
			c.Grant(8)
			delivered, granted := 0, 8
			var later []Delivery // settled one round late, perhaps after expiry
			var forgotten []Delivery
			buf := make([]Delivery, 0, 16)
			for {
				buf, err = c.Next(ctx, buf[:0])
				if errors.Is(err, ErrClosed) {
					if r := c.Ack(ackAll(forgotten, reply)); len(r) != len(forgotten) {
						t.Errorf("consumer %d: %d late acks taken", w, len(forgotten)-len(r))
					}
					c.Close()
					return
				}
				if err != nil {
					t.Errorf("consumer %d: Next: %v", w, err)
					return
				}
				if len(later) > 0 {
					c.Ack(ackAll(later, reply)) // some refused: that is fine
					later = later[:0]
				}
				for _, d := range buf {
					switch x := rng.IntN(100); {
					case x < 80:
						c.Ack([]Ack{reply(d)})
					case x < 85:
						// Back after its backoff, from the scan loop.
						c.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Error: "try again", Jitter: rng.Float64()}})
					case x < 90:
						c.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Action: NackRelease}})
					case x < 93:
						c.Extend([]Extend{{ID: d.ID, Lease: d.Lease, Duration: time.Second}})
						c.Ack([]Ack{reply(d)})
					case x < 97:
						later = append(later, d)
					default:
						// Forgotten, as by a worker that hangs: the lease
						// expires and the item is redone elsewhere. The ack
						// comes at the very end and must be refused.
						forgotten = append(forgotten, d)
					}
				}
				if delivered += len(buf); delivered > granted {
					t.Errorf("consumer %d: %d deliveries for %d credit", w, delivered, granted)
				}
				if rng.IntN(100) == 0 {
					// The stream breaks: everything held goes back, late
					// settles of it are refused.
					c.Close()
					c.Ack(ackAll(later, reply))
					later = later[:0]
					if c, err = tasks.NewConsumer(); err != nil {
						t.Error(err)
						return
					}
					c.Grant(8)
					delivered, granted = 0, 8
					continue
				}
				c.Grant(len(buf))
				granted += len(buf)
			}
		})
	}
	// One worker uses Get and settles through the queue.
	consuming.Go(func() {
		for {
			ds, err := tasks.Get(ctx, 4, false, 0, false)
			if errors.Is(err, ErrClosed) {
				return
			}
			if err != nil {
				t.Errorf("Get: %v", err)
				return
			}
			tasks.Ack(ackAll(ds, reply))
		}
	})

	// The reader takes the replies.
	got := make(map[uint64]int, total)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for n := 0; n < total; {
			ds, err := results.Get(ctx, 64, false, 0, true)
			if err != nil {
				t.Errorf("results Get after %d replies: %v", n, err)
				return
			}
			for _, d := range ds {
				if id, err := strconv.ParseUint(string(d.Payload), 10, 64); err != nil || id != d.ReplyTo {
					t.Errorf("reply %q for %d", d.Payload, d.ReplyTo)
				}
				got[d.ReplyTo]++
				n++
			}
		}
	}()

	producing.Wait()
	tasks.Close()
	consuming.Wait()
	<-readerDone
	if t.Failed() {
		t.Fatalf("tasks %+v\nresults %+v", tasks.Stats(), results.Stats())
	}
	for id := uint64(1); id <= total; id++ {
		if got[id] != 1 {
			t.Fatalf("task %d has %d replies", id, got[id])
		}
	}
	if len(got) != total {
		t.Fatalf("%d distinct replies, want %d", len(got), total)
	}
	st, rst := tasks.Stats(), results.Stats()
	if st.ExpiredTotal == 0 || st.RefusedTotal == 0 {
		t.Errorf("no lease expired or no settle refused: %+v", st)
	}
	if st.PutTotal != total || st.AckedTotal != total || st.Ready != 0 || st.Leased != 0 || st.Delayed != 0 || st.Dead != 0 || rst.PutTotal != total || rst.Ready != 0 {
		t.Fatalf("tasks %+v\nresults %+v", st, rst)
	}
	if !tasks.Join(ctx, 0) {
		t.Fatal("Join")
	}
	mustCheck(t, tasks, results)
	t.Logf("tasks %+v", st)
}

func ackAll(ds []Delivery, f func(Delivery) Ack) []Ack {
	out := make([]Ack, len(ds))
	for i, d := range ds {
		out[i] = f(d)
	}
	return out
}
