package server

import (
	"testing"
	"time"

	"github.com/distq/distq/internal/queue"
	pb "github.com/distq/distq/proto/distq/v1"
)

// Leased deliveries carry the lease's length in every form the master sends
// them; items not leased (taken with auto-ack, peeked) carry none.
func TestDeliveriesCarryLeaseLength(t *testing.T) {
	const want = uint32(90000)
	m := startMaster(t, masterConfig{LeaseTime: 90 * time.Second})
	qc := m.rawClient(t)
	ctx := testContext(t)
	put(t, qc, "tasks", "1", "2", "3", "4", "5", "6")

	plain, _ := consume(t, qc, "tasks", 1)
	if d := recvDeliveries(t, plain, 1)[0]; d.GetLeaseMs() != want {
		t.Errorf("Consume delivery: lease_ms %d, want %d", d.GetLeaseMs(), want)
	}
	packedStream, err := qc.Consume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := packedStream.Send(&pb.ConsumeRequest{Queue: "tasks", Credit: 1, Packed: true}); err != nil {
		t.Fatal(err)
	}
	resp, err := packedStream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if b := resp.GetBatch(); len(b.GetIds()) != 1 || b.GetLeaseMs() != want {
		t.Errorf("Consume batch: %d ids, lease_ms %d; want 1, %d", len(b.GetIds()), b.GetLeaseMs(), want)
	}

	leased, err := qc.Get(ctx, &pb.GetRequest{Queue: "tasks", MaxItems: 1, Packed: true})
	if err != nil {
		t.Fatal(err)
	}
	if b := leased.GetBatch(); len(b.GetIds()) != 1 || b.GetLeaseMs() != want {
		t.Errorf("Get without auto-ack, packed: %d ids, lease_ms %d; want 1, %d", len(b.GetIds()), b.GetLeaseMs(), want)
	}
	leasedPlain, err := qc.Get(ctx, &pb.GetRequest{Queue: "tasks", MaxItems: 1})
	if err != nil {
		t.Fatal(err)
	}
	if ds := leasedPlain.GetDeliveries(); len(ds) != 1 || ds[0].GetLeaseMs() != want {
		t.Errorf("Get without auto-ack: %v; want one delivery with lease_ms %d", ds, want)
	}
	taken, err := qc.Get(ctx, &pb.GetRequest{Queue: "tasks", MaxItems: 1, AutoAck: true, Packed: true})
	if err != nil {
		t.Fatal(err)
	}
	if b := taken.GetBatch(); len(b.GetIds()) != 1 || b.GetLeaseMs() != 0 || b.GetLeaseDeadlineMs() != 0 {
		t.Errorf("Get with auto-ack: %d ids, lease_ms %d, deadline %d; want 1, 0, 0", len(b.GetIds()), b.GetLeaseMs(), b.GetLeaseDeadlineMs())
	}
	peek, err := qc.Peek(ctx, &pb.PeekRequest{Queue: "tasks"})
	if err != nil {
		t.Fatal(err)
	}
	if ds := peek.GetItems(); len(ds) != 1 || ds[0].GetLeaseMs() != 0 {
		t.Errorf("Peek: %v; want one item without lease_ms", ds)
	}
}

// A delivery with headers keeps its own message beside a packed batch; it
// carries the lease's length too.
func TestBatchWithHeadersCarriesLeaseLength(t *testing.T) {
	deadline := time.Unix(1700000000, 0)
	b, plain := toBatch([]queue.Delivery{
		{ID: 1, Lease: 11, Attempt: 1, Payload: []byte("a"), Deadline: deadline},
		{ID: 2, Lease: 12, Attempt: 1, Payload: []byte("b"), Headers: map[string]string{"k": "v"}, Deadline: deadline},
	}, 1500)
	if b.GetLeaseMs() != 1500 || len(b.GetIds()) != 1 {
		t.Errorf("batch: %d ids, lease_ms %d; want 1, 1500", len(b.GetIds()), b.GetLeaseMs())
	}
	if len(plain) != 1 || plain[0].GetLeaseMs() != 1500 || plain[0].GetLeaseDeadlineMs() != deadline.UnixMilli() {
		t.Errorf("plain deliveries: %v; want one with lease_ms 1500", plain)
	}
	if b, _ := toBatch([]queue.Delivery{{ID: 3, Payload: []byte("c")}}, 1500); b.GetLeaseMs() != 0 {
		t.Errorf("an item taken with auto-ack: lease_ms %d, want 0", b.GetLeaseMs())
	}
}

// One request may extend a lease and then settle it (a worker's handler
// extends and returns, and both go out together): the extend is applied
// first, so neither is refused.
func TestConsumeAppliesExtendsBeforeSettles(t *testing.T) {
	m := startMaster(t, masterConfig{LeaseTime: time.Hour})
	qc := m.rawClient(t)
	put(t, qc, "tasks", "a", "b")
	stream, _ := consume(t, qc, "tasks", 2)
	ds := recvDeliveries(t, stream, 2)
	if err := stream.Send(&pb.ConsumeRequest{
		Acks:    acksOf(ds[:1]),
		Nacks:   []*pb.Nack{{Id: ds[1].GetId(), Lease: ds[1].GetLease(), Action: pb.NackAction_NACK_ACTION_RELEASE}},
		Extends: []*pb.Extend{{Id: ds[0].GetId(), Lease: ds[0].GetLease()}, {Id: ds[1].GetId(), Lease: ds[1].GetLease()}},
	}); err != nil {
		t.Fatal(err)
	}
	// A second request is applied after the first: once its refusal of a
	// stale lease arrives, the first request's answer (if any) has too.
	if err := stream.Send(&pb.ConsumeRequest{Extends: []*pb.Extend{{Id: ds[0].GetId(), Lease: ds[0].GetLease() + 9}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if rs := resp.GetRefused(); len(rs) != 1 || rs[0].GetLease() != ds[0].GetLease()+9 {
		t.Fatalf("refused %v; want only the stale extend of the second request", rs)
	}
	if st := m.queue("tasks").Stats(); st.AckedTotal != 1 || st.Ready != 1 || st.Leased != 0 || st.RefusedTotal != 1 {
		t.Fatalf("tasks: %+v", st)
	}
}
