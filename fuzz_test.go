package distq

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/distq/distq/internal/errinfo"
	pb "github.com/distq/distq/proto/distq/v1"
)

// The client trusts the master with the key, but a master can still be
// buggy or a newer version: whatever it sends, decoding must not panic.

func FuzzTaskFromDelivery(f *testing.F) {
	for _, d := range []*pb.Delivery{
		{Id: 1, Lease: 1, Attempt: 1, Payload: []byte("7"), LeaseDeadlineMs: 1700000000000},
		{Id: 1<<64 - 1, Lease: 1<<64 - 1, Attempt: 1<<32 - 1, Headers: map[string]string{"a": "b", "": ""}, ReplyTo: 3, Error: "boom"},
		{LeaseDeadlineMs: -1 << 63},
		{LeaseDeadlineMs: 1<<63 - 1},
	} {
		b, err := proto.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d := &pb.Delivery{}
		if err := proto.Unmarshal(raw, d); err != nil {
			t.Skip()
		}
		task := taskFromPB(d, unarySettler{})
		if task.ID != d.GetId() || task.lease != d.GetLease() || task.ReplyTo != d.GetReplyTo() {
			t.Fatalf("ids not kept: %+v from %v", task, d)
		}
		if task.Attempt < 0 || uint64(task.Attempt) != uint64(d.GetAttempt()) {
			t.Fatalf("attempt %d from %d", task.Attempt, d.GetAttempt())
		}
		if task.Deadline.IsZero() != (d.GetLeaseDeadlineMs() == 0) {
			t.Fatalf("deadline %v from %d ms", task.Deadline, d.GetLeaseDeadlineMs())
		}
		if len(task.Payload) != len(d.GetPayload()) || len(task.Headers) != len(d.GetHeaders()) {
			t.Fatalf("payload or headers lost: %+v from %v", task, d)
		}
	})
}

// fakeConsumeClient plays the master's side of a Consume stream: it yields
// resps and then io.EOF (a clean end).
type fakeConsumeClient struct {
	ctx   context.Context
	mu    sync.Mutex
	resps []*pb.ConsumeResponse
}

var _ pb.QueueService_ConsumeClient = (*fakeConsumeClient)(nil)

func (f *fakeConsumeClient) Recv() (*pb.ConsumeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.resps) == 0 {
		return nil, io.EOF
	}
	r := f.resps[0]
	f.resps = f.resps[1:]
	return r, nil
}

func (f *fakeConsumeClient) Send(*pb.ConsumeRequest) error { return nil }
func (f *fakeConsumeClient) Header() (metadata.MD, error)  { return nil, nil }
func (f *fakeConsumeClient) Trailer() metadata.MD          { return nil }
func (f *fakeConsumeClient) CloseSend() error              { return nil }
func (f *fakeConsumeClient) Context() context.Context      { return f.ctx }
func (f *fakeConsumeClient) SendMsg(any) error             { return nil }
func (f *fakeConsumeClient) RecvMsg(m any) error {
	r, err := f.Recv()
	if err != nil {
		return err
	}
	proto.Merge(m.(proto.Message), r)
	return nil
}

// FuzzWorkerReceive feeds the worker's receiving side two ConsumeResponses
// decoded from fuzz bytes: every delivery becomes exactly one job, every
// refusal is counted, and a clean end of the stream is a nil error.
func FuzzWorkerReceive(f *testing.F) {
	seeds := [][2]*pb.ConsumeResponse{
		{{Deliveries: []*pb.Delivery{{Id: 1, Lease: 1, Attempt: 1, Payload: []byte("a")}, {Id: 2, Lease: 2, Attempt: 3}}}, {Refused: []*pb.Refused{{Id: 1, Lease: 1, Reason: "lease no longer held"}}}},
		{{}, {Deliveries: []*pb.Delivery{{}}, Refused: []*pb.Refused{{}, {Reason: strings.Repeat("x", 300)}}}},
	}
	for _, s := range seeds {
		a, err := proto.Marshal(s[0])
		if err != nil {
			f.Fatal(err)
		}
		b, err := proto.Marshal(s[1])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(a, b)
	}
	c, err := NewClient("127.0.0.1:1", Options{AuthKey: testKey})
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var resps []*pb.ConsumeResponse
		deliveries, refusals := 0, 0
		malformed := false
		for _, raw := range [][]byte{first, second} {
			r := &pb.ConsumeResponse{}
			if err := proto.Unmarshal(raw, r); err != nil {
				t.Skip()
			}
			resps = append(resps, r)
			if malformed {
				continue // the worker stops at the first malformed batch
			}
			batch, err := tasksFromBatch(r.GetBatch(), nil)
			if err != nil {
				malformed = true
				refusals += len(r.GetRefused())
				continue
			}
			deliveries += len(batch) + len(r.GetDeliveries())
			refusals += len(r.GetRefused())
		}
		w, err := c.NewWorker(WorkerConfig{Concurrency: 1, Logger: hclog.NewNullLogger()}, echo(""))
		if err != nil {
			t.Fatal(err)
		}
		s := &workerStream{out: make(chan *settles, 1), done: make(chan struct{})}
		jobs := make(chan job)
		got := make(chan int)
		go func() {
			n := 0
			for j := range jobs {
				if j.s != s || len(j.tasks) == 0 {
					t.Error("a job without tasks or stream")
				}
				n += len(j.tasks)
			}
			got <- n
		}()
		var gotAny atomic.Bool
		err = w.receive(context.Background(), &fakeConsumeClient{ctx: context.Background(), resps: resps}, s, jobs, &gotAny)
		close(jobs)
		if malformed {
			if err == nil {
				t.Fatal("a malformed batch was accepted")
			}
			<-got
			return
		}
		if err != nil {
			t.Fatalf("a clean end returned %v", err)
		}
		if n := <-got; n != deliveries || s.held.Load() != int64(deliveries) {
			t.Fatalf("%d deliveries became %d jobs, %d held", deliveries, n, s.held.Load())
		}
		if gotAny.Load() != (deliveries > 0) {
			t.Fatalf("gotAny %v after %d deliveries", gotAny.Load(), deliveries)
		}
		if w.Stats().Refused != uint64(refusals) {
			t.Fatalf("%d refusals counted as %d", refusals, w.Stats().Refused)
		}
	})
}

// FuzzFromStatus maps whatever status a master sends to a client error.
func FuzzFromStatus(f *testing.F) {
	f.Add(uint32(codes.ResourceExhausted), "distq: queue full: \"tasks\" holds 3 items", "")
	f.Add(uint32(codes.ResourceExhausted), "grpc: received message larger than max (4096 vs. 1024)", "")
	f.Add(uint32(codes.FailedPrecondition), "distq: queue closed", "")
	f.Add(uint32(codes.NotFound), "distq: unknown queue \"x\"", "")
	f.Add(uint32(codes.Unauthenticated), "distq: session unknown", "")
	f.Add(uint32(codes.Unauthenticated), "distq: authentication failed", "")
	f.Add(uint32(codes.Canceled), "", "")
	f.Add(uint32(codes.DeadlineExceeded), "", "")
	f.Add(uint32(codes.OK), "", "")
	f.Add(uint32(1000), "\xff", "")
	// With a reason (errinfo): the message no longer matters.
	f.Add(uint32(codes.ResourceExhausted), "anything", errinfo.QueueFull)
	f.Add(uint32(codes.ResourceExhausted), "distq: queue full", errinfo.NoSpace)
	f.Add(uint32(codes.NotFound), "", errinfo.UnknownQueue)
	f.Add(uint32(codes.Unavailable), "", "SOMETHING_NEW")
	f.Fuzz(func(t *testing.T, code uint32, msg, reason string) {
		in := status.Error(codes.Code(code), msg)
		if reason != "" && codes.Code(code) != codes.OK {
			in = errinfo.Error(codes.Code(code), reason, msg)
			// What went on the wire: a reason that is not UTF-8 cannot.
			reason = errinfo.Reason(status.Convert(in))
		}
		err := fromStatus(in)
		if in == nil {
			if err != nil {
				t.Fatalf("fromStatus(nil) = %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("fromStatus(%v) = nil", in)
		}
		_ = err.Error()
		full := codes.Code(code) == codes.ResourceExhausted && strings.HasPrefix(msg, "distq: queue full")
		if reason != "" && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			full = reason == errinfo.QueueFull
		}
		if errors.Is(err, ErrFull) != full {
			t.Fatalf("fromStatus(%v) = %v: ErrFull %v, want %v", in, err, errors.Is(err, ErrFull), full)
		}
		if IsPermanent(err) && codes.Code(code) != codes.NotFound && codes.Code(code) != codes.Unauthenticated && reason != errinfo.UnknownQueue {
			t.Fatalf("fromStatus(%v) = %v is permanent", in, err)
		}
		_ = wrapAuth(in, "master:1").Error()
	})
}
