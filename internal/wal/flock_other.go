//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package wal

import (
	"errors"
	"os"
)

func flock(*os.File) (bool, error) {
	return false, errors.New("durable queues need a unix system (flock)")
}
