package server

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/ratelog"
	pb "github.com/distq/distq/proto/distq/v1"
)

// connGuard wraps the master's listener. It counts the connections, caps
// them, and closes those that have not authenticated in time, so that
// peers without the key cannot hold the master's file descriptors and
// memory: before it, 400 connections that completed the HTTP/2 handshake,
// answered pings and never logged in were kept for ever, and 1,100 of them
// against a 1,024-descriptor limit locked every real client out.
//
// A connection is unauthenticated from its accept until a Login succeeds
// on it or a call on it presents valid session credentials
// (authInterceptors). Until then it waits in
// a FIFO, oldest first; all wait the same time, so that is also the order
// of their deadlines, and one loop closes the expired ones from the front.
// There is no timer per connection.
//
// When a new connection would go past either cap, the oldest
// unauthenticated connection is closed to make room, rather than the new
// one refused: a flood of keyless connections then cannot keep a real
// client out, as refusing would (the flood would only need to keep the
// slots full). A real client authenticates within a few round trips of
// connecting, far sooner than a flood can push it out. Only when every
// connection is authenticated and -max-conns is reached is a new one
// refused: closed at once, before any TLS or HTTP/2 work.
type connGuard struct {
	net.Listener
	maxConns    int
	maxUnauth   int
	authTimeout time.Duration
	refusals    *ratelog.Log

	mu       sync.Mutex
	byAddr   map[connAddr]*trackedConn
	head     *trackedConn // oldest unauthenticated connection
	tail     *trackedConn
	nunauth  int
	total    int
	closed   bool
	evicted  atomic.Uint64
	expired  atomic.Uint64
	refused  atomic.Uint64
	accepted atomic.Uint64

	wake chan struct{} // capacity 1: the FIFO went from empty to not
	stop chan struct{}
	done chan struct{}
}

// connAddr names a connection by its two ends, which is how gRPC's stats
// handler tells us which connection a call came on.
type connAddr struct{ local, remote string }

// trackedConn is an accepted connection.
type trackedConn struct {
	net.Conn
	g          *connGuard
	addr       connAddr
	acceptedAt time.Time
	authed     atomic.Bool
	closeOnce  sync.Once

	// Guarded by g.mu.
	prev, next *trackedConn // in the unauthenticated FIFO
	inFIFO     bool

	// Calls held open on this connection (limits.go); guarded by the
	// limiter's mutex.
	load load
}

func newConnGuard(lis net.Listener, maxConns, maxUnauth int, authTimeout time.Duration, refusals *ratelog.Log) *connGuard {
	g := &connGuard{
		Listener:    lis,
		maxConns:    maxConns,
		maxUnauth:   maxUnauth,
		authTimeout: authTimeout,
		refusals:    refusals,
		byAddr:      make(map[connAddr]*trackedConn),
		wake:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	go g.expireLoop()
	return g
}

// Accept returns the next connection within the caps. Connections refused
// at the caps are closed here and never reach gRPC.
func (g *connGuard) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := g.admit(c); tc != nil {
			return tc, nil
		}
	}
}

// admit registers c, making room by closing the oldest unauthenticated
// connection if a cap is reached; it returns nil if c was refused.
func (g *connGuard) admit(c net.Conn) *trackedConn {
	tc := &trackedConn{
		Conn:       c,
		g:          g,
		addr:       connAddr{c.LocalAddr().String(), c.RemoteAddr().String()},
		acceptedAt: time.Now(),
	}
	var evict *trackedConn
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		c.Close()
		return nil
	}
	if g.total >= g.maxConns || g.nunauth >= g.maxUnauth {
		if g.head == nil {
			g.mu.Unlock()
			g.refused.Add(1)
			g.refusals.Refused("connection refused", "-max-conns reached, every connection authenticated", tc.addr.remote)
			c.Close()
			return nil
		}
		evict = g.head
		g.unlinkLocked(evict)
	}
	g.total++
	if _, dup := g.byAddr[tc.addr]; !dup {
		// Two live connections with the same ends cannot happen over
		// TCP; over other transports the second one is not told apart
		// and is left alone (authenticated, no deadline).
		g.byAddr[tc.addr] = tc
		g.pushLocked(tc)
	} else {
		tc.authed.Store(true)
	}
	g.mu.Unlock()
	g.accepted.Add(1)
	if evict != nil {
		g.evicted.Add(1)
		g.refusals.Refused("connection closed", "made room at -max-unauth-conns/-max-conns: the oldest connection not yet authenticated", evict.addr.remote)
		evict.Close()
	}
	return tc
}

// pushLocked appends tc to the unauthenticated FIFO, waking the loop if
// the FIFO was empty.
func (g *connGuard) pushLocked(tc *trackedConn) {
	tc.prev, tc.next, tc.inFIFO = g.tail, nil, true
	if g.tail != nil {
		g.tail.next = tc
	} else {
		g.head = tc
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
	g.tail = tc
	g.nunauth++
}

func (g *connGuard) unlinkLocked(tc *trackedConn) {
	if !tc.inFIFO {
		return
	}
	if tc.prev != nil {
		tc.prev.next = tc.next
	} else {
		g.head = tc.next
	}
	if tc.next != nil {
		tc.next.prev = tc.prev
	} else {
		g.tail = tc.prev
	}
	tc.prev, tc.next, tc.inFIFO = nil, nil, false
	g.nunauth--
}

// expireLoop closes connections still unauthenticated authTimeout after
// their accept. It is the guard's one goroutine.
func (g *connGuard) expireLoop() {
	defer close(g.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var tick <-chan time.Time
		if next := g.expireDue(time.Now()); next >= 0 {
			timer.Reset(next)
			tick = timer.C
		}
		select {
		case <-g.stop:
			timer.Stop()
			return
		case <-g.wake:
			timer.Stop()
		case <-tick:
		}
	}
}

// expireDue closes the connections whose time to authenticate is over at
// now, and returns how long until the next one's is (-1: none waits).
func (g *connGuard) expireDue(now time.Time) time.Duration {
	g.mu.Lock()
	var expired []*trackedConn
	for g.head != nil && !now.Before(g.head.acceptedAt.Add(g.authTimeout)) {
		tc := g.head
		g.unlinkLocked(tc)
		expired = append(expired, tc)
	}
	next := time.Duration(-1)
	if g.head != nil {
		next = g.head.acceptedAt.Add(g.authTimeout).Sub(now)
	}
	g.mu.Unlock()
	for _, tc := range expired {
		g.expired.Add(1)
		g.refusals.Refused("connection closed", "not authenticated within -auth-timeout", tc.addr.remote, "timeout", g.authTimeout)
		tc.Close()
	}
	return next
}

// Close closes the listener and stops the loop; open connections are
// gRPC's to close. Safe to call twice.
func (g *connGuard) Close() error {
	g.mu.Lock()
	first := !g.closed
	g.closed = true
	g.mu.Unlock()
	err := g.Listener.Close()
	if first {
		close(g.stop)
		<-g.done
	}
	return err
}

// counts reports the connections open now and unauthenticated among them.
func (g *connGuard) counts() (total, unauth int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total, g.nunauth
}

// Close closes the connection once and forgets it.
func (tc *trackedConn) Close() error {
	err := net.ErrClosed
	tc.closeOnce.Do(func() {
		g := tc.g
		g.mu.Lock()
		g.unlinkLocked(tc)
		if g.byAddr[tc.addr] == tc {
			delete(g.byAddr, tc.addr)
		}
		g.total--
		g.mu.Unlock()
		err = tc.Conn.Close()
	})
	return err
}

// markAuthenticated takes tc off the deadline FIFO for good.
func (tc *trackedConn) markAuthenticated() {
	if tc.authed.Swap(true) {
		return
	}
	tc.g.mu.Lock()
	tc.g.unlinkLocked(tc)
	tc.g.mu.Unlock()
}

// connCtxKey keys a call's *trackedConn in its context.
type connCtxKey struct{}

// connFromContext returns the connection a call came on, if the guard
// tracks it.
func connFromContext(ctx context.Context) *trackedConn {
	tc, _ := ctx.Value(connCtxKey{}).(*trackedConn)
	return tc
}

// authInterceptors mark a connection authenticated when a call on it
// proves the key: a successful Login, or any call whose session
// credentials the auth service's tap verified. They run after the auth
// service's own.
func authInterceptors() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if _, ok := auth.SessionFromContext(ctx); ok {
				markAuthenticated(ctx)
			}
			resp, err := handler(ctx, req)
			if err == nil && info.FullMethod == pb.AuthService_Login_FullMethodName {
				markAuthenticated(ctx)
			}
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			if _, ok := auth.SessionFromContext(ss.Context()); ok {
				markAuthenticated(ss.Context())
			}
			return handler(srv, ss)
		}),
	}
}

func markAuthenticated(ctx context.Context) {
	if tc := connFromContext(ctx); tc != nil && !tc.authed.Load() {
		tc.markAuthenticated()
	}
}

// TagConn implements stats.Handler: it puts the tracked connection into
// the context gRPC derives every call on that connection from.
func (g *connGuard) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	if info.LocalAddr == nil || info.RemoteAddr == nil {
		return ctx
	}
	g.mu.Lock()
	tc := g.byAddr[connAddr{info.LocalAddr.String(), info.RemoteAddr.String()}]
	g.mu.Unlock()
	if tc == nil {
		return ctx
	}
	return context.WithValue(ctx, connCtxKey{}, tc)
}

// HandleConn, TagRPC and HandleRPC complete stats.Handler; they do nothing.
func (g *connGuard) HandleConn(context.Context, stats.ConnStats) {}

// TagRPC implements stats.Handler.
func (g *connGuard) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC implements stats.Handler.
func (g *connGuard) HandleRPC(context.Context, stats.RPCStats) {}

var (
	_ net.Listener  = (*connGuard)(nil)
	_ stats.Handler = (*connGuard)(nil)
)
