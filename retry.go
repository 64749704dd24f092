package distq

import (
	"errors"
	"time"
)

// retryAfterError asks for a retry no sooner than after.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e retryAfterError) Error() string { return e.err.Error() }
func (e retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as a failure to retry no sooner than d from now,
// instead of after the queue's backoff: for a handler that knows when to
// come back, such as one told by a service to retry after a minute. d
// travels in whole milliseconds (1 ms at least) and the master caps it at
// 24 hours; a d of 0 or less takes the queue's backoff. The attempt counts
// as any failure's: after the master's max attempts the task is
// dead-lettered at once. Permanent wins over RetryAfter. Like Permanent,
// RetryAfter(d, nil) is nil.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return retryAfterError{err: err, after: d}
}

// retryDelayMs is the delay err asks for with RetryAfter, in the
// milliseconds of Nack.delay_ms; 0 (the queue's backoff) if it asks none.
func retryDelayMs(err error) uint32 {
	var r retryAfterError
	if errors.As(err, &r) {
		return durationMs(r.after)
	}
	return 0
}
