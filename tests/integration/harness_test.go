// Package integration starts the real master and slave binaries on loopback
// and checks what users rely on: every task comes back once and right when
// slaves die, hang or hold the wrong key, and bad input does no harm.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "distq-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	build := exec.Command("go", "build", "-race", "-o", dir+"/",
		"../../cmd/master", "../../cmd/slave", "../../cmd/distq", "../../examples/producer", "../../examples/worker")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running binary whose output is kept and scanned for lines.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	out     bytes.Buffer // stdout and stderr, interleaved
	stdout  bytes.Buffer
	waiters []lineWaiter
	done    chan struct{}
	err     error
}

type lineWaiter struct {
	substr string
	ch     chan string
}

func writeKey(t *testing.T, key string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "authkey")
	if err := os.WriteFile(f, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// start runs bin with args; its output goes to the test log as it comes.
func start(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	return startEnv(t, name, bin, nil, args...)
}

// startEnv is start with extra environment variables ("K=V"). bin is a
// name in the built binaries' folder, or an absolute path.
func startEnv(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	path := bin
	if !filepath.IsAbs(bin) {
		path = filepath.Join(binDir, bin)
	}
	p := &proc{t: t, name: name, cmd: exec.Command(path, args...), done: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go p.scan(&wg, stderr, false)
	go p.scan(&wg, stdout, true)
	go func() {
		wg.Wait()
		err := p.cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGCONT)
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) scan(wg *sync.WaitGroup, r io.Reader, isStdout bool) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		p.t.Logf("%s: %s", p.name, line)
		p.mu.Lock()
		p.out.WriteString(line + "\n")
		if isStdout {
			p.stdout.WriteString(line + "\n")
		}
		kept := p.waiters[:0]
		for _, w := range p.waiters {
			if strings.Contains(line, w.substr) {
				w.ch <- line
				continue
			}
			kept = append(kept, w)
		}
		p.waiters = kept
		p.mu.Unlock()
	}
}

// waitLine blocks until the process prints a line containing substr (now or
// earlier) and returns it; it fails the test if the process exits first or
// the timeout passes.
func (p *proc) waitLine(substr string, timeout time.Duration) string {
	p.t.Helper()
	ch := make(chan string, 1)
	p.mu.Lock()
	for _, line := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(line, substr) {
			p.mu.Unlock()
			return line
		}
	}
	p.waiters = append(p.waiters, lineWaiter{substr, ch})
	p.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line := <-ch:
		return line
	case <-p.done:
		select {
		case line := <-ch:
			return line
		default:
		}
		p.t.Fatalf("%s exited before printing %q", p.name, substr)
	case <-t.C:
		p.t.Fatalf("%s did not print %q within %v", p.name, substr, timeout)
	}
	return ""
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.t.Fatalf("%s still running after %v", p.name, timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// startMaster runs a master on a free loopback port and returns it with
// its address.
func startMaster(t *testing.T, keyFile string, args ...string) (*proc, string) {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	args = append([]string{"-listen", "127.0.0.1:0", "-authkey-file", keyFile, "-addr-file", addrFile}, args...)
	m := start(t, "master", "master", args...)
	line := m.waitLine("master serving", 30*time.Second)
	addr, err := os.ReadFile(addrFile)
	if err != nil {
		t.Fatalf("master printed %q but wrote no address file: %v", line, err)
	}
	return m, strings.TrimSpace(string(addr))
}

func startSlave(t *testing.T, name, addr, keyFile string, args ...string) *proc {
	t.Helper()
	args = append([]string{"-master", addr, "-authkey-file", keyFile}, args...)
	return start(t, name, "slave", args...)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
