package distq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distq/distq/internal/packed"
	pb "github.com/distq/distq/proto/distq/v1"
)

// Queue is a handle to one named queue on the master, the counterpart of the
// proxy that BaseManager's get_task_queue() returns. It is cheap; make as
// many as you like.
type Queue struct {
	c    *Client
	name string
}

// Message is one item to put: opaque bytes and optional headers.
type Message struct {
	Payload []byte
	Headers map[string]string
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// PutOption changes how Put waits.
type PutOption func(*pb.PutRequest)

// Nowait makes a put fail at once with ErrFull when the queue is full.
func Nowait() PutOption { return func(r *pb.PutRequest) { r.Nowait = true } }

// Timeout makes a put wait at most d for room in a full queue before it
// fails with ErrFull (put(block=True, timeout=d)).
func Timeout(d time.Duration) PutOption {
	return func(r *pb.PutRequest) { r.TimeoutMs = durationMs(d) }
}

// Put adds one item, waiting while the queue is full until ctx ends (or as
// the options say). It returns the item's id.
func (q *Queue) Put(ctx context.Context, payload []byte, opts ...PutOption) (uint64, error) {
	ids, err := q.PutBatch(ctx, []Message{{Payload: payload}}, opts...)
	if len(ids) == 1 {
		return ids[0], err
	}
	return 0, err
}

// PutNowait adds one item or fails at once with ErrFull (put_nowait).
func (q *Queue) PutNowait(ctx context.Context, payload []byte) (uint64, error) {
	return q.Put(ctx, payload, Nowait())
}

// PutBatch adds items in order in one round trip. On error it returns the
// ids of the items accepted before it (they stay in the queue).
//
// When the answer is lost after the put may have reached the master (the
// connection or the stream broke, the master restarted, it answered
// UNAVAILABLE), PutBatch sends the same put again, on a new stream, with a
// backoff of 50 ms doubling to 2 s with jitter, until the master answers
// or ctx ends; a master that had stored it answers with the ids it first
// assigned, so every item is stored once. It does so only while the
// master's latest answer to a put of this Client said that it deduplicates
// puts, and not with Options.NoPutRetry. Otherwise a put whose answer was
// lost fails, and its items may or may not be in the queue. Definite
// answers (a full or closed queue, an invalid put, a refused key) are
// never sent again.
func (q *Queue) PutBatch(ctx context.Context, msgs []Message, opts ...PutOption) ([]uint64, error) {
	req := &pb.PutRequest{Queue: q.name}
	if hasHeaders(msgs) {
		req.Items = make([]*pb.Item, len(msgs))
		for i, m := range msgs {
			req.Items[i] = &pb.Item{Payload: m.Payload, Headers: m.Headers}
		}
	} else {
		var b packed.Builder
		for _, m := range msgs {
			b.Add(m.Payload)
		}
		req.Packed = b.Take()
	}
	for _, o := range opts {
		o(req)
	}
	req.ProducerId = q.c.producer[:]
	return q.c.putStream(q.name).put(ctx, q.c, req, len(msgs))
}

func hasHeaders(msgs []Message) bool {
	for _, m := range msgs {
		if len(m.Headers) > 0 {
			return true
		}
	}
	return false
}

// Task is an item taken under a lease: settle it with Done (task_done), Fail
// or Release. Tasks handed to a Worker's handler are settled by the worker.
type Task struct {
	ID      uint64
	Attempt int
	Payload []byte
	Headers map[string]string
	// ReplyTo is, for a reply put by an ack, the id of the task it answers.
	ReplyTo uint64
	// Deadline is when the lease runs out unless extended, by the master's
	// clock. A Worker extends the lease by itself while it holds the task,
	// so there it is only the first deadline.
	Deadline time.Time
	// LeaseTime is the lease's length (0 when the task is not leased, or
	// its master does not say). A consumer that keeps a task longer extends
	// it well before LeaseTime has passed since it received the task, by
	// its own clock, as the master's clock may differ.
	LeaseTime time.Duration

	lease   uint64
	settler settler
}

// settler settles a task: through unary calls for Lease, through the
// stream for a Worker.
type settler interface {
	ack(ctx context.Context, t *Task, reply []byte, replyQueue string) error
	nack(ctx context.Context, t *Task, err error, action pb.NackAction) error
	extend(ctx context.Context, t *Task, d time.Duration) error
}

// Done acknowledges the task (JoinableQueue.task_done).
func (t *Task) Done(ctx context.Context) error { return t.settler.ack(ctx, t, nil, "") }

// Reply acknowledges the task and, in the same step, puts reply into the
// queue named replyQueue: results hold exactly one reply per task.
func (t *Task) Reply(ctx context.Context, replyQueue string, reply []byte) error {
	return t.settler.ack(ctx, t, reply, replyQueue)
}

// Fail returns the task with err, to be retried after the queue's backoff
// (the master's -retry-min, doubled with every attempt up to -retry-max);
// after the master's max attempts it moves to the dead-letter queue. Wrap
// err with RetryAfter to choose the delay, or with Permanent to dead-letter
// it at once.
//
// A nil err is taken as a failure without a message (it used to panic
// when the reason was sent).
func (t *Task) Fail(ctx context.Context, err error) error {
	if err == nil {
		err = errors.New("task failed")
	}
	action := pb.NackAction_NACK_ACTION_RETRY
	if IsPermanentFailure(err) {
		action = pb.NackAction_NACK_ACTION_DEAD
	}
	return t.settler.nack(ctx, t, err, action)
}

// Release hands the task back untouched; the attempt does not count.
func (t *Task) Release(ctx context.Context) error {
	return t.settler.nack(ctx, t, errors.New("released"), pb.NackAction_NACK_ACTION_RELEASE)
}

// Extend keeps the lease for d from now (0: the master's lease time), for
// work that takes longer than the lease. A Worker does this by itself (see
// WorkerConfig.NoAutoExtend); its handlers need Extend only to hold a task
// for longer than a lease even should the worker stop extending (hang).
// There, Extend never shortens a lease: a d shorter than a lease counts as
// one lease.
func (t *Task) Extend(ctx context.Context, d time.Duration) error {
	return t.settler.extend(ctx, t, d)
}

// ErrLeaseLost: the settle was refused because the task's lease had already
// moved on (it expired and the task was redelivered, or was settled).
var ErrLeaseLost = errors.New("distq: lease no longer held")

// Get removes and returns one item, waiting for one until ctx ends
// (queue.Queue.get). It returns ErrClosed once the queue is closed and
// drained. The returned Task is already settled.
//
// Get, GetTimeout, GetNowait, GetMany and Lease travel on one GetStream per
// queue that the Client keeps open (see get_stream.go); each is served as a
// unary Get would be, and nothing is taken ahead of a call.
func (q *Queue) Get(ctx context.Context) (*Task, error) {
	return q.get(ctx, false, 0, true)
}

// GetTimeout is Get that gives up with ErrEmpty after timeout.
func (q *Queue) GetTimeout(ctx context.Context, timeout time.Duration) (*Task, error) {
	return q.get(ctx, false, timeout, true)
}

// GetNowait removes and returns one item if one is ready, or ErrEmpty.
func (q *Queue) GetNowait(ctx context.Context) (*Task, error) {
	return q.get(ctx, true, 0, true)
}

// Lease takes one item under a lease, waiting up to timeout (0: until ctx
// ends). Settle it with Done, Reply, Fail or Release before the lease runs
// out, or it is delivered again (JoinableQueue.get + task_done).
func (q *Queue) Lease(ctx context.Context, timeout time.Duration) (*Task, error) {
	return q.get(ctx, false, timeout, false)
}

// GetMany removes up to max items in one round trip, waiting up to timeout
// for the first (0: until ctx ends). It returns ErrEmpty when nothing came.
func (q *Queue) GetMany(ctx context.Context, max int, timeout time.Duration) ([]*Task, error) {
	return q.getMany(ctx, max, false, timeout, true)
}

func (q *Queue) get(ctx context.Context, nowait bool, timeout time.Duration, autoAck bool) (*Task, error) {
	ts, err := q.getMany(ctx, 1, nowait, timeout, autoAck)
	if err != nil {
		return nil, err
	}
	return ts[0], nil
}

// MaxGetItems is the most items one Get may ask for (the master's limit).
const MaxGetItems = 10000

func (q *Queue) getMany(ctx context.Context, max int, nowait bool, timeout time.Duration, autoAck bool) ([]*Task, error) {
	if max < 1 || max > MaxGetItems {
		return nil, fmt.Errorf("distq: get of %d items: want 1 to %d", max, MaxGetItems)
	}
	req := &pb.GetRequest{Queue: q.name, MaxItems: uint32(max), Nowait: nowait, TimeoutMs: durationMs(timeout), AutoAck: autoAck, Packed: true}
	for {
		resp, err := q.getOnce(ctx, req)
		if err != nil {
			return nil, err
		}
		if resp.GetClosed() {
			return nil, &Error{Kind: ErrClosed, Msg: "queue " + q.name + " is closed and drained"}
		}
		us := unarySettler{q, resp.GetIncarnation()}
		ts, err := tasksFromBatch(resp.GetBatch(), us)
		if err != nil {
			return nil, err
		}
		for _, d := range resp.GetDeliveries() {
			ts = append(ts, taskFromPB(d, us))
		}
		if len(ts) > 0 {
			return ts, nil
		}
		if nowait || timeout > 0 {
			return nil, ErrEmpty
		}
		// A wait without timeout should not come back empty; if a master
		// ever bounds its long polls, ask again until ctx ends.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// Qsize is the number of ready items (queue.Queue.qsize).
func (q *Queue) Qsize(ctx context.Context) (int, error) {
	st, err := q.Stats(ctx)
	return st.Ready, err
}

// Empty reports whether no item is ready (queue.Queue.empty).
func (q *Queue) Empty(ctx context.Context) (bool, error) {
	st, err := q.Stats(ctx)
	return st.Ready == 0, err
}

// Full reports whether the queue is bounded and at its bound (queue.Queue.full).
func (q *Queue) Full(ctx context.Context) (bool, error) {
	st, err := q.Stats(ctx)
	return st.MaxSize > 0 && st.Ready >= st.MaxSize, err
}

// Stats returns the queue's counters.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	var resp *pb.StatsResponse
	err := q.c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = q.c.qs.Stats(ctx, &pb.StatsRequest{Queue: q.name})
		return err
	})
	if err != nil || len(resp.GetQueues()) == 0 {
		return Stats{}, err
	}
	return statsFromPB(resp.GetQueues()[0]), nil
}

// Join waits until every item put so far has been acknowledged or
// dead-lettered and nothing is ready (JoinableQueue.join), or ctx ends.
func (q *Queue) Join(ctx context.Context) error {
	for {
		var resp *pb.JoinResponse
		err := q.c.call(ctx, func(ctx context.Context) (err error) {
			resp, err = q.c.qs.Join(ctx, &pb.JoinRequest{Queue: q.name, TimeoutMs: 30000})
			return err
		})
		if err != nil {
			return err
		}
		if resp.GetDone() {
			return nil
		}
	}
}

// Close refuses further puts; consumers drain the rest and then end.
func (q *Queue) Close(ctx context.Context) error {
	return q.c.call(ctx, func(ctx context.Context) error {
		_, err := q.c.qs.Close(ctx, &pb.CloseRequest{Queue: q.name})
		return err
	})
}

// Peek lists up to limit ready items from offset without taking them. On a
// "<name>.dead" queue each Task's Error tells why it died.
func (q *Queue) Peek(ctx context.Context, offset, limit int) ([]DeadItem, error) {
	var resp *pb.PeekResponse
	err := q.c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = q.c.qs.Peek(ctx, &pb.PeekRequest{Queue: q.name, Offset: uint64(max(offset, 0)), Limit: uint32(max(limit, 0))})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]DeadItem, len(resp.GetItems()))
	for i, d := range resp.GetItems() {
		out[i] = DeadItem{ID: d.GetId(), Attempts: int(d.GetAttempt()), Payload: d.GetPayload(), Headers: d.GetHeaders(), Error: d.GetError()}
	}
	return out, nil
}

// DeadItem is an item listed by Peek, typically from a dead-letter queue,
// or by Inspector.Dead.
type DeadItem struct {
	ID       uint64
	Attempts int
	Payload  []byte
	Headers  map[string]string
	Error    string
	// ReplyTo, for a reply, is the id of the item it answered (set by
	// Inspector.Dead).
	ReplyTo uint64
}

// Dead lists the items of this queue's dead-letter queue.
func (q *Queue) Dead(ctx context.Context, offset, limit int) ([]DeadItem, error) {
	return q.c.Queue(q.name+".dead").Peek(ctx, offset, limit)
}

// Requeue moves dead items back into this queue with their attempts reset:
// those with the given ids, or all of them when none are given.
func (q *Queue) Requeue(ctx context.Context, ids ...uint64) (int, error) {
	var resp *pb.RequeueResponse
	err := q.c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = q.c.qs.Requeue(ctx, &pb.RequeueRequest{Queue: q.name, Ids: ids})
		return err
	})
	return int(resp.GetRequeued()), err
}

// unarySettler settles tasks taken with Lease through unary calls.
// It names the incarnation of the master that leased the task, so that
// after a master restart its settles are refused rather than taken for
// settles of the new master's items.
type unarySettler struct {
	q           *Queue
	incarnation uint64
}

func (s unarySettler) ack(ctx context.Context, t *Task, reply []byte, replyQueue string) error {
	a := &pb.Ack{Id: t.ID, Lease: t.lease}
	if replyQueue != "" {
		a.Reply, a.ReplyQueue = &pb.Item{Payload: reply}, replyQueue
	}
	var resp *pb.AckResponse
	err := s.q.c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.q.c.qs.Ack(ctx, &pb.AckRequest{Queue: s.q.name, Acks: []*pb.Ack{a}, Incarnation: s.incarnation})
		return err
	})
	return refusedErr(err, resp.GetRefused())
}

func (s unarySettler) nack(ctx context.Context, t *Task, cause error, action pb.NackAction) error {
	var resp *pb.NackResponse
	err := s.q.c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.q.c.qs.Nack(ctx, &pb.NackRequest{Queue: s.q.name, Nacks: []*pb.Nack{{Id: t.ID, Lease: t.lease, Error: cause.Error(), Action: action, DelayMs: retryDelayMs(cause)}}, Incarnation: s.incarnation})
		return err
	})
	return refusedErr(err, resp.GetRefused())
}

func (s unarySettler) extend(ctx context.Context, t *Task, d time.Duration) error {
	var resp *pb.ExtendResponse
	err := s.q.c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.q.c.qs.Extend(ctx, &pb.ExtendRequest{Queue: s.q.name, Extends: []*pb.Extend{{Id: t.ID, Lease: t.lease, LeaseMs: durationMs(d)}}, Incarnation: s.incarnation})
		return err
	})
	return refusedErr(err, resp.GetRefused())
}

func refusedErr(err error, refused []*pb.Refused) error {
	if err != nil {
		return err
	}
	if len(refused) > 0 {
		return &Error{Kind: ErrLeaseLost, Msg: refused[0].GetReason()}
	}
	return nil
}

func durationMs(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	ms := d.Milliseconds()
	if ms == 0 {
		ms = 1
	}
	if ms > 1<<32-1 {
		ms = 1<<32 - 1
	}
	return uint32(ms)
}
