package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Env is what every scenario shares: the binaries, a private temporary
// directory with a fresh random authkey, and the set of live children.
type Env struct {
	Master, Slave string // paths of the real binaries
	Self          string // this tool, re-executed for its subcommands
	Dir           string
	KeyFile       string
	Prefetch      int // -prefetch of every slave
	Procs         *Procs

	seq atomic.Int64
}

// NewEnv makes the temporary directory and the authkey file.
func NewEnv(binDir string, prefetch int) (*Env, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	e := &Env{
		Master:   filepath.Join(binDir, "master"),
		Slave:    filepath.Join(binDir, "slave"),
		Self:     self,
		Prefetch: prefetch,
		Procs:    NewProcs(),
	}
	for _, b := range []string{e.Master, e.Slave} {
		if st, err := os.Stat(b); err != nil || st.IsDir() {
			return nil, fmt.Errorf("binary %s not found: run `make build` first (or pass -bin)", b)
		}
	}
	e.Dir, err = os.MkdirTemp("", "distq-bench-")
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	e.KeyFile = filepath.Join(e.Dir, "authkey")
	if err := os.WriteFile(e.KeyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return e, nil
}

// Close kills every child left and removes the temporary directory.
func (e *Env) Close() {
	e.Procs.KillAll()
	os.RemoveAll(e.Dir)
}

// StartMaster starts a master on 127.0.0.1:0 with the extra flags and
// returns it once it has written its address.
func (e *Env) StartMaster(ctx context.Context, extra ...string) (*Proc, string, error) {
	return e.startServer(ctx, "master", append([]string{e.Master, "-listen", "127.0.0.1:0", "-authkey-file", e.KeyFile}, extra...))
}

// StartEcho starts this tool's grpc-echo subcommand (grpc-go's benchmark
// server, for the transport floors) and returns it with its address.
func (e *Env) StartEcho(ctx context.Context) (*Proc, string, error) {
	return e.startServer(ctx, "grpc-echo", []string{e.Self, "grpc-echo"})
}

// StartMasterTimed starts a master like StartMaster, waiting up to timeout
// for its address file, and returns how long it took from just before the
// exec to the file's appearance (polled every millisecond): the restart
// time of a master on a data dir.
func (e *Env) StartMasterTimed(ctx context.Context, timeout time.Duration, extra ...string) (*Proc, string, time.Duration, error) {
	t0 := time.Now()
	p, addr, err := e.startServerWait(ctx, "master", append([]string{e.Master, "-listen", "127.0.0.1:0", "-authkey-file", e.KeyFile}, extra...), timeout, time.Millisecond)
	return p, addr, time.Since(t0), err
}

// DataDir makes a fresh, empty data directory for a durable master in the
// private temporary directory, so on the system temp dir's file system.
// The caller removes it once done; Close removes whatever is left.
func (e *Env) DataDir(name string) (string, error) {
	return os.MkdirTemp(e.Dir, "data-"+name+"-")
}

// startServer runs argv with -addr-file and returns the process once it
// has written its address there.
func (e *Env) startServer(ctx context.Context, name string, argv []string) (*Proc, string, error) {
	return e.startServerWait(ctx, name, argv, 15*time.Second, 5*time.Millisecond)
}

// startServerWait is startServer waiting up to timeout, polling every poll.
func (e *Env) startServerWait(ctx context.Context, name string, argv []string, timeout, poll time.Duration) (*Proc, string, error) {
	addrFile := filepath.Join(e.Dir, "addr-"+strconv.FormatInt(e.seq.Add(1), 10))
	p, err := e.Procs.Start(name, append(argv, "-addr-file", addrFile)...)
	if err != nil {
		return nil, "", err
	}
	addr, err := waitAddr(ctx, p, addrFile, timeout, poll)
	if err != nil {
		p.Kill()
		return nil, "", err
	}
	return p, addr, nil
}

// waitAddr polls for a server's address file every poll; it fails at once
// if the server exits first.
func waitAddr(ctx context.Context, p *Proc, file string, timeout, poll time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(file); err == nil {
			if addr := strings.TrimSpace(string(b)); addr != "" {
				return addr, nil
			}
		}
		select {
		case <-p.Done():
			_ = p.Wait(ctx, time.Second)
			return "", p.failure(fmt.Errorf("exited before writing its address (%v)", p.err))
		case <-deadline.C:
			return "", p.failure(fmt.Errorf("no address file within %v", timeout))
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
	}
}

// StartSlaves starts k slave processes against addr.
func (e *Env) StartSlaves(addr string, k int) ([]*Proc, error) {
	return e.StartSlavesWith(addr, k, nil)
}

// StartSlavesWith starts k slave processes against addr, slave i with the
// extra flags extra(i) if extra is set.
func (e *Env) StartSlavesWith(addr string, k int, extra func(i int) []string) ([]*Proc, error) {
	var ps []*Proc
	for i := range k {
		argv := []string{e.Slave, "-master", addr, "-authkey-file", e.KeyFile,
			"-log-level", "warn", "-prefetch", strconv.Itoa(e.Prefetch)}
		if extra != nil {
			argv = append(argv, extra(i)...)
		}
		p, err := e.Procs.Start(fmt.Sprintf("slave %d", i+1), argv...)
		if err != nil {
			for _, q := range ps {
				q.Kill()
			}
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// StartChild re-executes this tool with a subcommand against addr.
func (e *Env) StartChild(name, sub, addr string, args ...string) (*Proc, error) {
	argv := append([]string{e.Self, sub, "-master", addr, "-authkey-file", e.KeyFile}, args...)
	return e.Procs.Start(name, argv...)
}

// StartPing runs this tool's grpc-ping subcommand against a grpc-echo
// server.
func (e *Env) StartPing(name, server string, args ...string) (*Proc, error) {
	return e.Procs.Start(name, append([]string{e.Self, "grpc-ping", "-server", server}, args...)...)
}

// StopAll sends SIGTERM to each process and waits for a clean exit.
func StopAll(ctx context.Context, timeout time.Duration, ps ...*Proc) error {
	var first error
	for _, p := range ps {
		if !p.Exited() {
			p.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range ps {
		if err := p.Wait(ctx, timeout); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// diskUsage is the space allocated to the files under dir, as du counts
// it (blocks, not apparent sizes).
func diskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// readStatus reads VmRSS and VmHWM of pid, in bytes.
func readStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	rss, err = statusBytes(string(b), "VmRSS")
	if err != nil {
		return 0, 0, err
	}
	hwm, err = statusBytes(string(b), "VmHWM")
	return rss, hwm, err
}
