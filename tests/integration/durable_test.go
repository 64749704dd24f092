package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distq/distq"
)

// freeAddr returns a loopback address whose port was free a moment ago:
// a master restarted on the same address must be given it, not :0.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// startMasterAt runs a master listening on addr with extra environment
// variables and waits until it serves.
func startMasterAt(t *testing.T, name, addr, keyFile string, env []string, args ...string) *proc {
	t.Helper()
	args = append([]string{"-listen", addr, "-authkey-file", keyFile}, args...)
	m := startEnv(t, name, "master", env, args...)
	m.waitLine("master serving", time.Minute)
	return m
}

// square is what a slave answers for task payload p.
func square(t *testing.T, p []byte) string {
	n, err := strconv.ParseInt(string(p), 10, 64)
	if err != nil {
		t.Fatalf("task payload %q is not a number", p)
	}
	return strconv.FormatInt(n*n, 10)
}

// A durable master stopped with SIGTERM keeps its queue: restarted on the
// same data directory (given by DISTQ_DATA_DIR this time) it has the 1,000
// tasks ready, and a slave completes each of them once and right.
func TestDurableRestartKeepsItems(t *testing.T) {
	key := writeKey(t, testKey)
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	m1 := startMasterAt(t, "master1", addr, key, nil, "-data-dir", dir)
	c := dial(t, addr, testKey)
	ctx := ctxTimeout(t, 3*time.Minute)
	const n = 1000
	payload := map[uint64]string{}
	for i := 0; i < n; i += 100 {
		msgs := make([]distq.Message, 100)
		for k := range msgs {
			msgs[k].Payload = []byte(strconv.Itoa(i + k + 1))
		}
		ids, err := c.Queue("tasks").PutBatch(ctx, msgs)
		if err != nil {
			t.Fatal(err)
		}
		for k, id := range ids {
			payload[id] = string(msgs[k].Payload)
		}
	}
	m1.signal(syscall.SIGTERM)
	if code := m1.wait(time.Minute); code != 0 {
		t.Fatalf("master exited %d after SIGTERM; want 0", code)
	}
	m1.waitLine("items kept on disk for the next start", time.Second)

	m2 := startMasterAt(t, "master2", addr, key, []string{"DISTQ_DATA_DIR=" + dir})
	if line := m2.waitLine("data recovered", time.Second); !strings.Contains(line, "items=1000") {
		t.Errorf("recovery line %q: want items=1000", line)
	}
	st, err := c.Queue("tasks").Stats(ctx)
	if err != nil || st.Ready != n || st.Leased != 0 || st.Delayed != 0 {
		t.Fatalf("tasks after the restart: %+v, %v; want %d ready", st, err, n)
	}
	startSlave(t, "slave", addr, key, "-concurrency", "2", "-max-backoff", "500ms")
	seen := map[uint64]bool{}
	for len(seen) < n {
		rs, err := c.Queue("results").GetMany(ctx, 500, 30*time.Second)
		if err != nil {
			t.Fatalf("after %d results: %v", len(seen), err)
		}
		for _, r := range rs {
			p, ok := payload[r.ReplyTo]
			if !ok || seen[r.ReplyTo] {
				t.Fatalf("result %d for task %d: unknown task (%v) or a second result", r.ID, r.ReplyTo, ok)
			}
			if want := square(t, []byte(p)); string(r.Payload) != want {
				t.Fatalf("result for task %d (%s): %q, want %s", r.ReplyTo, p, r.Payload, want)
			}
			seen[r.ReplyTo] = true
		}
	}
	if st, err := c.Queue("tasks").Stats(ctx); err != nil || st.Ready+st.Leased+st.Delayed+st.Dead != 0 {
		t.Fatalf("tasks at the end: %+v, %v", st, err)
	}
}

// A second master on a data directory in use exits 1, naming the first
// (its pid and address); the first goes on serving.
func TestDurableLockRefusesSecondMaster(t *testing.T) {
	key := writeKey(t, testKey)
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	m1 := startMasterAt(t, "master1", addr, key, nil, "-data-dir", dir)
	m2 := start(t, "master2", "master", "-listen", "127.0.0.1:0", "-authkey-file", key, "-data-dir", dir)
	if code := m2.wait(time.Minute); code != 1 {
		t.Errorf("second master exited %d; want 1", code)
	}
	out := m2.output()
	for _, want := range []string{
		"-data-dir " + dir + ": data dir " + dir + " is in use by another master",
		fmt.Sprintf("(pid %d on host ", m1.cmd.Process.Pid),
		"listening on " + addr,
		"stop it or choose another -data-dir",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("second master's output %q does not say %q", out, want)
		}
	}
	stillServes(t, dial(t, addr, testKey))
}

// Bad durability flags: exit 2 with a message that names the flag, before
// anything is opened.
func TestDurableBadFlags(t *testing.T) {
	key := writeKey(t, testKey)
	dir := filepath.Join(t.TempDir(), "data")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-data-dir", dir, "-fsync", "bogus"}, `-fsync "bogus": want always or interval`},
		{[]string{"-salvage-log"}, "-salvage-log needs -data-dir"},
		{[]string{"-data-dir", dir, "-fsync", "interval", "-fsync-interval", "0"}, "-fsync-interval 0s: want 1ms to 1m"},
		{[]string{"-data-dir", dir, "-fsync-interval", "2m"}, "-fsync-interval 2m0s: want 1ms to 1m"},
		{[]string{"-data-dir", dir, "-max-message-size", "16777216"}, "-max-message-size 16777216: at most 4194304 with -data-dir"},
	}
	for _, tc := range cases {
		p := start(t, "master", "master", append([]string{"-listen", "127.0.0.1:0", "-authkey-file", key}, tc.args...)...)
		code := p.wait(30 * time.Second)
		if code != 2 || !strings.Contains(p.output(), tc.want) {
			t.Errorf("master %v: exit %d, output %q; want 2 and %q", tc.args, code, p.output(), tc.want)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a refused flag left the data dir made: %v", err)
	}
	// A directory that holds something else is not taken for data: exit 1.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "master", "master", "-listen", "127.0.0.1:0", "-authkey-file", key, "-data-dir", other)
	if code := p.wait(30 * time.Second); code != 1 || !strings.Contains(p.output(), "is not a distq data dir") {
		t.Errorf("master on a foreign directory: exit %d, output %q; want 1 and that it is not a distq data dir", code, p.output())
	}
}
