//go:build cluster

// Package cluster runs the docker-compose demo cluster and injects the
// faults that hosts and networks cause: a killed slave, a partitioned slave,
// a paused slave, a master killed and started again on its volume, an
// in-memory master restarted, slaves scaled up mid-run, and a slave joining
// from outside compose. Each test checks from the master's own verification
// (its demo), or from the producer's where the master is killed, that every
// task's result arrived exactly once and right.
//
// Run with `make test-cluster` (it builds the images first).
package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distq/distq/internal/demo"
)

// cluster is one compose project.
type cluster struct {
	t       *testing.T
	project string
	port    int
	// The host's loopback ports of the master's metrics and of Prometheus
	// (profile "metrics").
	httpPort, promPort int
	keyFile            string
	env                []string
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newCluster prepares a project with its own name, port and key; vars are
// the compose file's variables (DISTQ_DEMO_TASKS, DISTQ_LEASE, ...).
func newCluster(t *testing.T, vars map[string]string) *cluster {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), ""))
	c := &cluster{t: t, project: "distqtest" + name, port: freePort(t)}
	dir := t.TempDir()
	c.keyFile = filepath.Join(dir, "authkey")
	// Readable by the containers' user (nobody): a test key in a private
	// temporary directory.
	if err := os.WriteFile(c.keyFile, []byte(fmt.Sprintf("cluster-test-key-%d\n", time.Now().UnixNano())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.httpPort, c.promPort = freePort(t), freePort(t)
	c.env = append(os.Environ(), "DISTQ_PORT="+strconv.Itoa(c.port), "DISTQ_AUTHKEY_HOST_FILE="+c.keyFile,
		"DISTQ_HTTP_PORT="+strconv.Itoa(c.httpPort), "DISTQ_PROMETHEUS_PORT="+strconv.Itoa(c.promPort))
	for k, v := range vars {
		c.env = append(c.env, k+"="+v)
	}
	t.Cleanup(c.down)
	return c
}

// compose runs docker-compose for this project and returns its output.
func (c *cluster) compose(args ...string) string {
	c.t.Helper()
	full := append([]string{"-p", c.project, "-f", filepath.Join(repoRoot(c.t), "docker-compose.yml")}, args...)
	cmd := exec.Command("docker-compose", full...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (c *cluster) down() {
	cmd := exec.Command("docker-compose", "-p", c.project, "-f", filepath.Join(repoRoot(c.t), "docker-compose.yml"), "down", "-v", "--remove-orphans", "-t", "5")
	cmd.Env = c.env
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Logf("cleanup: docker-compose down: %v\n%s", err, out)
	}
}

// container is the name compose v1 gives the n-th container of a service.
func (c *cluster) container(service string, n int) string {
	return fmt.Sprintf("%s_%s_%d", c.project, service, n)
}

func (c *cluster) network() string { return c.project + "_distq" }

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// follower streams a container's log and waits for lines in it.
type follower struct {
	t    *testing.T
	name string
	mu   sync.Mutex
	buf  bytes.Buffer
	cond chan struct{} // closed and replaced on every new line
	done chan struct{}
	cmd  *exec.Cmd
}

func (c *cluster) follow(container string) *follower {
	c.t.Helper()
	f := &follower{t: c.t, name: container, cond: make(chan struct{}), done: make(chan struct{})}
	f.cmd = exec.Command("docker", "logs", "-f", container)
	r, err := f.cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	f.cmd.Stderr = f.cmd.Stdout
	if err := f.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		defer close(f.done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			f.mu.Lock()
			f.buf.WriteString(sc.Text() + "\n")
			close(f.cond)
			f.cond = make(chan struct{})
			f.mu.Unlock()
		}
	}()
	c.t.Cleanup(func() {
		f.cmd.Process.Kill()
		<-f.done
		f.cmd.Wait()
		c.t.Logf("--- log of %s ---\n%s", f.name, f.text())
	})
	return f
}

func (f *follower) text() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.String()
}

// count is how many lines so far contain substr.
func (f *follower) count(substr string) int {
	return strings.Count(f.text(), substr)
}

// waitFor blocks until the log holds at least n lines containing substr.
func (f *follower) waitFor(substr string, n int, timeout time.Duration) {
	f.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		got := strings.Count(f.buf.String(), substr)
		ch := f.cond
		f.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-f.done:
			if f.count(substr) >= n {
				return
			}
			f.t.Fatalf("%s: log ended before %d lines with %q", f.name, n, substr)
		case <-deadline.C:
			f.t.Fatalf("%s: no %d lines with %q within %v", f.name, n, substr, timeout)
		}
	}
}

// exitCode waits for a container to stop and returns its exit code.
func exitCode(t *testing.T, container string, timeout time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "wait", container).CombinedOutput()
	if err != nil {
		t.Fatalf("docker wait %s: %v\n%s", container, err, out)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("docker wait %s: %q", container, out)
	}
	return code
}

// checkDemo waits for the master to finish its demo and asserts every
// task's result arrived exactly once and right; it prints what it checked.
func (c *cluster) checkDemo(master *follower, tasks int) demo.Summary {
	c.t.Helper()
	if code := exitCode(c.t, c.container("master", 1), 5*time.Minute); code != 0 {
		c.t.Fatalf("master exited %d; want 0", code)
	}
	master.waitFor("demo redelivered", 1, 30*time.Second)
	s, err := demo.ParseSummary(master.text())
	if err != nil {
		c.t.Fatalf("master log: %v", err)
	}
	c.t.Logf("checked: %d tasks, %d results (%d wrong, %d duplicate, %d missing); %d redeliveries, %d leases expired, %d late acks refused, %d dead-lettered",
		s.Tasks, s.Results, s.Wrong, s.Duplicates, s.Missing, s.Redelivered, s.Expired, s.Refused, s.Dead)
	fmt.Printf("%s: checked %d tasks, %d results exactly once and right; %d redeliveries, %d leases expired, %d late acks refused\n",
		c.t.Name(), s.Tasks, s.Results, s.Redelivered, s.Expired, s.Refused)
	if !s.OK() || s.Tasks != tasks {
		c.t.Fatalf("demo summary %+v: want all %d results exactly once and right", s, tasks)
	}
	return s
}
