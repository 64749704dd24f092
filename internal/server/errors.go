package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/distq/distq/internal/queue"
)

// toStatus maps a domain error of the queue core to a gRPC status. It is the
// one place where core errors meet wire codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, queue.ErrUnknownQueue):
		code = codes.NotFound
	case errors.Is(err, queue.ErrFull):
		code = codes.ResourceExhausted
	case errors.Is(err, queue.ErrClosed):
		code = codes.FailedPrecondition
	case errors.Is(err, queue.ErrReadOnly):
		// Not FAILED_PRECONDITION: clients read that as "queue closed".
		code = codes.InvalidArgument
	case errors.Is(err, queue.ErrShutdown):
		code = codes.Unavailable
	case errors.Is(err, queue.ErrPutForgotten):
		code = codes.FailedPrecondition
	case errors.Is(err, queue.ErrPutInProgress):
		code = codes.Aborted
	case errors.Is(err, queue.ErrNoSpace):
		code = codes.ResourceExhausted
	case errors.Is(err, queue.ErrLogUnavailable), errors.Is(err, queue.ErrLogClosed):
		code = codes.Unavailable
	case errors.Is(err, queue.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, "distq: "+err.Error())
}
