package durable

import (
	"context"
	"testing"
	"time"

	"github.com/distq/distq/internal/queue"
)

// TestSyncAfterIdle: once the log has gone idle after a sync (and added a
// no-op record of its own, which it syncs only with the next real one),
// Broker.Sync still returns: it waits for the broker's records, not the
// log's. It used to wait for the no-op, for ever: the durable demo hung at
// its last put.
func TestSyncAfterIdle(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := queue.New(queue.Config{State: s.State(), Journal: s.Journal()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound for a hang
	defer cancel()
	q, _ := b.Queue("tasks")
	if _, err := q.Put(ctx, []queue.Message{{Payload: []byte("1")}}, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The writer, idle after that sync, adds its no-op: a record past the
	// last durable one.
	for s.wal.LastLSN() <= s.wal.Durable() {
		select {
		case <-ctx.Done():
			t.Fatal("the log added no no-op record after going idle")
		case <-time.After(time.Millisecond):
		}
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatalf("Sync after the log went idle: %v", err)
	}
}
