package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSquareOf(t *testing.T) {
	got, err := squareOf([]byte("12"))
	if err != nil || string(got) != "144" {
		t.Fatalf("squareOf(12) = %q, %v", got, err)
	}
	if _, err := squareOf([]byte("x")); err == nil {
		t.Fatal("squareOf(x): no error")
	}
	if err := checkSquare([]byte("7"), []byte("49")); err != nil {
		t.Fatal(err)
	}
	if err := checkSquare([]byte("7"), []byte("48")); err == nil {
		t.Fatal("checkSquare(7, 48): no error")
	}
}

func TestSquareTally(t *testing.T) {
	tl := newSquareTally()
	for _, sq := range []int64{1, 4, 4, 9} {
		tl.expect(sq)
	}
	for _, r := range []string{"4", "1", "4", "9"} {
		tl.result([]byte(r))
	}
	if extra, missing := tl.verdict(); extra != 0 || missing != 0 {
		t.Fatalf("all in: extra %d missing %d", extra, missing)
	}

	tl = newSquareTally()
	for _, sq := range []int64{1, 4, 9} {
		tl.expect(sq)
	}
	// 4 twice (one duplicate), 9 missing, one not a number.
	for _, r := range []string{"1", "4", "4", "nine"} {
		tl.result([]byte(r))
	}
	if extra, missing := tl.verdict(); extra != 2 || missing != 1 {
		t.Fatalf("got extra %d missing %d, want 2 and 1", extra, missing)
	}
}

func TestPercentileP90(t *testing.T) {
	var samples []time.Duration
	for i := 1; i <= 100; i++ {
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	l := SummarizeLatencies(samples)
	if l.P90Ms != 90 || l.P50Ms != 50 || l.P99Ms != 99 {
		t.Fatalf("p50/p90/p99 = %v/%v/%v, want 50/90/99", l.P50Ms, l.P90Ms, l.P99Ms)
	}
}

func TestClosedLoopCounts(t *testing.T) {
	calls := 0
	res, err := closedLoop(context.Background(), 5, 3, func() error { calls++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if calls != 8 || res.Count != 5 || res.Sent != 5 {
		t.Fatalf("calls %d, count %d, sent %d; want 8, 5, 5", calls, res.Count, res.Sent)
	}
}

// runWorkers runs k workers of a peer until the returned stop is called.
func runWorkers(t *testing.T, k int, worker func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := worker(ctx); err != nil {
				t.Errorf("worker: %v", err)
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// peerClient runs a peer's client role and decodes its JSON line.
func peerClient(t *testing.T, run subcommand, args []string, v any) {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, args, &out); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), v); err != nil {
		t.Fatalf("%v: %q: %v", args, out.String(), err)
	}
}

// TestNATSPeer runs the NATS roles on an embedded server, as the peers
// scenario does in processes: two workers, then a tiny closed loop and a
// tiny throughput run, every square checked.
func TestNATSPeer(t *testing.T) {
	ns, err := startNATS(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	if err := natsSetup(context.Background(), ns.ClientURL()); err != nil {
		t.Fatal(err)
	}
	url := ns.ClientURL()
	stop := runWorkers(t, 2, func(ctx context.Context) error {
		return runNATSWorker(ctx, []string{"-nats", url}, nil)
	})
	defer stop()
	var lat LatencyResult
	peerClient(t, runNATSClient, []string{"-nats", url, "-mode", "latency", "-n", "50", "-warmup", "5"}, &lat)
	if lat.Count != 50 || lat.P50Ms <= 0 {
		t.Fatalf("latency: %+v", lat)
	}
	var tp PeerThroughputResult
	peerClient(t, runNATSClient, []string{"-nats", url, "-mode", "throughput", "-n", "500", "-batch", "100"}, &tp)
	if tp.Tasks != 500 || tp.TasksPerS <= 0 || tp.Extra+tp.Missing != 0 {
		t.Fatalf("throughput: %+v", tp)
	}
}

// TestRedisPeer runs the Redis roles against a redis-server started like
// the scenario starts it; without redis-server it is skipped.
func TestRedisPeer(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed: the Redis peer is not tested")
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, redisServerArgs(port, t.TempDir())...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitRedis(context.Background(), addr, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	stop := runWorkers(t, 2, func(ctx context.Context) error {
		return runRedisWorker(ctx, []string{"-redis", addr}, nil)
	})
	defer stop()
	var lat LatencyResult
	peerClient(t, runRedisClient, []string{"-redis", addr, "-mode", "latency", "-n", "50", "-warmup", "5"}, &lat)
	if lat.Count != 50 || lat.P50Ms <= 0 {
		t.Fatalf("latency: %+v", lat)
	}
	var tp PeerThroughputResult
	peerClient(t, runRedisClient, []string{"-redis", addr, "-mode", "throughput", "-n", "500", "-batch", "100"}, &tp)
	if tp.Tasks != 500 || tp.TasksPerS <= 0 || tp.Extra+tp.Missing != 0 {
		t.Fatalf("throughput: %+v", tp)
	}
}

func TestComparePeers(t *testing.T) {
	lat := func(p50, p99 float64) Latencies { return Latencies{Count: 100, P50Ms: p50, P99Ms: p99} }
	s := &Suite{log: io.Discard, rep: &Report{
		ClosedLoop: []ClosedLoopRow{
			{Key: keyDistq, System: "distq", Latencies: lat(0.4, 1.0)},
			{Key: keyDistqFsync, System: "distq", Latencies: lat(2, 4)},
			{Key: keyRedis, System: "Redis lists", Latencies: lat(0.2, 1.25)},
			{Key: keyNATS, System: "NATS", Skipped: "not here"},
		},
		Throughput: []ThroughputRow{
			{Scenario: scenarioProducer, Config: "K=2", Spread: Spread{Median: 500000}},
			{Scenario: peerRedis, Config: "2 workers", Spread: Spread{Median: 25000}},
		},
	}}
	s.comparePeers()
	// distq vs Redis p50 and p99, and throughput vs Redis; nothing against
	// the skipped NATS row.
	if len(s.rep.Comparisons) != 3 {
		t.Fatalf("comparisons: %+v", s.rep.Comparisons)
	}
	p50, p99, tp := s.rep.Comparisons[0], s.rep.Comparisons[1], s.rep.Comparisons[2]
	if p50.Ratio != 2 || p50.Met == nil || *p50.Met {
		t.Errorf("p50: %+v", p50)
	}
	if p99.Ratio != 0.8 || p99.Met == nil || !*p99.Met {
		t.Errorf("p99: %+v", p99)
	}
	if tp.Figure != "throughput" || tp.Ratio != 20 || tp.Met != nil {
		t.Errorf("throughput: %+v", tp)
	}
	if len(s.rep.Problems) != 1 || !strings.Contains(s.rep.Problems[0], "closed-loop p50") {
		t.Errorf("problems: %q", s.rep.Problems)
	}
	var b bytes.Buffer
	WriteTables(&b, s.rep)
	for _, want := range []string{"LATENCY (closed loop", "skipped: not here", "NOT MET", "×20.0"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, b.String())
		}
	}
}
