package demo

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"
)

// Summary is the outcome of a run.
type Summary struct {
	Tasks, Results, Wrong, Duplicates, Missing int
	Elapsed                                    time.Duration
	Redelivered, Expired, Refused, Dead        uint64
}

// OK reports whether every task came back once with the right square.
func (s Summary) OK() bool {
	return s.Results == s.Tasks && s.Wrong == 0 && s.Duplicates == 0 && s.Missing == 0
}

// Rate is tasks per second from the first put to the last result.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Results) / s.Elapsed.Seconds()
}

// Write prints the summary for a person.
func (s Summary) Write(w io.Writer) {
	verdict := "OK"
	if !s.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "demo %s: %d tasks, %d results, %d wrong, %d duplicate, %d missing\n",
		verdict, s.Tasks, s.Results, s.Wrong, s.Duplicates, s.Missing)
	fmt.Fprintf(w, "demo elapsed %s, %.0f tasks/s\n", s.Elapsed.Round(time.Millisecond), s.Rate())
	fmt.Fprintf(w, "demo redelivered %d, leases expired %d, late acks refused %d, dead-lettered %d\n",
		s.Redelivered, s.Expired, s.Refused, s.Dead)
}

var (
	verdictLine  = regexp.MustCompile(`demo (OK|FAILED): (\d+) tasks, (\d+) results, (\d+) wrong, (\d+) duplicate, (\d+) missing`)
	elapsedLine  = regexp.MustCompile(`demo elapsed (\S+), \d+ tasks/s`)
	countersLine = regexp.MustCompile(`demo redelivered (\d+), leases expired (\d+), late acks refused (\d+), dead-lettered (\d+)`)
)

// ParseSummary reads back the last summary that Write printed into text
// (a master's output or log, with any prefixes). Tests and scripts use it
// to check a run from the master's own verification.
func ParseSummary(text string) (Summary, error) {
	v := verdictLine.FindAllStringSubmatch(text, -1)
	e := elapsedLine.FindAllStringSubmatch(text, -1)
	c := countersLine.FindAllStringSubmatch(text, -1)
	if len(v) == 0 || len(e) == 0 || len(c) == 0 {
		return Summary{}, fmt.Errorf("no demo summary in the output")
	}
	n := func(s string) int { x, _ := strconv.Atoi(s); return x }
	u := func(s string) uint64 { x, _ := strconv.ParseUint(s, 10, 64); return x }
	vm, em, cm := v[len(v)-1], e[len(e)-1], c[len(c)-1]
	elapsed, err := time.ParseDuration(em[1])
	if err != nil {
		return Summary{}, fmt.Errorf("demo summary: elapsed %q: %w", em[1], err)
	}
	s := Summary{
		Tasks: n(vm[2]), Results: n(vm[3]), Wrong: n(vm[4]), Duplicates: n(vm[5]), Missing: n(vm[6]),
		Elapsed:     elapsed,
		Redelivered: u(cm[1]), Expired: u(cm[2]), Refused: u(cm[3]), Dead: u(cm[4]),
	}
	if (vm[1] == "OK") != s.OK() {
		return Summary{}, fmt.Errorf("demo summary says %s but its counts say otherwise", vm[1])
	}
	return s, nil
}
