package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// restartTimeout bounds one restart: the master reads its data dir before
// it serves.
const restartTimeout = 5 * time.Minute

// restart fills a durable master (fsync always) with 8-byte items, nobody
// consuming, up to each of -restart-steps, like the memory scenario, and
// at each step kills it with SIGKILL and times a new master on the same
// data dir from its exec to its -addr-file (written once it serves); then
// stops that one with SIGTERM and times the next the same way. The last
// one goes on to the next step's fill. Every restart's master must find
// every item; disk use is the data dir's allocated size before the
// restart, per queued item.
func (s *Suite) restart(ctx context.Context) error {
	dir, err := s.env.DataDir(scenarioRestart)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	flags := []string{"-data-dir", dir, "-fsync", "always", "-log-level", "info"}
	master, addr, err := s.env.StartMaster(ctx, flags...)
	if err != nil {
		return err
	}
	queued := 0
	for _, step := range s.cfg.RestartSteps {
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
		s.logf("   restart: %s queued (%s put at %s/s)", fmtCount(queued), fmtCount(res.Put), fmtRate(float64(res.Put)/res.Seconds))
		fillNote := ""
		if !res.Complete {
			fillNote = fmt.Sprintf("budget %s ran out before %s", s.cfg.MemBudget, fmtCount(step))
			s.problem("restart: putting %s items did not finish within %s (%s put)", fmtCount(n), s.cfg.MemBudget, fmtCount(res.Put))
		}

		master.Kill()
		<-master.Done()
		killed, next, _, err := s.timedRestart(ctx, flags, dir, queued, "SIGKILL")
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := next.Stop(ctx, 2*time.Minute); err != nil {
			return err
		}
		stop := time.Since(t0)
		termed, last, lastAddr, err := s.timedRestart(ctx, flags, dir, queued, "SIGTERM")
		if err != nil {
			return err
		}
		termed.StopSeconds = stop.Seconds()
		for _, row := range []*RestartRow{&termed, &killed} {
			if fillNote != "" {
				row.Notes = strings.TrimPrefix(row.Notes+"; "+fillNote, "; ")
			}
			s.rep.Restart = append(s.rep.Restart, *row)
		}
		master, addr = last, lastAddr
		if !res.Complete {
			break
		}
	}
	return StopAll(ctx, 2*time.Minute, master)
}

// timedRestart starts a master on the data dir and returns its row and the
// master, serving, with its address.
func (s *Suite) timedRestart(ctx context.Context, flags []string, dir string, queued int, after string) (RestartRow, *Proc, string, error) {
	row := RestartRow{Queued: queued, After: after, Recovered: -1}
	used, err := diskUsage(dir)
	if err != nil {
		return row, nil, "", err
	}
	row.DiskBytes = used
	if queued > 0 {
		row.BytesPerItem = float64(used) / float64(queued)
	}
	p, addr, took, err := s.env.StartMasterTimed(ctx, restartTimeout, flags...)
	if err != nil {
		return row, nil, "", fmt.Errorf("restart after %s with %s queued: %w", after, fmtCount(queued), err)
	}
	row.Seconds = took.Seconds()
	var notes []string
	if items, rec, ok := parseRecovered(p.Stderr()); ok {
		row.Recovered, row.RecoverSeconds = items, rec.Seconds()
		if items != queued {
			notes = append(notes, fmt.Sprintf("RECOVERED %s ITEMS", fmtCount(items)))
			s.problem("restart after %s: the master recovered %s items of %s queued", after, fmtCount(items), fmtCount(queued))
		}
	} else {
		notes = append(notes, "no \"data recovered\" line in the master's log")
	}
	row.Notes = strings.Join(notes, "; ")
	s.logf("   restart after %s, %s queued: serving after %s (recovery %s), data dir %s (%.1f B/item)",
		after, fmtCount(queued), took.Round(time.Millisecond), fmtMs(row.RecoverSeconds*1000), fmtBytes(used), row.BytesPerItem)
	return row, p, addr, nil
}

// parseRecovered reads the items and the time of the master's "data
// recovered" log line (hclog's text format: key=value pairs after the
// message).
func parseRecovered(stderr string) (items int, took time.Duration, ok bool) {
	for _, line := range strings.Split(stderr, "\n") {
		_, kv, found := strings.Cut(line, "data recovered:")
		if !found {
			continue
		}
		gotItems, gotTook := false, false
		for _, f := range strings.Fields(kv) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "items":
				n, err := strconv.Atoi(v)
				items, gotItems = n, err == nil
			case "took":
				d, err := time.ParseDuration(v)
				took, gotTook = d, err == nil
			}
		}
		if gotItems && gotTook {
			return items, took, true
		}
	}
	return 0, 0, false
}
