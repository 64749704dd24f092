package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The data directory is locked with flock(LOCK_EX|LOCK_NB) on DIR/LOCK
// (design §3.2): the kernel releases the lock when the process dies, kill -9
// included, so a stale lock never needs clearing by hand. The holder writes
// "pid host started-at [extra]" into the file, so that a second master can
// say whom it found. Local file systems only: flock over NFS is not to be
// trusted.

const lockName = "LOCK"

type dirLock struct{ f *os.File }

// lockDir takes the lock of dir, or returns a *LockedError naming the
// holder.
func lockDir(dir, extra string, now time.Time) (*dirLock, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	held, err := flock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if held {
		b, _ := os.ReadFile(path)
		f.Close()
		return nil, &LockedError{Dir: dir, Holder: strings.TrimSpace(string(b))}
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "?"
	}
	line := fmt.Sprintf("%d %s %s", os.Getpid(), strings.ReplaceAll(host, " ", "_"), now.UTC().Format(time.RFC3339))
	if extra != "" {
		line += " " + extra
	}
	// The holder's line is for messages only: a failure to write it costs
	// a vaguer message, not the lock, and it need not be synced (after a
	// crash the next holder writes its own).
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(line+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// unlock releases the lock (closing the file does).
func (l *dirLock) unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

type holder struct{ pid, host, since, extra string }

func parseHolder(s string) holder {
	f := strings.Fields(s)
	var h holder
	if len(f) < 2 {
		return h
	}
	h.pid, h.host = f[0], f[1]
	if len(f) > 2 {
		h.since = f[2]
	}
	if len(f) > 3 {
		h.extra = strings.Join(f[3:], " ")
	}
	return h
}
