package distq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// ObserveHandlers hears of every handler that ran, failed ones too, in
// calls per chunk; Stats().Held counts the deliveries the worker holds.
func TestWorkerObserveHandlersAndHeld(t *testing.T) {
	m := startMaster(t, masterConfig{})
	c := m.dial(t)
	ctx := testContext(t)
	const n = 10
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Payload: []byte(fmt.Sprint(i))}
	}
	if _, err := c.Queue("tasks").PutBatch(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		ran     int
		calls   int
		total   time.Duration
		started = make(chan struct{}, n)
		release = make(chan struct{})
	)
	observe := func(k int, d time.Duration) {
		mu.Lock()
		ran, calls, total = ran+k, calls+1, total+d
		mu.Unlock()
	}
	w, err := c.NewWorker(WorkerConfig{Concurrency: 2, Prefetch: 1, ObserveHandlers: observe}, func(ctx context.Context, tk *Task) ([]byte, error) {
		started <- struct{}{}
		<-release
		if string(tk.Payload) == "3" {
			return nil, Permanent(errors.New("three"))
		}
		return tk.Payload, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := runWorker(t, w)
	// Credit 2: once both slots run a task, the worker holds exactly 2.
	<-started
	<-started
	if h := w.Stats().Held; h != 2 {
		t.Fatalf("Held = %d with two handlers running at credit 2; want 2", h)
	}
	close(release)
	if err := c.Queue("tasks").Join(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	mu.Lock()
	defer mu.Unlock()
	if ran != n || calls < 1 || calls > n || total <= 0 {
		t.Fatalf("ObserveHandlers heard of %d tasks in %d calls, %v; want %d tasks in 1..%d calls", ran, calls, total, n, n)
	}
	if st.Processed != n-1 || st.Failed != 1 || st.Held != 0 {
		t.Fatalf("stats %+v; want %d processed, 1 failed, none held after Run", st, n-1)
	}
}
