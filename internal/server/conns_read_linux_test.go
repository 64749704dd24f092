package server

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
)

// gRPC's transport reads without pinning a buffer through any net.Conn
// with this method (its internal readyreader.Reader).
var _ interface {
	ReadOnReady(bufSize int, pool mem.BufferPool) (*[]byte, int, error)
} = (*trackedConn)(nil)

// countingPool counts the buffers out of it.
type countingPool struct {
	out atomic.Int64
}

func (p *countingPool) Get(n int) *[]byte {
	p.out.Add(1)
	b := make([]byte, n)
	return &b
}

func (p *countingPool) Put(*[]byte) { p.out.Add(-1) }

// tcpPair is a loopback TCP connection: the accepted end tracked as the
// guard tracks it, and the dialled end.
func tcpPair(t *testing.T) (*trackedConn, net.Conn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	client, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	tc := &trackedConn{Conn: c, raw: rawOf(c)}
	if tc.raw == nil {
		t.Fatal("no raw socket under an accepted TCP connection")
	}
	return tc, client
}

func TestReadOnReadyReadsIntoAPoolBufferAndSaysEOF(t *testing.T) {
	tc, client := tcpPair(t)
	var pool countingPool
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b, n, err := tc.ReadOnReady(64, &pool)
	if err != nil || b == nil || string((*b)[:n]) != "hello" || len(*b) != 64 {
		t.Fatalf("ReadOnReady = %v, %d, %v; want \"hello\" in a 64-byte buffer", b, n, err)
	}
	pool.Put(b)
	client.Close()
	b, n, err = tc.ReadOnReady(64, &pool)
	if b != nil || n != 0 || err != io.EOF {
		t.Fatalf("after the peer closed: ReadOnReady = %v, %d, %v; want nil, 0, EOF", b, n, err)
	}
	if out := pool.out.Load(); out != 0 {
		t.Fatalf("%d buffers not returned to the pool", out)
	}
}

// Nothing to read: no buffer is taken from the pool, and the read
// deadline ends the wait as it ends a Read.
func TestReadOnReadyTakesNoBufferWhileNothingArrives(t *testing.T) {
	tc, _ := tcpPair(t)
	var pool countingPool
	if err := tc.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	b, n, err := tc.ReadOnReady(64, &pool)
	if b != nil || n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadOnReady = %v, %d, %v; want nil, 0, a deadline error", b, n, err)
	}
	if out := pool.out.Load(); out != 0 {
		t.Fatalf("%d buffers taken with nothing to read", out)
	}
}

// A connection that is not a socket (a pipe) is read the ordinary way.
func TestReadOnReadyOnAPipe(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	tc := &trackedConn{Conn: a, raw: rawOf(a)}
	go b.Write([]byte("hi"))
	var pool countingPool
	buf, n, err := tc.ReadOnReady(16, &pool)
	if err != nil || buf == nil || string((*buf)[:n]) != "hi" {
		t.Fatalf("ReadOnReady = %v, %d, %v; want \"hi\"", buf, n, err)
	}
	pool.Put(buf)
	b.Close()
	if buf, _, err := tc.ReadOnReady(16, &pool); buf != nil || err != io.EOF {
		t.Fatalf("after close: ReadOnReady = %v, %v; want nil, EOF", buf, err)
	}
	if out := pool.out.Load(); out != 0 {
		t.Fatalf("%d buffers not returned to the pool", out)
	}
}
