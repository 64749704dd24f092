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

// restart starts a durable master (-fsync always) on an empty data dir,
// timed as the restarts are, and fills it with 8-byte items, nobody
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
	// The first start, on the empty dir: the cost of a start itself.
	first, master, addr, err := s.timedRestart(ctx, flags, dir, 0, "- (empty dir)")
	if err != nil {
		return err
	}
	s.rep.Restart = append(s.rep.Restart, first)
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
		// What the queue holds: a put the budget cut off may have been
		// stored without its answer.
		answered := queued + res.Put
		queued = res.Ready
		s.logf("   restart: %s queued (%s put at %s/s)", fmtCount(queued), fmtCount(res.Put), fmtRate(float64(res.Put)/res.Seconds))
		fillNote := ""
		if !res.Complete {
			fillNote = fmt.Sprintf("budget %s ran out before %s", s.cfg.MemBudget, fmtCount(step))
			s.problem("restart: putting %s items did not finish within %s (%s put)", fmtCount(n), s.cfg.MemBudget, fmtCount(res.Put))
		}
		if answered != queued {
			fillNote = strings.TrimPrefix(fillNote+fmt.Sprintf("; %s puts answered", fmtCount(answered)), "; ")
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
	if cpu, err := cpuSeconds(p.Pid()); err == nil {
		row.CPUSeconds = cpu
	}
	if wait, err := runQueueWait(p.Pid()); err == nil {
		row.RunQueueSeconds = wait
	}
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
	s.logf("   restart after %s, %s queued: serving after %s (recovery %s, CPU %.2fs, waiting for a CPU %.2fs), data dir %s (%.1f B/item)",
		after, fmtCount(queued), took.Round(time.Millisecond), fmtMs(row.RecoverSeconds*1000), row.CPUSeconds, row.RunQueueSeconds, fmtBytes(used), row.BytesPerItem)
	return row, p, addr, nil
}

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// cpuSeconds is the CPU time (user and system, every thread) process pid
// has used so far, from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line; the command name in parentheses may hold spaces.
func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	f := strings.Fields(stat[i+1:]) // from field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	return float64(utime+stime) / userHZ, nil
}

// runQueueWait is how long the threads of process pid still alive have
// waited, runnable, for a CPU, from /proc/PID/task/*/schedstat (its second
// field, in ns): how much of a wall time the machine's other work took.
func runQueueWait(pid int) (float64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var ns uint64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread has exited
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			return 0, fmt.Errorf("malformed schedstat %q", b)
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed schedstat %q", b)
		}
		ns += n
	}
	return float64(ns) / 1e9, nil
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
