// Package errinfo names the machine-readable reasons of the master's
// refusals: a google.rpc.ErrorInfo in the details of every status it
// returns for a refusal of its own, with Domain and one of the reasons
// below (admin.proto lists them for other languages). The master sets them
// (internal/server); the Go client reads them (the distq package), so that
// neither side matches message text.
package errinfo

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is ErrorInfo.domain of every distq reason.
const Domain = "distq"

// The reasons. They are the wire's: never rename one.
const (
	UnknownQueue    = "UNKNOWN_QUEUE"
	QueueFull       = "QUEUE_FULL"
	QueueClosed     = "QUEUE_CLOSED"
	ReadOnlyQueue   = "READ_ONLY_QUEUE"
	ShuttingDown    = "SHUTTING_DOWN"
	PutForgotten    = "PUT_FORGOTTEN"
	PutInProgress   = "PUT_IN_PROGRESS"
	NoSpace         = "NO_SPACE"
	LogUnavailable  = "LOG_UNAVAILABLE"
	LogClosed       = "LOG_CLOSED"
	InvalidArgument = "INVALID_ARGUMENT"
)

// New returns a status of code with msg and an ErrorInfo of reason.
func New(code codes.Code, reason, msg string) *status.Status {
	st := status.New(code, msg)
	if with, err := st.WithDetails(&errdetails.ErrorInfo{Domain: Domain, Reason: reason}); err == nil {
		return with
	}
	return st // cannot happen: an ErrorInfo always marshals
}

// Error is New as an error.
func Error(code codes.Code, reason, msg string) error { return New(code, reason, msg).Err() }

// Reason returns the distq reason in st's details, or "" if it has none.
func Reason(st *status.Status) string {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == Domain {
			return ei.GetReason()
		}
	}
	return ""
}
