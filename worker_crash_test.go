package distq

import (
	"fmt"
	"testing"
	"time"
)

// The master dies while the worker is sending acks: the send fails, and the
// worker finds the stream's status from its receiver, without a second
// Recv on the stream (gRPC forbids two at once; the race detector caught
// it in the kill test of the integration suite). It then reconnects to the
// next master and goes on.
func TestWorkerMasterDiesWhileAcking(t *testing.T) {
	m := startMaster(t, masterConfig{})
	addr := m.addr
	c := m.dial(t)
	w, err := c.NewWorker(WorkerConfig{Concurrency: 4, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}, echo("!"))
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)
	ctx := testContext(t)
	for round := range 5 {
		msgs := make([]Message, 20000)
		for i := range msgs {
			msgs[i].Payload = []byte(fmt.Sprint(i))
		}
		if _, err := c.Queue("tasks").PutBatch(ctx, msgs); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		waitFor(t, "acks flowing", func() bool { return m.stats("tasks").AckedTotal >= 2000 })
		m.stop() // in the middle of the acks
		m = startMaster(t, masterConfig{Listen: addr})
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
