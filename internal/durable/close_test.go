package durable_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/wal/waltest"
)

// The log cannot be written (every write of a segment fails) while the
// snapshot loop waits for the log to sync the snapshot's end: Close does
// not wait for that snapshot (it used to, up to its minute's timeout,
// before it closed the log), and says what it could not write.
func TestDurableCloseDoesNotWaitForASnapshotOnAFailingDisk(t *testing.T) {
	dir := t.TempDir()
	fsys := waltest.New(dir)
	cfg := testConfig(t, dir)
	cfg.FS = fsys
	// No snapshot before the disk fails: one begun before it, whose commit
	// then waited for the failing log, would never make the write the
	// test waits for. The big put below is past this; the rest is not.
	cfg.SnapshotEvery = 8 << 10
	cfg.SnapshotCheck = time.Millisecond
	var failing atomic.Bool
	committing := make(chan struct{}, 1)
	// The disk fails only once the log has its two next segments ready
	// (the second one written, its directory entry about to be synced):
	// a segment it failed to make would refuse the big put below.
	var lastReadyWritten atomic.Bool
	prepared := make(chan struct{})
	fsys.SetHook(func(c waltest.Call) error {
		if !failing.Load() {
			switch {
			case c.Op == waltest.OpWrite && filepath.Base(c.Name) == fmt.Sprintf("%020d.seg", 3):
				lastReadyWritten.Store(true)
			case c.Op == waltest.OpSyncDir && lastReadyWritten.CompareAndSwap(true, false):
				close(prepared)
			}
		}
		if !failing.Load() || c.Op != waltest.OpWrite {
			return nil
		}
		switch {
		case strings.HasSuffix(c.Name, ".seg"):
			return syscall.EIO
		case strings.HasSuffix(c.Name, ".tmp"):
			// The snapshot's last write, before it waits for the log.
			select {
			case committing <- struct{}{}:
			default:
			}
		}
		return nil
	})
	s := openStore(t, cfg)
	b := newBroker(t, s, nil, queue.Config{})
	tasks := mustQueue(t, b, "tasks")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := tasks.Put(ctx, []queue.Message{{Payload: []byte("kept")}}, false, 0); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	select {
	case <-prepared:
	case <-ctx.Done():
		t.Fatal("the log never had its next segments ready")
	}
	failing.Store(true)
	// Past SnapshotEvery: the loop writes the first snapshot.
	big := []byte(strings.Repeat("never written ", 1000))
	if _, err := tasks.Put(ctx, []queue.Message{{Payload: big}}, false, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-committing:
	case <-ctx.Done():
		t.Fatal("no snapshot was written")
	}
	b.Close()
	begun := time.Now()
	err := s.Close()
	took := time.Since(begun)
	t.Logf("close took %v: %v", took, err)
	if err == nil || !strings.Contains(err.Error(), "not on disk") {
		t.Fatalf("close: %v, want it to say which records are not on disk", err)
	}
	if took > 20*time.Second {
		t.Fatalf("close took %v: it waited for the snapshot", took)
	}
}
