package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distq/distq/internal/queue"
)

func TestParseFlagsRetry(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		want     string // substring of the error; "" means valid
		min, max time.Duration
		queues   []queue.QueueConfig
	}{
		{args: nil, min: queue.DefaultRetryMin, max: 0},
		{args: []string{"-retry-min", "1h"}, min: time.Hour},
		{args: []string{"-retry-min", "1s", "-retry-max", "10s"}, min: time.Second, max: 10 * time.Second},
		{args: []string{"-queue", "tasks", "-queue", "results:5"}, min: queue.DefaultRetryMin,
			queues: []queue.QueueConfig{{Name: "tasks"}, {Name: "results", MaxSize: 5}}},
		{args: []string{"-queue", "slow:10,retry-min=2s,retry-max=5m", "-queue", "fast,retry-max=1s"}, min: queue.DefaultRetryMin,
			queues: []queue.QueueConfig{{Name: "slow", MaxSize: 10, RetryMin: 2 * time.Second, RetryMax: 5 * time.Minute}, {Name: "fast", RetryMax: time.Second}}},
		{args: []string{"-queue", "long,retry-min=2h"}, min: queue.DefaultRetryMin, // its max rises to its min
			queues: []queue.QueueConfig{{Name: "long", RetryMin: 2 * time.Hour}}},

		{args: []string{"-retry-min", "0s"}, want: "-retry-min 0s"},
		{args: []string{"-retry-min", "-1s"}, want: "-retry-min -1s"},
		{args: []string{"-retry-min", "25h"}, want: "-retry-min 25h0m0s: want more than 0 and at most 24h0m0s"},
		{args: []string{"-retry-min", "banana"}, want: "invalid value"},
		{args: []string{"-retry-min", "2s", "-retry-max", "1s"}, want: "-retry-max 1s: want from -retry-min (2s) to 24h0m0s"},
		{args: []string{"-retry-max", "25h"}, want: "-retry-max 25h0m0s"},
		{args: []string{"-retry-max", "-1s"}, want: "-retry-max -1s"},
		{args: []string{"-queue", "tasks,retry-min=0s"}, want: `queue "tasks": retry-min "0s" is not a positive duration`},
		{args: []string{"-queue", "tasks,retry-min=soon"}, want: `retry-min "soon" is not a positive duration`},
		{args: []string{"-queue", "tasks,retry-max"}, want: `retry-max "" is not a positive duration`},
		{args: []string{"-queue", "tasks,retry-min=1s,retry-min=2s"}, want: "retry-min given twice"},
		{args: []string{"-queue", "tasks,backoff=1s"}, want: `unknown option "backoff=1s"`},
		{args: []string{"-queue", "tasks,"}, want: `unknown option ""`},
		{args: []string{"-queue", "tasks:x,retry-min=1s"}, want: "maxsize"},
		{args: []string{"-queue", "bad name,retry-min=1s"}, want: "only letters"},
		{args: []string{"-queue", "tasks,retry-min=2s,retry-max=1s"}, want: `queue "tasks": invalid argument: retry max 1s is below retry min 2s`},
		{args: []string{"-retry-min", "10s", "-queue", "tasks,retry-max=1s"}, want: "retry max 1s is below retry min 10s"},
		{args: []string{"-queue", "tasks,retry-max=48h"}, want: "above 24h"},
	} {
		m := NewMain(io.Discard, io.Discard)
		err := m.ParseFlags(tc.args)
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: %v; want an error containing %q", tc.args, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if m.retryMin != tc.min || m.retryMax != tc.max || !slices.Equal(m.queues, tc.queues) {
			t.Errorf("%v: retry %v..%v, queues %+v; want %v..%v, %+v", tc.args, m.retryMin, m.retryMax, m.queues, tc.min, tc.max, tc.queues)
		}
	}
}

// The broker gets the flags' retry bounds, and the serving line names the
// queues whose bounds differ from the master's.
func TestRetryConfigReachesTheBroker(t *testing.T) {
	m := NewMain(io.Discard, io.Discard)
	if err := m.ParseFlags([]string{"-retry-min", "1s", "-queue", "tasks", "-queue", "slow,retry-min=2m", "-queue", "fast,retry-min=10ms,retry-max=1s"}); err != nil {
		t.Fatal(err)
	}
	b, err := queue.New(m.brokerConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if lo, hi := b.RetryBackoff(); lo != time.Second || hi != queue.DefaultRetryMax {
		t.Fatalf("master's backoff %v..%v", lo, hi)
	}
	if got, want := queueRetries(b), "slow=2m0s..2m0s,fast=10ms..1s"; got != want {
		t.Fatalf("queueRetries = %q, want %q", got, want)
	}
}
