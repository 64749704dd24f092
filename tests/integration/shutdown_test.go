package integration

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGTERM on the master: it stops handing out work, lets the slave finish
// and ack what it holds within the grace time, and exits 0.
func TestMasterGracefulStop(t *testing.T) {
	key := writeKey(t, testKey)
	m, addr := startMaster(t, key, "-shutdown-timeout", "30s")
	c := dial(t, addr, testKey)
	ctx := ctxTimeout(t, time.Minute)
	for i := range 200 {
		if _, err := c.Queue("tasks").Put(ctx, []byte(fmt.Sprint(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	s := startSlave(t, "slave", addr, key, "-concurrency", "2", "-delay", "50ms", "-max-backoff", "200ms")
	s.waitLine("receiving tasks", 30*time.Second)
	m.signal(syscall.SIGTERM)
	if code := m.wait(time.Minute); code != 0 {
		t.Fatalf("master exited %d after SIGTERM; want 0", code)
	}
	out := m.output()
	if strings.Contains(out, "grace ran out") {
		t.Errorf("the slave's held tasks were not settled within the grace time:\n%s", out)
	}
	if strings.Contains(s.output(), "settle refused") {
		t.Errorf("the slave's acks were refused during the master's shutdown")
	}
	// The slave outlives its master and keeps trying to reconnect.
	s.waitLine("master unreachable; retrying", 30*time.Second)
}
