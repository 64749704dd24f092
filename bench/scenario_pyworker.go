package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// pythonWorker runs `master -demo N` with K processes of the Python
// package's slave (examples/python/slave.py on clients/python), for K = 1
// and 2, Runs times each: issue 12's row, beside the Go slave's demo rows
// and the recipe's in the same run. Without an interpreter that imports
// grpc and protobuf the rows are skipped, saying so.
func (s *Suite) pythonWorker(ctx context.Context) error {
	py := s.cfg.PythonClient
	if py == "" {
		py = findPythonClient()
	}
	if py == "" {
		s.logf("   python-worker: skipped: no python3 on PATH imports grpc and google.protobuf (Debian: python3-grpcio python3-protobuf)")
		return nil
	}
	if _, err := os.Stat(s.cfg.PySlave); err != nil {
		return fmt.Errorf("the Python slave: %w (run from the repository root or pass -python-slave)", err)
	}
	n := s.cfg.PyWorkerN
	for _, k := range pythonSlaves {
		var rates []float64
		for run := 1; run <= s.cfg.Runs; run++ {
			res, err := s.pythonWorkerRun(ctx, py, n, k)
			if err != nil {
				return fmt.Errorf("K=%d run %d: %w", k, run, err)
			}
			rates = append(rates, res.Rate)
			s.logf("   python-worker K=%d run %d/%d: %s tasks/s (%s)", k, run, s.cfg.Runs, fmtRate(res.Rate), res.Elapsed)
		}
		row := ThroughputRow{
			Scenario: scenarioPyWorker,
			Config:   "K=" + strconv.Itoa(k),
			Slaves:   k,
			Tasks:    n,
			Runs:     rates,
			Spread:   Summarize(rates),
		}
		notes := []string{fmt.Sprintf("master -demo %s + %d Python slave process(es) (%s, clients/python)", fmtCount(n), k, s.cfg.PySlave)}
		if d, ok := s.rep.row(scenarioDemo, "K="+strconv.Itoa(k)); ok && d.Median > 0 {
			notes = append(notes, fmt.Sprintf("×%.3f of the Go slave's demo K=%d", row.Median/d.Median, k))
		}
		if p, ok := s.rep.row(scenarioPython, "K=1"); ok && p.Median > 0 {
			ratio := row.Median / p.Median
			verdict := "goal met"
			if ratio < pyWorkerGoal {
				verdict = "BELOW GOAL"
				s.problem("python-worker K=%d: %s tasks/s is ×%.1f the recipe's K=1 (issue 12's aim: at least ×%.0f)", k, fmtRate(row.Median), ratio, pyWorkerGoal)
			}
			notes = append(notes, fmt.Sprintf("×%.1f the recipe's K=1 (aim ≥ ×%.0f: %s)", ratio, pyWorkerGoal, verdict))
		}
		row.Notes = strings.Join(notes, "; ")
		s.rep.Throughput = append(s.rep.Throughput, row)
	}
	return nil
}

// pyWorkerGoal is issue 12's aim for the Python worker against the recipe.
const pyWorkerGoal = 20.0

// pythonWorkerRun is one demo squared by k Python slaves.
func (s *Suite) pythonWorkerRun(ctx context.Context, py string, n, k int) (DemoResult, error) {
	return s.demoRunStarting(ctx, n, k, func(addr string) ([]*Proc, error) {
		var slaves []*Proc
		for i := range k {
			p, err := s.env.Procs.Start(fmt.Sprintf("python slave %d", i+1), py, s.cfg.PySlave, addr, "--authkey-file", s.env.KeyFile)
			if err != nil {
				for _, q := range slaves {
					q.Kill()
				}
				return nil, err
			}
			slaves = append(slaves, p)
		}
		return slaves, nil
	})
}

// findPythonClient is the first python3 on PATH that imports grpc and
// google.protobuf, or "".
func findPythonClient() string {
	for _, dir := range strings.Split(os.Getenv("PATH"), string(os.PathListSeparator)) {
		p := dir + string(os.PathSeparator) + "python3"
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			continue
		}
		if exec.Command(p, "-c", "import grpc, google.protobuf").Run() == nil {
			return p
		}
	}
	return ""
}
