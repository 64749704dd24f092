package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// gatedJournal is a memJournal whose disk syncs only when the test says:
// WaitContext reports the LSN it waits for on waits and blocks until
// release makes it durable.
type gatedJournal struct {
	memJournal
	waits chan uint64

	mu      sync.Mutex
	durable uint64
	moved   chan struct{} // closed when durable moves
}

func newGatedJournal() *gatedJournal {
	return &gatedJournal{waits: make(chan uint64, 16), moved: make(chan struct{})}
}

func (j *gatedJournal) Durable() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.durable
}

func (j *gatedJournal) WaitContext(ctx context.Context, lsn uint64) error {
	j.waits <- lsn
	for {
		j.mu.Lock()
		d, ch := j.durable, j.moved
		j.mu.Unlock()
		if lsn <= d {
			return j.memJournal.WaitContext(ctx, lsn)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release makes every record appended so far durable.
func (j *gatedJournal) release() {
	last := j.LastLSN()
	j.mu.Lock()
	j.durable = last
	close(j.moved)
	j.moved = make(chan struct{})
	j.mu.Unlock()
}

// A delivery is handed out only once the record that made its item, and
// the one that reserved its lease id, are durable: a crash cannot undo an
// item or a result someone has seen, nor give its id to another.
func TestDeliveryWaitsForItsRecord(t *testing.T) {
	j := newGatedJournal()
	b, _ := newTestBroker(t, Config{Queues: []QueueConfig{{Name: "tasks"}, {Name: "results"}}, LeaseTime: time.Minute, Journal: j})
	tasks, results := mustQueue(t, b, "tasks"), mustQueue(t, b, "results")
	ctx := context.Background()

	next := func(c *Consumer) <-chan []Delivery {
		out := make(chan []Delivery, 1)
		go func() {
			ds, err := c.Next(ctx, nil)
			if err != nil {
				t.Errorf("Next: %v", err)
			}
			out <- ds
		}()
		return out
	}
	expectWait := func(what string, got <-chan []Delivery) []Delivery {
		t.Helper()
		if lsn, want := <-j.waits, j.LastLSN(); lsn != want {
			t.Fatalf("%s: waited for LSN %d, want %d (the last record)", what, lsn, want)
		}
		select {
		case ds := <-got:
			t.Fatalf("%s: handed out before its record was durable: %+v", what, ds)
		default:
		}
		j.release()
		return <-got
	}

	// A fresh item waits for its put and for the lease reservation, the
	// record after it.
	mustPut(t, tasks, msgs("1")...)
	c := mustConsumer(t, tasks)
	c.Grant(2)
	ds := expectWait("a task", next(c))
	if len(ds) != 1 || string(ds[0].Payload) != "1" {
		t.Fatalf("got %+v", ds)
	}

	// A reply waits for the record of the ack that made it.
	r := mustConsumer(t, results)
	r.Grant(1)
	got := next(r)
	if ref := c.Ack([]Ack{replyAck(ds[0], results, "one")}); ref != nil {
		t.Fatalf("Ack: %v", ref)
	}
	ds = expectWait("a reply", got)
	if len(ds) != 1 || string(ds[0].Payload) != "one" {
		t.Fatalf("got %+v", ds)
	}

	// An item whose record is durable, as a backlog's are, waits for
	// nothing.
	mustPut(t, tasks, msgs("2")...)
	j.release()
	ds = <-next(c)
	if len(ds) != 1 || string(ds[0].Payload) != "2" {
		t.Fatalf("got %+v", ds)
	}
	select {
	case lsn := <-j.waits:
		t.Fatalf("a delivery of a durable item waited for LSN %d", lsn)
	default:
	}

	// Get hands out under the same rule.
	mustPut(t, tasks, msgs("3")...)
	gets := make(chan []Delivery, 1)
	go func() {
		ds, err := tasks.Get(ctx, 1, false, 0, false)
		if err != nil {
			t.Errorf("Get: %v", err)
		}
		gets <- ds
	}()
	ds = expectWait("Get", gets)
	if len(ds) != 1 || string(ds[0].Payload) != "3" {
		t.Fatalf("got %+v", ds)
	}
}

// A Get with auto-ack waits for its items' records before it settles
// them: a caller that leaves during the wait (or a log that fails) leaves
// the items in the queue, where a settle already made would have lost
// them unseen, and a crash could have kept that settle.
func TestAutoAckGetWaitsBeforeItSettles(t *testing.T) {
	j := newGatedJournal()
	b, _ := newTestBroker(t, Config{Queues: []QueueConfig{{Name: "results"}}, LeaseTime: time.Minute, Journal: j})
	results := mustQueue(t, b, "results")
	mustPut(t, results, msgs("a", "b")...)
	records := j.LastLSN()

	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() {
		ds, err := results.Get(ctx, 2, false, 0, true)
		if err == nil {
			t.Errorf("Get handed out %+v before its record was durable", ds)
		}
		errs <- err
	}()
	if lsn := <-j.waits; lsn != records {
		t.Fatalf("waited for LSN %d, want %d (the put's)", lsn, records)
	}
	cancel()
	if err := <-errs; err != context.Canceled {
		t.Fatalf("Get: %v, want context.Canceled", err)
	}
	if last := j.LastLSN(); last != records {
		t.Fatalf("the log has %d records after the Get, want %d: it settled what it never handed out", last, records)
	}
	if st := results.Stats(); st.Ready != 2 {
		t.Fatalf("after the Get gave up: %+v, want both items ready", st)
	}

	// Once the records are durable, the same Get takes both at once.
	j.release()
	ds, err := results.Get(context.Background(), 2, false, 0, true)
	if err != nil || len(ds) != 2 || string(ds[0].Payload) != "a" || string(ds[1].Payload) != "b" {
		t.Fatalf("Get: %+v, %v", ds, err)
	}
	if st := results.Stats(); st.Ready != 0 || st.Leased != 0 {
		t.Fatalf("after an auto-ack Get: %+v", st)
	}
}

// A change the journal refuses (it closed between the change's admission
// and its append) is applied and not logged: nothing may be answered as
// on disk after it, and its items are not handed out (their ids are on no
// disk, so a restart could give them to other items).
func TestUnloggedChangeIsNeverAnsweredDurable(t *testing.T) {
	j := &memJournal{}
	b, _ := newTestBroker(t, Config{Queues: []QueueConfig{{Name: "tasks"}}, Journal: j})
	tasks := mustQueue(t, b, "tasks")
	ctx := context.Background()
	mustPut(t, tasks, msgs("logged")...)
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	j.mu.Lock()
	j.closed = true // memJournal admits everything: the append is what refuses
	j.mu.Unlock()
	if _, err := tasks.Put(ctx, msgs("unlogged"), false, 0); err != nil {
		t.Fatalf("Put: %v (admitted, so applied)", err)
	}
	if err := b.Sync(ctx); !errors.Is(err, ErrLogClosed) {
		t.Fatalf("Sync after an unlogged put: %v, want ErrLogClosed", err)
	}

	ds, err := tasks.Get(ctx, 1, true, 0, true)
	if err != nil || len(ds) != 1 || string(ds[0].Payload) != "logged" {
		t.Fatalf("Get of the logged item: %+v, %v", ds, err)
	}
	if ds, err := tasks.Get(ctx, 1, true, 0, true); !errors.Is(err, ErrLogClosed) {
		t.Fatalf("Get of the unlogged item: %+v, %v, want ErrLogClosed", ds, err)
	}
}
