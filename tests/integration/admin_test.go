package integration

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/distq/distq"
)

// TestAdminInspectorPauseSurvivesRestart exercises every call of an
// Inspector against the real master and slave: the queues, the slave as a
// consumer, its dead item, pause (the slave gets nothing while puts go
// on), purge, a kill -9 of the durable master (it comes back paused, the
// purged items gone), requeue, resume, requeue all, a purge of the dead,
// and close (the slave drains and exits 0).
func TestAdminInspectorPauseSurvivesRestart(t *testing.T) {
	key := writeKey(t, testKey)
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	m1 := startMasterAt(t, "master1", addr, key, nil, "-data-dir", dir, "-max-attempts", "1")
	c := dial(t, addr, testKey)
	ctx := ctxTimeout(t, 3*time.Minute)
	in, err := distq.NewInspector(addr, distq.Options{AuthKey: []byte(testKey)})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	stats := func(name string) distq.Stats {
		t.Helper()
		all, err := in.Queues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range all {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no queue %q", name)
		return distq.Stats{}
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	put := func(payloads ...string) {
		t.Helper()
		for _, p := range payloads {
			if _, err := c.Queue("tasks").Put(ctx, []byte(p)); err != nil {
				t.Fatal(err)
			}
		}
	}

	put("1", "2", "3", "4", "5", "not a number")
	slave := startSlave(t, "slave", addr, key, "-concurrency", "1", "-max-backoff", "200ms")
	waitUntil("five results and one dead", func() bool { return stats("results").Ready == 5 && stats("tasks").Dead == 1 })

	cs, err := in.Consumers(ctx, "tasks")
	if err != nil || len(cs) != 1 {
		t.Fatalf("Consumers: %+v, %v", cs, err)
	}
	if k := cs[0]; k.Peer == "" || k.Acked != 5 || k.Failed != 1 || k.Delivered != 6 || k.Credit == 0 {
		t.Fatalf("the slave as a consumer: %+v", k)
	}
	dead, total, err := in.Dead(ctx, "tasks", 0, 10)
	if err != nil || total != 1 || len(dead) != 1 || string(dead[0].Payload) != "not a number" || dead[0].Error == "" {
		t.Fatalf("Dead: %+v (total %d), %v", dead, total, err)
	}

	// Paused: puts go on, the slave gets nothing.
	if err := in.Pause(ctx, "tasks"); err != nil {
		t.Fatal(err)
	}
	put("6", "7", "8")
	time.Sleep(300 * time.Millisecond) // the slave would have taken them by now
	if s := stats("tasks"); !s.Paused || s.Ready != 3 || s.DeliveredTotal != 6 {
		t.Fatalf("paused: %+v", s)
	}
	if n, err := in.Purge(ctx, "tasks"); n != 3 || err != nil {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	put("10", "11")

	// kill -9: the master comes back paused, without the purged items.
	m1.signal(syscall.SIGKILL)
	m1.wait(time.Minute)
	startMasterAt(t, "master2", addr, key, nil, "-data-dir", dir, "-max-attempts", "1")
	if s := stats("tasks"); !s.Paused || s.Ready != 2 || s.Dead != 1 {
		t.Fatalf("after the restart: %+v", s)
	}
	waitUntil("the slave to reconnect", func() bool {
		cs, err := in.Consumers(ctx, "tasks")
		return err == nil && len(cs) == 1
	})
	time.Sleep(300 * time.Millisecond)
	if s := stats("tasks"); s.Ready != 2 || s.DeliveredTotal != 0 {
		t.Fatalf("a restarted paused queue handed out: %+v", s)
	}

	// Requeue nothing, then the dead item, into the paused queue.
	if n, err := in.Requeue(ctx, "tasks"); n != 0 || err != nil {
		t.Fatalf("Requeue without ids = %d, %v", n, err)
	}
	if n, err := in.Requeue(ctx, "tasks", dead[0].ID); n != 1 || err != nil {
		t.Fatalf("Requeue = %d, %v", n, err)
	}
	if err := in.Resume(ctx, "tasks"); err != nil {
		t.Fatal(err)
	}
	waitUntil("the slave to do 10 and 11, and the requeued item to die again", func() bool {
		s := stats("tasks")
		return s.AckedTotal == 2 && s.Dead == 1 && !s.Paused
	})
	if n, err := in.RequeueAll(ctx, "tasks"); n != 1 || err != nil {
		t.Fatalf("RequeueAll = %d, %v", n, err)
	}
	waitUntil("it to die once more", func() bool { return stats("tasks").DeadTotal == 2 })
	if n, err := in.Purge(ctx, "tasks.dead"); n != 1 || err != nil {
		t.Fatalf("Purge of the dead = %d, %v", n, err)
	}
	var got []string
	for range 7 {
		r, err := c.Queue("results").GetTimeout(ctx, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(r.Payload))
	}
	want := map[string]bool{"1": true, "4": true, "9": true, "16": true, "25": true, "100": true, "121": true}
	for _, g := range got {
		if !want[g] {
			t.Fatalf("results %v: %q is not the square of a task that was not purged", got, g)
		}
		delete(want, g)
	}

	// Close: the slave drains what is left and exits 0.
	if err := in.CloseQueue(ctx, "tasks"); err != nil {
		t.Fatal(err)
	}
	if code := slave.wait(time.Minute); code != 0 {
		t.Fatalf("slave exited %d after the queue closed; want 0", code)
	}
	if err := in.Pause(ctx, "nope"); !errors.Is(err, distq.ErrUnknownQueue) {
		t.Fatalf("Pause of an unknown queue: %v", err)
	}
}
