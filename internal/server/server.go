// Package server is the master's gRPC edge: it serves the broker's queues and
// the authkey handshake, maps core errors to status codes, and owns the
// listener, keepalive policy, TLS and the shutdown sequence.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/ratelog"
	"github.com/distq/distq/internal/window"
	pb "github.com/distq/distq/proto/distq/v1"
)

// DefaultMaxMessageSize bounds every message a peer may send (4 MiB, gRPC's
// own default): larger ones are refused with RESOURCE_EXHAUSTED.
const DefaultMaxMessageSize = 4 << 20

// Defaults of the bounds on what peers may hold (Config). They are far
// above what real workloads use: a slave holds one connection, one session
// and one Consume stream; a producer one Put stream per queue.
const (
	DefaultMaxConns       = 16384
	DefaultMaxUnauthConns = 1024
	DefaultAuthTimeout    = 10 * time.Second
	DefaultMaxStreams     = 1024
	DefaultMaxWaits       = 4096
)

// The master's keepalive. Every ping costs both ends a wake-up, a frame
// and a system call each way, per connection: at the 10 s both ends used
// before, 10,000 idle slaves cost the master 4.9 % of a core and their own
// processes 6.5 %, nearly all of it pings (the benchmark's idle scenario).
// Now the Go client pings (every 60 s, client.go) and the master does not,
// as long as the client does: a ping it receives is read activity, which
// restarts its own wait. It pings only peers silent for 2 min (clients
// without a keepalive of their own), and drops those that do not answer in
// 20 s. A slave cut off by the network loses its leases when they expire
// (the lease time, 30 s by default), not sooner; its connection goes within
// DefaultKeepaliveTime + DefaultKeepaliveTimeout.
const (
	DefaultKeepaliveTime    = 2 * time.Minute
	DefaultKeepaliveTimeout = 20 * time.Second
)

// minClientPing is the most often a client may ping an idle connection
// without being sent away (GOAWAY "too_many_pings"): every 5 s, so that
// clients of earlier versions, which pinged every 10 s, stay welcome.
const minClientPing = 5 * time.Second

// quickCallSlack is how many calls a connection may have open at once
// beyond its streams and waiting calls (HTTP/2's MaxConcurrentStreams is
// their sum plus this): room for quick calls, which a client queues, not
// fails, past gRPC's limit.
const quickCallSlack = 1024

// maxHeaderListSize bounds a call's headers (16 KiB).
const maxHeaderListSize = 16 << 10

// Config configures a Server.
type Config struct {
	// Listen is the address to bind, e.g. ":4000" or "127.0.0.1:0".
	// Ignored when Listener is set.
	Listen string
	// Listener, if set, is used instead of binding Listen.
	Listener net.Listener
	// Broker holds the queues. Required.
	Broker *queue.Broker
	// Auth verifies the authkey. Required.
	Auth *auth.Server
	// TLS, if set, encrypts every connection. Without it payloads travel in
	// clear text (the authkey itself never does).
	TLS *tls.Config
	// MaxMessageSize bounds received messages. Default DefaultMaxMessageSize.
	MaxMessageSize int
	// KeepaliveTime is how long a connection may be silent before the
	// master pings the peer; KeepaliveTimeout how long it waits for the
	// answer before it drops the connection and returns the peer's leases.
	// Defaults DefaultKeepaliveTime and DefaultKeepaliveTimeout.
	KeepaliveTime, KeepaliveTimeout time.Duration
	// MaxConns bounds the open connections, MaxUnauthConns those not yet
	// authenticated among them (see connGuard), and AuthTimeout how long a
	// connection may stay unauthenticated before it is closed. Defaults
	// DefaultMaxConns, DefaultMaxUnauthConns, DefaultAuthTimeout.
	MaxConns, MaxUnauthConns int
	AuthTimeout              time.Duration
	// MaxStreams bounds the open Consume, Put and GetStream streams, and MaxWaits the
	// calls waiting (for items, room or a join), per connection and per
	// session. Defaults DefaultMaxStreams and DefaultMaxWaits.
	MaxStreams, MaxWaits int
	// Refusals logs refused connections and calls at a bounded rate; share
	// it with the auth service. Default: one of its own over Logger.
	Refusals *ratelog.Log
	// Logger. Default: a null logger.
	Logger hclog.Logger
	// Options are more gRPC server options, applied before the server's
	// own: interceptors given here run outside its own (gRPC metrics see
	// every call that gets past the tap, refused or not).
	Options []grpc.ServerOption
}

// Server serves the queues over gRPC.
type Server struct {
	cfg    Config
	log    hclog.Logger
	lis    *connGuard
	grpc   *grpc.Server
	health *health.Server

	closeOnce sync.Once
}

// New validates cfg and binds the listener; call Serve to start serving.
func New(cfg Config) (*Server, error) {
	if cfg.Broker == nil || cfg.Auth == nil {
		return nil, errors.New("server: Broker and Auth are required")
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxMessageSize < 1024 || cfg.MaxMessageSize > 1<<30 {
		return nil, fmt.Errorf("server: max message size %d out of range [1 KiB, 1 GiB]", cfg.MaxMessageSize)
	}
	if cfg.KeepaliveTime == 0 {
		cfg.KeepaliveTime = DefaultKeepaliveTime
	}
	if cfg.KeepaliveTimeout == 0 {
		cfg.KeepaliveTimeout = DefaultKeepaliveTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	for _, d := range []struct {
		v    *int
		def  int
		name string
	}{
		{&cfg.MaxConns, DefaultMaxConns, "max conns"},
		{&cfg.MaxUnauthConns, DefaultMaxUnauthConns, "max unauthenticated conns"},
		{&cfg.MaxStreams, DefaultMaxStreams, "max streams"},
		{&cfg.MaxWaits, DefaultMaxWaits, "max waits"},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 1 || *d.v > 1<<24 {
			return nil, fmt.Errorf("server: %s %d out of range [1, %d]", d.name, *d.v, 1<<24)
		}
	}
	if cfg.AuthTimeout == 0 {
		cfg.AuthTimeout = DefaultAuthTimeout
	}
	if cfg.AuthTimeout < 10*time.Millisecond || cfg.AuthTimeout > time.Hour {
		return nil, fmt.Errorf("server: auth timeout %v out of range [10ms, 1h]", cfg.AuthTimeout)
	}
	if cfg.Refusals == nil {
		cfg.Refusals = ratelog.New(cfg.Logger, ratelog.Config{What: "refusals"})
	}
	lis := cfg.Listener
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("server: listen on %q: %w", cfg.Listen, err)
		}
	}
	guard := newConnGuard(lis, cfg.MaxConns, cfg.MaxUnauthConns, cfg.AuthTimeout, cfg.Refusals)
	limits := newLimiter(cfg.MaxStreams, cfg.MaxWaits, cfg.Refusals)
	opts := []grpc.ServerOption{
		// The auth service's tap checks every call's credentials as its
		// headers arrive; the guard's, around it, tracks the connection.
		grpc.InTapHandle(guard.tap(cfg.Auth.TapHandle)),
		grpc.ChainUnaryInterceptor(cfg.Auth.UnaryInterceptor(), markLogin),
		grpc.ChainStreamInterceptor(cfg.Auth.StreamInterceptor(), limits.streamInterceptor()),
		grpc.StatsHandler(guard),
		grpc.MaxConcurrentStreams(uint32(cfg.MaxStreams + cfg.MaxWaits + quickCallSlack)),
		// Far above what distq's calls carry (a few hundred bytes), far
		// below gRPC's 16 MiB default: headers are read before the tap.
		grpc.MaxHeaderListSize(maxHeaderListSize),
		grpc.MaxRecvMsgSize(cfg.MaxMessageSize),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    cfg.KeepaliveTime,
			Timeout: cfg.KeepaliveTimeout,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             min(cfg.KeepaliveTime/2, minClientPing),
			PermitWithoutStream: true,
		}),
	}
	opts = append(opts, window.ServerOptions()...)
	opts = append(slices.Clip(cfg.Options), opts...)
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger,
		lis:    guard,
		grpc:   grpc.NewServer(opts...),
		health: health.NewServer(),
	}
	pb.RegisterAuthServiceServer(s.grpc, cfg.Auth)
	pb.RegisterQueueServiceServer(s.grpc, &queueService{
		broker:   cfg.Broker,
		log:      cfg.Logger.Named("queues"),
		limits:   limits,
		refusals: cfg.Refusals,
	})
	pb.RegisterAdminServiceServer(s.grpc, &adminService{
		broker: cfg.Broker,
		log:    cfg.Logger.Named("admin"),
	})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	return s, nil
}

// Addr is the bound address (the real port when Listen asked for port 0).
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Conns reports the master's connections: open now, and what the guard did
// with them since the start.
func (s *Server) Conns() ConnStats { return s.lis.stats() }

// Serve serves until Shutdown or Close; it returns nil after either.
func (s *Server) Serve() error {
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	err := s.grpc.Serve(s.lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown stops handing out work, gives consumers until ctx ends to settle
// what they hold, then stops the server: gracefully if the remaining calls
// end within a second, forcibly otherwise. Leases still held at the end go
// back to their queues.
func (s *Server) Shutdown(ctx context.Context) {
	s.health.Shutdown()
	s.cfg.Broker.Drain()
	if !s.cfg.Broker.WaitSettled(ctx) {
		s.log.Warn("shutdown grace ran out with leases outstanding; they return to their queues")
	}
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		s.grpc.Stop()
		<-stopped
	}
	s.closeListener()
}

// Close stops the server at once. Safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.health.Shutdown()
		s.grpc.Stop()
		s.closeListener()
	})
	return nil
}

// closeListener releases the port that New bound. grpc's Stop closes only
// the listeners that Serve was given, so without this a server that was
// created and then closed before Serve ran kept its port bound for the life
// of the process (and a master restarted on the same address could not
// bind). Closing a listener that Stop already closed is harmless.
func (s *Server) closeListener() { _ = s.lis.Close() }
