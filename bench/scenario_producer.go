package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// producerSlaves is the slave count of the separate-producer scenario.
const producerSlaves = 2

// producer runs a master without -demo, two slaves and a producer process
// (this tool's producer subcommand), with a fresh master each run.
func (s *Suite) producer(ctx context.Context) error {
	n := s.cfg.ProducerN
	var rates []float64
	for run := 1; run <= s.cfg.Runs; run++ {
		res, err := s.producerRun(ctx, n)
		if err != nil {
			return fmt.Errorf("run %d: %w", run, err)
		}
		rates = append(rates, res.TasksPerS)
		s.logf("   producer run %d/%d: %s tasks/s (%.2fs)", run, s.cfg.Runs, fmtRate(res.TasksPerS), res.Seconds)
	}
	s.rep.Throughput = append(s.rep.Throughput, ThroughputRow{
		Scenario: scenarioProducer,
		Config:   "K=" + strconv.Itoa(producerSlaves),
		Slaves:   producerSlaves,
		Tasks:    n,
		Runs:     rates,
		Spread:   Summarize(rates),
		Notes: fmt.Sprintf("producer process: PutBatch %s x %d putters, GetMany; all squares checked",
			fmtCount(s.cfg.ProducerBatch), s.cfg.ProducerPutters),
	})
	return nil
}

// producerRun is one run on a fresh master; extra are more flags of the
// master (-data-dir).
func (s *Suite) producerRun(ctx context.Context, n int, extra ...string) (ProducerResult, error) {
	var res ProducerResult
	master, addr, err := s.env.StartMaster(ctx, append([]string{"-log-level", "warn"}, extra...)...)
	if err != nil {
		return res, err
	}
	slaves, err := s.env.StartSlaves(addr, producerSlaves)
	if err != nil {
		master.Kill()
		return res, err
	}
	prod, err := s.env.StartChild("producer", "producer", addr, "-n", strconv.Itoa(n),
		"-batch", strconv.Itoa(s.cfg.ProducerBatch), "-putters", strconv.Itoa(s.cfg.ProducerPutters),
		"-slaves", strconv.Itoa(producerSlaves))
	if err == nil {
		err = prod.Wait(ctx, time.Minute+time.Duration(n/5000)*time.Second)
	}
	if err == nil {
		err = lastJSON(prod.Stdout(), &res)
	}
	if err != nil {
		s.env.Procs.KillAll()
		return res, err
	}
	if err := StopAll(ctx, 15*time.Second, slaves...); err != nil {
		return res, err
	}
	return res, StopAll(ctx, 15*time.Second, master)
}
