package distq

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	pb "github.com/distq/distq/proto/distq/v1"
)

// callCounter counts the GetStream streams a client opens and the unary
// Gets it makes.
type callCounter struct{ streams, unary atomic.Int64 }

func (cc *callCounter) options() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, conn *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			if method == pb.QueueService_GetStream_FullMethodName {
				cc.streams.Add(1)
			}
			return streamer(ctx, desc, conn, method, opts...)
		}),
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, conn *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if method == pb.QueueService_Get_FullMethodName {
				cc.unary.Add(1)
			}
			return invoker(ctx, method, req, reply, conn, opts...)
		}),
	}
}

// Get, GetTimeout, GetNowait, GetMany and Lease of one queue share one
// kept GetStream: no unary Get, no stream per call.
func TestGetsShareOneStream(t *testing.T) {
	m := startMaster(t, masterConfig{})
	var cc callCounter
	c := m.dial(t, cc.options()...)
	ctx := testContext(t)
	results := c.Queue("results")
	if _, err := results.PutBatch(ctx, []Message{{Payload: []byte("a")}, {Payload: []byte("b")}, {Payload: []byte("c")}, {Payload: []byte("d")}, {Payload: []byte("e")}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, get := range []func() (*Task, error){
		func() (*Task, error) { return results.Get(ctx) },
		func() (*Task, error) { return results.GetTimeout(ctx, time.Second) },
		func() (*Task, error) { return results.GetNowait(ctx) },
	} {
		task, err := get()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(task.Payload))
	}
	leased, err := results.Lease(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := leased.Done(ctx); err != nil {
		t.Fatalf("a task leased through the stream settles by unary Ack: %v", err)
	}
	got = append(got, string(leased.Payload))
	many, err := results.GetMany(ctx, 10, time.Second)
	if err != nil || len(many) != 1 {
		t.Fatalf("GetMany: %v %v", many, err)
	}
	got = append(got, string(many[0].Payload))
	if want := "[a b c d e]"; fmtList(got) != want {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Nothing ready: the master answers at the timeout, and the stream stays.
	if _, err := results.GetTimeout(ctx, 20*time.Millisecond); !errors.Is(err, ErrEmpty) {
		t.Fatalf("GetTimeout on an empty queue: %v, want ErrEmpty", err)
	}
	if _, err := results.GetNowait(ctx); !errors.Is(err, ErrEmpty) {
		t.Fatalf("GetNowait on an empty queue: %v, want ErrEmpty", err)
	}
	if s, u := cc.streams.Load(), cc.unary.Load(); s != 1 || u != 0 {
		t.Fatalf("%d streams and %d unary Gets; want one stream", s, u)
	}
	if st := m.stats("results"); st.AckedTotal != 5 || st.Ready != 0 || st.Leased != 0 {
		t.Fatalf("stats: %+v", st)
	}
	// Closed and drained: ErrClosed, as before.
	if err := results.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := results.Get(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get on a closed and drained queue: %v, want ErrClosed", err)
	}
}

func fmtList(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}

// A Get whose ctx ends gives up with ctx's error and takes nothing; the
// next Get opens a new stream. A second reader of the same queue, while
// the first waits on the stream, makes a unary call rather than wait
// behind it.
func TestGetCancelAndConcurrentReaders(t *testing.T) {
	m := startMaster(t, masterConfig{})
	var cc callCounter
	c := m.dial(t, cc.options()...)
	ctx := testContext(t)
	results := c.Queue("results")

	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := results.Get(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get bounded by its ctx: %v, want DeadlineExceeded", err)
	}
	gone, cancelGone := context.WithCancel(ctx)
	waiting := make(chan error, 1)
	go func() {
		_, err := results.Get(gone)
		waiting <- err
	}()
	waitFor(t, "the first reader waits on the stream", func() bool { return c.getStream("results").busy() })
	if _, err := results.GetNowait(ctx); !errors.Is(err, ErrEmpty) {
		t.Fatalf("second reader: %v, want ErrEmpty at once", err)
	}
	if u := cc.unary.Load(); u != 1 {
		t.Fatalf("%d unary Gets; want the second reader's", u)
	}
	cancelGone()
	if err := <-waiting; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Get: %v", err)
	}
	if _, err := results.Put(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if task, err := results.GetTimeout(ctx, time.Second); err != nil || string(task.Payload) != "x" {
		t.Fatalf("Get after the cancel: %v %v", task, err)
	}
	if st := m.stats("results"); st.AckedTotal != 1 || st.Ready != 0 {
		t.Fatalf("the cancelled Gets took something: %+v", st)
	}
}

// After a master restart the kept stream is dead; the next Get opens a new
// one on the new connection, authenticating again, and gets its item.
func TestGetReconnectsAfterMasterRestart(t *testing.T) {
	m1 := startMaster(t, masterConfig{})
	var cc callCounter
	c := m1.dial(t, append(cc.options(), grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))...)
	ctx := testContext(t)
	results := c.Queue("results")
	if _, err := results.Put(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if task, err := results.Get(ctx); err != nil || string(task.Payload) != "before" {
		t.Fatalf("before the restart: %v %v", task, err)
	}
	m1.stop()
	if c.conn.GetState() == connectivity.Ready && !c.conn.WaitForStateChange(ctx, connectivity.Ready) {
		t.Fatal("the connection did not notice the master's end")
	}
	m2 := startMaster(t, masterConfig{Listen: m1.addr})
	if _, err := results.Put(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	task, err := results.GetTimeout(ctx, 5*time.Second)
	if err != nil || string(task.Payload) != "after" {
		t.Fatalf("after the restart: %v %v", task, err)
	}
	if st := m2.stats("results"); st.AckedTotal != 1 {
		t.Fatalf("new master: %+v", st)
	}
	if s := cc.streams.Load(); s != 2 {
		t.Fatalf("%d streams; want one per master", s)
	}
}

// busy reports whether a Get holds the stream (for tests).
func (gs *getStream) busy() bool {
	if gs.mu.TryLock() {
		gs.mu.Unlock()
		return false
	}
	return true
}
