package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliResult is what one run of the distq tool printed, and its exit code.
type cliResult struct {
	stdout, stderr string
	code           int
}

// distqCLI runs bin/distq with args (stdin from stdin, env added to the
// environment) and returns what it printed and its exit code.
func distqCLI(t *testing.T, stdin string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "distq"), args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(cmd.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("distq %s: still running after 60s", strings.Join(args, " "))
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("distq %s: %v", strings.Join(args, " "), err)
	}
	r := cliResult{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
	t.Logf("distq %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// cli runs distq against addr with the key in keyFile.
type cli struct {
	t       *testing.T
	addr    string
	keyFile string
}

func (c cli) run(args ...string) cliResult {
	c.t.Helper()
	return distqCLI(c.t, "", nil, append([]string{"-master", c.addr, "-authkey-file", c.keyFile}, args...)...)
}

// ok runs a command that must succeed, print nothing on stderr, and
// returns its stdout.
func (c cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 || r.stderr != "" {
		c.t.Fatalf("distq %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails checks that r exited with code and printed one clear line on
// stderr containing want (and, for bad usage, a hint to the help).
func fails(t *testing.T, r cliResult, code int, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if r.code != code {
		t.Fatalf("exit %d, want %d; stderr %q", r.code, code, r.stderr)
	}
	wantLines := 1
	if code == 2 {
		wantLines = 2
		if len(lines) != 2 || !strings.HasPrefix(lines[1], "run 'distq") {
			t.Fatalf("bad usage: stderr %q, want an error and a hint", r.stderr)
		}
	}
	if len(lines) != wantLines || !strings.HasPrefix(lines[0], "distq: ") || strings.Contains(lines[0], "distq: distq:") ||
		!strings.Contains(lines[0], want) {
		t.Fatalf("stderr %q: want %d line(s), the first starting with one \"distq: \" and containing %q", r.stderr, wantLines, want)
	}
}

// TestCLI runs every subcommand of bin/distq against a real master and a
// real slave: their output, exit codes and errors.
func TestCLI(t *testing.T) {
	const key = "cli-test-key-0123456789abcdef"
	keyFile := writeKey(t, key)
	m, addr := startMaster(t, keyFile, "-queue", "tasks", "-queue", "results", "-queue", "small:2")
	c := cli{t, addr, keyFile}

	// help and bad usage
	if r := distqCLI(t, "", nil, "-h"); r.code != 0 || !strings.Contains(r.stdout, "Exit status:") || !strings.Contains(r.stdout, "requeue") {
		t.Fatalf("distq -h: exit %d, %q", r.code, r.stdout)
	}
	if r := distqCLI(t, "", nil, "dead", "-h"); r.code != 0 || !strings.Contains(r.stdout, "Usage: distq dead") {
		t.Fatalf("distq dead -h: exit %d", r.code)
	}
	fails(t, c.run("frobnicate"), 2, `unknown command "frobnicate"`)
	fails(t, c.run("peek"), 2, "no queue named")
	fails(t, c.run("requeue", "tasks"), 2, "or -all")
	fails(t, c.run("get", "-n", "0", "results"), 2, "-n 0")
	fails(t, c.run("stats", "-bogus"), 2, "-bogus")

	// put: from arguments, and from stdin lines with -ids
	if out := c.ok("put", "tasks", "2", "3", "bad"); out != "put 3 items into tasks\n" {
		t.Fatalf("put: %q", out)
	}
	r := distqCLI(t, "4\n5\n", []string{"DISTQ_AUTHKEY_FILE=" + keyFile}, "-master", addr, "put", "-ids", "tasks")
	if r.code != 0 || r.stdout != "4\n5\n" {
		t.Fatalf("put from stdin: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	// a bounded queue that is full: put fails at once with -nowait
	c.ok("put", "small", "a", "b")
	fails(t, c.run("put", "-nowait", "small", "c"), 1, "queue full")

	// stats: table and JSON; the key from $DISTQ_AUTHKEY
	r = distqCLI(t, "", []string{"DISTQ_AUTHKEY=" + key, "DISTQ_AUTHKEY_FILE="}, "-master", addr, "stats")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "QUEUE ") || !regexpLine(r.stdout, `^tasks +open +5 +0 +0 +0 +0 +- +5 `) {
		t.Fatalf("stats table: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var st []map[string]any
	if err := json.Unmarshal([]byte(c.ok("stats", "-json", "tasks", "small")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0]["name"] != "tasks" || st[0]["ready"] != 5.0 || st[0]["put_total"] != 5.0 || st[1]["max_size"] != 2.0 {
		t.Fatalf("stats -json: %v", st)
	}
	fails(t, c.run("stats", "nope"), 1, `unknown queue "nope"`)

	// peek, paged
	out := c.ok("peek", "tasks")
	for _, p := range []string{"2", "3", "bad", "4", "5"} {
		if !regexpLine(out, `^[0-9]+ +0 +`+p+`$`) {
			t.Fatalf("peek lacks %s:\n%s", p, out)
		}
	}
	if out := c.ok("peek", "tasks", "-offset", "1", "-limit", "2"); strings.Count(out, "\n") != 4 || !strings.Contains(out, "ready items 2-3 of 5; next page: -offset 3") {
		t.Fatalf("peek page:\n%s", out)
	}

	// watch, not on a terminal: one line per refresh
	out = c.ok("watch", "-count", "3", "-interval", "20ms", "tasks", "small")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("watch -count 3 printed %d lines:\n%s", len(lines), out)
	}
	for i, l := range lines {
		if !strings.Contains(l, " tasks ready=5 leased=0 delayed=0 dead=0 consumers=0 ") || !strings.Contains(l, " | small ready=2 ") {
			t.Fatalf("watch line %d: %q", i, l)
		}
		if rates := strings.Contains(l, "put/s=0.0"); rates != (i > 0) {
			t.Fatalf("watch line %d: rates shown %v: %q", i, rates, l)
		}
	}

	// A slave squares the numbers; "bad" goes to tasks.dead. get waits
	// for the four results.
	sl := startSlave(t, "slave", addr, keyFile, "-concurrency", "2")
	out = c.ok("get", "-n", "4", "-timeout", "60s", "results")
	got := strings.Fields(out)
	slices.Sort(got)
	if !slices.Equal(got, []string{"16", "25", "4", "9"}) {
		t.Fatalf("get -n 4 results: %q", out)
	}
	if err := dial(t, addr, key).Queue("tasks").Join(ctxTimeout(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}

	// workers: the slave, with what it did (4 acked, "bad" failed)
	out = c.ok("workers")
	if !regexpLine(out, `^tasks +127\.0\.0\.1:[0-9]+ +0 +[0-9]+ +5 +4 +1 +[0-9.]+m?s ago +[0-9.]+m?s ago$`) || strings.Count(out, "\n") != 2 {
		t.Fatalf("workers:\n%s", out)
	}
	var consumers []map[string]any
	if err := json.Unmarshal([]byte(c.ok("workers", "-json", "tasks")), &consumers); err != nil {
		t.Fatal(err)
	}
	if len(consumers) != 1 || consumers[0]["queue"] != "tasks" || consumers[0]["acked"] != 4.0 || consumers[0]["failed"] != 1.0 {
		t.Fatalf("workers -json: %v", consumers)
	}
	if out := c.ok("workers", "results"); out != "no consumers connected\n" {
		t.Fatalf("workers results: %q", out)
	}

	// pause: puts go on, nothing is handed out; purge; resume
	if out := c.ok("pause", "tasks"); !strings.HasPrefix(out, "paused tasks") {
		t.Fatalf("pause: %q", out)
	}
	c.ok("put", "tasks", "6", "7")
	if out := c.ok("stats", "tasks"); !regexpLine(out, `^tasks +paused +2 +0 `) {
		t.Fatalf("stats of a paused queue:\n%s", out)
	}
	fails(t, c.run("get", "-nowait", "tasks"), 4, "queue tasks is empty")
	if out := c.ok("purge", "tasks"); out != "purged 2 items from tasks\n" {
		t.Fatalf("purge: %q", out)
	}
	if out := c.ok("resume", "tasks"); out != "resumed tasks\n" {
		t.Fatalf("resume: %q", out)
	}
	if out := c.ok("stats", "tasks"); !regexpLine(out, `^tasks +open +0 +0 `) || !regexpLine(out, ` 2$`) {
		t.Fatalf("stats after purge and resume:\n%s", out)
	}
	fails(t, c.run("pause", "nope"), 1, `unknown queue "nope"`)
	sl.signal(syscall.SIGTERM)
	if code := sl.wait(30 * time.Second); code != 0 {
		t.Fatalf("slave exit %d", code)
	}

	// dead: table and JSON, with the last error and the attempts
	out = c.ok("dead", "tasks")
	if !regexpLine(out, `^[0-9]+ +1 +bad +payload "bad" is not a decimal integer$`) || !strings.Contains(out, "dead items 1-1 of 1") {
		t.Fatalf("dead:\n%s", out)
	}
	var dead []struct {
		ID       uint64
		Attempts int
		Payload  string
		Error    string
	}
	if err := json.Unmarshal([]byte(c.ok("dead", "-json", "tasks")), &dead); err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].Payload != "bad" || dead[0].Attempts != 1 || !strings.Contains(dead[0].Error, "not a decimal integer") {
		t.Fatalf("dead -json: %+v", dead)
	}
	if out := c.ok("dead", "-offset", "5", "tasks"); out != "no dead items from offset 5 (there are 1)\n" {
		t.Fatalf("dead past the end: %q", out)
	}

	// requeue: a wrong id fails, the right one moves it back
	fails(t, c.run("requeue", "tasks", "999999"), 1, "item 999999 is not a dead item of tasks")
	if out := c.ok("requeue", "tasks", fmt.Sprint(dead[0].ID)); out != "requeued 1 dead item into tasks\n" {
		t.Fatalf("requeue: %q", out)
	}
	if out := c.ok("requeue", "-all", "tasks"); out != "requeued 0 dead items into tasks\n" {
		t.Fatalf("requeue -all: %q", out)
	}
	if out := c.ok("peek", "tasks"); !regexpLine(out, fmt.Sprintf(`^%d +0 +bad`, dead[0].ID)) {
		t.Fatalf("peek after requeue:\n%s", out)
	}

	// get: -nowait takes what is ready; an empty queue is exit 4
	if out := c.ok("get", "-nowait", "-n", "10", "tasks"); out != "bad\n" {
		t.Fatalf("get -nowait: %q", out)
	}
	fails(t, c.run("get", "-nowait", "tasks"), 4, "queue tasks is empty")
	fails(t, c.run("get", "-timeout", "50ms", "tasks"), 4, "nothing came within 50ms")
	c.ok("put", "tasks", "x", "y")
	if out := c.ok("get", "-n", "5", "-timeout", "100ms", "tasks"); out != "x\ny\n" {
		t.Fatalf("get -n 5 -timeout: %q", out)
	}

	// close: puts are refused, get sees the end (exit 5)
	c.ok("put", "tasks", "last")
	if out := c.ok("close", "tasks"); !strings.HasPrefix(out, "closed tasks") {
		t.Fatalf("close: %q", out)
	}
	fails(t, c.run("put", "tasks", "more"), 1, "queue closed")
	if out := c.ok("get", "-n", "3", "tasks"); out != "last\n" {
		t.Fatalf("get from a closed queue: %q", out)
	}
	fails(t, c.run("get", "tasks"), 5, "queue tasks is closed and drained")
	if out := c.ok("stats", "tasks"); !regexpLine(out, `^tasks +closed +0 `) {
		t.Fatalf("stats after close:\n%s", out)
	}

	// a wrong key, a missing key, an unreachable master: exit 3, one line
	wrong := writeKey(t, "not-the-key-0123456789abcdef")
	fails(t, distqCLI(t, "", nil, "-master", addr, "-authkey-file", wrong, "stats"), 3, "authkey")
	fails(t, distqCLI(t, "", []string{"DISTQ_AUTHKEY_FILE=", "DISTQ_AUTHKEY="}, "-master", addr, "stats"), 3, "DISTQ_AUTHKEY")
	m.signal(syscall.SIGTERM)
	if code := m.wait(30 * time.Second); code != 0 {
		t.Fatalf("master exit %d", code)
	}
	fails(t, c.run("stats"), 3, "master "+addr)
}

// regexpLine reports whether some line of out matches the pattern.
func regexpLine(out, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, l := range strings.Split(out, "\n") {
		if re.MatchString(strings.TrimRight(l, " ")) {
			return true
		}
	}
	return false
}
