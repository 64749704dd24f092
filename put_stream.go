package distq

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

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
	seq    uint64 // the last PutRequest.sequence given on this queue
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
// is torn down. put numbers req with the queue's next sequence under ps.mu,
// so sequences increase in the order puts are sent, and holds ps.mu while
// it sends req again (resend), so that no later put of the queue overtakes
// it.
func (ps *putStream) put(ctx context.Context, c *Client, req *pb.PutRequest, n int) ([]uint64, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ps.seq++
	req.Sequence = ps.seq
	var (
		ids  []uint64
		sent bool
	)
	// c.call sends req again by itself only when the master refused it
	// before running it (an unknown session): it cannot be stored twice.
	err := c.call(ctx, func(ctx context.Context) (err error) {
		ids, sent, err = ps.send(ctx, c, req, n)
		return err
	})
	if err != nil && sent && lostAnswer(ctx, err) && c.mayResend() {
		return ps.resend(ctx, c, req, n, ids, err)
	}
	return ids, err
}

// send is one attempt of put: on the kept stream, and on a fresh one if
// the kept stream had died before req was sent. sent reports whether req
// may have reached the master.
func (ps *putStream) send(ctx context.Context, c *Client, req *pb.PutRequest, n int) (ids []uint64, sent bool, err error) {
	ids, sent, err = ps.try(ctx, c, req, n)
	if err != nil && !sent && ctx.Err() == nil {
		// The kept stream had died before this put (the master went away
		// meanwhile): nothing was sent, so a fresh stream may carry it.
		ids, sent, err = ps.try(ctx, c, req, n)
	}
	return ids, sent, err
}

// Backoff between the sends of a put whose answer was lost.
const (
	putRetryMin = 50 * time.Millisecond
	putRetryMax = 2 * time.Second
)

// resend sends req again, the same request, after its answer was lost
// (err): on a new stream, after a backoff, until an answer arrives, ctx
// ends, the Client closes, or the master no longer says it deduplicates.
// A master that deduplicates answers a put it had stored with the ids it
// first assigned (PutResponse.duplicate), and completes one it had stored
// in part. ids are those accepted by the answers that did arrive.
func (ps *putStream) resend(ctx context.Context, c *Client, req *pb.PutRequest, n int, ids []uint64, err error) ([]uint64, error) {
	wait := putRetryMin
	for attempt := 1; ; attempt++ {
		c.log.Debug("a put's answer was lost; sending it again", "queue", req.GetQueue(), "sequence", req.GetSequence(), "attempt", attempt, "error", err)
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ids, ctx.Err()
		case <-c.closing:
			t.Stop()
			return ids, err
		}
		wait = min(2*wait, putRetryMax)
		var got []uint64
		err = c.call(ctx, func(ctx context.Context) (err error) {
			got, _, err = ps.send(ctx, c, req, n)
			return err
		})
		if err == nil || len(got) > len(ids) {
			ids = got
		}
		if err == nil || !lostAnswer(ctx, err) || !c.mayResend() {
			return ids, err
		}
	}
}

// mayResend reports whether a put that may have reached the master may be
// sent again: the master said in its latest answer that it deduplicates
// puts, and the Client was not told otherwise.
func (c *Client) mayResend() bool { return !c.noPutRetry && c.dedup.Load() }

// lostAnswer reports whether err (from Client.call) leaves a put's fate
// unknown: no definite answer came from the master, and ctx has not ended.
// Definite answers are those of the master's handler (queue full or
// closed, an invalid put, an unknown queue, a forgotten sequence, too many
// streams) and a refused key; ABORTED (the same put still waiting for room
// on a stream the master has not yet seen end) asks for a retry.
func lostAnswer(ctx context.Context, err error) bool {
	if ctx.Err() != nil || IsPermanent(err) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.Code {
		case codes.Unavailable, codes.Aborted, codes.Internal, codes.Unknown, codes.DataLoss:
			return true
		}
		return false
	}
	// Context errors with ctx alive (the master's or the transport's
	// DEADLINE_EXCEEDED or CANCELLED), a session refused again and again
	// (refused before running, so harmless to send), or no status at all:
	// the answer did not arrive.
	return true
}

// try is one attempt of put; sent reports whether req may have reached the
// master, in which case it must not be sent again unless the master
// deduplicates puts (resend).
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
	if dedup := resp.GetDedup(); c.dedup.Load() != dedup {
		c.dedup.Store(dedup)
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
