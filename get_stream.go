package distq

import (
	"context"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/connectivity"

	pb "github.com/distq/distq/proto/distq/v1"
)

// getStream is one long-lived GetStream per queue name, kept by a Client
// for its Gets of that queue (Get, GetTimeout, GetNowait, GetMany, Lease):
// a Get then costs one message each way instead of a call's set-up. Each
// Get is served by the master exactly as a unary Get is; items are taken
// only while a Get waits for them, never ahead, so a reader that stops
// asking leaves the rest in the queue.
//
// One Get at a time uses the stream. A Get that finds it busy (another
// goroutine reads the same queue) makes a unary call instead, so that
// concurrent readers never wait behind each other's long polls. Any error
// tears the stream down, and the next Get opens another: after a master
// restart, the first Get reconnects.
type getStream struct {
	mu     sync.Mutex
	stream pb.QueueService_GetStreamClient
	cancel context.CancelFunc
	conn   uint64 // the transport the stream opened on (transportCounter)
	// ready: the connection was seen Ready since the stream opened. A
	// connection that is not Ready then lost its transport (a GOAWAY, a
	// broken link) before gRPC failed the stream. One not yet seen Ready
	// may be the first connect, whose state gRPC publishes after it
	// already carries calls (under load, for many of them).
	ready bool
}

func (c *Client) getStream(queue string) *getStream {
	c.getMu.Lock()
	defer c.getMu.Unlock()
	if c.gets == nil {
		c.gets = make(map[string]*getStream)
	}
	gs := c.gets[queue]
	if gs == nil {
		gs = &getStream{}
		c.gets[queue] = gs
	}
	return gs
}

// closeGets tears down every get stream (Client.Close).
func (c *Client) closeGets() {
	c.getMu.Lock()
	defer c.getMu.Unlock()
	for _, gs := range c.gets {
		gs.mu.Lock()
		gs.reset()
		gs.mu.Unlock()
	}
}

func (gs *getStream) reset() {
	if gs.cancel != nil {
		gs.cancel()
	}
	gs.stream, gs.cancel = nil, nil
}

// getOnce sends req and returns the master's answer, on the kept stream if it
// is free and by a unary call if not. ctx bounds this Get alone: when it
// ends first, the stream is torn down.
func (q *Queue) getOnce(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	gs := q.c.getStream(q.name)
	if !gs.mu.TryLock() {
		var resp *pb.GetResponse
		err := q.c.call(ctx, func(ctx context.Context) (err error) {
			resp, err = q.c.qs.Get(ctx, req)
			return err
		})
		return resp, err
	}
	defer gs.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The master waits for items until the request's timeout or the
	// stream's end; a Get bounded by ctx's deadline alone asks it to give
	// up then, so that the stream outlives the wait.
	if dl, ok := ctx.Deadline(); ok && !req.GetNowait() {
		left := durationMs(time.Until(dl))
		if req.GetTimeoutMs() == 0 || left < req.GetTimeoutMs() {
			req.TimeoutMs = left
		}
	}
	var resp *pb.GetResponse
	err := q.c.call(ctx, func(ctx context.Context) (err error) {
		var sent bool
		resp, sent, err = gs.try(ctx, q.c, req)
		if err != nil && !sent && ctx.Err() == nil {
			// The kept stream had died before this Get (the master went
			// away meanwhile): nothing was sent, so a fresh stream may
			// carry it.
			resp, _, err = gs.try(ctx, q.c, req)
		}
		return err
	})
	return resp, err
}

// try is one attempt of a Get on the stream; sent reports whether req may
// have reached the master (with auto_ack, its items may then have been
// taken: it is not sent again).
func (gs *getStream) try(ctx context.Context, c *Client, req *pb.GetRequest) (resp *pb.GetResponse, sent bool, err error) {
	state := c.conn.GetState()
	if gs.stream != nil {
		gs.ready = gs.ready || state == connectivity.Ready
		if (gs.ready && state != connectivity.Ready) || c.transports.n.Load() != gs.conn {
			// Its connection is gone, or going: gRPC has not failed it yet.
			gs.reset()
		}
	}
	reused := gs.stream != nil
	if gs.stream == nil {
		// The stream outlives this call; the call's ctx is watched below.
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		conn := c.transports.n.Load()
		stream, err := c.qs.GetStream(sctx)
		if err != nil {
			cancel()
			return nil, false, err
		}
		gs.stream, gs.cancel, gs.conn, gs.ready = stream, cancel, conn, state == connectivity.Ready
	}
	stop := context.AfterFunc(ctx, gs.cancel)
	defer func() {
		if !stop() {
			// ctx ended while this Get was out: its cancel of the stream
			// has run or is about to, perhaps after the answer came in
			// (the master answers a Get at its deadline too). The stream
			// is not kept, or the cancel would end the next Get on it.
			gs.reset()
		}
	}()
	fail := func(err error) error {
		gs.reset()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if err := gs.stream.Send(&pb.GetStreamRequest{Get: req}); err != nil {
		// io.EOF: the stream had already ended, and req was not sent. A
		// broken stream tells why on Recv.
		if _, rerr := gs.stream.Recv(); rerr != nil && rerr != io.EOF {
			err = rerr
		}
		return nil, !reused, fail(err)
	}
	r, err := gs.stream.Recv()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // the master ends a GetStream only with a status
	}
	if err != nil {
		return nil, true, fail(err)
	}
	return r.GetGet(), true, nil
}
