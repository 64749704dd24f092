package queue

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/distq/distq/internal/state"
)

// Journal is where a durable broker logs the commands that change the
// queues' logged state, in the order it applies them: the master's
// write-ahead log (internal/wal), or later a raft log. The broker applies a
// command in memory first and appends it right after, under the locks of
// the queues it names, so that the log's order is the order of the
// changes; answers wait for the log to say their commands are durable
// (Broker.Sync), and deliveries for the records that made their items and
// reserved their lease ids (unsynced.go). Deliveries are not logged
// themselves: a restart makes every leased item ready again.
type Journal interface {
	// Append logs a command's record and returns its LSN. It must not
	// wait for I/O. It fails only once the journal is closed.
	Append(rec []byte) (uint64, error)
	// LastLSN is the last LSN handed out.
	LastLSN() uint64
	// Durable is the last LSN that WaitContext would not wait for. It
	// must not block.
	Durable() uint64
	// WaitContext returns once lsn is durable, or with an error once it
	// cannot be (the journal closed) or ctx ends.
	WaitContext(ctx context.Context, lsn uint64) error
	// AdmitPut says whether a command that adds items may be applied now:
	// nil, or an error that is ErrNoSpace or ErrLogUnavailable.
	AdmitPut() error
	// Admit says the same of any other command.
	Admit() error
}

// The bounds of one command: an operation on more items, or more bytes,
// logs several. They keep every record well below a log's largest.
const (
	maxCmdItems = 4096
	maxCmdBytes = 1 << 20
)

// durable reports whether the broker logs its changes.
func (b *Broker) durable() bool { return b.j != nil }

// admitPut says whether a command that adds items may be applied now.
func (b *Broker) admitPut() error {
	if b.j == nil {
		return nil
	}
	return b.j.AdmitPut()
}

// admit says whether any other command may be applied now.
func (b *Broker) admit() error {
	if b.j == nil {
		return nil
	}
	return b.j.Admit()
}

// Sync waits until every change made so far is durable: an operation
// whose answer promises something (a put's ids, a unary settle, the items
// of a get that settles them) calls it after the change and before the
// answer. The log is one order, so waiting for its last record covers the
// caller's. Without a journal it returns at once.
//
// A change the journal refused (it closed after admitting the change) was
// applied but never logged: Sync fails from then on (see unloggedLSN).
func (b *Broker) Sync(ctx context.Context) error {
	lsn := b.lastLSN.Load()
	if b.j == nil || lsn == 0 {
		return nil
	}
	if lsn == unloggedLSN {
		return errUnlogged
	}
	// The last LSN of the broker's own records, not the journal's: a log
	// may add records of its own (a no-op that carries a sync mark) that
	// it syncs only with the next real one.
	return b.j.WaitContext(ctx, lsn)
}

// noteLSN records that the broker's record lsn was appended.
func (b *Broker) noteLSN(lsn uint64) {
	for {
		at := b.lastLSN.Load()
		if lsn <= at || b.lastLSN.CompareAndSwap(at, lsn) {
			return
		}
	}
}

// record appends c, just applied, to the journal, and returns its LSN (0
// without a journal, unloggedLSN if the journal refused it). Called with the locks of the queues c names held
// (q's among them; q's buffer encodes it).
//
// Without a journal it returns at once, inlined at every call: an
// in-memory broker builds its commands only to apply them, and pays
// neither their encoding nor a call for them.
func (q *Queue) record(c state.Command) uint64 {
	if q.b.j == nil {
		return 0
	}
	return q.append(c)
}

// append encodes c into q's buffer and appends it to the journal (see
// record).
func (q *Queue) append(c state.Command) uint64 {
	j := q.b.j
	q.rec = state.AppendCommand(q.rec[:0], c)
	lsn, err := j.Append(q.rec)
	if err != nil {
		// Only a closed journal refuses a record: the master is stopping,
		// and a change made now is not logged. It is at most the last
		// moments of a shutdown, which a crash would lose as well; but
		// nobody may be told it is on disk, so whatever waits for it
		// fails from now on.
		lsn = unloggedLSN
		if !errors.Is(err, ErrLogClosed) {
			// (The type is read from the record: a method call on c
			// would make every command escape to the heap.)
			q.b.log.Error("a change could not be logged", "queue", q.name, "command", state.Type(q.rec[0]).String(), "error", err)
		}
	}
	q.b.noteLSN(lsn)
	if cap(q.rec) > 4*maxCmdBytes {
		q.rec = nil // one outsized command does not keep its buffer
	}
	return lsn
}

// unloggedLSN stands for the record of a change the journal refused: an
// LSN no log reaches. Sync after it, and a delivery of the items it made
// or under the lease ids it reserved, fail with errUnlogged.
const unloggedLSN = math.MaxUint64

var errUnlogged = fmt.Errorf("%w: a change made while it closed is not on disk", ErrLogClosed)

// putChunk is how many of msgs, from the front, one Put command takes: all
// of them without a journal, else at most maxCmdItems items and, past the
// first, maxCmdBytes of payload.
func (b *Broker) putChunk(msgs []Message) int {
	if b.j == nil {
		return len(msgs)
	}
	n, size := 0, 0
	for n < len(msgs) && n < maxCmdItems {
		size += len(msgs[n].Payload)
		if n > 0 && size > maxCmdBytes {
			break
		}
		n++
	}
	return n
}
