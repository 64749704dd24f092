// Package bench is distq's benchmark harness: it measures the real master
// and slave binaries and the public Go package (in child processes of this
// tool), and compares them with Python's BaseManager recipe.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// Main runs the tool with args (without the program name) and returns the
// exit status: the suite, or with a subcommand first, a child role.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, ok := subcommands[args[0]]
		if !ok {
			fmt.Fprintf(stderr, "distq-bench: unknown subcommand %q (want one of %s)\n", args[0], strings.Join(slices.Sorted(maps.Keys(subcommands)), ", "))
			return 2
		}
		if err := sub(ctx, args[1:], stdout); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(stderr, "distq-bench %s: %v\n", args[0], err)
			return 1
		}
		return 0
	}
	cfg, err := ParseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "distq-bench:", err)
		return 2
	}
	return Run(ctx, cfg, stdout, stderr)
}

// Suite runs the scenarios one after the other into one report.
type Suite struct {
	cfg Config
	env *Env
	rep *Report
	log io.Writer // progress, on stderr
}

// Run runs every selected scenario, prints the table, writes bench.json
// and bench.png, and returns the exit status.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) int {
	start := time.Now()
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		fmt.Fprintln(stderr, "distq-bench:", err)
		return 1
	}
	env, err := NewEnv(cfg.Bin, cfg.Prefetch)
	if err != nil {
		fmt.Fprintln(stderr, "distq-bench:", err)
		return 1
	}
	defer env.Close()
	s := &Suite{cfg: cfg, env: env, log: stderr, rep: &Report{
		Started:  start.UTC().Round(time.Second),
		Quick:    cfg.Quick,
		Machine:  DescribeMachine(ctx, env.Master, cfg.Python),
		Settings: cfg.settings(),
	}}
	mode := "full"
	if cfg.Quick {
		mode = "quick"
	}
	fmt.Fprintf(stderr, "distq-bench (%s): %s, %d cores, %s, %s\n", mode, s.rep.Machine.CPU, s.rep.Machine.Cores, s.rep.Machine.Go, s.rep.Machine.Python)

	runErr := s.runAll(ctx)
	env.Procs.KillAll()
	s.rep.WallSeconds = time.Since(start).Seconds()
	s.rep.Machine.LoadEnd = loadAvg()
	s.rep.fillRatios()
	s.comparePeers()
	if runErr != nil {
		s.rep.Failure = runErr.Error()
	}

	fmt.Fprintln(stdout)
	WriteTables(stdout, s.rep)
	status := 0
	if name, err := s.rep.WriteJSON(cfg.Out); err != nil {
		fmt.Fprintln(stderr, "distq-bench: write json:", err)
		status = 1
	} else {
		fmt.Fprintln(stdout, "json:", name)
	}
	if runErr == nil || len(s.rep.Throughput)+len(s.rep.Latency) > 0 {
		if name, err := WritePlot(cfg.Out, s.rep); err != nil {
			fmt.Fprintln(stderr, "distq-bench: plot:", err)
			status = 1
		} else {
			fmt.Fprintln(stdout, "plot:", name)
		}
	}
	if name, err := WriteClosedLoopPlot(cfg.Out, s.rep); err != nil {
		fmt.Fprintln(stderr, "distq-bench: closed-loop plot:", err)
		status = 1
	} else if name != "" {
		fmt.Fprintln(stdout, "plot:", name)
	}
	fmt.Fprintf(stdout, "total wall time %s\n", time.Since(start).Round(100*time.Millisecond))
	if runErr != nil {
		fmt.Fprintf(stderr, "\n*** BENCHMARK FAILED ***\n%v\n", runErr)
		return 1
	}
	return status
}

// runAll runs the scenarios in order and stops at the first failure.
func (s *Suite) runAll(ctx context.Context) error {
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{scenarioDemo, s.demo},
		{scenarioPython, s.python},
		{scenarioPyWorker, s.pythonWorker},
		{scenarioProducer, s.producer},
		{scenarioDurable, s.durable},
		{scenarioLatency, s.latency},
		{scenarioClosedLoop, s.closedLoop},
		{scenarioPeers, s.peers},
		{scenarioDurableLatency, s.durableLatency},
		{scenarioMetrics, s.metrics},
		{scenarioMemory, s.memory},
		{scenarioRestart, s.restart},
		{scenarioIdle, s.idle},
		{scenarioMany, s.many},
	}
	for _, st := range steps {
		if !s.cfg.runs(st.name) {
			continue
		}
		t0 := time.Now()
		s.logf("== %s", st.name)
		if err := st.run(ctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %w", st.name, errInterrupted)
			}
			return fmt.Errorf("scenario %s: %w", st.name, err)
		}
		s.env.Procs.KillAll() // nothing should be left; make sure
		s.logf("   %s done in %s", st.name, time.Since(t0).Round(100*time.Millisecond))
	}
	return nil
}

func (s *Suite) logf(format string, args ...any) {
	fmt.Fprintf(s.log, format+"\n", args...)
}

// problem records something that went wrong without spoiling the figures.
func (s *Suite) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.rep.Problems = append(s.rep.Problems, msg)
	s.logf("   PROBLEM: %s", msg)
}
