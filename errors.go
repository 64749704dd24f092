package distq

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/errinfo"
)

// Errors a caller can test for with errors.Is. They mirror Python's
// queue.Full and queue.Empty, plus what a network adds.
var (
	// ErrFull: the queue is bounded and full (queue.Full), and the put was
	// not allowed to wait or waited long enough.
	ErrFull = errors.New("distq: queue full")
	// ErrEmpty: nothing arrived in time (queue.Empty).
	ErrEmpty = errors.New("distq: queue empty")
	// ErrClosed: the queue is closed; from a get it means closed and
	// drained, nothing more will ever arrive.
	ErrClosed = errors.New("distq: queue closed")
	// ErrUnknownQueue: the master hosts no queue of that name.
	ErrUnknownQueue = errors.New("distq: unknown queue")
	// ErrAuthFailed: the master refused our authkey.
	ErrAuthFailed = auth.ErrAuthFailed
	// ErrMasterUnverified: the peer could not prove it holds the authkey;
	// nothing was sent to it.
	ErrMasterUnverified = auth.ErrMasterUnverified
	// ErrUnavailable: the master cannot be reached or is shutting down.
	ErrUnavailable = errors.New("distq: master unavailable")
	// ErrReplayed: the master refused a call as a replay: its sequence
	// number was already used on the session, or the call reached the
	// master more than a minute after it was signed. The client never
	// reuses a number, so this means a call that waited too long on its
	// way; the client sends such a call once more by itself. It is not a
	// wrong key, and retrying can help.
	ErrReplayed = errors.New("distq: call refused as a replay")
	// ErrPutForgotten: a put sent again after its answer was lost came
	// too late: the master no longer remembers that put of this client,
	// so it neither stored it again nor can tell its ids. Its items may or
	// may not be in the queue.
	ErrPutForgotten = errors.New("distq: put sent again too late to be matched")
)

// Error carries the master's message under one of the errors above.
type Error struct {
	Kind error  // one of the Err values, or nil
	Msg  string // the master's message, for people
	Code codes.Code
	// Reason is the master's machine-readable reason for a refusal of its
	// own, such as "QUEUE_FULL" or "NO_SPACE" (admin.proto lists them),
	// or "" when the status carried none (gRPC's own errors, and masters
	// from before reasons). Kind is derived from it.
	Reason string
}

// Error says it once: the master's messages start with "distq: ", and
// often with the kind's own words ("distq: queue full: …"), which are not
// repeated.
func (e *Error) Error() string {
	msg := strings.TrimPrefix(e.Msg, "distq: ")
	if e.Kind != nil {
		kind := e.Kind.Error()
		if strings.HasPrefix("distq: "+msg, kind) {
			return "distq: " + msg
		}
		return kind + ": " + msg
	}
	return fmt.Sprintf("distq: %s (%s)", msg, e.Code)
}

func (e *Error) Unwrap() error { return e.Kind }

// fromStatus turns a gRPC status from the master into an *Error whose Kind
// the caller can match with errors.Is.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || auth.IsSessionError(err) {
		// Session errors stay raw: callers authenticate again on them.
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	}
	reason := errinfo.Reason(st)
	if reason != "" {
		return &Error{Kind: kindOf(reason), Msg: st.Message(), Code: st.Code(), Reason: reason}
	}
	// No reason: gRPC's own statuses, the session layer's, and masters
	// from before reasons, whose refusals are told by code and message.
	var kind error
	switch st.Code() {
	case codes.ResourceExhausted:
		kind = ErrFull
		if !isFullMessage(st.Message()) {
			kind = nil // e.g. a message over the size limit
		}
	case codes.FailedPrecondition:
		kind = ErrClosed
		if strings.HasPrefix(st.Message(), forgottenPrefix) {
			kind = ErrPutForgotten
		}
	case codes.NotFound:
		kind = ErrUnknownQueue
	case codes.Unavailable:
		kind = ErrUnavailable
	case codes.Unauthenticated:
		// Only a refused login means a wrong key; a call on a session is
		// refused for its own metadata (auth.proto).
		switch {
		case auth.IsReplayError(err):
			kind = ErrReplayed
		case strings.HasPrefix(st.Message(), "distq: authentication failed"):
			kind = ErrAuthFailed
		}
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	}
	return &Error{Kind: kind, Msg: st.Message(), Code: st.Code()}
}

// kindOf is the error a master's reason stands for, or nil for reasons
// that have none of their own (an invalid argument, a full disk, ...).
func kindOf(reason string) error {
	switch reason {
	case errinfo.QueueFull:
		return ErrFull
	case errinfo.QueueClosed:
		return ErrClosed
	case errinfo.UnknownQueue:
		return ErrUnknownQueue
	case errinfo.PutForgotten:
		return ErrPutForgotten
	case errinfo.ShuttingDown, errinfo.LogUnavailable, errinfo.LogClosed:
		return ErrUnavailable
	}
	return nil
}

// forgottenPrefix starts the message of a put sent again after the master
// forgot it (queue.proto, PutRequest.producer_id): how a master from
// before reasons says so. The prefixes below are kept for such masters
// only; a master with reasons is never read by its messages.
const forgottenPrefix = "distq: put sequence forgotten"

func isFullMessage(msg string) bool {
	const prefix = "distq: queue full"
	return len(msg) >= len(prefix) && msg[:len(prefix)] == prefix
}

// wrapAuth adds the master's address to handshake errors.
func wrapAuth(err error, addr string) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, auth.ErrAuthFailed), errors.Is(err, auth.ErrMasterUnverified):
		return fmt.Errorf("master %s: %w", addr, err)
	}
	return fmt.Errorf("master %s: %w", addr, fromStatus(err))
}

// IsPermanent reports whether retrying cannot help: a wrong key, a master
// that cannot prove the key, or an unknown queue. A call refused as a
// replay (ErrReplayed) or for want of room (RESOURCE_EXHAUSTED) is not.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrMasterUnverified) || errors.Is(err, ErrUnknownQueue)
}
