package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/server"
	"github.com/distq/distq/internal/wal"
)

// MasterSources are where the master's collector reads its figures, at
// scrape time. Nil fields are left out.
type MasterSources struct {
	// Queues lists the queues whose Stats are shown (Broker.Queues).
	Queues func() []*queue.Queue
	// Conns reports the connection guard's gauges and counters (Server.Conns).
	Conns func() server.ConnStats
	// Sessions reports the sessions held (auth.Server.Sessions).
	Sessions func() int
	// Refusals reports every refusal since the start by "event: reason"
	// (ratelog.Log.Totals); the events and reasons are the master's own
	// fixed strings.
	Refusals func() map[string]uint64
	// Log reports the durable log's counters (durable.Store.Stats); nil
	// without -data-dir.
	Log func() wal.Stats
}

// MasterCollector shows the master's queues, connections, sessions,
// refusals and log counters. It keeps nothing of its own: each scrape
// reads the sources, which take the locks they already take for Stats
// once per queue.
type MasterCollector struct {
	src MasterSources
}

var _ prometheus.Collector = (*MasterCollector)(nil)

// NewMasterCollector returns a collector over src.
func NewMasterCollector(src MasterSources) *MasterCollector { return &MasterCollector{src: src} }

var queueLabel = []string{"queue"}

// A queue's gauges and counters, from queue.Stats.
var queueMetrics = []struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	val  func(*queue.Stats) float64
}{
	{qdesc("ready", "Items ready for delivery."), prometheus.GaugeValue, func(s *queue.Stats) float64 { return float64(s.Ready) }},
	{qdesc("leased", "Items delivered and not yet settled (in flight under a lease)."), prometheus.GaugeValue, func(s *queue.Stats) float64 { return float64(s.Leased) }},
	{qdesc("delayed", "Items failed and waiting out their retry backoff (not ready, not finished)."), prometheus.GaugeValue, func(s *queue.Stats) float64 { return float64(s.Delayed) }},
	{qdesc("dead", "Items in the queue's dead-letter queue (<queue>.dead); 0 for a dead-letter queue itself."), prometheus.GaugeValue, func(s *queue.Stats) float64 { return float64(s.Dead) }},
	{qdesc("consumers", "Consume streams reading the queue."), prometheus.GaugeValue, func(s *queue.Stats) float64 { return float64(s.Consumers) }},
	{qdesc("max_size", "Bound on the queue's ready items; 0: unbounded."), prometheus.GaugeValue, func(s *queue.Stats) float64 { return float64(s.MaxSize) }},
	{qdesc("closed", "1 once the queue is closed to puts, else 0."), prometheus.GaugeValue, func(s *queue.Stats) float64 {
		if s.Closed {
			return 1
		}
		return 0
	}},
	{qdesc("paused", "1 while delivery from the queue is paused (it still takes puts), else 0."), prometheus.GaugeValue, func(s *queue.Stats) float64 {
		if s.Paused {
			return 1
		}
		return 0
	}},
	{qdesc("puts_total", "Items put into the queue (for a dead-letter queue: items dead-lettered into it; for a reply queue: replies put with acks)."), prometheus.CounterValue, func(s *queue.Stats) float64 { return float64(s.PutTotal) }},
	{qdesc("deliveries_total", "Deliveries of items, first ones and redeliveries."), prometheus.CounterValue, func(s *queue.Stats) float64 { return float64(s.DeliveredTotal) }},
	{qdesc("redeliveries_total", "Deliveries of items delivered before (after a nack, an expired lease or a lost consumer)."), prometheus.CounterValue, func(s *queue.Stats) float64 { return float64(s.RedeliveredTotal) }},
	{qdesc("acks_total", "Deliveries acknowledged (settled as done)."), prometheus.CounterValue, func(s *queue.Stats) float64 { return float64(s.AckedTotal) }},
	{qdesc("nacks_total", "Deliveries nacked (failed by their consumer, or handed back)."), prometheus.CounterValue, func(s *queue.Stats) float64 { return float64(s.NackedTotal) }},
	{qdesc("leases_expired_total", "Leases that ran out before their item was settled; the item went back to the queue."), prometheus.CounterValue, func(s *queue.Stats) float64 { return float64(s.ExpiredTotal) }},
	{qdesc("settles_refused_total", "Acks, nacks and extends refused: late ones, whose lease was no longer held (it expired, or was of another run of the master), and the few that could not be done (reply queue closed, log failing)."), prometheus.CounterValue, func(s *queue.Stats) float64 { return float64(s.RefusedTotal) }},
	{qdesc("purged_total", "Items removed by a purge (ready and delayed ones; of a dead-letter queue, its dead items)."), prometheus.CounterValue, func(s *queue.Stats) float64 { return float64(s.PurgedTotal) }},
	{qdesc("dead_lettered_total", "Items moved from the queue to its dead-letter queue (out of attempts, or failed permanently)."), prometheus.CounterValue, func(s *queue.Stats) float64 { return float64(s.DeadTotal) }},
}

func qdesc(n, help string) *prometheus.Desc {
	return prometheus.NewDesc(name("queue", n), help, queueLabel, nil)
}

var (
	connOpenDesc     = prometheus.NewDesc(name("connections", "open"), "Connections open now.", nil, nil)
	connUnauthDesc   = prometheus.NewDesc(name("connections", "unauthenticated"), "Open connections not yet authenticated.", nil, nil)
	connAcceptedDesc = prometheus.NewDesc(name("connections", "accepted_total"), "Connections let through since the start.", nil, nil)
	connClosedDesc   = prometheus.NewDesc(name("connections", "closed_by_master_total"),
		"Connections the master closed itself, by reason: max_conns (refused at accept, every connection authenticated), evicted (to make room for a new one), auth_timeout (not authenticated within -auth-timeout).",
		[]string{"reason"}, nil)
	sessionsDesc = prometheus.NewDesc(name("", "sessions"), "Sessions (logins) held now.", nil, nil)
	refusalsDesc = prometheus.NewDesc(name("", "refusals_total"),
		"Refusals since the start, by what was refused (login refused, call refused, connection closed, settles refused, ...) and why; each is one logged or counted refusal event, as the refusal log counts them.",
		[]string{"event", "reason"}, nil)
	logSyncsDesc       = prometheus.NewDesc(name("log", "syncs_total"), "fdatasync rounds of the durable log.", nil, nil)
	logSyncSecondsDesc = prometheus.NewDesc(name("log", "sync_seconds_total"), "Time spent in the durable log's fdatasync rounds.", nil, nil)
	logBytesDesc       = prometheus.NewDesc(name("log", "written_bytes_total"), "Bytes of records written to the durable log.", nil, nil)
	logGroupsDesc      = prometheus.NewDesc(name("log", "groups_total"), "Groups written to the durable log (one write each, and with -fsync always one fdatasync).", nil, nil)
	logErrorsDesc      = prometheus.NewDesc(name("log", "write_errors_total"), "Failed writes and syncs of the durable log (each retried until it works).", nil, nil)
)

// Describe sends every descriptor the collector may send.
func (c *MasterCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.src.Queues != nil {
		for _, m := range queueMetrics {
			ch <- m.desc
		}
	}
	if c.src.Conns != nil {
		ch <- connOpenDesc
		ch <- connUnauthDesc
		ch <- connAcceptedDesc
		ch <- connClosedDesc
	}
	if c.src.Sessions != nil {
		ch <- sessionsDesc
	}
	if c.src.Refusals != nil {
		ch <- refusalsDesc
	}
	if c.src.Log != nil {
		ch <- logSyncsDesc
		ch <- logSyncSecondsDesc
		ch <- logBytesDesc
		ch <- logGroupsDesc
		ch <- logErrorsDesc
	}
}

// Collect reads the sources.
func (c *MasterCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Queues != nil {
		for _, q := range c.src.Queues() {
			st := q.Stats()
			for _, m := range queueMetrics {
				ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.val(&st), st.Name)
			}
		}
	}
	if c.src.Conns != nil {
		cs := c.src.Conns()
		ch <- prometheus.MustNewConstMetric(connOpenDesc, prometheus.GaugeValue, float64(cs.Open))
		ch <- prometheus.MustNewConstMetric(connUnauthDesc, prometheus.GaugeValue, float64(cs.Unauthenticated))
		ch <- prometheus.MustNewConstMetric(connAcceptedDesc, prometheus.CounterValue, float64(cs.Accepted))
		ch <- prometheus.MustNewConstMetric(connClosedDesc, prometheus.CounterValue, float64(cs.Refused), "max_conns")
		ch <- prometheus.MustNewConstMetric(connClosedDesc, prometheus.CounterValue, float64(cs.Evicted), "evicted")
		ch <- prometheus.MustNewConstMetric(connClosedDesc, prometheus.CounterValue, float64(cs.Expired), "auth_timeout")
	}
	if c.src.Sessions != nil {
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(c.src.Sessions()))
	}
	if c.src.Refusals != nil {
		for key, n := range c.src.Refusals() {
			// The events are the master's own words and hold no ": ".
			event, reason, _ := strings.Cut(key, ": ")
			ch <- prometheus.MustNewConstMetric(refusalsDesc, prometheus.CounterValue, float64(n), event, reason)
		}
	}
	if c.src.Log != nil {
		st := c.src.Log()
		ch <- prometheus.MustNewConstMetric(logSyncsDesc, prometheus.CounterValue, float64(st.Syncs))
		ch <- prometheus.MustNewConstMetric(logSyncSecondsDesc, prometheus.CounterValue, st.SyncTime.Seconds())
		ch <- prometheus.MustNewConstMetric(logBytesDesc, prometheus.CounterValue, float64(st.Bytes))
		ch <- prometheus.MustNewConstMetric(logGroupsDesc, prometheus.CounterValue, float64(st.Groups))
		ch <- prometheus.MustNewConstMetric(logErrorsDesc, prometheus.CounterValue, float64(st.WriteErrors))
	}
}

// LogGroups are histograms of the durable log's groups, fed by
// wal.Options.OnGroup: one call per group, never per record.
type LogGroups struct {
	seconds, records, bytes prometheus.Histogram
}

// NewLogGroups makes the histograms and registers them with reg.
func NewLogGroups(reg prometheus.Registerer) *LogGroups {
	g := &LogGroups{
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "log", Name: "group_duration_seconds",
			Help:    "Time to write one group of records to the durable log and, with -fsync always, fdatasync it: the sync latency every answer waits for.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16), // 50 µs .. 1.6 s
		}),
		records: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "log", Name: "group_records",
			Help:    "Records per group written to the durable log (group commit: one write and sync for all of them).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10), // 1 .. 262144
		}),
		bytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "log", Name: "group_bytes",
			Help:    "Bytes per group written to the durable log.",
			Buckets: prometheus.ExponentialBuckets(64, 4, 10), // 64 B .. 16 MiB
		}),
	}
	reg.MustRegister(g.seconds, g.records, g.bytes)
	return g
}

// Observe records one group; it is wal.Options.OnGroup.
func (g *LogGroups) Observe(w wal.Group) {
	g.seconds.Observe(w.Duration.Seconds())
	g.records.Observe(float64(w.Records))
	g.bytes.Observe(float64(w.Bytes))
}
