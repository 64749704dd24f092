package distq

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// While the master is away the connection tries to reach it again at
// least every second or so (its own backoff is bounded), not at gRPC's
// default intervals that grow to two minutes: a master back from a
// restart gets its clients back within about a second, whatever the
// backoff of their calls. A listener that closes every connection at once
// stands for the master's address while it is away, and counts the tries.
func TestClientRetriesALostMasterEverySecond(t *testing.T) {
	if testing.Short() {
		t.Skip("watches the connection's tries for 8 s")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var (
		mu    sync.Mutex
		tries []time.Time
	)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			tries = append(tries, time.Now())
			mu.Unlock()
			conn.Close()
		}
	}()
	c, err := NewClient(l.Addr().String(), Options{AuthKey: testKey, Logger: testLogger(t, "client")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	c.Queue("tasks").Put(ctx, []byte("x")) // starts the connection; fails
	cancel()
	time.Sleep(8 * time.Second) // gRPC's default would have waited 1, 1.6, 2.6 and 4.1 s
	mu.Lock()
	defer mu.Unlock()
	var longest time.Duration
	for i := 1; i < len(tries); i++ {
		longest = max(longest, tries[i].Sub(tries[i-1]))
	}
	t.Logf("%d tries in 8 s, at most %v apart", len(tries), longest)
	if len(tries) < 6 || longest > 2*time.Second {
		t.Fatalf("%d tries in 8 s, up to %v apart; want one every second or so", len(tries), longest)
	}
}
