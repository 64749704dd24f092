package server

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

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
// on it or a call on it presents valid session credentials (tap,
// markLogin); until then it may have only a few calls open (the handshake,
// health, reflection: maxPreAuthCalls). Until then it also waits in
// a FIFO, oldest first; all wait the same time, so that is also the order
// of their deadlines, and one loop closes the expired ones from the front.
// There is no timer per connection.
//
// When a new connection would go past either cap, an unauthenticated one
// is closed to make room, rather than the new one refused: refusing would
// let a flood of keyless connections keep every real client out by just
// keeping the places full. The one closed is the oldest of the host that
// holds the most places (victimLocked), so a flood from one host pushes
// out only its own connections. Only when every connection is
// authenticated and -max-conns is reached is a new one refused: closed at
// once, before any TLS or HTTP/2 work.
type connGuard struct {
	net.Listener
	maxConns    int
	maxUnauth   int
	authTimeout time.Duration
	refusals    *ratelog.Log

	mu       sync.Mutex
	byAddr   map[connAddr]*trackedConn
	hosts    map[string]*hostConns // unauthenticated connections by host
	head     *trackedConn          // oldest unauthenticated connection
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
	raw        syscall.RawConn // the socket under Conn, for ReadOnReady; nil if none
	g          *connGuard
	addr       connAddr
	acceptedAt time.Time
	authed     atomic.Bool
	preAuth    atomic.Int32 // calls open before it authenticated
	closeOnce  sync.Once

	// Guarded by g.mu.
	host         string       // the remote end's host, without the port
	prev, next   *trackedConn // in the unauthenticated FIFO
	hprev, hnext *trackedConn // in its host's list of them
	inFIFO       bool         // in both while unauthenticated

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
		hosts:       make(map[string]*hostConns),
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
		raw:        rawOf(c),
		g:          g,
		addr:       connAddr{c.LocalAddr().String(), c.RemoteAddr().String()},
		acceptedAt: time.Now(),
	}
	tc.host = tc.addr.remote
	if h, _, err := net.SplitHostPort(tc.host); err == nil {
		tc.host = h
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
			g.refusals.Note("connection refused", "-max-conns reached, every connection authenticated", tc.addr.remote)
			c.Close()
			return nil
		}
		evict = g.victimLocked()
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
		g.refusals.Note("connection closed", "made room at -max-unauth-conns/-max-conns: the oldest not yet authenticated of the host with the most", evict.addr.remote)
		evict.Close()
	}
	return tc
}

// victimLocked picks the connection to close to make room: the oldest
// unauthenticated connection of the host that has the most of them. A
// flood from one host, however fast, then only pushes out its own
// connections, and a client on another host, even one slow to log in (a
// long round trip, a TLS handshake), keeps its place. Only a flood from
// as many hosts as there are places could push it out. The scan is over
// the hosts holding unauthenticated connections, at most -max-unauth-conns.
func (g *connGuard) victimLocked() *trackedConn {
	var most *hostConns
	for _, h := range g.hosts {
		if most == nil || h.n > most.n || (h.n == most.n && h.head.acceptedAt.Before(most.head.acceptedAt)) {
			most = h
		}
	}
	return most.head
}

// hostConns lists one host's unauthenticated connections, oldest first.
type hostConns struct {
	head, tail *trackedConn
	n          int
}

// pushLocked appends tc to the unauthenticated FIFO and to its host's
// list, waking the loop if the FIFO was empty.
func (g *connGuard) pushLocked(tc *trackedConn) {
	h := g.hosts[tc.host]
	if h == nil {
		h = &hostConns{}
		g.hosts[tc.host] = h
	}
	tc.hprev, tc.hnext = h.tail, nil
	if h.tail != nil {
		h.tail.hnext = tc
	} else {
		h.head = tc
	}
	h.tail = tc
	h.n++
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
	h := g.hosts[tc.host]
	if tc.hprev != nil {
		tc.hprev.hnext = tc.hnext
	} else {
		h.head = tc.hnext
	}
	if tc.hnext != nil {
		tc.hnext.hprev = tc.hprev
	} else {
		h.tail = tc.hprev
	}
	tc.hprev, tc.hnext = nil, nil
	if h.n--; h.n == 0 {
		delete(g.hosts, tc.host)
	}
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
		g.refusals.Note("connection closed", "not authenticated within -auth-timeout", tc.addr.remote, "timeout", g.authTimeout)
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

// ConnStats are the connection guard's gauges and counters.
type ConnStats struct {
	Open, Unauthenticated int    // now
	Accepted              uint64 // let through since the start
	Refused               uint64 // closed at accept: -max-conns, all authenticated
	Evicted               uint64 // closed to make room for a new one
	Expired               uint64 // closed at -auth-timeout
}

func (g *connGuard) stats() ConnStats {
	total, unauth := g.counts()
	return ConnStats{
		Open: total, Unauthenticated: unauth,
		Accepted: g.accepted.Load(), Refused: g.refused.Load(),
		Evicted: g.evicted.Load(), Expired: g.expired.Load(),
	}
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

// maxPreAuthCalls bounds the calls a connection may have open before it
// authenticates. Calls without a session are refused at the tap, but the
// exempt ones (the handshake, health, reflection) pass it: a keyless peer
// once held 12,000 Health.Watch streams on two connections, 165 MiB. A
// client needs one or two at a time.
const maxPreAuthCalls = 16

// tap wraps the auth service's tap: a call whose session credentials
// verify marks its connection authenticated, and an exempt call on a
// connection not yet authenticated is counted against maxPreAuthCalls.
func (g *connGuard) tap(verify tap.ServerInHandle) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		ctx, err := verify(ctx, info)
		if err != nil {
			return nil, err
		}
		tc := connFromContext(ctx)
		if tc == nil || tc.authed.Load() {
			return ctx, nil
		}
		if _, ok := auth.SessionFromContext(ctx); ok {
			tc.markAuthenticated()
			return ctx, nil
		}
		if tc.preAuth.Add(1) > maxPreAuthCalls {
			tc.preAuth.Add(-1)
			g.refusals.Note("call refused", "too many calls before authentication", tc.addr.remote)
			return nil, errTooManyPreAuth
		}
		// The stream's context ends with the stream, however it ends.
		context.AfterFunc(ctx, func() { tc.preAuth.Add(-1) })
		return ctx, nil
	}
}

var errTooManyPreAuth = status.Errorf(codes.ResourceExhausted, "distq: too many calls open on a connection that has not authenticated (limit %d)", maxPreAuthCalls)

// markLogin marks a connection authenticated once a Login on it succeeds
// (the other calls that prove the key do so at the tap).
func markLogin(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err == nil && info.FullMethod == pb.AuthService_Login_FullMethodName {
		if tc := connFromContext(ctx); tc != nil {
			tc.markAuthenticated()
		}
	}
	return resp, err
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
