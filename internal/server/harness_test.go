package server

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/testlog"
	pb "github.com/distq/distq/proto/distq/v1"

	"github.com/distq/distq/internal/clock"
)

var testKey = []byte("server-test-authkey")

func testLogger(t testing.TB) hclog.Logger { return testlog.New(t, "master") }

// testContext bounds a test: nothing in it should take anywhere near this.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// masterConfig selects what a test needs; zero fields take the defaults.
type masterConfig struct {
	Queues         []queue.QueueConfig
	LeaseTime      time.Duration
	MaxAttempts    int
	RetryMin       time.Duration
	RetryMax       time.Duration
	Clock          *clock.Manual // set: no scan loop; call ExpireLeases, PromoteDelayed
	MaxMessageSize int
	Journal        queue.Journal // set: a durable broker logging to it
}

// master is an in-process master: broker, auth server and gRPC server on a
// loopback port, stopped by t.Cleanup.
type master struct {
	t      testing.TB
	broker *queue.Broker
	auth   *auth.Server
	srv    *Server
	addr   string

	served   chan struct{}
	serveErr error
	stopOnce sync.Once
}

func startMaster(t testing.TB, mc masterConfig) *master {
	t.Helper()
	log := testLogger(t)
	qcfg := queue.Config{Queues: mc.Queues, LeaseTime: mc.LeaseTime, MaxAttempts: mc.MaxAttempts,
		RetryMin: mc.RetryMin, RetryMax: mc.RetryMax, Logger: log.Named("broker"), Journal: mc.Journal}
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
	srv, err := New(Config{Listen: "127.0.0.1:0", Broker: b, Auth: a, MaxMessageSize: mc.MaxMessageSize, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	m := &master{t: t, broker: b, auth: a, srv: srv, addr: srv.Addr().String(), served: make(chan struct{})}
	go func() {
		m.serveErr = srv.Serve()
		close(m.served)
	}()
	t.Cleanup(m.stop)
	return m
}

// waitServed waits for Serve to return and checks that it returned nil.
func (m *master) waitServed() {
	m.t.Helper()
	select {
	case <-m.served:
	case <-time.After(10 * time.Second):
		m.t.Fatal("Serve did not return")
	}
	if m.serveErr != nil {
		m.t.Errorf("Serve: %v", m.serveErr)
	}
}

func (m *master) stop() {
	m.stopOnce.Do(func() {
		m.srv.Close()
		m.waitServed()
		m.broker.Close()
		m.auth.Close()
	})
}

func (m *master) queue(name string) *queue.Queue {
	m.t.Helper()
	q, err := m.broker.Queue(name)
	if err != nil {
		m.t.Fatal(err)
	}
	return q
}

// rawClient is an authenticated QueueService client without the distq
// client package in between.
func (m *master) rawClient(t testing.TB) pb.QueueServiceClient {
	t.Helper()
	ac, err := auth.NewClient(testKey)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(m.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(ac))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := ac.Handshake(testContext(t), conn); err != nil {
		t.Fatal(err)
	}
	return pb.NewQueueServiceClient(conn)
}

func items(payloads ...string) []*pb.Item {
	out := make([]*pb.Item, len(payloads))
	for i, p := range payloads {
		out[i] = &pb.Item{Payload: []byte(p)}
	}
	return out
}

// put puts payloads in one batch and returns their ids.
func put(t testing.TB, qc pb.QueueServiceClient, queueName string, payloads ...string) []uint64 {
	t.Helper()
	stream, err := qc.Put(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.PutRequest{Queue: queueName, Items: items(payloads...)}); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return ids
		}
		if err != nil {
			t.Fatalf("put into %q: %v", queueName, err)
		}
		ids = append(ids, resp.GetIds()...)
	}
}

// consume opens a Consume stream on queueName with credit, under its own
// context so that a test can break it.
func consume(t testing.TB, qc pb.QueueServiceClient, queueName string, credit uint32) (pb.QueueService_ConsumeClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(testContext(t))
	t.Cleanup(cancel)
	stream, err := qc.Consume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.ConsumeRequest{Queue: queueName, Credit: credit}); err != nil {
		t.Fatal(err)
	}
	return stream, cancel
}

// recvDeliveries receives exactly n deliveries; more in the same message
// fail the test (the master overspent the credit).
func recvDeliveries(t testing.TB, stream pb.QueueService_ConsumeClient, n int) []*pb.Delivery {
	t.Helper()
	var out []*pb.Delivery
	for len(out) < n {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d of %d deliveries: %v", len(out), n, err)
		}
		if len(resp.GetRefused()) > 0 {
			t.Fatalf("unexpected refusals: %v", resp.GetRefused())
		}
		out = append(out, resp.GetDeliveries()...)
	}
	if len(out) > n {
		t.Fatalf("received %d deliveries, expected %d", len(out), n)
	}
	return out
}

// recvEnd receives until the stream ends and returns how it ended; any
// delivery on the way is counted.
func recvEnd(t testing.TB, stream pb.QueueService_ConsumeClient) (extra int, err error) {
	t.Helper()
	for {
		resp, err := stream.Recv()
		if err != nil {
			return extra, err
		}
		extra += len(resp.GetDeliveries())
	}
}

func wantCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if errors.Is(err, io.EOF) && want == codes.OK {
		return
	}
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want %v", got, err, want)
	}
}

func acksOf(ds []*pb.Delivery) []*pb.Ack {
	out := make([]*pb.Ack, len(ds))
	for i, d := range ds {
		out[i] = &pb.Ack{Id: d.GetId(), Lease: d.GetLease()}
	}
	return out
}

// checkConservation checks the broker's books: every item put into a live
// queue is acknowledged, ready, leased, delayed, or in its dead-letter queue
// (ready, leased, delayed, or acknowledged from there). Call it when nothing
// is in motion.
func checkConservation(t testing.TB, b *queue.Broker) {
	t.Helper()
	qs := b.Queues()
	for _, q := range qs {
		st := q.Stats()
		if st.Ready < 0 || st.Leased < 0 || st.Dead < 0 || st.Consumers < 0 {
			t.Fatalf("%s: negative gauge: %+v", st.Name, st)
		}
		if q.IsDead() {
			continue
		}
		dq, err := b.Queue(q.Name() + queue.DeadSuffix)
		if err != nil {
			t.Fatal(err)
		}
		dst := dq.Stats()
		// Delayed items are held too: nacked for a retry, in either queue.
		dead := dst.Ready + dst.Leased + dst.Delayed
		held := st.AckedTotal + uint64(st.Ready+st.Leased+st.Delayed) + uint64(dead) + dst.AckedTotal
		if st.PutTotal != held {
			t.Fatalf("%s: put %d items, accounted for %d: %+v / dead %+v", st.Name, st.PutTotal, held, st, dst)
		}
		if st.Dead != dead {
			t.Fatalf("%s: Dead %d, but its dead-letter queue holds %d", st.Name, st.Dead, dead)
		}
	}
}
