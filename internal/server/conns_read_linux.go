package server

import (
	"io"
	"net"
	"syscall"

	"google.golang.org/grpc/mem"
)

// ReadOnReady lets gRPC read a connection without pinning a read buffer
// while the connection is idle: it waits until the socket is readable and
// only then takes a buffer of bufSize from pool and reads into it. gRPC's
// transport looks for this method on the net.Conn it serves (the optional
// interface of its internal readyreader package) and does the same itself
// for a bare *net.TCPConn; a trackedConn wraps one, so without this method
// every connection held a 32 KiB buffer of its own for as long as it was
// open: a third of the master's memory per idle slave (the idle scenario of
// the benchmark). With it, idle connections hold none.
//
// The returned buffer comes from pool and goes back to it with the caller;
// on an error or the end of the stream no buffer is returned.
func (tc *trackedConn) ReadOnReady(bufSize int, pool mem.BufferPool) (*[]byte, int, error) {
	raw := tc.raw
	if raw == nil {
		// Not a socket gRPC could read raw (a pipe in tests): an
		// ordinary read, which holds the buffer while it blocks.
		b := pool.Get(bufSize)
		n, err := tc.Conn.Read(*b)
		if n == 0 {
			pool.Put(b)
			if err == nil {
				err = io.ErrNoProgress
			}
			return nil, 0, err
		}
		return b, n, err
	}
	var (
		b       *[]byte
		n       int
		readErr error
	)
	err := raw.Read(func(fd uintptr) bool {
		b = pool.Get(bufSize)
		n, readErr = syscall.Read(int(fd), *b)
		if readErr != nil {
			pool.Put(b)
			b = nil
			n = 0
		}
		return readErr != syscall.EAGAIN && readErr != syscall.EWOULDBLOCK
	})
	switch {
	case err != nil:
		if b != nil {
			pool.Put(b)
		}
		return nil, 0, err
	case readErr != nil:
		return nil, 0, readErr
	case n == 0:
		// read(2) says a closed stream with 0 and no error.
		pool.Put(b)
		return nil, 0, io.EOF
	}
	return b, n, nil
}

// rawOf is the socket under c for raw reads, or nil when it is not a TCP or
// Unix socket.
func rawOf(c net.Conn) syscall.RawConn {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}
