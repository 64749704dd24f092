package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// The peers (issue 11 §1): other task queues run with the same square
// workload in the same run, so that every distq figure has its comparison
// beside it. A task's payload is a number 1..100 in ASCII decimal; a worker
// replies with its square, also in decimal.

// squareOf is the workers' job: the square of the decimal number in
// payload, in decimal.
func squareOf(payload []byte) ([]byte, error) {
	n, err := strconv.ParseInt(string(payload), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("task %q: not a number", payload)
	}
	return strconv.AppendInt(nil, n*n, 10), nil
}

// squareTally checks results that carry no task id (the peers' results are
// bare numbers, as their tasks are): every expected square counts up, every
// result counts down, and at the end each count must be zero. It checks the
// multiset of results, so a wrong, missing or duplicated square shows,
// though not which task it answered. Not safe for concurrent use.
type squareTally struct {
	counts map[int64]int
	bad    int // results that are not numbers
}

func newSquareTally() *squareTally { return &squareTally{counts: map[int64]int{}} }

func (t *squareTally) expect(square int64) { t.counts[square]++ }

func (t *squareTally) result(payload []byte) {
	v, err := strconv.ParseInt(string(payload), 10, 64)
	if err != nil {
		t.bad++
		return
	}
	t.counts[v]--
}

// verdict: results beyond those expected (wrong or duplicated values, or
// not numbers), and expected squares that did not come.
func (t *squareTally) verdict() (extra, missing int) {
	extra = t.bad
	for _, c := range t.counts {
		if c > 0 {
			missing += c
		} else {
			extra -= c
		}
	}
	return extra, missing
}

// PeerThroughputResult is what a peer client prints in throughput mode.
type PeerThroughputResult struct {
	Tasks     int     `json:"tasks"`
	Seconds   float64 `json:"seconds"`
	TasksPerS float64 `json:"tasks_per_s"`
	Extra     int     `json:"extra"`
	Missing   int     `json:"missing"`
}

// checkSquares fails when the tally found wrong or missing results.
func (r PeerThroughputResult) checkSquares() error {
	if r.Extra+r.Missing > 0 {
		return fmt.Errorf("results wrong: %d unexpected, %d missing", r.Extra, r.Missing)
	}
	return nil
}

// closedLoop runs trip n times after warmup unmeasured ones, one at a
// time, and times each: one task in flight, put → its result.
func closedLoop(ctx context.Context, n, warmup int, trip func() error) (LatencyResult, error) {
	for range warmup {
		if err := trip(); err != nil {
			return LatencyResult{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	samples := make([]time.Duration, 0, n)
	start := time.Now()
	for range n {
		if err := ctx.Err(); err != nil {
			return LatencyResult{}, err
		}
		t0 := time.Now()
		if err := trip(); err != nil {
			return LatencyResult{}, fmt.Errorf("trip %d: %w", len(samples)+1, err)
		}
		samples = append(samples, time.Since(t0))
	}
	elapsed := time.Since(start)
	return LatencyResult{
		AchievedRate: float64(n) / elapsed.Seconds(),
		Seconds:      elapsed.Seconds(),
		Sent:         n,
		Latencies:    SummarizeLatencies(samples),
	}, nil
}

// checkSquare checks one closed-loop result against its task.
func checkSquare(payload, result []byte) error {
	want, err := squareOf(payload)
	if err != nil {
		return err
	}
	if string(result) != string(want) {
		return fmt.Errorf("task %s: result %q, want %s", payload, result, want)
	}
	return nil
}

// writeReady writes what into file (atomically, by a rename): the scenario
// waits for the file, as for a server's -addr-file.
func writeReady(file, what string) error {
	if file == "" {
		return nil
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(what+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// freePort returns a loopback port that was free a moment ago, for a
// server that cannot listen on port 0 and say which port it got.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// errPeerMode is a client's -mode that is neither throughput nor latency.
var errPeerMode = errors.New("-mode must be throughput or latency")
