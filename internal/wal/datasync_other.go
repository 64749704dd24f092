//go:build !linux

package wal

import "os"

// datasync falls back to fsync where the system has no fdatasync.
func datasync(f *os.File) error { return f.Sync() }
