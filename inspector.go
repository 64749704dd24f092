package distq

import (
	"context"
	"time"

	pb "github.com/distq/distq/proto/distq/v1"
)

// Inspector sees and steers a running master: the state of every queue,
// the connected consumers, the dead items, and an operator's commands
// (requeue, purge, pause, resume, close). It is the master's AdminService
// (admin.proto) and the operator's part of QueueService.
//
// Administration is a type of its own, apart from Client (producing) and
// Worker (consuming), as asynq keeps its Inspector apart from its Client
// and Server: a tool that watches or steers a cluster needs none of a
// producer's put streams and retries, and a producer's code offers no
// purge to call by mistake. It authenticates with the same authkey: the
// master has no roles, and whoever holds the key may do all of this.
//
// An Inspector is safe for concurrent use.
type Inspector struct {
	c  *Client
	as pb.AdminServiceClient
}

// NewInspector prepares an inspector of the master at addr ("host:port")
// without any network I/O, as NewClient does: the handshake runs on the
// first call (or by Connect).
func NewInspector(addr string, opts Options) (*Inspector, error) {
	c, err := NewClient(addr, opts)
	if err != nil {
		return nil, err
	}
	return &Inspector{c: c, as: pb.NewAdminServiceClient(c.conn)}, nil
}

// Connect runs the authkey handshake now, so that a wrong key fails here
// (ErrAuthFailed) rather than on the first call.
func (in *Inspector) Connect(ctx context.Context) error { return in.c.Connect(ctx) }

// Close closes the connection. Safe to call twice.
func (in *Inspector) Close() error { return in.c.Close() }

// Queues returns the gauges and counters of every queue, dead-letter
// queues included ("tasks.dead" after "tasks"), with Paused set for the
// queues an operator paused.
func (in *Inspector) Queues(ctx context.Context) ([]Stats, error) { return in.c.Stats(ctx) }

// Consumer is one connected consumer (a Consume stream: a Worker, a
// slave) as the master sees it.
type Consumer struct {
	Queue string
	// Peer is its address as the master sees it ("" for one inside the
	// master).
	Peer string
	// Credit is how many more deliveries the master may send it now;
	// Held how many items are leased to it.
	Credit, Held int
	// Delivered, Acked and Failed count since it connected: its
	// deliveries, its acks, and its deliveries that failed (nacked, or
	// whose lease ran out).
	Delivered, Acked, Failed uint64
	// ConnectedAt is when its stream opened; LastSeen when it last sent
	// anything (credit, settles), by the master's clock. A consumer whose
	// LastSeen falls far behind while it holds items is stuck.
	ConnectedAt, LastSeen time.Time
}

// Consumers lists the consumers of queue, or of every queue when queue
// is "".
func (in *Inspector) Consumers(ctx context.Context, queue string) ([]Consumer, error) {
	var resp *pb.ListConsumersResponse
	err := in.c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = in.as.ListConsumers(ctx, &pb.ListConsumersRequest{Queue: queue})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Consumer, len(resp.GetConsumers()))
	for i, c := range resp.GetConsumers() {
		out[i] = Consumer{
			Queue:       c.GetQueue(),
			Peer:        c.GetPeer(),
			Credit:      int(c.GetCredit()),
			Held:        int(c.GetHeld()),
			Delivered:   c.GetDelivered(),
			Acked:       c.GetAcked(),
			Failed:      c.GetFailed(),
			ConnectedAt: time.UnixMilli(c.GetConnectedMs()),
			LastSeen:    time.UnixMilli(c.GetLastSeenMs()),
		}
	}
	return out, nil
}

// Dead lists up to limit dead items of queue ("tasks", or "tasks.dead"),
// oldest first, from offset, with their last error and attempts; total is
// how many there are, for paging. limit 0 means 100.
func (in *Inspector) Dead(ctx context.Context, queue string, offset, limit int) (items []DeadItem, total int, err error) {
	var resp *pb.ListDeadResponse
	err = in.c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = in.as.ListDead(ctx, &pb.ListDeadRequest{Queue: queue, Offset: uint64(max(offset, 0)), Limit: uint32(max(limit, 0))})
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	items = make([]DeadItem, len(resp.GetItems()))
	for i, d := range resp.GetItems() {
		items[i] = DeadItem{ID: d.GetId(), Attempts: int(d.GetAttempts()), Payload: d.GetPayload(), Headers: d.GetHeaders(), Error: d.GetError(), ReplyTo: d.GetReplyTo()}
	}
	return items, int(resp.GetTotal()), nil
}

// Requeue moves the dead items ids of queue ("tasks", not "tasks.dead")
// back into it with their attempts reset, and reports how many moved (ids
// that are not dead are skipped). Without ids it moves nothing: on the
// wire an empty list means every dead item, and an empty slice that
// reached here by accident must not do that; RequeueAll says so.
func (in *Inspector) Requeue(ctx context.Context, queue string, ids ...uint64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	return in.c.Queue(queue).Requeue(ctx, ids...)
}

// RequeueAll moves every dead item of queue back into it.
func (in *Inspector) RequeueAll(ctx context.Context, queue string) (int, error) {
	return in.c.Queue(queue).Requeue(ctx)
}

// Purge throws away the ready and delayed items of queue (leased ones
// stay with their consumers), or on "<name>.dead" its dead items, and
// reports how many. They are gone for good: not dead-lettered, and not
// back after a restart.
func (in *Inspector) Purge(ctx context.Context, queue string) (int, error) {
	var resp *pb.PurgeResponse
	err := in.c.call(ctx, func(ctx context.Context) (err error) {
		resp, err = in.as.Purge(ctx, &pb.PurgeRequest{Queue: queue})
		return err
	})
	return int(resp.GetPurged()), err
}

// Pause stops the deliveries of queue: workers and gets wait as on an
// empty queue while puts go on. A durable master stays paused across
// restarts. Pausing a paused queue does nothing.
func (in *Inspector) Pause(ctx context.Context, queue string) error {
	return in.c.call(ctx, func(ctx context.Context) error {
		_, err := in.as.Pause(ctx, &pb.PauseRequest{Queue: queue})
		return err
	})
}

// Resume undoes Pause.
func (in *Inspector) Resume(ctx context.Context, queue string) error {
	return in.c.call(ctx, func(ctx context.Context) error {
		_, err := in.as.Resume(ctx, &pb.ResumeRequest{Queue: queue})
		return err
	})
}

// CloseQueue closes queue to puts; its consumers drain what is left and
// end cleanly.
func (in *Inspector) CloseQueue(ctx context.Context, queue string) error {
	return in.c.Queue(queue).Close(ctx)
}
