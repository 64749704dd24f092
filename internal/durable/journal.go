package durable

import (
	"context"
	"errors"

	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/wal"
)

// journal is the log as the queue core's Journal: the same calls, with the
// log's errors in the core's classes (queue.ErrNoSpace,
// queue.ErrLogUnavailable, queue.ErrLogClosed), which the gRPC edge maps
// to codes. The messages stay the log's: they say what happened and what
// to do.
type journal struct{ l *wal.Log }

var _ queue.Journal = journal{}

func (j journal) Append(rec []byte) (uint64, error) {
	lsn, err := j.l.Append(rec)
	return lsn, classify(err)
}

func (j journal) LastLSN() uint64 { return j.l.LastLSN() }

func (j journal) Durable() uint64 { return j.l.Durable() }

func (j journal) WaitContext(ctx context.Context, lsn uint64) error {
	return classify(j.l.WaitContext(ctx, lsn))
}

func (j journal) AdmitPut() error { return classify(j.l.AdmitPut()) }

func (j journal) Admit() error { return classify(j.l.Admit()) }

// classified is a log error in a class of the core's.
type classified struct {
	class, err error
}

func (c *classified) Error() string        { return c.err.Error() }
func (c *classified) Unwrap() error        { return c.err }
func (c *classified) Is(target error) bool { return target == c.class }

func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, wal.ErrNoSpace):
		return &classified{queue.ErrNoSpace, err}
	case errors.Is(err, wal.ErrUnavailable):
		return &classified{queue.ErrLogUnavailable, err}
	case errors.Is(err, wal.ErrClosed):
		return &classified{queue.ErrLogClosed, err}
	}
	return err
}
