package queue

import "errors"

// Domain errors. The gRPC edge maps each to a status code; callers test for
// them with errors.Is.
var (
	// ErrUnknownQueue: the master hosts no queue of that name.
	ErrUnknownQueue = errors.New("unknown queue")
	// ErrFull: the queue is at its maxsize and the caller would not wait
	// (or waited long enough).
	ErrFull = errors.New("queue full")
	// ErrClosed: the queue was closed; no more puts. From a consumer or Get
	// it means the queue is closed and drained: nothing more will come.
	ErrClosed = errors.New("queue closed")
	// ErrShutdown: the broker is shutting down and hands out no more work.
	ErrShutdown = errors.New("master shutting down")
	// ErrReadOnly: dead-letter queues are filled by nacks only.
	ErrReadOnly = errors.New("dead-letter queues take no puts")
	// ErrInvalid: an argument the caller should have checked.
	ErrInvalid = errors.New("invalid argument")
	// ErrNoSpace: the master's disk is full. Puts are refused until space
	// returns (and, once the log's reserve is in use, every change);
	// everything already acknowledged is safe.
	ErrNoSpace = errors.New("the master's disk is full")
	// ErrLogUnavailable: the master cannot write its log for now; changes
	// are refused and nothing is answered until it can.
	ErrLogUnavailable = errors.New("the master cannot write its log")
	// ErrPutForgotten: a retried put is older than the sequences the
	// master remembers of its producer: storing it might store it twice.
	ErrPutForgotten = errors.New("put sequence forgotten")
	// ErrPutInProgress: a retried put is still under way (waiting for
	// room): the producer should try again later.
	ErrPutInProgress = errors.New("the same put is in progress")
	// ErrLogClosed: the master's log is closed (it is stopping).
	ErrLogClosed = errors.New("the master's log is closed")
)

// Reasons given for a refused settle.
const (
	ReasonNotLeased   = "lease no longer held (expired, redelivered or already settled)"
	ReasonUnknownItem = "no such item in flight"
	ReasonReplyQueue  = "reply queue unknown or closed"
	// ReasonIncarnation refuses a settle of a lease taken from an earlier
	// run of the master, or that does not say which run leased it.
	ReasonIncarnation = "leased by another run of the master (it restarted), or no incarnation given"
	// ReasonLog refuses a settle the master cannot log now (its disk is
	// full or failing): the item stays leased, and comes back when its
	// lease runs out if the settle is not made again.
	ReasonLog = "the master cannot log it now"
)
