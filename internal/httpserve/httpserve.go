// Package httpserve is the HTTP listener of the master and the slave
// (-http-addr): one bounded http.Server around a mux that the program adds
// its routes to (/metrics, and the master's dashboard). It is off unless the
// operator gives an address, and binds exactly that address: the README
// recommends a loopback one.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/netutil"
)

// Bounds of every connection. There is no write timeout: a handler that
// streams may write for as long as it likes, and a scrape of /metrics is
// small. A request's body is small (the dashboard's actions are bounded
// JSON), so the whole request, headers included, must arrive within
// ReadTimeout.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 16 << 10
	// MaxConns bounds the connections served at once; more wait to be
	// accepted.
	MaxConns = 64
)

// Server serves a mux on one address.
type Server struct {
	mux *http.ServeMux
	srv *http.Server
	lis net.Listener

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// Listen binds addr (host:port; port 0 picks a free one) and starts
// serving mux; flag names the flag that gave addr, for the error. Routes
// may be added to mux until the first request comes in.
func Listen(addr, flag string, mux *http.ServeMux, log hclog.Logger) (*Server, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	s := &Server{
		mux: mux,
		lis: lis,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: ReadHeaderTimeout,
			ReadTimeout:       ReadTimeout,
			IdleTimeout:       IdleTimeout,
			MaxHeaderBytes:    MaxHeaderBytes,
			ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(netutil.LimitListener(lis, MaxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP listener failed", "addr", lis.Addr().String(), "error", err)
		}
	}()
	return s, nil
}

// Addr is the bound address (the real port when addr asked for port 0).
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Shutdown stops accepting, lets requests in progress end until ctx ends,
// then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.Close()
	}
	<-s.done
	return err
}

// Close stops serving at once. Safe to call twice, and after Shutdown.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.srv.Close()
	})
	<-s.done
	return s.closeErr
}
