package durable_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/distq/distq/internal/clock"
	"github.com/distq/distq/internal/durable"
	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/wal"
)

func restartQueues() queue.Config {
	return queue.Config{
		Queues:      []queue.QueueConfig{{Name: "tasks"}, {Name: "results"}, {Name: "jobs"}},
		MaxAttempts: 3,
	}
}

// gauges are the Stats that a restart keeps (the counters are "since the
// master started").
type gauges struct {
	Ready, Leased, Delayed, Dead int
	Closed                       bool
}

func gaugesOf(b *queue.Broker) map[string]gauges {
	out := map[string]gauges{}
	for _, q := range b.Queues() {
		st := q.Stats()
		out[st.Name] = gauges{st.Ready, st.Leased, st.Delayed, st.Dead, st.Closed}
	}
	return out
}

// A broker on a Store does everything a master does to its queues (puts,
// deliveries to a stream and to unary gets, acks with and without
// replies, nacks for a retry with and without a delay, dead-lettering, a
// release, a requeue, a close, results read with auto-ack, a snapshot
// half-way), stops cleanly (consumers closed, leases released) and starts
// again on the same directory: the new broker's queues hold exactly what
// was unsettled (the logged state and the gauges are equal), delayed items
// keep their due time, every attempt counted is kept, nothing settled
// comes back, and ids go on from where they were.
func TestDurableRestartKeepsWhatIsUnsettled(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	clk := clock.NewManual(t0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	s1 := openStore(t, cfg)
	b1 := newBroker(t, s1, clk, restartQueues())
	tasks, results, jobs := mustQueue(t, b1, "tasks"), mustQueue(t, b1, "results"), mustQueue(t, b1, "jobs")

	payload := map[uint64]string{}
	msgs := make([]queue.Message, 100)
	for i := range msgs {
		msgs[i].Payload = []byte(fmt.Sprintf("task-%d", i))
		if i%7 == 0 {
			msgs[i].Headers = map[string]string{"trace": fmt.Sprint(i)}
		}
	}
	ids, err := tasks.Put(ctx, msgs, false, 0)
	if err != nil || len(ids) != 100 {
		t.Fatalf("put: %d ids, %v", len(ids), err)
	}
	for i, id := range ids {
		payload[id] = string(msgs[i].Payload)
	}
	if _, err := jobs.Put(ctx, []queue.Message{{Payload: []byte("j1")}, {Payload: []byte("j2")}}, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := jobs.Close(); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b1)

	// A stream takes 60.
	c, err := tasks.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	c.Grant(60)
	var ds []queue.Delivery
	for len(ds) < 60 {
		if ds, err = c.Next(ctx, ds); err != nil {
			t.Fatal(err)
		}
	}
	var acks []queue.Ack
	for _, d := range ds[:20] { // acked with a reply
		acks = append(acks, queue.Ack{ID: d.ID, Lease: d.Lease, ReplyQueue: results, Reply: queue.Message{Payload: []byte("reply-" + string(d.Payload))}})
	}
	for _, d := range ds[20:30] { // acked
		acks = append(acks, queue.Ack{ID: d.ID, Lease: d.Lease})
	}
	noRefusals(t, "acks", c.Ack(acks))
	mustSync(t, b1)
	// Half-way, a snapshot: the restart reads it and the log after it.
	if err := s1.Snapshot(b1); err != nil {
		t.Fatalf("snapshot: %v", err)
	}

	var nacks []queue.Nack
	for _, d := range ds[30:35] { // retried in an hour
		nacks = append(nacks, queue.Nack{ID: d.ID, Lease: d.Lease, Error: "later", Delay: time.Hour})
	}
	for _, d := range ds[35:40] { // retried after the backoff
		nacks = append(nacks, queue.Nack{ID: d.ID, Lease: d.Lease, Error: "flaky", Jitter: 0.5})
	}
	for _, d := range ds[40:45] { // dead-lettered
		nacks = append(nacks, queue.Nack{ID: d.ID, Lease: d.Lease, Error: "poison", Action: queue.NackDead})
	}
	for _, d := range ds[45:50] { // handed back: the attempt does not count
		nacks = append(nacks, queue.Nack{ID: d.ID, Lease: d.Lease, Action: queue.NackRelease})
	}
	noRefusals(t, "nacks", c.Nack(nacks))
	// ds[50:60] stay with the stream until it ends.

	// Unary gets lease 5 more, held at shutdown.
	got, err := tasks.Get(ctx, 5, true, 0, false)
	if err != nil || len(got) != 5 {
		t.Fatalf("get: %d, %v", len(got), err)
	}
	// One dead item goes back, its attempts reset.
	requeued := ds[40].ID
	if n, err := tasks.Requeue([]uint64{requeued}); err != nil || n != 1 {
		t.Fatalf("requeue: %d, %v", n, err)
	}
	// A reader takes 5 results with auto-ack: they are settled.
	read, err := results.Get(ctx, 5, true, 0, true)
	if err != nil || len(read) != 5 {
		t.Fatalf("read results: %d, %v", len(read), err)
	}
	mustSync(t, b1)

	// A clean stop: the stream ends, the unary leases are released, both
	// counting the attempt.
	if n := c.Close(); n != 10 {
		t.Fatalf("the stream gave back %d items, want 10", n)
	}
	if n := b1.ReleaseLeases(); n != 5 {
		t.Fatalf("released %d leases, want 5", n)
	}
	wantGauges := map[string]gauges{
		// 100 - 20 replied - 10 acked - 5 dead + 1 requeued; 10 delayed.
		"tasks":      {Ready: 56, Delayed: 10, Dead: 4},
		"tasks.dead": {Ready: 4},
		"results":    {Ready: 15},
		"jobs":       {Ready: 2, Closed: true},
	}
	before := gaugesOf(b1)
	for name, want := range wantGauges {
		if before[name] != want {
			t.Fatalf("%s before the stop: %+v, want %+v", name, before[name], want)
		}
	}
	want := s1.State().Canonical()
	dues := map[uint64]int64{}
	for _, d := range ds[30:40] {
		it := s1.State().Queue("tasks").Item(d.ID)
		if it == nil || it.Due() <= clk.Now().UnixNano() {
			t.Fatalf("nacked item %d: %+v, want it delayed", d.ID, it)
		}
		dues[d.ID] = it.Due()
	}
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("store close: %v", err)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("store closed twice: %v", err)
	}

	// The restart.
	s2 := openStore(t, cfg)
	if rec := s2.Recovery(); rec.Snapshot == nil || rec.Records == 0 || rec.Torn != nil {
		t.Fatalf("recovery %+v: want a snapshot, records after it and no torn tail", rec)
	}
	if got := s2.State().Canonical(); got != want {
		t.Fatalf("state after the restart differs:\n%s\nwant\n%s", got, want)
	}
	b2 := newBroker(t, s2, clk, restartQueues())
	after := gaugesOf(b2)
	for _, q := range b2.Queues() {
		if after[q.Name()] != before[q.Name()] {
			t.Errorf("%s after the restart: %+v, before %+v", q.Name(), after[q.Name()], before[q.Name()])
		}
	}
	tasks2, results2 := mustQueue(t, b2, "tasks"), mustQueue(t, b2, "results")

	// Results: the 15 not read, each its task's reply.
	rs, err := results2.Get(ctx, 100, true, 0, true)
	if err != nil || len(rs) != 15 {
		t.Fatalf("results after the restart: %d, %v", len(rs), err)
	}
	for _, r := range rs {
		if string(r.Payload) != "reply-"+payload[r.ReplyTo] {
			t.Fatalf("result %d for task %d: %q", r.ID, r.ReplyTo, r.Payload)
		}
	}

	// Every ready task comes with its attempt: the stream's and the gets'
	// count one failed delivery, the released and never delivered none,
	// the requeued none (reset).
	attempt := map[uint64]uint32{}
	for _, d := range ds[50:60] {
		attempt[d.ID] = 2
	}
	for _, d := range got {
		attempt[d.ID] = 2
	}
	ready, err := tasks2.Get(ctx, 1000, true, 0, false)
	if err != nil || len(ready) != 56 {
		t.Fatalf("ready after the restart: %d, %v", len(ready), err)
	}
	var lastLease uint64
	for _, d := range append(ds, got...) {
		lastLease = max(lastLease, d.Lease)
	}
	settled := map[uint64]bool{}
	for _, d := range ds[:30] {
		settled[d.ID] = true
	}
	for _, d := range ready {
		if settled[d.ID] {
			t.Fatalf("task %d was acked and came back", d.ID)
		}
		if _, ok := dues[d.ID]; ok {
			t.Fatalf("task %d is delayed and was handed out", d.ID)
		}
		if string(d.Payload) != payload[d.ID] {
			t.Fatalf("task %d: %q, want %q", d.ID, d.Payload, payload[d.ID])
		}
		want := attempt[d.ID]
		if want == 0 {
			want = 1
		}
		if d.Attempt != want {
			t.Fatalf("task %d delivered as attempt %d, want %d", d.ID, d.Attempt, want)
		}
		if (d.ID-1)%7 == 0 && d.Headers["trace"] != fmt.Sprint(d.ID-1) {
			t.Fatalf("task %d lost its headers: %v", d.ID, d.Headers)
		}
		if d.Lease <= lastLease {
			t.Fatalf("task %d leased as %d after the restart, not above %d: lease ids repeat", d.ID, d.Lease, lastLease)
		}
	}
	// The delayed keep their due time: not ready a moment before it.
	var last int64
	for id, due := range dues {
		if it := s2.State().Queue("tasks").Item(id); it == nil || it.Due() != due {
			t.Fatalf("delayed task %d: %+v, want due %d", id, it, due)
		}
		last = max(last, due)
	}
	clk.Advance(time.Duration(last-clk.Now().UnixNano()) - time.Millisecond)
	if n := b2.PromoteDelayed(); n != 5 {
		t.Fatalf("%d delayed tasks ready before their due time, want the 5 of the backoff", n)
	}
	clk.Advance(time.Millisecond)
	if n := b2.PromoteDelayed(); n != 5 {
		t.Fatalf("%d delayed tasks ready at their due time, want 5", n)
	}
	retried, err := tasks2.Get(ctx, 100, true, 0, false)
	if err != nil || len(retried) != 10 {
		t.Fatalf("retried: %d, %v", len(retried), err)
	}
	for _, d := range retried {
		if d.Attempt != 2 || d.Error == "" {
			t.Fatalf("retried task %d: attempt %d, error %q; want attempt 2 and its error", d.ID, d.Attempt, d.Error)
		}
	}
	dead, err := mustQueue(t, b2, "tasks.dead").Get(ctx, 100, true, 0, false)
	if err != nil || len(dead) != 4 {
		t.Fatalf("dead: %d, %v", len(dead), err)
	}
	for _, d := range dead {
		if d.Error != "poison" || d.ID == requeued {
			t.Fatalf("dead task %d: %q", d.ID, d.Error)
		}
	}
	// Ids go on after the restart.
	if ids, err := tasks2.Put(ctx, []queue.Message{{Payload: []byte("new")}}, false, 0); err != nil || ids[0] != 101 {
		t.Fatalf("put after the restart: %v, %v; want id 101", ids, err)
	}

	// Everything settled, a third start finds nothing but the closed jobs.
	var all []queue.Ack
	for _, list := range [][]queue.Delivery{ready, retried} {
		for _, d := range list {
			all = append(all, queue.Ack{ID: d.ID, Lease: d.Lease})
		}
	}
	noRefusals(t, "acks after the restart", tasks2.Ack(all))
	var deadAcks []queue.Ack
	for _, d := range dead {
		deadAcks = append(deadAcks, queue.Ack{ID: d.ID, Lease: d.Lease})
	}
	noRefusals(t, "dead acks", mustQueue(t, b2, "tasks.dead").Ack(deadAcks))
	if _, err := tasks2.Get(ctx, 10, true, 0, true); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b2)
	b2.Close()
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := openStore(t, cfg)
	for _, name := range s3.State().Queues() {
		q := s3.State().Queue(name)
		if n := q.Len(); (name == "jobs") != (n == 2) || (name != "jobs" && n != 0) {
			t.Fatalf("queue %s holds %d items after everything was settled", name, n)
		}
	}
	if !s3.State().Queue("jobs").Closed() {
		t.Fatal("jobs is no longer closed")
	}
}

// A second Open of a data directory in use fails, naming the holder; once
// the first is closed it works.
func TestDurableLockNamesTheHolder(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.LockInfo = "listening on 127.0.0.1:4000"
	s1 := openStore(t, cfg)
	_, err := durable.Open(cfg)
	var le *wal.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("second open: %v, want a *wal.LockedError", err)
	}
	host, _ := os.Hostname()
	for _, want := range []string{
		"data dir " + dir + " is in use by another master",
		fmt.Sprintf("pid %d on host %s", os.Getpid(), host),
		"listening on 127.0.0.1:4000",
		"stop it or choose another -data-dir",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("lock message %q does not say %q", err, want)
		}
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, cfg)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}
