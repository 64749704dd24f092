package integration

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distq/distq/internal/demo"
)

const testKey = "integration-test-key-0123456789"

// checkExactlyOnce asserts the master's own check: every task's result
// arrived once and was the right square.
func checkExactlyOnce(t *testing.T, m *proc, n int) demo.Summary {
	t.Helper()
	if code := m.wait(3 * time.Minute); code != 0 {
		t.Fatalf("master exited %d; want 0", code)
	}
	s, err := demo.ParseSummary(m.output())
	if err != nil {
		t.Fatalf("%v:\n%s", err, m.output())
	}
	if !s.OK() || s.Tasks != n {
		t.Fatalf("demo summary %+v: want all %d results exactly once and right", s, n)
	}
	t.Logf("checked: %d tasks, %d results, %d wrong, %d duplicates; %d redelivered, %d leases expired, %d late acks refused",
		s.Tasks, s.Results, s.Wrong, s.Duplicates, s.Redelivered, s.Expired, s.Refused)
	return s
}

func TestDemoCompletes(t *testing.T) {
	key := writeKey(t, testKey)
	// Both slaves connect before the demo starts: a slave started after the
	// master finished (a loaded machine) would wait for it for ever.
	m, addr := startMaster(t, key, "-demo", "3000", "-demo-progress", "log", "-demo-slaves", "2")
	a := startSlave(t, "slave-a", addr, key, "-concurrency", "2")
	b := startSlave(t, "slave-b", addr, key, "-concurrency", "2")
	checkExactlyOnce(t, m, 3000)
	// The task queue was closed and drained: the slaves end by themselves.
	for _, s := range []*proc{a, b} {
		if code := s.wait(30 * time.Second); code != 0 {
			t.Errorf("%s exited %d; want 0 after a clean end", s.name, code)
		}
	}
}

// With -demo-slaves 2 the master puts nothing while one slave reads the
// task queue, and runs the demo once the second joins.
func TestDemoWaitsForSlaves(t *testing.T) {
	key := writeKey(t, testKey)
	m, addr := startMaster(t, key, "-demo", "3000", "-demo-progress", "log", "-demo-slaves", "2")
	m.waitLine("waiting for slaves", 30*time.Second)
	startSlave(t, "slave-a", addr, key)
	c := dial(t, addr, testKey)
	ctx := ctxTimeout(t, 30*time.Second)
	for {
		st, err := c.Queue("tasks").Stats(ctx)
		if err != nil {
			t.Fatalf("stats: %v", err)
		}
		if st.PutTotal != 0 {
			t.Fatalf("the demo put %d tasks with %d slave(s) reading; want none before 2", st.PutTotal, st.Consumers)
		}
		if st.Consumers == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("slave-a never read the task queue")
		case <-time.After(20 * time.Millisecond):
		}
	}
	// A demo that started on one slave would most likely have put its
	// first batch by the time of another round trip: this look may miss
	// such a bug, but never fails a right master.
	if st, err := c.Queue("tasks").Stats(ctx); err != nil || st.PutTotal != 0 {
		t.Fatalf("stats with one slave: %+v, %v; want nothing put", st, err)
	}
	startSlave(t, "slave-b", addr, key)
	checkExactlyOnce(t, m, 3000)
}

// A slave SIGKILLed mid-run loses nothing: its leases go back at once.
func TestSlaveKilledMidRun(t *testing.T) {
	const n = 20000
	key := writeKey(t, testKey)
	m, addr := startMaster(t, key, "-demo", fmt.Sprint(n), "-demo-progress", "log", "-demo-slaves", "3")
	// The victim's tasks never finish (it extends their leases while they
	// run): the demo cannot end before it is killed, however slow the
	// machine, and its tasks must come back.
	victim := startSlave(t, "slave-victim", addr, key, "-concurrency", "2", "-delay", "1h")
	startSlave(t, "slave-b", addr, key, "-concurrency", "2", "-delay", "200us")
	startSlave(t, "slave-c", addr, key, "-concurrency", "2", "-delay", "200us")
	victim.waitLine("receiving tasks", 30*time.Second)
	victim.signal(syscall.SIGKILL)
	m.waitLine("its leases went back to the queue", 30*time.Second)
	s := checkExactlyOnce(t, m, n)
	if s.Redelivered == 0 {
		t.Errorf("the killed slave's tasks were never redelivered")
	}
}

// A slave stopped past its lease has its tasks redone elsewhere, and its
// late settles are refused when it resumes: here the renewals of the
// leases it held, whose tasks run for an hour, so that it holds them
// whenever the stop lands, however slow the machine.
func TestSlaveStoppedPastLease(t *testing.T) {
	const n = 5000
	key := writeKey(t, testKey)
	m, addr := startMaster(t, key, "-demo", fmt.Sprint(n), "-demo-progress", "log", "-lease", "1s", "-demo-slaves", "2")
	sleeper := startSlave(t, "slave-stopped", addr, key, "-concurrency", "2", "-delay", "1h")
	startSlave(t, "slave-b", addr, key, "-concurrency", "2", "-delay", "2ms")
	sleeper.waitLine("receiving tasks", 30*time.Second)
	sleeper.signal(syscall.SIGSTOP)
	m.waitLine("leases expired;", 30*time.Second)
	sleeper.signal(syscall.SIGCONT)
	sleeper.waitLine("settle refused by master", 30*time.Second)
	s := checkExactlyOnce(t, m, n)
	if s.Expired == 0 || s.Refused == 0 {
		t.Errorf("summary %+v: want expired leases and refused late settles", s)
	}
}

// A slave with the wrong key exits non-zero with a clear message, and the
// demo completes with the others.
func TestWrongKeySlave(t *testing.T) {
	const n = 2000
	key := writeKey(t, testKey)
	// The master waits for two good slaves, so it is there for the bad one
	// to be refused by, however late that one gets going.
	m, addr := startMaster(t, key, "-demo", fmt.Sprint(n), "-demo-progress", "log", "-demo-slaves", "2")
	bad := startSlave(t, "slave-badkey", addr, writeKey(t, "not-the-key-at-all-0123456789"))
	if code := bad.wait(time.Minute); code == 0 {
		t.Errorf("slave with the wrong key exited 0")
	}
	if out := bad.output(); !strings.Contains(out, "authkey") {
		t.Errorf("the wrong-key slave's message does not mention the authkey:\n%s", out)
	}
	startSlave(t, "slave-a", addr, key, "-concurrency", "2")
	startSlave(t, "slave-b", addr, key, "-concurrency", "2")
	checkExactlyOnce(t, m, n)
}

// SIGTERM on a slave: it hands back what it has not started, gives what
// runs its -shutdown-timeout, and exits 0. Its tasks run for an hour, so
// it holds them whenever the signal lands; the others redo them.
func TestSlaveGracefulStop(t *testing.T) {
	const n = 3000
	key := writeKey(t, testKey)
	m, addr := startMaster(t, key, "-demo", fmt.Sprint(n), "-demo-progress", "log", "-demo-slaves", "2")
	leaver := startSlave(t, "slave-leaving", addr, key, "-concurrency", "2", "-delay", "1h", "-shutdown-timeout", "1s")
	startSlave(t, "slave-b", addr, key, "-concurrency", "2", "-delay", "1ms")
	leaver.waitLine("receiving tasks", 30*time.Second)
	leaver.signal(syscall.SIGTERM)
	if code := leaver.wait(time.Minute); code != 0 {
		t.Errorf("slave stopped by SIGTERM exited %d; want 0", code)
	}
	if line := leaver.waitLine("worker stopped", time.Second); stat(t, line, "released") == 0 {
		t.Errorf("slave's last word %q: want the unstarted tasks handed back", line)
	}
	checkExactlyOnce(t, m, n)
}
