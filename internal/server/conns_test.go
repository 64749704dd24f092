package server

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/distq/distq/internal/ratelog"
	"github.com/distq/distq/internal/testlog"
)

// guardFixture is a connGuard on a loopback listener with an hour's auth
// timeout, so that only expireDue, called by the test, expires anything.
type guardFixture struct {
	t *testing.T
	g *connGuard
}

func newGuardFixture(t *testing.T, maxConns, maxUnauth int) *guardFixture {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := newConnGuard(lis, maxConns, maxUnauth, time.Hour, ratelog.New(testlog.New(t, "guard"), ratelog.Config{}))
	t.Cleanup(func() { g.Close() })
	return &guardFixture{t: t, g: g}
}

// connect dials the guard and returns the client's end and, if the guard
// let the connection through, the server's end (else nil).
func (f *guardFixture) connect() (client net.Conn, server *trackedConn) {
	f.t.Helper()
	return f.connectFrom("127.0.0.1")
}

// connectFrom is connect from another loopback address, another host.
func (f *guardFixture) connectFrom(ip string) (client net.Conn, server *trackedConn) {
	f.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", f.g.Addr().String())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	raw, err := f.g.Listener.Accept()
	if err != nil {
		f.t.Fatal(err)
	}
	tc := f.g.admit(raw)
	if tc != nil {
		f.t.Cleanup(func() { tc.Close() })
	}
	return c, tc
}

// closedByServer reports whether the server closed c: a read ends with EOF
// (or a reset) rather than timing out. The deadline bounds a hang only.
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// stillOpen reports that the server has not closed c: it writes through to
// the server's end, which reads it.
func stillOpen(t *testing.T, client net.Conn, server *trackedConn) bool {
	t.Helper()
	if _, err := client.Write([]byte{1}); err != nil {
		return false
	}
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := server.Read(make([]byte, 1))
	return err == nil
}

func TestGuardMakesRoomByClosingOldestUnauthenticated(t *testing.T) {
	f := newGuardFixture(t, 100, 2)
	c1, _ := f.connect()
	c2, s2 := f.connect()
	c3, s3 := f.connect() // past -max-unauth-conns: c1, the oldest, goes
	if s3 == nil {
		t.Fatal("the new connection was refused; want the oldest unauthenticated one closed instead")
	}
	if !closedByServer(t, c1) {
		t.Fatal("the oldest unauthenticated connection is still open")
	}
	if !stillOpen(t, c2, s2) || !stillOpen(t, c3, s3) {
		t.Fatal("a newer connection was closed")
	}
	if total, unauth := f.g.counts(); total != 2 || unauth != 2 {
		t.Fatalf("counts %d open, %d unauthenticated; want 2, 2", total, unauth)
	}
	// An authenticated connection is never the one to go.
	s2.markAuthenticated()
	c4, s4 := f.connect() // c3 and c4 unauthenticated: at the cap
	c5, s5 := f.connect() // c3 goes, not c2
	if !stillOpen(t, c2, s2) {
		t.Fatal("the authenticated connection was closed to make room")
	}
	if !closedByServer(t, c3) || !stillOpen(t, c4, s4) || !stillOpen(t, c5, s5) {
		t.Fatal("want c3, the oldest unauthenticated, closed and c4, c5 kept")
	}
}

// A flood from one host pushes out only its own connections: a client of
// another host keeps its place, however old.
func TestGuardMakesRoomFromTheHostWithTheMost(t *testing.T) {
	f := newGuardFixture(t, 100, 3)
	real, sReal := f.connectFrom("127.0.0.1")
	var flood []net.Conn
	for range 2 {
		c, _ := f.connectFrom("127.0.0.2")
		flood = append(flood, c)
	}
	for i := range 20 { // the flood goes on: each new one pushes out its own oldest
		c, s := f.connectFrom("127.0.0.2")
		if s == nil {
			t.Fatal("a new connection was refused")
		}
		if !closedByServer(t, flood[i]) {
			t.Fatalf("flood connection %d, the oldest of its host, is still open", i)
		}
		flood = append(flood, c)
	}
	if !stillOpen(t, real, sReal) {
		t.Fatal("the other host's connection was pushed out by the flood")
	}
	// Between hosts of equal standing the oldest goes.
	c3, _ := f.connectFrom("127.0.0.3")
	if !closedByServer(t, flood[20]) || !stillOpen(t, real, sReal) {
		t.Fatal("want the flood host's oldest closed")
	}
	_ = c3
	if total, unauth := f.g.counts(); total != 3 || unauth != 3 || len(f.g.hosts) != 3 {
		t.Fatalf("counts %d open, %d unauthenticated, %d hosts; want 3, 3, 3", total, unauth, len(f.g.hosts))
	}
}

func TestGuardRefusesPastMaxConnsWhenAllAuthenticated(t *testing.T) {
	f := newGuardFixture(t, 2, 2)
	c1, s1 := f.connect()
	c2, s2 := f.connect()
	s1.markAuthenticated()
	s2.markAuthenticated()
	c3, s3 := f.connect()
	if s3 != nil {
		t.Fatal("a connection past -max-conns was let through")
	}
	if !closedByServer(t, c3) {
		t.Fatal("the refused connection is still open")
	}
	if !stillOpen(t, c1, s1) || !stillOpen(t, c2, s2) {
		t.Fatal("an authenticated connection was closed")
	}
	// When one leaves, a new one gets its place.
	s1.Close()
	if _, s4 := f.connect(); s4 == nil {
		t.Fatal("a connection was refused after one left")
	}
	if total, _ := f.g.counts(); total != 2 {
		t.Fatalf("%d open; want 2", total)
	}
	if st := f.g.stats(); st.Refused != 1 || st.Accepted != 3 {
		t.Fatalf("stats %+v; want 3 accepted, 1 refused", st)
	}
}

func TestGuardClosesUnauthenticatedAfterTimeout(t *testing.T) {
	f := newGuardFixture(t, 100, 100)
	c1, s1 := f.connect()
	c2, s2 := f.connect()
	s2.markAuthenticated()
	if next := f.g.expireDue(time.Now()); next <= 0 || next > time.Hour {
		t.Fatalf("next expiry in %v; want within the hour's timeout", next)
	}
	if !stillOpen(t, c1, s1) {
		t.Fatal("closed before its timeout")
	}
	if next := f.g.expireDue(time.Now().Add(time.Hour)); next != -1 {
		t.Fatalf("next expiry in %v after all expired; want none (-1)", next)
	}
	if !closedByServer(t, c1) {
		t.Fatal("the unauthenticated connection outlived its timeout")
	}
	if !stillOpen(t, c2, s2) {
		t.Fatal("the authenticated connection was closed")
	}
	if total, unauth := f.g.counts(); total != 1 || unauth != 0 {
		t.Fatalf("counts %d open, %d unauthenticated; want 1, 0", total, unauth)
	}
	if st := f.g.stats(); st.Expired != 1 || st.Accepted != 2 || st.Evicted != 0 || st.Refused != 0 {
		t.Fatalf("stats %+v; want 2 accepted, 1 expired", st)
	}
}

func TestGuardLoopExpiresOnItsOwn(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := newConnGuard(lis, 10, 10, 10*time.Millisecond, ratelog.New(nil, ratelog.Config{}))
	defer g.Close()
	go func() {
		for {
			if _, err := g.Accept(); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("read: %v; want the guard to close the connection", err)
	}
	if err := g.Close(); err != nil && err != net.ErrClosed {
		t.Logf("second Close: %v", err)
	}
}

func TestLimiterPerSessionAndConnection(t *testing.T) {
	l := newLimiter(2, 1, ratelog.New(nil, ratelog.Config{}))
	conn1, conn2 := &trackedConn{}, &trackedConn{}
	take := func(sid string, tc *trackedConn, k callKind) func() {
		t.Helper()
		r, err := l.take(sid, tc, k)
		if err != nil {
			t.Fatalf("take(%s, %v): %v", sid, k, err)
		}
		return r
	}
	refused := func(sid string, tc *trackedConn, k callKind, want string) {
		t.Helper()
		_, err := l.take(sid, tc, k)
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), want) {
			t.Fatalf("take(%s, %v) past the limit: %v; want RESOURCE_EXHAUSTED naming the %s", sid, k, err, want)
		}
	}
	// Per session, across connections.
	a1 := take("a", conn1, kindStream)
	take("a", conn2, kindStream)
	refused("a", nil, kindStream, "session")
	// Per connection, across sessions.
	take("b", conn1, kindStream)
	refused("c", conn1, kindStream, "connection")
	// Kinds count apart.
	w := take("c", conn2, kindWait)
	refused("c", conn2, kindWait, "session")
	// Releasing gives back, once.
	a1()
	a1()
	take("c", conn1, kindStream)
	refused("d", conn1, kindStream, "connection")
	w()
	if conn2.load[kindWait] != 0 || l.sessions["c"][kindWait] != 0 {
		t.Fatal("a released wait is still counted")
	}
	if len(l.sessions) != 3 {
		t.Fatalf("%d sessions tracked; want a, b and c, which hold streams", len(l.sessions))
	}
}
