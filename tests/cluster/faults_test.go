//go:build cluster

package cluster

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Slaves slowed to about 1,000 tasks/s per slot, so that a run lasts long
// enough for a fault to land in the middle of it.
func slowCluster(t *testing.T, tasks int, lease string) *cluster {
	return newCluster(t, map[string]string{
		"DISTQ_DEMO_TASKS":  strconv.Itoa(tasks),
		"DISTQ_LEASE":       lease,
		"DISTQ_SLAVE_DELAY": "1ms",
	})
}

// kill -9 of a slave container mid-run: its leases return at once when the
// connection drops, and the others redo them.
func TestKillSlave(t *testing.T) {
	const n = 20000
	c := slowCluster(t, n, "5s")
	c.compose("up", "-d", "--scale", "slave=3")
	master := c.follow(c.container("master", 1))
	victim := c.follow(c.container("slave", 1))
	victim.waitFor("receiving tasks", 1, time.Minute)
	docker(t, "kill", "-s", "KILL", c.container("slave", 1))
	s := c.checkDemo(master, n)
	if s.Redelivered == 0 {
		t.Errorf("no task of the killed slave was redelivered")
	}
}

// A slave cut off from the network for longer than its lease: its tasks are
// redone elsewhere, and when it is reconnected its late acks are refused.
func TestPartitionSlave(t *testing.T) {
	const n = 20000
	c := slowCluster(t, n, "2s")
	c.compose("up", "-d", "--scale", "slave=3")
	master := c.follow(c.container("master", 1))
	name := c.container("slave", 2)
	victim := c.follow(name)
	victim.waitFor("receiving tasks", 1, time.Minute)
	ip := docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
	docker(t, "network", "disconnect", c.network(), name)
	master.waitFor("leases expired;", 1, time.Minute)
	// Reconnect within the master's keepalive window. Docker hands the
	// freed address back, so the slave's old connection and stream carry
	// on, and its acks for the expired leases reach the master late.
	docker(t, "network", "connect", c.network(), name)
	if again := docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name); again != ip {
		t.Logf("the slave came back as %s, not %s: its old connection is gone, so no late ack can arrive on it", again, ip)
	}
	s := c.checkDemo(master, n)
	if s.Expired == 0 || s.Refused == 0 {
		t.Errorf("summary %+v: want expired leases and refused late acks", s)
	}
	if victim.count("settle refused by master") == 0 {
		t.Errorf("the partitioned slave never saw its late acks refused")
	}
}

// A paused slave (a hung process) past its lease: the same.
func TestPauseSlave(t *testing.T) {
	const n = 20000
	c := slowCluster(t, n, "2s")
	c.compose("up", "-d", "--scale", "slave=3")
	master := c.follow(c.container("master", 1))
	name := c.container("slave", 3)
	victim := c.follow(name)
	victim.waitFor("receiving tasks", 1, time.Minute)
	docker(t, "pause", name)
	master.waitFor("leases expired;", 1, time.Minute)
	docker(t, "unpause", name)
	s := c.checkDemo(master, n)
	if s.Expired == 0 || s.Refused == 0 {
		t.Errorf("summary %+v: want expired leases and refused late acks", s)
	}
}

// The master restarts mid-run: it loses its in-memory queues (it says how
// many items), the slaves reconnect with backoff and authenticate again,
// and the new master's run completes with them.
func TestRestartMaster(t *testing.T) {
	const n = 20000
	c := slowCluster(t, n, "5s")
	c.compose("up", "-d", "--scale", "slave=3")
	master := c.follow(c.container("master", 1))
	slave := c.follow(c.container("slave", 1))
	slave.waitFor("receiving tasks", 1, time.Minute)
	docker(t, "restart", "-t", "10", c.container("master", 1))
	// The restarted master produces anew; every slave connects again.
	slave.waitFor("receiving tasks", 2, 2*time.Minute)
	master = c.follow(c.container("master", 1)) // the log now spans both runs
	master.waitFor("master serving", 2, time.Minute)
	if !strings.Contains(master.text(), "items dropped at exit: queues are in memory") {
		t.Errorf("the first master did not say what it dropped at exit")
	}
	c.checkDemo(master, n)
	if slave.count("master unreachable; retrying") == 0 {
		t.Errorf("the slave never backed off while the master was away")
	}
}

// Slaves scaled from 1 to 6 mid-run: throughput rises and nothing is lost.
func TestScaleSlaves(t *testing.T) {
	const n = 40000
	c := newCluster(t, map[string]string{
		"DISTQ_DEMO_TASKS":  strconv.Itoa(n),
		"DISTQ_LEASE":       "5s",
		"DISTQ_SLAVE_DELAY": "2ms",
	})
	c.compose("up", "-d", "--scale", "slave=1")
	master := c.follow(c.container("master", 1))
	master.waitFor("master.demo: progress", 3, time.Minute)
	before := rate(t, master.text())
	c.compose("up", "-d", "--no-recreate", "--scale", "slave=6")
	for i := 2; i <= 6; i++ {
		c.follow(c.container("slave", i)).waitFor("receiving tasks", 1, time.Minute)
	}
	k := master.count("master.demo: progress")
	master.waitFor("master.demo: progress", k+2, time.Minute)
	after := rate(t, master.text())
	t.Logf("throughput with 1 slave: %.0f tasks/s; with 6: %.0f tasks/s", before, after)
	if after < 2*before {
		t.Errorf("throughput rose from %.0f to only %.0f tasks/s with 6 slaves", before, after)
	}
	c.checkDemo(master, n)
}

var progressLine = regexp.MustCompile(`(\S+) \[INFO\]\s+master\.demo: progress: done=(\d+)`)

// rate is the throughput between the last two progress lines of the log.
func rate(t *testing.T, log string) float64 {
	t.Helper()
	m := progressLine.FindAllStringSubmatch(log, -1)
	if len(m) < 2 {
		t.Fatalf("fewer than two progress lines in the master's log")
	}
	a, b := m[len(m)-2], m[len(m)-1]
	ta, err1 := time.Parse(time.RFC3339Nano, a[1])
	tb, err2 := time.Parse(time.RFC3339Nano, b[1])
	if err1 != nil || err2 != nil || !tb.After(ta) {
		t.Fatalf("unreadable progress times %q, %q", a[1], b[1])
	}
	da, _ := strconv.Atoi(a[2])
	db, _ := strconv.Atoi(b[2])
	return float64(db-da) / tb.Sub(ta).Seconds()
}

// A slave started on the host, outside compose, joins through the master's
// published port with the same key and does its share.
func TestSlaveFromHost(t *testing.T) {
	const n = 20000
	c := slowCluster(t, n, "5s")
	c.compose("up", "-d", "--scale", "slave=1")
	master := c.follow(c.container("master", 1))
	master.waitFor("master serving", 1, time.Minute)
	slaveBin := filepath.Join(repoRoot(t), "bin", "slave")
	host := exec.Command(slaveBin, "-master", "127.0.0.1:"+strconv.Itoa(c.port), "-authkey-file", c.keyFile, "-concurrency", "2", "-delay", "1ms")
	out, err := host.CombinedOutput()
	if err != nil {
		t.Fatalf("the host slave failed: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`processed=(\d+)`).FindStringSubmatch(string(out))
	if m == nil || m[1] == "0" {
		t.Fatalf("the host slave processed nothing:\n%s", out)
	}
	t.Logf("the host slave processed %s tasks", m[1])
	c.checkDemo(master, n)
}
