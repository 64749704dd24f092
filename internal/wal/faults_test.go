package wal_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distq/distq/internal/wal"
	"github.com/distq/distq/internal/wal/waltest"
)

// waitFor waits until cond holds, on the log's change events; the
// deadline only ends a test that would otherwise hang.
func waitFor(t *testing.T, l *wal.Log, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		ch := l.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("never: %s", what)
		}
	}
}

func isOpen(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

// The disk fills: the preparer cannot make the next segment, so puts are
// refused (before they are applied) with a message that says why and what
// to do, while other records go on into the active segment and the
// reserve; once the reserve is in use, every change is refused. When
// space returns, everything is accepted again, and nothing was lost.
func TestDiskFullRefusesPutsThenEverything(t *testing.T) {
	dir := t.TempDir()
	fsys := waltest.New(dir)
	o := testOpts(t)
	o.FS = fsys
	l, _, _ := open(t, dir, o)
	want := map[uint64][]byte{}
	n := 0
	add := func(k int) {
		for _, lsn := range appendN(t, l, n, k) {
			want[lsn] = body(n)
			n++
		}
	}
	add(5)
	waitFor(t, l, "two segments ready", func() bool { return l.Ready() == 2 })
	fsys.SetCapacity(fsys.Usage())

	for i := 0; l.AdmitPut() == nil; i++ {
		if i > 2000 {
			t.Fatal("puts still admitted with the disk full")
		}
		add(3)
	}
	err := l.AdmitPut()
	if !errors.Is(err, wal.ErrNoSpace) || errors.Is(err, wal.ErrUnavailable) {
		t.Fatalf("put admission: %v, want ErrNoSpace", err)
	}
	for _, s := range []string{"the master's disk is full", "data dir " + dir, "no space left on device", "8 KiB for its next segment", "puts are refused until space returns", "everything already acknowledged is safe"} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("message %q does not say %q", err, s)
		}
	}
	if err := l.Admit(); err != nil {
		t.Fatalf("settles refused with one segment in reserve: %v", err)
	}
	for i := 0; l.Admit() == nil; i++ {
		if i > 2000 {
			t.Fatal("changes still admitted with the reserve in use")
		}
		add(3)
	}
	err = l.Admit()
	if !errors.Is(err, wal.ErrNoSpace) || !strings.Contains(err.Error(), "every change is refused until space returns") {
		t.Fatalf("admission with the reserve in use: %v", err)
	}
	var se *wal.SegmentError
	if !errors.As(err, &se) || !se.ReserveUsed {
		t.Fatalf("%#v, want a SegmentError with the reserve used", err)
	}

	fsys.SetCapacity(-1)
	waitFor(t, l, "puts accepted again", func() bool { return l.AdmitPut() == nil && l.Admit() == nil })
	add(40)
	mustClose(t, l)
	reopenCheck(t, "after the disk was full", dir, testOpts(t), want, func(uint64) bool { return true })
}

// The next segment cannot be made for another reason than space: puts are
// refused as unavailable, not as a full disk.
func TestPreparerFailureIsUnavailable(t *testing.T) {
	dir := t.TempDir()
	fsys := waltest.New(dir)
	o := testOpts(t)
	o.FS = fsys
	var fail atomic.Bool
	fail.Store(true)
	fsys.SetHook(func(c waltest.Call) error {
		if fail.Load() && c.Op == waltest.OpOpen && strings.HasSuffix(c.Name, ".seg") {
			return syscall.EACCES
		}
		return nil
	})
	l, _, _ := open(t, dir, o)
	defer mustClose(t, l)
	waitFor(t, l, "puts refused", func() bool { return l.AdmitPut() != nil })
	err := l.AdmitPut()
	if !errors.Is(err, wal.ErrUnavailable) || errors.Is(err, wal.ErrNoSpace) || !strings.Contains(err.Error(), "cannot make its next log segment") {
		t.Fatalf("put admission: %v", err)
	}
	fail.Store(false)
	waitFor(t, l, "puts accepted", func() bool { return l.AdmitPut() == nil })
	appendN(t, l, 0, 3)
}

// A write or an fdatasync of the active segment fails: the writer keeps the
// group, refuses every change (ErrUnavailable), answers nothing of it, and
// writes the same bytes at the same offset again, then syncs, until that
// works; then the answers go out and changes are accepted. Records
// appended meanwhile follow in order.
func TestWriteFailureRewritesAndHoldsAnswers(t *testing.T) {
	for _, op := range []waltest.Op{waltest.OpDatasync, waltest.OpWrite} {
		t.Run(op.String(), func(t *testing.T) {
			dir := t.TempDir()
			fsys := waltest.New(dir)
			o := testOpts(t)
			o.FS = fsys
			l, _, _ := open(t, dir, o)
			want := map[uint64][]byte{}
			first := appendN(t, l, 0, 3)
			for i, lsn := range first {
				want[lsn] = body(i)
			}
			path := frameIndex(t, dir)[first[0]].path

			var (
				mu     sync.Mutex
				writes []waltest.Call
				fail   atomic.Bool
				failed = make(chan struct{}, 100)
			)
			fail.Store(true)
			fsys.SetHook(func(c waltest.Call) error {
				if c.Name != path {
					return nil
				}
				if c.Op == waltest.OpWrite {
					mu.Lock()
					writes = append(writes, c)
					mu.Unlock()
				}
				if c.Op == op && fail.Load() {
					select {
					case failed <- struct{}{}:
					default:
					}
					return syscall.EIO
				}
				return nil
			})
			lsn, err := l.Append(body(100))
			if err != nil {
				t.Fatal(err)
			}
			want[lsn] = body(100)
			ch := l.Wait(lsn)
			waitFor(t, l, "changes refused", func() bool { return l.Admit() != nil })
			err = l.Admit()
			if !errors.Is(err, wal.ErrUnavailable) || !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "cannot write its log") {
				t.Fatalf("admission: %v", err)
			}
			if !errors.Is(l.AdmitPut(), wal.ErrUnavailable) {
				t.Fatalf("put admission: %v", l.AdmitPut())
			}
			later, _ := l.Append(body(101))
			want[later] = body(101)
			for i := 0; i < 3; i++ {
				<-failed
				if !isOpen(ch) || l.Durable() >= lsn {
					t.Fatalf("record %d answered while its group fails (durable %d)", lsn, l.Durable())
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := l.WaitContext(ctx, lsn); !errors.Is(err, context.Canceled) || !errors.Is(err, wal.ErrUnavailable) {
				t.Fatalf("WaitContext during the failure: %v", err)
			}

			fail.Store(false)
			<-ch
			if l.Durable() < lsn {
				t.Fatalf("released with durable %d < %d", l.Durable(), lsn)
			}
			if err := l.WaitContext(context.Background(), later); err != nil {
				t.Fatal(err)
			}
			waitFor(t, l, "changes accepted", func() bool { return l.Admit() == nil })
			mu.Lock()
			var off int64 = -1
			same := 0
			for _, c := range writes {
				if off < 0 {
					off = c.Off
				}
				if c.Off == off {
					same++
				}
			}
			nw := len(writes)
			mu.Unlock()
			// Each retry writes every unsynced extent again from the first
			// (an idle no-op may precede the group), stopping at a failed
			// write: the group's own offset is written at least twice.
			if same < 2 || nw < 4 {
				t.Fatalf("the failed group was written %d times at offset %d, %d writes in all", same, off, nw)
			}
			if s := l.Stats(); s.WriteErrors < 3 {
				t.Fatalf("stats: %+v", s)
			}
			mustClose(t, l)
			reopenCheck(t, "after the failure", dir, testOpts(t), want, func(uint64) bool { return true })
		})
	}
}

// Short writes, with or without an error, are written again whole.
func TestShortWrites(t *testing.T) {
	for _, withErr := range []bool{false, true} {
		dir := t.TempDir()
		fsys := waltest.New(dir)
		o := testOpts(t)
		o.FS = fsys
		var shorts atomic.Int32
		fsys.SetHook(func(c waltest.Call) error {
			if c.Op == waltest.OpWrite && strings.HasSuffix(c.Name, ".seg") && c.Len > 30 && c.Len < 4096 && shorts.Add(1) <= 5 {
				sw := &waltest.ShortWrite{N: c.Len / 2}
				if withErr {
					sw.Err = syscall.EIO
				}
				return sw
			}
			return nil
		})
		l, _, _ := open(t, dir, o)
		want := map[uint64][]byte{}
		for g := 0; g < 10; g++ {
			for i, lsn := range appendN(t, l, g*4, 4) {
				want[lsn] = body(g*4 + i)
			}
		}
		mustClose(t, l)
		if shorts.Load() < 5 {
			t.Fatalf("%d short writes", shorts.Load())
		}
		reopenCheck(t, "after short writes", dir, testOpts(t), want, func(uint64) bool { return true })
	}
}

// Close does not wait for a disk that fails: it reports the records it
// could not write, and their waiters get the same error.
func TestCloseGivesUpOnAFailingDisk(t *testing.T) {
	dir := t.TempDir()
	fsys := waltest.New(dir)
	o := testOpts(t)
	o.FS = fsys
	l, _, _ := open(t, dir, o)
	appendN(t, l, 0, 2)
	fsys.SetHook(func(c waltest.Call) error {
		if c.Op == waltest.OpDatasync {
			return syscall.EIO
		}
		return nil
	})
	lsn, _ := l.Append(body(9))
	waitFor(t, l, "changes refused", func() bool { return l.Admit() != nil })
	err := l.Close()
	if !errors.Is(err, wal.ErrClosed) || !strings.Contains(err.Error(), "not on disk") {
		t.Fatalf("close: %v", err)
	}
	if err := l.WaitContext(context.Background(), lsn); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("wait after a failed close: %v", err)
	}
	_ = bytes.MinRead
}
