package metrics

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/distq/distq"
	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/server"
	"github.com/distq/distq/internal/wal"
)

// gather scrapes reg into "name{k="v",...}" -> value (a histogram gives
// its _count and _sum).
func gather(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := mf.GetName()
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
				out[key+"_sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func expect(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if v, ok := got[k]; !ok || v != want[k] {
			t.Errorf("%s = %v (present: %v); want %v", k, v, ok, want[k])
		}
	}
}

// lint runs Prometheus's own linter (promtool's rules) over what reg shows.
func lint(t *testing.T, reg prometheus.Gatherer) {
	t.Helper()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// The master's collector shows each queue's Stats, as gauges and
// counters, and moves as the queue does: puts, deliveries, acks with
// replies, a nack that dead-letters, a late ack refused.
func TestMasterCollectorQueues(t *testing.T) {
	b, err := queue.New(queue.Config{Queues: queue.DefaultQueues(), MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tasks, _ := b.Queue("tasks")
	results, _ := b.Queue("results")
	ctx := context.Background()
	msgs := make([]queue.Message, 10)
	for i := range msgs {
		msgs[i].Payload = []byte{byte('0' + i)}
	}
	if _, err := tasks.Put(ctx, msgs, true, 0); err != nil {
		t.Fatal(err)
	}
	ds, err := tasks.Get(ctx, 4, true, 0, false)
	if err != nil || len(ds) != 4 {
		t.Fatalf("get: %d, %v", len(ds), err)
	}
	acks := []queue.Ack{
		{ID: ds[0].ID, Lease: ds[0].Lease, Reply: queue.Message{Payload: []byte("r")}, ReplyQueue: results},
		{ID: ds[1].ID, Lease: ds[1].Lease, Reply: queue.Message{Payload: []byte("r")}, ReplyQueue: results},
	}
	if r := tasks.Ack(acks); len(r) != 0 {
		t.Fatalf("acks refused: %+v", r)
	}
	if r := tasks.Nack([]queue.Nack{{ID: ds[2].ID, Lease: ds[2].Lease, Error: "boom", Action: queue.NackDead}}); len(r) != 0 {
		t.Fatalf("nack refused: %+v", r)
	}
	if r := tasks.Ack(acks[:1]); len(r) != 1 { // settled already: refused
		t.Fatalf("a second ack of the same lease: refusals %+v, want 1", r)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewMasterCollector(MasterSources{
		Queues: b.Queues,
		Conns: func() server.ConnStats {
			return server.ConnStats{Open: 3, Unauthenticated: 1, Accepted: 7, Refused: 1, Evicted: 2, Expired: 3}
		},
		Sessions: func() int { return 2 },
		Refusals: func() map[string]uint64 {
			return map[string]uint64{"login refused: wrong proof (wrong authkey?)": 4, "call refused: too many calls before authentication": 1}
		},
		Log: func() wal.Stats { return wal.Stats{Groups: 5, Bytes: 1000, Syncs: 4, SyncTime: 2 * time.Second} },
	}))
	got := gather(t, reg)
	expect(t, got, map[string]float64{
		`distq_queue_ready{queue="tasks"}`:                                6,
		`distq_queue_leased{queue="tasks"}`:                               1,
		`distq_queue_delayed{queue="tasks"}`:                              0,
		`distq_queue_dead{queue="tasks"}`:                                 1,
		`distq_queue_consumers{queue="tasks"}`:                            0,
		`distq_queue_closed{queue="tasks"}`:                               0,
		`distq_queue_puts_total{queue="tasks"}`:                           10,
		`distq_queue_deliveries_total{queue="tasks"}`:                     4,
		`distq_queue_redeliveries_total{queue="tasks"}`:                   0,
		`distq_queue_acks_total{queue="tasks"}`:                           2,
		`distq_queue_nacks_total{queue="tasks"}`:                          1,
		`distq_queue_dead_lettered_total{queue="tasks"}`:                  1,
		`distq_queue_settles_refused_total{queue="tasks"}`:                1,
		`distq_queue_leases_expired_total{queue="tasks"}`:                 0,
		`distq_queue_puts_total{queue="tasks.dead"}`:                      1,
		`distq_queue_ready{queue="tasks.dead"}`:                           1,
		`distq_queue_puts_total{queue="results"}`:                         2,
		`distq_queue_ready{queue="results"}`:                              2,
		`distq_connections_open`:                                          3,
		`distq_connections_unauthenticated`:                               1,
		`distq_connections_accepted_total`:                                7,
		`distq_connections_closed_by_master_total{reason="max_conns"}`:    1,
		`distq_connections_closed_by_master_total{reason="evicted"}`:      2,
		`distq_connections_closed_by_master_total{reason="auth_timeout"}`: 3,
		`distq_sessions`: 2,
		`distq_refusals_total{event="login refused",reason="wrong proof (wrong authkey?)"}`:        4,
		`distq_refusals_total{event="call refused",reason="too many calls before authentication"}`: 1,
		`distq_log_groups_total`:        5,
		`distq_log_written_bytes_total`: 1000,
		`distq_log_syncs_total`:         4,
		`distq_log_sync_seconds_total`:  2,
	})
	lint(t, reg)

	// The next scrape sees the queue move, with no state of its own.
	if err := tasks.Close(); err != nil {
		t.Fatal(err)
	}
	got = gather(t, reg)
	expect(t, got, map[string]float64{`distq_queue_closed{queue="tasks"}`: 1, `distq_queue_puts_total{queue="tasks"}`: 10})
}

// Without a data dir, or without any source, the collector shows nothing
// of it: no log metrics on a master in memory.
func TestMasterCollectorWithoutSources(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewMasterCollector(MasterSources{Sessions: func() int { return 0 }}))
	got := gather(t, reg)
	if len(got) != 1 {
		t.Fatalf("got %v; want only distq_sessions", got)
	}
}

func TestLogGroups(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	g := NewLogGroups(reg)
	g.Observe(wal.Group{Records: 100, Bytes: 4096, Duration: 2 * time.Millisecond, Synced: true})
	g.Observe(wal.Group{Records: 1, Bytes: 40, Duration: time.Millisecond})
	expect(t, gather(t, reg), map[string]float64{
		"distq_log_group_records_count":          2,
		"distq_log_group_records_sum":            101,
		"distq_log_group_bytes_sum":              4136,
		"distq_log_group_duration_seconds_count": 2,
	})
	lint(t, reg)
}

// The worker's collector shows its Stats at scrape time and a histogram
// that counts each task of a chunk at the chunk's mean.
func TestWorkerCollector(t *testing.T) {
	w := NewWorker("tasks")
	st := distq.WorkerStats{Processed: 7, Failed: 2, Refused: 1, Released: 3, Extended: 4, Abandoned: 5, Reconnects: 6, Held: 8}
	w.Attach(func() distq.WorkerStats { return st })
	w.SetConnected(true)
	w.ObserveHandlers(8, 8*time.Millisecond) // 8 tasks at 1 ms
	w.ObserveHandlers(1, 3*time.Second)      // 1 slow task
	w.ObserveHandlers(0, time.Second)        // nothing ran: ignored
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(w)
	l := `{queue="tasks"}`
	expect(t, gather(t, reg), map[string]float64{
		"distq_worker_tasks_run_total" + l:                     9,
		"distq_worker_tasks_acked_total" + l:                   7,
		"distq_worker_tasks_failed_total" + l:                  2,
		"distq_worker_settles_refused_total" + l:               1,
		"distq_worker_tasks_released_total" + l:                3,
		"distq_worker_leases_extended_total" + l:               4,
		"distq_worker_tasks_abandoned_total" + l:               5,
		"distq_worker_reconnects_total" + l:                    6,
		"distq_worker_tasks_held" + l:                          8,
		"distq_worker_connected" + l:                           1,
		"distq_worker_handler_duration_seconds" + l + "_count": 9,
		"distq_worker_handler_duration_seconds" + l + "_sum":   3.008,
	})
	lint(t, reg)

	// The buckets: 8 at 1 ms (in le=0.00128, not below), 1 at 3 s.
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "distq_worker_handler_duration_seconds" {
			continue
		}
		for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
			want := uint64(0)
			switch le := b.GetUpperBound(); {
			case le >= 3:
				want = 9
			case le >= 0.001:
				want = 8
			}
			if b.GetCumulativeCount() != want {
				t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}
	w.SetConnected(false)
	expect(t, gather(t, reg), map[string]float64{"distq_worker_connected" + l: 0})
}

// A value on a bucket's bound counts in that bucket (le is inclusive).
func TestWeightedHistogramBounds(t *testing.T) {
	h := newWeightedHistogram([]float64{0.001, 0.002})
	h.observeN(time.Millisecond, 1)
	h.observeN(4*time.Millisecond, 2)
	h.observeN(time.Second, 1)
	count, _, b := h.snapshot()
	if count != 4 || b[0.001] != 1 || b[0.002] != 3 {
		t.Fatalf("count %d, buckets %v; want 4, {0.001:1 0.002:3}", count, b)
	}
}
