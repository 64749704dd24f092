package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// metricsGoal: the demo with metrics on (-http-addr on the master and the
// slaves, each scraped about once a second) should be at least this
// fraction of the demo with metrics off, in the same run (issue 10 §7).
const metricsGoal = 0.95

// metricsSlaves is the slave count of the metrics scenario's demo, as in
// the demo K=2 row.
const metricsSlaves = 2

// metricsScrapeEvery is how often the scenario scrapes each /metrics.
const metricsScrapeEvery = time.Second

// metrics measures the demo with metrics on against off, as rounds of
// (off, on) repeated -runs times, so that both see the same machine.
func (s *Suite) metrics(ctx context.Context) error {
	n := s.cfg.DemoN
	var off, on []float64
	scrapes := 0
	for r := 1; r <= s.cfg.Runs; r++ {
		res, err := s.demoRun(ctx, n, metricsSlaves)
		if err != nil {
			return fmt.Errorf("metrics off, run %d: %w", r, err)
		}
		off = append(off, res.Rate)
		s.logf("   metrics off run %d/%d: %s tasks/s", r, s.cfg.Runs, fmtRate(res.Rate))

		rate, answered, err := s.metricsOnRun(ctx, n)
		if err != nil {
			return fmt.Errorf("metrics on, run %d: %w", r, err)
		}
		on = append(on, rate)
		scrapes += answered
		s.logf("   metrics on  run %d/%d: %s tasks/s (%d scrapes answered)", r, s.cfg.Runs, fmtRate(rate), answered)
	}
	notes := fmt.Sprintf("master -demo %s -demo-slaves %d + %d slaves", fmtCount(n), metricsSlaves, metricsSlaves)
	offRow := ThroughputRow{
		Scenario: scenarioMetrics, Config: "demo K=2, metrics off", Slaves: metricsSlaves, Tasks: n,
		Runs: off, Spread: Summarize(off), Notes: notes + "; no -http-addr, runs interleaved with the metrics-on row's",
	}
	onRow := ThroughputRow{
		Scenario: scenarioMetrics, Config: "demo K=2, metrics on", Slaves: metricsSlaves, Tasks: n,
		Runs: on, Spread: Summarize(on), MetricsGoal: metricsGoal, MetricsOff: offRow.Median, Scrapes: scrapes,
	}
	parts := fmt.Sprintf("-http-addr on the master and each slave, each /metrics scraped every %v", metricsScrapeEvery)
	if offRow.Median > 0 {
		onRow.VsMetricsOff = onRow.Median / offRow.Median
		verdict := "met"
		if onRow.VsMetricsOff < metricsGoal {
			verdict = "NOT MET"
			s.problem("metrics on: %s tasks/s is %s of metrics off's %s (goal: at least %s)",
				fmtRate(onRow.Median), fmtRatio(onRow.VsMetricsOff), fmtRate(offRow.Median), fmtRatio(metricsGoal))
		}
		parts += fmt.Sprintf("; %s of metrics off (goal ≥ %s: %s)", fmtRatio(onRow.VsMetricsOff), fmtRatio(metricsGoal), verdict)
	}
	onRow.Notes = parts
	s.rep.Throughput = append(s.rep.Throughput, offRow, onRow)
	return nil
}

// metricsOnRun is one demo with -http-addr on the master and each slave,
// each scraped every metricsScrapeEvery from the start until the demo
// ends. It returns the rate and the scrapes answered.
func (s *Suite) metricsOnRun(ctx context.Context, n int) (float64, int, error) {
	addrs, err := freeLoopbackAddrs(1 + metricsSlaves)
	if err != nil {
		return 0, 0, err
	}
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered := 0
	for _, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := scrapeLoop(sctx, "http://"+a+"/metrics", metricsScrapeEvery)
			mu.Lock()
			answered += k
			mu.Unlock()
		}()
	}
	res, err := s.demoRunWith(ctx, n, metricsSlaves,
		func(i int) []string { return []string{"-http-addr", addrs[1+i]} },
		"-http-addr", addrs[0])
	stop()
	wg.Wait()
	return res.Rate, answered, err
}

// scrapeLoop GETs url at once and then every `every` until ctx ends, as
// Prometheus would, reading each body whole; it returns the scrapes
// answered with 200. Refused connections (the process is not listening
// yet, or has exited) are not counted and not retried sooner.
func scrapeLoop(ctx context.Context, url string, every time.Duration) int {
	client := &http.Client{Timeout: 10 * time.Second}
	t := time.NewTicker(every)
	defer t.Stop()
	n := 0
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return n
		}
		if resp, err := client.Do(req); err == nil {
			if _, err := io.Copy(io.Discard, resp.Body); err == nil && resp.StatusCode == http.StatusOK {
				n++
			}
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
	}
}

// freeLoopbackAddrs picks k free ports on 127.0.0.1. They are free when
// picked; another process could take one before the master or a slave
// binds it, which then fails the run with a clear error.
func freeLoopbackAddrs(k int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []string
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}
