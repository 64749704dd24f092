package bench

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DemoResult is what a master's -demo summary says.
type DemoResult struct {
	OK      bool
	Verdict string // the "demo OK: ..." or "demo FAILED: ..." line
	Elapsed time.Duration
	Rate    float64 // tasks/s
	Extra   string  // the "demo redelivered ..." line
	// CPU is the CPU seconds the master and its helpers used over the
	// whole run (set by the scenario, not parsed).
	CPU float64
}

// ParseDemo reads the summary a master prints at the end of -demo:
//
//	demo OK: 1000 tasks, 1000 results, 0 wrong, 0 duplicate, 0 missing
//	demo elapsed 1.684s, 178139 tasks/s
//	demo redelivered 0, leases expired 0, late acks refused 0, dead-lettered 0
//
// It fails when the elapsed line is missing or malformed; a verdict other
// than OK is reported through DemoResult.OK.
func ParseDemo(stdout string) (DemoResult, error) {
	var r DemoResult
	found := false
	for _, line := range strings.Split(stdout, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "demo OK:"):
			r.OK, r.Verdict = true, line
		case strings.HasPrefix(line, "demo FAILED"):
			r.OK, r.Verdict = false, line
		case strings.HasPrefix(line, "demo redelivered"):
			r.Extra = line
		case strings.HasPrefix(line, "demo elapsed "):
			rest := strings.TrimPrefix(line, "demo elapsed ")
			dur, rate, ok := strings.Cut(rest, ", ")
			if !ok {
				return r, fmt.Errorf("malformed demo line %q", line)
			}
			d, err := time.ParseDuration(dur)
			if err != nil {
				return r, fmt.Errorf("malformed elapsed in %q: %v", line, err)
			}
			num, ok := strings.CutSuffix(rate, " tasks/s")
			if !ok {
				return r, fmt.Errorf("malformed rate in %q", line)
			}
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return r, fmt.Errorf("malformed rate in %q: %v", line, err)
			}
			r.Elapsed, r.Rate, found = d, v, true
		}
	}
	if !found {
		return r, fmt.Errorf("no %q line in the master's output", "demo elapsed")
	}
	if r.Verdict == "" {
		return r, fmt.Errorf("no %q line in the master's output", "demo OK:")
	}
	return r, nil
}

// statusBytes reads a "Key:   1234 kB" field of /proc/PID/status, in bytes.
func statusBytes(status, key string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok || name != key {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("malformed %s line %q", key, line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed %s line %q", key, line)
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("no %s in /proc status", key)
}

// lastJSON decodes the last line of out that looks like a JSON object into v.
func lastJSON(out string, v any) error {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "{") {
			if err := json.Unmarshal([]byte(l), v); err != nil {
				return fmt.Errorf("decode %q: %w", l, err)
			}
			return nil
		}
	}
	return fmt.Errorf("no JSON line in output %q", lastLines(out, 3))
}
