package main

import (
	"net/http"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/distq/distq/internal/httpserve"
	"github.com/distq/distq/internal/metrics"
	"github.com/distq/distq/internal/server"
	"github.com/distq/distq/internal/wal"
)

// EnvHTTPAddr names the environment variable that gives -http-addr.
const EnvHTTPAddr = "DISTQ_HTTP_ADDR"

// masterMetrics is what -http-addr adds to the master; nil without it, and
// then nothing is measured: every method of a nil *masterMetrics does
// nothing.
type masterMetrics struct {
	reg  *prometheus.Registry
	grpc *grpcprom.ServerMetrics
	log  *metrics.LogGroups
}

func newMasterMetrics(addr string) *masterMetrics {
	if addr == "" {
		return nil
	}
	reg := metrics.NewRegistry()
	gm := grpcprom.NewServerMetrics(
		grpcprom.WithServerCounterOptions(grpcprom.WithNamespace(metrics.Namespace)),
		grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramNamespace(metrics.Namespace)),
	)
	reg.MustRegister(gm)
	return &masterMetrics{reg: reg, grpc: gm}
}

// serverOptions are the gRPC server's metrics interceptors.
func (mm *masterMetrics) serverOptions() []grpc.ServerOption {
	if mm == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(mm.grpc.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(mm.grpc.StreamServerInterceptor()),
	}
}

// onGroup is the durable log's hook, feeding the group histograms.
func (mm *masterMetrics) onGroup() func(wal.Group) {
	if mm == nil {
		return nil
	}
	mm.log = metrics.NewLogGroups(mm.reg)
	return mm.log.Observe
}

// serve registers the master's collector and serves /metrics on addr, and
// the routes that routes adds (the dashboard's), if not nil.
func (mm *masterMetrics) serve(addr string, src metrics.MasterSources, srv *server.Server, routes func(*http.ServeMux), log hclog.Logger) (*httpserve.Server, error) {
	if mm == nil {
		return nil, nil
	}
	mm.grpc.InitializeMetrics(srv)
	mm.reg.MustRegister(metrics.NewMasterCollector(src))
	mux := http.NewServeMux()
	mux.Handle("GET "+metrics.Path, metrics.Handler(mm.reg))
	if routes != nil {
		routes(mux)
	}
	hs, err := httpserve.Listen(addr, "-http-addr", mux, log)
	if err != nil {
		return nil, err
	}
	log.Info("serving metrics", "addr", hs.Addr().String(), "path", metrics.Path)
	return hs, nil
}
