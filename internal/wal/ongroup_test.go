package wal_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/distq/distq/internal/wal"
	"github.com/distq/distq/internal/wal/waltest"
)

// OnGroup is called once per group written, with its frames and bytes:
// the records appended during one sync come as one group, and the calls
// add up to the log's own counters.
func TestOnGroup(t *testing.T) {
	dir := t.TempDir()
	fsys := waltest.New(dir)
	o := testOpts(t)
	o.FS = fsys
	var (
		mu     sync.Mutex
		groups []wal.Group
	)
	o.OnGroup = func(g wal.Group) {
		mu.Lock()
		groups = append(groups, g)
		mu.Unlock()
	}
	l, _, _ := open(t, dir, o)
	first := appendN(t, l, 0, 1)
	path := frameIndex(t, dir)[first[0]].path

	var (
		hold    atomic.Bool
		entered = make(chan struct{})
		release = make(chan struct{})
	)
	fsys.SetHook(func(c waltest.Call) error {
		if c.Op == waltest.OpDatasync && c.Name == path && hold.CompareAndSwap(true, false) {
			entered <- struct{}{}
			<-release
		}
		return nil
	})
	hold.Store(true)
	if _, err := l.Append(body(1)); err != nil {
		t.Fatal(err)
	}
	<-entered
	var last uint64
	for i := range 10 {
		lsn, err := l.Append(body(2 + i))
		if err != nil {
			t.Fatal(err)
		}
		last = lsn
	}
	close(release)
	if err := l.WaitContext(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	mustClose(t, l)

	mu.Lock()
	defer mu.Unlock()
	var bytes, records, big int
	for _, g := range groups {
		if g.Records < 1 || g.Bytes < 1 || g.Duration <= 0 {
			t.Errorf("group %+v: want at least one record and byte, and a duration", g)
		}
		bytes += g.Bytes
		records += g.Records
		if g.Records >= 10 && g.Synced {
			big++
		}
	}
	if big == 0 {
		t.Errorf("groups %+v: the 10 records appended during a sync did not come as one synced group", groups)
	}
	if records < 12 {
		t.Errorf("groups held %d records; want at least the 12 appended", records)
	}
	if uint64(len(groups)) < st.Groups || uint64(bytes) < st.Bytes {
		t.Errorf("OnGroup saw %d groups, %d bytes; the log counted %d groups, %d bytes", len(groups), bytes, st.Groups, st.Bytes)
	}
}
