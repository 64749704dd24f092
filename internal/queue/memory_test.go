package queue

import (
	"context"
	"encoding/binary"
	"runtime"
	"testing"
)

// maxQueuedBytes is the budget of one queued 8-byte task, payload included.
const maxQueuedBytes = 100

// putPacked puts n 8-byte items into q the way the gRPC edge does: in
// batches of 4096 whose payloads are sub-slices of one buffer per batch.
func putPacked(tb testing.TB, q *Queue, n int) {
	tb.Helper()
	const batch = 4096
	msgs := make([]Message, batch)
	for done := 0; done < n; {
		k := min(batch, n-done)
		buf := make([]byte, 8*k)
		for i := range k {
			p := buf[8*i : 8*i+8 : 8*i+8]
			binary.LittleEndian.PutUint64(p, uint64(done+i))
			msgs[i] = Message{Payload: p}
		}
		if _, err := q.Put(context.Background(), msgs[:k], true, 0); err != nil {
			tb.Fatal(err)
		}
		done += k
	}
	clear(msgs)
}

// queuedBytes puts n packed 8-byte items into a fresh queue and returns the
// live heap they hold per item (HeapAlloc after a GC, against before), and
// the memory obtained from the OS per item, a rough bound on RSS.
func queuedBytes(tb testing.TB, n int) (heap, sys float64) {
	tb.Helper()
	b, _ := newTestBroker(tb, Config{})
	q := mustQueue(tb, b, "tasks")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	putPacked(tb, q, n)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if st := q.Stats(); st.Ready != n {
		tb.Fatalf("%d ready, want %d", st.Ready, n)
	}
	heap = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
	sys = float64(int64(after.Sys)-int64(before.Sys)) / float64(n)
	b.Close()
	runtime.KeepAlive(q)
	return heap, sys
}

// TestQueuedMemory: a million queued 8-byte tasks hold less than
// maxQueuedBytes of heap each, payload included.
func TestQueuedMemory(t *testing.T) {
	heap, _ := queuedBytes(t, 1000000)
	t.Logf("%.1f heap bytes per queued 8-byte item", heap)
	if heap >= maxQueuedBytes {
		t.Fatalf("%.1f heap bytes per queued item, want < %d", heap, maxQueuedBytes)
	}
}

// BenchmarkQueuedMemory reports the heap held per queued 8-byte item.
func BenchmarkQueuedMemory(b *testing.B) {
	for _, sz := range []struct {
		name string
		n    int
	}{{"size=1M", 1000000}, {"size=10M", 10000000}} {
		b.Run(sz.name, func(b *testing.B) {
			var heap, sys float64
			for b.Loop() {
				heap, sys = queuedBytes(b, sz.n)
			}
			b.ReportMetric(heap, "heap-B/item")
			b.ReportMetric(sys, "sys-B/item")
		})
	}
}

// TestSteadyStateAllocs: once warm, delivering and settling allocate
// nothing (lease records are recycled), and a Put allocates its returned ids
// only, whatever the number of items.
func TestSteadyStateAllocs(t *testing.T) {
	b, clk := newTestBroker(t, Config{MaxAttempts: 1000000})
	q, res := mustQueue(t, b, "tasks"), mustQueue(t, b, "results")
	putPacked(t, q, 100000)
	c := mustConsumer(t, q)
	ctx := context.Background()
	buf := make([]Delivery, 0, 16)
	acks := make([]Ack, 16)
	nacks := make([]Nack, 16)
	reply := []byte("reply")
	deliver := func() {
		c.Grant(16)
		var err error
		if buf, err = c.Next(ctx, buf[:0]); err != nil || len(buf) != 16 {
			t.Fatalf("Next: %d, %v", len(buf), err)
		}
	}
	cycle := func() {
		deliver()
		for i, d := range buf {
			acks[i] = Ack{ID: d.ID, Lease: d.Lease, ReplyQueue: res, Reply: Message{Payload: reply}}
		}
		if r := c.Ack(acks); r != nil {
			t.Fatal(r)
		}
	}
	retry := func() {
		deliver()
		for i, d := range buf {
			nacks[i] = Nack{ID: d.ID, Lease: d.Lease, Error: "retry"}
		}
		if r := c.Nack(nacks); r != nil {
			t.Fatal(r)
		}
		clk.Advance(DefaultRetryMax) // the longest backoff
		if n := b.PromoteDelayed(); n != 16 {
			t.Fatalf("%d retries due, want 16", n)
		}
	}
	cycle()
	retry() // the retried items get their error record now, not below
	// Averaged and rounded down: the rings' rare growth does not count.
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Errorf("deliver and ack with replies: %v allocations per 16 items", n)
	}
	if n := testing.AllocsPerRun(100, retry); n != 0 {
		t.Errorf("deliver, nack and retry: %v allocations per 16 items", n)
	}
	msgs := make([]Message, 64)
	for i := range msgs {
		msgs[i] = Message{Payload: reply}
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := q.Put(ctx, msgs, true, 0); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("Put of 64 items: %v allocations, want 1 (the ids)", n)
	}
	mustCheck(t, q, res)
}

// TestLeaseRecycling: settled lease records are reused, at most
// maxFreeLeases of them are kept, and none keeps a payload alive.
func TestLeaseRecycling(t *testing.T) {
	b, _ := newTestBroker(t, Config{})
	q := mustQueue(t, b, "tasks")
	putPacked(t, q, 3*maxFreeLeases)
	ds := mustGet(t, q, 3*maxFreeLeases, false)
	acks := make([]Ack, len(ds))
	for i, d := range ds {
		acks[i] = ackOf(d)
	}
	if r := q.Ack(acks); r != nil {
		t.Fatal(r)
	}
	mustCheck(t, q) // free records are blank, unused and bounded
	q.mu.Lock()
	free, heapCap := len(q.free), cap(q.leases)
	q.mu.Unlock()
	if free != maxFreeLeases {
		t.Fatalf("%d free lease records, want %d", free, maxFreeLeases)
	}
	if heapCap > 1024 {
		t.Fatalf("lease heap keeps room for %d leases after all were settled", heapCap)
	}
}
