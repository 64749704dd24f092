package queue

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/distq/distq/internal/state"
)

// memJournal is a Journal in memory for the tests of crash and restart. It
// keeps every record appended, in order (record i has LSN i+1), and a
// synced mark, which a wait advances to the LSN it waits for: the disk is
// instant, and what the broker never waited for may be lost. A crash keeps
// a prefix of what was written, at least the synced part (crash).
type memJournal struct {
	mu     sync.Mutex
	recs   [][]byte
	synced uint64
	closed bool
	// onAppend, if set, is called after each record is appended, with its
	// LSN, while the broker still holds the locks of the command's queues:
	// the broker's state is then the state at that LSN.
	onAppend func(lsn uint64)
	// onSync, if set, is called after a wait advanced the synced mark.
	onSync func(synced uint64)
}

func (j *memJournal) Append(rec []byte) (uint64, error) {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return 0, ErrLogClosed
	}
	j.recs = append(j.recs, bytes.Clone(rec)) // rec is the broker's buffer
	lsn := uint64(len(j.recs))
	j.mu.Unlock()
	if j.onAppend != nil {
		j.onAppend(lsn)
	}
	return lsn, nil
}

func (j *memJournal) LastLSN() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return uint64(len(j.recs))
}

func (j *memJournal) Durable() uint64 { return j.Synced() }

func (j *memJournal) WaitContext(ctx context.Context, lsn uint64) error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrLogClosed
	}
	if lsn > uint64(len(j.recs)) {
		j.mu.Unlock()
		return fmt.Errorf("memJournal: wait for LSN %d, last %d", lsn, len(j.recs))
	}
	advanced := lsn > j.synced
	j.synced = max(j.synced, lsn)
	j.mu.Unlock()
	if advanced && j.onSync != nil {
		j.onSync(lsn)
	}
	return nil // the disk is instant: a wait never blocks, so ctx cannot end it
}

func (j *memJournal) AdmitPut() error { return nil }
func (j *memJournal) Admit() error    { return nil }

// Synced is the synced mark: what a crash keeps at least.
func (j *memJournal) Synced() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.synced
}

// crash cuts the log after the record of LSN cut, which must be at least
// the synced mark (a crash loses only what nobody waited for), and returns
// the records kept. The journal goes on from there: the next record has
// LSN cut+1.
func (j *memJournal) crash(cut uint64) ([][]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if cut < j.synced || cut > uint64(len(j.recs)) {
		return nil, fmt.Errorf("memJournal: a crash at LSN %d, synced %d, last %d", cut, j.synced, len(j.recs))
	}
	clear(j.recs[cut:])
	j.recs = j.recs[:cut]
	j.synced = cut // what the restart read is on disk
	return j.recs[:cut:cut], nil
}

// memSnapshot is a snapshot written by Broker.Snapshot into memory.
type memSnapshot struct {
	start, end uint64
	recs       [][]byte
	// between, if set, runs after Begin and after each Write: the broker
	// holds no lock then, and the test changes the queues under way.
	between func()
}

func (s *memSnapshot) Begin(start uint64) error {
	s.start = start
	if s.between != nil {
		s.between()
	}
	return nil
}

func (s *memSnapshot) Write(rec []byte) error {
	s.recs = append(s.recs, bytes.Clone(rec)) // rec is reused
	if s.between != nil {
		s.between()
	}
	return nil
}

// rebuild replays what a restart reads into a new machine: the snapshot
// snap, if not nil, then the records of log after its start (log holds
// every record from LSN 1), as durable.Open does.
func rebuild(snap *memSnapshot, log [][]byte) (*state.Machine, error) {
	m := state.New()
	var from uint64
	if snap != nil {
		if snap.end > uint64(len(log)) {
			return nil, fmt.Errorf("snapshot ends at LSN %d, the log at %d", snap.end, len(log))
		}
		for i, rec := range snap.recs {
			c, err := state.Decode(rec)
			if err != nil {
				return nil, fmt.Errorf("snapshot record %d: %w", i, err)
			}
			m.Apply(c)
		}
		from = snap.start
	}
	for i := from; i < uint64(len(log)); i++ {
		c, err := state.Decode(log[i])
		if err != nil {
			return nil, fmt.Errorf("log record %d: %w", i+1, err)
		}
		m.Apply(c)
	}
	return m, nil
}

// firstDiff names the first line where two Canonical dumps differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got %s\nwant %s", i+1, gl, wl)
		}
	}
	return "no difference"
}

// checkNoLeases checks that a broker just started from a recovered state
// holds no leases and that every item of it is ready or delayed.
func checkNoLeases(b *Broker) error {
	for _, q := range b.order {
		q.mu.Lock()
		n, leased, ready, delayed := q.s.Len(), q.nleased, q.ready.len(), len(q.delayed)
		q.mu.Unlock()
		if leased != 0 || ready+delayed != n {
			return fmt.Errorf("%s after a restart: %d items, %d ready, %d delayed, %d leased", q.name, n, ready, delayed, leased)
		}
		if err := checkQueue(q, true); err != nil {
			return err
		}
	}
	return nil
}

// TestMemJournal pins the test journal's contract: LSNs from 1, waits
// advance the synced mark, a crash keeps a prefix no shorter than it.
func TestMemJournal(t *testing.T) {
	j := &memJournal{}
	for i := range 3 {
		if lsn, err := j.Append([]byte{byte(i)}); err != nil || lsn != uint64(i+1) {
			t.Fatalf("Append %d: %d, %v", i, lsn, err)
		}
	}
	if err := j.WaitContext(context.Background(), 2); err != nil || j.Synced() != 2 {
		t.Fatalf("WaitContext(2): %v, synced %d", err, j.Synced())
	}
	if _, err := j.crash(1); err == nil {
		t.Fatal("a crash lost a synced record")
	}
	recs, err := j.crash(2)
	if err != nil || len(recs) != 2 || recs[1][0] != 1 {
		t.Fatalf("crash(2): %v, %v", recs, err)
	}
	if lsn, _ := j.Append([]byte{9}); lsn != 3 {
		t.Fatalf("LSN after a crash: %d, want 3", lsn)
	}
}
