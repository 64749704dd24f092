package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// latencySlaves is the slave count of the latency scenario.
const latencySlaves = 2

// latency runs a master, two slaves and the latency subcommand: open loop
// at the fixed low rate, then at half the peak of the same configuration
// (the separate producer with two slaves), falling back to half the
// two-slave demo when the producer scenario did not run. Half of a peak the
// configuration cannot reach would only measure a growing backlog. First
// come the floors, at the low rate: one round trip of grpc-go alone
// (its own benchmark service, no distq code), then two round trips through
// the same master (see runRoundTrip): what the machine allows before any
// queue work.
func (s *Suite) latency(ctx context.Context) error {
	type phase struct {
		label string
		role  string
		rate  float64
	}
	phases := []phase{
		{grpcFloorLabel, "grpc-ping", s.cfg.LowRate},
		{floorLabel, "roundtrip", s.cfg.LowRate},
		{fmt.Sprintf("%s/s fixed", fmtCount(int(s.cfg.LowRate))), "latency", s.cfg.LowRate},
	}
	if p, ok := s.rep.row(scenarioProducer, "K=2"); ok && p.Median > 0 {
		phases = append(phases, phase{"half of producer peak", "latency", p.Median / 2})
	} else if d, ok := s.rep.row(scenarioDemo, "K=2"); ok && d.Median > 0 {
		phases = append(phases, phase{"half of demo K=2 peak", "latency", d.Median / 2})
	} else {
		s.problem("latency: no producer or demo K=2 figure to take half of; the high-rate phase is skipped")
	}
	echo, echoAddr, err := s.env.StartEcho(ctx)
	if err != nil {
		return err
	}
	master, addr, err := s.env.StartMaster(ctx, "-log-level", "warn",
		"-queue", "tasks", "-queue", "results", "-queue", floorQueue)
	if err != nil {
		echo.Kill()
		return err
	}
	slaves, err := s.env.StartSlaves(addr, latencySlaves)
	if err != nil {
		echo.Kill()
		master.Kill()
		return err
	}
	for _, ph := range phases {
		args := []string{"-rate", strconv.FormatFloat(ph.rate, 'f', 0, 64), "-duration", s.cfg.LatencyDuration.String()}
		var p *Proc
		switch ph.role {
		case "grpc-ping":
			p, err = s.env.StartPing(ph.role, echoAddr, append(args, "-size", "16")...)
		case "latency":
			p, err = s.env.StartChild(ph.role, ph.role, addr, append(args, "-slaves", strconv.Itoa(latencySlaves))...)
		default:
			p, err = s.env.StartChild(ph.role, ph.role, addr, args...)
		}
		if err != nil {
			return err
		}
		if err := p.Wait(ctx, s.cfg.LatencyDuration+90*time.Second); err != nil {
			return fmt.Errorf("%s: %w", ph.label, err)
		}
		var res LatencyResult
		if err := lastJSON(p.Stdout(), &res); err != nil {
			return fmt.Errorf("%s: %w", ph.label, err)
		}
		s.logf("   latency %s (%s/s): p50 %s p99 %s p99.9 %s over %d tasks", ph.label, fmtRate(res.TargetRate),
			fmtMs(res.P50Ms), fmtMs(res.P99Ms), fmtMs(res.P999Ms), res.Count)
		if res.AchievedRate < 0.95*res.TargetRate {
			s.problem("latency %s: the producer reached only %s of %s tasks/s", ph.label, fmtRate(res.AchievedRate), fmtRate(res.TargetRate))
		}
		s.rep.Latency = append(s.rep.Latency, LatencyRow{
			Label:        ph.label,
			TargetRate:   res.TargetRate,
			AchievedRate: res.AchievedRate,
			Seconds:      res.Seconds,
			Latencies:    res.Latencies,
		})
	}
	if err := StopAll(ctx, 15*time.Second, slaves...); err != nil {
		return err
	}
	return StopAll(ctx, 15*time.Second, master, echo)
}
