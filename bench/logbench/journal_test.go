package logbench

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// testSink keeps every group; a group can be held until the test lets it go,
// and a group number can fail.
type testSink struct {
	mu      sync.Mutex
	groups  []Group
	durable atomic.Uint64
	entered chan int      // receives the group number on entry, if set
	release chan struct{} // Append waits for it, if set
	failAt  int           // 1-based group that fails
}

func (s *testSink) Append(g *Group) error {
	s.mu.Lock()
	n := len(s.groups) + 1
	c := *g
	c.Frames = append([]byte(nil), g.Frames...)
	s.groups = append(s.groups, c)
	s.mu.Unlock()
	if s.entered != nil {
		s.entered <- n
	}
	if s.release != nil {
		<-s.release
	}
	if n == s.failAt {
		return errors.New("disk on fire")
	}
	s.durable.Store(g.Last)
	return nil
}

func (s *testSink) Close() error { return nil }

// Commands from many goroutines get contiguous LSNs; each group holds whole
// frames in LSN order after the previous group; Wait returns only once the
// LSN's group is durable.
func TestJournalOrderAndDurability(t *testing.T) {
	s := &testSink{}
	j := NewJournal(s, 1)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				body := []byte(fmt.Sprintf("g%d-%d", g, i))
				lsn, err := j.Append(body, bodyCRC(body))
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					continue // not every submitter waits
				}
				if err := j.Wait(lsn); err != nil {
					t.Error(err)
					return
				}
				if d := s.durable.Load(); d < lsn {
					t.Errorf("Wait(%d) returned with %d durable", lsn, d)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	next := uint64(1)
	for _, g := range s.groups {
		if g.First != next || g.Last-g.First+1 != uint64(g.N) {
			t.Fatalf("group %+v after lsn %d", g, next-1)
		}
		if err := eachFrame(g.Frames, func(f frame) error {
			if f.lsn != next {
				return fmt.Errorf("lsn %d, want %d", f.lsn, next)
			}
			next++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if next != 8*300+1 {
		t.Fatalf("%d commands persisted, want %d", next-1, 8*300)
	}
}

// Whatever arrives while a group is being written is the next group, and the
// frames carry the synced watermark of the time they were appended.
func TestJournalGroupCommit(t *testing.T) {
	s := &testSink{entered: make(chan int, 10), release: make(chan struct{})}
	j := NewJournal(s, 1)
	body := []byte("x")
	if _, err := j.Append(body, bodyCRC(body)); err != nil {
		t.Fatal(err)
	}
	<-s.entered // group 1 is being written
	var last uint64
	for i := 0; i < 10; i++ {
		last, _ = j.Append(body, bodyCRC(body))
	}
	s.release <- struct{}{}
	<-s.entered
	s.release <- struct{}{}
	if err := j.Wait(last); err != nil {
		t.Fatal(err)
	}
	close(s.release)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if len(s.groups) != 2 || s.groups[0].N != 1 || s.groups[1].N != 10 {
		t.Fatalf("groups of %d and %d commands, want 1 and 10", s.groups[0].N, s.groups[1].N)
	}
	if err := eachFrame(s.groups[1].Frames, func(f frame) error {
		if f.synced != 0 {
			return fmt.Errorf("lsn %d carries synced %d, appended before lsn 1 was durable", f.lsn, f.synced)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A failed group fails its waiters and every later command.
func TestJournalSinkFailure(t *testing.T) {
	s := &testSink{failAt: 1}
	j := NewJournal(s, 1)
	body := []byte("x")
	lsn, err := j.Append(body, bodyCRC(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Wait(lsn); err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after a failed group: %v", err)
	}
	if _, err := j.Append(body, bodyCRC(body)); err == nil {
		t.Fatal("Append after a failed group succeeded")
	}
	if err := j.Close(); err == nil {
		t.Fatal("Close hid the sink's error")
	}
}

// Close persists what is pending.
func TestJournalCloseFlushes(t *testing.T) {
	s := &testSink{}
	j := NewJournal(s, 1)
	body := []byte("x")
	for i := 0; i < 5; i++ {
		if _, err := j.Append(body, bodyCRC(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if s.durable.Load() != 5 {
		t.Fatalf("%d durable after Close, want 5", s.durable.Load())
	}
}
