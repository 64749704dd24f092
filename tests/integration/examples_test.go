package integration

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// The examples are real programs: the custom worker upper-cases what the
// custom producer puts, and the producer reads one reply per word.
func TestExamples(t *testing.T) {
	key := writeKey(t, testKey)
	env := []string{"DISTQ_AUTHKEY_FILE=" + key}
	_, addr := startMaster(t, key)
	w := startEnv(t, "example-worker", "worker", env, "-master", addr)
	p := startEnv(t, "example-producer", "producer", env, "-master", addr)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("producer exited %d", code)
	}
	out := p.output()
	for _, word := range []string{"ALPHA", "BETA", "GAMMA", "DELTA"} {
		if !strings.Contains(out, word) {
			t.Errorf("producer output lacks %s:\n%s", word, out)
		}
	}
	w.signal(syscall.SIGINT)
	if code := w.wait(time.Minute); code != 0 {
		t.Errorf("worker exited %d after SIGINT", code)
	}
}
