package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/distq/distq"
)

// killRun is what the test process saw: as the producer, the ids of its
// answered puts; as the reader of results, every result it read.
type killRun struct {
	mu       sync.Mutex
	answered map[uint64]int        // task id → k, for every id an answer gave
	failed   int                   // put calls that failed (the master was away)
	retried  int                   // batches put again after a failure
	results  map[uint64]killResult // by result id
	byTask   map[uint64]map[uint64]bool
	reused   []string // ids given twice: to other results, or to other tasks
}

type killResult struct {
	task    uint64
	payload string
}

// read records result t.
func (r *killRun) read(t *distq.Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := killResult{t.ReplyTo, string(t.Payload)}
	if old, ok := r.results[t.ID]; ok {
		if old != res {
			r.reused = append(r.reused, fmt.Sprintf("result %d: first %+v, then %+v", t.ID, old, res))
		}
		return
	}
	r.results[t.ID] = res
	if r.byTask[t.ReplyTo] == nil {
		r.byTask[t.ReplyTo] = map[uint64]bool{}
	}
	r.byTask[t.ReplyTo][t.ID] = true
}

// The kill -9 test: a producer (this process) puts 200,000 known
// tasks and records which puts were answered; two slaves work; the master
// is killed with SIGKILL at random moments 10 times and restarted on the
// same port and data directory; the producer, the slaves and the reader
// of results reconnect by themselves. At the end every answered put has
// exactly one result, and it is right; nothing appears twice.
//
// Results are read under leases (a Worker on "results") and acked at
// once. The master hands a result out only once its record is on disk, so
// a crash never undoes a result read: a result whose ack a crash lost
// comes again, with the same id, and counts once; an id that comes again
// with other content is a fault (an id given twice). A put whose answer
// was lost is put again by the test, as a new put: if the lost one was
// stored after all, its tasks run twice. Only answered puts must have
// exactly one result; the others are counted and logged.
//
// DISTQ_KILL_SEED repeats the kill moments of a run (its log gives the
// seed).
func TestDurableKillLoop(t *testing.T) {
	const (
		nTasks = 200_000
		batch  = 500
		kills  = 10
	)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DISTQ_KILL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DISTQ_KILL_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("kill moments drawn with DISTQ_KILL_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	key := writeKey(t, testKey)
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	margs := []string{"-data-dir", dir, "-queue", "tasks", "-queue", "results", "-max-attempts", "100"}
	m := startMasterAt(t, "master", addr, key, nil, margs...)
	slaves := []*proc{
		startSlave(t, "slave-a", addr, key, "-concurrency", "2", "-max-backoff", "500ms"),
		startSlave(t, "slave-b", addr, key, "-concurrency", "2", "-max-backoff", "500ms"),
	}
	c, err := distq.NewClient(addr, distq.Options{AuthKey: []byte(testKey)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxTimeout(t, 6*time.Minute)
	r := &killRun{answered: map[uint64]int{}, results: map[uint64]killResult{}, byTask: map[uint64]map[uint64]bool{}}

	wctx, stopReader := context.WithCancel(ctx)
	w, err := c.NewWorker(distq.WorkerConfig{Queue: "results", NoReply: true, KeepRunningOnClose: true,
		Concurrency: 8, MaxBackoff: 500 * time.Millisecond}, func(ctx context.Context, t *distq.Task) ([]byte, error) {
		r.read(t)
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	readerDone := make(chan error, 1)
	go func() { readerDone <- w.Run(wctx) }()

	// The producer: task k's payload is k.
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		tasks := c.Queue("tasks")
		for i := 0; i < nTasks && ctx.Err() == nil; i += batch {
			msgs := make([]distq.Message, batch)
			for k := range msgs {
				msgs[k].Payload = []byte(strconv.Itoa(i + k + 1))
			}
			for try := 0; len(msgs) > 0 && ctx.Err() == nil; try++ {
				pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				ids, err := tasks.PutBatch(pctx, msgs)
				cancel()
				r.mu.Lock()
				for k, id := range ids {
					n, _ := strconv.Atoi(string(msgs[k].Payload))
					if old, ok := r.answered[id]; ok && old != n {
						r.reused = append(r.reused, fmt.Sprintf("task id %d answered for task %d, then for task %d", id, old, n))
					}
					r.answered[id] = n
				}
				if err != nil {
					r.failed++
					if try == 0 {
						r.retried++
					}
				}
				r.mu.Unlock()
				msgs = msgs[len(ids):]
				if err != nil {
					time.Sleep(50 * time.Millisecond) // the master is away
				}
			}
		}
	}()

	progress := func() (answered, read int) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.answered), len(r.results)
	}
	for i := 1; i <= kills; i++ {
		// A random moment in the i-th tenth of the work, once work flows
		// again: drawn as a count of results read, so that every kill
		// falls mid-run however fast the machine is.
		target := nTasks*(i-1)/kills + rng.IntN(nTasks/kills)
		_, rd0 := progress()
		for _, rd := progress(); rd == rd0 || rd < target; _, rd = progress() {
			if ctx.Err() != nil {
				a, rd := progress()
				t.Fatalf("no progress after restart %d: %d tasks answered, %d results read", i-1, a, rd)
			}
			time.Sleep(5 * time.Millisecond)
		}
		a, rd := progress()
		t.Logf("kill %d: SIGKILL after %d tasks answered, %d results read", i, a, rd)
		m.cmd.Process.Kill()
		m.wait(time.Minute)
		m = startMasterAt(t, fmt.Sprintf("master%d", i+1), addr, key, nil, margs...)
	}

	// Every answered task's result, and nothing left in the queues.
	<-produced
	if ctx.Err() != nil {
		t.Fatal("the producer did not finish in time")
	}
	done := func() bool {
		r.mu.Lock()
		for id := range r.answered {
			if len(r.byTask[id]) == 0 {
				r.mu.Unlock()
				return false
			}
		}
		r.mu.Unlock()
		sts, err := c.Stats(ctx)
		if err != nil {
			return false
		}
		for _, st := range sts {
			if st.Ready+st.Leased+st.Delayed > 0 {
				return false
			}
		}
		return true
	}
	for !done() {
		if ctx.Err() != nil {
			a, rd := progress()
			t.Fatalf("not every answered task came back: %d answered, %d results read", a, rd)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopReader()
	if err := <-readerDone; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("reader: %v", err)
	}
	for _, s := range slaves {
		select {
		case <-s.done:
			t.Errorf("%s exited: it should have reconnected and gone on", s.name)
		default:
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	bad := 0
	complain := func(format string, args ...any) {
		if bad++; bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	if len(r.answered) != nTasks {
		complain("%d task ids answered, want %d (one per task)", len(r.answered), nTasks)
	}
	for id, k := range r.answered {
		rids := r.byTask[id]
		if len(rids) != 1 {
			complain("answered task %d (%d) has %d results: %v", id, k, len(rids), rids)
		}
		for rid := range rids {
			if want := strconv.Itoa(k * k); r.results[rid].payload != want {
				complain("result %d for task %d (%d): %q, want %s", rid, id, k, r.results[rid].payload, want)
			}
		}
	}
	extra := 0
	for task, rids := range r.byTask {
		if _, ok := r.answered[task]; ok {
			continue
		}
		extra++
		if len(rids) != 1 {
			complain("task %d of an unanswered put has %d results: %v", task, len(rids), rids)
		}
	}
	for _, s := range r.reused {
		complain("%s", s)
	}
	sts, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.Dead > 0 {
			complain("queue %s: %d dead-lettered", st.Name, st.Dead)
		}
	}
	t.Logf("%d tasks answered; %d put calls failed while the master was away, %d batches put again, %d tasks of unanswered puts stored anyway (run twice); %d results read",
		len(r.answered), r.failed, r.retried, extra, len(r.results))
	if bad > 0 {
		t.Fatalf("%d faults", bad)
	}
}
