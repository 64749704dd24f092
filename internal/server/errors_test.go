package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/distq/distq/internal/errinfo"
	"github.com/distq/distq/internal/queue"
)

func TestToStatus(t *testing.T) {
	already := status.Error(codes.Aborted, "kept as is")
	cases := []struct {
		name string
		err  error
		code codes.Code
		// prefix the status message must start with; clients branch on
		// "distq: queue full" (distq.isFullMessage).
		prefix string
	}{
		{"unknown queue", fmt.Errorf("%w %q", queue.ErrUnknownQueue, "nope"), codes.NotFound, "distq: unknown queue"},
		{"full", fmt.Errorf("%w: %q holds %d items", queue.ErrFull, "tasks", 3), codes.ResourceExhausted, "distq: queue full"},
		{"closed", fmt.Errorf("%w: %q", queue.ErrClosed, "tasks"), codes.FailedPrecondition, "distq: queue closed"},
		{"read only", fmt.Errorf("%w: %q", queue.ErrReadOnly, "tasks.dead"), codes.InvalidArgument, "distq: dead-letter"},
		{"shutdown", queue.ErrShutdown, codes.Unavailable, "distq: master shutting down"},
		{"invalid", fmt.Errorf("%w: bad", queue.ErrInvalid), codes.InvalidArgument, "distq: invalid argument"},
		{"canceled", context.Canceled, codes.Canceled, "distq: "},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, "distq: "},
		{"wrapped canceled", fmt.Errorf("waiting: %w", context.Canceled), codes.Canceled, "distq: waiting"},
		{"anything else", errors.New("boom"), codes.Internal, "distq: boom"},
		{"a status", already, codes.Aborted, "kept as is"},
		{"a wrapped status", fmt.Errorf("outer: %w", already), codes.Aborted, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := toStatus(tc.err)
			st, ok := status.FromError(got)
			if !ok {
				t.Fatalf("toStatus(%v) = %v, not a status", tc.err, got)
			}
			if st.Code() != tc.code {
				t.Fatalf("toStatus(%v): code %v, want %v", tc.err, st.Code(), tc.code)
			}
			if !strings.HasPrefix(st.Message(), tc.prefix) {
				t.Fatalf("toStatus(%v): message %q, want prefix %q", tc.err, st.Message(), tc.prefix)
			}
		})
	}
	if err := toStatus(nil); err != nil {
		t.Fatalf("toStatus(nil) = %v", err)
	}
	if got := toStatus(already); got != already {
		t.Fatalf("a status was rewrapped: %v", got)
	}
}

// TestToStatusReasons: every domain error's status carries its reason in
// an ErrorInfo of the distq domain; a context's end and an unknown error
// carry none.
func TestToStatusReasons(t *testing.T) {
	for _, d := range domainErrors {
		st, _ := status.FromError(toStatus(fmt.Errorf("%w: detail", d.err)))
		if st.Code() != d.code || errinfo.Reason(st) != d.reason {
			t.Errorf("%v: %v %q, want %v %q", d.err, st.Code(), errinfo.Reason(st), d.code, d.reason)
		}
	}
	for _, err := range []error{context.Canceled, errors.New("boom")} {
		if st, _ := status.FromError(toStatus(err)); errinfo.Reason(st) != "" {
			t.Errorf("%v has reason %q", err, errinfo.Reason(st))
		}
	}
	if st, _ := status.FromError(invalid("distq: bad %d", 1)); st.Code() != codes.InvalidArgument || errinfo.Reason(st) != errinfo.InvalidArgument {
		t.Errorf("invalid: %v", st)
	}
}
