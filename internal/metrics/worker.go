package metrics

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/distq/distq"
)

// HandlerBuckets are the upper bounds, in seconds, of the handler-time
// histogram: 10 µs to about 84 s, doubling.
var HandlerBuckets = prometheus.ExponentialBuckets(10e-6, 2, 24)

// Worker shows a worker's counters (distq.Worker.Stats, read at scrape
// time) and its handler time, fed by WorkerConfig.ObserveHandlers once per
// chunk of tasks. Labels: the queue it takes tasks from.
type Worker struct {
	stats     func() distq.WorkerStats
	connected atomic.Bool
	handlers  *weightedHistogram
	descs     workerDescs
}

type workerDescs struct {
	run, acked, failed, refused, released, extended, abandoned, reconnects, held, connected, seconds *prometheus.Desc
}

var _ prometheus.Collector = (*Worker)(nil)

// NewWorker returns the collector of a worker taking tasks from queue.
// Give its ObserveHandlers and SetConnected to the WorkerConfig, then
// Attach the worker's Stats.
func NewWorker(queue string) *Worker {
	l := prometheus.Labels{"queue": queue}
	d := func(n, help string) *prometheus.Desc { return prometheus.NewDesc(name("worker", n), help, nil, l) }
	return &Worker{
		handlers: newWeightedHistogram(HandlerBuckets),
		descs: workerDescs{
			run:        d("tasks_run_total", "Tasks whose handler ran (returned a reply or an error, or panicked)."),
			acked:      d("tasks_acked_total", "Tasks whose handler returned a reply and whose ack was sent to the master."),
			failed:     d("tasks_failed_total", "Tasks whose handler returned an error (nacked: retried, or dead-lettered if permanent)."),
			refused:    d("settles_refused_total", "Acks and nacks the master refused: the lease was lost (expired, or the master restarted), and the task was or will be done elsewhere."),
			released:   d("tasks_released_total", "Tasks handed back unstarted (at shutdown)."),
			extended:   d("leases_extended_total", "Lease extensions the worker sent by itself for tasks it held."),
			abandoned:  d("tasks_abandoned_total", "Tasks held past -max-hold, whose leases the worker let run out."),
			reconnects: d("reconnects_total", "Times the worker's stream to the master ended and it connected again."),
			held:       d("tasks_held", "Deliveries held now: received and not yet settled, running or waiting to run."),
			connected:  d("connected", "1 while a stream to the master is open, else 0."),
			seconds: d("handler_duration_seconds",
				"Time a handler takes per task. Measured per chunk of tasks run one after the other (the chunk's time, divided among its tasks), so fast tasks count at their chunk's mean."),
		},
	}
}

// Attach gives the collector the worker's counters.
func (m *Worker) Attach(stats func() distq.WorkerStats) { m.stats = stats }

// ObserveHandlers records n handlers that took d together: it is
// WorkerConfig.ObserveHandlers.
func (m *Worker) ObserveHandlers(n int, d time.Duration) { m.handlers.observeN(d, n) }

// SetConnected records whether a stream is open: it is
// WorkerConfig.OnConnection.
func (m *Worker) SetConnected(up bool) { m.connected.Store(up) }

// Describe sends the collector's descriptors.
func (m *Worker) Describe(ch chan<- *prometheus.Desc) {
	d := &m.descs
	for _, x := range []*prometheus.Desc{d.run, d.acked, d.failed, d.refused, d.released, d.extended, d.abandoned, d.reconnects, d.held, d.connected, d.seconds} {
		ch <- x
	}
}

// Collect reads the worker's counters and the histogram.
func (m *Worker) Collect(ch chan<- prometheus.Metric) {
	d := &m.descs
	count, sum, buckets := m.handlers.snapshot()
	ch <- prometheus.MustNewConstMetric(d.run, prometheus.CounterValue, float64(count))
	ch <- prometheus.MustNewConstHistogram(d.seconds, count, sum, buckets)
	up := 0.0
	if m.connected.Load() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(d.connected, prometheus.GaugeValue, up)
	if m.stats == nil {
		return
	}
	st := m.stats()
	for _, c := range []struct {
		d *prometheus.Desc
		v uint64
	}{
		{d.acked, st.Processed}, {d.failed, st.Failed}, {d.refused, st.Refused}, {d.released, st.Released},
		{d.extended, st.Extended}, {d.abandoned, st.Abandoned}, {d.reconnects, st.Reconnects},
	} {
		ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, float64(c.v))
	}
	ch <- prometheus.MustNewConstMetric(d.held, prometheus.GaugeValue, float64(st.Held))
}

// weightedHistogram counts n observations of one value in one step:
// Prometheus's own Histogram observes one value at a time, and a chunk of
// n tasks would cost n calls. Lock-free; a scrape during an observation
// may see its count before its bucket, which the next scrape mends.
type weightedHistogram struct {
	bounds []float64       // upper bounds, increasing, seconds
	counts []atomic.Uint64 // per bucket (not cumulative); the last is +Inf
	count  atomic.Uint64
	nanos  atomic.Uint64 // sum of the observed durations
}

func newWeightedHistogram(bounds []float64) *weightedHistogram {
	return &weightedHistogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// observeN records n observations of d/n (n tasks that took d together).
func (h *weightedHistogram) observeN(d time.Duration, n int) {
	if n <= 0 {
		return
	}
	d = max(d, 0)
	per := d.Seconds() / float64(n)
	i := sort.SearchFloat64s(h.bounds, per) // first bound >= per: le is inclusive
	h.counts[i].Add(uint64(n))
	h.nanos.Add(uint64(d))
	h.count.Add(uint64(n))
}

// snapshot returns the count, the sum in seconds and the cumulative
// bucket counts by upper bound. The count is the buckets' sum, so that
// the histogram is always consistent.
func (h *weightedHistogram) snapshot() (count uint64, sum float64, buckets map[float64]uint64) {
	buckets = make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		buckets[b] = cum
	}
	cum += h.counts[len(h.bounds)].Load()
	return cum, time.Duration(h.nanos.Load()).Seconds(), buckets
}
