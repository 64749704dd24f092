package wal

import (
	"errors"
	"fmt"
	"syscall"
)

// The classes of the errors a caller maps to an answer: test them with
// errors.Is. The errors returned carry the detail and a message meant for
// the operator (what happened, why, and what to do).
var (
	// ErrNoSpace: the disk is full. Puts must be refused (AdmitPut), and
	// once the reserve segment is in use every change (Admit). Nothing
	// already acknowledged is at risk.
	ErrNoSpace = errors.New("no space left for the log")
	// ErrUnavailable: the log cannot be written for now (a write or
	// fdatasync failed and is being retried, or the next segment cannot be
	// made for a reason other than space). Nothing is answered until the
	// bytes are on disk.
	ErrUnavailable = errors.New("the log cannot be written")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("log closed")
	// ErrTooLarge: a record longer than Options.MaxRecord; the caller must
	// split its commands.
	ErrTooLarge = errors.New("record too large")
	// ErrEmpty: an empty record. Empty frames are the log's own no-ops.
	ErrEmpty = errors.New("empty record")
)

// SegmentError says the preparer cannot make the log's next segment. It is
// ErrNoSpace when the disk is full and ErrUnavailable otherwise.
type SegmentError struct {
	Dir  string // the data directory
	Need int64  // bytes the next segment needs
	Err  error
	// ReserveUsed: the reserve segment is being written, so every change
	// is refused, not only puts.
	ReserveUsed bool
}

func (e *SegmentError) Error() string {
	refused := "puts are refused until space returns"
	if e.ReserveUsed {
		refused = "the reserve segment is in use, so every change is refused until space returns"
	}
	if isNoSpace(e.Err) {
		return fmt.Sprintf("the master's disk is full (data dir %s: %s; the log needs %s for its next segment); %s; everything already acknowledged is safe",
			e.Dir, errText(e.Err), sizeText(e.Need), refused)
	}
	refused = "puts are refused until it can"
	if e.ReserveUsed {
		refused = "the reserve segment is in use, so every change is refused until it can"
	}
	return fmt.Sprintf("the master cannot make its next log segment (data dir %s: %v); %s; everything already acknowledged is safe",
		e.Dir, e.Err, refused)
}

func (e *SegmentError) Unwrap() error { return e.Err }

func (e *SegmentError) Is(target error) bool {
	if isNoSpace(e.Err) {
		return target == ErrNoSpace
	}
	return target == ErrUnavailable
}

// WriteError says a write or fdatasync of the log failed. The writer keeps
// the bytes and rewrites them at the same offset, then syncs, with backoff,
// until that works; meanwhile every change is refused and nothing waiting
// is answered. It is ErrUnavailable.
type WriteError struct {
	Dir string // the data directory
	Err error  // the first failure (its path names the file)
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("the master cannot write its log (data dir %s: %v); it keeps the records and retries; nothing more is answered until they are on disk, and everything already acknowledged is safe",
		e.Dir, e.Err)
}

func (e *WriteError) Unwrap() error { return e.Err }

func (e *WriteError) Is(target error) bool { return target == ErrUnavailable }

// DamageError is damage recovery will not cut off: a record that a later
// frame says was synced (and so may have been acknowledged) cannot be read,
// a segment is missing, or a snapshot is damaged.
type DamageError struct {
	File   string
	Offset int64
	LSN    uint64 // the record expected there (0: a snapshot or a segment header)
	Acked  uint64 // records up to this LSN were synced, by the frames read
	Reason error
}

func (e *DamageError) Error() string {
	what := "the log is damaged in the middle"
	salvage := "run with -salvage-log to keep what is readable and drop what is not"
	var where string
	switch {
	case e.LSN == 0:
		where = fmt.Sprintf("%s offset %d: %v", e.File, e.Offset, e.Reason)
		if isSnapshotFile(e.File) {
			what = "the snapshot is damaged"
			salvage = "run with -salvage-log to start from the previous snapshot, if there is one and the log still covers it"
		}
	case e.Acked >= e.LSN:
		where = fmt.Sprintf("%s offset %d: %v in record %d (records up to %d were acknowledged after it)", e.File, e.Offset, e.Reason, e.LSN, e.Acked)
	default:
		where = fmt.Sprintf("%s offset %d: %v in record %d", e.File, e.Offset, e.Reason, e.LSN)
	}
	return where + "; " + what + ". Refusing to start. Restore the data directory, or " + salvage
}

func (e *DamageError) Unwrap() error { return e.Reason }

// LockedError: another process holds the data directory.
type LockedError struct {
	Dir string
	// What the holder wrote: "pid host started-at [extra]", or "" when it
	// could not be read.
	Holder string
}

func (e *LockedError) Error() string {
	who := "another master"
	if h := parseHolder(e.Holder); h.pid != "" {
		who = fmt.Sprintf("another master (pid %s on host %s", h.pid, h.host)
		if h.extra != "" {
			who += ", " + h.extra
		}
		if h.since != "" {
			who += ", since " + h.since
		}
		who += ")"
	}
	return fmt.Sprintf("data dir %s is in use by %s; stop it or choose another -data-dir", e.Dir, who)
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// errText is the system's words for err without the path it wraps.
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
