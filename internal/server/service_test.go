package server

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/distq/distq/internal/packed"
	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/state"
	pb "github.com/distq/distq/proto/distq/v1"
)

func TestPutStreamAnswersEachBatchInOrder(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	stream, err := qc.Put(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	// Pipelined: all batches go out before any answer is read. Only the
	// first names the queue; a later one repeats it.
	batches := []*pb.PutRequest{
		{Queue: "tasks", Items: items("a", "b")},
		{Items: items("c", "d", "e")},
		{Items: nil},
		{Queue: "tasks", Items: items("f")},
	}
	for _, b := range batches {
		if err := stream.Send(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var got [][]uint64
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.GetIds())
	}
	want := [][]uint64{{1, 2}, {3, 4, 5}, nil, {6}}
	if len(got) != len(want) {
		t.Fatalf("got %d answers %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("answer %d: ids %v, want %v", i, got[i], want[i])
		}
	}
	peek, err := qc.Peek(testContext(t), &pb.PeekRequest{Queue: "tasks"})
	if err != nil {
		t.Fatal(err)
	}
	var payloads []string
	for _, d := range peek.GetItems() {
		payloads = append(payloads, string(d.GetPayload()))
	}
	if strings.Join(payloads, "") != "abcdef" {
		t.Fatalf("queue holds %q in that order, want abcdef", payloads)
	}
}

func TestPutNowaitOnFullQueueSendsAcceptedIdsFirst(t *testing.T) {
	m := startMaster(t, masterConfig{Queues: []queue.QueueConfig{{Name: "tasks", MaxSize: 3}}})
	qc := m.rawClient(t)
	stream, err := qc.Put(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.PutRequest{Queue: "tasks", Items: items("1", "2", "3", "4", "5"), Nowait: true}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("want the accepted ids before the error: %v", err)
	}
	if !slices.Equal(resp.GetIds(), []uint64{1, 2, 3}) {
		t.Fatalf("accepted ids %v, want [1 2 3]", resp.GetIds())
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.ResourceExhausted)
	if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, "distq: queue full") {
		t.Fatalf("message %q does not say the queue is full", msg)
	}
	if st := m.queue("tasks").Stats(); st.Ready != 3 || st.PutTotal != 3 {
		t.Fatalf("stats after a partial put: %+v", st)
	}

	// Nothing accepted at all: the error comes alone.
	stream, err = qc.Put(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.PutRequest{Queue: "tasks", Items: items("6"), Nowait: true}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.ResourceExhausted)

	// With a timeout the batch waits that long, then fails the same way.
	stream, err = qc.Put(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.PutRequest{Queue: "tasks", Items: items("6"), TimeoutMs: 20}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.ResourceExhausted)
}

func TestPutWaitsForRoom(t *testing.T) {
	m := startMaster(t, masterConfig{Queues: []queue.QueueConfig{{Name: "tasks", MaxSize: 1}}})
	qc := m.rawClient(t)
	put(t, qc, "tasks", "first")
	stream, err := qc.Put(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.PutRequest{Queue: "tasks", Items: items("second")}); err != nil {
		t.Fatal(err)
	}
	got, err := qc.Get(testContext(t), &pb.GetRequest{Queue: "tasks", AutoAck: true})
	if err != nil || len(got.GetDeliveries()) != 1 {
		t.Fatalf("get: %v %v", got, err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.GetIds(), []uint64{2}) {
		t.Fatalf("ids %v, want [2]", resp.GetIds())
	}
}

func TestPutIntoClosedOrDeadQueueIsRefused(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	if _, err := qc.Close(testContext(t), &pb.CloseRequest{Queue: "tasks"}); err != nil {
		t.Fatal(err)
	}
	for name, code := range map[string]codes.Code{"tasks": codes.FailedPrecondition, "results.dead": codes.InvalidArgument} {
		stream, err := qc.Put(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&pb.PutRequest{Queue: name, Items: items("x")}); err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		wantCode(t, err, code)
	}
}

// A producer id is empty or 16 bytes, not all zero, and comes with a
// sequence; a malformed one is refused before anything is stored. A
// well-formed one is accepted, and the answer does not claim dedup: this
// master does not deduplicate yet.
func TestPutChecksProducerID(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	pid := []byte("0123456789abcdef")
	for _, bad := range []struct {
		name string
		req  *pb.PutRequest
		says string
	}{
		{"short", &pb.PutRequest{ProducerId: pid[:15], Sequence: 1}, "producer_id must be empty or 16 bytes, not 15"},
		{"long", &pb.PutRequest{ProducerId: append(slices.Clone(pid), 'x'), Sequence: 1}, "producer_id must be empty or 16 bytes, not 17"},
		{"all zero", &pb.PutRequest{ProducerId: make([]byte, 16), Sequence: 1}, "producer_id must not be all zero"},
		{"no sequence", &pb.PutRequest{ProducerId: pid}, "sequence must be at least 1 when producer_id is set"},
	} {
		stream, err := qc.Put(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		bad.req.Queue, bad.req.Items = "tasks", items("x")
		if err := stream.Send(bad.req); err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		wantCode(t, err, codes.InvalidArgument)
		if !strings.Contains(status.Convert(err).Message(), bad.says) {
			t.Fatalf("%s: %v, want a message saying %q", bad.name, err, bad.says)
		}
	}
	if st := m.queue("tasks").Stats(); st.PutTotal != 0 {
		t.Fatalf("malformed puts stored items: %+v", st)
	}

	stream, err := qc.Put(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []*pb.PutRequest{
		{Queue: "tasks", Items: items("a"), ProducerId: pid, Sequence: 1},
		{Items: items("b"), Sequence: 5}, // a sequence alone is ignored
	} {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil || len(resp.GetIds()) != 1 || !resp.GetDedup() || resp.GetDuplicate() {
			t.Fatalf("put %v: %v, %v; want one id, stored once, in a master that says it deduplicates", req, resp, err)
		}
	}
}

// TestPutDedup: a put resent with the same producer and sequence is stored
// once and answered with its first ids; one stored in part stores the rest;
// one with other items is refused, and so is one older than the sequences
// remembered.
func TestPutDedup(t *testing.T) {
	m := startMaster(t, masterConfig{Queues: []queue.QueueConfig{{Name: "tasks"}, {Name: "small", MaxSize: 2}}})
	qc := m.rawClient(t)
	pid := []byte("0123456789abcdef")
	put := func(req *pb.PutRequest) (*pb.PutResponse, error) {
		t.Helper()
		stream, err := qc.Put(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if len(resp.GetIds()) < len(req.GetItems()) {
			_, err = stream.Recv() // the reason the rest was not stored
		}
		return resp, err
	}
	first, err := put(&pb.PutRequest{Queue: "tasks", Items: items("a", "b"), ProducerId: pid, Sequence: 1})
	if err != nil || len(first.GetIds()) != 2 || first.GetDuplicate() {
		t.Fatalf("first put: %v, %v", first, err)
	}
	again, err := put(&pb.PutRequest{Queue: "tasks", Items: items("a", "b"), ProducerId: pid, Sequence: 1})
	if err != nil || !slices.Equal(again.GetIds(), first.GetIds()) || !again.GetDuplicate() {
		t.Fatalf("resent put: %v, %v; want the first ids %v, duplicate", again, err, first.GetIds())
	}
	if st := m.queue("tasks").Stats(); st.PutTotal != 2 {
		t.Fatalf("a resent put was stored again: %+v", st)
	}
	_, err = put(&pb.PutRequest{Queue: "tasks", Items: items("a", "c"), ProducerId: pid, Sequence: 1})
	wantCode(t, err, codes.InvalidArgument)

	// Stored in part: the queue had room for two of three.
	part, err := put(&pb.PutRequest{Queue: "small", Items: items("x", "y", "z"), ProducerId: pid, Sequence: 1, Nowait: true})
	wantCode(t, err, codes.ResourceExhausted)
	if len(part.GetIds()) != 2 {
		t.Fatalf("part put: %v", part)
	}
	if _, err := m.queue("small").Get(testContext(t), 2, true, 0, true); err != nil {
		t.Fatal(err)
	}
	rest, err := put(&pb.PutRequest{Queue: "small", Items: items("x", "y", "z"), ProducerId: pid, Sequence: 1, Nowait: true})
	if err != nil || len(rest.GetIds()) != 3 || !slices.Equal(rest.GetIds()[:2], part.GetIds()) || !rest.GetDuplicate() {
		t.Fatalf("resent part put: %v, %v; want %v and one more", rest, err, part.GetIds())
	}
	if st := m.queue("small").Stats(); st.PutTotal != 3 {
		t.Fatalf("the resent part put stored %d items in all, want 3", st.PutTotal)
	}

	// Forgotten: more than state.SeqsPerProducer puts since.
	for seq := uint64(2); seq <= 2+state.SeqsPerProducer; seq++ {
		if _, err := put(&pb.PutRequest{Queue: "tasks", Items: items("n"), ProducerId: pid, Sequence: seq}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = put(&pb.PutRequest{Queue: "tasks", Items: items("a", "b"), ProducerId: pid, Sequence: 1})
	wantCode(t, err, codes.FailedPrecondition)
	if !strings.HasPrefix(status.Convert(err).Message(), "distq: put sequence forgotten") {
		t.Fatalf("forgotten put: %v", err)
	}
}

func TestUnknownQueueIsNotFoundOnEveryCall(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	ctx := testContext(t)
	const name = "nope"
	calls := map[string]func() error{
		"Put": func() error {
			stream, err := qc.Put(ctx)
			if err != nil {
				return err
			}
			if err := stream.Send(&pb.PutRequest{Queue: name, Items: items("x")}); err != nil && err != io.EOF {
				return err
			}
			_, err = stream.Recv()
			return err
		},
		"Put without a name": func() error {
			stream, err := qc.Put(ctx)
			if err != nil {
				return err
			}
			if err := stream.Send(&pb.PutRequest{Items: items("x")}); err != nil && err != io.EOF {
				return err
			}
			_, err = stream.Recv()
			return err
		},
		"Consume": func() error {
			stream, err := qc.Consume(ctx)
			if err != nil {
				return err
			}
			if err := stream.Send(&pb.ConsumeRequest{Queue: name, Credit: 1}); err != nil && err != io.EOF {
				return err
			}
			_, err = stream.Recv()
			return err
		},
		"Get":     func() error { _, err := qc.Get(ctx, &pb.GetRequest{Queue: name, Nowait: true}); return err },
		"Ack":     func() error { _, err := qc.Ack(ctx, &pb.AckRequest{Queue: name}); return err },
		"Nack":    func() error { _, err := qc.Nack(ctx, &pb.NackRequest{Queue: name}); return err },
		"Extend":  func() error { _, err := qc.Extend(ctx, &pb.ExtendRequest{Queue: name}); return err },
		"Stats":   func() error { _, err := qc.Stats(ctx, &pb.StatsRequest{Queue: name}); return err },
		"Join":    func() error { _, err := qc.Join(ctx, &pb.JoinRequest{Queue: name}); return err },
		"Close":   func() error { _, err := qc.Close(ctx, &pb.CloseRequest{Queue: name}); return err },
		"Peek":    func() error { _, err := qc.Peek(ctx, &pb.PeekRequest{Queue: name}); return err },
		"Requeue": func() error { _, err := qc.Requeue(ctx, &pb.RequeueRequest{Queue: name}); return err },
	}
	for method, call := range calls {
		t.Run(method, func(t *testing.T) { wantCode(t, call(), codes.NotFound) })
	}
}

func TestConsumeRespectsCredit(t *testing.T) {
	m := startMaster(t, masterConfig{LeaseTime: time.Hour})
	qc := m.rawClient(t)
	put(t, qc, "tasks", "1", "2", "3", "4", "5")
	stream, _ := consume(t, qc, "tasks", 2)
	first := recvDeliveries(t, stream, 2)
	if st := m.queue("tasks").Stats(); st.DeliveredTotal != 2 || st.Leased != 2 || st.Ready != 3 {
		t.Fatalf("after granting 2: %+v", st)
	}
	// Settling does not restore credit: the ack carries one more.
	if err := stream.Send(&pb.ConsumeRequest{Acks: acksOf(first[:1]), Credit: 1}); err != nil {
		t.Fatal(err)
	}
	third := recvDeliveries(t, stream, 1)
	if third[0].GetId() != 3 || third[0].GetAttempt() != 1 || third[0].GetLeaseDeadlineMs() == 0 {
		t.Fatalf("third delivery: %v", third[0])
	}
	// Say goodbye; whatever the master sent before ending the stream is
	// still counted against the credit of 3.
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	extra, err := recvEnd(t, stream)
	if err != io.EOF {
		t.Fatalf("a goodbye should end the stream cleanly: %v", err)
	}
	if extra != 0 {
		t.Fatalf("master sent %d deliveries beyond the credit granted", extra)
	}
	st := m.queue("tasks").Stats()
	if st.DeliveredTotal != 3 || st.AckedTotal != 1 || st.Leased != 0 || st.Ready != 4 {
		t.Fatalf("after the stream ended: %+v", st)
	}
	checkConservation(t, m.broker)
}

func TestConsumeAckWithReply(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	ids := put(t, qc, "tasks", "7")
	stream, _ := consume(t, qc, "tasks", 1)
	d := recvDeliveries(t, stream, 1)[0]
	ack := &pb.Ack{Id: d.GetId(), Lease: d.GetLease(), Reply: &pb.Item{Payload: []byte("49"), Headers: map[string]string{"k": "v"}}, ReplyQueue: "results"}
	if err := stream.Send(&pb.ConsumeRequest{Acks: []*pb.Ack{ack}}); err != nil {
		t.Fatal(err)
	}
	got, err := qc.Get(testContext(t), &pb.GetRequest{Queue: "results", TimeoutMs: 10000, AutoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GetDeliveries()) != 1 {
		t.Fatalf("results: %v", got)
	}
	r := got.GetDeliveries()[0]
	if r.GetReplyTo() != ids[0] || string(r.GetPayload()) != "49" || r.GetHeaders()["k"] != "v" {
		t.Fatalf("reply %v, want reply_to %d payload 49", r, ids[0])
	}
	if st := m.queue("tasks").Stats(); st.AckedTotal != 1 || st.Leased != 0 {
		t.Fatalf("tasks after the ack: %+v", st)
	}
}

func TestConsumeRefusesStaleSettles(t *testing.T) {
	m := startMaster(t, masterConfig{LeaseTime: time.Hour})
	qc := m.rawClient(t)
	put(t, qc, "tasks", "x")
	stream, _ := consume(t, qc, "tasks", 1)
	d := recvDeliveries(t, stream, 1)[0]

	stale := &pb.Ack{Id: d.GetId(), Lease: d.GetLease() + 7}
	badReply := &pb.Ack{Id: d.GetId(), Lease: d.GetLease(), Reply: &pb.Item{}, ReplyQueue: "nope"}
	if err := stream.Send(&pb.ConsumeRequest{
		Acks:    []*pb.Ack{stale, badReply},
		Nacks:   []*pb.Nack{{Id: 99, Lease: 1000}},
		Extends: []*pb.Extend{{Id: d.GetId(), Lease: d.GetLease() + 1}},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetDeliveries()) != 0 || len(resp.GetRefused()) != 4 {
		t.Fatalf("want four refusals and nothing else, got %v", resp)
	}
	for _, r := range resp.GetRefused() {
		if r.GetReason() == "" {
			t.Fatalf("refusal without a reason: %v", r)
		}
	}
	byLease := map[uint64]*pb.Refused{}
	for _, r := range resp.GetRefused() {
		byLease[r.GetLease()] = r
	}
	if r := byLease[d.GetLease()+7]; r == nil || r.GetId() != d.GetId() {
		t.Fatalf("the stale ack is not named in %v", resp.GetRefused())
	}
	if r := byLease[d.GetLease()]; r == nil || !strings.Contains(r.GetReason(), "nope") {
		t.Fatalf("the ack with an unknown reply queue is not named in %v", resp.GetRefused())
	}

	// The delivery still holds its lease: the right ack goes through, and
	// the queue, closed, drains and ends the stream cleanly.
	if err := stream.Send(&pb.ConsumeRequest{Acks: acksOf([]*pb.Delivery{d})}); err != nil {
		t.Fatal(err)
	}
	if _, err := qc.Close(testContext(t), &pb.CloseRequest{Queue: "tasks"}); err != nil {
		t.Fatal(err)
	}
	if extra, err := recvEnd(t, stream); err != io.EOF || extra != 0 {
		t.Fatalf("stream ended with %v after %d more deliveries; want a clean end", err, extra)
	}
	if st := m.queue("tasks").Stats(); st.AckedTotal != 1 || st.RefusedTotal < 3 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestConsumeRejectsASecondQueue(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	stream, _ := consume(t, qc, "tasks", 1)
	if err := stream.Send(&pb.ConsumeRequest{Queue: "tasks"}); err != nil { // repeating it is fine
		t.Fatal(err)
	}
	if err := stream.Send(&pb.ConsumeRequest{Queue: "results"}); err != nil {
		t.Fatal(err)
	}
	_, err := recvEnd(t, stream)
	wantCode(t, err, codes.InvalidArgument)
}

func TestConsumeStreamBreakReturnsLeasesAtOnce(t *testing.T) {
	m := startMaster(t, masterConfig{LeaseTime: time.Hour})
	qc := m.rawClient(t)
	put(t, qc, "tasks", "a", "b", "c")
	stream, cancel := consume(t, qc, "tasks", 3)
	recvDeliveries(t, stream, 3)
	if st := m.queue("tasks").Stats(); st.Leased != 3 || st.Consumers != 1 {
		t.Fatalf("before the break: %+v", st)
	}
	cancel()
	// The lease is an hour long: items can only come back this soon because
	// the stream ended. A blocking Get is woken by their return.
	var back []*pb.Delivery
	for len(back) < 3 {
		got, err := qc.Get(testContext(t), &pb.GetRequest{Queue: "tasks", MaxItems: 3, TimeoutMs: 10000})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.GetDeliveries()) == 0 {
			t.Fatal("leases of a broken stream did not come back")
		}
		back = append(back, got.GetDeliveries()...)
	}
	for _, d := range back {
		if d.GetAttempt() != 2 {
			t.Fatalf("item %d back with attempt %d, want 2", d.GetId(), d.GetAttempt())
		}
	}
	if st := m.queue("tasks").Stats(); st.Consumers != 0 || st.ExpiredTotal != 0 {
		t.Fatalf("after the break: %+v", st)
	}
}

func TestConsumeEndsCleanlyWhenClosedAndDrained(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	put(t, qc, "tasks", "a", "b")
	stream, _ := consume(t, qc, "tasks", 10)
	ds := recvDeliveries(t, stream, 2)
	if _, err := qc.Close(testContext(t), &pb.CloseRequest{Queue: "tasks"}); err != nil {
		t.Fatal(err)
	}
	// Closed but not drained: the stream stays open until the acks.
	if err := stream.Send(&pb.ConsumeRequest{Acks: acksOf(ds)}); err != nil {
		t.Fatal(err)
	}
	if extra, closed, err := recvEndClosed(t, stream); err != io.EOF || extra != 0 || !closed {
		t.Fatalf("got %v after %d deliveries, closed %v; want io.EOF after a closed response", err, extra, closed)
	}
	// A consumer that arrives after the end gets its clean end at once.
	late, _ := consume(t, qc, "tasks", 1)
	if _, closed, err := recvEndClosed(t, late); err != io.EOF || !closed {
		t.Fatalf("late consumer: %v, closed %v; want io.EOF after a closed response", err, closed)
	}
}

// A consumer's own goodbye (a half-close) on an open queue also ends the
// stream with OK, but without the closed response that says the work is
// over: the two ends can be told apart.
func TestConsumeHalfCloseIsNotClosed(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	put(t, qc, "tasks", "a")
	stream, _ := consume(t, qc, "tasks", 10)
	recvDeliveries(t, stream, 1)
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, closed, err := recvEndClosed(t, stream); err != io.EOF || closed {
		t.Fatalf("after a half-close: %v, closed %v; want io.EOF without a closed response", err, closed)
	}
	// The unsettled delivery went back to the queue with the stream.
	if st := m.queue("tasks").Stats(); st.Ready != 1 || st.Leased != 0 {
		t.Fatalf("after the half-close: %+v", st)
	}
}

// recvEndClosed reads a stream to its end, counting deliveries and noting a
// closed response.
func recvEndClosed(t testing.TB, stream pb.QueueService_ConsumeClient) (extra int, closed bool, err error) {
	t.Helper()
	for {
		resp, err := stream.Recv()
		if err != nil {
			return extra, closed, err
		}
		extra += len(resp.GetDeliveries())
		closed = closed || resp.GetClosed()
	}
}

func TestConsumeGoodbyeBeforeFirstRequest(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	stream, err := qc.Consume(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("got %v (%v), want a clean end", err, status.Code(err))
	}
}

func TestGetLimitsAndSemantics(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	ctx := testContext(t)
	_, err := qc.Get(ctx, &pb.GetRequest{Queue: "tasks", MaxItems: maxGetItems + 1})
	wantCode(t, err, codes.InvalidArgument)
	_, err = qc.Peek(ctx, &pb.PeekRequest{Queue: "tasks", Limit: maxGetItems + 1})
	wantCode(t, err, codes.InvalidArgument)

	// Nothing ready: nowait and timeouts answer empty, not with an error.
	for _, req := range []*pb.GetRequest{{Queue: "tasks", Nowait: true}, {Queue: "tasks", TimeoutMs: 5}} {
		got, err := qc.Get(ctx, req)
		if err != nil || len(got.GetDeliveries()) != 0 || got.GetClosed() {
			t.Fatalf("Get(%v) = %v, %v; want empty", req, got, err)
		}
	}
	// Without a timeout the call's deadline bounds the wait.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = qc.Get(short, &pb.GetRequest{Queue: "tasks"})
	wantCode(t, err, codes.DeadlineExceeded)

	put(t, qc, "tasks", "a", "b", "c")
	got, err := qc.Get(ctx, &pb.GetRequest{Queue: "tasks", MaxItems: maxGetItems, Nowait: true})
	if err != nil || len(got.GetDeliveries()) != 3 {
		t.Fatalf("Get of all: %v %v", got, err)
	}
	// Leased by Get: settled by unary Ack, Nack and Extend.
	ds := got.GetDeliveries()
	if r, err := qc.Extend(ctx, &pb.ExtendRequest{Queue: "tasks", Extends: []*pb.Extend{{Id: ds[0].GetId(), Lease: ds[0].GetLease(), LeaseMs: 60000}}, Incarnation: got.GetIncarnation()}); err != nil || len(r.GetRefused()) != 0 {
		t.Fatalf("extend: %v %v", r, err)
	}
	if r, err := qc.Ack(ctx, &pb.AckRequest{Queue: "tasks", Acks: acksOf(ds[:2]), Incarnation: got.GetIncarnation()}); err != nil || len(r.GetRefused()) != 0 {
		t.Fatalf("ack: %v %v", r, err)
	}
	if r, err := qc.Ack(ctx, &pb.AckRequest{Queue: "tasks", Acks: acksOf(ds[:1]), Incarnation: got.GetIncarnation()}); err != nil || len(r.GetRefused()) != 1 {
		t.Fatalf("second ack of the same lease: %v %v; want one refusal", r, err)
	}
	if r, err := qc.Nack(ctx, &pb.NackRequest{Queue: "tasks", Nacks: []*pb.Nack{{Id: ds[2].GetId(), Lease: ds[2].GetLease(), Action: pb.NackAction_NACK_ACTION_RELEASE}}, Incarnation: got.GetIncarnation()}); err != nil || len(r.GetRefused()) != 0 {
		t.Fatalf("nack: %v %v", r, err)
	}
	// Closed and drained: Get says so instead of waiting.
	if _, err := qc.Close(ctx, &pb.CloseRequest{Queue: "tasks"}); err != nil {
		t.Fatal(err)
	}
	got, err = qc.Get(ctx, &pb.GetRequest{Queue: "tasks", AutoAck: true})
	if err != nil || len(got.GetDeliveries()) != 1 || got.GetDeliveries()[0].GetAttempt() != 1 {
		t.Fatalf("the released item: %v %v", got, err)
	}
	got, err = qc.Get(ctx, &pb.GetRequest{Queue: "tasks"})
	if err != nil || !got.GetClosed() {
		t.Fatalf("Get on closed and drained: %v %v", got, err)
	}
}

func TestPeekAndRequeueDeadItems(t *testing.T) {
	m := startMaster(t, masterConfig{MaxAttempts: 1})
	qc := m.rawClient(t)
	ctx := testContext(t)
	ids := put(t, qc, "tasks", "a", "b")
	got, err := qc.Get(ctx, &pb.GetRequest{Queue: "tasks", MaxItems: 2, Nowait: true})
	if err != nil || len(got.GetDeliveries()) != 2 {
		t.Fatalf("get: %v %v", got, err)
	}
	var nacks []*pb.Nack
	for _, d := range got.GetDeliveries() {
		nacks = append(nacks, &pb.Nack{Id: d.GetId(), Lease: d.GetLease(), Error: "bad " + string(d.GetPayload())})
	}
	if _, err := qc.Nack(ctx, &pb.NackRequest{Queue: "tasks", Nacks: nacks, Incarnation: got.GetIncarnation()}); err != nil {
		t.Fatal(err)
	}
	dead, err := qc.Peek(ctx, &pb.PeekRequest{Queue: "tasks.dead"})
	if err != nil {
		t.Fatal(err)
	}
	if len(dead.GetItems()) != 2 || dead.GetItems()[0].GetError() != "bad a" || dead.GetItems()[1].GetError() != "bad b" {
		t.Fatalf("dead items: %v", dead.GetItems())
	}
	if page, err := qc.Peek(ctx, &pb.PeekRequest{Queue: "tasks.dead", Offset: 1, Limit: 5}); err != nil || len(page.GetItems()) != 1 || page.GetItems()[0].GetId() != ids[1] {
		t.Fatalf("peek from offset 1: %v %v", page, err)
	}
	if page, err := qc.Peek(ctx, &pb.PeekRequest{Queue: "tasks.dead", Offset: 1 << 63}); err != nil || len(page.GetItems()) != 0 {
		t.Fatalf("peek far past the end: %v %v", page, err)
	}

	// Requeue is asked of the live queue, not of its dead-letter queue.
	_, err = qc.Requeue(ctx, &pb.RequeueRequest{Queue: "tasks.dead"})
	wantCode(t, err, codes.InvalidArgument)

	r, err := qc.Requeue(ctx, &pb.RequeueRequest{Queue: "tasks", Ids: []uint64{ids[1], 12345}})
	if err != nil || r.GetRequeued() != 1 {
		t.Fatalf("requeue one: %v %v", r, err)
	}
	live, err := qc.Peek(ctx, &pb.PeekRequest{Queue: "tasks"})
	if err != nil || len(live.GetItems()) != 1 || live.GetItems()[0].GetId() != ids[1] || live.GetItems()[0].GetAttempt() != 0 || live.GetItems()[0].GetError() != "" {
		t.Fatalf("requeued item: %v %v", live, err)
	}
	r, err = qc.Requeue(ctx, &pb.RequeueRequest{Queue: "tasks"})
	if err != nil || r.GetRequeued() != 1 {
		t.Fatalf("requeue the rest: %v %v", r, err)
	}
	if st := m.queue("tasks").Stats(); st.Ready != 2 || st.Dead != 0 {
		t.Fatalf("after requeue: %+v", st)
	}
	checkConservation(t, m.broker)
}

func TestJoin(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	ctx := testContext(t)
	r, err := qc.Join(ctx, &pb.JoinRequest{Queue: "tasks", TimeoutMs: 1})
	if err != nil || !r.GetDone() {
		t.Fatalf("join of an empty queue: %v %v", r, err)
	}
	put(t, qc, "tasks", "a", "b")
	r, err = qc.Join(ctx, &pb.JoinRequest{Queue: "tasks", TimeoutMs: 5})
	if err != nil || r.GetDone() || r.GetStats().GetReady() != 2 {
		t.Fatalf("join with work outstanding: %v %v; want not done", r, err)
	}

	joined := make(chan *pb.JoinResponse, 1)
	go func() {
		r, err := qc.Join(ctx, &pb.JoinRequest{Queue: "tasks"})
		if err != nil {
			t.Error(err)
		}
		joined <- r
	}()
	stream, _ := consume(t, qc, "tasks", 2)
	ds := recvDeliveries(t, stream, 2)
	if err := stream.Send(&pb.ConsumeRequest{Acks: acksOf(ds)}); err != nil {
		t.Fatal(err)
	}
	r = <-joined
	if !r.GetDone() || r.GetStats().GetAckedTotal() != 2 {
		t.Fatalf("join after the acks: %v", r)
	}

	// A join bounded only by the call's deadline ends with it.
	put(t, qc, "tasks", "c")
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = qc.Join(short, &pb.JoinRequest{Queue: "tasks"})
	wantCode(t, err, codes.DeadlineExceeded)
}

func TestStatsAndClose(t *testing.T) {
	m := startMaster(t, masterConfig{Queues: []queue.QueueConfig{{Name: "tasks", MaxSize: 5}, {Name: "results"}}})
	qc := m.rawClient(t)
	ctx := testContext(t)
	put(t, qc, "tasks", "a")
	all, err := qc.Stats(ctx, &pb.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range all.GetQueues() {
		names = append(names, s.GetName())
	}
	if !slices.Equal(names, []string{"tasks", "tasks.dead", "results", "results.dead"}) {
		t.Fatalf("queues %v", names)
	}
	one, err := qc.Stats(ctx, &pb.StatsRequest{Queue: "tasks"})
	if err != nil || len(one.GetQueues()) != 1 {
		t.Fatalf("%v %v", one, err)
	}
	if s := one.GetQueues()[0]; s.GetReady() != 1 || s.GetMaxsize() != 5 || s.GetPutTotal() != 1 || s.GetClosed() {
		t.Fatalf("tasks: %v", s)
	}
	for range 2 { // closing twice is harmless
		if _, err := qc.Close(ctx, &pb.CloseRequest{Queue: "tasks"}); err != nil {
			t.Fatal(err)
		}
	}
	one, err = qc.Stats(ctx, &pb.StatsRequest{Queue: "tasks"})
	if err != nil || !one.GetQueues()[0].GetClosed() {
		t.Fatalf("after close: %v %v", one, err)
	}
}

// An ack batch travels beside plain acks in one request, with or without
// replies, on a stream whose ack buffer is reused from request to request;
// a batch whose columns disagree ends the stream with INVALID_ARGUMENT.
func TestConsumeAckBatch(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	put(t, qc, "tasks", "1", "2", "3", "4")
	stream, _ := consume(t, qc, "tasks", 4)
	ds := recvDeliveries(t, stream, 4)
	replies := func(ps ...string) *pb.Packed {
		var b packed.Builder
		for _, p := range ps {
			b.Add([]byte(p))
		}
		return b.Take()
	}
	first := &pb.ConsumeRequest{
		Acks: []*pb.Ack{{Id: ds[0].GetId(), Lease: ds[0].GetLease(), Reply: &pb.Item{Payload: []byte("a")}, ReplyQueue: "results"}},
		AckBatch: &pb.AckBatch{Ids: []uint64{ds[1].GetId()}, Leases: []uint64{ds[1].GetLease()},
			ReplyQueue: "results", Replies: replies("b")},
	}
	second := &pb.ConsumeRequest{AckBatch: &pb.AckBatch{Ids: []uint64{ds[2].GetId()}, Leases: []uint64{ds[2].GetLease()}}}
	for _, req := range []*pb.ConsumeRequest{first, second} {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	got, err := qc.Get(testContext(t), &pb.GetRequest{Queue: "results", MaxItems: 10, TimeoutMs: 10000, AutoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	var payloads []string
	for _, d := range got.GetDeliveries() {
		payloads = append(payloads, string(d.GetPayload()))
	}
	if len(payloads) < 2 {
		// The second reply may trail the first Get by a moment.
		more, err := qc.Get(testContext(t), &pb.GetRequest{Queue: "results", MaxItems: 10, TimeoutMs: 10000, AutoAck: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range more.GetDeliveries() {
			payloads = append(payloads, string(d.GetPayload()))
		}
	}
	if len(payloads) != 2 || payloads[0] != "a" || payloads[1] != "b" {
		t.Fatalf("results %q, want [a b]", payloads)
	}

	bad := &pb.ConsumeRequest{AckBatch: &pb.AckBatch{Ids: []uint64{ds[3].GetId()}, Leases: []uint64{ds[3].GetLease()},
		ReplyQueue: "results", Replies: replies("x", "y")}}
	if err := stream.Send(bad); err != nil {
		t.Fatal(err)
	}
	_, err = recvEnd(t, stream)
	wantCode(t, err, codes.InvalidArgument)
	if st := m.queue("tasks").Stats(); st.AckedTotal != 3 || st.Ready != 1 || st.Leased != 0 {
		t.Fatalf("tasks after the bad batch: %+v (want 3 acked, the 4th back in the queue)", st)
	}
}

// Unary settles name the incarnation of the master that leased the items:
// a settle of another incarnation, or of none, is refused whole and the
// items stay leased; the master's own is applied.
func TestUnarySettlesNameTheIncarnation(t *testing.T) {
	m := startMaster(t, masterConfig{})
	qc := m.rawClient(t)
	ctx := testContext(t)
	put(t, qc, "tasks", "a", "b")
	got, err := qc.Get(ctx, &pb.GetRequest{Queue: "tasks", MaxItems: 2, Nowait: true})
	if err != nil || len(got.GetDeliveries()) != 2 || got.GetIncarnation() == 0 {
		t.Fatalf("Get: %v, %v; want two items and the incarnation", got, err)
	}
	ds := got.GetDeliveries()
	for _, inc := range []uint64{0, got.GetIncarnation() + 1} {
		ack, err := qc.Ack(ctx, &pb.AckRequest{Queue: "tasks", Acks: acksOf(ds), Incarnation: inc})
		if err != nil || len(ack.GetRefused()) != 2 || ack.GetRefused()[0].GetReason() != queue.ReasonIncarnation {
			t.Fatalf("ack naming incarnation %d: %v, %v; want both refused", inc, ack, err)
		}
		nack, err := qc.Nack(ctx, &pb.NackRequest{Queue: "tasks", Nacks: []*pb.Nack{{Id: ds[0].GetId(), Lease: ds[0].GetLease()}}, Incarnation: inc})
		if err != nil || len(nack.GetRefused()) != 1 {
			t.Fatalf("nack naming incarnation %d: %v, %v; want refused", inc, nack, err)
		}
		ext, err := qc.Extend(ctx, &pb.ExtendRequest{Queue: "tasks", Extends: []*pb.Extend{{Id: ds[0].GetId(), Lease: ds[0].GetLease()}}, Incarnation: inc})
		if err != nil || len(ext.GetRefused()) != 1 {
			t.Fatalf("extend naming incarnation %d: %v, %v; want refused", inc, ext, err)
		}
	}
	if st := m.queue("tasks").Stats(); st.Leased != 2 || st.AckedTotal != 0 || st.RefusedTotal != 8 {
		t.Fatalf("stats %+v; want both still leased and 8 refusals counted", st)
	}
	ack, err := qc.Ack(ctx, &pb.AckRequest{Queue: "tasks", Acks: acksOf(ds), Incarnation: got.GetIncarnation()})
	if err != nil || len(ack.GetRefused()) != 0 {
		t.Fatalf("ack naming the master's incarnation: %v, %v", ack, err)
	}
}
