package wal_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/distq/distq/internal/wal"
)

// A second Open of a data dir in use fails at once, naming the holder;
// once the holder closes, it succeeds.
func TestLockRefusedWhileHeld(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(t)
	o.LockInfo = "listening on :4000"
	l, _, _ := open(t, dir, o)
	_, _, err := wal.Open(dir, testOpts(t), nil, func(uint64, []byte) error { return nil })
	var le *wal.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("second open: %v, want a LockedError", err)
	}
	host, _ := os.Hostname()
	for _, s := range []string{dir, fmt.Sprintf("pid %d", os.Getpid()), "host " + host, "listening on :4000", "since ", "stop it or choose another -data-dir"} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("message %q does not say %q", err, s)
		}
	}
	mustClose(t, l)
	l, _, _ = open(t, dir, testOpts(t))
	mustClose(t, l)
}

// A data dir of another format, or a directory holding something else,
// is refused.
func TestFormatRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "FORMAT"), []byte("distq-data 2\n"), 0o644)
	if _, _, err := wal.Open(dir, testOpts(t), nil, nil); err == nil || !strings.Contains(err.Error(), `"distq-data 2"`) {
		t.Fatalf("unknown format: %v", err)
	}
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	if _, _, err := wal.Open(dir, testOpts(t), nil, nil); err == nil || !strings.Contains(err.Error(), "not a distq data dir") {
		t.Fatalf("foreign directory: %v", err)
	}
}

// The kernel releases the lock of a process killed with SIGKILL: the next
// Open succeeds without anyone clearing it. The holder is this test's
// binary run again as a child.
func TestLockFreedWhenHolderIsKilled(t *testing.T) {
	if dir := os.Getenv("WAL_TEST_LOCK_HOLDER"); dir != "" {
		l, _, err := wal.Open(dir, wal.Options{SegmentSize: 8 << 10, MaxRecord: 1024}, nil, func(uint64, []byte) error { return nil })
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		_ = l
		fmt.Println("locked")
		select {} // until killed
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(exe, "-test.run=^TestLockFreedWhenHolderIsKilled$")
	cmd.Env = append(os.Environ(), "WAL_TEST_LOCK_HOLDER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q", line)
	}
	_, _, err = wal.Open(dir, testOpts(t), nil, func(uint64, []byte) error { return nil })
	if !strings.Contains(fmt.Sprint(err), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Fatalf("open while the child holds it: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	l, _, _ := open(t, dir, testOpts(t))
	mustClose(t, l)
}
