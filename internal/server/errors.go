package server

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/distq/distq/internal/errinfo"
	"github.com/distq/distq/internal/queue"
)

// domainErrors maps each domain error of the queue core to its status code
// and machine-readable reason (admin.proto lists them), in the order they
// are tested.
var domainErrors = [...]struct {
	err    error
	code   codes.Code
	reason string
}{
	{queue.ErrUnknownQueue, codes.NotFound, errinfo.UnknownQueue},
	{queue.ErrFull, codes.ResourceExhausted, errinfo.QueueFull},
	{queue.ErrClosed, codes.FailedPrecondition, errinfo.QueueClosed},
	// Not FAILED_PRECONDITION: clients read that as "queue closed".
	{queue.ErrReadOnly, codes.InvalidArgument, errinfo.ReadOnlyQueue},
	{queue.ErrShutdown, codes.Unavailable, errinfo.ShuttingDown},
	{queue.ErrPutForgotten, codes.FailedPrecondition, errinfo.PutForgotten},
	{queue.ErrPutInProgress, codes.Aborted, errinfo.PutInProgress},
	{queue.ErrNoSpace, codes.ResourceExhausted, errinfo.NoSpace},
	{queue.ErrLogUnavailable, codes.Unavailable, errinfo.LogUnavailable},
	{queue.ErrLogClosed, codes.Unavailable, errinfo.LogClosed},
	{queue.ErrInvalid, codes.InvalidArgument, errinfo.InvalidArgument},
}

// toStatus maps a domain error of the queue core to a gRPC status. It is the
// one place where core errors meet wire codes. A domain error's status
// carries its reason (errinfo); a context's end and anything else do not.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	msg := "distq: " + err.Error()
	for _, d := range domainErrors {
		if errors.Is(err, d.err) {
			return errinfo.Error(d.code, d.reason, msg)
		}
	}
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, msg)
}

// invalid is the status of a request the caller should have checked:
// INVALID_ARGUMENT with its reason.
func invalid(format string, args ...any) error {
	return errinfo.Error(codes.InvalidArgument, errinfo.InvalidArgument, fmt.Sprintf(format, args...))
}

// errShutdown ends a Consume stream when the master stops.
var errShutdown = errinfo.Error(codes.Unavailable, errinfo.ShuttingDown, "distq: master shutting down")
