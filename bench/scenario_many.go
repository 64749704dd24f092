package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// manyGoal: with many consumers the demo may be at most this much slower
// than with two slaves.
const manyGoal = 0.20

// many runs `master -demo N` against many consumers, each its own
// connection, spread over a few processes of this tool's consumers
// subcommand, and samples the master's memory meanwhile: one row per
// consumer credit (-many-prefetch). The credit sets how many tasks one
// message can carry each way, and so the messages per task, which is what
// this scenario's throughput is bound by on a small machine.
func (s *Suite) many(ctx context.Context) error {
	for _, prefetch := range s.cfg.ManyPrefetch {
		if err := s.manyRow(ctx, prefetch); err != nil {
			return fmt.Errorf("prefetch %d: %w", prefetch, err)
		}
	}
	return nil
}

// manyRow measures one credit. Each run follows a run of the 2-slave demo
// with as many tasks, and the row compares itself with those, as the durable
// and metrics rows do with their interleaved runs: a full suite runs the
// demo scenario minutes before this one, and on a shared machine the two
// can see different machines.
func (s *Suite) manyRow(ctx context.Context, prefetch int) error {
	n, total := s.cfg.ManyN, s.cfg.ManyConsumers
	var rates, connects, cpus, refRates, refCPUs []float64
	var peak int64
	for run := 1; run <= s.cfg.ManyRuns; run++ {
		ref, err := s.demoRun(ctx, n, 2)
		if err != nil {
			return fmt.Errorf("run %d: the demo K=2 beside it: %w", run, err)
		}
		refRates = append(refRates, ref.Rate)
		refCPUs = append(refCPUs, ref.CPU/float64(n)*1e6)
		res, rss, connect, err := s.manyRun(ctx, n, total, prefetch)
		if err != nil {
			return fmt.Errorf("run %d: %w", run, err)
		}
		rates = append(rates, res.Rate)
		cpus = append(cpus, res.CPU/float64(n)*1e6)
		connects = append(connects, connect)
		peak = max(peak, rss)
		s.logf("   many-slaves %d consumers, prefetch %d, run %d/%d: %s tasks/s (the demo K=2 just before: %s), master peak RSS %s, connect %.2fs",
			total, prefetch, run, s.cfg.ManyRuns, fmtRate(res.Rate), fmtRate(ref.Rate), fmtBytes(rss), connect)
	}
	floor, floorCPU, err := s.manyFloor(ctx, total, prefetch)
	if err != nil {
		return fmt.Errorf("grpc-go floor: %w", err)
	}
	s.logf("   many-slaves grpc-go floor, %d connections, %d B each way per round trip: %s tasks/s", total, creditBytes(prefetch), fmtRate(floor))
	row := ThroughputRow{
		Scenario:  scenarioMany,
		Config:    fmt.Sprintf("%d consumers, prefetch %d", total, prefetch),
		Slaves:    total,
		Tasks:     n,
		Runs:      rates,
		Spread:    Summarize(rates),
		PeakRSS:   peak,
		GRPCFloor: floor,
		// µs per task over every process, logins left out.
		CPUPerTask:      Summarize(cpus).Median,
		FloorCPUPerTask: floorCPU,
	}
	notes := []string{
		fmt.Sprintf("%d procs x %d Workers (conc 1)", s.cfg.ManyProcs, total/s.cfg.ManyProcs),
		"master peak RSS " + fmtBytes(peak),
		fmt.Sprintf("connect %.1fs", Summarize(connects).Median),
		"grpc-go floor " + fmtRate(floor),
	}
	demo, demoCPU := Summarize(refRates).Median, Summarize(refCPUs).Median
	row.DemoReference = demo
	notes = append(notes, fmt.Sprintf("demo K=2 interleaved %s", fmtRate(demo)))
	if demo > 0 {
		diff := row.Median/demo - 1
		estimate := manyEstimate(demo, floor)
		row.Estimate = estimate
		notes = append(notes, fmt.Sprintf("estimate %s (%+.0f%%)", fmtRate(estimate), (estimate/demo-1)*100))
		if demoCPU > 0 && row.CPUPerTask > 0 && floorCPU > 0 {
			// The same comparison in CPU time, which the share of the
			// cores each run got on a shared machine does not move.
			row.CPUEstimate = demoCPU + floorCPU
			notes = append(notes, fmt.Sprintf("CPU/task %.2f µs, estimate %.2f (demo K=2 %.2f + floor %.2f): ×%.2f of the estimate",
				row.CPUPerTask, row.CPUEstimate, demoCPU, floorCPU, row.CPUEstimate/row.CPUPerTask))
		}
		verdict := "goal met"
		if diff < -manyGoal {
			verdict = "BELOW GOAL"
			goal := (1 - manyGoal) * demo
			why := fmt.Sprintf("; estimate with grpc-go's messages at this credit: %s", fmtRate(estimate))
			if floor < goal {
				verdict = "BELOW GOAL, as is grpc-go alone"
				why = fmt.Sprintf("; grpc-go alone moves at most %s with this credit, below the goal's %s", fmtRate(floor), fmtRate(goal))
			}
			s.problem("many-slaves, prefetch %d: %s tasks/s is %.0f%% below the 2-slave demo (goal: at most %.0f%% below)%s",
				prefetch, fmtRate(row.Median), -diff*100, manyGoal*100, why)
		}
		notes = append(notes, fmt.Sprintf("%+.0f%% vs demo K=2 (%s)", diff*100, verdict))
	}
	row.Notes = strings.Join(notes, "; ")
	s.rep.Throughput = append(s.rep.Throughput, row)
	return nil
}

// floorConnect is how long the floor's processes get to start and connect
// (without authentication: a fraction of a second for 1,000 connections).
const floorConnect = 3 * time.Second

// manyEstimate is what the many-slaves scenario would reach if the master
// and the consumers did, per task, the 2-slave demo's work (1/demo seconds
// of the machine) plus grpc-go's messages at the row's connections and
// credit (1/floor), and nothing else: both keep the same two cores busy, so
// their costs per task add up. It is an estimate, not a bound: the demo's
// time already holds its own few messages (one per about a thousand tasks
// on two connections), counted again here.
func manyEstimate(demo, floor float64) float64 {
	if demo <= 0 || floor <= 0 {
		return 0
	}
	return 1 / (1/demo + 1/floor)
}

// manyFloor is what grpc-go alone allows total consumers with this credit,
// and the CPU its processes (server and clients) spent per task, in µs:
// as many connections to grpc-go's benchmark server, spread over the same
// processes, each running round trips of a credit's worth of deliveries
// (creditBytes) each way back to back, times the credit. No consumer can
// do better: one message each way per credit is the fewest there can be.
func (s *Suite) manyFloor(ctx context.Context, total, prefetch int) (float64, float64, error) {
	echo, addr, err := s.env.StartEcho(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer echo.Kill()
	size := strconv.Itoa(creditBytes(prefetch))
	// The processes connect one after the other, then all measure from
	// the same moment; one that is not connected by then fails.
	startAt := strconv.FormatInt(time.Now().Add(floorConnect).UnixMilli(), 10)
	var pings []*Proc
	for i := range s.cfg.ManyProcs {
		p, err := s.env.StartPing(fmt.Sprintf("grpc-ping %d", i+1), addr, "-conns", strconv.Itoa(share(total, s.cfg.ManyProcs, i)),
			"-size", size, "-duration", s.cfg.FloorDuration.String(), "-start-at", startAt)
		if err != nil {
			s.env.Procs.KillAll()
			return 0, 0, err
		}
		pings = append(pings, p)
	}
	var perSecond, trips float64
	for _, p := range pings {
		var res LoadResult
		if err := p.Wait(ctx, floorConnect+s.cfg.FloorDuration+2*time.Minute); err != nil {
			s.env.Procs.KillAll()
			return 0, 0, err
		}
		if err := lastJSON(p.Stdout(), &res); err != nil {
			s.env.Procs.KillAll()
			return 0, 0, p.failure(err)
		}
		perSecond += float64(res.RoundTrips) / res.Seconds
		trips += float64(res.RoundTrips)
	}
	if err := StopAll(ctx, 15*time.Second, echo); err != nil {
		return 0, 0, err
	}
	// The pings' connecting is in it too: without logins, a small part.
	cpu, err := cpuOf(append([]*Proc{echo}, pings...)...)
	if err != nil || trips == 0 {
		return perSecond * float64(prefetch), 0, err
	}
	return perSecond * float64(prefetch), cpu / (trips * float64(prefetch)) * 1e6, nil
}

// share is process i's part of total spread over procs.
func share(total, procs, i int) int {
	n := total / procs
	if i < total%procs {
		n++
	}
	return n
}

// manyRun is one run; it returns the demo's result, the master's peak RSS
// and how long the consumers took to connect.
func (s *Suite) manyRun(ctx context.Context, n, total, prefetch int) (DemoResult, int64, float64, error) {
	master, addr, err := s.env.StartMaster(ctx, "-demo", strconv.Itoa(n), "-demo-slaves", strconv.Itoa(total),
		"-demo-progress", "log", "-log-level", "warn")
	if err != nil {
		return DemoResult{}, 0, 0, err
	}
	peakc := make(chan int64, 1)
	go func() { peakc <- samplePeakRSS(master, 100*time.Millisecond) }()

	var consumers []*Proc
	for i := range s.cfg.ManyProcs {
		p, err := s.env.StartChild(fmt.Sprintf("consumers %d", i+1), "consumers", addr,
			"-n", strconv.Itoa(share(total, s.cfg.ManyProcs, i)), "-prefetch", strconv.Itoa(prefetch))
		if err != nil {
			s.env.Procs.KillAll()
			return DemoResult{}, 0, 0, err
		}
		consumers = append(consumers, p)
	}
	// The CPU of the run, logins left out: from when every consumer has
	// logged in to the master's exit, once the last result is in (the
	// consumers' shutdown after it, about a second of CPU for 1,000, left
	// out too).
	for _, p := range consumers {
		if _, err := p.WaitLine(ctx, 5*time.Minute, func(l string) bool { return strings.HasPrefix(l, readyPrefix) }); err != nil {
			s.env.Procs.KillAll()
			return DemoResult{}, 0, 0, err
		}
	}
	cpu0, cpuErr := cpuOf(append([]*Proc{master}, consumers...)...)
	res, err := finishDemo(ctx, master, n, consumers)
	cpu1, cpuErr1 := cpuOf(append([]*Proc{master}, consumers...)...)
	peak := <-peakc
	if err != nil {
		s.env.Procs.KillAll()
		return res, peak, 0, err
	}
	stuck := s.waitSelfExit(ctx, "consumers process", consumers)
	if ctx.Err() != nil {
		return res, peak, 0, ctx.Err()
	}
	connect := 0.0
	for _, p := range consumers {
		if stuck[p] {
			continue
		}
		if p.err != nil {
			return res, peak, 0, p.failure(fmt.Errorf("exited after the demo: %w", p.err))
		}
		var cr ConsumersResult
		if err := lastJSON(p.Stdout(), &cr); err != nil {
			return res, peak, 0, p.failure(err)
		}
		connect = max(connect, cr.ConnectSeconds)
	}
	if cpuErr == nil && cpuErr1 == nil {
		res.CPU = cpu1 - cpu0
	}
	return res, peak, connect, nil
}

// samplePeakRSS samples a process's resident memory until it exits and
// returns the highest figure seen (VmRSS samples and the kernel's VmHWM).
func samplePeakRSS(p *Proc, every time.Duration) int64 {
	t := time.NewTicker(every)
	defer t.Stop()
	var peak int64
	for {
		if rss, hwm, err := readStatus(p.Pid()); err == nil {
			peak = max(peak, rss, hwm)
		}
		select {
		case <-p.Done():
			return peak
		case <-t.C:
		}
	}
}
