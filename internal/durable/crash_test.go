package durable_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/state"
	"github.com/distq/distq/internal/wal/waltest"
)

// A power loss at a random moment, while a producer puts and waits for
// its puts to be durable, a stream acks with replies (and nacks some for a
// quick retry), a reader takes results with auto-ack and waits, and
// snapshots are written: the crash image reopens, and
//   - every put whose Sync returned before the crash is there, or settled
//     with its reply in results, or that reply was read;
//   - nothing whose settle was synced comes back (a task acked, a result
//     read), and a task is never both there and replied;
//   - every item there was put, with its payload, and every result is its
//     task's reply, once.
func TestDurableCrashKeepsEverySyncedPut(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 4
	}
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { crashOnce(t, uint64(seed)) })
	}
}

// crashRun is what the workers of one run did, as far as they know.
type crashRun struct {
	mu        sync.Mutex
	put       map[uint64]string // every id a put returned, its payload
	answered  map[uint64]bool   // ids whose put's Sync returned nil
	acked     map[uint64]bool   // tasks acked with a reply
	ackSynced map[uint64]bool   // of which the Sync after the ack returned
	read      map[uint64]string // results read (by their task's id), their payload
	readSync  map[uint64]bool   // of which the Sync after the read returned
}

func reply(p string) string { return "r-" + p }

func crashOnce(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b9))
	dir := t.TempDir()
	fsys := waltest.New(dir)
	fsys.SetSkipSync(true) // the image is computed; the disk's syncs only cost time
	cfg := testConfig(t, dir)
	cfg.FS = fsys
	cfg.SnapshotEvery = 1 << 40 // the test snapshots itself
	s := openStore(t, cfg)
	b := newBroker(t, s, nil, queue.Config{RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond, MaxAttempts: 1000})
	tasks, results := mustQueue(t, b, "tasks"), mustQueue(t, b, "results")

	r := &crashRun{put: map[uint64]string{}, answered: map[uint64]bool{}, acked: map[uint64]bool{},
		ackSynced: map[uint64]bool{}, read: map[uint64]string{}, readSync: map[uint64]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		wg      sync.WaitGroup
		batches atomic.Int64
		target  = int64(20 + rng.IntN(300))
		reached = make(chan struct{})
		once    sync.Once
		snap    = make(chan struct{}, 1)
	)
	run := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	run(func() { // the producer
		prng := rand.New(rand.NewPCG(seed, 1))
		for seq := 0; ctx.Err() == nil; {
			msgs := make([]queue.Message, 1+prng.IntN(30))
			for i := range msgs {
				msgs[i].Payload = []byte(fmt.Sprintf("p%d", seq))
				seq++
			}
			ids, err := tasks.Put(ctx, msgs, false, 0)
			r.mu.Lock()
			for i, id := range ids {
				r.put[id] = string(msgs[i].Payload)
			}
			r.mu.Unlock()
			if err != nil {
				return
			}
			if err := b.Sync(ctx); err != nil {
				return
			}
			r.mu.Lock()
			for _, id := range ids {
				r.answered[id] = true
			}
			r.mu.Unlock()
			n := batches.Add(1)
			if n%16 == 0 {
				select {
				case snap <- struct{}{}:
				default:
				}
			}
			if n >= target {
				once.Do(func() { close(reached) })
			}
		}
	})
	run(func() { // a stream: acks with replies, a few nacks for a retry
		crng := rand.New(rand.NewPCG(seed, 2))
		c, err := tasks.NewConsumer()
		if err != nil {
			return
		}
		defer c.Close()
		c.Grant(64)
		var buf []queue.Delivery
		for {
			ds, err := c.Next(ctx, buf[:0])
			if err != nil {
				return
			}
			buf = ds
			var acks []queue.Ack
			var nacks []queue.Nack
			for _, d := range ds {
				if crng.IntN(10) == 0 {
					nacks = append(nacks, queue.Nack{ID: d.ID, Lease: d.Lease, Error: "again"})
					continue
				}
				acks = append(acks, queue.Ack{ID: d.ID, Lease: d.Lease, ReplyQueue: results,
					Reply: queue.Message{Payload: []byte(reply(string(d.Payload)))}})
			}
			c.Nack(nacks)
			refused := c.Ack(acks)
			if len(refused) > 0 {
				return // the log refuses: it crashed
			}
			r.mu.Lock()
			for _, a := range acks {
				r.acked[a.ID] = true
			}
			r.mu.Unlock()
			c.Grant(len(ds))
			if crng.IntN(3) == 0 {
				if err := b.Sync(ctx); err != nil {
					return
				}
				r.mu.Lock()
				for _, a := range acks {
					r.ackSynced[a.ID] = true
				}
				r.mu.Unlock()
			}
		}
	})
	run(func() { // the reader of results
		rrng := rand.New(rand.NewPCG(seed, 4))
		for ctx.Err() == nil {
			rs, err := results.Get(ctx, 1+rrng.IntN(40), false, 0, true)
			if err != nil {
				return
			}
			r.mu.Lock()
			for _, d := range rs {
				r.read[d.ReplyTo] = string(d.Payload)
			}
			r.mu.Unlock()
			if err := b.Sync(ctx); err != nil {
				return
			}
			r.mu.Lock()
			for _, d := range rs {
				r.readSync[d.ReplyTo] = true
			}
			r.mu.Unlock()
		}
	})
	run(func() { // snapshots now and then
		for {
			select {
			case <-ctx.Done():
				return
			case <-snap:
			}
			if err := s.Snapshot(b); err != nil {
				return
			}
		}
	})

	select {
	case <-reached:
	case <-time.After(2 * time.Minute):
		t.Fatal("the workers never reached their target")
	}
	img := fsys.Crash(rand.New(rand.NewPCG(seed, 3)))
	cancel()
	b.Drain()
	// The log cannot write any more: Close says what it left, and ends
	// every wait for it (a snapshot's too).
	closeErr := s.Close()
	wg.Wait()
	b.Close()
	t.Logf("seed %d: crash after %d put batches; %d ids put, %d answered, %d acked, %d results read; close: %v",
		seed, batches.Load(), len(r.put), len(r.answered), len(r.acked), len(r.read), closeErr)
	if err := img.Restore(); err != nil {
		t.Fatal(err)
	}

	cfg2 := testConfig(t, dir)
	s2 := openStore(t, cfg2)
	s2.LogRecovery()
	m := s2.State()
	tq, rq := m.Queue("tasks"), m.Queue("results")
	replies := map[uint64]string{}
	if rq != nil {
		rq.Ascend(func(it *state.Item) bool {
			if _, dup := replies[it.ReplyTo]; dup {
				t.Errorf("two results for task %d", it.ReplyTo)
			}
			replies[it.ReplyTo] = string(it.Payload)
			return true
		})
	}
	inTasks := map[uint64]string{}
	if tq != nil {
		tq.Ascend(func(it *state.Item) bool {
			inTasks[it.ID] = string(it.Payload)
			return true
		})
	}
	for id, p := range inTasks {
		if want, ok := r.put[id]; !ok || p != want {
			t.Errorf("task %d: %q, put as %q (%v)", id, p, want, ok)
		}
		if r.ackSynced[id] {
			t.Errorf("task %d was acked and synced, and came back", id)
		}
		if _, ok := replies[id]; ok {
			t.Errorf("task %d is both there and replied to", id)
		}
	}
	for id, p := range replies {
		if want, ok := r.put[id]; !ok || p != reply(want) {
			t.Errorf("result for task %d: %q, task put as %q (%v)", id, p, want, ok)
		}
		if r.readSync[id] {
			t.Errorf("the result for task %d was read and synced, and came back", id)
		}
	}
	lost := 0
	for id := range r.answered {
		if _, ok := inTasks[id]; ok {
			continue
		}
		if _, ok := replies[id]; ok {
			continue
		}
		if p, ok := r.read[id]; ok && p == reply(r.put[id]) {
			continue
		}
		if lost++; lost <= 5 {
			t.Errorf("task %d (%q) was answered and is lost: not there, not replied, its result not read", id, r.put[id])
		}
	}
	if lost > 0 {
		t.Fatalf("%d answered puts lost", lost)
	}
	// The state is one a broker starts from.
	b2 := newBroker(t, s2, nil, queue.Config{})
	if st := mustQueue(t, b2, "tasks").Stats(); st.Ready+st.Delayed != len(inTasks) {
		t.Fatalf("tasks after the crash: %+v, want %d items", st, len(inTasks))
	}
	b2.Close()
	if err := s2.Close(); err != nil && !errors.Is(err, queue.ErrLogClosed) {
		t.Fatal(err)
	}
}
