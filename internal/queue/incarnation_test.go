package queue

import (
	"context"
	"testing"
)

// A master restarted with fresh bases refuses the late ack of a lease taken
// from the master before it, even though the new master's first item and
// lease are, counting from their bases, the same first ones. (With ids from
// 1 at every start, that ack settled the new item and put its reply.)
func TestLeasesOfAnEarlierIncarnationAreRefused(t *testing.T) {
	old, _ := newTestBroker(t, Config{IDBase: 1000, LeaseBase: 5000})
	oq := mustQueue(t, old, "tasks")
	if ids := mustPut(t, oq, msgs("old")...); ids[0] != 1001 {
		t.Fatalf("first id %d; want IDBase+1 = 1001", ids[0])
	}
	ds, err := oq.Get(context.Background(), 1, true, 0, false)
	if err != nil || len(ds) != 1 || ds[0].Lease != 5001 {
		t.Fatalf("Get: %+v, %v; want lease LeaseBase+1 = 5001", ds, err)
	}
	late := ds[0]

	restarted, _ := newTestBroker(t, Config{IDBase: 9_000_000, LeaseBase: 7_000_000})
	nq := mustQueue(t, restarted, "tasks")
	results := mustQueue(t, restarted, "results")
	mustPut(t, nq, msgs("new")...)
	held, err := nq.Get(context.Background(), 1, true, 0, false)
	if err != nil || len(held) != 1 {
		t.Fatal(err)
	}
	refused := nq.Ack([]Ack{{ID: late.ID, Lease: late.Lease, ReplyQueue: results, Reply: Message{Payload: []byte("reply-for-OLD")}}})
	if len(refused) != 1 {
		t.Fatalf("the late ack from the earlier incarnation was applied (refusals %v)", refused)
	}
	if st := results.Stats(); st.Ready != 0 {
		t.Fatalf("the late ack put its reply: results hold %d", st.Ready)
	}
	if refused := nq.Ack([]Ack{{ID: held[0].ID, Lease: held[0].Lease}}); len(refused) != 0 {
		t.Fatalf("the real holder's ack was refused: %v", refused)
	}
}

func TestBasesValidated(t *testing.T) {
	for _, cfg := range []Config{{IDBase: MaxIDBase + 1}, {LeaseBase: MaxIDBase + 1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
	b, _ := newTestBroker(t, Config{IDBase: MaxIDBase, LeaseBase: MaxIDBase})
	q := mustQueue(t, b, "tasks")
	if ids := mustPut(t, q, msgs("a")...); ids[0] != MaxIDBase+1 {
		t.Fatalf("id %d", ids[0])
	}
}
