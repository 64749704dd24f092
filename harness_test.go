package distq

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/server"
	"github.com/distq/distq/internal/testlog"

	"github.com/distq/distq/internal/clock"
)

var testKey = []byte("client-test-authkey")

func testLogger(t testing.TB, name string) hclog.Logger { return testlog.New(t, name) }

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type masterConfig struct {
	Queues         []queue.QueueConfig
	LeaseTime      time.Duration
	MaxAttempts    int
	RetryMin       time.Duration
	RetryMax       time.Duration
	Clock          *clock.Manual // set: no scan loop; call ExpireLeases, PromoteDelayed
	MaxMessageSize int
	Listen         string // default 127.0.0.1:0
}

// testMaster is an in-process master on a loopback port.
type testMaster struct {
	t      testing.TB
	broker *queue.Broker
	auth   *auth.Server
	srv    *server.Server
	addr   string

	served   chan struct{}
	serveErr error
	stopOnce sync.Once
}

func startMaster(t testing.TB, mc masterConfig) *testMaster {
	t.Helper()
	log := testLogger(t, "master")
	qcfg := queue.Config{Queues: mc.Queues, LeaseTime: mc.LeaseTime, MaxAttempts: mc.MaxAttempts,
		RetryMin: mc.RetryMin, RetryMax: mc.RetryMax, Logger: log.Named("broker")}
	if mc.Clock != nil {
		qcfg.Clock = mc.Clock
		qcfg.ManualScan = true
	}
	b, err := queue.New(qcfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewServer(auth.ServerConfig{Key: testKey, Logger: log.Named("auth")})
	if err != nil {
		t.Fatal(err)
	}
	if mc.Listen == "" {
		mc.Listen = "127.0.0.1:0"
	}
	srv, err := server.New(server.Config{Listen: mc.Listen, Broker: b, Auth: a, MaxMessageSize: mc.MaxMessageSize, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	m := &testMaster{t: t, broker: b, auth: a, srv: srv, addr: srv.Addr().String(), served: make(chan struct{})}
	go func() {
		m.serveErr = srv.Serve()
		close(m.served)
	}()
	t.Cleanup(m.stop)
	return m
}

// stop closes the master at once, as a crash would, and waits for Serve.
func (m *testMaster) stop() {
	m.stopOnce.Do(func() {
		m.srv.Close()
		select {
		case <-m.served:
		case <-time.After(10 * time.Second):
			m.t.Error("Serve did not return")
		}
		if m.serveErr != nil {
			m.t.Errorf("Serve: %v", m.serveErr)
		}
		m.broker.Close()
		m.auth.Close()
	})
}

func (m *testMaster) stats(name string) queue.Stats {
	m.t.Helper()
	q, err := m.broker.Queue(name)
	if err != nil {
		m.t.Fatal(err)
	}
	return q.Stats()
}

// fastReconnect makes the connection retry a lost master within
// milliseconds instead of gRPC's default second and more.
var fastReconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 5 * time.Millisecond, Multiplier: 1.6, MaxDelay: 50 * time.Millisecond},
	MinConnectTimeout: time.Second,
})

// dial connects an authenticated client, closed by t.Cleanup.
func (m *testMaster) dial(t testing.TB, extra ...grpc.DialOption) *Client {
	t.Helper()
	opts := Options{AuthKey: testKey, Logger: testLogger(t, "client"), DialOptions: append([]grpc.DialOption{fastReconnect}, extra...)}
	c, err := Dial(testContext(t), m.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls observable state where no event tells when it changes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// running is a worker whose Run is going on in its own goroutine.
type running struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// runWorker starts w.Run; t.Cleanup stops it.
func runWorker(t testing.TB, w *Worker) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = w.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// wait waits for Run to return by itself and returns its error.
func (r *running) wait() error {
	r.t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(20 * time.Second):
		r.t.Fatal("Run did not return")
		return nil
	}
}

// stop cancels Run's context and returns what Run returned.
func (r *running) stop() error {
	r.cancel()
	return r.wait()
}
