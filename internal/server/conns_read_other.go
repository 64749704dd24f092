//go:build !linux

package server

import (
	"net"
	"syscall"
)

// rawOf is nil here: trackedConn has no ReadOnReady (conns_read_linux.go)
// off Linux, where gRPC reads every connection through a buffer of its own.
func rawOf(net.Conn) syscall.RawConn { return nil }
