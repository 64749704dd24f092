// Package metrics is what the master and the slave show Prometheus at
// /metrics (-http-addr): collectors that read the counters the broker, the
// gRPC edge and the worker already keep, at scrape time, so that the hot
// path pays nothing for them; histograms fed once per group of the log or
// per chunk of tasks, never per item; gRPC server metrics; and the Go
// runtime and process collectors.
//
// Every name starts with distq_, counters end in _total and durations and
// sizes are in seconds and bytes. No metric carries a payload, a header or
// a peer's address: only queue names, gRPC method names and the master's
// own fixed refusal reasons appear as label values.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace is every metric's prefix.
const Namespace = "distq"

// Path is where the metrics are served.
const Path = "/metrics"

// NewRegistry returns a registry holding the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves reg's metrics in the text or protobuf exposition format.
// At most a few scrapes run at once; a scrape that takes longer than 10 s
// is answered with 503.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

func name(sub, n string) string { return prometheus.BuildFQName(Namespace, sub, n) }
