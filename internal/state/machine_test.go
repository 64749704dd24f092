package state

import (
	"slices"
	"testing"
)

func ids(q *Queue) []uint64 {
	var out []uint64
	if q != nil {
		q.Ascend(func(it *Item) bool { out = append(out, it.ID); return true })
	}
	return out
}

func items(payloads ...string) []NewItem {
	out := make([]NewItem, len(payloads))
	for i, p := range payloads {
		out[i].Payload = []byte(p)
	}
	return out
}

// TestApplyLifecycle walks an item through every command a live master
// logs and checks the state after each.
func TestApplyLifecycle(t *testing.T) {
	m := New()
	m.Apply(&Put{Queue: "tasks", Time: 1, FirstID: 1, Items: items("1", "2", "3")})
	if got := ids(m.Queue("tasks")); !slices.Equal(got, []uint64{1, 2, 3}) || m.Queue("tasks").NextID() != 3 {
		t.Fatalf("after put: %v next %d", got, m.Queue("tasks").NextID())
	}
	// An ack with a reply is one command: both happen.
	fx := m.Apply(&SettleReply{Queue: "tasks", ReplyQueue: "results", Time: 2, IDs: []uint64{2}, FirstReplyID: 1, Replies: items("4")})
	if fx.Missing != 0 || !slices.Equal(ids(m.Queue("tasks")), []uint64{1, 3}) {
		t.Fatalf("after settle-reply: %v %+v", ids(m.Queue("tasks")), fx)
	}
	if r := m.Queue("results").Item(1); r == nil || r.ReplyTo != 2 || string(r.Payload) != "4" {
		t.Fatalf("reply: %+v", r)
	}
	// A retry: ready again at its due time, with its attempts and error.
	m.Apply(&Fail{Queue: "tasks", DeadQueue: "tasks.dead", Time: 3, Cause: CauseNack, Items: []Failed{{ID: 1, Attempts: 1, Outcome: OutcomeReady, Due: 500, Error: "flaky"}}})
	if it := m.Queue("tasks").Item(1); it.Attempts != 1 || it.Due() != 500 || it.LastErr() != "flaky" {
		t.Fatalf("after retry: %+v due %d err %q", it, it.Due(), it.LastErr())
	}
	// Its last attempt: dead-lettered, keeping its id and error.
	m.Apply(&Fail{Queue: "tasks", DeadQueue: "tasks.dead", Time: 4, Cause: CauseExpired, Items: []Failed{{ID: 1, Attempts: 2, Outcome: OutcomeDead, Error: "lease expired"}}})
	d := m.Queue("tasks.dead")
	if it := d.Item(1); it == nil || it.Attempts != 2 || it.LastErr() != "lease expired" || it.Due() != 0 || d.Origin() != "tasks" {
		t.Fatalf("dead: %+v origin %q", it, d.Origin())
	}
	if m.Queue("tasks").Item(1) != nil {
		t.Fatal("a dead item stayed in its queue")
	}
	// Requeued: back with its attempts and error cleared.
	it := *d.Item(1)
	m.Apply(&Requeue{Queue: "tasks", DeadQueue: "tasks.dead", Time: 5, Items: []Item{it}})
	if back := m.Queue("tasks").Item(1); back == nil || back.Attempts != 0 || back.LastErr() != "" || d.Len() != 0 {
		t.Fatalf("requeued: %+v, dead holds %d", back, d.Len())
	}
	// Settles of what is not there change nothing and are counted.
	if fx := m.Apply(&Settle{Queue: "tasks", Time: 6, IDs: []uint64{2, 3}}); fx.Missing != 1 {
		t.Fatalf("settle: %+v", fx)
	}
	m.Apply(&Close{Queue: "tasks", Time: 7})
	m.Apply(&Leases{HW: 100})
	m.Apply(&Leases{HW: 50})
	if !m.Queue("tasks").Closed() || m.LeaseHW() != 100 {
		t.Fatalf("closed %v leases %d", m.Queue("tasks").Closed(), m.LeaseHW())
	}
}

// TestReplayIsDeterministic: a log of random commands, replayed into a new
// machine (through the codec), rebuilds the same state; and so does a
// snapshot of it.
func TestReplayIsDeterministic(t *testing.T) {
	for seed := range uint64(40) {
		g := newGen(seed)
		var log [][]byte
		for range 500 {
			log = append(log, AppendCommand(nil, g.next()))
		}
		want := g.m.Canonical()
		m := New()
		for _, rec := range log {
			c, err := Decode(rec)
			if err != nil {
				t.Fatal(err)
			}
			m.Apply(c)
		}
		if got := m.Canonical(); got != want {
			t.Fatalf("seed %d: replay differs:\n got %s\nwant %s", seed, got, want)
		}
		if got := restore(t, g.m).Canonical(); got != want {
			t.Fatalf("seed %d: snapshot differs:\n got %s\nwant %s", seed, got, want)
		}
	}
}

func restore(t *testing.T, m *Machine) *Machine {
	t.Helper()
	r := New()
	d := Decoder{Copy: true} // Snapshot reuses its buffer
	err := m.Snapshot(func(rec []byte) error {
		c, err := d.Decode(rec)
		if err != nil {
			return err
		}
		r.Apply(c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestFuzzySnapshot: a snapshot read in small chunks while commands go on
// (as the live master will write one, releasing each queue's lock between
// chunks), restored and completed by replaying the log from where it began,
// equals the state at the end of the log. This is what the commands'
// idempotence is for.
func TestFuzzySnapshot(t *testing.T) {
	for seed := range uint64(300) {
		g := newGen(seed)
		g.live = true
		for range 200 {
			g.next()
		}
		// The snapshot begins: the log from here on is replayed. The
		// producers are read at once, at the start: forgetting them
		// depends on time, and an old put replayed over a newer table
		// would not forget what the live master forgot.
		var suffix []Command
		var recs []Command
		leases := g.m.LeaseHW()
		order := []string{"tasks", "results", "other", "tasks.dead", "results.dead", "other.dead"}
		for _, name := range order {
			q := g.m.Queue(name)
			if q == nil {
				continue
			}
			ps := &Producers{Queue: name}
			q.Producers(func(r *ProducerRecord) bool {
				cp := *r
				cp.Seqs = slices.Clone(r.Seqs)
				for i := range cp.Seqs {
					cp.Seqs[i].Ranges = slices.Clone(cp.Seqs[i].Ranges)
				}
				ps.Producers = append(ps.Producers, cp)
				return true
			})
			recs = append(recs, ps)
		}
		for _, name := range order {
			var after uint64 // the next chunk starts after this id
			for {
				// Commands go on between chunks.
				for range g.rng.IntN(4) {
					suffix = append(suffix, g.next())
				}
				q := g.m.Queue(name)
				if q == nil {
					break
				}
				chunk := &Items{Queue: name}
				q.Ascend(func(it *Item) bool {
					if it.ID > after {
						chunk.Items = append(chunk.Items, *it)
					}
					return len(chunk.Items) < 3
				})
				if len(chunk.Items) == 0 {
					recs = append(recs, &QueueMeta{Queue: name, Origin: q.Origin(), NextID: q.NextID(), Closed: q.Closed(), Paused: q.Paused()})
					break
				}
				after = chunk.Items[len(chunk.Items)-1].ID
				// Encoded before the state next changes: items share
				// their extensions with the state.
				c, err := Decode(AppendCommand(nil, chunk))
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, c)
			}
		}
		recs = append(recs, &Leases{HW: leases})
		for range 50 {
			suffix = append(suffix, g.next())
		}
		m := New()
		for _, c := range recs {
			m.Apply(c)
		}
		for _, c := range suffix {
			m.Apply(c)
		}
		if got, want := m.Canonical(), g.m.Canonical(); got != want {
			t.Fatalf("seed %d: fuzzy snapshot plus replay differs:\n got %s\nwant %s", seed, got, want)
		}
	}
}

// TestSnapshotDeadAndBack: an item that dies and is requeued while a live
// snapshot reads the queues (after its origin's items were read, before
// its dead-letter queue's) is in neither chunk: the Fail replayed over the
// snapshot finds nothing to move, and the Requeue brings the item back.
// The dead-letter queue's highest id, read at the snapshot's start, must
// still count the id the Fail gave it, as the live state does.
func TestSnapshotDeadAndBack(t *testing.T) {
	live := New()
	live.Declare("tasks", "")
	live.Declare("tasks.dead", "tasks")
	live.Apply(&Put{Queue: "tasks", FirstID: 1, Items: items("a", "b")})
	// The snapshot begins with every queue's own state.
	var snap, log []Command
	for _, name := range []string{"tasks", "tasks.dead"} {
		q := live.Queue(name)
		snap = append(snap, &QueueMeta{Queue: name, Origin: q.Origin(), NextID: q.NextID(), Closed: q.Closed(), Paused: q.Paused()})
	}
	apply := func(c Command) {
		live.Apply(c)
		log = append(log, c)
	}
	read := func(name string) {
		chunk := &Items{Queue: name}
		live.Queue(name).Ascend(func(it *Item) bool {
			chunk.Items = append(chunk.Items, *it)
			return true
		})
		c, err := Decode(AppendCommand(nil, chunk)) // before the state changes
		if err != nil {
			t.Fatal(err)
		}
		snap = append(snap, c)
	}
	apply(&Fail{Queue: "tasks", DeadQueue: "tasks.dead", Cause: CauseNack, Items: []Failed{{ID: 2, Attempts: 1, Outcome: OutcomeDead, Error: "bad"}}})
	read("tasks")
	apply(&Requeue{Queue: "tasks", DeadQueue: "tasks.dead", Items: []Item{*live.Queue("tasks.dead").Item(2)}})
	read("tasks.dead")

	m := New()
	for _, c := range append(snap, log...) {
		m.Apply(c)
	}
	if got, want := m.Canonical(), live.Canonical(); got != want {
		t.Fatalf("snapshot plus replay differs:\n got %s\nwant %s", got, want)
	}
}

// TestDedup: a put's sequence is remembered with its ids, chunk by chunk;
// old sequences are forgotten past SeqsPerProducer, and producers past
// their window.
func TestDedup(t *testing.T) {
	m := New()
	p := Producer{1}
	put := func(time int64, seq uint64, off uint32, first uint64, n int) {
		m.Apply(&Put{Queue: "q", Time: time, FirstID: first, Items: make([]NewItem, n), Producer: p, Seq: seq, Offset: off, BatchCRC: 77, DedupWindow: 100})
	}
	put(10, 1, 0, 1, 3)
	put(11, 1, 3, 4, 2) // the rest of put 1, after the queue had room again
	q := m.Queue("q")
	if k, rec := q.Lookup(p, 1); k != SeqStored || rec.CRC != 77 || !slices.Equal(rec.Ranges, []IDRange{{0, 1, 3}, {3, 4, 2}}) {
		t.Fatalf("lookup 1: %v %+v", k, rec)
	}
	if k, _ := q.Lookup(p, 2); k != SeqNew {
		t.Fatalf("lookup 2: %v", k)
	}
	if k, _ := q.Lookup(Producer{2}, 1); k != SeqNew {
		t.Fatalf("unknown producer: %v", k)
	}
	for s := uint64(2); s <= SeqsPerProducer+1; s++ {
		put(20, s, 0, 100+s, 1)
	}
	if k, _ := q.Lookup(p, 1); k != SeqForgotten {
		t.Fatalf("sequence 1 after %d more: %v", SeqsPerProducer, k)
	}
	if k, _ := q.Lookup(p, 2); k != SeqStored {
		t.Fatalf("sequence 2: %v", k)
	}
	// Another producer's put past the window forgets p.
	m.Apply(&Put{Queue: "q", Time: 500, FirstID: 1000, Items: make([]NewItem, 1), Producer: Producer{2}, Seq: 1, DedupWindow: 100})
	if k, _ := q.Lookup(p, 2); k != SeqNew {
		t.Fatalf("after the window: %v", k)
	}
	if got := restore(t, m).Canonical(); got != m.Canonical() {
		t.Fatalf("snapshot of producers differs:\n%s\n%s", got, m.Canonical())
	}
}

func BenchmarkApplyPutSettle(b *testing.B) {
	m := New()
	put := &Put{Queue: "tasks", Items: items("1", "2", "3", "4", "5", "6", "7", "8")}
	settle := &Settle{Queue: "tasks", IDs: make([]uint64, 8)}
	next := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		put.FirstID = next
		m.Apply(put)
		for i := range settle.IDs {
			settle.IDs[i] = next + uint64(i)
		}
		m.Apply(settle)
		next += 8
	}
}

// TestPurgeAndPause: a purge removes the items it names and counts those
// already gone; a pause is a flag set as the command says, kept by a
// snapshot, and a QueueMeta sets it back as well as forth.
func TestPurgeAndPause(t *testing.T) {
	m := New()
	m.Apply(&Put{Queue: "tasks", Time: 1, FirstID: 1, Items: items("a", "b", "c", "d")})
	if fx := m.Apply(&Purge{Queue: "tasks", Time: 2, IDs: []uint64{1, 3, 9}}); fx.Missing != 1 {
		t.Fatalf("purge: %+v", fx)
	}
	if got := ids(m.Queue("tasks")); !slices.Equal(got, []uint64{2, 4}) || m.Queue("tasks").NextID() != 4 {
		t.Fatalf("after purge: %v next %d", got, m.Queue("tasks").NextID())
	}
	m.Apply(&Pause{Queue: "tasks", Time: 3, Paused: true})
	m.Apply(&Pause{Queue: "tasks", Time: 4, Paused: true})
	if !m.Queue("tasks").Paused() {
		t.Fatal("not paused")
	}
	r := restore(t, m)
	if !r.Queue("tasks").Paused() || r.Canonical() != m.Canonical() {
		t.Fatalf("snapshot lost the pause:\n%s\n%s", r.Canonical(), m.Canonical())
	}
	m.Apply(&Pause{Queue: "tasks", Time: 5})
	if m.Queue("tasks").Paused() {
		t.Fatal("still paused after a resume")
	}
	r.Apply(&QueueMeta{Queue: "tasks", NextID: 4})
	if r.Queue("tasks").Paused() {
		t.Fatal("a QueueMeta of a running queue left it paused")
	}
}
