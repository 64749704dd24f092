package server

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/queue"
	pb "github.com/distq/distq/proto/distq/v1"
)

func newParts(t *testing.T) (*queue.Broker, *auth.Server) {
	t.Helper()
	b, err := queue.New(queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	a, err := auth.NewServer(auth.ServerConfig{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	return b, a
}

func TestNewValidatesConfig(t *testing.T) {
	b, a := newParts(t)
	bad := map[string]Config{
		"no broker":         {Listen: "127.0.0.1:0", Auth: a},
		"no auth":           {Listen: "127.0.0.1:0", Broker: b},
		"tiny messages":     {Listen: "127.0.0.1:0", Broker: b, Auth: a, MaxMessageSize: 100},
		"huge messages":     {Listen: "127.0.0.1:0", Broker: b, Auth: a, MaxMessageSize: 2 << 30},
		"unusable address":  {Listen: "127.0.0.1:99999", Broker: b, Auth: a},
		"negative messages": {Listen: "127.0.0.1:0", Broker: b, Auth: a, MaxMessageSize: -1},
	}
	for name, cfg := range bad {
		if srv, err := New(cfg); err == nil {
			srv.Close()
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

func TestCloseWithoutServeReleasesThePort(t *testing.T) {
	b, a := newParts(t)
	srv, err := New(Config{Listen: "127.0.0.1:0", Broker: b, Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr().String()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the port of a closed server is still bound: %v", err)
	}
	lis.Close()
	// Serving a closed server ends at once, without an error.
	if err := srv.Serve(); err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
}

func TestCloseTwice(t *testing.T) {
	m := startMaster(t, masterConfig{})
	for range 2 {
		if err := m.srv.Close(); err != nil {
			t.Fatal(err)
		}
	}
	m.waitServed()
	// The port is free again for a master restarted on the same address.
	lis, err := net.Listen("tcp", m.addr)
	if err != nil {
		t.Fatal(err)
	}
	lis.Close()
}

func TestOversizedMessageIsRefusedAndServingGoesOn(t *testing.T) {
	m := startMaster(t, masterConfig{MaxMessageSize: 1024})
	qc := m.rawClient(t)
	ctx := testContext(t)
	big := make([]byte, 4096)

	stream, err := qc.Put(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.PutRequest{Queue: "tasks", Items: []*pb.Item{{Payload: big}}}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.ResourceExhausted)

	_, err = qc.Ack(ctx, &pb.AckRequest{Queue: "tasks", Acks: []*pb.Ack{{Id: 1, Lease: 1, Reply: &pb.Item{Payload: big}, ReplyQueue: "results"}}})
	wantCode(t, err, codes.ResourceExhausted)

	// Same connection, same session: the master goes on serving.
	put(t, qc, "tasks", "small")
	if st := m.queue("tasks").Stats(); st.Ready != 1 || st.PutTotal != 1 {
		t.Fatalf("stats: %+v", st)
	}
	if st := m.queue("results").Stats(); st.PutTotal != 0 {
		t.Fatalf("results: %+v", st)
	}
}

func TestShutdownLetsConsumersSettleThenEndsTheirStreams(t *testing.T) {
	m := startMaster(t, masterConfig{LeaseTime: time.Hour})
	qc := m.rawClient(t)
	put(t, qc, "tasks", "a", "b", "c")
	stream, _ := consume(t, qc, "tasks", 2)
	ds := recvDeliveries(t, stream, 2)

	shutdown := make(chan struct{})
	go func() {
		defer close(shutdown)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		m.srv.Shutdown(ctx)
	}()
	// A waiting Get is ended by the drain (or refused if it comes after):
	// from its answer on, the master is in its grace period.
	_, err := qc.Get(testContext(t), &pb.GetRequest{Queue: "results", TimeoutMs: 20000})
	wantCode(t, err, codes.Unavailable)
	// No new consumer is taken on.
	late, _ := consume(t, qc, "tasks", 1)
	_, err = recvEnd(t, late)
	wantCode(t, err, codes.Unavailable)

	// The consumer still settles what it holds; more credit brings nothing.
	if err := stream.Send(&pb.ConsumeRequest{Acks: acksOf(ds), Credit: 5}); err != nil {
		t.Fatal(err)
	}
	extra, err := recvEnd(t, stream)
	wantCode(t, err, codes.Unavailable)
	if extra != 0 {
		t.Fatalf("%d deliveries during shutdown", extra)
	}
	select {
	case <-shutdown:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return once everything was settled")
	}
	m.waitServed()
	if st := m.queue("tasks").Stats(); st.AckedTotal != 2 || st.Leased != 0 || st.Ready != 1 {
		t.Fatalf("after shutdown: %+v", st)
	}
}

func TestShutdownWithExpiredContextReturnsLeases(t *testing.T) {
	m := startMaster(t, masterConfig{LeaseTime: time.Hour})
	qc := m.rawClient(t)
	put(t, qc, "tasks", "a")
	stream, _ := consume(t, qc, "tasks", 1)
	recvDeliveries(t, stream, 1)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	shutdown := make(chan struct{})
	go func() {
		defer close(shutdown)
		m.srv.Shutdown(ctx)
	}()
	select {
	case <-shutdown:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown with an expired context did not return")
	}
	m.waitServed()
	// The consumer never settled: its lease went back when its stream was
	// cut, before Shutdown returned.
	if st := m.queue("tasks").Stats(); st.Leased != 0 || st.Ready != 1 || st.Consumers != 0 {
		t.Fatalf("after shutdown: %+v", st)
	}
	_, err := recvEnd(t, stream)
	wantCode(t, err, codes.Unavailable)
	m.srv.Close() // after Shutdown: harmless
}
