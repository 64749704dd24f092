package queue

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestEffectsLogged pins the lines the queue logs for what its state
// changes did (effects.go): lease expiries, dead-letterings by a lost
// consumer, by a nack and by expiry, and a promotion. The state changes only
// record them; the live operations log them, and must not lose one.
func TestEffectsLogged(t *testing.T) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug, DisableTime: true})
	b, clk := newTestBroker(t, Config{LeaseTime: time.Second, MaxAttempts: 2, Logger: log})
	q := mustQueue(t, b, "tasks")
	mustPut(t, q, msgs("a", "b", "c", "d")...)

	// a: expires once (back in the queue), then dies with its consumer.
	d := mustGet(t, q, 1, false)[0]
	clk.Advance(time.Second)
	if n := b.ExpireLeases(); n != 1 {
		t.Fatalf("ExpireLeases = %d", n)
	}
	c := mustConsumer(t, q)
	c.Grant(1)
	if got := mustNext(t, c, 1)[0]; got.ID != d.ID {
		t.Fatalf("Next gave %d, want %d", got.ID, d.ID)
	}
	c.Close()
	// b: nacked as failed for good.
	d = mustGet(t, q, 1, false)[0]
	q.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Error: "boom", Action: NackDead}})
	// c: nacked for a retry, then ready again.
	d = mustGet(t, q, 1, false)[0]
	q.Nack([]Nack{{ID: d.ID, Lease: d.Lease, Error: "later", Delay: time.Second}})
	clk.Advance(time.Second)
	if n := b.PromoteDelayed(); n != 1 {
		t.Fatalf("PromoteDelayed = %d", n)
	}
	// c and d expire together: c has had its last attempt and dies; its
	// line comes before the expiries', as it always did.
	mustGet(t, q, 2, false)
	clk.Advance(time.Second)
	if n := b.ExpireLeases(); n != 2 {
		t.Fatalf("ExpireLeases = %d", n)
	}

	want := `[INFO]  leases expired; items back in the queue: reason="lease ran out" queue=tasks count=1
[WARN]  item dead-lettered: reason="max attempts reached" queue=tasks id=1 attempts=2 error="consumer disconnected"
[WARN]  item dead-lettered: reason="failed permanently" queue=tasks id=2 attempts=1 error=boom
[DEBUG] delayed items ready for their retry: queue=tasks count=1
[WARN]  item dead-lettered: reason="max attempts reached" queue=tasks id=3 attempts=2 error="lease expired"
[INFO]  leases expired; items back in the queue: reason="lease ran out" queue=tasks count=2
`
	if got := buf.String(); got != want {
		t.Errorf("logged:\n%s\nwant:\n%s", got, want)
	}
}
