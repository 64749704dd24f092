// Command distq-logbench measures the candidate log engines of issue 9 on
// this machine and prints a table; -out also writes the figures as JSON.
//
//	distq-logbench -out bench/results            # the full plan (about 10 minutes)
//	distq-logbench -quick                        # a smoke run of the same code
//	distq-logbench -shapes p8-s64-8B-b256 -engines seglog,raft1 -reps 5
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distq/distq/bench/logbench"
	"golang.org/x/sys/unix"
)

func main() {
	var (
		out      = flag.String("out", "", "directory for logbench.json and logbench.txt (none: table on stdout only)")
		dir      = flag.String("dir", os.TempDir(), "where the temporary data directory is made (it is removed at the end)")
		quick    = flag.Bool("quick", false, "a smoke run: the decision shape, the paced one and the issue's shapes, 1 repetition, short cells")
		reps     = flag.Int("reps", 0, "repetitions (0: the plan's)")
		duration = flag.Duration("duration", 0, "measured time per cell (0: the plan's)")
		shapes   = flag.String("shapes", "", "comma-separated shape names to run (default all)")
		engines  = flag.String("engines", "", "comma-separated engines to run in every shape (default: the plan's; raft1pre only when named)")
		recovery = flag.String("recovery", "default", "comma-separated queued-item counts for the restart measurement, or none")
	)
	flag.Parse()
	plan := logbench.DefaultPlan()
	if *quick {
		plan = logbench.QuickPlan()
	}
	if *reps > 0 {
		plan.Reps = *reps
	}
	if *duration > 0 {
		plan.Duration = *duration
	}
	if *shapes != "" {
		want := strings.Split(*shapes, ",")
		plan.Shapes = slices.DeleteFunc(plan.Shapes, func(s logbench.Shape) bool { return !slices.Contains(want, s.Name) })
	}
	if *engines != "" {
		want := strings.Split(*engines, ",")
		for _, e := range want {
			if _, ok := logbench.EngineDoc[e]; !ok {
				fatal(fmt.Errorf("-engines: unknown engine %q", e))
			}
		}
		logbench.Engines, logbench.IssueEngines = want, want
		logbench.RecoveryEngines = slices.DeleteFunc(logbench.RecoveryEngines, func(e string) bool { return !slices.Contains(want, e) })
	}
	switch *recovery {
	case "default":
	case "none", "":
		plan.RecoveryItems = nil
	default:
		plan.RecoveryItems = nil
		for _, s := range strings.Split(*recovery, ",") {
			n, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 10, 64)
			if err != nil {
				fatal(fmt.Errorf("-recovery: %w", err))
			}
			plan.RecoveryItems = append(plan.RecoveryItems, n)
		}
	}
	if err := run(plan, *dir, *out); err != nil {
		fatal(err)
	}
}

func run(plan logbench.Plan, dir, out string) error {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if l, _ := strconv.ParseFloat(f[0], 64); l >= 1.5 {
				fmt.Fprintf(os.Stderr, "warning: load average %.2f: the machine is busy, figures will be noisy\n", l)
			}
		}
	}
	base, err := os.MkdirTemp(dir, "distq-logbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	if len(plan.RecoveryItems) > 0 {
		// About 10 bytes per queued item of 8 bytes, and raft-wal's
		// preallocated 64 MiB segments: keep 3x the largest fill free.
		need := uint64(slices.Max(plan.RecoveryItems)) * 30
		var st unix.Statfs_t
		if err := unix.Statfs(base, &st); err == nil && st.Bavail*uint64(st.Bsize) < need {
			return fmt.Errorf("%s has %d MB free, the restart measurement needs about %d MB", dir, st.Bavail*uint64(st.Bsize)>>20, need>>20)
		}
	}
	start := time.Now()
	rep, err := logbench.RunPlan(plan, base, os.Stderr)
	if err != nil {
		return err
	}
	rep.Command = strings.Join(os.Args, " ")
	fmt.Fprintf(os.Stderr, "ran in %s\n", time.Since(start).Round(time.Second))
	var table strings.Builder
	logbench.WriteTable(&table, rep)
	fmt.Print(table.String())
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "logbench.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "logbench.txt"), []byte(table.String()), 0o644)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "distq-logbench:", err)
	os.Exit(1)
}
