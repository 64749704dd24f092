package state

// Type names a command in the log.
type Type uint8

// The command types. Their numbers are the log's format: never reuse one.
const (
	TypePut         Type = 1
	TypeSettle      Type = 2
	TypeSettleReply Type = 3
	TypeFail        Type = 4
	TypeRequeue     Type = 5
	TypeClose       Type = 6
	TypeLeases      Type = 7
	TypeStart       Type = 8
	TypeBatch       Type = 9
	// The records of a snapshot (snapshot.go): applied like commands.
	TypeQueueMeta Type = 10
	TypeItems     Type = 11
	TypeProducers Type = 12
	// Operators' commands (AdminService).
	TypePurge Type = 13
	TypePause Type = 14
)

func (t Type) String() string {
	switch t {
	case TypePut:
		return "put"
	case TypeSettle:
		return "settle"
	case TypeSettleReply:
		return "settle-reply"
	case TypeFail:
		return "fail"
	case TypeRequeue:
		return "requeue"
	case TypeClose:
		return "close"
	case TypeLeases:
		return "leases"
	case TypeStart:
		return "start"
	case TypeBatch:
		return "batch"
	case TypeQueueMeta:
		return "queue-meta"
	case TypeItems:
		return "items"
	case TypeProducers:
		return "producers"
	case TypePurge:
		return "purge"
	case TypePause:
		return "pause"
	}
	return "unknown"
}

// Command is one logged state change. Every command carries the time the
// live master applied it (unix ns); Apply uses it only where the state
// depends on time (forgetting producers after the dedup window), so that a
// replay reads no clock.
type Command interface {
	Type() Type
}

// NewItem is an item as a producer or a reply gives it.
type NewItem struct {
	Payload []byte
	Headers map[string]string
}

// Put adds items with the consecutive ids FirstID, FirstID+1, ... to Queue.
// A Put is one chunk a put admitted: a put that waits for room between
// chunks logs one Put per chunk, each with its Offset in the request.
type Put struct {
	Queue   string
	Time    int64
	FirstID uint64
	Items   []NewItem
	// Dedup, when Producer is not zero, records that these items are
	// items[Offset:Offset+len(Items)] of the producer's put Seq, so that a
	// retry of that put is answered with these ids instead of storing the
	// items again (see Producers).
	Producer Producer
	Seq      uint64
	Offset   uint32
	// BatchCRC is the CRC32C of the whole put's payloads: a retry that
	// carries other items under the same sequence is a client's bug, told
	// apart from a retry.
	BatchCRC uint32
	// DedupWindow is how long (ns) a producer's sequences are remembered
	// after its last put. It travels in the command, not in the
	// configuration, so that a replay forgets exactly what the live master
	// forgot.
	DedupWindow int64
}

// Producer names a producer: 16 random bytes; all zero for none.
type Producer [16]byte

// Settle removes items: acknowledged, or taken by a get that settles them
// at once (auto-ack).
type Settle struct {
	Queue string
	Time  int64
	IDs   []uint64
}

// SettleReply removes each IDs[i] from Queue and adds Replies[i] to
// ReplyQueue with id FirstReplyID+i, replying to IDs[i]: one record, so
// that after a crash either the task is settled and its result is kept, or
// neither.
type SettleReply struct {
	Queue        string
	ReplyQueue   string
	Time         int64
	IDs          []uint64
	FirstReplyID uint64
	Replies      []NewItem
}

// Cause says why items failed; it is kept for reports, not applied.
type Cause uint8

// The causes of a Fail.
const (
	CauseNack         Cause = 1 // a consumer refused the item
	CauseExpired      Cause = 2 // its lease ran out
	CauseDisconnected Cause = 3 // its consumer went away
	CauseShutdown     Cause = 4 // the master stopped with it in flight
)

// Outcome is what became of a failed item, as the live master decided it.
type Outcome uint8

// The outcomes of a failed item.
const (
	// OutcomeReady: the item is ready again (now, or at Due if not zero).
	OutcomeReady Outcome = 1
	// OutcomeDead: the item moves to the dead-letter queue.
	OutcomeDead Outcome = 2
)

// Failed is one item of a Fail.
type Failed struct {
	ID       uint64
	Attempts uint32 // the attempts counted, this failure included
	Outcome  Outcome
	Due      int64 // OutcomeReady: when it is ready (unix ns; zero: now)
	Error    string
}

// Fail records failed deliveries: nacks, expired leases, lost consumers,
// and the items a stopping master held in flight. It records outcomes
// (retry at Due, or dead), so a replay under other -max-attempts or
// -retry-* flags rebuilds the same state.
type Fail struct {
	Queue string
	// DeadQueue is Queue's dead-letter queue, where OutcomeDead items go.
	DeadQueue string
	Time      int64
	Cause     Cause
	Items     []Failed
}

// Requeue moves items of DeadQueue back to Queue, their origin, with their
// attempts, error and retry time cleared. It carries the items whole (an
// operator's command, seldom and small), so that it rebuilds them even over
// a snapshot that read the dead-letter queue after they left it and their
// origin before they came.
type Requeue struct {
	Queue     string
	DeadQueue string
	Time      int64
	Items     []Item
}

// Close closes Queue to puts.
type Close struct {
	Queue string
	Time  int64
}

// Purge removes items an operator threw away: the items of Queue that were
// ready or delayed when the live master purged it (the leased ones stay:
// their consumers hold them), or the dead items of a dead-letter queue.
// It names its ids, as a Settle does, because which items were leased is
// not logged state: only the live master knows which to keep. Applied, it
// is a Settle under another name, kept apart so that a log tells an
// operator's purge from acknowledgements.
type Purge struct {
	Queue string
	Time  int64
	IDs   []uint64
}

// Pause sets whether Queue hands out items: Paused true stops every
// delivery from it (puts are still taken), false resumes them. It sets the
// flag, whatever it was, so applying it twice is applying it once.
type Pause struct {
	Queue  string
	Time   int64
	Paused bool
}

// Leases reserves the lease ids up to HW: a master that restarts hands out
// lease ids above it, so no lease id is ever given twice.
type Leases struct {
	HW   uint64
	Time int64
}

// Start marks a start of the master in the log, for operators and for the
// reports of recovery. It changes nothing.
type Start struct {
	Time        int64
	Incarnation uint64
	Version     string
}

// Batch is commands applied in order: one raft entry can carry a whole
// group of the journal.
type Batch struct {
	Commands []Command
}

func (*Put) Type() Type         { return TypePut }
func (*Settle) Type() Type      { return TypeSettle }
func (*SettleReply) Type() Type { return TypeSettleReply }
func (*Fail) Type() Type        { return TypeFail }
func (*Requeue) Type() Type     { return TypeRequeue }
func (*Close) Type() Type       { return TypeClose }
func (*Leases) Type() Type      { return TypeLeases }
func (*Start) Type() Type       { return TypeStart }
func (*Batch) Type() Type       { return TypeBatch }
func (*Purge) Type() Type       { return TypePurge }
func (*Pause) Type() Type       { return TypePause }
