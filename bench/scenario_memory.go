package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// memoryPayload is the size of each task's payload in the memory scenario.
const memoryPayload = 8

// memory measures the master's resident memory idle and with each step's
// number of tasks queued (nobody consuming), filled by the fill subcommand.
func (s *Suite) memory(ctx context.Context) error {
	master, addr, err := s.env.StartMaster(ctx, "-log-level", "error")
	if err != nil {
		return err
	}
	idle, idleHWM, err := readStatus(master.Pid())
	if err != nil {
		return err
	}
	s.rep.Memory = append(s.rep.Memory, MemoryRow{Label: "idle", RSS: idle, HWM: idleHWM})
	s.logf("   memory idle: RSS %s", fmtBytes(idle))
	queued := 0
	for _, step := range s.cfg.MemSteps {
		n := step - queued
		p, err := s.env.StartChild("fill", "fill", addr, "-n", strconv.Itoa(n), "-size", strconv.Itoa(memoryPayload),
			"-batch", "10000", "-budget", s.cfg.MemBudget.String())
		if err != nil {
			return err
		}
		if err := p.Wait(ctx, s.cfg.MemBudget+2*time.Minute); err != nil {
			return err
		}
		var res FillResult
		if err := lastJSON(p.Stdout(), &res); err != nil {
			return err
		}
		queued += res.Put
		rss, hwm, err := readStatus(master.Pid())
		if err != nil {
			return err
		}
		row := MemoryRow{
			Label:        fmtCount(queued) + " queued",
			Queued:       queued,
			RSS:          rss,
			HWM:          hwm,
			BytesPerTask: float64(rss-idle) / float64(queued),
			PutSeconds:   res.Seconds,
			Notes:        fmt.Sprintf("%s put at %s/s", fmtCount(res.Put), fmtRate(float64(res.Put)/res.Seconds)),
		}
		if !res.Complete {
			row.Notes += fmt.Sprintf("; budget %s ran out before %s", s.cfg.MemBudget, fmtCount(step))
			s.problem("memory: putting %s tasks did not finish within %s (%s put)", fmtCount(n), s.cfg.MemBudget, fmtCount(res.Put))
		}
		if res.Ready != queued {
			row.Notes += fmt.Sprintf("; master reports %s ready", fmtCount(res.Ready))
		}
		s.rep.Memory = append(s.rep.Memory, row)
		s.logf("   memory %s: RSS %s (peak %s), %.0f B/task, put in %.1fs", row.Label, fmtBytes(rss), fmtBytes(hwm), row.BytesPerTask, res.Seconds)
		if !res.Complete {
			break
		}
	}
	return StopAll(ctx, 30*time.Second, master)
}
