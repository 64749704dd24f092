package auth

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/distq/distq/internal/clock"
	"github.com/distq/distq/internal/testlog"
	distqv1 "github.com/distq/distq/proto/distq/v1"
)

// newFakeClock is a clock that moves only when told to, so expiry is
// tested without sleeping.
func newFakeClock() *clock.Manual {
	return clock.NewManual(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
}

func testLogger(t testing.TB) hclog.Logger { return testlog.New(t, t.Name()) }

// testQueue is the guarded service: Stats and Consume record the session the
// interceptor put in their context and then answer Unimplemented, which is
// how a test tells "reached the handler" from "refused by the interceptor".
// With hold set, Consume instead signals started and waits for the stream to
// end.
type testQueue struct {
	distqv1.UnimplementedQueueServiceServer
	lastSession atomic.Value // string
	hold        bool
	started     chan struct{}
}

func (q *testQueue) Stats(ctx context.Context, _ *distqv1.StatsRequest) (*distqv1.StatsResponse, error) {
	id, _ := SessionFromContext(ctx)
	q.lastSession.Store(id)
	return nil, status.Error(codes.Unimplemented, "stats")
}

func (q *testQueue) Consume(stream grpc.BidiStreamingServer[distqv1.ConsumeRequest, distqv1.ConsumeResponse]) error {
	id, _ := SessionFromContext(stream.Context())
	q.lastSession.Store(id)
	if q.hold {
		q.started <- struct{}{}
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	return status.Error(codes.Unimplemented, "consume")
}

// master is a real gRPC server on 127.0.0.1:0 running the auth service, the
// health service and testQueue behind the interceptors.
type master struct {
	clock      *clock.Manual
	auth       *Server
	queue      *testQueue
	addr       string
	challenges atomic.Int64
	logins     atomic.Int64
	// streamDone receives after a guarded stream's interceptors (and so its
	// session release) have returned.
	streamDone chan struct{}
	// beforeLogin, if set, runs before each Login handler.
	beforeLogin func()
}

type masterOption func(*master, *ServerConfig)

func withLogger(l hclog.Logger) masterOption {
	return func(_ *master, c *ServerConfig) { c.Logger = l }
}

func withHold() masterOption {
	return func(m *master, _ *ServerConfig) { m.queue.hold = true }
}

func withBeforeLogin(f func()) masterOption {
	return func(m *master, _ *ServerConfig) { m.beforeLogin = f }
}

func startMaster(t *testing.T, key []byte, opts ...masterOption) *master {
	t.Helper()
	m := &master{
		clock:      newFakeClock(),
		queue:      &testQueue{started: make(chan struct{}, 1)},
		streamDone: make(chan struct{}, 16),
	}
	cfg := ServerConfig{Key: key, Clock: m.clock.Now, Logger: testLogger(t)}
	for _, o := range opts {
		o(m, &cfg)
	}
	auth, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	m.auth = auth
	t.Cleanup(func() { _ = auth.Close() })

	count := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		switch info.FullMethod {
		case distqv1.AuthService_Challenge_FullMethodName:
			m.challenges.Add(1)
		case distqv1.AuthService_Login_FullMethodName:
			m.logins.Add(1)
			if m.beforeLogin != nil {
				m.beforeLogin()
			}
		}
		return h(ctx, req)
	}
	signal := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		defer func() { m.streamDone <- struct{}{} }()
		return h(srv, ss)
	}
	sopts := append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(count),
		grpc.ChainStreamInterceptor(signal),
	}, auth.ServerOptions()...)
	gs := grpc.NewServer(sopts...)
	distqv1.RegisterAuthServiceServer(gs, auth)
	distqv1.RegisterQueueServiceServer(gs, m.queue)
	healthpb.RegisterHealthServer(gs, health.NewServer())

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	m.addr = lis.Addr().String()
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.GracefulStop)
	return m
}

// dial connects to the master, with c as per-call credentials if non-nil.
func dial(t *testing.T, addr string, c *Client) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if c != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(c))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// login returns a client with a session on m, and its connection.
func login(t *testing.T, m *master, key []byte) (*Client, *grpc.ClientConn) {
	t.Helper()
	c, err := NewClient(key)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	conn := dial(t, m.addr, c)
	if err := c.Handshake(t.Context(), conn); err != nil {
		t.Fatalf("Handshake: %v", err)
	}
	return c, conn
}

func stats(ctx context.Context, conn grpc.ClientConnInterface) error {
	_, err := distqv1.NewQueueServiceClient(conn).Stats(ctx, &distqv1.StatsRequest{})
	return err
}

// wantCode fails unless err has status code want.
func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want code %v", got, err, want)
	}
}
