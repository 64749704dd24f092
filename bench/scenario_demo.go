package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// demoSlaves are the slave counts of the demo scenario.
var demoSlaves = []int{1, 2, 4}

// demo runs `master -demo N` with K slave processes, for each K, Runs times.
func (s *Suite) demo(ctx context.Context) error {
	n := s.cfg.DemoN
	for _, k := range demoSlaves {
		var rates, cpus []float64
		for run := 1; run <= s.cfg.Runs; run++ {
			res, err := s.demoRun(ctx, n, k)
			if err != nil {
				return fmt.Errorf("K=%d run %d: %w", k, run, err)
			}
			rates = append(rates, res.Rate)
			cpus = append(cpus, res.CPU/float64(n)*1e6)
			s.logf("   demo K=%d run %d/%d: %s tasks/s (%s)", k, run, s.cfg.Runs, fmtRate(res.Rate), res.Elapsed)
		}
		s.rep.Throughput = append(s.rep.Throughput, ThroughputRow{
			Scenario:   scenarioDemo,
			Config:     "K=" + strconv.Itoa(k),
			Slaves:     k,
			Tasks:      n,
			Runs:       rates,
			Spread:     Summarize(rates),
			CPUPerTask: Summarize(cpus).Median,
			Notes:      fmt.Sprintf("master -demo %s + %d slave process(es), -prefetch %d", fmtCount(n), k, s.cfg.Prefetch),
		})
	}
	return nil
}

// demoRun is one demo: the master puts and checks n tasks, k slaves square
// them; the master exits at the end and the slaves once the queue is
// closed and drained. extra are more flags of the master (-data-dir).
func (s *Suite) demoRun(ctx context.Context, n, k int, extra ...string) (DemoResult, error) {
	return s.demoRunWith(ctx, n, k, nil, extra...)
}

// demoRunWith is demoRun with extra flags slaveExtra(i) for slave i.
func (s *Suite) demoRunWith(ctx context.Context, n, k int, slaveExtra func(i int) []string, extra ...string) (DemoResult, error) {
	return s.demoRunStarting(ctx, n, k, func(addr string) ([]*Proc, error) {
		return s.env.StartSlavesWith(addr, k, slaveExtra)
	}, extra...)
}

// demoRunStarting is one demo whose k slaves (Go or other) start(addr)
// starts: processes that end by themselves once the queue is closed and
// drained.
func (s *Suite) demoRunStarting(ctx context.Context, n, k int, start func(addr string) ([]*Proc, error), extra ...string) (DemoResult, error) {
	master, addr, err := s.env.StartMaster(ctx, append([]string{"-demo", strconv.Itoa(n), "-demo-slaves", strconv.Itoa(k),
		"-demo-progress", "log", "-log-level", "warn"}, extra...)...)
	if err != nil {
		return DemoResult{}, err
	}
	slaves, err := start(addr)
	if err != nil {
		master.Kill()
		return DemoResult{}, err
	}
	res, err := finishDemo(ctx, master, n, slaves)
	if err != nil {
		for _, p := range slaves {
			p.Kill()
		}
		return res, err
	}
	stuck := s.waitSelfExit(ctx, "slave", slaves)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	for _, p := range slaves {
		if !stuck[p] && p.err != nil {
			return res, p.failure(fmt.Errorf("exited after the demo: %w", p.err))
		}
	}
	if len(stuck) == 0 {
		res.CPU, _ = cpuOf(append([]*Proc{master}, slaves...)...)
	}
	return res, nil
}

// waitSelfExit waits for children that should end by themselves once the
// work is over; one that does not is killed, noted as a problem and
// returned in stuck. Their exit statuses are left to the caller.
func (s *Suite) waitSelfExit(ctx context.Context, what string, ps []*Proc) (stuck map[*Proc]bool) {
	stuck = map[*Proc]bool{}
	for _, p := range ps {
		if err := p.Wait(ctx, 15*time.Second); errors.Is(err, errNoExit) {
			stuck[p] = true
			s.problem("%s (%s) did not exit by itself within 15s after the work was done; killed", what, p.Name)
		}
	}
	return stuck
}

// finishDemo waits for a demo master to exit and reads its summary. A demo
// that is not OK is a failed benchmark.
func finishDemo(ctx context.Context, master *Proc, n int, helpers []*Proc) (DemoResult, error) {
	// A helper (slave or consumers process) that fails ends the wait at
	// once: the master's -demo-slaves would otherwise wait for it until the
	// timeout, and the error would blame the master.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	failed := make(chan *Proc, len(helpers))
	for _, h := range helpers {
		go func() {
			select {
			case <-h.Done():
				if h.err != nil {
					failed <- h
					cancel()
				}
			case <-wctx.Done():
			}
		}()
	}
	timeout := time.Minute + time.Duration(n/10000)*time.Second
	waitErr := master.Wait(wctx, timeout)
	if ctx.Err() != nil {
		return DemoResult{}, ctx.Err()
	}
	select {
	case h := <-failed:
		return DemoResult{}, h.failure(fmt.Errorf("exited during the demo: %w", h.err))
	default:
	}
	res, perr := ParseDemo(master.Stdout())
	switch {
	case perr == nil && !res.OK:
		return res, master.failure(fmt.Errorf("DEMO NOT OK: %s; %s", res.Verdict, res.Extra))
	case waitErr != nil:
		return res, waitErr
	case perr != nil:
		return res, master.failure(perr)
	}
	return res, nil
}
