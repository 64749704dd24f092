package durable_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distq/distq/internal/clock"
	"github.com/distq/distq/internal/durable"
	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/testlog"
)

// t0 is where every manual clock starts.
var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Small segments, so that the tests roll over and compact: a segment must
// hold the longest record, so MaxRecord goes down with it.
const (
	testSeg    = 64 << 10
	testRecord = 16 << 10
)

// testConfig is a store on dir with small segments, logging to t.
func testConfig(t testing.TB, dir string) durable.Config {
	return durable.Config{Dir: dir, SegmentSize: testSeg, MaxRecord: testRecord, Logger: testlog.New(t, "data")}
}

// openStore opens cfg, failing the test on error; the store is closed at
// the end of the test if the test did not.
func openStore(t testing.TB, cfg durable.Config) *durable.Store {
	t.Helper()
	s, err := durable.Open(cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.Dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newBroker starts a broker on s's state and journal, and the store's
// start record and snapshot loop. A nil clk runs on the system clock with
// the scan loop; a manual clock runs without it (the test calls
// PromoteDelayed and ExpireLeases).
func newBroker(t testing.TB, s *durable.Store, clk clock.Clock, cfg queue.Config) *queue.Broker {
	t.Helper()
	cfg.Journal, cfg.State = s.Journal(), s.State()
	if clk != nil {
		cfg.Clock, cfg.ManualScan = clk, true
	}
	if cfg.Logger == nil {
		cfg.Logger = testlog.New(t, "queue")
	}
	b, err := queue.New(cfg)
	if err != nil {
		t.Fatalf("queue.New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if err := s.Start(b, 1, "test"); err != nil {
		t.Fatalf("store start: %v", err)
	}
	return b
}

func mustQueue(t testing.TB, b *queue.Broker, name string) *queue.Queue {
	t.Helper()
	q, err := b.Queue(name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func mustSync(t testing.TB, b *queue.Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.Sync(ctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// noRefusals fails the test on a refused settle.
func noRefusals(t testing.TB, what string, r []queue.Refusal) {
	t.Helper()
	if len(r) > 0 {
		t.Fatalf("%s refused: %+v", what, r)
	}
}

// dirUsage is what the data directory holds: its segments and snapshots
// (count and bytes) and the bytes of every file.
type dirUsage struct {
	segs, snaps           int
	segBytes, snapBytes   int64
	total                 int64
	largestSnap, largeSeg int64
}

func usage(t testing.TB, dir string) dirUsage {
	t.Helper()
	var u dirUsage
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while walked
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		n := info.Size()
		u.total += n
		switch {
		case strings.HasSuffix(path, ".seg"):
			u.segs++
			u.segBytes += n
			u.largeSeg = max(u.largeSeg, n)
		case strings.Contains(path, ".snap"):
			u.snaps++
			u.snapBytes += n
			u.largestSnap = max(u.largestSnap, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func refusedErr(r []queue.Refusal) error {
	return fmt.Errorf("%d settles refused, the first %+v", len(r), r[0])
}
