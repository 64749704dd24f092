package queue

import (
	"testing"
	"time"
)

// TestSettleRefusals: a settle is found by its lease id, and one that does
// not name a current lease of its item is refused as before: "not leased"
// when the item is in flight under another lease (or to another owner),
// "unknown item" when it is not in flight at all.
func TestSettleRefusals(t *testing.T) {
	b, clk := newTestBroker(t, Config{LeaseTime: 10 * time.Second})
	q := mustQueue(t, b, "tasks")
	mustPut(t, q, msgs("a", "b", "c")...)
	ds := mustGet(t, q, 2, false)
	a, bb := ds[0], ds[1]
	c := mustConsumer(t, q)
	c.Grant(1)
	cd := mustNext(t, c, 1)[0]
	refusal := func(want string, acks ...Ack) {
		t.Helper()
		r := q.Ack(acks)
		if len(r) != 1 || r[0].Reason != want || r[0].ID != acks[0].ID || r[0].Lease != acks[0].Lease {
			t.Fatalf("Ack(%+v) = %+v, want one refusal %q", acks, r, want)
		}
		mustCheck(t, q)
	}
	refusal(ReasonNotLeased, Ack{ID: a.ID, Lease: bb.Lease})     // another item's lease
	refusal(ReasonNotLeased, Ack{ID: a.ID, Lease: 0})            // no lease
	refusal(ReasonNotLeased, Ack{ID: a.ID, Lease: cd.Lease + 9}) // a lease not given yet
	refusal(ReasonUnknownItem, Ack{ID: 999, Lease: a.Lease})     // no such item
	refusal(ReasonNotLeased, ackOf(cd))                          // held by the consumer
	if r := c.Ack([]Ack{ackOf(a)}); len(r) != 1 || r[0].Reason != ReasonNotLeased {
		t.Fatalf("consumer acks a Get lease: %+v", r)
	}
	// a expires and is leased again: its old lease is stale.
	if r := q.Extend([]Extend{{ID: bb.ID, Lease: bb.Lease, Duration: time.Hour}}); r != nil {
		t.Fatal(r)
	}
	clk.Advance(11 * time.Second)
	if n := b.ExpireLeases(); n != 2 { // a and c's
		t.Fatalf("ExpireLeases = %d, want 2", n)
	}
	refusal(ReasonUnknownItem, ackOf(a)) // back in the queue
	a2 := mustGet(t, q, 1, false)[0]
	if a2.ID != a.ID && a2.ID != cd.ID {
		t.Fatalf("got item %d again, want %d or %d", a2.ID, a.ID, cd.ID)
	}
	old := a
	if a2.ID == cd.ID {
		old = cd
	}
	refusal(ReasonNotLeased, Ack{ID: old.ID, Lease: old.Lease}) // in flight again
	if r := q.Ack([]Ack{ackOf(a2), ackOf(bb)}); r != nil {
		t.Fatal(r)
	}
	refusal(ReasonUnknownItem, ackOf(a2)) // already settled
	refusal(ReasonUnknownItem, ackOf(bb))
	mustCheck(t, q)
}

// TestLeaseWindowBound: a lease extended again and again while many others
// come and go does not make the lease window grow: it moves to the overflow
// map, where it is still found, settled, and refused to others.
func TestLeaseWindowBound(t *testing.T) {
	b, _ := newTestBroker(t, Config{LeaseTime: time.Minute})
	q := mustQueue(t, b, "tasks")
	mustPut(t, q, msgs("stuck")...)
	stuck := mustGet(t, q, 1, false)[0]
	c := mustConsumer(t, q)
	c.Grant(1)
	mustPut(t, q, msgs("held")...)
	held := mustNext(t, c, 1)[0]
	maxRing := 0
	const rounds = 4 * winSlack
	for i := range rounds {
		mustPut(t, q, numbered(3)...)
		ds := mustGet(t, q, 3, false)
		acks := []Ack{ackOf(ds[0]), ackOf(ds[2])}
		if r := q.Ack(acks); r != nil {
			t.Fatal(r)
		}
		if r := q.Ack([]Ack{ackOf(ds[1])}); r != nil {
			t.Fatal(r)
		}
		if i%100 == 0 {
			if r := q.Extend([]Extend{{ID: stuck.ID, Lease: stuck.Lease}}); r != nil {
				t.Fatal(r)
			}
			if r := c.Extend([]Extend{{ID: held.ID, Lease: held.Lease}}); r != nil {
				t.Fatal(r)
			}
			mustCheck(t, q)
		}
		q.mu.Lock()
		if q.winN > winFactor*(q.nleased+3)+winSlack { // the bound is checked as leases are added
			q.mu.Unlock()
			t.Fatalf("round %d: lease window of %d slots for %d leases", i, q.winN, q.nleased)
		}
		maxRing = max(maxRing, len(q.win))
		q.mu.Unlock()
	}
	if maxRing > 4*winSlack {
		t.Fatalf("lease window ring grew to %d slots", maxRing)
	}
	q.mu.Lock()
	spilled := q.overflow[stuck.Lease] != nil && q.overflow[held.Lease] != nil
	q.mu.Unlock()
	if !spilled {
		t.Fatal("the long-held leases are not in the overflow map")
	}
	if r := q.Ack([]Ack{ackOf(held)}); len(r) != 1 || r[0].Reason != ReasonNotLeased {
		t.Fatalf("Get acks a consumer's overflow lease: %+v", r)
	}
	if r := q.Ack([]Ack{{ID: stuck.ID, Lease: held.Lease}}); len(r) != 1 || r[0].Reason != ReasonNotLeased {
		t.Fatalf("ack with another overflow lease: %+v", r)
	}
	if r := q.Ack([]Ack{ackOf(stuck)}); r != nil {
		t.Fatal(r)
	}
	if r := c.Ack([]Ack{ackOf(held)}); r != nil {
		t.Fatal(r)
	}
	mustCheck(t, q)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.nleased != 0 || q.winN != 0 || q.overflow != nil || len(q.win) > minWin {
		t.Fatalf("drained: %d leased, window %d of %d slots, overflow %v", q.nleased, q.winN, len(q.win), q.overflow)
	}
	if st := q.st; st.AckedTotal != 3*rounds+2 {
		t.Fatalf("AckedTotal %d", st.AckedTotal)
	}
}

// TestRefusalBatch: a batch of refused settles (a slave back after its
// leases expired) gets the same reasons once the call switches from scans
// to a set of the ids in flight, and that set follows the settles the call
// applies: an item acked earlier in the batch is no longer in flight.
func TestRefusalBatch(t *testing.T) {
	b, clk := newTestBroker(t, Config{LeaseTime: 10 * time.Second})
	q := mustQueue(t, b, "tasks")
	const n = 3 * flightScans
	mustPut(t, q, msgs(make([]string, n)...)...)
	stale := mustGet(t, q, n, false)
	clk.Advance(11 * time.Second)
	if got := b.ExpireLeases(); got != n {
		t.Fatalf("ExpireLeases = %d, want %d", got, n)
	}
	again := mustGet(t, q, n/2, false) // half the items are in flight again
	inFlight := map[uint64]bool{}
	for _, d := range again {
		inFlight[d.ID] = true
	}
	var acks []Ack
	for _, d := range stale {
		acks = append(acks, ackOf(d))
	}
	// Then the current lease of one item, and the same ack once more.
	acks = append(acks, ackOf(again[0]), ackOf(again[0]))
	r := q.Ack(acks)
	if len(r) != n+1 {
		t.Fatalf("%d refusals, want %d: %+v", len(r), n+1, r)
	}
	for i, ref := range r[:n] {
		want := ReasonUnknownItem
		if inFlight[ref.ID] {
			want = ReasonNotLeased
		}
		if ref.ID != stale[i].ID || ref.Reason != want {
			t.Errorf("refusal %d: %+v, want item %d %q", i, ref, stale[i].ID, want)
		}
	}
	if last := r[n]; last.ID != again[0].ID || last.Reason != ReasonUnknownItem {
		t.Errorf("the second ack of a settled item: %+v, want %q", last, ReasonUnknownItem)
	}
	mustCheck(t, q)
}
