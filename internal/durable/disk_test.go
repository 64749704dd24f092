package durable_test

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/distq/distq/internal/durable"
	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/testlog"
)

// The issue's test of bounded disk: "10,000,000 tasks through a queue
// that never holds more than 10,000 leave a data directory of a few
// segments, not gigabytes". A producer puts tasks into a queue capped at
// 10,000, two streams ack each with a reply, a reader drains the results
// with auto-ack; the store compacts by itself (its snapshot loop) with
// segments of 1 MiB. Every task's result comes back once and right, and
// the directory holds a few segments and a small snapshot, during the run
// and at its end, while the log written is about 190 MB.
//
// The full 10,000,000 run without the race detector (about 20 s here).
// Under it (make test) the broker is some 15 times slower: 500,000 tasks
// through segments of 256 KiB, about 10 MB of log, 40 segments' worth.
// With -short 100,000.
func TestDurableBoundedDisk(t *testing.T) {
	n, seg := 10_000_000, int64(1<<20)
	if raceEnabled {
		n, seg = 500_000, 256<<10
	}
	if testing.Short() {
		n = 100_000
	}
	const (
		maxSize = 10_000
		batch   = 1000
	)
	dir := t.TempDir()
	logger := testlog.New(t, "data")
	logger.SetLevel(hclog.Info) // not a line per snapshot
	s := openStore(t, durable.Config{Dir: dir, SegmentSize: seg, MaxRecord: 64 << 10,
		SnapshotEvery: seg, SnapshotCheck: 5 * time.Millisecond, Logger: logger})
	qlog := testlog.New(t, "queue")
	qlog.SetLevel(hclog.Info)
	b := newBroker(t, s, nil, queue.Config{Queues: []queue.QueueConfig{{Name: "tasks", MaxSize: maxSize}, {Name: "results"}}, Logger: qlog})
	tasks, results := mustQueue(t, b, "tasks"), mustQueue(t, b, "results")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	begun := time.Now()

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Add(1)
	go func() { // the producer: task i's payload is i, its id i+1
		defer wg.Done()
		msgs := make([]queue.Message, batch)
		for i := 0; i < n; i += batch {
			buf := make([]byte, 8*batch)
			for k := range msgs {
				p := buf[8*k : 8*k+8]
				binary.LittleEndian.PutUint64(p, uint64(i+k))
				msgs[k].Payload = p
			}
			if _, err := tasks.Put(ctx, msgs, false, 0); err != nil {
				errs <- err
				return
			}
		}
	}()
	workers, wctx := sync.WaitGroup{}, context.Context(nil)
	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	for range 2 {
		workers.Add(1)
		go func() { // a stream: the reply is the task's payload
			defer workers.Done()
			c, err := tasks.NewConsumer()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.Grant(1024)
			var ds []queue.Delivery
			acks := make([]queue.Ack, 0, 1024)
			for {
				ds, err = c.Next(wctx, ds[:0])
				if err != nil {
					return
				}
				acks = acks[:0]
				for _, d := range ds {
					acks = append(acks, queue.Ack{ID: d.ID, Lease: d.Lease, ReplyQueue: results, Reply: queue.Message{Payload: d.Payload}})
				}
				if r := c.Ack(acks); len(r) > 0 {
					errs <- refusedErr(r)
					return
				}
				c.Grant(len(ds))
			}
		}()
	}

	// The reader, here: every result once, its task's.
	seen := make([]uint64, (n+63)/64)
	var peak dirUsage
	var buf []queue.Delivery
	for got := 0; got < n; {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		rs, err := results.GetAppend(ctx, buf[:0], 4096, false, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		buf = rs
		for _, r := range rs {
			i := r.ReplyTo - 1
			if len(r.Payload) != 8 || binary.LittleEndian.Uint64(r.Payload) != i || i >= uint64(n) {
				t.Fatalf("result %d for task %d: %x", r.ID, r.ReplyTo, r.Payload)
			}
			if seen[i/64]&(1<<(i%64)) != 0 {
				t.Fatalf("task %d's result came twice", r.ReplyTo)
			}
			seen[i/64] |= 1 << (i % 64)
		}
		before := got
		got += len(rs)
		if got/(n/50) != before/(n/50) { // 50 looks at the disk
			if u := usage(t, dir); u.total > peak.total {
				peak = u
			}
			if st := tasks.Stats(); st.Ready > maxSize {
				t.Fatalf("tasks holds %d ready items, above its %d", st.Ready, maxSize)
			}
		}
	}
	took := time.Since(begun)
	wg.Wait()
	stopWorkers()
	workers.Wait()
	written := s.Stats().Bytes

	// Segments: the active one, the two the preparer keeps ready, up to
	// two spares freed by compaction, and what was sealed since the last
	// snapshot began: SnapshotEvery (a segment) and what the log grew
	// while a snapshot was written (the loop looks every 5 ms, a
	// snapshot takes a few fdatasyncs). Snapshot files: the last, and the
	// next being written. At the end, once the loop has caught up, at
	// most 8 segments; during the run, depending on the disk's syncs,
	// more, bounded here at 24.
	const endSegs, peakSegs, maxSnaps = 8, 24, 2
	end := usage(t, dir)
	for deadline := time.Now().Add(30 * time.Second); end.segs > endSegs && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // the snapshot loop catches up
		end = usage(t, dir)
	}
	b.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	closed := usage(t, dir)
	t.Logf("%d tasks in %v (%.0f/s): %d MB of log written, %d snapshots; data dir at its largest %d segments (%d KiB) and %d snapshot files (%d KiB), at the end %d segments and %d snapshot files, %d KiB in all (%d KiB after Close)",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), written>>20, s.Snapshots(),
		peak.segs, peak.segBytes>>10, peak.snaps, peak.snapBytes>>10, end.segs, end.snaps, end.total>>10, closed.total>>10)
	for _, u := range []struct {
		what string
		u    dirUsage
		segs int
	}{{"at its largest", peak, peakSegs}, {"at the end", end, endSegs}, {"after Close", closed, endSegs}} {
		if u.u.segs > u.segs || u.u.snaps > maxSnaps || u.u.snapBytes > 4<<20 || u.u.total > int64(u.segs)*seg+4<<20+1<<10 {
			t.Errorf("data dir %s: %d segments, %d snapshot files of %d KiB, %d KiB in all; want at most %d segments of %d KiB and %d snapshots of a few MiB",
				u.what, u.u.segs, u.u.snaps, u.u.snapBytes>>10, u.u.total>>10, u.segs, seg>>10, maxSnaps)
		}
	}
	if written < uint64(4*endSegs*seg) && !testing.Short() {
		t.Errorf("only %d KiB of log written: the run proves nothing about compaction", written>>10)
	}
}
