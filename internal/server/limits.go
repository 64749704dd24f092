package server

import (
	"context"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/ratelog"
	pb "github.com/distq/distq/proto/distq/v1"
)

// What a peer may hold open at once. An open stream costs the master two
// goroutines and gRPC's buffers, a waiting call one goroutine; without
// bounds, one authenticated client opened 19,775 credit-less Consume
// streams and 14,501 waiting Joins, 728 MiB, and the memory stayed taken
// after they ended. Each kind is bounded per connection and per session,
// so neither many sessions on one connection nor one session on many
// connections gets around it.

// callKind is what a limit counts.
type callKind int

const (
	// kindStream is an open Consume, Put or GetStream stream.
	kindStream callKind = iota
	// kindWait is a call blocked waiting: a Get for items, a Join for the
	// queue to finish, a Put batch for room in a full queue.
	kindWait
)

// load is what one connection or session holds open.
type load [2]int // by callKind

func (l *load) zero() bool { return l[kindStream] == 0 && l[kindWait] == 0 }

// limiter counts open streams and waiting calls per connection and per
// session. Quick calls are not counted: gRPC's own per-connection stream
// limit (MaxConcurrentStreams) makes a client queue those.
type limiter struct {
	max      [2]int // by callKind
	refusals *ratelog.Log

	mu       sync.Mutex
	sessions map[string]*load // only sessions holding something open
}

func newLimiter(maxStreams, maxWaits int, refusals *ratelog.Log) *limiter {
	return &limiter{max: [2]int{maxStreams, maxWaits}, refusals: refusals, sessions: make(map[string]*load)}
}

var kindNames = [2]struct{ what, flag string }{
	kindStream: {"open streams", "-max-streams"},
	kindWait:   {"waiting calls", "-max-waits"},
}

// acquire takes one call of kind k for the call in ctx, on its connection
// and its session, and returns the function that gives it back; or it
// refuses with RESOURCE_EXHAUSTED when either already holds its limit.
func (l *limiter) acquire(ctx context.Context, k callKind) (release func(), err error) {
	sid, _ := auth.SessionFromContext(ctx)
	release, err = l.take(sid, connFromContext(ctx), k)
	if err != nil {
		name := kindNames[k]
		l.refusals.Note("call refused", "too many "+name.what, peerAddr(ctx), "limit", name.flag)
	}
	return release, err
}

// take is acquire for session sid on connection tc (nil: not tracked).
func (l *limiter) take(sid string, tc *trackedConn, k callKind) (release func(), err error) {
	l.mu.Lock()
	sl, held := l.sessions[sid]
	if !held {
		sl = new(load)
	}
	var over string
	switch {
	case sl[k] >= l.max[k]:
		over = "session"
	case tc != nil && tc.load[k] >= l.max[k]:
		over = "connection"
	}
	if over != "" {
		l.mu.Unlock()
		name := kindNames[k]
		return nil, status.Errorf(codes.ResourceExhausted, "distq: too many %s on this %s (limit %d, the master's %s)", name.what, over, l.max[k], name.flag)
	}
	if !held {
		l.sessions[sid] = sl
	}
	sl[k]++
	if tc != nil {
		tc.load[k]++
	}
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			sl[k]--
			if sl.zero() {
				delete(l.sessions, sid)
			}
			if tc != nil {
				tc.load[k]--
			}
			l.mu.Unlock()
		})
	}, nil
}

// streamInterceptor bounds the open Consume, Put and GetStream streams. It runs after
// the auth service's interceptors, so the session is known.
func (l *limiter) streamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !strings.HasPrefix(info.FullMethod, "/"+pb.QueueService_ServiceDesc.ServiceName+"/") {
			return handler(srv, ss)
		}
		release, err := l.acquire(ss.Context(), kindStream)
		if err != nil {
			return err
		}
		defer release()
		return handler(srv, ss)
	}
}
