package wal_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distq/distq/internal/wal"
	"github.com/distq/distq/internal/wal/waltest"
)

// Whatever is appended while a group syncs is the next group, written and
// synced once; those frames carry the synced mark of the moment they were
// appended, and nothing waiting on the first group is answered before its
// sync returns.
func TestGroupCommit(t *testing.T) {
	dir := t.TempDir()
	fsys := waltest.New(dir)
	o := testOpts(t)
	o.FS = fsys
	l, _, _ := open(t, dir, o)
	first := appendN(t, l, 0, 1)
	path := frameIndex(t, dir)[first[0]].path

	var (
		hold    atomic.Bool
		syncs   atomic.Int32
		entered = make(chan struct{})
		release = make(chan struct{})
	)
	fsys.SetHook(func(c waltest.Call) error {
		if c.Op == waltest.OpDatasync && c.Name == path {
			syncs.Add(1)
			if hold.CompareAndSwap(true, false) {
				entered <- struct{}{}
				<-release
			}
		}
		return nil
	})
	hold.Store(true)
	a, _ := l.Append(body(1))
	<-entered
	var group []uint64
	for i := 0; i < 10; i++ {
		lsn, _ := l.Append(body(2 + i))
		group = append(group, lsn)
	}
	chA := l.Wait(a)
	if !isOpen(chA) || l.Durable() >= a {
		t.Fatalf("record %d answered while its sync runs", a)
	}
	before := syncs.Load()
	close(release)
	<-chA
	if err := l.WaitContext(context.Background(), group[9]); err != nil {
		t.Fatal(err)
	}
	if n := syncs.Load() - before; n != 1 {
		t.Fatalf("the 10 records appended during a sync took %d syncs, want 1", n)
	}
	mustClose(t, l)
	idx := frameIndex(t, dir)
	for _, lsn := range group {
		if s := idx[lsn].f.Synced; s >= a {
			t.Fatalf("record %d carries synced %d, appended before %d was synced", lsn, s, a)
		}
	}
}

// Records from many goroutines get distinct LSNs in order; a wait returns
// only once its record is durable; all come back with their content.
func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t)
	o.FS = fastFS(dir)
	l, _, _ := open(t, dir, o)
	var (
		mu   sync.Mutex
		want = map[uint64][]byte{}
		wg   sync.WaitGroup
	)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				b := body(g*1000 + i)
				lsn, err := l.Append(b)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if want[lsn] != nil {
					t.Errorf("lsn %d given twice", lsn)
				}
				want[lsn] = b
				mu.Unlock()
				if i%3 == 0 {
					continue
				}
				if err := l.WaitContext(context.Background(), lsn); err != nil {
					t.Error(err)
					return
				}
				if d := l.Durable(); d < lsn {
					t.Errorf("wait for %d returned with %d durable", lsn, d)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	mustClose(t, l)
	if s := l.Stats(); s.Groups == 0 || s.Syncs == 0 || s.Bytes == 0 {
		t.Fatalf("stats %+v", s)
	}
	reopenCheck(t, "concurrent", dir, o, want, func(uint64) bool { return true })
}

// eventually polls cond (for states no event announces); the deadline
// only ends a test that would hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(60 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// In interval mode a record is durable once written; the ticker syncs it
// later, and Close syncs what is left.
func TestIntervalMode(t *testing.T) {
	for _, every := range []time.Duration{time.Hour, time.Millisecond} {
		t.Run(fmt.Sprint(every), func(t *testing.T) {
			dir := t.TempDir()
			o := testOpts(t)
			o.Fsync, o.SyncInterval = wal.FsyncInterval, every
			l, _, _ := open(t, dir, o)
			lsns := appendN(t, l, 0, 20)
			last := lsns[len(lsns)-1]
			if every == time.Hour {
				if s := l.Stats(); s.Synced >= last {
					t.Fatalf("synced %d with no tick", s.Synced)
				}
			} else {
				eventually(t, "the tick syncs", func() bool { return l.Stats().Synced >= last })
			}
			mustClose(t, l)
			want := map[uint64][]byte{}
			for i, lsn := range lsns {
				want[lsn] = body(i)
			}
			reopenCheck(t, "interval", dir, o, want, func(uint64) bool { return true })
		})
	}
}
