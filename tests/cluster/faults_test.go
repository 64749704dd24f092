//go:build cluster

package cluster

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	prod "github.com/distq/distq/internal/producer"
)

// Slaves slowed to about 1,000 tasks/s per slot, so that a run lasts long
// enough for a fault to land in the middle of it. The demo starts once
// slaves read the task queue: on a busy machine their containers can start
// seconds after the master's, and the run would be half over.
func slowCluster(t *testing.T, tasks int, lease string, slaves int) *cluster {
	return newCluster(t, map[string]string{
		"DISTQ_DEMO_TASKS":  strconv.Itoa(tasks),
		"DISTQ_DEMO_SLAVES": strconv.Itoa(slaves),
		"DISTQ_LEASE":       lease,
		"DISTQ_SLAVE_DELAY": "1ms",
	})
}

// kill -9 of a slave container mid-run: its leases return at once when the
// connection drops, and the others redo them.
func TestKillSlave(t *testing.T) {
	const n = 20000
	c := slowCluster(t, n, "5s", 3)
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
// The run lasts about 13 s here, and the four docker calls of the fault
// and the lease must fit in it with room for the late acks; on a busy
// machine each call can take seconds.
func TestPartitionSlave(t *testing.T) {
	const n = 40000
	c := slowCluster(t, n, "2s", 3)
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
	const n = 40000
	c := slowCluster(t, n, "2s", 3)
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

// The master is killed (SIGKILL) mid-run and started again on its volume:
// it recovers its queues from /data, the slaves and a producer of its own
// (the master's demo would die with it) reconnect by themselves, and every
// put the master answered has exactly one result, the right one.
func TestRestartMaster(t *testing.T) {
	const n = 30000
	c := newCluster(t, map[string]string{
		"COMPOSE_PROFILES":     "producer",
		"DISTQ_DEMO_TASKS":     "0",
		"DISTQ_LEASE":          "5s",
		"DISTQ_PRODUCER_TASKS": strconv.Itoa(n),
		// Puts start once the 3 slaves are in and last about 20 s, so
		// that the kill, meant 2 s in, lands while they go on even when
		// docker and its logs lag by seconds on a busy machine; the
		// slaves do about half as many a second, so that a backlog is
		// queued.
		"DISTQ_PRODUCER_SLAVES": "3",
		"DISTQ_PRODUCER_RATE":   "1500",
		"DISTQ_SLAVE_DELAY":     "3ms",
	})
	c.compose("up", "-d", "--scale", "slave=3")
	name := c.container("master", 1)
	master := c.follow(name)
	producer := c.follow(c.container("producer", 1))
	slaves := make([]*follower, 3)
	for i := range slaves {
		slaves[i] = c.follow(c.container("slave", i+1))
		slaves[i].waitFor("receiving tasks", 1, time.Minute)
	}
	producer.waitFor("producer: progress", producer.count("producer: progress")+1, time.Minute)
	if producer.count("all tasks put and answered") > 0 {
		t.Fatalf("the producer had put every task before the kill: the fault did not land mid-run")
	}
	docker(t, "kill", "-s", "KILL", name)
	if code := exitCode(t, name, time.Minute); code != 137 {
		t.Errorf("the killed master exited %d; want 137 (SIGKILL)", code)
	}
	docker(t, "start", name)
	master = c.follow(name) // the log now spans both runs
	master.waitFor("master serving", 2, time.Minute)
	if code := exitCode(t, c.container("producer", 1), 5*time.Minute); code != 0 {
		t.Errorf("the producer exited %d; want 0", code)
	}
	producer.waitFor("producer put again after no answer", 1, 30*time.Second)
	s, err := prod.ParseSummary(producer.text())
	if err != nil {
		t.Fatalf("producer log: %v", err)
	}
	recovered := recoveredItems(t, master.text())
	t.Logf("checked: %d tasks, %d puts answered, %d results exactly once and right (%d wrong, %d duplicate, %d missing); "+
		"%d items put again after no answer, %d stored twice, %d tasks done again, %d results read again, %d result ids given twice; "+
		"the master recovered %d items",
		s.Tasks, s.Answered, s.Exact, s.Wrong, s.Duplicates, s.Missing, s.Resent, s.Extra, s.Redone, s.Reread, s.IDsReused, recovered)
	fmt.Printf("%s: checked %d tasks, %d answered puts with exactly one right result after a SIGKILL of the master, which recovered %d items; "+
		"%d items put again after no answer (%d stored twice), %d tasks done again, %d results read again\n",
		t.Name(), s.Tasks, s.Exact, recovered, s.Resent, s.Extra, s.Redone, s.Reread)
	if !s.OK() || s.Tasks != n {
		t.Errorf("producer summary %+v: want all %d answered puts with exactly one right result", s, n)
	}
	// The kill landed while the producer was putting (checked before it).
	// Its puts cut by the kill are sent again by the client, which the
	// master stores once, so the producer may see none go unanswered:
	// s.Resent is counted, not required.
	if recovered == 0 {
		t.Errorf("the restarted master recovered no items")
	}
	// The slaves reconnected by themselves and ended with the work.
	for i, sl := range slaves {
		if code := exitCode(t, c.container("slave", i+1), time.Minute); code != 0 {
			t.Errorf("slave %d exited %d; want 0", i+1, code)
		}
		if sl.count("master unreachable; retrying") == 0 {
			t.Errorf("slave %d never backed off while the master was away", i+1)
		}
		if sl.count("receiving tasks") < 2 && sl.count("queue closed and drained; worker done") == 0 {
			t.Errorf("slave %d did not come back to the restarted master", i+1)
		}
	}
	if producer.count("master unreachable; retrying") == 0 {
		t.Errorf("the producer's result reader never backed off while the master was away")
	}
}

var recoveredLine = regexp.MustCompile(`master\.data: data recovered: .*\bitems=(\d+)`)

// recoveredItems is what the last "data recovered" line of a master's log
// says it recovered; it fails unless there are two (a start on an empty
// volume, and the restart).
func recoveredItems(t *testing.T, log string) int {
	t.Helper()
	m := recoveredLine.FindAllStringSubmatch(log, -1)
	if len(m) != 2 {
		t.Fatalf("%d \"data recovered\" lines in the master's log; want 2 (a start and a restart)", len(m))
	}
	if m[0][1] != "0" {
		t.Errorf("the first master started with %s items on a new volume; want 0", m[0][1])
	}
	n, _ := strconv.Atoi(m[1][1])
	return n
}

// The in-memory master (no volume: DISTQ_MASTER_DATA_DIR set and empty)
// restarts mid-run: it loses its queues (it says how many items), the
// slaves reconnect with backoff and authenticate again, and the new
// master's demo completes with them.
func TestRestartMasterInMemory(t *testing.T) {
	const n = 20000
	c := newCluster(t, map[string]string{
		"DISTQ_DEMO_TASKS":      strconv.Itoa(n),
		"DISTQ_DEMO_SLAVES":     "3",
		"DISTQ_LEASE":           "5s",
		"DISTQ_SLAVE_DELAY":     "1ms",
		"DISTQ_MASTER_DATA_DIR": "",
	})
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
	if strings.Contains(master.text(), "data recovered") {
		t.Errorf("the master kept its queues on disk; want them in memory")
	}
	c.checkDemo(master, n)
	if slave.count("master unreachable; retrying") == 0 {
		t.Errorf("the slave never backed off while the master was away")
	}
}

// Slaves scaled from 1 to 6 mid-run: throughput rises and nothing is lost.
// The run must outlast the scale-up, which took 30 s on a busy machine.
func TestScaleSlaves(t *testing.T) {
	const n = 80000
	c := newCluster(t, map[string]string{
		"DISTQ_DEMO_TASKS":  strconv.Itoa(n),
		"DISTQ_DEMO_SLAVES": "1",
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

var progressLine = regexp.MustCompile(`(\S+) \[INFO\]\s+master\.demo: progress: done=(\d+) total=(\d+)`)

// rate is the throughput between the last two progress lines of the log,
// leaving out the line the demo prints when it is done (not on its 2 s
// tick, and after the slaves have run out of work).
func rate(t *testing.T, log string) float64 {
	t.Helper()
	var m [][]string
	for _, l := range progressLine.FindAllStringSubmatch(log, -1) {
		if l[2] != l[3] {
			m = append(m, l)
		}
	}
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
	c := slowCluster(t, n, "5s", 1)
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
