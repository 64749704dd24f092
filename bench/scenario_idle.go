package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// idleGoal is the most CPU the master may use, as a share of one core,
// while every slave of the idle scenario is connected with nothing to do.
const idleGoal = 0.02

// idleSettle is how long the idle scenario waits, once every consumer
// reads the queue, before its window starts: the connections' set-up work
// (logins, the last streams' first messages) is over by then.
const idleSettle = 2 * time.Second

// IdleRow is the idle scenario: what connected slaves with nothing to do
// cost the master and themselves.
type IdleRow struct {
	Slaves    int     `json:"slaves"`
	Processes int     `json:"processes"`
	Prefetch  int     `json:"prefetch"`
	Window    float64 `json:"window_seconds"`
	// ConnectSeconds is the longest any consumers process took to log all
	// its clients in.
	ConnectSeconds float64 `json:"connect_seconds"`
	// MasterCPU and ConsumersCPU are CPU time (user and system, every
	// thread) over the window divided by its length: shares of one core.
	MasterCPU    float64 `json:"master_cpu_cores"`
	ConsumersCPU float64 `json:"consumers_cpu_cores"`
	// RSSBefore is the master's resident memory before any slave
	// connected, RSS at the end of the window; PerSlave is their
	// difference over Slaves.
	RSSBefore int64   `json:"master_rss_before_bytes"`
	RSS       int64   `json:"master_rss_bytes"`
	PerSlave  float64 `json:"master_bytes_per_slave"`
	// ConsumersRSS is the consumers processes' resident memory, added up.
	ConsumersRSS int64  `json:"consumers_rss_bytes"`
	Notes        string `json:"notes,omitempty"`
}

// idle connects many slaves to a master whose task queue stays empty, each
// its own connection and Worker with a Consume stream and credit, and
// measures what they cost over a fixed window once all are connected: the
// master's CPU and memory, and the consumers processes' CPU.
func (s *Suite) idle(ctx context.Context) error {
	total, procs, prefetch := s.cfg.IdleSlaves, min(s.cfg.IdleProcs, s.cfg.IdleSlaves), s.cfg.IdlePrefetch
	conns := strconv.Itoa(total + 1024) // the slaves and the odd call
	master, addr, err := s.env.StartMaster(ctx, "-log-level", "warn", "-max-conns", conns, "-max-unauth-conns", conns)
	if err != nil {
		return err
	}
	before, _, err := readStatus(master.Pid())
	if err != nil {
		return err
	}
	var consumers []*Proc
	for i := range procs {
		p, err := s.env.StartChild(fmt.Sprintf("consumers %d", i+1), "consumers", addr,
			"-n", strconv.Itoa(share(total, procs, i)), "-prefetch", strconv.Itoa(prefetch), "-expect", strconv.Itoa(total))
		if err != nil {
			return err
		}
		consumers = append(consumers, p)
	}
	connect := 0.0
	for _, p := range consumers {
		line, err := p.WaitLine(ctx, 5*time.Minute, func(l string) bool { return strings.HasPrefix(l, readyPrefix) })
		if err != nil {
			return err
		}
		if f := strings.Fields(line); len(f) == 3 {
			if sec, err := strconv.ParseFloat(f[2], 64); err == nil {
				connect = max(connect, sec)
			}
		}
	}
	for _, p := range consumers {
		if _, err := p.WaitLine(ctx, 5*time.Minute, func(l string) bool { return strings.HasPrefix(l, consumingPrefix) }); err != nil {
			return err
		}
	}
	select {
	case <-time.After(idleSettle):
	case <-ctx.Done():
		return ctx.Err()
	}

	all := append([]*Proc{master}, consumers...)
	cpu0, err := cpuEach(all)
	if err != nil {
		return err
	}
	t0 := time.Now()
	select {
	case <-time.After(s.cfg.IdleWindow):
	case <-ctx.Done():
		return ctx.Err()
	}
	cpu1, err := cpuEach(all)
	if err != nil {
		return err
	}
	window := time.Since(t0).Seconds()
	for _, p := range all {
		if p.Exited() {
			return p.failure(fmt.Errorf("exited during the idle window"))
		}
	}
	row := IdleRow{Slaves: total, Processes: procs, Prefetch: prefetch, Window: window, ConnectSeconds: connect, RSSBefore: before}
	row.MasterCPU = (cpu1[0] - cpu0[0]) / window
	for i := 1; i < len(all); i++ {
		row.ConsumersCPU += (cpu1[i] - cpu0[i]) / window
		rss, _, err := readStatus(all[i].Pid())
		if err != nil {
			return err
		}
		row.ConsumersRSS += rss
	}
	if row.RSS, _, err = readStatus(master.Pid()); err != nil {
		return err
	}
	row.PerSlave = float64(row.RSS-row.RSSBefore) / float64(total)
	verdict := "goal met"
	if row.MasterCPU > idleGoal {
		verdict = "ABOVE GOAL"
		s.problem("idle: the master used %.1f%% of a core with %s idle slaves connected (goal: at most %.0f%%)",
			row.MasterCPU*100, fmtCount(total), idleGoal*100)
	}
	row.Notes = fmt.Sprintf("master CPU goal ≤ %.0f%% of a core: %s", idleGoal*100, verdict)
	s.rep.Idle = append(s.rep.Idle, row)
	s.logf("   idle %s slaves (%d procs, prefetch %d, connect %.1fs): master CPU %.2f%% of a core, RSS %s → %s (%.0f B/slave); consumers CPU %.2f%% of a core, RSS %s",
		fmtCount(total), procs, prefetch, connect, row.MasterCPU*100, fmtBytes(row.RSSBefore), fmtBytes(row.RSS), row.PerSlave,
		row.ConsumersCPU*100, fmtBytes(row.ConsumersRSS))
	// Nothing of the run is left to measure: the consumers would take a
	// while to say goodbye one by one.
	for _, p := range consumers {
		p.Kill()
	}
	return StopAll(ctx, 30*time.Second, master)
}

// cpuEach is the CPU seconds each process has used so far, in order.
func cpuEach(ps []*Proc) ([]float64, error) {
	out := make([]float64, len(ps))
	for i, p := range ps {
		sec, err := cpuSeconds(p.Pid())
		if err != nil {
			return nil, p.failure(err)
		}
		out[i] = sec
	}
	return out, nil
}
