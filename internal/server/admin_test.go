package server

import (
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/errinfo"
	"github.com/distq/distq/internal/queue"
	pb "github.com/distq/distq/proto/distq/v1"
)

// adminClient is an authenticated AdminService client on its own
// connection, and a QueueService client on the same.
func (m *master) adminClient(t testing.TB) (pb.AdminServiceClient, pb.QueueServiceClient) {
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
	return pb.NewAdminServiceClient(conn), pb.NewQueueServiceClient(conn)
}

// wantReason checks a status's code and its distq reason.
func wantReason(t testing.TB, err error, code codes.Code, reason string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || errinfo.Reason(st) != reason {
		t.Fatalf("error %v: code %v reason %q, want %v %q", err, st.Code(), errinfo.Reason(st), code, reason)
	}
}

// TestAdminNeedsSession: the auth tap covers AdminService as it covers
// QueueService: a call without a session is refused before it runs.
func TestAdminNeedsSession(t *testing.T) {
	m := startMaster(t, masterConfig{})
	conn, err := grpc.NewClient(m.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ac := pb.NewAdminServiceClient(conn)
	ctx := testContext(t)
	_, err = ac.Pause(ctx, &pb.PauseRequest{Queue: "tasks"})
	wantCode(t, err, codes.Unauthenticated)
	_, err = ac.ListConsumers(ctx, &pb.ListConsumersRequest{})
	wantCode(t, err, codes.Unauthenticated)
	if m.queue("tasks").Paused() {
		t.Fatal("an unauthenticated Pause paused the queue")
	}
}

// TestAdminService: every call of AdminService against a master, with a
// consumer on the wire: its peer, counts and last contact; the dead items
// with their errors, paged; purge; pause and resume as the consumer sees
// them; and the reasons of refusals.
func TestAdminService(t *testing.T) {
	m := startMaster(t, masterConfig{MaxAttempts: 1})
	admin, qc := m.adminClient(t)
	ctx := testContext(t)

	put(t, qc, "tasks", "a", "b", "c", "d", "e")
	stream, cancel := consume(t, qc, "tasks", 3)
	defer cancel()
	ds := recvDeliveries(t, stream, 3)
	// One acked, one nacked (dead at once: MaxAttempts 1), one held.
	if err := stream.Send(&pb.ConsumeRequest{
		Acks:  acksOf(ds[:1]),
		Nacks: []*pb.Nack{{Id: ds[1].GetId(), Lease: ds[1].GetLease(), Error: "it broke"}},
	}); err != nil {
		t.Fatal(err)
	}
	var cs []*pb.ConsumerInfo
	waitUntil(t, "the settles to count", func() bool {
		resp, err := admin.ListConsumers(ctx, &pb.ListConsumersRequest{Queue: "tasks"})
		if err != nil {
			t.Fatal(err)
		}
		cs = resp.GetConsumers()
		return len(cs) == 1 && cs[0].GetAcked() == 1 && cs[0].GetFailed() == 1
	})
	c := cs[0]
	if c.GetQueue() != "tasks" || c.GetPeer() == "" || c.GetHeld() != 1 || c.GetDelivered() != 3 || c.GetCredit() != 0 ||
		c.GetConnectedMs() == 0 || c.GetLastSeenMs() < c.GetConnectedMs() {
		t.Fatalf("consumer: %+v", c)
	}
	all, err := admin.ListConsumers(ctx, &pb.ListConsumersRequest{})
	if err != nil || len(all.GetConsumers()) != 1 {
		t.Fatalf("ListConsumers of all queues: %v, %v", all, err)
	}

	// Dead items, by the queue's name or its dead-letter queue's.
	for _, name := range []string{"tasks", "tasks.dead"} {
		dead, err := admin.ListDead(ctx, &pb.ListDeadRequest{Queue: name})
		if err != nil || dead.GetTotal() != 1 || len(dead.GetItems()) != 1 {
			t.Fatalf("ListDead(%s): %v, %v", name, dead, err)
		}
		if it := dead.GetItems()[0]; it.GetId() != ds[1].GetId() || it.GetError() != "it broke" || it.GetAttempts() != 1 || string(it.GetPayload()) != "b" {
			t.Fatalf("dead item: %+v", it)
		}
	}
	if dead, err := admin.ListDead(ctx, &pb.ListDeadRequest{Queue: "tasks", Offset: 1}); err != nil || dead.GetTotal() != 1 || len(dead.GetItems()) != 0 {
		t.Fatalf("ListDead past the end: %v, %v", dead, err)
	}

	// Pause: the consumer gets nothing more, though it grants credit.
	if _, err := admin.Pause(ctx, &pb.PauseRequest{Queue: "tasks"}); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.ConsumeRequest{Credit: 5}); err != nil {
		t.Fatal(err)
	}
	st, err := qc.Stats(ctx, &pb.StatsRequest{Queue: "tasks"})
	if err != nil || !st.GetQueues()[0].GetPaused() {
		t.Fatalf("Stats of a paused queue: %v, %v", st, err)
	}
	waitUntil(t, "the credit to arrive", func() bool {
		resp, _ := admin.ListConsumers(ctx, &pb.ListConsumersRequest{Queue: "tasks"})
		return len(resp.GetConsumers()) == 1 && resp.GetConsumers()[0].GetCredit() == 5
	})
	if ds := m.queue("tasks").Stats(); ds.Ready != 2 || ds.Leased != 1 {
		t.Fatalf("a paused queue handed out: %+v", ds)
	}
	// Purge: the two ready go, the held one stays.
	pr, err := admin.Purge(ctx, &pb.PurgeRequest{Queue: "tasks"})
	if err != nil || pr.GetPurged() != 2 {
		t.Fatalf("Purge: %v, %v", pr, err)
	}
	put(t, qc, "tasks", "f")
	if _, err := admin.Resume(ctx, &pb.ResumeRequest{Queue: "tasks"}); err != nil {
		t.Fatal(err)
	}
	if got := recvDeliveries(t, stream, 1); string(got[0].GetPayload()) != "f" {
		t.Fatalf("after resume: %q", got[0].GetPayload())
	}
	if pr, err := admin.Purge(ctx, &pb.PurgeRequest{Queue: "tasks.dead"}); err != nil || pr.GetPurged() != 1 {
		t.Fatalf("Purge of the dead: %v, %v", pr, err)
	}
	st, _ = qc.Stats(ctx, &pb.StatsRequest{Queue: "tasks"})
	if q := st.GetQueues()[0]; q.GetPaused() || q.GetDead() != 0 || q.GetPurgedTotal() != 2 {
		t.Fatalf("stats after: %+v", q)
	}

	// Refusals carry their reason.
	_, err = admin.Pause(ctx, &pb.PauseRequest{Queue: "nope"})
	wantReason(t, err, codes.NotFound, errinfo.UnknownQueue)
	_, err = admin.ListDead(ctx, &pb.ListDeadRequest{Queue: "tasks", Limit: maxGetItems + 1})
	wantReason(t, err, codes.InvalidArgument, errinfo.InvalidArgument)
	_, err = qc.Requeue(ctx, &pb.RequeueRequest{Queue: "tasks.dead"})
	wantReason(t, err, codes.InvalidArgument, errinfo.InvalidArgument)
}

// TestReasonsOnTheWire: the refusals a producer meets carry their reason:
// a full queue, a closed one, a dead-letter queue, an unknown one.
func TestReasonsOnTheWire(t *testing.T) {
	m := startMaster(t, masterConfig{Queues: []queue.QueueConfig{{Name: "tasks", MaxSize: 1}, {Name: "results"}}})
	qc := m.rawClient(t)
	ctx := testContext(t)
	put(t, qc, "tasks", "a")
	for _, tc := range []struct {
		queue  string
		code   codes.Code
		reason string
	}{
		{"tasks", codes.ResourceExhausted, errinfo.QueueFull},
		{"tasks.dead", codes.InvalidArgument, errinfo.ReadOnlyQueue},
		{"nope", codes.NotFound, errinfo.UnknownQueue},
	} {
		s, err := qc.Put(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&pb.PutRequest{Queue: tc.queue, Items: items("x"), Nowait: true}); err != nil {
			t.Fatal(err)
		}
		_, err = s.Recv()
		wantReason(t, err, tc.code, tc.reason)
	}
	if _, err := qc.Close(ctx, &pb.CloseRequest{Queue: "results"}); err != nil {
		t.Fatal(err)
	}
	s, err := qc.Put(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Send(&pb.PutRequest{Queue: "results", Items: items("x")})
	_, err = s.Recv()
	wantReason(t, err, codes.FailedPrecondition, errinfo.QueueClosed)
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
