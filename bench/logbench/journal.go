package logbench

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Group is what the journal's writer hands an engine: the frames of every
// command appended since the previous group, in LSN order.
type Group struct {
	Frames      []byte // whole frames, concatenated
	First, Last uint64 // LSNs
	N           int    // frames
}

// Sink is an engine: it persists groups in order and returns once a group is
// durable. One goroutine calls Append at a time; the journal reuses
// g.Frames once Append returns.
type Sink interface {
	Append(g *Group) error
	Close() error
}

// ErrClosed is returned for commands appended after Close.
var ErrClosed = errors.New("journal closed")

// epoch is one group's completion: ch is made only when someone waits.
type epoch struct {
	end uint64
	ch  chan struct{}
}

// Journal is the group commit of the design (§3.3): submitters append encoded
// commands under one mutex and get an LSN; one writer goroutine takes
// everything pending, hands it to the sink as one group (one write and one
// sync in the file engines), and wakes whoever waits for an LSN of it.
// Whatever arrives during a sync is the next group.
type Journal struct {
	mu     sync.Mutex
	buf    []byte
	spare  []byte
	n      int    // frames in buf
	next   uint64 // LSN of the next command
	synced uint64 // last LSN the sink made durable
	err    error  // sticky: the sink failed or the journal closed
	cur    epoch  // the group being written
	nxt    epoch  // the group being gathered
	wake   chan struct{}
	done   chan struct{}

	durable atomic.Uint64
	sink    Sink

	// Writer-side counters (read after the writer stops, or atomically).
	Groups     atomic.Uint64
	GroupBytes atomic.Uint64
	GroupCmds  atomic.Uint64
	// SinkTime, when set, records each sink.Append's duration.
	SinkTime *Samples
}

// NewJournal starts a journal whose first LSN is first (1 for a new log).
func NewJournal(s Sink, first uint64) *Journal {
	j := &Journal{
		next: first, synced: first - 1, sink: s,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		buf: make([]byte, 0, 1<<20), spare: make([]byte, 0, 1<<20),
	}
	j.durable.Store(first - 1)
	go j.writer()
	return j
}

// Append frames body (crc = bodyCRC(body), computed by the caller outside the
// lock) and returns its LSN. It does not wait.
func (j *Journal) Append(body []byte, crc uint32) (uint64, error) {
	j.mu.Lock()
	if j.err != nil {
		err := j.err
		j.mu.Unlock()
		return 0, err
	}
	lsn := j.next
	j.next++
	j.buf = appendFrame(j.buf, body, crc, lsn, j.synced)
	j.n++
	j.mu.Unlock()
	j.poke()
	return lsn, nil
}

// AppendBatch appends several commands at once (under one lock) and returns
// the last LSN.
func (j *Journal) AppendBatch(bodies [][]byte, crcs []uint32) (uint64, error) {
	j.mu.Lock()
	if j.err != nil {
		err := j.err
		j.mu.Unlock()
		return 0, err
	}
	for i, b := range bodies {
		j.buf = appendFrame(j.buf, b, crcs[i], j.next, j.synced)
		j.next++
	}
	j.n += len(bodies)
	last := j.next - 1
	j.mu.Unlock()
	j.poke()
	return last, nil
}

func (j *Journal) poke() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// Wait returns once lsn is durable, or the sink's error.
func (j *Journal) Wait(lsn uint64) error {
	if lsn <= j.durable.Load() {
		return nil
	}
	j.mu.Lock()
	if lsn <= j.durable.Load() {
		j.mu.Unlock()
		return nil
	}
	if j.err != nil && !errors.Is(j.err, ErrClosed) {
		err := j.err
		j.mu.Unlock()
		return err
	}
	var ch chan struct{}
	if j.cur.end != 0 && lsn <= j.cur.end {
		if j.cur.ch == nil {
			j.cur.ch = make(chan struct{})
		}
		ch = j.cur.ch
	} else {
		if j.nxt.ch == nil {
			j.nxt.ch = make(chan struct{})
		}
		ch = j.nxt.ch
	}
	j.mu.Unlock()
	<-ch
	if lsn <= j.durable.Load() {
		return nil
	}
	j.mu.Lock()
	err := j.err
	j.mu.Unlock()
	if err == nil {
		err = ErrClosed
	}
	return err
}

// Durable is the last LSN made durable.
func (j *Journal) Durable() uint64 { return j.durable.Load() }

func (j *Journal) writer() {
	defer close(j.done)
	for {
		j.mu.Lock()
		for len(j.buf) == 0 {
			if j.err != nil {
				ch := j.nxt.ch
				j.nxt = epoch{}
				j.mu.Unlock()
				if ch != nil {
					close(ch)
				}
				return
			}
			j.mu.Unlock()
			<-j.wake
			j.mu.Lock()
		}
		g := Group{Frames: j.buf, First: j.next - uint64(j.n), Last: j.next - 1, N: j.n}
		j.buf, j.spare = j.spare[:0], nil
		j.n = 0
		j.cur = epoch{end: g.Last, ch: j.nxt.ch}
		j.nxt = epoch{}
		j.mu.Unlock()

		t0 := time.Now()
		err := j.sink.Append(&g)
		if j.SinkTime != nil {
			j.SinkTime.Add(time.Since(t0))
		}
		j.Groups.Add(1)
		j.GroupBytes.Add(uint64(len(g.Frames)))
		j.GroupCmds.Add(uint64(g.N))

		j.mu.Lock()
		if err == nil {
			j.synced = g.Last
			j.durable.Store(g.Last)
		} else if j.err == nil || errors.Is(j.err, ErrClosed) {
			j.err = err
		}
		ch := j.cur.ch
		j.cur = epoch{}
		j.spare = g.Frames[:0]
		if err != nil {
			// Nothing after a failed group can become durable: fail the
			// gathering group's waiters too.
			if j.nxt.ch != nil {
				close(j.nxt.ch)
				j.nxt = epoch{}
			}
			j.buf = j.buf[:0]
			j.n = 0
		}
		j.mu.Unlock()
		if ch != nil {
			close(ch)
		}
	}
}

// Close makes the writer persist what is pending, then stops it. It does not
// close the sink.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.err == nil {
		j.err = ErrClosed
	}
	j.mu.Unlock()
	j.poke()
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	if errors.Is(j.err, ErrClosed) {
		return nil
	}
	return j.err
}
