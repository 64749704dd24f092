package queue

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	long := strings.Repeat("a", 201)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{"defaults", Config{}, ""},
		{"empty name", Config{Queues: []QueueConfig{{Name: ""}}}, "empty queue name"},
		{"long name", Config{Queues: []QueueConfig{{Name: long}}}, "longer than 200"},
		{"200 bytes ok", Config{Queues: []QueueConfig{{Name: long[:200]}}}, ""},
		{"dead suffix reserved", Config{Queues: []QueueConfig{{Name: "x.dead"}}}, "reserved"},
		{"bad rune space", Config{Queues: []QueueConfig{{Name: "a b"}}}, "only letters"},
		{"bad rune slash", Config{Queues: []QueueConfig{{Name: "a/b"}}}, "only letters"},
		{"bad rune unicode", Config{Queues: []QueueConfig{{Name: "tâches"}}}, "only letters"},
		{"good punctuation", Config{Queues: []QueueConfig{{Name: "a-b_c.d9"}}}, ""},
		{"negative maxsize", Config{Queues: []QueueConfig{{Name: "a", MaxSize: -1}}}, "negative"},
		{"duplicate", Config{Queues: []QueueConfig{{Name: "a"}, {Name: "a"}}}, "declared twice"},
		{"lease too short", Config{LeaseTime: time.Microsecond}, "lease time"},
		{"lease negative", Config{LeaseTime: -time.Second}, "lease time"},
		{"lease too long", Config{LeaseTime: 25 * time.Hour}, "lease time"},
		{"lease bounds ok", Config{LeaseTime: time.Millisecond}, ""},
		{"attempts negative", Config{MaxAttempts: -1}, "max attempts"},
		{"attempts too many", Config{MaxAttempts: 1000001}, "max attempts"},
		{"scan negative", Config{ScanInterval: -time.Second}, "scan interval"},
		{"scan too short", Config{ScanInterval: time.Microsecond}, "scan interval"},
		{"retry min negative", Config{RetryMin: -time.Second}, "retry min -1s is not positive"},
		{"retry max below min", Config{RetryMin: 2 * time.Second, RetryMax: time.Second}, "retry max 1s is below retry min 2s"},
		{"retry max negative", Config{RetryMax: -time.Second}, "retry max -1s is below"},
		{"retry max too long", Config{RetryMax: 25 * time.Hour}, "retry max 25h0m0s is above 24h0m0s"},
		{"retry min too long", Config{RetryMin: 25 * time.Hour}, "retry min 25h0m0s is above 24h0m0s"},
		{"retry bounds ok", Config{RetryMin: time.Nanosecond, RetryMax: 24 * time.Hour}, ""},
		{"queue retry min negative", Config{Queues: []QueueConfig{{Name: "a", RetryMin: -1}}}, `queue "a": invalid argument: retry min`},
		{"queue retry max below min", Config{Queues: []QueueConfig{{Name: "a", RetryMin: 2 * time.Second, RetryMax: time.Second}}}, `queue "a": invalid argument: retry max 1s is below`},
		{"queue retry max below master min", Config{RetryMin: 2 * time.Second, Queues: []QueueConfig{{Name: "a", RetryMax: time.Second}}}, "below retry min 2s"},
		{"queue retry max too long", Config{Queues: []QueueConfig{{Name: "a", RetryMax: 48 * time.Hour}}}, "above 24h"},
		{"queue retry min above master max", Config{RetryMax: time.Second, Queues: []QueueConfig{{Name: "a", RetryMin: time.Minute}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want ErrInvalid containing %q", err, tc.want)
			}
			if _, err := New(tc.cfg); !errors.Is(err, ErrInvalid) {
				t.Fatalf("New = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.LeaseTime != DefaultLeaseTime || c.MaxAttempts != DefaultMaxAttempts || c.ScanInterval != time.Second {
		t.Fatalf("defaults: lease %v, attempts %d, scan %v", c.LeaseTime, c.MaxAttempts, c.ScanInterval)
	}
	if len(c.Queues) != 2 || c.Queues[0].Name != "tasks" || c.Queues[1].Name != "results" {
		t.Fatalf("default queues %v", c.Queues)
	}
	if c.Clock == nil || c.Logger == nil {
		t.Fatal("clock or logger not defaulted")
	}
	short := Config{LeaseTime: 10 * time.Millisecond}
	if err := short.Validate(); err != nil || short.ScanInterval != 5*time.Millisecond {
		t.Fatalf("scan interval for a short lease: %v, %v", short.ScanInterval, err)
	}
	if c.RetryMin != DefaultRetryMin || c.RetryMax != DefaultRetryMax {
		t.Fatalf("retry defaults %v..%v", c.RetryMin, c.RetryMax)
	}
	// A minimum above the default maximum raises the maximum to it.
	long := Config{RetryMin: 5 * time.Minute}
	if err := long.Validate(); err != nil || long.RetryMax != 5*time.Minute {
		t.Fatalf("retry max under a long min: %v, %v", long.RetryMax, err)
	}
}

func TestBrokerQueues(t *testing.T) {
	b, _ := newTestBroker(t, Config{Queues: []QueueConfig{{Name: "a", MaxSize: 3}, {Name: "b"}}})
	var names []string
	for _, q := range b.Queues() {
		names = append(names, q.Name())
	}
	if got := strings.Join(names, ","); got != "a,a.dead,b,b.dead" {
		t.Fatalf("Queues: %s", got)
	}
	a := mustQueue(t, b, "a")
	ad := mustQueue(t, b, "a.dead")
	if a.MaxSize() != 3 || a.IsDead() || !ad.IsDead() || ad.MaxSize() != 0 {
		t.Fatal("queue attributes")
	}
	if _, err := b.Queue("c"); !errors.Is(err, ErrUnknownQueue) {
		t.Fatalf("unknown queue: %v", err)
	}
	if b.LeaseTime() != DefaultLeaseTime || b.MaxAttempts() != DefaultMaxAttempts {
		t.Fatal("broker accessors")
	}
}

func TestBrokerCloseTwice(t *testing.T) {
	b, err := New(Config{ScanInterval: time.Millisecond, LeaseTime: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.done:
	default:
		t.Fatal("scan loop still running")
	}
}

// TestScanLoopExpires uses the real clock: the scan loop, not the test,
// returns the expired lease, and a blocked Get sees it come back. The loop
// wakes for the lease's deadline: its ScanInterval is an hour.
func TestScanLoopExpires(t *testing.T) {
	b, err := New(Config{LeaseTime: 5 * time.Millisecond, ScanInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q := mustQueue(t, b, "tasks")
	mustPut(t, q, msgs("x")...)
	first := mustGet(t, q, 1, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	again, err := q.Get(ctx, 1, false, 0, false)
	if err != nil || len(again) != 1 {
		t.Fatalf("Get after expiry: %v, %v", again, err)
	}
	if again[0].ID != first[0].ID || again[0].Attempt != 2 || again[0].Error != "lease expired" {
		t.Fatalf("redelivery %+v", again[0])
	}
	if st := q.Stats(); st.ExpiredTotal < 1 {
		t.Fatalf("ExpiredTotal %d", st.ExpiredTotal)
	}
}

func TestDrainWaitSettled(t *testing.T) {
	b, _ := newTestBroker(t, Config{})
	q := mustQueue(t, b, "tasks")
	mustPut(t, q, numbered(5)...)
	c := mustConsumer(t, q)
	idle := mustConsumer(t, q)
	c.Grant(10)
	ds := mustNext(t, c, 5)
	mustPut(t, q, numbered(3)...)

	// A Next blocked on a consumer that holds nothing ends on Drain.
	idleErr := make(chan error, 1)
	go func() {
		_, err := idle.Next(context.Background(), nil) // no credit: blocks
		idleErr <- err
	}()

	// So does a blocked Get.
	getQ := mustQueue(t, b, "results")
	getErr := make(chan error, 1)
	go func() {
		_, err := getQ.Get(context.Background(), 1, false, 0, false)
		getErr <- err
	}()
	waitFor(t, "Get to block", func() bool { return waitingForItems(getQ) })

	b.Drain()
	if err := <-getErr; !errors.Is(err, ErrShutdown) {
		t.Fatalf("blocked Get on Drain: %v", err)
	}
	for _, autoAck := range []bool{false, true} {
		if ds, err := q.Get(context.Background(), 1, true, 0, autoAck); !errors.Is(err, ErrShutdown) || ds != nil {
			t.Fatalf("Get (autoAck %v) while draining: %v, %v", autoAck, ds, err)
		}
	}
	if err := <-idleErr; !errors.Is(err, ErrShutdown) {
		t.Fatalf("blocked Next on Drain: %v", err)
	}
	idle.Grant(5)
	if _, err := q.NewConsumer(); !errors.Is(err, ErrShutdown) {
		t.Fatalf("NewConsumer while draining: %v", err)
	}
	if ds, err := tryNext(idle); !errors.Is(err, ErrShutdown) || len(ds) != 0 {
		t.Fatalf("Next of an empty consumer while draining: %v, %v", ds, err)
	}
	// c holds items: no new deliveries, but no ErrShutdown either.
	if ds, err := tryNext(c); !errors.Is(err, context.Canceled) || len(ds) != 0 {
		t.Fatalf("Next of a holding consumer while draining: %v, %v", ds, err)
	}
	if b.WaitSettled(cancelled()) {
		t.Fatal("WaitSettled true with leases out")
	}

	nextErr := make(chan error, 1)
	go func() {
		_, err := c.Next(context.Background(), nil)
		nextErr <- err
	}()
	settled := make(chan bool, 1)
	go func() { settled <- b.WaitSettled(context.Background()) }()
	waitFor(t, "WaitSettled to block", func() bool { return waitingForNoLeases(q) })

	// Settles are still taken while draining.
	if r := c.Ack([]Ack{ackOf(ds[0]), ackOf(ds[1])}); r != nil {
		t.Fatal(r)
	}
	if r := c.Nack([]Nack{{ID: ds[2].ID, Lease: ds[2].Lease, Error: "boom"}}); r != nil {
		t.Fatal(r)
	}
	if r := c.Nack([]Nack{{ID: ds[3].ID, Lease: ds[3].Lease, Action: NackRelease}}); r != nil {
		t.Fatal(r)
	}
	select {
	case err := <-nextErr:
		t.Fatalf("Next ended while the consumer still holds an item: %v", err)
	case ok := <-settled:
		t.Fatalf("WaitSettled = %v with a lease out", ok)
	default:
	}
	if r := c.Ack([]Ack{ackOf(ds[4])}); r != nil {
		t.Fatal(r)
	}
	if err := <-nextErr; !errors.Is(err, ErrShutdown) {
		t.Fatalf("Next after the last settle: %v", err)
	}
	if !<-settled {
		t.Fatal("WaitSettled = false")
	}
	if !b.WaitSettled(cancelled()) {
		t.Fatal("WaitSettled false when settled")
	}
	// Nothing new was delivered while draining; the nacked item waits out
	// its retry delay as before.
	if st := q.Stats(); st.DeliveredTotal != 5 || st.Ready != 4 || st.Delayed != 1 {
		t.Fatalf("stats after drain: %+v", st)
	}
	mustCheck(t, q)
}

func TestWaitSettledGetLeasesAndTimeout(t *testing.T) {
	b, clk := newTestBroker(t, Config{})
	q := mustQueue(t, b, "tasks")
	mustPut(t, q, msgs("a")...)
	mustGet(t, q, 1, false)
	b.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if b.WaitSettled(ctx) {
		t.Fatal("WaitSettled true with a Get lease out")
	}
	done := make(chan bool, 1)
	go func() { done <- b.WaitSettled(context.Background()) }()
	waitFor(t, "WaitSettled to block", func() bool { return waitingForNoLeases(q) })
	clk.Advance(b.LeaseTime())
	if n := b.ExpireLeases(); n != 1 {
		t.Fatalf("ExpireLeases = %d", n)
	}
	if !<-done {
		t.Fatal("WaitSettled false after expiry")
	}
}
