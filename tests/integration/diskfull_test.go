package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/distq/distq"
)

// mountTmpfs mounts a tmpfs of size bytes at a new directory, unmounted at
// the end of the test (after what the test started later has stopped), or
// skips the test saying why it cannot.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (the unit test TestDurableDiskFullRefusesPutsKeepsSettles in internal/durable fills a disk without it)")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); the unit test TestDurableDiskFullRefusesPutsKeepsSettles in internal/durable fills a disk without it", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the file system is full.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 64<<10)
	var n int64
	for {
		k, err := f.Write(block)
		n += int64(k)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// The master's disk fills (a tmpfs of 160 MiB: its three log segments of
// 32 MiB, and a file that takes the rest): puts are refused with
// RESOURCE_EXHAUSTED and a message that says why, the master stays up and
// takes settles; once the file is deleted, puts work again, and nothing
// answered was lost.
func TestDurableDiskFullRealMaster(t *testing.T) {
	mnt := mountTmpfs(t, "160m")
	key := writeKey(t, testKey)
	dir := filepath.Join(mnt, "data")
	addr := freeAddr(t)
	m := startMasterAt(t, "master", addr, key, nil, "-data-dir", dir)
	// The active segment and the two the log keeps ready.
	ctx := ctxTimeout(t, 3*time.Minute)
	for {
		segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.seg"))
		full := 0
		for _, s := range segs {
			if fi, err := os.Stat(s); err == nil && fi.Size() == 32<<20 {
				full++
			}
		}
		if full == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the master made %d full segments of 3", full)
		}
		time.Sleep(20 * time.Millisecond)
	}
	filler := filepath.Join(mnt, "filler")
	t.Logf("filler file: %d MiB", fill(t, filler)>>20)

	c := dial(t, addr, testKey)
	tasks := c.Queue("tasks")
	msgs := make([]distq.Message, 256)
	for i := range msgs {
		msgs[i].Payload = []byte(strings.Repeat("x", 4<<10))
	}
	answered := 0
	var err error
	for i := 0; i < 100; i++ {
		var ids []uint64
		ids, err = tasks.PutBatch(ctx, msgs)
		answered += len(ids)
		if err != nil {
			break
		}
	}
	var de *distq.Error
	if !errors.As(err, &de) || de.Code != codes.ResourceExhausted {
		t.Fatalf("put on a full disk after %d tasks: %v; want RESOURCE_EXHAUSTED", answered, err)
	}
	for _, want := range []string{"the master's disk is full", "no space left on device", "puts are refused until space returns", "everything already acknowledged is safe"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	t.Logf("after %d tasks answered: %v", answered, err)
	m.waitLine("cannot make the next log segment; puts are refused until it can", time.Second)

	// Still up, and it takes settles.
	task, err := tasks.Lease(ctx, 10*time.Second)
	if err != nil {
		t.Fatalf("lease on a full disk: %v", err)
	}
	if err := task.Done(ctx); err != nil {
		t.Fatalf("ack on a full disk: %v", err)
	}
	if _, err := tasks.PutBatch(ctx, msgs[:1]); !errors.As(err, &de) || de.Code != codes.ResourceExhausted {
		t.Fatalf("put after the ack: %v; want still RESOURCE_EXHAUSTED", err)
	}

	// Space returns.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for {
		ids, err := tasks.PutBatch(ctx, msgs[:1])
		if err == nil {
			answered += len(ids)
			break
		}
		if !errors.As(err, &de) || de.Code != codes.ResourceExhausted || ctx.Err() != nil {
			t.Fatalf("put once space returned: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.waitLine("the next log segment is ready; puts are accepted again", 10*time.Second)
	if _, err := tasks.PutBatch(ctx, msgs); err != nil {
		t.Fatalf("a large put once space returned: %v", err)
	}
	answered += len(msgs)
	st, err := tasks.Stats(ctx)
	if err != nil || st.Ready != answered-1 {
		t.Fatalf("tasks at the end: %+v, %v; want %d ready (every answered put but the one acked)", st, err, answered-1)
	}
	select {
	case <-m.done:
		t.Fatal("the master exited")
	default:
	}
}
