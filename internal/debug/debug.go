// Package debug serves the Go runtime's profiles (net/http/pprof) on an
// operator-chosen address, off by default, for profiling a live master or
// slave: go tool pprof http://ADDR/debug/pprof/profile.
package debug

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Server is a running debug endpoint.
type Server struct {
	srv *http.Server
	lis net.Listener
}

// Listen binds addr and serves the profiles until Close.
func Listen(addr string) (*Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-debug-addr %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, lis: lis}
	// Profiles are best effort: if serving fails, there is nothing to do
	// but go without them.
	go s.srv.Serve(lis) //nolint:errcheck

	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Close stops serving. Safe to call twice.
func (s *Server) Close() error {
	err := s.srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
