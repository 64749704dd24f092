package demo

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distq/distq/internal/queue"
)

func TestCheckerCountsWrongDuplicateAndEarlyResults(t *testing.T) {
	c := &checker{pending: map[uint64][]byte{}}
	c.result(12, []byte("9")) // arrives before its task is recorded
	c.expect([]uint64{10, 11, 12}, []int64{4, 16, 9})
	c.result(10, []byte("4"))
	c.result(11, []byte("15")) // wrong
	c.result(10, []byte("4"))  // duplicate
	c.result(99, []byte("1"))  // not a task of ours
	received, wrong, dups, pending := c.counts()
	if received != 5 || wrong != 1 || dups != 1 || pending != 1 {
		t.Fatalf("received %d wrong %d dups %d pending %d; want 5 1 1 1", received, wrong, dups, pending)
	}
}

// The demo against an in-process broker with an in-process squarer.
func TestRunAgainstInProcessSquarer(t *testing.T) {
	b, err := queue.New(queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tasks, _ := b.Queue("tasks")
	results, _ := b.Queue("results")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // a slave: take, square, ack with the reply
		c, _ := tasks.NewConsumer()
		defer c.Close()
		c.Grant(100)
		for {
			ds, err := c.Next(ctx, nil)
			if err != nil {
				return
			}
			acks := make([]queue.Ack, len(ds))
			for i, d := range ds {
				n, _ := strconv.ParseInt(string(d.Payload), 10, 64)
				acks[i] = queue.Ack{ID: d.ID, Lease: d.Lease, ReplyQueue: results,
					Reply: queue.Message{Payload: strconv.AppendInt(nil, n*n, 10)}}
			}
			c.Ack(acks)
			c.Grant(len(ds))
		}
	}()
	sum, err := Run(ctx, Config{N: 5000, Tasks: tasks, Results: results, CloseTasks: true})
	if err != nil || !sum.OK() {
		t.Fatalf("Run: %+v, %v", sum, err)
	}
}

func TestSummaryRoundTrip(t *testing.T) {
	for _, want := range []Summary{
		{Tasks: 20000, Results: 20000, Elapsed: 1234 * time.Millisecond, Redelivered: 12, Expired: 3, Refused: 3},
		{Tasks: 10, Results: 9, Wrong: 1, Missing: 1, Elapsed: 5 * time.Second, Dead: 1},
	} {
		var b strings.Builder
		(Summary{Tasks: 1, Results: 1, Elapsed: time.Second}).Write(&b) // an earlier run
		b.WriteString("2026-11-22T22:53:28.865Z [INFO]  master: noise\n")
		want.Write(&b)
		got, err := ParseSummary(b.String())
		if err != nil || got != want {
			t.Fatalf("ParseSummary = %+v, %v; want %+v", got, err, want)
		}
	}
	if _, err := ParseSummary("no summary here"); err == nil {
		t.Fatal("ParseSummary found a summary in none")
	}
}
