package distq

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/distq/distq/internal/errinfo"
)

// Only a refused login is a wrong key. A call refused for its metadata,
// and above all one refused as a replay, is neither "wrong key?" nor
// permanent: a busy client's stale call is sent again, and a worker keeps
// going.
func TestAuthRefusalKinds(t *testing.T) {
	for _, tc := range []struct {
		msg       string
		kind      error
		permanent bool
	}{
		{"distq: authentication failed", ErrAuthFailed, true},
		{"distq: replay: distq-seq already used on this session, or signed more than 60s before it arrived; sign the call again with a new seq", ErrReplayed, false},
		{"distq: call refused: bad distq-mac", nil, false},
		{"distq: call refused: missing or duplicated distq-session/distq-seq/distq-mac", nil, false},
	} {
		err := fromStatus(status.Error(codes.Unauthenticated, tc.msg))
		var e *Error
		if !errors.As(err, &e) || e.Kind != tc.kind {
			t.Errorf("%q: %v; want kind %v", tc.msg, err, tc.kind)
		}
		if IsPermanent(err) != tc.permanent {
			t.Errorf("%q: IsPermanent = %v, want %v", tc.msg, IsPermanent(err), tc.permanent)
		}
		if tc.kind != ErrAuthFailed && strings.Contains(err.Error(), "wrong key") {
			t.Errorf("%q reads as a wrong key: %v", tc.msg, err)
		}
	}
}

// TestErrorsByReason: a master's refusal is recognised by its reason, not
// its message; without a reason (a master from before them) the code and
// the message's prefix still tell a full queue and a forgotten put.
func TestErrorsByReason(t *testing.T) {
	for _, tc := range []struct {
		code   codes.Code
		reason string
		msg    string
		kind   error
	}{
		{codes.ResourceExhausted, errinfo.QueueFull, "any words at all", ErrFull},
		{codes.ResourceExhausted, errinfo.NoSpace, "distq: queue full, says a misleading message", nil},
		{codes.FailedPrecondition, errinfo.QueueClosed, "x", ErrClosed},
		{codes.FailedPrecondition, errinfo.PutForgotten, "x", ErrPutForgotten},
		{codes.NotFound, errinfo.UnknownQueue, "x", ErrUnknownQueue},
		{codes.Unavailable, errinfo.ShuttingDown, "x", ErrUnavailable},
		{codes.Unavailable, errinfo.LogUnavailable, "x", ErrUnavailable},
		{codes.InvalidArgument, errinfo.ReadOnlyQueue, "x", nil},
		{codes.Aborted, errinfo.PutInProgress, "x", nil},
		// Old masters: no reason.
		{codes.ResourceExhausted, "", "distq: queue full: \"tasks\" holds 3 items", ErrFull},
		{codes.ResourceExhausted, "", "grpc: received message larger than max", nil},
		{codes.FailedPrecondition, "", "distq: put sequence forgotten: ...", ErrPutForgotten},
		{codes.FailedPrecondition, "", "distq: queue closed", ErrClosed},
	} {
		var err error
		if tc.reason != "" {
			err = errinfo.Error(tc.code, tc.reason, tc.msg)
		} else {
			err = status.Error(tc.code, tc.msg)
		}
		got := fromStatus(err)
		var e *Error
		if !errors.As(got, &e) || e.Kind != tc.kind || e.Reason != tc.reason || e.Code != tc.code {
			t.Errorf("%v %q %q: %#v; want kind %v", tc.code, tc.reason, tc.msg, got, tc.kind)
		}
		if tc.kind != nil && !errors.Is(got, tc.kind) {
			t.Errorf("%v %q: errors.Is(%v) false", tc.code, tc.reason, tc.kind)
		}
	}
}

// An error from the master says "distq:" once, and its kind's words once.
func TestErrorSaysItOnce(t *testing.T) {
	for _, c := range []struct {
		e    *Error
		want string
	}{
		{&Error{Kind: ErrFull, Msg: `distq: queue full: "tasks" holds 3 items`, Code: codes.ResourceExhausted}, `distq: queue full: "tasks" holds 3 items`},
		{&Error{Kind: ErrUnknownQueue, Msg: `distq: no queue "x"`, Code: codes.NotFound}, `distq: unknown queue: no queue "x"`},
		{&Error{Msg: "distq: too many open streams", Code: codes.ResourceExhausted}, "distq: too many open streams (ResourceExhausted)"},
		{&Error{Msg: "transport is closing", Code: codes.Unavailable}, "distq: transport is closing (Unavailable)"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.e, got, c.want)
		}
	}
}
