package server

import (
	"context"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/ratelog"
	pb "github.com/distq/distq/proto/distq/v1"

	"github.com/distq/distq/internal/clock"
)

// The fuzz targets feed peer bytes, decoded as the wire would decode them,
// straight to the queueService handlers (the auth interceptor in front of
// them has its own fuzzing in internal/auth). Whatever the bytes, a handler
// must not panic, must fail only with a gRPC status, and must leave the
// broker's books balanced.

// fakeStream is a server stream that yields reqs and then io.EOF (the peer's
// CloseSend), recording what the handler sends. Consume reads from a second
// goroutine, so it is safe for concurrent use.
type fakeStream[Req, Res any] struct {
	ctx context.Context

	mu   sync.Mutex
	reqs []*Req
	sent []*Res
}

var (
	_ pb.QueueService_PutServer       = (*fakeStream[pb.PutRequest, pb.PutResponse])(nil)
	_ pb.QueueService_ConsumeServer   = (*fakeStream[pb.ConsumeRequest, pb.ConsumeResponse])(nil)
	_ pb.QueueService_GetStreamServer = (*fakeStream[pb.GetStreamRequest, pb.GetStreamResponse])(nil)
)

func (f *fakeStream[Req, Res]) Context() context.Context { return f.ctx }

func (f *fakeStream[Req, Res]) Recv() (*Req, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return nil, io.EOF
	}
	r := f.reqs[0]
	f.reqs = f.reqs[1:]
	return r, nil
}

func (f *fakeStream[Req, Res]) Send(r *Res) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, r)
	return nil
}

func (f *fakeStream[Req, Res]) responses() []*Res {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

func (f *fakeStream[Req, Res]) SetHeader(metadata.MD) error  { return nil }
func (f *fakeStream[Req, Res]) SendHeader(metadata.MD) error { return nil }
func (f *fakeStream[Req, Res]) SetTrailer(metadata.MD)       {}
func (f *fakeStream[Req, Res]) SendMsg(m any) error          { return f.Send(m.(*Res)) }

func (f *fakeStream[Req, Res]) RecvMsg(m any) error {
	r, err := f.Recv()
	if err != nil {
		return err
	}
	proto.Merge(m.(proto.Message), any(r).(proto.Message))
	return nil
}

// fuzzBroker is a small master state to fuzz against: tasks (bounded) holds
// ready items, one item leased by Get (id 1, lease 1) and one dead item.
func fuzzBroker(t *testing.T) (*queueService, *queue.Broker) {
	b, err := queue.New(queue.Config{
		Queues:      []queue.QueueConfig{{Name: "tasks", MaxSize: 6}, {Name: "results"}},
		MaxAttempts: 1,
		Clock:       clock.NewManual(time.Unix(1700000000, 0)),
		ManualScan:  true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	q, _ := b.Queue("tasks")
	ctx := context.Background()
	if _, err := q.Put(ctx, []queue.Message{{Payload: []byte("1")}, {Payload: []byte("2")}, {Payload: []byte("3")}, {Payload: []byte("4")}}, true, 0); err != nil {
		t.Fatal(err)
	}
	ds, err := q.Get(ctx, 2, true, 0, false)
	if err != nil || len(ds) != 2 {
		t.Fatalf("setup: %v %v", ds, err)
	}
	if r := q.Nack([]queue.Nack{{ID: ds[1].ID, Lease: ds[1].Lease, Error: "setup"}}); len(r) != 0 {
		t.Fatalf("setup: %v", r)
	}
	refusals := ratelog.New(nil, ratelog.Config{})
	return &queueService{broker: b, log: hclog.NewNullLogger(), limits: newLimiter(DefaultMaxStreams, DefaultMaxWaits, refusals), refusals: refusals}, b
}

// cancelled is the context of a call whose client has gone: a handler that
// would wait returns at once, so no fuzz input can hang a run.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func checkStatus(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if _, ok := status.FromError(err); !ok {
		t.Fatalf("%s returned %T %v, not a gRPC status", what, err, err)
	}
}

func marshalSeed(f *testing.F, msgs ...proto.Message) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// fuzzProducer is a well-formed producer id.
var fuzzProducer = []byte("0123456789abcdef")

func FuzzPutRequest(f *testing.F) {
	seeds := [][2]proto.Message{
		{&pb.PutRequest{Queue: "tasks", Items: items("a", "b")}, &pb.PutRequest{Items: items("c")}},
		{&pb.PutRequest{Queue: "tasks", Items: items("a", "b", "c"), Nowait: true}, &pb.PutRequest{Queue: "results", Items: items("r")}},
		{&pb.PutRequest{Queue: "tasks", Items: []*pb.Item{{Payload: []byte{0}, Headers: map[string]string{"": "é"}}}, TimeoutMs: 1}, &pb.PutRequest{Queue: "tasks.dead"}},
		{&pb.PutRequest{Queue: "nope"}, &pb.PutRequest{}},
		{&pb.PutRequest{}, &pb.PutRequest{Queue: "tasks", Items: items("x", "y", "z", "w")}},
		// Producer ids: well formed, then malformed (short, long, all
		// zero, without a sequence).
		{&pb.PutRequest{Queue: "tasks", Items: items("a"), ProducerId: fuzzProducer, Sequence: 1}, &pb.PutRequest{Items: items("a"), ProducerId: fuzzProducer, Sequence: 1}},
		{&pb.PutRequest{Queue: "tasks", Items: items("a"), ProducerId: fuzzProducer[:15], Sequence: 1}, &pb.PutRequest{Items: items("b"), ProducerId: append(fuzzProducer[:16:16], 0), Sequence: 2}},
		{&pb.PutRequest{Queue: "tasks", Items: items("a"), ProducerId: make([]byte, 16), Sequence: 1}, &pb.PutRequest{Queue: "tasks", Items: items("b"), ProducerId: fuzzProducer}},
		{&pb.PutRequest{Queue: "tasks", Items: items("a"), Sequence: 7}, &pb.PutRequest{Items: items("b"), ProducerId: []byte{1}}},
	}
	for _, s := range seeds {
		b := marshalSeed(f, s[0], s[1])
		f.Add(b[0], b[1])
	}
	f.Add([]byte{0x0a, 0xff}, []byte{})
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var reqs []*pb.PutRequest
		for _, raw := range [][]byte{first, second} {
			req := &pb.PutRequest{}
			if err := proto.Unmarshal(raw, req); err != nil {
				t.Skip()
			}
			reqs = append(reqs, req)
		}
		s, b := fuzzBroker(t)
		before := map[string]uint64{}
		for _, q := range b.Queues() {
			before[q.Name()] = q.Stats().PutTotal
		}
		stream := &fakeStream[pb.PutRequest, pb.PutResponse]{ctx: cancelled(), reqs: reqs}
		err := s.Put(stream)
		checkStatus(t, "Put", err)

		// Every id answered is a new item, and every new item was answered;
		// a duplicate (the same producer and sequence again) is answered
		// with the ids it got the first time, and adds nothing more.
		seen := map[uint64]bool{}
		for _, r := range stream.responses() {
			if !r.GetDedup() {
				t.Fatalf("answer %v does not say the master deduplicates", r)
			}
			for _, id := range r.GetIds() {
				seen[id] = true
			}
		}
		added := uint64(0)
		for _, q := range b.Queues() {
			added += q.Stats().PutTotal - before[q.Name()]
		}
		if uint64(len(seen)) != added {
			t.Fatalf("answered %d distinct ids for %d items added", len(seen), added)
		}
		if len(stream.responses()) > len(reqs) {
			t.Fatalf("%d answers to %d requests", len(stream.responses()), len(reqs))
		}
		// A malformed producer id stops the stream before its request
		// stores anything.
		if _, perr := putID(reqs[0]); perr != nil && (added != 0 || len(stream.responses()) != 0 || err == nil) {
			t.Fatalf("malformed producer id %x seq %d: %d items added, %v", reqs[0].GetProducerId(), reqs[0].GetSequence(), added, err)
		}
		checkConservation(t, b)
	})
}

func FuzzConsumeRequest(f *testing.F) {
	seeds := [][2]proto.Message{
		{&pb.ConsumeRequest{Queue: "tasks", Credit: 2}, &pb.ConsumeRequest{Credit: 1, Acks: []*pb.Ack{{Id: 3, Lease: 3, Reply: &pb.Item{Payload: []byte("r")}, ReplyQueue: "results"}}}},
		{&pb.ConsumeRequest{Queue: "tasks", Credit: 4}, &pb.ConsumeRequest{Nacks: []*pb.Nack{{Id: 3, Lease: 3, Error: "e", Action: pb.NackAction_NACK_ACTION_DEAD}, {Id: 4, Lease: 4, Action: pb.NackAction_NACK_ACTION_RELEASE}}}},
		{&pb.ConsumeRequest{Queue: "tasks", Credit: 1, Extends: []*pb.Extend{{Id: 3, Lease: 3, LeaseMs: 4294967295}}}, &pb.ConsumeRequest{Queue: "results"}},
		{&pb.ConsumeRequest{Queue: "tasks.dead", Credit: 4294967295}, &pb.ConsumeRequest{Acks: []*pb.Ack{{Id: 2, Lease: 3, ReplyQueue: "tasks"}}}},
		{&pb.ConsumeRequest{Queue: "tasks", Acks: []*pb.Ack{{Id: 1, Lease: 1}}, Nacks: []*pb.Nack{{Id: 1, Lease: 1, Action: 7}}}, &pb.ConsumeRequest{}},
		// A dead item nacked for a retry waits in the dead-letter queue.
		{&pb.ConsumeRequest{Queue: "tasks.dead", Credit: 1}, &pb.ConsumeRequest{Nacks: []*pb.Nack{{Id: 2, Lease: 1}}}},
		{&pb.ConsumeRequest{Queue: "nope", Credit: 1}, &pb.ConsumeRequest{}},
		{&pb.ConsumeRequest{}, &pb.ConsumeRequest{}},
	}
	for _, s := range seeds {
		b := marshalSeed(f, s[0], s[1])
		f.Add(b[0], b[1])
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var reqs []*pb.ConsumeRequest
		for _, raw := range [][]byte{first, second} {
			req := &pb.ConsumeRequest{}
			if err := proto.Unmarshal(raw, req); err != nil {
				t.Skip()
			}
			reqs = append(reqs, req)
		}
		s, b := fuzzBroker(t)
		// A live stream context: the handler delivers until the fake peer's
		// goodbye (io.EOF after the requests) ends the stream.
		stream := &fakeStream[pb.ConsumeRequest, pb.ConsumeResponse]{ctx: context.Background(), reqs: reqs}
		err := s.Consume(stream)
		checkStatus(t, "Consume", err)

		granted := uint64(0)
		for _, r := range reqs {
			granted += uint64(r.GetCredit())
		}
		delivered := uint64(0)
		for _, r := range stream.responses() {
			delivered += uint64(len(r.GetDeliveries()))
		}
		if delivered > granted {
			t.Fatalf("%d deliveries for a credit of %d", delivered, granted)
		}
		// The consumer is gone: nothing stays leased to it, so only the
		// lease that Get took in the setup may remain.
		for _, q := range b.Queues() {
			st := q.Stats()
			if st.Consumers != 0 {
				t.Fatalf("%s: %d consumers after the stream ended", st.Name, st.Consumers)
			}
			if st.Name != "tasks" && st.Leased != 0 {
				t.Fatalf("%s: %d leased after the stream ended", st.Name, st.Leased)
			}
		}
		checkConservation(t, b)
	})
}

// FuzzGetStreamRequest runs a GetStream of two requests. Every request is
// answered in order until the first error, with no more items than it asked
// for; nothing stays leased to the stream beyond what non-auto-ack Gets
// took, and every item is accounted for.
func FuzzGetStreamRequest(f *testing.F) {
	get := func(g *pb.GetRequest) *pb.GetStreamRequest { return &pb.GetStreamRequest{Get: g} }
	seeds := [][2]proto.Message{
		{get(&pb.GetRequest{Queue: "tasks", MaxItems: 2, AutoAck: true, Packed: true}), get(&pb.GetRequest{AutoAck: true, Nowait: true})},
		{get(&pb.GetRequest{Queue: "tasks", MaxItems: 10000, Nowait: true}), get(&pb.GetRequest{Queue: "tasks", TimeoutMs: 1, AutoAck: true})},
		{get(&pb.GetRequest{Queue: "tasks", MaxItems: 10001}), get(&pb.GetRequest{})},
		{get(&pb.GetRequest{Queue: "results", AutoAck: true}), get(&pb.GetRequest{Queue: "tasks"})},
		{get(&pb.GetRequest{Queue: "tasks.dead", AutoAck: true, Nowait: true}), get(&pb.GetRequest{Queue: "tasks.dead", MaxItems: 4294967295})},
		{get(&pb.GetRequest{Queue: "nope"}), get(&pb.GetRequest{})},
		{&pb.GetStreamRequest{}, &pb.GetStreamRequest{}},
	}
	for _, s := range seeds {
		b := marshalSeed(f, s[0], s[1])
		f.Add(b[0], b[1])
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var reqs []*pb.GetStreamRequest
		for _, raw := range [][]byte{first, second} {
			req := &pb.GetStreamRequest{}
			if err := proto.Unmarshal(raw, req); err != nil {
				t.Skip()
			}
			reqs = append(reqs, req)
		}
		s, b := fuzzBroker(t)
		// A cancelled context: a request that would wait ends the stream.
		stream := &fakeStream[pb.GetStreamRequest, pb.GetStreamResponse]{ctx: cancelled(), reqs: reqs}
		err := s.GetStream(stream)
		checkStatus(t, "GetStream", err)
		resps := stream.responses()
		if len(resps) > len(reqs) {
			t.Fatalf("%d answers to %d requests", len(resps), len(reqs))
		}
		for i, r := range resps {
			asked := max(int(reqs[i].GetGet().GetMaxItems()), 1)
			got := len(r.GetGet().GetDeliveries()) + len(r.GetGet().GetBatch().GetIds())
			if got > asked {
				t.Fatalf("answer %d: %d items for a Get of %d", i, got, asked)
			}
		}
		checkConservation(t, b)
	})
}

// FuzzUnaryRequests runs two unary calls, each chosen by a selector byte,
// with the fuzz bytes decoded as that call's request.
func FuzzUnaryRequests(f *testing.F) {
	type seed struct {
		sel uint8
		msg proto.Message
	}
	seeds := [][2]seed{
		{{0, &pb.GetRequest{Queue: "tasks", MaxItems: 2, Nowait: true}}, {1, &pb.AckRequest{Queue: "tasks", Acks: []*pb.Ack{{Id: 3, Lease: 3, Reply: &pb.Item{Payload: []byte("r")}, ReplyQueue: "results"}}}}},
		{{0, &pb.GetRequest{Queue: "tasks.dead", AutoAck: true}}, {2, &pb.NackRequest{Queue: "tasks", Nacks: []*pb.Nack{{Id: 1, Lease: 1, Error: "x", Action: pb.NackAction_NACK_ACTION_DEAD}}}}},
		{{3, &pb.ExtendRequest{Queue: "tasks", Extends: []*pb.Extend{{Id: 1, Lease: 1, LeaseMs: 1}}}}, {4, &pb.PeekRequest{Queue: "tasks.dead", Limit: 10000, Offset: 1 << 62}}},
		{{5, &pb.RequeueRequest{Queue: "tasks", Ids: []uint64{2, 2, 0}}}, {6, &pb.StatsRequest{}}},
		{{7, &pb.JoinRequest{Queue: "results", TimeoutMs: 1}}, {8, &pb.CloseRequest{Queue: "tasks"}}},
		{{8, &pb.CloseRequest{Queue: "tasks"}}, {0, &pb.GetRequest{Queue: "tasks", MaxItems: 10001}}},
		{{5, &pb.RequeueRequest{Queue: "tasks.dead"}}, {1, &pb.AckRequest{Queue: "nope"}}},
		{{2, &pb.NackRequest{Queue: "tasks", Nacks: []*pb.Nack{{Id: 1, Lease: 1, Action: pb.NackAction_NACK_ACTION_RELEASE}}}}, {0, &pb.GetRequest{Queue: "tasks", MaxItems: 10000}}},
	}
	for _, s := range seeds {
		b := marshalSeed(f, s[0].msg, s[1].msg)
		f.Add(s[0].sel, b[0], s[1].sel, b[1])
	}
	f.Fuzz(func(t *testing.T, sel1 uint8, raw1 []byte, sel2 uint8, raw2 []byte) {
		s, b := fuzzBroker(t)
		for _, call := range []struct {
			sel uint8
			raw []byte
		}{{sel1, raw1}, {sel2, raw2}} {
			name, resp, err := callUnary(s, call.sel, call.raw)
			if name == "" {
				t.Skip()
			}
			checkStatus(t, name, err)
			if err == nil && resp == nil {
				t.Fatalf("%s returned neither a response nor an error", name)
			}
			checkConservation(t, b)
		}
	})
}

// callUnary decodes raw as the request of the call sel selects and makes
// the call; it returns "" when raw does not decode.
func callUnary(s *queueService, sel uint8, raw []byte) (string, proto.Message, error) {
	ctx := cancelled()
	do := func(name string, req proto.Message, call func() (proto.Message, error)) (string, proto.Message, error) {
		if err := proto.Unmarshal(raw, req); err != nil {
			return "", nil, nil
		}
		resp, err := call()
		return name, resp, err
	}
	// A typed nil response must still count as nil.
	ret := func(m proto.Message, err error) (proto.Message, error) {
		if err != nil {
			return nil, err
		}
		return m, nil
	}
	switch sel % 9 {
	case 0:
		req := &pb.GetRequest{}
		return do("Get", req, func() (proto.Message, error) { return ret(s.Get(ctx, req)) })
	case 1:
		req := &pb.AckRequest{}
		return do("Ack", req, func() (proto.Message, error) { return ret(s.Ack(ctx, req)) })
	case 2:
		req := &pb.NackRequest{}
		return do("Nack", req, func() (proto.Message, error) { return ret(s.Nack(ctx, req)) })
	case 3:
		req := &pb.ExtendRequest{}
		return do("Extend", req, func() (proto.Message, error) { return ret(s.Extend(ctx, req)) })
	case 4:
		req := &pb.PeekRequest{}
		return do("Peek", req, func() (proto.Message, error) { return ret(s.Peek(ctx, req)) })
	case 5:
		req := &pb.RequeueRequest{}
		return do("Requeue", req, func() (proto.Message, error) { return ret(s.Requeue(ctx, req)) })
	case 6:
		req := &pb.StatsRequest{}
		return do("Stats", req, func() (proto.Message, error) { return ret(s.Stats(ctx, req)) })
	case 7:
		req := &pb.JoinRequest{}
		return do("Join", req, func() (proto.Message, error) { return ret(s.Join(ctx, req)) })
	default:
		req := &pb.CloseRequest{}
		return do("Close", req, func() (proto.Message, error) { return ret(s.Close(ctx, req)) })
	}
}
