package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// peerWorkers is the number of worker processes of each peer, as distq's
// rows run two slave processes. Each worker is one process with one
// connection handling one task at a time.
const peerWorkers = 2

// Throughput rows of the peers (ThroughputRow.Scenario).
const (
	peerRedis = "redis"
	peerNATS  = "nats-jetstream"
)

// peers measures Redis lists and a NATS JetStream work queue with the same
// square workload: closed-loop latency first, then throughput (-runs runs
// of -peer-n tasks). Redis needs Debian's redis-server; without it its
// rows say it was skipped.
func (s *Suite) peers(ctx context.Context) error {
	if err := s.peerRedis(ctx); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if err := s.peerNATS(ctx, false); err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	if err := s.peerNATS(ctx, true); err != nil {
		return fmt.Errorf("nats (sync always): %w", err)
	}
	return nil
}

// redisServerArgs are the flags redis-server runs with: loopback, the
// given port, no persistence at all (no RDB snapshots, no AOF).
func redisServerArgs(port int, dir string) []string {
	return []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--loglevel", "warning", "--logfile", ""}
}

// waitRedis waits until a redis-server answers PING.
func waitRedis(ctx context.Context, addr string, timeout time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s: no answer within %v: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// redisVersion is what `redis-server --version` says ("v=7.0.15").
func redisVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "?"
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return v
		}
	}
	return "?"
}

func (s *Suite) peerRedis(ctx context.Context) error {
	bin, err := exec.LookPath(s.cfg.RedisServer)
	if err != nil {
		why := "redis-server not installed"
		s.addClosed(ClosedLoopRow{Key: keyRedis, System: "Redis lists", Config: "no persistence", Skipped: why})
		s.rep.Throughput = append(s.rep.Throughput, ThroughputRow{Scenario: peerRedis, Config: "2 workers", Slaves: peerWorkers,
			Notes: "skipped: " + why})
		s.logf("   redis: skipped: %s", why)
		return nil
	}
	version := redisVersion(ctx, bin)
	system := "Redis lists (redis-server " + version + ")"
	dir, err := s.env.DataDir("redis")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	port, err := freePort()
	if err != nil {
		return err
	}
	srv, err := s.env.Procs.Start("redis-server", append([]string{bin}, redisServerArgs(port, dir)...)...)
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitRedis(ctx, addr, 15*time.Second); err != nil {
		srv.Kill()
		return srv.failure(err)
	}
	workers, err := s.startPeerWorkers(ctx, "redis-worker", "-redis", addr)
	if err != nil {
		srv.Kill()
		return err
	}
	client := func(args ...string) (*Proc, error) {
		return s.env.Procs.Start("redis-client", append([]string{s.env.Self, "redis-client", "-redis", addr}, args...)...)
	}
	p, err := client("-mode", "latency", "-n", strconv.Itoa(s.cfg.ClosedN))
	if err == nil {
		err = s.closedChild(ctx, p, ClosedLoopRow{Key: keyRedis, System: system, Config: "no persistence",
			Notes: fmt.Sprintf("go-redis %s: LPUSH, then BRPOP results; %d worker processes BRPOP/LPUSH one task at a time", redis.Version(), peerWorkers)})
	}
	if err == nil {
		err = s.peerThroughput(ctx, peerRedis, client,
			fmt.Sprintf("%s, no persistence; LPUSH %s per command x 2 pushers, RPOP 1,000 at a time; %d workers, one task per BRPOP",
				system, fmtCount(s.cfg.ProducerBatch), peerWorkers),
			"-batch", strconv.Itoa(s.cfg.ProducerBatch), "-putters", "2")
	}
	if err != nil {
		s.env.Procs.KillAll()
		return err
	}
	if err := StopAll(ctx, 15*time.Second, workers...); err != nil {
		return err
	}
	return StopAll(ctx, 15*time.Second, srv)
}

// peerNATS runs the embedded nats-server (the nats-server subcommand) on a
// fresh file store with two workers: closed-loop latency, then (with the
// server's default sync only) throughput.
func (s *Suite) peerNATS(ctx context.Context, syncAlways bool) error {
	dir, err := s.env.DataDir("nats")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	argv := []string{s.env.Self, "nats-server", "-store", filepath.Join(dir, "store")}
	key, config := keyNATS, "file storage, default sync (fsync every 2 min)"
	if syncAlways {
		argv = append(argv, "-sync-always")
		key, config = keyNATSSyncAll, "file storage, sync always (fsync every write)"
	}
	srv, url, err := s.env.startServer(ctx, "nats-server", argv)
	if err != nil {
		return err
	}
	workers, err := s.startPeerWorkers(ctx, "nats-worker", "-nats", url)
	if err != nil {
		srv.Kill()
		return err
	}
	system := "NATS JetStream (nats-server " + server.VERSION + ")"
	client := func(args ...string) (*Proc, error) {
		return s.env.Procs.Start("nats-client", append([]string{s.env.Self, "nats-client", "-nats", url}, args...)...)
	}
	p, err := client("-mode", "latency", "-n", strconv.Itoa(s.cfg.ClosedN))
	if err == nil {
		err = s.closedChild(ctx, p, ClosedLoopRow{Key: key, System: system, Config: config,
			Notes: fmt.Sprintf("nats.go %s: publish (awaits the stream's ack), then the next result from a pull consumer, acked; %d worker processes, one task at a time",
				nats.Version, peerWorkers)})
	}
	if err == nil && !syncAlways {
		err = s.peerThroughput(ctx, peerNATS, client,
			fmt.Sprintf("%s, WorkQueue streams on file storage, default sync; async publish, %s awaiting acks; %d workers, one task at a time",
				system, fmtCount(s.cfg.ProducerBatch), peerWorkers),
			"-batch", strconv.Itoa(s.cfg.ProducerBatch))
	}
	if err != nil {
		s.env.Procs.KillAll()
		return err
	}
	if err := StopAll(ctx, 15*time.Second, workers...); err != nil {
		return err
	}
	return StopAll(ctx, 15*time.Second, srv)
}

// startPeerWorkers starts the peer's worker processes and returns them once
// each has written its ready file.
func (s *Suite) startPeerWorkers(ctx context.Context, role string, args ...string) ([]*Proc, error) {
	var ps []*Proc
	for i := range peerWorkers {
		p, _, err := s.env.startServer(ctx, fmt.Sprintf("%s %d", role, i+1), append([]string{s.env.Self, role}, args...))
		if err != nil {
			for _, q := range ps {
				q.Kill()
			}
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// peerThroughput runs the peer's client in throughput mode -runs times and
// adds its row.
func (s *Suite) peerThroughput(ctx context.Context, scenario string, client func(args ...string) (*Proc, error), notes string, extra ...string) error {
	n := s.cfg.PeerN
	var rates []float64
	for run := 1; run <= s.cfg.Runs; run++ {
		p, err := client(append([]string{"-mode", "throughput", "-n", strconv.Itoa(n)}, extra...)...)
		if err != nil {
			return err
		}
		if err := p.Wait(ctx, time.Minute+time.Duration(n/500)*time.Second); err != nil {
			return fmt.Errorf("throughput run %d: %w", run, err)
		}
		var res PeerThroughputResult
		if err := lastJSON(p.Stdout(), &res); err != nil {
			return p.failure(err)
		}
		if res.TasksPerS <= 0 {
			return errors.New("throughput: no rate")
		}
		rates = append(rates, res.TasksPerS)
		s.logf("   %s throughput run %d/%d: %s tasks/s (%.2fs)", scenario, run, s.cfg.Runs, fmtRate(res.TasksPerS), res.Seconds)
	}
	s.rep.Throughput = append(s.rep.Throughput, ThroughputRow{
		Scenario: scenario,
		Config:   strconv.Itoa(peerWorkers) + " workers",
		Slaves:   peerWorkers,
		Tasks:    n,
		Runs:     rates,
		Spread:   Summarize(rates),
		Notes:    notes + "; all squares checked",
	})
	return nil
}

// PeerComparison is one of distq's figures against a peer's in the same
// run. For latencies the ratio is distq's ÷ the peer's (lower is better)
// and Goal, when set, the most it may be; for throughput it is distq's ÷
// the peer's tasks/s (higher is better), for information.
type PeerComparison struct {
	Figure string  `json:"figure"` // "closed-loop p50", "closed-loop p99", "throughput"
	Distq  string  `json:"distq"`
	Peer   string  `json:"peer"`
	DistqV float64 `json:"distq_value"`
	PeerV  float64 `json:"peer_value"`
	Ratio  float64 `json:"ratio"`
	Goal   float64 `json:"goal_at_most,omitempty"`
	Met    *bool   `json:"met,omitempty"`
}

// peerGoals are issue 11's targets, each a ratio within one run: distq in
// memory at most Redis lists' closed-loop p50 and p99, and durable distq
// (-fsync always) at most NATS JetStream's on file storage. The other
// pairs are shown for information.
var peerGoals = []struct {
	distq, peer string
	goal        float64
}{
	{keyDistq, keyRedis, 1.0},
	{keyDistq, keyNATS, 0},
	{keyDistqFsync, keyNATS, 1.0},
	{keyDistqFsync, keyNATSSyncAll, 0},
	{keyDistqIntvl, keyNATS, 0},
}

// shortNames name the closed-loop rows in the comparisons.
var shortNames = map[string]string{
	keyGRPC:        "floor: one bare grpc-go round trip",
	keyDistq:       "distq in memory",
	keyDistqFsync:  "distq -fsync always",
	keyDistqIntvl:  "distq -fsync interval",
	keyRedis:       "Redis lists",
	keyNATS:        "NATS JetStream (default sync)",
	keyNATSSyncAll: "NATS JetStream (sync always)",
}

// comparePeers fills the report's comparisons from what was measured and
// lists each missed goal under PROBLEMS.
func (s *Suite) comparePeers() {
	r := s.rep
	for _, g := range peerGoals {
		d, ok1 := r.closedRow(g.distq)
		p, ok2 := r.closedRow(g.peer)
		if !ok1 || !ok2 {
			continue
		}
		for _, f := range []struct {
			name   string
			dv, pv float64
		}{{"closed-loop p50", d.P50Ms, p.P50Ms}, {"closed-loop p99", d.P99Ms, p.P99Ms}} {
			c := PeerComparison{Figure: f.name, Distq: shortNames[g.distq], Peer: shortNames[g.peer],
				DistqV: f.dv, PeerV: f.pv, Ratio: f.dv / f.pv, Goal: g.goal}
			if g.goal > 0 {
				met := c.Ratio <= g.goal
				c.Met = &met
				if !met {
					s.problem("%s: %s %s is %s of %s's %s in the same run (issue 11's goal: at most %s)", f.name, c.Distq, fmtMs(f.dv),
						fmtRatio(c.Ratio), c.Peer, fmtMs(f.pv), fmtRatio(g.goal))
				}
			}
			r.Comparisons = append(r.Comparisons, c)
		}
	}
	for _, peer := range []string{peerRedis, peerNATS} {
		p, ok := r.row(peer, strconv.Itoa(peerWorkers)+" workers")
		if !ok || p.Median <= 0 {
			continue
		}
		for _, d := range []struct{ scenario, label string }{{scenarioProducer, "separate producer"}, {scenarioDemo, "demo"}} {
			t, ok := r.row(d.scenario, "K=2")
			if !ok || t.Median <= 0 {
				continue
			}
			r.Comparisons = append(r.Comparisons, PeerComparison{Figure: "throughput", Distq: "distq " + d.label + " K=2",
				Peer: map[string]string{peerRedis: "Redis lists", peerNATS: "NATS JetStream (default sync)"}[peer], DistqV: t.Median, PeerV: p.Median, Ratio: t.Median / p.Median})
		}
	}
}
