package server

import (
	"testing"
	"time"

	"github.com/distq/distq/internal/clock"
	"github.com/distq/distq/internal/queue"
	pb "github.com/distq/distq/proto/distq/v1"
)

// toNacks passes a retry's delay_ms on, or else draws its jitter; other
// actions neither wait nor jitter.
func TestToNacksDelayAndJitter(t *testing.T) {
	var in []*pb.Nack
	for range 100 {
		in = append(in, &pb.Nack{Id: 1, Lease: 1})
	}
	in = append(in,
		&pb.Nack{Id: 2, Lease: 2, DelayMs: 1500},
		&pb.Nack{Id: 3, Lease: 3, DelayMs: 1500, Action: pb.NackAction_NACK_ACTION_RELEASE},
		&pb.Nack{Id: 4, Lease: 4, DelayMs: 1500, Action: pb.NackAction_NACK_ACTION_DEAD},
	)
	out := toNacks(in)
	distinct := map[float64]bool{}
	for _, n := range out[:100] {
		if n.Action != queue.NackRetry || n.Delay != 0 || n.Jitter < 0 || n.Jitter >= 1 {
			t.Fatalf("retry without delay: %+v", n)
		}
		distinct[n.Jitter] = true
	}
	if len(distinct) < 50 {
		t.Fatalf("%d distinct jitters in 100 retries", len(distinct))
	}
	if n := out[100]; n.Action != queue.NackRetry || n.Delay != 1500*time.Millisecond || n.Jitter != 0 {
		t.Fatalf("retry with delay_ms: %+v", n)
	}
	for _, n := range out[101:] {
		if n.Action == queue.NackRetry || n.Delay != 0 || n.Jitter != 0 {
			t.Fatalf("release or dead: %+v", n)
		}
	}
}

// Over the wire: a nack's delay_ms is honoured, one without takes the
// queue's backoff within its jitter bounds, and Stats count both as
// delayed, not ready.
func TestNackDelayOverTheWire(t *testing.T) {
	clk := clock.NewManual(time.Unix(1700000000, 0))
	m := startMaster(t, masterConfig{Clock: clk, RetryMin: time.Second, RetryMax: time.Second})
	qc := m.rawClient(t)
	ctx := testContext(t)
	put(t, qc, "tasks", "backoff", "asked")
	got, err := qc.Get(ctx, &pb.GetRequest{Queue: "tasks", MaxItems: 2, Nowait: true})
	if err != nil || len(got.GetDeliveries()) != 2 {
		t.Fatalf("Get: %v, %v", got, err)
	}
	ds := got.GetDeliveries()
	r, err := qc.Nack(ctx, &pb.NackRequest{Queue: "tasks", Nacks: []*pb.Nack{
		{Id: ds[0].GetId(), Lease: ds[0].GetLease(), Error: "e"},
		{Id: ds[1].GetId(), Lease: ds[1].GetLease(), Error: "e", DelayMs: 1500},
	}, Incarnation: got.GetIncarnation()})
	if err != nil || len(r.GetRefused()) != 0 {
		t.Fatalf("Nack: %v, %v", r, err)
	}
	st, err := qc.Stats(ctx, &pb.StatsRequest{Queue: "tasks"})
	if s := st.GetQueues()[0]; err != nil || s.GetDelayed() != 2 || s.GetReady() != 0 || s.GetLeased() != 0 {
		t.Fatalf("Stats: %v, %v", st, err)
	}
	// The backoff of a first attempt with a 1 s delay waits 0.5 s to 1 s.
	clk.Advance(500*time.Millisecond - 1)
	if n := m.broker.PromoteDelayed(); n != 0 {
		t.Fatalf("%d ready before half the backoff", n)
	}
	clk.Advance(500 * time.Millisecond)
	if n := m.broker.PromoteDelayed(); n != 1 {
		t.Fatalf("%d ready at the backoff's bound, want 1", n)
	}
	clk.Advance(500 * time.Millisecond) // 1.5 s - 1 ns since the nack
	if n := m.broker.PromoteDelayed(); n != 0 {
		t.Fatalf("the asked delay: ready %v early", time.Nanosecond)
	}
	clk.Advance(1)
	if n := m.broker.PromoteDelayed(); n != 1 {
		t.Fatal("the asked delay: not ready after 1.5 s")
	}
	st, err = qc.Stats(ctx, &pb.StatsRequest{Queue: "tasks"})
	if s := st.GetQueues()[0]; err != nil || s.GetDelayed() != 0 || s.GetReady() != 2 {
		t.Fatalf("Stats: %v, %v", st, err)
	}
}
