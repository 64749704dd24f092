package wal_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/distq/distq/internal/wal"
	"github.com/distq/distq/internal/wal/waltest"
)

// A power loss at an arbitrary moment, while writers append and wait and a
// snapshot may be under way: the disk keeps every synced byte and an
// arbitrary selection of the rest (writes whole, dropped, cut short, or
// cut short and followed by garbage). The log reopens without refusing,
// with exactly a prefix of what was appended after its snapshot, and that
// prefix holds every record that was durable (FsyncAlways) or synced
// (FsyncInterval) at the crash. It then goes on.
func TestCrashKeepsAPrefixWithEveryDurableRecord(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 6
	}
	for seed := 1; seed <= seeds; seed++ {
		for _, mode := range []wal.FsyncMode{wal.FsyncAlways, wal.FsyncInterval} {
			t.Run(fmt.Sprintf("seed=%d/%v", seed, mode), func(t *testing.T) {
				crashOnce(t, uint64(seed), mode)
			})
		}
	}
}

func crashOnce(t *testing.T, seed uint64, mode wal.FsyncMode) {
	rng := rand.New(rand.NewPCG(seed, uint64(mode)))
	dir := t.TempDir()
	fsys := waltest.New(dir)
	fsys.SetSkipSync(true)
	o := testOpts(t)
	o.FS, o.Fsync, o.SyncInterval = fsys, mode, 2*1000*1000 // 2 ms
	l, _, _ := open(t, dir, o)

	var (
		mu       sync.Mutex
		appended = map[uint64][]byte{}
		count    atomic.Int64
		target   = int64(50 + rng.IntN(600))
		reached  = make(chan struct{})
		once     sync.Once
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := 0; !stop.Load(); i++ {
				b := body(w*100000 + i)
				lsn, err := l.Append(b)
				if err != nil {
					return
				}
				mu.Lock()
				appended[lsn] = b
				mu.Unlock()
				if count.Add(1) >= target {
					once.Do(func() { close(reached) })
				}
				if r.IntN(4) == 0 {
					if err := l.WaitContext(ctx, lsn); err != nil {
						return
					}
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() { // a snapshotter: its chunk names its start
		defer wg.Done()
		for !stop.Load() {
			start := l.LastLSN()
			sw, err := l.BeginSnapshot(start)
			if err != nil {
				return
			}
			sw.WriteChunk([]byte(fmt.Sprintf("start=%d", start)))
			if err := sw.Commit(ctx, l.LastLSN()); err != nil {
				return
			}
			if err := l.WaitContext(ctx, l.LastLSN()); err != nil {
				return
			}
		}
	}()

	<-reached
	img := fsys.Crash(rng)
	guaranteed := l.Durable()
	if mode == wal.FsyncInterval {
		guaranteed = l.Stats().Synced
	}
	stop.Store(true)
	cancel()
	_ = l.Close() // it cannot write any more: it reports what it left
	wg.Wait()
	if err := img.Restore(); err != nil {
		t.Fatal(err)
	}

	o2 := testOpts(t)
	o2.FS = fastFS(dir)
	l2, rec, r := open(t, dir, o2)
	var start uint64
	if rec.Snapshot != nil {
		start = rec.Snapshot.Start
		if len(r.chunks) != 1 || string(r.chunks[0]) != "start="+strconv.FormatUint(start, 10) {
			t.Fatalf("snapshot at %d restored %q", start, r.chunks)
		}
	}
	var want []uint64
	for lsn := range appended {
		if lsn > start {
			want = append(want, lsn)
		}
	}
	slices.Sort(want)
	if len(r.lsns) > len(want) || !slices.Equal(r.lsns, want[:len(r.lsns)]) {
		t.Fatalf("recovered %d records after %d, not a prefix of the %d appended: %v… against %v…", len(r.lsns), start, len(want), head(r.lsns), head(want))
	}
	for _, lsn := range want {
		if lsn <= guaranteed && !slices.Contains(r.lsns, lsn) {
			t.Fatalf("record %d was durable at the crash (up to %d) and is lost; recovered up to %d, torn %v", lsn, guaranteed, r.lsns[len(r.lsns)-1], rec.Torn)
		}
	}
	for _, lsn := range r.lsns {
		if string(r.bodies[lsn]) != string(appended[lsn]) {
			t.Fatalf("record %d is %q, want %q", lsn, r.bodies[lsn], appended[lsn])
		}
	}
	// It goes on, and keeps what it recovered.
	more := appendN(t, l2, 900000, 5)
	mustClose(t, l2)
	l3, _, r3 := open(t, dir, o2)
	defer mustClose(t, l3)
	if exp := append(slices.Clone(r.lsns), more...); !slices.Equal(r3.lsns, exp) {
		t.Fatalf("after the restart: %d records, want %d", len(r3.lsns), len(exp))
	}
	if rec.Torn != nil && !strings.Contains(rec.Torn.String(), "none was acknowledged") {
		t.Fatal(rec.Torn)
	}
}
