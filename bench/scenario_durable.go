package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// durableGoal: a durable master's throughput should be at least this
// fraction of the in-memory master's in the same run (issue 9 §4).
const durableGoal = 0.6

// durableSlaves is the slave count of the durable scenario's demo and
// producer, as in the demo K=2 and producer rows.
const durableSlaves = 2

// durableMode is one way the durable scenario runs its master.
type durableMode struct {
	label string
	flags []string // the master's -fsync flags; nil: in memory, no -data-dir
}

// durableModes are measured in this order within each round, so that the
// in-memory figure they are compared with is taken among them.
var durableModes = []durableMode{
	{"in-memory", nil},
	{"fsync always", []string{"-fsync", "always"}},
	{"fsync interval", []string{"-fsync", "interval", "-fsync-interval", "100ms"}},
}

// durable measures masters on a data dir against the in-memory master, in
// the same run: the demo with two slaves, then the separate producer, each
// as rounds of (in-memory, fsync always, fsync interval) repeated -runs
// times, every durable run on a fresh data dir that is removed after it.
func (s *Suite) durable(ctx context.Context) error {
	n := s.cfg.DemoN
	demo := func(ctx context.Context, extra []string) (float64, error) {
		res, err := s.demoRun(ctx, n, durableSlaves, extra...)
		return res.Rate, err
	}
	if err := s.durableRows(ctx, "demo", n, demo,
		fmt.Sprintf("master -demo %s -demo-slaves %d + %d slaves", fmtCount(n), durableSlaves, durableSlaves)); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	pn := s.cfg.ProducerN
	producer := func(ctx context.Context, extra []string) (float64, error) {
		res, err := s.producerRun(ctx, pn, extra...)
		return res.TasksPerS, err
	}
	return s.durableRows(ctx, "producer", pn, producer,
		fmt.Sprintf("producer process: PutBatch %s x %d putters, %d slaves", fmtCount(s.cfg.ProducerBatch), s.cfg.ProducerPutters, producerSlaves))
}

// durableRows runs one workload in every mode, interleaved, and adds a row
// per mode; what is "demo" or "producer".
func (s *Suite) durableRows(ctx context.Context, what string, n int, run func(context.Context, []string) (float64, error), notes string) error {
	rates := make([][]float64, len(durableModes))
	disk := make([]int64, len(durableModes))
	for r := 1; r <= s.cfg.Runs; r++ {
		for i, m := range durableModes {
			rate, used, err := s.durableRun(ctx, m, run)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", m.label, r, err)
			}
			rates[i] = append(rates[i], rate)
			disk[i] = max(disk[i], used)
			s.logf("   durable %s %s run %d/%d: %s tasks/s", what, m.label, r, s.cfg.Runs, fmtRate(rate))
		}
	}
	mem := Summarize(rates[0]).Median
	for i, m := range durableModes {
		row := ThroughputRow{
			Scenario: scenarioDurable,
			Config:   what + " K=2, " + m.label,
			Slaves:   durableSlaves,
			Tasks:    n,
			Runs:     rates[i],
			Spread:   Summarize(rates[i]),
		}
		var parts []string
		if m.flags == nil {
			parts = append(parts, notes+"; no -data-dir, runs interleaved with the durable rows'")
		} else {
			row.Goal, row.InMemory, row.DiskBytes = durableGoal, mem, disk[i]
			parts = append(parts, "-data-dir "+strings.Join(m.flags, " "))
			if mem > 0 {
				row.VsInMemory = row.Median / mem
				verdict := "met"
				if row.VsInMemory < durableGoal {
					verdict = "NOT MET"
					s.problem("durable %s, %s: %s tasks/s is %s of the in-memory %s (goal: at least %s)",
						what, m.label, fmtRate(row.Median), fmtRatio(row.VsInMemory), fmtRate(mem), fmtRatio(durableGoal))
				}
				parts = append(parts, fmt.Sprintf("%s of in-memory (goal ≥ %s: %s)", fmtRatio(row.VsInMemory), fmtRatio(durableGoal), verdict))
			}
		}
		row.Notes = strings.Join(parts, "; ")
		s.rep.Throughput = append(s.rep.Throughput, row)
	}
	return nil
}

// durableRun is one run in mode m: on a fresh data dir unless in memory.
// It returns the rate and the data dir's size at the end.
func (s *Suite) durableRun(ctx context.Context, m durableMode, run func(context.Context, []string) (float64, error)) (float64, int64, error) {
	if m.flags == nil {
		rate, err := run(ctx, nil)
		return rate, 0, err
	}
	dir, err := s.env.DataDir(scenarioDurable)
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	rate, err := run(ctx, append([]string{"-data-dir", dir}, m.flags...))
	if err != nil {
		return 0, 0, err
	}
	used, err := diskUsage(dir)
	return rate, used, err
}
