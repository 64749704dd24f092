package distq

import (
	"slices"
	"testing"
	"time"

	pb "github.com/distq/distq/proto/distq/v1"
)

// The renewal list, one tick at a time, on a clock the test moves.
func TestRenewalsOrderAndHolds(t *testing.T) {
	r := newRenewals(0)
	clk := time.Unix(1700000000, 0)
	r.now = func() time.Time { return clk }
	task := func(id uint64) *Task { return &Task{ID: id, lease: 100 + id} }
	a, b, c := task(1), task(2), task(3)
	// tick moves the clock a quarter lease on and takes the due tasks.
	tick := func(want ...uint64) {
		t.Helper()
		clk = clk.Add(15 * time.Minute)
		var got []uint64
		for _, t := range r.due(nil) {
			got = append(got, t.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("due %v, want %v", got, want)
		}
	}

	r.add([]heldChunk{{tasks: []*Task{task(9)}}}, 0) // an older master: no renewals
	if r.head != nil || len(r.known) != 0 {
		t.Fatal("a batch without a lease length was taken up")
	}
	ab := []heldChunk{{tasks: []*Task{a, b}}}
	r.add(ab, time.Hour)
	if every := <-r.known; every != 15*time.Minute {
		t.Fatalf("tick every %v, want a quarter lease", every)
	}
	// Received before a tick, a task is renewed at the tick after: a
	// quarter to half a lease later, then at every tick.
	tick()
	cs := []heldChunk{{tasks: []*Task{c}}}
	r.add(cs, time.Hour)
	tick(1, 2)
	r.settled(&ab[0], 1) // a's handler returned
	tick(3, 2)

	// b's handler holds it for 100 minutes: no renewal while more than a
	// lease of that is left, then renewals again.
	if d := r.extended(b, 100*time.Minute); d != 100*time.Minute {
		t.Fatalf("a hold longer than a lease asked for %v", d)
	}
	tick(3)
	tick(3)
	tick(3, 2) // 55 minutes left
	if d := r.extended(c, time.Minute); d != 0 {
		t.Fatalf("an extension shorter than a lease asked for %v, want a lease (0)", d)
	}
	// A shorter extension replaces a longer hold: renewals go on.
	r.extended(c, 2*time.Hour)
	tick(2)
	r.extended(c, 0)
	tick(3, 2)

	// The master refused b's renewal: b is not renewed again.
	r.refused([]*pb.Refused{{Id: b.ID, Lease: b.lease}, {Id: 77, Lease: 7}})
	tick(3)
	tick(3)
	tick(3)
	if len(r.refusals)+len(r.refusalsBefore) != 0 {
		t.Fatalf("refusals kept past two ticks: %v %v", r.refusals, r.refusalsBefore)
	}
	r.settled(&ab[0], 2)
	if len(r.marks) != 0 || ab[0].linked {
		t.Fatalf("a settled chunk is still kept: marks %v", r.marks)
	}
	r.settled(&cs[0], 1)
	if r.head != nil || r.tail != nil {
		t.Fatal("the list is not empty after every task was settled")
	}
	tick()
	if len(r.known) != 0 {
		t.Fatal("the tick period was sent twice")
	}
}

// The cost per task of renewals on the hot path: a batch added by the
// receiver in chunks, settled by the pool a part at a time, with no tick
// in between (fast tasks finish long before a quarter lease).
func BenchmarkRenewalsAddSettle(b *testing.B) {
	const batch, chunk, flush = 1024, 512, 64
	r := newRenewals(0)
	all := make([]Task, batch)
	tasks := make([]*Task, batch)
	for i := range all {
		all[i] = Task{ID: uint64(i), lease: uint64(i), LeaseTime: time.Minute}
		tasks[i] = &all[i]
	}
	b.ResetTimer()
	for range b.N {
		held := make([]heldChunk, batch/chunk)
		for i := range held {
			held[i].tasks = tasks[i*chunk : (i+1)*chunk]
		}
		r.add(held, time.Minute)
		for i := range held {
			for upto := flush; upto <= chunk; upto += flush {
				r.settled(&held[i], upto)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/task")
}
