package producer

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/distq/distq"
	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/server"
	"github.com/distq/distq/internal/testlog"
)

var testKey = []byte("producer-test-authkey")

// startMaster serves an in-memory broker on loopback until the test ends.
func startMaster(t *testing.T) (string, *queue.Broker) {
	t.Helper()
	log := testlog.New(t, "master")
	b, err := queue.New(queue.Config{Logger: log.Named("queue")})
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewServer(auth.ServerConfig{Key: testKey, Logger: log.Named("auth")})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", Broker: b, Auth: a, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		srv.Serve()
		close(served)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-served
		b.Close()
		a.Close()
	})
	return srv.Addr().String(), b
}

func dial(t *testing.T, addr string) *distq.Client {
	t.Helper()
	c, err := distq.NewClient(addr, distq.Options{AuthKey: testKey, Logger: testlog.New(t, "client")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A run against a master with a squaring worker, once the worker reads
// the task queue: every task comes back once and right, the task queue is
// closed, and the worker ends.
func TestRun(t *testing.T) {
	addr, b := startMaster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := dial(t, addr).NewWorker(distq.WorkerConfig{Concurrency: 4}, func(_ context.Context, task *distq.Task) ([]byte, error) {
		n, err := strconv.ParseInt(string(task.Payload), 10, 64)
		if err != nil {
			return nil, distq.Permanent(err)
		}
		return strconv.AppendInt(nil, n*n, 10), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(ctx) }()
	s, err := Run(ctx, Config{Client: dial(t, addr), N: 3000, Batch: 64, CloseTasks: true, Slaves: 1, Drain: 5 * time.Second, Logger: testlog.New(t, "producer")})
	if err != nil {
		t.Fatal(err)
	}
	if !s.OK() || s.Exact != 3000 || s.Resent != 0 || s.Extra != 0 {
		t.Fatalf("summary %+v: want all 3000 exactly once and right, nothing put again", s)
	}
	if err := <-workerDone; err != nil {
		t.Fatalf("the worker did not end with the closed task queue: %v", err)
	}
	q, _ := b.Queue("tasks")
	if st := q.Stats(); !st.Closed {
		t.Errorf("task queue %+v: want closed", st)
	}
}

// With no slave, a run stops at its context's end, and the summary says
// what is missing.
func TestRunStopsAtTheDeadline(t *testing.T) {
	addr, _ := startMaster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	s, err := Run(ctx, Config{Client: dial(t, addr), N: 10, Logger: testlog.New(t, "producer")})
	if err == nil || s.OK() || s.Answered != 10 || s.Missing != 10 {
		t.Fatalf("summary %+v, error %v: want 10 answered, 10 missing and the context's error", s, err)
	}
}
