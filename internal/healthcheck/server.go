package healthcheck

import (
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Server serves only the gRPC health service, for a program (the slave)
// that serves nothing else but should still answer -healthcheck probes.
type Server struct {
	lis    net.Listener
	grpc   *grpc.Server
	health *health.Server
}

// Listen binds addr and serves health checks, reporting NOT_SERVING until
// SetServing(true).
func Listen(addr string) (*Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-health-addr %q: %w", addr, err)
	}
	s := &Server{lis: lis, grpc: grpc.NewServer(), health: health.NewServer()}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	// If serving fails, probes fail, which is the right signal.
	go s.grpc.Serve(lis) //nolint:errcheck

	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// SetServing sets the reported status.
func (s *Server) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
}

// Close stops serving. Safe to call twice.
func (s *Server) Close() error {
	s.grpc.Stop()
	return nil
}
