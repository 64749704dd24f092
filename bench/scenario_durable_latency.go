package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// durableLatency times one 1-item Put at a time (closed loop, nobody
// consuming) through a master with -data-dir -fsync always, where each
// answer waits for an fdatasync, beside the disk's own floor measured just
// before it on the same file system: a 4 KiB write and an fdatasync, back
// to back. Then the same puts through a master with -fsync interval and
// one in memory, for reference. Each phase lasts -put-latency-duration;
// the puts start once a new data dir's first segments are prepared.
func (s *Suite) durableLatency(ctx context.Context) error {
	d := s.cfg.PutLatencyDur
	floor, err := s.env.Procs.Start("fdatasync", s.env.Self, "fdatasync", "-dir", s.env.Dir, "-duration", d.String(), "-size", "4096")
	if err != nil {
		return err
	}
	if err := floor.Wait(ctx, d+time.Minute); err != nil {
		return err
	}
	var fl PutLatencyResult
	if err := lastJSON(floor.Stdout(), &fl); err != nil {
		return floor.failure(err)
	}
	s.addPutLatency("fdatasync of a 4 KiB write (the disk's floor)", fl,
		"a preallocated file in the system temp dir, no master")

	for _, m := range []durableMode{durableModes[1], durableModes[2], durableModes[0]} {
		res, err := s.putLatencyRun(ctx, m, d)
		if err != nil {
			return fmt.Errorf("%s: %w", m.label, err)
		}
		label, note := "put, master in memory", "no -data-dir: the network and the queue alone"
		if m.flags != nil {
			label, note = "put, master -data-dir, "+m.label, ""
		}
		if m.label == "fsync always" && fl.P50Ms > 0 {
			note = fmt.Sprintf("fdatasync's p50 %s (%s), its p99 %s",
				signedMs(res.P50Ms-fl.P50Ms), fmtRatio(res.P50Ms/fl.P50Ms), signedMs(res.P99Ms-fl.P99Ms))
		}
		if res.Stalled {
			note = strings.TrimPrefix(note+"; STALLED: a put had no answer within 10s, measuring stopped", "; ")
			s.problem("durable-latency, %s: a put had no answer within 10s after %s puts; the master stalled", label, fmtCount(res.Count))
		}
		s.addPutLatency(label, res, note)
	}
	return nil
}

// putLatencyRun runs the put-latency child against a fresh master in mode m.
func (s *Suite) putLatencyRun(ctx context.Context, m durableMode, d time.Duration) (PutLatencyResult, error) {
	var res PutLatencyResult
	flags := []string{"-log-level", "warn"}
	dir := ""
	if m.flags != nil {
		var err error
		if dir, err = s.env.DataDir(scenarioDurableLatency); err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
		flags = append(append(flags, "-data-dir", dir), m.flags...)
	}
	master, addr, err := s.env.StartMaster(ctx, flags...)
	if err != nil {
		return res, err
	}
	if dir != "" {
		// A new log prepares its first segments (zeros, synced) in the
		// background; the puts are timed once that is done.
		if err := waitSettled(ctx, dir, 30*time.Second); err != nil {
			master.Kill()
			return res, err
		}
	}
	p, err := s.env.StartChild("put-latency", "put-latency", addr, "-duration", d.String(), "-size", "8")
	if err == nil {
		err = p.Wait(ctx, d+time.Minute)
	}
	if err == nil {
		if err = lastJSON(p.Stdout(), &res); err != nil {
			err = p.failure(err)
		}
	}
	if err != nil {
		master.Kill()
		return res, err
	}
	return res, StopAll(ctx, 30*time.Second, master)
}

func (s *Suite) addPutLatency(label string, r PutLatencyResult, notes string) {
	s.logf("   %s: p50 %s p99 %s p99.9 %s over %s (%s/s)", label, fmtMs(r.P50Ms), fmtMs(r.P99Ms), fmtMs(r.P999Ms),
		fmtCount(r.Count), fmtRate(r.PerS))
	s.rep.PutLatency = append(s.rep.PutLatency, LatencyRow{
		Label:        label,
		AchievedRate: r.PerS,
		Seconds:      r.Seconds,
		Latencies:    r.Latencies,
		Notes:        notes,
	})
}

// signedMs formats a difference of milliseconds with its sign ("+120 µs").
func signedMs(ms float64) string {
	if ms < 0 {
		return "−" + fmtMs(-ms)
	}
	if ms == 0 {
		return "+0"
	}
	return "+" + fmtMs(ms)
}

// waitSettled waits until the size of dir stays the same for 300 ms (a
// new log's segments are prepared), or timeout has passed.
func waitSettled(ctx context.Context, dir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last, same := int64(-1), 0
	for time.Now().Before(deadline) {
		n, err := diskUsage(dir)
		if err != nil {
			return err
		}
		if n == last {
			same++
		} else {
			last, same = n, 0
		}
		if same >= 3 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
