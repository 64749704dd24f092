package bench

import (
	"context"
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Machine describes where the figures were taken.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Kernel string `json:"kernel,omitempty"`
	Go     string `json:"go"`     // the toolchain that built bin/master
	Python string `json:"python"` // python3 --version
	Commit string `json:"commit,omitempty"`
	// TempFS is the file system type of the system temp dir, where the
	// durable scenarios keep their data dirs (e.g. ext4, tmpfs).
	TempFS string `json:"temp_fs,omitempty"`
	// LoadStart and LoadEnd are the 1-minute load averages as the run
	// began and ended: on a shared machine, how busy the others kept it.
	LoadStart float64 `json:"load_start,omitempty"`
	LoadEnd   float64 `json:"load_end,omitempty"`
	// GoEnv holds the Go runtime's settings found in the environment
	// (GOMAXPROCS, GOGC, GOMEMLIMIT, GODEBUG), which every process of the
	// run inherits, distq's and the peers' clients alike: a run made with
	// GOMAXPROCS=1, say, says so.
	GoEnv map[string]string `json:"go_env,omitempty"`
}

// goEnvVars are the runtime settings GoEnv records.
var goEnvVars = []string{"GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG"}

// goEnv returns the goEnvVars set in the environment, or nil.
func goEnv() map[string]string {
	var env map[string]string
	for _, k := range goEnvVars {
		if v, ok := os.LookupEnv(k); ok {
			if env == nil {
				env = make(map[string]string)
			}
			env[k] = v
		}
	}
	return env
}

// goEnvString is GoEnv as K=V pairs in goEnvVars' order, or "".
func (m Machine) goEnvString() string {
	var kv []string
	for _, k := range goEnvVars {
		if v, ok := m.GoEnv[k]; ok {
			kv = append(kv, k+"="+v)
		}
	}
	return strings.Join(kv, " ")
}

// DescribeMachine gathers the machine's description; what it cannot find
// it leaves empty.
func DescribeMachine(ctx context.Context, masterBin, python string) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = cpuModel(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if bi, err := buildinfo.ReadFile(masterBin); err == nil {
		m.Go = bi.GoVersion
	}
	m.Python = command(ctx, python, "--version")
	m.Commit = command(ctx, "git", "describe", "--always", "--dirty")
	m.TempFS = tempFS()
	m.LoadStart = loadAvg()
	m.GoEnv = goEnv()
	return m
}

// loadAvg is the 1-minute load average of /proc/loadavg, or 0.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// tempFS is the type of the file system holding the system temp dir, from
// /proc/self/mountinfo, or "".
func tempFS() string {
	dir, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		return ""
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	return mountFSType(string(b), dir)
}

// mountFSType returns the file system type of the mount in mountinfo (the
// format of /proc/PID/mountinfo) that holds path: the one whose mount
// point is the longest prefix of path; the last one wins among mounts on
// the same point, as the last mounted hides the others.
func mountFSType(mountinfo, path string) string {
	best, fsType := -1, ""
	for _, line := range strings.Split(mountinfo, "\n") {
		// id parent major:minor root mountpoint options [optional...] - type source superoptions
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 5 || sep+1 >= len(f) {
			continue
		}
		mp := unescapeMount(f[4])
		within := path == mp || mp == "/" || strings.HasPrefix(path, mp+"/")
		if within && len(mp) >= best {
			best, fsType = len(mp), f[sep+1]
		}
	}
	return fsType
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo string) string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// command runs a short command and returns its trimmed output, or "".
func command(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
