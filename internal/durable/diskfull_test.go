package durable_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/state"
	"github.com/distq/distq/internal/wal/waltest"
)

// The disk fills (waltest's capacity): the log cannot make its next
// segment, so a put is refused, before it is applied, with an error that
// is queue.ErrNoSpace and says why and what is safe; settles go on (acks
// with replies, auto-ack gets, nacks) into the active segment and the
// reserve. Once space returns puts work again, and a restart finds every
// answered put and settle, and nothing of the refused puts.
func TestDurableDiskFullRefusesPutsKeepsSettles(t *testing.T) {
	dir := t.TempDir()
	fsys := waltest.New(dir)
	cfg := testConfig(t, dir)
	cfg.FS = fsys
	cfg.SnapshotEvery = 1 << 40 // the test snapshots itself
	s := openStore(t, cfg)
	b := newBroker(t, s, nil, queue.Config{})
	tasks, results := mustQueue(t, b, "tasks"), mustQueue(t, b, "results")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	payload := map[uint64]string{} // every answered put
	seq := 0
	put := func() error {
		msgs := make([]queue.Message, 20)
		for i := range msgs {
			msgs[i].Payload = []byte(fmt.Sprintf("task %d %s", seq, strings.Repeat("x", 100)))
			seq++
		}
		ids, err := tasks.Put(ctx, msgs, true, 0)
		if err != nil {
			if len(ids) > 0 {
				t.Fatalf("a refused put stored %d of its items", len(ids))
			}
			return err
		}
		mustSync(t, b)
		for i, id := range ids {
			payload[id] = string(msgs[i].Payload)
		}
		return nil
	}
	for range 5 {
		if err := put(); err != nil {
			t.Fatal(err)
		}
	}
	fsys.SetCapacity(fsys.Usage())
	var err error
	for i := 0; err == nil; i++ {
		if i > 1000 {
			t.Fatal("puts still accepted with the disk full")
		}
		err = put()
	}
	if !errors.Is(err, queue.ErrNoSpace) {
		t.Fatalf("put on a full disk: %v; want queue.ErrNoSpace", err)
	}
	for _, want := range []string{"the master's disk is full", "data dir " + dir, "no space left on device", "puts are refused until space returns", "everything already acknowledged is safe"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
	t.Logf("after %d answered puts: %v", len(payload), err)

	// Settles go on: acks with replies, a nack for a retry, a read of
	// results with auto-ack.
	ds, err := tasks.Get(ctx, 30, true, 0, false)
	if err != nil || len(ds) != 30 {
		t.Fatalf("get on a full disk: %d, %v", len(ds), err)
	}
	var acks []queue.Ack
	settled := map[uint64]bool{}
	for _, d := range ds[:25] {
		acks = append(acks, queue.Ack{ID: d.ID, Lease: d.Lease, ReplyQueue: results, Reply: queue.Message{Payload: []byte("done " + string(d.Payload))}})
		settled[d.ID] = true
	}
	noRefusals(t, "acks on a full disk", tasks.Ack(acks))
	noRefusals(t, "nack on a full disk", tasks.Nack([]queue.Nack{{ID: ds[25].ID, Lease: ds[25].Lease, Error: "again", Delay: time.Hour}}))
	read, err := results.Get(ctx, 10, true, 0, true)
	if err != nil || len(read) != 10 {
		t.Fatalf("auto-ack get on a full disk: %d, %v", len(read), err)
	}
	mustSync(t, b)
	replied := map[uint64]bool{}
	for _, r := range read {
		replied[r.ReplyTo] = true
	}
	if err := put(); !errors.Is(err, queue.ErrNoSpace) {
		t.Fatalf("put after the settles: %v; want still ErrNoSpace", err)
	}

	// Space returns: puts work again, once the log has its next segment
	// (the snapshot frees segments at once; the preparer also retries
	// every second).
	fsys.SetCapacity(-1)
	if err := s.Snapshot(b); err != nil {
		t.Fatalf("snapshot once space returned: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := put()
		if err == nil {
			break
		}
		if !errors.Is(err, queue.ErrNoSpace) || time.Now().After(deadline) {
			t.Fatalf("put once space returned: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 20 {
		if err := put(); err != nil {
			t.Fatalf("put once space returned: %v", err)
		}
	}
	mustSync(t, b)
	b.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Nothing answered is lost, nothing refused was kept.
	s2 := openStore(t, testConfig(t, dir))
	tq, rq := s2.State().Queue("tasks"), s2.State().Queue("results")
	for id, p := range payload {
		it := tq.Item(id)
		switch {
		case settled[id] && it != nil:
			t.Errorf("task %d was acked and is back", id)
		case !settled[id] && (it == nil || string(it.Payload) != p):
			t.Errorf("task %d, answered, is %+v after the restart", id, it)
		}
	}
	tq.Ascend(func(it *state.Item) bool {
		if _, ok := payload[it.ID]; !ok {
			t.Errorf("task %d (%.12q) was never answered and is there", it.ID, it.Payload)
		}
		return true
	})
	if tq.Len() != len(payload)-len(settled) {
		t.Errorf("%d tasks after the restart, want %d", tq.Len(), len(payload)-len(settled))
	}
	n := 0
	rq.Ascend(func(it *state.Item) bool {
		n++
		if !settled[it.ReplyTo] || replied[it.ReplyTo] || string(it.Payload) != "done "+payload[it.ReplyTo] {
			t.Errorf("result %d for task %d: %.20q", it.ID, it.ReplyTo, it.Payload)
		}
		return true
	})
	if n != 15 {
		t.Errorf("%d results after the restart, want the 15 not read", n)
	}
	if it := tq.Item(ds[25].ID); it == nil || it.Attempts != 1 || it.Due() == 0 {
		t.Errorf("the nacked task after the restart: %+v, want its attempt and due kept", it)
	}
}
