package integration

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/distq/distq"
	pb "github.com/distq/distq/proto/distq/v1"
)

func dial(t *testing.T, addr, key string) *distq.Client {
	t.Helper()
	c, err := distq.Dial(ctxTimeout(t, 30*time.Second), addr, distq.Options{AuthKey: []byte(key)})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// stillServes proves the master survived: a put and a get round trip.
func stillServes(t *testing.T, c *distq.Client) {
	t.Helper()
	ctx := ctxTimeout(t, 30*time.Second)
	q := c.Queue("results")
	if _, err := q.Put(ctx, []byte("alive")); err != nil {
		t.Fatalf("master no longer serves: put: %v", err)
	}
	task, err := q.GetTimeout(ctx, 10*time.Second)
	if err != nil || string(task.Payload) != "alive" {
		t.Fatalf("master no longer serves: get: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	key := writeKey(t, testKey)
	m, addr := startMaster(t, key, "-max-message-size", "65536")
	c := dial(t, addr, testKey)

	t.Run("garbage bytes on the port", func(t *testing.T) {
		for _, junk := range [][]byte{
			[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
			bytes.Repeat([]byte{0xff, 0x00, 0x13}, 10000),
			[]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x08\x00\x00\x00\x00\x00garbage"),
		} {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conn.Write(junk)
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 4096)
			for {
				if _, err := conn.Read(buf); err != nil {
					break // the master closed the connection
				}
			}
			conn.Close()
		}
		stillServes(t, c)
	})

	t.Run("missing key", func(t *testing.T) {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = pb.NewQueueServiceClient(conn).Stats(ctxTimeout(t, 10*time.Second), &pb.StatsRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("call without a session: %v; want Unauthenticated", err)
		}
		stream, err := pb.NewQueueServiceClient(conn).Consume(ctxTimeout(t, 10*time.Second))
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("stream without a session: %v; want Unauthenticated", err)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		_, err := distq.Dial(ctxTimeout(t, 10*time.Second), addr, distq.Options{AuthKey: []byte("wrong-key-wrong-key")})
		if !distq.IsPermanent(err) || !strings.Contains(err.Error(), "authkey") {
			t.Fatalf("dial with a wrong key: %v; want a permanent authkey error", err)
		}
	})

	t.Run("oversized message", func(t *testing.T) {
		_, err := c.Queue("tasks").Put(ctxTimeout(t, 10*time.Second), bytes.Repeat([]byte("x"), 100000))
		var e *distq.Error
		if !errors.As(err, &e) || e.Code != codes.ResourceExhausted || errors.Is(err, distq.ErrFull) {
			t.Fatalf("oversized put: %v; want a size error", err)
		}
		if st, err := c.Queue("tasks").Stats(ctxTimeout(t, 10*time.Second)); err != nil || st.Ready != 0 {
			t.Fatalf("after the oversized put: stats %+v, %v; want nothing queued", st, err)
		}
		stillServes(t, c)
	})

	t.Run("unknown queue", func(t *testing.T) {
		_, err := c.Queue("no-such-queue").Put(ctxTimeout(t, 10*time.Second), []byte("1"))
		if !errors.Is(err, distq.ErrUnknownQueue) {
			t.Fatalf("put to an unknown queue: %v; want ErrUnknownQueue", err)
		}
	})

	t.Run("undecodable payload goes to the dead-letter queue", func(t *testing.T) {
		ctx := ctxTimeout(t, time.Minute)
		if _, err := c.Queue("tasks").Put(ctx, []byte("not a number")); err != nil {
			t.Fatal(err)
		}
		s := startSlave(t, "slave", addr, key, "-concurrency", "1")
		s.waitLine("task failed", 30*time.Second)
		dead := waitDead(t, c, "tasks", 1)
		if string(dead[0].Payload) != "not a number" || !strings.Contains(dead[0].Error, "not a decimal integer") {
			t.Fatalf("dead item %+v: want the payload and the decode error", dead[0])
		}
		// It can be requeued; it dies again, and nothing else was lost.
		if n, err := c.Queue("tasks").Requeue(ctx); err != nil || n != 1 {
			t.Fatalf("requeue: %d, %v", n, err)
		}
		waitDead(t, c, "tasks", 1)
		s.signal(syscall.SIGTERM)
		if code := s.wait(time.Minute); code != 0 {
			t.Fatalf("slave exited %d after SIGTERM", code)
		}
	})

	// The master is still up after all of the above.
	stillServes(t, c)
	m.signal(syscall.SIGTERM)
	if code := m.wait(time.Minute); code != 0 {
		t.Fatalf("master exited %d after SIGTERM; want 0", code)
	}
}

// waitDead polls the dead-letter queue until it holds n items (no event is
// sent for a dead-lettering, so this bounded poll is the observation).
func waitDead(t *testing.T, c *distq.Client, queue string, n int) []distq.DeadItem {
	t.Helper()
	ctx := ctxTimeout(t, 30*time.Second)
	for {
		dead, err := c.Queue(queue).Dead(ctx, 0, 100)
		if err != nil {
			t.Fatalf("list dead items: %v", err)
		}
		if len(dead) == n {
			return dead
		}
		select {
		case <-ctx.Done():
			t.Fatalf("dead-letter queue holds %d items; want %d", len(dead), n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestBadFlags(t *testing.T) {
	key := writeKey(t, testKey)
	cases := []struct {
		bin  string
		args []string
		want string
	}{
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-lease", "banana"}, "invalid value"},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-queue", "x.dead"}, "reserved"},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-queue", "tasks:-3"}, "maxsize"},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-retry-min", "0s"}, "-retry-min 0s"},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-retry-min", "2s", "-retry-max", "1s"}, "-retry-max 1s"},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-retry-max", "48h"}, "-retry-max 48h"},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-queue", "tasks,retry-min=soon"}, `retry-min "soon" is not a positive duration`},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-queue", "tasks:5,backoff=1s"}, `unknown option "backoff=1s"`},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-queue", "tasks,retry-min=2s,retry-max=1s"}, "retry max 1s is below retry min 2s"},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-queue", "tasks,retry-max=25h"}, "above 24h"},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-log-level", "loud"}, "-log-level"},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", "/nonexistent/key"}, "authkey"},
		{"master", []string{"-listen", "127.0.0.1:0", "stray"}, "unexpected argument"},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-demo", "10", "-demo-slaves", "-1"}, "-demo-slaves"},
		{"master", []string{"-listen", "127.0.0.1:0", "-authkey-file", key, "-demo-slaves", "2"}, "with -demo"},
		{"slave", []string{"-concurrency", "0", "-authkey-file", key}, "-concurrency"},
		{"slave", []string{"-authkey-file", key, "-tls-cert", "x.pem"}, "-tls-ca"},
	}
	for _, tc := range cases {
		p := start(t, tc.bin, tc.bin, tc.args...)
		code := p.wait(30 * time.Second)
		if code == 0 || !strings.Contains(p.output(), tc.want) {
			t.Errorf("%s %v: exit %d, output %q; want non-zero and %q", tc.bin, tc.args, code, p.output(), tc.want)
		}
	}
	// Without any key: a clear error, not a hang.
	p := start(t, "master", "master", "-listen", "127.0.0.1:0")
	if code := p.wait(30 * time.Second); code == 0 || !strings.Contains(p.output(), "authkey") {
		t.Errorf("master without a key: exit %d, output %q", code, p.output())
	}
}
