package distq

import "errors"

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as a failure no retry can fix, such as a payload the
// handler cannot decode: the task goes to the dead-letter queue at once
// instead of being retried up to the master's max attempts.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanentFailure reports whether err was marked with Permanent.
func IsPermanentFailure(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
