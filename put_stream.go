package distq

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	pb "github.com/distq/distq/proto/distq/v1"
)

// putStream is one long-lived Put stream per queue name, shared by every put
// of a Client: a put then costs one message each way instead of opening a
// stream (and authenticating it) each time. Puts take turns on it. Any
// error tears it down, and the next put opens another.
type putStream struct {
	mu     sync.Mutex
	stream pb.QueueService_PutClient
	cancel context.CancelFunc
	conn   uint64 // the transport the stream opened on (transportCounter)
}

// transportCounter is a gRPC stats handler that counts the connections a
// Client has opened. When a master goes away, gRPC reports the channel's
// state change before it fails the streams of the dead connection, so a kept
// Put stream can look alive for a moment after the loss. A put sent on it
// then fails after sending, and cannot be retried safely. Comparing counts
// tells a kept stream from a stale one before anything is sent.
type transportCounter struct{ n atomic.Uint64 }

func (t *transportCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	t.n.Add(1)
	return ctx
}
func (*transportCounter) HandleConn(context.Context, stats.ConnStats) {}
func (*transportCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (*transportCounter) HandleRPC(context.Context, stats.RPCStats) {}

func (c *Client) putStream(queue string) *putStream {
	c.putMu.Lock()
	defer c.putMu.Unlock()
	if c.puts == nil {
		c.puts = make(map[string]*putStream)
	}
	ps := c.puts[queue]
	if ps == nil {
		ps = &putStream{}
		c.puts[queue] = ps
	}
	return ps
}

// closePuts tears down every put stream (Client.Close).
func (c *Client) closePuts() {
	c.putMu.Lock()
	defer c.putMu.Unlock()
	for _, ps := range c.puts {
		ps.mu.Lock()
		ps.reset()
		ps.mu.Unlock()
	}
}

func (ps *putStream) reset() {
	if ps.cancel != nil {
		ps.cancel()
	}
	ps.stream, ps.cancel = nil, nil
}

// put sends req, which holds n items, and returns the ids of those the
// master accepted. ctx bounds this put alone: when it ends first, the stream
// is torn down.
func (ps *putStream) put(ctx context.Context, c *Client, req *pb.PutRequest, n int) ([]uint64, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, sent, err := ps.try(ctx, c, req, n)
	if err != nil && !sent && ctx.Err() == nil {
		// The kept stream had died before this put (the master went away
		// meanwhile): nothing was sent, so a fresh stream may carry it.
		ids, _, err = ps.try(ctx, c, req, n)
	}
	return ids, err
}

// try is one attempt of put; sent reports whether req may have reached the
// master, in which case it must not be sent again.
func (ps *putStream) try(ctx context.Context, c *Client, req *pb.PutRequest, n int) (ids []uint64, sent bool, err error) {
	if ps.stream != nil && (c.conn.GetState() != connectivity.Ready || c.transports.n.Load() != ps.conn) {
		// Its connection is gone, or going: gRPC has not failed it yet.
		ps.reset()
	}
	reused := ps.stream != nil
	if ps.stream == nil {
		// The stream outlives this call; the call's ctx is watched below.
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		// Read before opening: a connection counted meanwhile makes the
		// stream look stale (one needless reopen), never the reverse.
		conn := c.transports.n.Load()
		stream, err := c.qs.Put(sctx)
		if err != nil {
			cancel()
			return nil, false, err
		}
		ps.stream, ps.cancel, ps.conn = stream, cancel, conn
	}
	stop := context.AfterFunc(ctx, ps.cancel)
	defer stop()
	fail := func(err error) error {
		ps.reset()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if err := ps.stream.Send(req); err != nil {
		// io.EOF: the stream had already ended, and req was not sent. A
		// broken stream tells why on Recv.
		if _, rerr := ps.stream.Recv(); rerr != nil && rerr != io.EOF {
			err = rerr
		}
		return nil, !reused, fail(err)
	}
	resp, err := ps.stream.Recv()
	if err != nil {
		return nil, true, fail(err)
	}
	ids = resp.GetIds()
	if len(ids) < n {
		// Only part of the batch went in; the master ends the stream with
		// the reason (queue full, closed, ...).
		_, err := ps.stream.Recv()
		if err == nil || err == io.EOF {
			err = status.Error(codes.Internal, "distq: the master accepted part of a put without saying why")
		}
		return ids, true, fail(err)
	}
	return ids, true, nil
}
