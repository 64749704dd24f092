package distq

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/packed"
	pb "github.com/distq/distq/proto/distq/v1"
)

// settles are what the pool hands the sender for one chunk of tasks.
type settles struct {
	ackIDs, ackLeases []uint64
	replies           packed.Builder // one per ack, if the worker replies
	nacks             []*pb.Nack
	extends           []*pb.Extend
}

// newSettles makes room for the acks of n tasks, allocated once per chunk
// rather than grown task by task.
func newSettles(n int, replies bool) *settles {
	st := &settles{ackIDs: make([]uint64, 0, n), ackLeases: make([]uint64, 0, n)}
	if replies {
		st.replies.Grow(n, 8*n) // a guess; replies larger on average grow once
	}
	return st
}

func (st *settles) ack(t *Task, reply []byte, withReply bool) {
	st.ackIDs = append(st.ackIDs, t.ID)
	st.ackLeases = append(st.ackLeases, t.lease)
	if withReply {
		st.replies.Add(reply)
	}
}

func (st *settles) len() int { return len(st.ackIDs) + len(st.nacks) + len(st.extends) }

// workerStream is one Consume stream's state shared by the worker's
// goroutines.
//
// Whoever holds sendMu sends on the stream. A goroutine that finishes a
// chunk of tasks sends its settles itself when no one else is sending (the
// common case when tasks are few), instead of handing them to the consume
// loop: a hand-off between goroutines costs a thread's wake-up, which on a
// small machine is a good part of a task's round trip. When the lock is
// taken, it queues them on out instead, and the consume loop sends them,
// merged with whatever else waits there.
type workerStream struct {
	w        *Worker
	stream   pb.QueueService_ConsumeClient
	out      chan *settles // from the pool, to the consume loop
	done     chan struct{} // closed when the stream is over
	doneOnce sync.Once
	held     atomic.Int64 // deliveries received and not yet settled
	received atomic.Int64 // deliveries received in all
	renew    *renewals    // nil when the worker does not extend leases itself

	sendMu   sync.Mutex
	granted  int64           // credit granted in all; under sendMu
	stop     context.Context // the worker's: once it ends, no more credit
	shutting atomic.Bool     // set by the consume loop once it saw stop end
	// failed carries a failed Send outside the consume loop to it;
	// drained tells it that, shutting down, the last settle went out.
	failed  chan error
	drained chan struct{}
}

func (s *workerStream) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *workerStream) finish() { s.doneOnce.Do(func() { close(s.done) }) }

// settle sends st at once if no one else is sending, else queues it for the
// consume loop; it reports false when the stream is already gone (the
// master has taken the leases back).
func (s *workerStream) settle(st *settles) bool {
	if s.sendMu.TryLock() {
		if s.isDone() {
			s.sendMu.Unlock()
			return false
		}
		err := s.sendLocked(st)
		s.sendMu.Unlock()
		if err != nil {
			s.finish()
			select {
			case s.failed <- err:
			default:
			}
			return false
		}
		return true
	}
	select {
	case s.out <- st:
		return true
	case <-s.done:
		return false
	}
}

// sendLocked sends st, merged with whatever else is queued, with the credit
// that keeps window() deliveries held or on their way. The caller holds
// sendMu.
func (s *workerStream) sendLocked(st *settles) error {
	req, settled := s.w.request(st, s.out)
	if s.stop.Err() == nil {
		want := int64(s.w.window()) - (s.granted - s.received.Load()) - (s.held.Load() - int64(settled))
		if want > 0 {
			req.Credit = uint32(want)
			s.granted += want
		}
	}
	if err := s.stream.Send(req); err != nil {
		return err
	}
	if s.held.Add(-int64(settled)) == 0 && s.shutting.Load() {
		select {
		case s.drained <- struct{}{}:
		default:
		}
	}
	return nil
}

// errSettledByWorker: inside a Worker the handler's return value settles
// the task; a handler may only extend the lease.
var errSettledByWorker = errors.New("distq: a Worker settles its tasks when the handler returns; return the reply or an error instead")

func (s *workerStream) ack(context.Context, *Task, []byte, string) error { return errSettledByWorker }

func (s *workerStream) nack(context.Context, *Task, error, pb.NackAction) error {
	return errSettledByWorker
}

func (s *workerStream) extend(ctx context.Context, t *Task, d time.Duration) error {
	if s.renew != nil {
		d = s.renew.extended(t, d)
	}
	if !s.settle(&settles{extends: []*pb.Extend{{Id: t.ID, Lease: t.lease, LeaseMs: durationMs(d)}}}) {
		return &Error{Kind: ErrLeaseLost, Msg: "the stream that delivered the task is gone"}
	}
	return nil
}

// maxSettleBatch bounds the settles one request carries.
const maxSettleBatch = 4096

// consume runs one stream until it ends. It reports whether any task was
// delivered, and returns nil when the queue was closed and drained.
func (w *Worker) consume(ctx context.Context, jobs chan<- job) (delivered bool, err error) {
	if err := w.c.ensureSession(ctx); err != nil {
		return false, err
	}
	// The stream outlives ctx: at shutdown it still carries the acks of
	// running tasks.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stream, err := w.c.qs.Consume(sctx)
	if err != nil {
		return false, fromStatus(err)
	}
	granted := int64(w.window())
	if err := stream.Send(&pb.ConsumeRequest{Queue: w.cfg.Queue, Credit: uint32(granted), Packed: true}); err != nil {
		return false, w.streamErr(stream, err)
	}
	s := &workerStream{
		w: w, stream: stream, granted: granted, stop: ctx,
		out: make(chan *settles, w.maxWindow()), done: make(chan struct{}),
		failed: make(chan error, 1), drained: make(chan struct{}, 1),
	}
	defer s.finish()
	w.cur.Store(s)
	defer w.cur.CompareAndSwap(s, nil)
	// Leases are renewed from this loop, under sendMu: a renewal taken
	// from s.renew goes out before the settle of its task, which the pool
	// sends or queues only once the task left s.renew. The ticker starts
	// once a delivery says how long leases are.
	var leaseKnown <-chan time.Duration
	var tick <-chan time.Time
	var due []*Task // reused from tick to tick
	if !w.cfg.NoAutoExtend {
		s.renew = newRenewals(w.cfg.MaxHold)
		leaseKnown = s.renew.known
	}
	if hook := w.cfg.OnConnection; hook != nil {
		hook(true)
		defer hook(false)
	}

	var gotAny atomic.Bool
	recvErr := make(chan error, 1)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		recvErr <- w.receive(sctx, stream, s, jobs, &gotAny)
	}()
	// The receiver must be gone before consume returns: it sends on jobs,
	// which Run closes once the loop is over. Cancelling sctx ends its Recv
	// and its send at once.
	defer func() {
		cancel()
		<-recvDone
	}()
	// sendErr is streamErr once the receiver runs: the stream's status is
	// what its Recv returns. A second Recv here, at the same time, is not
	// allowed (gRPC's streams take one receiver at a time).
	sendErr := func(err error) error {
		if err == io.EOF {
			t := time.NewTimer(time.Second)
			defer t.Stop()
			select {
			case rerr := <-recvErr:
				if rerr != nil {
					return rerr
				}
			case <-t.C:
			}
		}
		return fromStatus(err)
	}

	var giveUp <-chan time.Time // at shutdown: stop waiting for hung handlers
	for {
		if s.shutting.Load() && s.held.Load() == 0 {
			// Everything we held is settled and sent: say goodbye; the
			// master ends the stream and we are done.
			s.sendMu.Lock()
			_ = stream.CloseSend()
			s.sendMu.Unlock()
			t := time.NewTimer(w.cfg.ShutdownTimeout)
			select {
			case <-recvErr:
			case <-t.C:
			}
			t.Stop()
			return gotAny.Load(), ctx.Err()
		}
		var ctxDone <-chan struct{}
		if !s.shutting.Load() {
			ctxDone = ctx.Done()
		}
		select {
		case st := <-s.out:
			s.sendMu.Lock()
			err := s.sendLocked(st)
			s.sendMu.Unlock()
			if err != nil {
				s.finish()
				return gotAny.Load(), sendErr(err)
			}
		case err := <-s.failed:
			return gotAny.Load(), sendErr(err)
		case <-s.drained:
			// Checked at the top of the loop.
		case every := <-leaseKnown:
			leaseKnown = nil
			t := time.NewTicker(every)
			defer t.Stop()
			tick = t.C
		case <-tick:
			var err error
			// Under sendMu from the choice of what is due to its send: a
			// settle sent meanwhile would overtake the renewal of its task.
			s.sendMu.Lock()
			due, err = w.renewLeases(stream, s.renew, due[:0])
			s.sendMu.Unlock()
			if err != nil {
				s.finish()
				return gotAny.Load(), sendErr(err)
			}
		case err := <-recvErr:
			s.finish()
			return gotAny.Load(), err
		case <-ctxDone:
			s.shutting.Store(true)
			t := time.NewTimer(w.cfg.ShutdownTimeout + time.Second)
			defer t.Stop()
			giveUp = t.C
			w.log.Info("shutting down: finishing running tasks, handing back the rest", "held", s.held.Load())
		case <-giveUp:
			w.log.Warn("shutdown timeout: tasks still running are left to the master to redeliver", "held", s.held.Load())
			s.finish()
			return gotAny.Load(), ctx.Err()
		}
	}
}

// request merges st and whatever else is waiting in out into one request,
// and reports how many deliveries it settles (acks and nacks).
func (w *Worker) request(st *settles, out <-chan *settles) (*pb.ConsumeRequest, int) {
	req := &pb.ConsumeRequest{}
	var ab *pb.AckBatch
	var replies packed.Builder
	n := 0
	for {
		if len(st.ackIDs) > 0 {
			if ab == nil {
				// The first chunk's slices become the batch's.
				ab = &pb.AckBatch{ReplyQueue: w.cfg.ReplyQueue, Ids: st.ackIDs, Leases: st.ackLeases}
			} else {
				ab.Ids = append(ab.Ids, st.ackIDs...)
				ab.Leases = append(ab.Leases, st.ackLeases...)
			}
			replies.AddAll(&st.replies)
		}
		req.Nacks = append(req.Nacks, st.nacks...)
		req.Extends = append(req.Extends, st.extends...)
		n += len(st.ackIDs) + len(st.nacks)
		if n >= maxSettleBatch || replies.Bytes() >= 1<<20 {
			break
		}
		select {
		case st = <-out:
			continue
		default:
		}
		break
	}
	if ab != nil {
		ab.Replies = replies.Take()
		req.AckBatch = ab
	}
	return req, n
}

// renewLeases extends the leases that are due, in requests of their own;
// buf is room for the due tasks, returned emptied for the next tick.
func (w *Worker) renewLeases(stream pb.QueueService_ConsumeClient, r *renewals, buf []*Task) ([]*Task, error) {
	due := r.due(buf)
	if n := r.takeAbandoned(); n > 0 {
		w.abandoned.Add(uint64(n))
		w.log.Warn("tasks held past MaxHold: their leases are no longer extended, and the master gives them to another worker when they run out",
			"count", n, "max_hold", w.cfg.MaxHold)
	}
	if len(due) == 0 {
		return due, nil
	}
	defer clear(due) // holds no tasks until the next tick
	exts := make([]pb.Extend, len(due))
	reqExts := make([]*pb.Extend, len(due))
	for i, t := range due {
		// Lease 0: the master's lease time, as long as the first.
		exts[i].Id, exts[i].Lease = t.ID, t.lease
		reqExts[i] = &exts[i]
	}
	for len(reqExts) > 0 {
		n := min(len(reqExts), maxSettleBatch)
		if err := stream.Send(&pb.ConsumeRequest{Extends: reqExts[:n]}); err != nil {
			return due[:0], err
		}
		reqExts = reqExts[n:]
	}
	w.extended.Add(uint64(len(due)))
	w.log.Trace("leases renewed", "count", len(due))
	return due[:0], nil
}

// streamErr finds the stream's real status after a failed Send, before a
// receiver runs (see sendErr in consume after).
func (w *Worker) streamErr(stream pb.QueueService_ConsumeClient, err error) error {
	if err == io.EOF {
		if _, rerr := stream.Recv(); rerr != nil && rerr != io.EOF {
			return fromStatus(rerr)
		}
	}
	return fromStatus(err)
}

// receive hands deliveries to the pool in chunks and counts refusals until
// the stream ends. It returns nil for a clean end (queue closed and drained).
func (w *Worker) receive(ctx context.Context, stream pb.QueueService_ConsumeClient, s *workerStream, jobs chan<- job, gotAny *atomic.Bool) error {
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if auth.IsSessionError(err) {
				return err
			}
			return fromStatus(err)
		}
		if rs := resp.GetRefused(); len(rs) > 0 {
			for _, r := range rs {
				w.refused.Add(1)
				w.log.Warn("settle refused by master: lease no longer held (task was redelivered)", "id", r.GetId(), "lease", r.GetLease(), "reason", r.GetReason())
			}
			if s.renew != nil {
				s.renew.refused(rs)
			}
		}
		tasks, err := tasksFromBatch(resp.GetBatch(), s)
		if err != nil {
			return err
		}
		for _, d := range resp.GetDeliveries() {
			tasks = append(tasks, taskFromPB(d, s))
		}
		if len(tasks) == 0 {
			continue
		}
		if !gotAny.Load() {
			gotAny.Store(true)
			w.log.Info("receiving tasks", "queue", w.cfg.Queue, "master", w.c.addr)
		}
		s.held.Add(int64(len(tasks)))
		s.received.Add(int64(len(tasks)))
		size := (len(tasks) + w.cfg.Concurrency - 1) / w.cfg.Concurrency
		received := time.Now()
		var held []heldChunk // the chunks' places in s.renew, one allocation
		if s.renew != nil && tasks[0].LeaseTime > 0 {
			held = make([]heldChunk, (len(tasks)+size-1)/size)
			for i := range held {
				held[i].tasks = tasks[i*size : min((i+1)*size, len(tasks))]
				held[i].received = received
			}
			// Before the pool sees them: a handler may return at once.
			s.renew.add(held, tasks[0].LeaseTime)
		}
		if len(tasks) == 1 && w.runInline != nil && w.runInline(job{tasks: tasks, s: s, received: received, held: firstHeld(held)}) {
			continue
		}
		for i := 0; len(tasks) > 0; i++ {
			j := job{tasks: tasks[:min(size, len(tasks))], s: s, received: received}
			tasks = tasks[len(j.tasks):]
			if held != nil {
				j.held = &held[i]
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

func firstHeld(held []heldChunk) *heldChunk {
	if len(held) == 0 {
		return nil
	}
	return &held[0]
}
