package main

import (
	"net/http"

	"github.com/hashicorp/go-hclog"

	"github.com/distq/distq/internal/httpserve"
	"github.com/distq/distq/internal/metrics"
)

// EnvHTTPAddr names the environment variable that gives -http-addr.
const EnvHTTPAddr = "DISTQ_HTTP_ADDR"

// serveMetrics registers the worker's collector and serves /metrics on
// addr.
func serveMetrics(addr string, wm *metrics.Worker, log hclog.Logger) (*httpserve.Server, error) {
	reg := metrics.NewRegistry()
	reg.MustRegister(wm)
	mux := http.NewServeMux()
	mux.Handle("GET "+metrics.Path, metrics.Handler(reg))
	hs, err := httpserve.Listen(addr, "-http-addr", mux, log)
	if err != nil {
		return nil, err
	}
	log.Info("serving metrics", "addr", hs.Addr().String(), "path", metrics.Path)
	return hs, nil
}

// both calls a and b (either may be nil).
func both(a, b func(bool)) func(bool) {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func(up bool) { a(up); b(up) }
}
