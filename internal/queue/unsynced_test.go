package queue

import (
	"context"
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
