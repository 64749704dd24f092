package integration

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// A slave whose tasks take three times the lease keeps them, the running
// ones and those prefetched behind them: it extends their leases by
// itself, so none expires, none is done twice and no ack is refused.
func TestSlowSlaveKeepsItsTasks(t *testing.T) {
	const n = 6
	key := writeKey(t, testKey)
	m, addr := startMaster(t, key, "-demo", fmt.Sprint(n), "-demo-progress", "log", "-lease", "1s")
	// Two slots, and at first four deliveries per slot: all six tasks are
	// held from the start, four of them waiting up to six seconds.
	slow := startSlave(t, "slave-slow", addr, key, "-concurrency", "2", "-delay", "3s")
	s := checkExactlyOnce(t, m, n)
	if s.Expired != 0 || s.Redelivered != 0 || s.Refused != 0 {
		t.Errorf("summary %+v: want no lease expired, no task redelivered, no ack refused", s)
	}
	if code := slow.wait(30 * time.Second); code != 0 {
		t.Fatalf("slave exited %d; want 0 after a clean end", code)
	}
	line := slow.waitLine("worker stopped", time.Second)
	if stat(t, line, "refused") != 0 || stat(t, line, "processed") != n || stat(t, line, "extended") == 0 {
		t.Errorf("slave's last word %q: want %d processed, leases extended, none refused", line, n)
	}
}

// With -no-auto-extend a slave loses a task it overruns, as before slaves
// extended leases: the master takes it back when the lease expires, another
// slave does it, and the late ack is refused. The other slave is as slow
// but extends: the master is still there for the late ack.
func TestSlaveWithoutAutoExtendLosesOverrunningTask(t *testing.T) {
	key := writeKey(t, testKey)
	// Attempts are not what this test counts: the task may go back to the
	// slow slave once or twice before the other one is ready.
	m, addr := startMaster(t, key, "-demo", "1", "-demo-progress", "log", "-lease", "1s", "-max-attempts", "100")
	overrun := startSlave(t, "slave-overrun", addr, key, "-no-auto-extend", "-concurrency", "1", "-prefetch", "1", "-delay", "3s")
	overrun.waitLine("receiving tasks", 30*time.Second)
	m.waitLine("leases expired;", 30*time.Second)
	startSlave(t, "slave-b", addr, key, "-concurrency", "1", "-delay", "3s")
	overrun.waitLine("settle refused by master", 30*time.Second)
	s := checkExactlyOnce(t, m, 1)
	if s.Expired == 0 || s.Redelivered == 0 || s.Refused == 0 {
		t.Errorf("summary %+v: want the lease expired, the task redelivered and the late ack refused", s)
	}
	if code := overrun.wait(30 * time.Second); code != 0 {
		t.Fatalf("slave exited %d; want 0 after a clean end", code)
	}
	if line := overrun.waitLine("worker stopped", time.Second); stat(t, line, "extended") != 0 {
		t.Errorf("slave's last word %q: want no lease extended", line)
	}
}

// stat reads the number logged as key=N in line.
func stat(t *testing.T, line, key string) int {
	t.Helper()
	m := regexp.MustCompile(`\b` + regexp.QuoteMeta(key) + `=(\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no %s= in %q", key, line)
	}
	v, _ := strconv.Atoi(m[1])
	return v
}
