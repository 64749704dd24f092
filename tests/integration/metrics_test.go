package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distq/distq"
)

// httpAddr reads the address of p's -http-addr from its log line
// "serving metrics: addr=HOST:PORT".
func httpAddr(t *testing.T, p *proc) string {
	t.Helper()
	line := p.waitLine("serving metrics", 30*time.Second)
	_, rest, ok := strings.Cut(line, "addr=")
	if !ok {
		t.Fatalf("%s: no addr in %q", p.name, line)
	}
	return strings.Fields(rest)[0]
}

// scrape GETs /metrics and returns the body and its samples by
// `name{labels}` (as written, without spaces).
func scrape(t *testing.T, addr string) ([]byte, map[string]float64) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d, %v", addr, resp.StatusCode, err)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape %s: bad line %q", addr, line)
		}
		samples[line[:i]] = v
	}
	return body, samples
}

func wantSamples(t *testing.T, who string, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: %s = %v (present: %v), want %v", who, k, g, ok, v)
		}
	}
}

// promtoolCheck runs `promtool check metrics` on a scrape, in a subtest
// that is skipped, saying why, where promtool is not installed.
func promtoolCheck(t *testing.T, who string, body []byte) {
	t.Helper()
	t.Run("promtool check metrics of the "+who, func(t *testing.T) {
		path, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("SKIPPED, not checked: promtool is not installed (it comes with Debian's prometheus package; .ci/run installs it)")
		}
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Logf("clean (%d bytes scraped)", len(body))
	})
}

// A master and two slaves with -http-addr: the master's counters move by
// exactly what was put and done, round after round, and the slaves'
// counters add up to the same; both scrapes pass promtool.
func TestMetricsCountTheWork(t *testing.T) {
	key := writeKey(t, testKey)
	m, addr := startMaster(t, key, "-http-addr", "127.0.0.1:0", "-data-dir", t.TempDir())
	mh := httpAddr(t, m)
	a := startSlave(t, "slave-a", addr, key, "-http-addr", "127.0.0.1:0", "-concurrency", "2")
	b := startSlave(t, "slave-b", addr, key, "-http-addr", "127.0.0.1:0", "-concurrency", "2")
	slaves := map[*proc]string{a: httpAddr(t, a), b: httpAddr(t, b)}

	c := dial(t, addr, testKey)
	ctx := ctxTimeout(t, 3*time.Minute)
	tasks := c.Queue("tasks")
	put := 0
	for round, n := range []int{3000, 2000} {
		msgs := make([]distq.Message, n)
		for i := range msgs {
			msgs[i].Payload = []byte(strconv.Itoa(i%100 + 1))
		}
		if _, err := tasks.PutBatch(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		put += n
		// Join returns once every task is acked, with its reply in results.
		if err := tasks.Join(ctx); err != nil {
			t.Fatal(err)
		}
		body, got := scrape(t, mh)
		wantSamples(t, fmt.Sprintf("master, round %d", round+1), got, map[string]float64{
			`distq_queue_puts_total{queue="tasks"}`:            float64(put),
			`distq_queue_deliveries_total{queue="tasks"}`:      float64(put),
			`distq_queue_acks_total{queue="tasks"}`:            float64(put),
			`distq_queue_nacks_total{queue="tasks"}`:           0,
			`distq_queue_redeliveries_total{queue="tasks"}`:    0,
			`distq_queue_leases_expired_total{queue="tasks"}`:  0,
			`distq_queue_settles_refused_total{queue="tasks"}`: 0,
			`distq_queue_dead_lettered_total{queue="tasks"}`:   0,
			`distq_queue_ready{queue="tasks"}`:                 0,
			`distq_queue_leased{queue="tasks"}`:                0,
			`distq_queue_delayed{queue="tasks"}`:               0,
			`distq_queue_dead{queue="tasks"}`:                  0,
			`distq_queue_consumers{queue="tasks"}`:             2,
			`distq_queue_puts_total{queue="results"}`:          float64(put),
			`distq_queue_ready{queue="results"}`:               float64(put),
			`distq_connections_open`:                           3,
			`distq_sessions`:                                   3,
			`distq_grpc_server_started_total{grpc_method="Consume",grpc_service="distq.v1.QueueService",grpc_type="bidi_stream"}`: 2,
		})
		for _, k := range []string{"distq_log_groups_total", "distq_log_group_records_count", "process_resident_memory_bytes", "go_goroutines"} {
			if got[k] <= 0 {
				t.Errorf("master: %s = %v, want more than 0", k, got[k])
			}
		}
		if round == 0 {
			promtoolCheck(t, "master", body)
		}
		run, acked := 0.0, 0.0
		for p, h := range slaves {
			body, got := scrape(t, h)
			if round == 0 && p == a {
				promtoolCheck(t, "slave", body)
			}
			// The handler-time histogram counts each task run once.
			l := `{queue="tasks"}`
			if got["distq_worker_tasks_run_total"+l] != got["distq_worker_handler_duration_seconds_count"+l] {
				t.Errorf("%s: tasks run %v, handler histogram count %v", p.name, got["distq_worker_tasks_run_total"+l], got["distq_worker_handler_duration_seconds_count"+l])
			}
			wantSamples(t, p.name, got, map[string]float64{
				"distq_worker_connected" + l:             1,
				"distq_worker_tasks_failed_total" + l:    0,
				"distq_worker_settles_refused_total" + l: 0,
			})
			run += got["distq_worker_tasks_run_total"+l]
			acked += got["distq_worker_tasks_acked_total"+l]
		}
		// Each handler ran before its ack left the slave, so by Join every
		// run is counted; an ack is counted as it is handed to the sender,
		// which may come a moment after the master applied it: at most.
		if run != float64(put) || acked > float64(put) {
			t.Errorf("round %d: the slaves ran %v tasks and acked %v; want %d run, at most that acked", round+1, run, acked, put)
		}
	}
	// Each slave's counter is what it says it did when it stops.
	for p, h := range slaves {
		_, got := scrape(t, h)
		ran := got[`distq_worker_tasks_run_total{queue="tasks"}`]
		p.signal(syscall.SIGTERM)
		line := p.waitLine("worker stopped", 30*time.Second)
		if want := fmt.Sprintf("processed=%d failed=0", int(ran)); !strings.Contains(line, want) {
			t.Errorf("%s: ran %v by its metrics, stopped with %q; want %q", p.name, ran, line, want)
		}
		if code := p.wait(30 * time.Second); code != 0 {
			t.Errorf("%s exited %d", p.name, code)
		}
	}
}
