package bench

import (
	"io"
	"slices"
	"testing"
	"time"
)

func TestManyPrefetchFlag(t *testing.T) {
	c, err := ParseConfig([]string{"-many-prefetch", "4, 64"}, io.Discard)
	if err != nil || !slices.Equal(c.ManyPrefetch, []int{4, 64}) {
		t.Fatalf("ParseConfig = %v, %v", c.ManyPrefetch, err)
	}
	if c, err = ParseConfig(nil, io.Discard); err != nil || !slices.Equal(c.ManyPrefetch, []int{2, 16, 256}) {
		t.Fatalf("default = %v, %v", c.ManyPrefetch, err)
	}
	if c, err = ParseConfig([]string{"-quick"}, io.Discard); err != nil || !slices.Equal(c.ManyPrefetch, []int{2, 256}) {
		t.Fatalf("quick default = %v, %v", c.ManyPrefetch, err)
	}
	for _, bad := range []string{"0", "16,2", "x", "2,2"} {
		if _, err := ParseConfig([]string{"-many-prefetch", bad}, io.Discard); err == nil {
			t.Errorf("-many-prefetch %q accepted", bad)
		}
	}
}

func TestDurableFlags(t *testing.T) {
	c, err := ParseConfig([]string{"-only", "durable,restart,durable-latency", "-restart-steps", "1000,5000", "-put-latency-duration", "1s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.runs(scenarioDurable) || !c.runs(scenarioRestart) || !c.runs(scenarioDurableLatency) || c.runs(scenarioDemo) {
		t.Errorf("-only: %v", c.Only)
	}
	if !slices.Equal(c.RestartSteps, []int{1000, 5000}) || c.PutLatencyDur != time.Second {
		t.Errorf("RestartSteps %v, PutLatencyDur %v", c.RestartSteps, c.PutLatencyDur)
	}
	if c, err = ParseConfig(nil, io.Discard); err != nil || !slices.Equal(c.RestartSteps, []int{1000000, 10000000}) || c.PutLatencyDur != 5*time.Second {
		t.Fatalf("defaults: %v %v, %v", c.RestartSteps, c.PutLatencyDur, err)
	}
	if c, err = ParseConfig([]string{"-quick"}, io.Discard); err != nil || !slices.Equal(c.RestartSteps, []int{1000000}) || c.PutLatencyDur != 2*time.Second {
		t.Fatalf("quick defaults: %v %v, %v", c.RestartSteps, c.PutLatencyDur, err)
	}
}
