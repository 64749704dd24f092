package queue

import (
	"context"
	"testing"
)

// Item and lease ids count from the configured bases; the incarnation is
// never 0 ("not said").
func TestBasesAndIncarnation(t *testing.T) {
	b, _ := newTestBroker(t, Config{IDBase: 1000, LeaseBase: 5000})
	q := mustQueue(t, b, "tasks")
	if ids := mustPut(t, q, msgs("a")...); ids[0] != 1001 {
		t.Fatalf("first id %d; want IDBase+1 = 1001", ids[0])
	}
	ds, err := q.Get(context.Background(), 1, true, 0, false)
	if err != nil || len(ds) != 1 || ds[0].Lease != 5001 {
		t.Fatalf("Get: %+v, %v; want lease LeaseBase+1 = 5001", ds, err)
	}
	if refused := q.Ack([]Ack{{ID: ds[0].ID, Lease: ds[0].Lease}}); len(refused) != 0 {
		t.Fatalf("ack refused: %v", refused)
	}
	if b.Incarnation() == 0 {
		t.Fatal("incarnation 0; want a default of 1")
	}
	if b2, _ := newTestBroker(t, Config{Incarnation: 77}); b2.Incarnation() != 77 {
		t.Fatalf("incarnation %d; want 77", b2.Incarnation())
	}
	q.CountRefused(3)
	if st := q.Stats(); st.RefusedTotal != 3 {
		t.Fatalf("refused total %d; want 3", st.RefusedTotal)
	}
	for _, cfg := range []Config{{IDBase: MaxIDBase + 1}, {LeaseBase: MaxIDBase + 1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}
