package server

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/peer"

	"github.com/distq/distq/internal/queue"
	"github.com/distq/distq/internal/ratelog"
	"github.com/distq/distq/internal/state"
	pb "github.com/distq/distq/proto/distq/v1"
)

// maxGetItems bounds one Get so that a single call cannot ask for a reply
// larger than any sane message.
const maxGetItems = 10000

// queueService implements pb.QueueServiceServer on top of the broker.
type queueService struct {
	pb.UnimplementedQueueServiceServer
	broker   *queue.Broker
	log      hclog.Logger
	limits   *limiter
	refusals *ratelog.Log
}

var _ pb.QueueServiceServer = (*queueService)(nil)

func (s *queueService) lookup(name string) (*queue.Queue, error) {
	q, err := s.broker.Queue(name)
	return q, toStatus(err)
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}

// Put serves one stream of batches; see the proto for the contract.
func (s *queueService) Put(stream pb.QueueService_PutServer) error {
	ctx := stream.Context()
	var q *queue.Queue
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if q == nil || (req.GetQueue() != "" && req.GetQueue() != q.Name()) {
			if q, err = s.lookup(req.GetQueue()); err != nil {
				return err
			}
		}
		id, err := putID(req)
		if err != nil {
			return err
		}
		msgs, err := toPutMessages(req)
		if err != nil {
			return err
		}
		if id.Producer != (state.Producer{}) {
			id.CRC = payloadsCRC(msgs)
		}
		ids, dup, err := s.put(ctx, q, msgs, req.GetNowait(), millis(req.GetTimeoutMs()), id)
		if len(ids) > 0 {
			// A durable master answers once the items are on disk (a
			// duplicate's too: its first answer may have been lost
			// before they were).
			if serr := s.broker.Sync(ctx); serr != nil {
				return toStatus(serr)
			}
		}
		if len(ids) > 0 {
			// The put may have woken a consumer's goroutine: let it send
			// the delivery before this one sends the answer. On a busy
			// core the answer would otherwise go out first, and a lone
			// task's trip would wait for it (closed loop, bench/README.md).
			runtime.Gosched()
		}
		resp := &pb.PutResponse{Ids: ids, Duplicate: dup, Dedup: true}
		if err != nil {
			if len(ids) > 0 {
				if serr := stream.Send(resp); serr != nil {
					return serr
				}
			}
			return toStatus(err)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// put puts msgs, and counts the batch as a waiting call (limits.go) only if
// the queue is full and the batch has to wait for room.
func (s *queueService) put(ctx context.Context, q *queue.Queue, msgs []queue.Message, nowait bool, timeout time.Duration, id queue.PutID) ([]uint64, bool, error) {
	ids, dup, err := q.PutOnce(ctx, msgs, true, 0, id)
	if nowait || !errors.Is(err, queue.ErrFull) {
		return ids, dup, err
	}
	release, lerr := s.limits.acquire(ctx, kindWait)
	if lerr != nil {
		return ids, dup, lerr
	}
	defer release()
	if id.Producer != (state.Producer{}) {
		// The part stored is remembered: the retry stores the rest.
		return q.PutOnce(ctx, msgs, false, timeout, id)
	}
	more, _, err := q.PutOnce(ctx, msgs[len(ids):], false, timeout, id)
	return append(ids, more...), dup, err
}

// Consume serves one consumer. The handler goroutine sends deliveries as
// credit and items allow; a sibling goroutine receives credit and settles.
// Refusals are sent by the sibling too, so both send under one mutex, and the
// sibling stops sending once the handler has returned.
func (s *queueService) Consume(stream pb.QueueService_ConsumeServer) error {
	first, err := stream.Recv()
	if err == io.EOF {
		// The consumer closed its side before naming a queue. Returning
		// io.EOF itself, as this used to, is not a status: gRPC sent it as
		// UNKNOWN "EOF". A goodbye before any request is a clean end.
		return nil
	}
	if err != nil {
		return err
	}
	q, err := s.lookup(first.GetQueue())
	if err != nil {
		return err
	}
	c, err := q.NewConsumerFrom(peerAddr(stream.Context()))
	if err != nil {
		return toStatus(err)
	}
	log := s.log.With("queue", q.Name(), "peer", peerAddr(stream.Context()))
	log.Debug("consumer connected")
	defer func() {
		if n := c.Close(); n > 0 {
			log.Info("consumer left; its leases went back to the queue", "returned", n)
		} else {
			log.Debug("consumer left")
		}
	}()

	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var (
		sendMu   sync.Mutex
		finished bool // set under sendMu when the handler returns
	)
	defer func() {
		sendMu.Lock()
		finished = true
		sendMu.Unlock()
	}()
	send := func(resp *pb.ConsumeResponse) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		if finished {
			return io.EOF
		}
		return stream.Send(resp)
	}
	// ackBuf is reused by settle, which runs on one goroutine at a time
	// (first this one, then the receiver below).
	var ackBuf []queue.Ack
	settle := func(req *pb.ConsumeRequest) error {
		acks, refused := s.appendAcks(ackBuf[:0], req.GetAcks())
		acks, err := s.appendAckBatch(acks, req.GetAckBatch())
		if err != nil {
			return err
		}
		// Extends go first: a consumer extends a lease only before it
		// settles it, and one request may carry both (a worker's handler
		// extends, then returns, and both go out together).
		if exts := req.GetExtends(); len(exts) > 0 {
			refused = append(refused, toRefused(c.Extend(toExtends(exts)))...)
		}
		refused = append(refused, toRefused(c.Ack(acks))...)
		clear(acks) // holds no payloads until the next request
		ackBuf = acks
		refused = append(refused, toRefused(c.Nack(toNacks(req.GetNacks())))...)
		c.Grant(int(req.GetCredit()))
		if len(refused) > 0 {
			s.refusals.Note("settles refused", "leases no longer held", peerAddr(stream.Context()),
				"queue", q.Name(), "count", len(refused), "first_id", refused[0].GetId(), "first_reason", refused[0].GetReason())
			return send(&pb.ConsumeResponse{Refused: refused})
		}
		return nil
	}
	if err := settle(first); err != nil {
		return err
	}

	recvErr := make(chan error, 1)
	go func() {
		defer cancel()
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			c.Touch(time.Now()) // what an operator sees as its last contact
			if req.GetQueue() != "" && req.GetQueue() != q.Name() {
				recvErr <- invalid("distq: a Consume stream reads one queue (%q), not %q", q.Name(), req.GetQueue())
				return
			}
			if err := settle(req); err != nil {
				recvErr <- err
				return
			}
		}
	}()

	packedOut := first.GetPacked()
	leaseMs := leaseMillis(s.broker.LeaseTime())
	var buf []queue.Delivery
	for {
		buf, err = c.Next(ctx, buf[:0])
		if len(buf) > 0 {
			resp := &pb.ConsumeResponse{}
			if packedOut {
				resp.Batch, resp.Deliveries = toBatch(buf, leaseMs)
			} else {
				resp.Deliveries = toDeliveries(buf, leaseMs)
			}
			if serr := send(resp); serr != nil {
				return serr
			}
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, queue.ErrClosed):
			log.Debug("queue closed and drained; ending consumer")
			// Said on the wire, so that the end cannot be taken for the
			// one that follows a consumer's own half-close.
			if serr := send(&pb.ConsumeResponse{Closed: true}); serr != nil {
				return serr
			}
			return nil
		case errors.Is(err, queue.ErrShutdown):
			return errShutdown
		case ctx.Err() != nil:
			select {
			case rerr := <-recvErr:
				if rerr == io.EOF {
					return nil // the consumer said goodbye
				}
				return rerr
			default:
				return toStatus(err)
			}
		default:
			return toStatus(err)
		}
	}
}

func (s *queueService) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	q, err := s.lookup(req.GetQueue())
	if err != nil {
		return nil, err
	}
	return s.get(ctx, q, req)
}

// GetStream serves Gets one after another on one stream; see the proto for
// the contract. Each is served by get, as a unary Get is, and answered
// before the next request is read.
func (s *queueService) GetStream(stream pb.QueueService_GetStreamServer) error {
	ctx := stream.Context()
	var q *queue.Queue
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		g := req.GetGet()
		switch {
		case q == nil:
			if q, err = s.lookup(g.GetQueue()); err != nil {
				return err
			}
		case g.GetQueue() != "" && g.GetQueue() != q.Name():
			return invalid("distq: a GetStream stream reads one queue (%q), not %q", q.Name(), g.GetQueue())
		}
		resp, err := s.get(ctx, q, g)
		if err != nil {
			return err
		}
		if err := stream.Send(&pb.GetStreamResponse{Get: resp}); err != nil {
			return err
		}
	}
}

// get serves one Get of q, unary or on a GetStream.
func (s *queueService) get(ctx context.Context, q *queue.Queue, req *pb.GetRequest) (*pb.GetResponse, error) {
	maxItems := int(req.GetMaxItems())
	if maxItems > maxGetItems {
		return nil, invalid("distq: max_items %d above the limit of %d", maxItems, maxGetItems)
	}
	ds, err := q.Get(ctx, maxItems, true, 0, req.GetAutoAck())
	if err == nil && len(ds) == 0 && !req.GetNowait() {
		// Nothing ready: this Get waits, and counts as waiting.
		release, lerr := s.limits.acquire(ctx, kindWait)
		if lerr != nil {
			return nil, lerr
		}
		ds, err = q.Get(ctx, maxItems, false, millis(req.GetTimeoutMs()), req.GetAutoAck())
		release()
	}
	if errors.Is(err, queue.ErrClosed) {
		return &pb.GetResponse{Closed: true}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	if req.GetAutoAck() && len(ds) > 0 {
		// Settled as they were taken: sent once that is on disk, or a
		// crash could hand them out again.
		if err := s.broker.Sync(ctx); err != nil {
			return nil, toStatus(err)
		}
	}
	// Deliveries taken without auto-ack are leased: they carry the lease.
	leaseMs := leaseMillis(s.broker.LeaseTime())
	if req.GetPacked() {
		resp := &pb.GetResponse{Incarnation: s.broker.Incarnation()}
		resp.Batch, resp.Deliveries = toBatch(ds, leaseMs)
		return resp, nil
	}
	return &pb.GetResponse{Deliveries: toDeliveries(ds, leaseMs), Incarnation: s.broker.Incarnation()}, nil
}

func (s *queueService) Ack(ctx context.Context, req *pb.AckRequest) (*pb.AckResponse, error) {
	q, err := s.lookup(req.GetQueue())
	if err != nil {
		return nil, err
	}
	if r := s.otherIncarnation(ctx, q, req.GetIncarnation(), len(req.GetAcks()), func(i int) (uint64, uint64) {
		return req.Acks[i].GetId(), req.Acks[i].GetLease()
	}); r != nil {
		return &pb.AckResponse{Refused: r}, nil
	}
	acks, refused := s.appendAcks(nil, req.GetAcks())
	refused = append(refused, toRefused(q.Ack(acks))...)
	if err := s.broker.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &pb.AckResponse{Refused: refused}, nil
}

// otherIncarnation refuses a whole unary settle whose incarnation is not
// this master's: the items were leased by an earlier run (or the caller
// did not say), and their ids and leases may name items of this one. It
// returns nil when the settle may go on.
func (s *queueService) otherIncarnation(ctx context.Context, q *queue.Queue, inc uint64, n int, item func(int) (id, lease uint64)) []*pb.Refused {
	if inc == s.broker.Incarnation() {
		return nil
	}
	if n == 0 {
		return []*pb.Refused{}
	}
	refused := make([]*pb.Refused, n)
	for i := range n {
		id, lease := item(i)
		refused[i] = &pb.Refused{Id: id, Lease: lease, Reason: queue.ReasonIncarnation}
	}
	q.CountRefused(n)
	s.refusals.Note("settles refused", "leased by another run of the master", peerAddr(ctx), "queue", q.Name(), "count", n)
	return refused
}

func (s *queueService) Nack(ctx context.Context, req *pb.NackRequest) (*pb.NackResponse, error) {
	q, err := s.lookup(req.GetQueue())
	if err != nil {
		return nil, err
	}
	if r := s.otherIncarnation(ctx, q, req.GetIncarnation(), len(req.GetNacks()), func(i int) (uint64, uint64) {
		return req.Nacks[i].GetId(), req.Nacks[i].GetLease()
	}); r != nil {
		return &pb.NackResponse{Refused: r}, nil
	}
	refused := toRefused(q.Nack(toNacks(req.GetNacks())))
	if err := s.broker.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &pb.NackResponse{Refused: refused}, nil
}

func (s *queueService) Extend(ctx context.Context, req *pb.ExtendRequest) (*pb.ExtendResponse, error) {
	q, err := s.lookup(req.GetQueue())
	if err != nil {
		return nil, err
	}
	if r := s.otherIncarnation(ctx, q, req.GetIncarnation(), len(req.GetExtends()), func(i int) (uint64, uint64) {
		return req.Extends[i].GetId(), req.Extends[i].GetLease()
	}); r != nil {
		return &pb.ExtendResponse{Refused: r}, nil
	}
	return &pb.ExtendResponse{Refused: toRefused(q.Extend(toExtends(req.GetExtends())))}, nil
}

func (s *queueService) Stats(ctx context.Context, req *pb.StatsRequest) (*pb.StatsResponse, error) {
	if req.GetQueue() != "" {
		q, err := s.lookup(req.GetQueue())
		if err != nil {
			return nil, err
		}
		return &pb.StatsResponse{Queues: []*pb.QueueStats{toStats(q.Stats())}}, nil
	}
	var out []*pb.QueueStats
	for _, q := range s.broker.Queues() {
		out = append(out, toStats(q.Stats()))
	}
	return &pb.StatsResponse{Queues: out}, nil
}

func (s *queueService) Join(ctx context.Context, req *pb.JoinRequest) (*pb.JoinResponse, error) {
	q, err := s.lookup(req.GetQueue())
	if err != nil {
		return nil, err
	}
	done := joinedNow(q)
	if !done {
		release, err := s.limits.acquire(ctx, kindWait)
		if err != nil {
			return nil, err
		}
		done = q.Join(ctx, millis(req.GetTimeoutMs()))
		release()
	}
	if !done && ctx.Err() != nil {
		return nil, toStatus(ctx.Err())
	}
	return &pb.JoinResponse{Done: done, Stats: toStats(q.Stats())}, nil
}

// joinedNow reports, without waiting, whether q has nothing unfinished: a
// Join with a context already over checks once and returns.
func joinedNow(q *queue.Queue) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return q.Join(ctx, 0)
}

func (s *queueService) Close(ctx context.Context, req *pb.CloseRequest) (*pb.CloseResponse, error) {
	q, err := s.lookup(req.GetQueue())
	if err != nil {
		return nil, err
	}
	if err := q.Close(); err != nil {
		return nil, toStatus(err)
	}
	if err := s.broker.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("queue closed by a client", "queue", q.Name(), "peer", peerAddr(ctx))
	return &pb.CloseResponse{}, nil
}

func (s *queueService) Peek(ctx context.Context, req *pb.PeekRequest) (*pb.PeekResponse, error) {
	q, err := s.lookup(req.GetQueue())
	if err != nil {
		return nil, err
	}
	items, err := peekPage(ctx, s.broker, q, req.GetOffset(), req.GetLimit())
	if err != nil {
		return nil, err
	}
	// Peeked items are not leased: they carry no lease.
	return &pb.PeekResponse{Items: toDeliveries(items, 0)}, nil
}

// peekPage lists up to limit (0: 100) of q's ready items from offset, as
// Peek and ListDead show them. An id is shown once its item's record is on
// disk, as a put's answer and a delivery are: it is never given to another
// item.
func peekPage(ctx context.Context, b *queue.Broker, q *queue.Queue, offset uint64, limit uint32) ([]queue.Delivery, error) {
	n := int(limit)
	if n == 0 {
		n = 100
	}
	if n > maxGetItems {
		return nil, invalid("distq: limit %d above the limit of %d", n, maxGetItems)
	}
	if offset > 1<<62 {
		return nil, nil
	}
	items := q.Peek(int(offset), n)
	if err := b.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	return items, nil
}

func (s *queueService) Requeue(ctx context.Context, req *pb.RequeueRequest) (*pb.RequeueResponse, error) {
	q, err := s.lookup(req.GetQueue())
	if err != nil {
		return nil, err
	}
	n, err := q.Requeue(req.GetIds())
	if err == nil {
		err = s.broker.Sync(ctx)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("dead items requeued", "queue", q.Name(), "count", n, "peer", peerAddr(ctx))
	return &pb.RequeueResponse{Requeued: uint64(n)}, nil
}
