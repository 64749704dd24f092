package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"
)

// pythonSlaves are the slave counts of the Python recipe.
var pythonSlaves = []int{1, 2}

// PythonResult is the recipe's JSON line.
type PythonResult struct {
	Tasks     int     `json:"tasks"`
	Slaves    int     `json:"slaves"`
	Seconds   float64 `json:"seconds"`
	TasksPerS float64 `json:"tasks_per_s"`
	Wrong     int     `json:"wrong"`
}

// python runs the Python recipe with K slaves, Runs times each.
func (s *Suite) python(ctx context.Context) error {
	if _, err := os.Stat(s.cfg.Recipe); err != nil {
		return fmt.Errorf("the Python recipe: %w (run from the repository root or pass -recipe)", err)
	}
	n := s.cfg.PythonN
	for _, k := range pythonSlaves {
		var rates []float64
		for run := 1; run <= s.cfg.Runs; run++ {
			p, err := s.env.Procs.Start("python recipe", s.cfg.Python, s.cfg.Recipe, "--tasks", strconv.Itoa(n), "--slaves", strconv.Itoa(k))
			if err != nil {
				return err
			}
			if err := p.Wait(ctx, time.Minute+time.Duration(n/200)*time.Second); err != nil {
				return fmt.Errorf("K=%d run %d: %w", k, run, err)
			}
			var res PythonResult
			if err := lastJSON(p.Stdout(), &res); err != nil {
				return fmt.Errorf("K=%d run %d: %w", k, run, err)
			}
			if res.Wrong != 0 || res.TasksPerS <= 0 {
				return fmt.Errorf("K=%d run %d: the recipe reports wrong results: %+v", k, run, res)
			}
			rates = append(rates, res.TasksPerS)
			s.logf("   python K=%d run %d/%d: %s tasks/s", k, run, s.cfg.Runs, fmtRate(res.TasksPerS))
		}
		s.rep.Throughput = append(s.rep.Throughput, ThroughputRow{
			Scenario: scenarioPython,
			Config:   "K=" + strconv.Itoa(k),
			Slaves:   k,
			Tasks:    n,
			Runs:     rates,
			Spread:   Summarize(rates),
			Notes:    fmt.Sprintf("BaseManager recipe, %s tasks, one round trip per get/put", fmtCount(n)),
		})
	}
	return nil
}
