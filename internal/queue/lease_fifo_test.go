package queue

import (
	"testing"
	"time"
)

// TestLeaseOrders: leases go to the deadline FIFO in order of creation, to
// the heap when the clock went back or an Extend changed their deadline,
// and expire in deadline order from both.
func TestLeaseOrders(t *testing.T) {
	b, clk := newTestBroker(t, Config{LeaseTime: 10 * time.Second})
	q := mustQueue(t, b, "tasks")
	mustPut(t, q, msgs("a", "b", "c", "d")...)
	a := mustGet(t, q, 1, false)[0] // due t0+10s, FIFO
	clk.Advance(-2 * time.Second)
	bb := mustGet(t, q, 1, false)[0] // due t0+8s: before the FIFO's tail, heap
	clk.Advance(4 * time.Second)
	c := mustGet(t, q, 1, false)[0] // due t0+12s, FIFO
	d := mustGet(t, q, 1, false)[0] // due t0+12s, FIFO
	mustCheck(t, q)
	q.mu.Lock()
	inHeap := len(q.leases)
	q.mu.Unlock()
	if inHeap != 1 {
		t.Fatalf("%d leases in the heap, want 1", inHeap)
	}
	// c moves to the heap, due t0+2s+3s.
	if r := q.Extend([]Extend{{ID: c.ID, Lease: c.Lease, Duration: 3 * time.Second}}); r != nil {
		t.Fatal(r)
	}
	mustCheck(t, q)
	clk.Advance(3 * time.Second) // t0+5s: c is due
	if n := b.ExpireLeases(); n != 1 {
		t.Fatalf("ExpireLeases = %d, want 1 (c)", n)
	}
	clk.Advance(5 * time.Second) // t0+10s: b and a are due, not d
	if n := b.ExpireLeases(); n != 2 {
		t.Fatalf("ExpireLeases = %d, want 2 (b, a)", n)
	}
	mustCheck(t, q)
	// Given back to the front in expiry order: a, b, c, then the rest.
	want := []uint64{a.ID, bb.ID, c.ID}
	for i, p := range q.Peek(0, 10) {
		if i < len(want) && p.ID != want[i] {
			t.Fatalf("ready[%d] = %d, want %d", i, p.ID, want[i])
		}
	}
	if r := q.Ack([]Ack{ackOf(d)}); r != nil {
		t.Fatal(r)
	}
	mustCheck(t, q)
}

// TestCloseOrder: a closing consumer's items go back to the front in the
// order they were leased.
func TestCloseOrder(t *testing.T) {
	b, _ := newTestBroker(t, Config{})
	q := mustQueue(t, b, "tasks")
	ids := mustPut(t, q, numbered(5)...)
	c := mustConsumer(t, q)
	c.Grant(3)
	ds := mustNext(t, c, 3)
	if r := c.Ack([]Ack{ackOf(ds[1])}); r != nil {
		t.Fatal(r)
	}
	mustCheck(t, q)
	if n := c.Close(); n != 2 {
		t.Fatalf("Close = %d, want 2", n)
	}
	mustCheck(t, q)
	want := []uint64{ids[0], ids[2], ids[3], ids[4]}
	got := q.Peek(0, 10)
	if len(got) != len(want) {
		t.Fatalf("%d ready, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i] {
			t.Fatalf("ready[%d] = %d, want %d", i, got[i].ID, want[i])
		}
	}
}
