package distq

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
