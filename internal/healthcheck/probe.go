// Package healthcheck is the client side of the -healthcheck mode of the
// binaries: it asks a gRPC health service whether it is serving, so that a
// container built FROM scratch, with no shell and no curl, can check itself.
package healthcheck

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// LocalAddr turns a listen address such as ":4000" or "0.0.0.0:4000" into
// one a probe on the same host can dial.
func LocalAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("health check address %q: %w", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Probe asks the health service at addr for its overall status and returns
// nil when it is SERVING. With useTLS the connection is encrypted but the
// certificate is not verified: the probe runs next to the server it checks
// and learns nothing secret.
func Probe(ctx context.Context, addr string, useTLS bool, timeout time.Duration) error {
	creds := insecure.NewCredentials()
	if useTLS {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // local liveness probe
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("health check of %s: %w", addr, err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health check of %s: %s", addr, s)
	}
	return nil
}
