package queue

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// restartBroker starts a broker on the same clock and journal from what a
// restart reads: snap (may be nil) and the log's first cut records. It
// checks that the rebuilt state is the one logged (want, a Canonical) and
// that nothing is leased.
func restartBroker(t *testing.T, cfg Config, j *memJournal, cut uint64, snap *memSnapshot, want string) *Broker {
	t.Helper()
	log, err := j.crash(cut)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rebuild(snap, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg.State, cfg.Journal = m, j
	b, _ := newTestBroker(t, cfg)
	if got := b.m.Canonical(); got != want {
		t.Fatalf("rebuilt state differs from the logged one at %s\ngot:\n%s\nwant:\n%s", firstDiff(got, want), got, want)
	}
	if err := checkNoLeases(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRestartKeepsLoggedState walks one queue through every logged change,
// stops the master by a crash and restarts it from its log (and from a
// snapshot plus the log): it comes back with the same state, delayed items
// still delayed until their due time, dead items dead, a closed queue
// closed, the attempts of a delivery in flight as they were logged (not at
// all), and item and lease ids going on above the old ones. A clean stop
// after that logs the attempt of a lease it releases.
func TestRestartKeepsLoggedState(t *testing.T) {
	ctx := context.Background()
	j := &memJournal{}
	cfg := Config{
		Queues:      []QueueConfig{{Name: "tasks"}, {Name: "results"}, {Name: "other"}},
		LeaseTime:   time.Minute,
		MaxAttempts: 2,
		RetryMin:    time.Second,
		Journal:     j,
	}
	b, clk := newTestBroker(t, cfg)
	cfg.Clock = clk
	tasks, results, other := mustQueue(t, b, "tasks"), mustQueue(t, b, "results"), mustQueue(t, b, "other")

	ids := mustPut(t, tasks, msgs("ack", "retry", "die", "requeue", "inflight")...) // ids 1..5
	mustPut(t, other, msgs("left")...)
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	c := mustConsumer(t, tasks)
	c.Grant(5)
	ds := mustNext(t, c, 5)
	// An ack with a reply: settled, its result kept.
	if r := c.Ack([]Ack{replyAck(ds[0], results, "result")}); r != nil {
		t.Fatalf("Ack: %v", r)
	}
	// Dead after its second attempt (MaxAttempts 2).
	if r := c.Nack([]Nack{{ID: ds[2].ID, Lease: ds[2].Lease, Error: "once"}}); r != nil {
		t.Fatalf("Nack: %v", r)
	}
	promoteAll(t, b, clk)
	d := mustGet(t, tasks, 1, false)
	if len(d) != 1 || d[0].ID != ids[2] || d[0].Attempt != 2 {
		t.Fatalf("second delivery of the dying item: %+v", d)
	}
	if r := tasks.Nack([]Nack{{ID: d[0].ID, Lease: d[0].Lease, Error: "twice"}}); r != nil {
		t.Fatalf("Nack: %v", r)
	}
	// Dead-lettered at once, then requeued, then leased by a Get.
	if r := c.Nack([]Nack{{ID: ds[3].ID, Lease: ds[3].Lease, Error: "bad", Action: NackDead}}); r != nil {
		t.Fatalf("Nack: %v", r)
	}
	if n, err := tasks.Requeue([]uint64{ids[3]}); err != nil || n != 1 {
		t.Fatalf("Requeue: %d, %v", n, err)
	}
	requeued := mustGet(t, tasks, 1, false)
	if len(requeued) != 1 || requeued[0].ID != ids[3] || requeued[0].Attempt != 1 || requeued[0].Error != "" {
		t.Fatalf("the requeued item: %+v", requeued)
	}
	// A retry in 10 s: delayed until then. ds[4] stays in flight.
	if r := c.Nack([]Nack{{ID: ds[1].ID, Lease: ds[1].Lease, Error: "later", Delay: 10 * time.Second}}); r != nil {
		t.Fatalf("Nack: %v", r)
	}
	retryDue := clk.Now().Add(10 * time.Second).UnixNano()
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	nextID, leaseHW := b.m.Queue("tasks").NextID(), b.m.LeaseHW()
	if nextID != 5 || leaseHW < requeued[0].Lease {
		t.Fatalf("before the crash: next id %d, lease ids reserved up to %d, last lease %d", nextID, leaseHW, requeued[0].Lease)
	}

	// A snapshot, then one more change for the log after it.
	snap := &memSnapshot{}
	end, err := b.Snapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	snap.end = end
	if r := tasks.Ack([]Ack{ackOf(requeued[0])}); r != nil {
		t.Fatalf("Ack: %v", r)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	logged := b.m.Canonical()
	b.Close()

	// The same state from the log alone and from the snapshot plus the log.
	last := j.LastLSN()
	restartBroker(t, cfg, j, last, nil, logged).Close()
	b = restartBroker(t, cfg, j, last, snap, logged)
	tasks, results, other = mustQueue(t, b, "tasks"), mustQueue(t, b, "results"), mustQueue(t, b, "other")
	dead := mustQueue(t, b, "tasks.dead")

	// The in-flight delivery is ready with its logged attempts (none);
	// the retry is delayed until its due; the dead item is dead.
	if st := tasks.Stats(); st.Ready != 1 || st.Delayed != 1 || st.Leased != 0 || st.Dead != 1 || st.Closed {
		t.Fatalf("tasks after the restart: %+v", st)
	}
	if p := tasks.Peek(0, 10); len(p) != 1 || p[0].ID != ids[4] || p[0].Attempt != 0 {
		t.Fatalf("ready after the restart: %+v", p)
	}
	if p := dead.Peek(0, 10); len(p) != 1 || p[0].ID != ids[2] || p[0].Attempt != 2 || p[0].Error != "twice" {
		t.Fatalf("dead after the restart: %+v", p)
	}
	if p := results.Peek(0, 10); len(p) != 1 || p[0].ReplyTo != ids[0] || string(p[0].Payload) != "result" {
		t.Fatalf("results after the restart: %+v", p)
	}
	if it := b.m.Queue("tasks").Item(ids[1]); it == nil || it.Due() != retryDue || it.Attempts != 1 || it.LastErr() != "later" {
		t.Fatalf("the retry after the restart: %+v", it)
	}
	if !other.Closed() || other.Stats().Ready != 1 {
		t.Fatalf("other after the restart: %+v", other.Stats())
	}
	if _, err := other.Put(ctx, msgs("no"), true, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put into the closed queue after the restart: %v", err)
	}

	// Ids go on above the old ones: no item id, no lease id given twice.
	if got := mustPut(t, tasks, msgs("new")...); got[0] != nextID+1 {
		t.Fatalf("first id after the restart %d, want %d", got[0], nextID+1)
	}
	d = mustGet(t, tasks, 1, false)
	if len(d) != 1 || d[0].ID != ids[4] || d[0].Attempt != 1 || d[0].Lease <= leaseHW {
		t.Fatalf("first delivery after the restart: %+v (lease ids reserved up to %d)", d, leaseHW)
	}
	// A late ack of the old lease of the same item is refused.
	if r := tasks.Ack([]Ack{ackOf(ds[4])}); len(r) != 1 || r[0].Reason != ReasonNotLeased {
		t.Fatalf("late ack from before the restart: %v", r)
	}
	// The retry comes back at its due time, not before.
	if n := b.PromoteDelayed(); n != 0 {
		t.Fatalf("%d promoted before the due time", n)
	}
	clk.Advance(time.Duration(retryDue - clk.Now().UnixNano()))
	if n := b.PromoteDelayed(); n != 1 {
		t.Fatalf("%d promoted at the due time", n)
	}
	if d := mustGet(t, tasks, 1, false); len(d) != 1 || d[0].ID != ids[1] || d[0].Attempt != 2 || d[0].Error != "later" {
		t.Fatalf("the retry after the restart: %+v", d)
	}

	// A clean stop logs the attempt of each lease it releases: a restart
	// keeps every count.
	if n := b.ReleaseLeases(); n != 2 {
		t.Fatalf("ReleaseLeases = %d, want 2", n)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	logged = b.m.Canonical()
	b.Close()
	b = restartBroker(t, cfg, j, j.LastLSN(), snap, logged)
	if it := b.m.Queue("tasks").Item(ids[4]); it == nil || it.Attempts != 1 || it.LastErr() != "master stopped" {
		t.Fatalf("item %d after a clean stop: %+v, want 1 attempt", ids[4], it)
	}
	// The retry's second attempt was its last: dead.
	if it := b.m.Queue("tasks.dead").Item(ids[1]); it == nil || it.Attempts != 2 || it.LastErr() != "master stopped" {
		t.Fatalf("item %d after a clean stop: %+v, want dead after 2 attempts", ids[1], it)
	}
	if st := mustQueue(t, b, "tasks").Stats(); st.Ready != 2 || st.Delayed != 0 || st.Dead != 2 {
		t.Fatalf("tasks after a clean stop: %+v", st)
	}
}

// TestRestartRetryHandedBackOnce: a retry recovered from the log waits in
// the delayed heap while the walk over new items has not yet passed it.
// Once due, it is handed out, and when that delivery fails without a retry
// (its lease runs out) it is ready once, not also met again by the walk:
// it used to be delivered twice, leased twice at once.
func TestRestartRetryHandedBackOnce(t *testing.T) {
	j := &memJournal{}
	cfg := Config{Queues: []QueueConfig{{Name: "tasks"}}, LeaseTime: time.Minute, Journal: j}
	b, clk := newTestBroker(t, cfg)
	cfg.Clock = clk
	tasks := mustQueue(t, b, "tasks")
	mustPut(t, tasks, msgs("a", "b", "c")...)
	d := mustGet(t, tasks, 1, false)
	if r := tasks.Nack([]Nack{{ID: d[0].ID, Lease: d[0].Lease, Delay: time.Second}}); r != nil {
		t.Fatalf("Nack: %v", r)
	}
	logged := b.m.Canonical()
	b.Close()
	b = restartBroker(t, cfg, j, j.LastLSN(), nil, logged)
	tasks = mustQueue(t, b, "tasks")

	clk.Advance(time.Second)
	if n := b.PromoteDelayed(); n != 1 {
		t.Fatalf("PromoteDelayed = %d, want 1", n)
	}
	if d := mustGet(t, tasks, 1, false); len(d) != 1 || d[0].ID != 1 || d[0].Attempt != 2 {
		t.Fatalf("the retry: %+v", d)
	}
	clk.Advance(time.Minute)
	if n := b.ExpireLeases(); n != 1 {
		t.Fatalf("ExpireLeases = %d, want 1", n)
	}
	mustCheck(t, tasks)
	var got []uint64
	for _, d := range mustGet(t, tasks, 10, false) {
		got = append(got, d.ID)
	}
	if slices.Sort(got); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("delivered %v after the retry's lease ran out, want each of 1, 2, 3 once", got)
	}
	mustCheck(t, tasks)
}

// TestRestartRequeuedBelowTheWindow: items requeued below the window of
// new items are kept apart from it (the state's overflow), and stay so
// when the window empties and starts again at an older requeued id below
// theirs. A restart must still hand them out: its walk starts at the
// window's front and does not meet them (it used to count one ready and
// never hand it out).
func TestRestartRequeuedBelowTheWindow(t *testing.T) {
	j := &memJournal{}
	cfg := Config{Queues: []QueueConfig{{Name: "tasks"}}, Journal: j}
	b, clk := newTestBroker(t, cfg)
	cfg.Clock = clk
	tasks := mustQueue(t, b, "tasks")
	mustPut(t, tasks, numbered(1000)...) // a few blocks of the state's window
	// The acks of the window's front blocks, and of the others.
	var front, back []Ack
	for _, d := range mustGet(t, tasks, 1000, false) {
		switch {
		case d.ID == 5 || d.ID == 7:
			if r := tasks.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Action: NackDead}}); r != nil {
				t.Fatalf("Nack: %v", r)
			}
		case d.ID <= 900:
			front = append(front, ackOf(d))
		default:
			back = append(back, ackOf(d))
		}
	}
	if r := tasks.Ack(front); r != nil { // the window's front blocks empty: it moves past 7
		t.Fatalf("Ack: %v", r)
	}
	if n, err := tasks.Requeue([]uint64{7}); n != 1 || err != nil {
		t.Fatalf("Requeue: %d, %v", n, err)
	}
	if r := tasks.Ack(back); r != nil { // the window empties
		t.Fatalf("Ack: %v", r)
	}
	if n, err := tasks.Requeue([]uint64{5}); n != 1 || err != nil { // and starts again at 5
		t.Fatalf("Requeue: %d, %v", n, err)
	}
	logged := b.m.Canonical()
	b.Close()
	b = restartBroker(t, cfg, j, j.LastLSN(), nil, logged)
	var got []uint64
	for _, d := range mustGet(t, mustQueue(t, b, "tasks"), 10, false) {
		got = append(got, d.ID)
	}
	if slices.Sort(got); !slices.Equal(got, []uint64{5, 7}) {
		t.Fatalf("delivered %v after the restart, want 5 and 7", got)
	}
}
