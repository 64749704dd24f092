package integration

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/distq/distq"
	"github.com/distq/distq/internal/auth"
	pb "github.com/distq/distq/proto/distq/v1"
)

// rawConn is a gRPC connection to addr whose calls carry the session
// credentials of a fresh handshake with key, for tests that speak the wire
// protocol themselves.
func rawConn(t *testing.T, addr, key string) (*grpc.ClientConn, *auth.Client) {
	t.Helper()
	ac, err := auth.NewClient([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(ac))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := ac.Handshake(ctxTimeout(t, 30*time.Second), conn); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return conn, ac
}

// keylessConn is a connection that completes the HTTP/2 handshake and
// answers pings (one health check proves it), but never logs in. With from
// set it comes from that loopback address: another host.
func keylessConn(ctx context.Context, addr string, from ...string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if len(from) > 0 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from[0])}}
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", a)
		}))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// waitClosed waits until the master has closed conn: it leaves READY.
func waitClosed(t *testing.T, conn *grpc.ClientConn, what string) {
	t.Helper()
	ctx := ctxTimeout(t, time.Minute)
	for conn.GetState() == connectivity.Ready {
		if !conn.WaitForStateChange(ctx, connectivity.Ready) {
			t.Fatalf("%s still open after a minute", what)
		}
	}
}

// Issue 8.1: a busy client's concurrent calls are never refused as
// replays, while a replayed call still is.
func TestConcurrentCallsNeverRefused(t *testing.T) {
	key := writeKey(t, testKey)
	m, addr := startMaster(t, key)
	c := dial(t, addr, testKey)
	ctx := ctxTimeout(t, 5*time.Minute)

	// 50,000 Joins at once from one client (the queue is empty, so each
	// returns at once): gRPC signs each call before it waits for a free
	// stream, and the master's handlers run in any order.
	start := time.Now()
	const joins = 50000
	var refused atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range joins {
		wg.Go(func() {
			if err := c.Queue("tasks").Join(ctx); err != nil {
				refused.Add(1)
				first.CompareAndSwap(nil, err.Error())
			}
		})
	}
	wg.Wait()
	if n := refused.Load(); n > 0 {
		t.Fatalf("%d of %d concurrent Joins failed; first: %v", n, joins, first.Load())
	}

	// 20,000 raw Consume opens, 256 at a time.
	conn, ac := rawConn(t, addr, testKey)
	qs := pb.NewQueueServiceClient(conn)
	const opens, parallel = 20000, 256
	var next atomic.Int64
	for range parallel {
		wg.Go(func() {
			for next.Add(1) <= opens {
				stream, err := qs.Consume(ctx)
				if err == nil {
					err = stream.Send(&pb.ConsumeRequest{Queue: "tasks"})
				}
				if err == nil {
					err = stream.CloseSend()
				}
				if err == nil {
					_, err = stream.Recv() // the master ends the stream after our goodbye
				}
				if err != io.EOF {
					refused.Add(1)
					first.CompareAndSwap(nil, fmt.Sprint(err))
				}
			}
		})
	}
	wg.Wait()
	if n := refused.Load(); n > 0 {
		t.Fatalf("%d of %d Consume opens failed; first: %v", n, opens, first.Load())
	}
	// A call that arrives within auth.ReplayHorizon of being signed is
	// never refused. When both floods took longer than that (a machine
	// busy enough), a call may have waited longer, and be refused as
	// signed too long ago by design; its client sent it again (no call
	// failed, above).
	if took := time.Since(start); took < auth.ReplayHorizon {
		if strings.Contains(m.output(), "refused") {
			t.Fatalf("the master logged refusals of legitimate calls:\n%s", grepLines(m.output(), "refused"))
		}
	} else {
		t.Logf("the floods took %v, more than the replay horizon (%v): calls that waited longer may be refused as stale and sent again; not checked", took.Round(time.Second), auth.ReplayHorizon)
	}

	// A captured call, resent, is refused as a replay: not as a wrong key.
	mdCtx := credentials.NewContextWithRequestInfo(ctx, credentials.RequestInfo{Method: pb.QueueService_Stats_FullMethodName})
	md, err := ac.GetRequestMetadata(mdCtx)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	replay := metadata.NewOutgoingContext(ctx, metadata.New(md))
	if _, err := pb.NewQueueServiceClient(plain).Stats(replay, &pb.StatsRequest{}); err != nil {
		t.Fatalf("the captured call itself: %v", err)
	}
	_, err = pb.NewQueueServiceClient(plain).Stats(replay, &pb.StatsRequest{})
	if !auth.IsReplayError(err) {
		t.Fatalf("replayed call: %v; want a replay refusal", err)
	}
	m.waitLine("replayed", 30*time.Second)
}

// Issue 8.2: a connection that never authenticates is closed after
// -auth-timeout; one that did is kept.
func TestKeylessConnectionsClosed(t *testing.T) {
	key := writeKey(t, testKey)
	m, addr := startMaster(t, key, "-auth-timeout", "2s")
	ctx := ctxTimeout(t, time.Minute)

	authed, _ := rawConn(t, addr, testKey) // logged in: stays open
	var keyless []*grpc.ClientConn
	for range 20 {
		conn, err := keylessConn(ctx, addr)
		if err != nil {
			t.Fatalf("keyless connection: %v", err)
		}
		defer conn.Close()
		keyless = append(keyless, conn)
	}
	silent, err := net.Dial("tcp", addr) // not even the HTTP/2 preface
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	for i, conn := range keyless {
		waitClosed(t, conn, fmt.Sprintf("keyless connection %d", i))
	}
	silent.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadAll(silent); err != nil {
		t.Fatalf("silent connection: %v; want the master to close it", err)
	}
	// Every keyless connection was accepted after the authenticated one,
	// so its deadline, had it had one, is past: it must still be open.
	if st := authed.GetState(); st != connectivity.Ready {
		t.Fatalf("the authenticated connection is %v; want it kept open", st)
	}
	if _, err := pb.NewQueueServiceClient(authed).Stats(ctx, &pb.StatsRequest{}); err != nil {
		t.Fatalf("call on the authenticated connection: %v", err)
	}
	m.waitLine("not authenticated within -auth-timeout", 30*time.Second)
}

// Issue 8.2: with 1,100 keyless connections held open against a master
// limited to 1,024 file descriptors, and a flood of new ones that goes on
// from another host, a real slave still connects and works. The auth
// timeout is an hour here, so only the master's choice of which
// connection to drop lets the slave in.
func TestKeylessFloodDoesNotLockOutSlaves(t *testing.T) {
	key := writeKey(t, testKey)
	addrFile := filepath.Join(t.TempDir(), "addr")
	m := start(t, "master", "/bin/sh", "-c", `ulimit -n 1024 && exec "$0" "$@"`, filepath.Join(binDir, "master"),
		"-listen", "127.0.0.1:0", "-authkey-file", key, "-addr-file", addrFile, "-auth-timeout", "1h",
		"-demo", "300", "-demo-slaves", "1", "-demo-progress", "log")
	m.waitLine("master serving", 30*time.Second)
	if line := m.waitLine("-max-conns lowered", 30*time.Second); !strings.Contains(line, "open_file_limit=1024") {
		t.Fatalf("want the master to fit its caps under 1,024 files: %s", line)
	}
	raw, err := os.ReadFile(addrFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(string(raw))

	ctx := ctxTimeout(t, 5*time.Minute)
	var wg sync.WaitGroup
	var held atomic.Int64
	conns := make(chan *grpc.ClientConn, 1100)
	for range 1100 {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if conn, err := keylessConn(cctx, addr, "127.0.0.2"); err == nil {
				held.Add(1)
				conns <- conn
			}
		})
	}
	wg.Wait()
	close(conns)
	defer func() {
		for conn := range conns {
			conn.Close()
		}
	}()
	t.Logf("%d keyless connections completed their handshake", held.Load())
	m.waitLine("made room", 30*time.Second)

	// The flood goes on while the slave connects: 16 keyless connections
	// at a time from 127.0.0.2, each replaced as soon as it is up.
	flood, stopFlood := context.WithCancel(ctx)
	var opened atomic.Int64
	for range 16 {
		wg.Go(func() {
			for flood.Err() == nil {
				cctx, cancel := context.WithTimeout(flood, 10*time.Second)
				if conn, err := keylessConn(cctx, addr, "127.0.0.2"); err == nil {
					opened.Add(1)
					conn.Close()
				}
				cancel()
			}
		})
	}
	startSlave(t, "slave", addr, key)
	checkExactlyOnce(t, m, 300)
	stopFlood()
	wg.Wait()
	t.Logf("%d more keyless connections opened while the slave connected and worked", opened.Load())
}

// A connection that has not authenticated may have only a few calls open:
// the handshake's, a health check, reflection. Calls without a session
// are refused at once, and exempt ones past the few too.
func TestKeylessStreamsBounded(t *testing.T) {
	key := writeKey(t, testKey)
	_, addr := startMaster(t, key)
	ctx := ctxTimeout(t, time.Minute)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	const n = 1000
	var open, refused atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				_, err = w.Recv() // the first answer, for a stream let through
			}
			switch status.Code(err) {
			case codes.OK:
				open.Add(1)
			case codes.ResourceExhausted:
				refused.Add(1)
			default:
				t.Errorf("Watch: %v", err)
			}
		})
	}
	wg.Wait()
	if open.Load() != 16 || refused.Load() != n-16 {
		t.Fatalf("%d Watch streams open, %d refused; want 16 and %d", open.Load(), refused.Load(), n-16)
	}
}

// Issue 8.3: one authenticated client opening thousands of streams and
// waiting calls gets the limits' worth, RESOURCE_EXHAUSTED for the rest,
// and the master's memory stays bounded and comes back after.
func TestStreamAndWaitFloodBounded(t *testing.T) {
	bin := buildNoRaceMaster(t)
	key := writeKey(t, testKey)
	addrFile := filepath.Join(t.TempDir(), "addr")
	m := start(t, "master", bin, "-listen", "127.0.0.1:0", "-authkey-file", key, "-addr-file", addrFile)
	m.waitLine("master serving", 30*time.Second)
	raw, err := os.ReadFile(addrFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(string(raw))
	c := dial(t, addr, testKey)
	ctx := ctxTimeout(t, 5*time.Minute)
	if _, err := c.Queue("tasks").Put(ctx, []byte("7")); err != nil { // so that Joins wait
		t.Fatal(err)
	}
	idle := rssKiB(t, m)

	conn, _ := rawConn(t, addr, testKey)
	qs := pb.NewQueueServiceClient(conn)
	fctx, stopFlood := context.WithCancel(ctx)
	defer stopFlood()
	const streams, joins = 20000, 15000
	const maxStreams, maxWaits = 1024, 4096 // the master's defaults
	var wg sync.WaitGroup
	var exhausted, other atomic.Int64
	var firstOther atomic.Value
	allRefused := make(chan struct{})
	want := int64(streams - maxStreams + joins - maxWaits)
	refusedOne := func(err error) {
		if status.Code(err) == codes.ResourceExhausted {
			if exhausted.Add(1) == want {
				close(allRefused)
			}
			return
		}
		if fctx.Err() == nil {
			other.Add(1)
			firstOther.CompareAndSwap(nil, fmt.Sprint(err))
		}
	}
	floodStart := time.Now()
	for range streams {
		wg.Go(func() {
			stream, err := qs.Consume(fctx)
			if err == nil {
				err = stream.Send(&pb.ConsumeRequest{Queue: "tasks"}) // no credit: it just waits
			}
			if err == nil {
				_, err = stream.Recv()
			}
			refusedOne(err)
		})
	}
	for range joins {
		wg.Go(func() {
			_, err := qs.Join(fctx, &pb.JoinRequest{Queue: "tasks"})
			refusedOne(err)
		})
	}
	select {
	case <-allRefused:
	case <-ctx.Done():
		t.Fatalf("%d refused with RESOURCE_EXHAUSTED, want %d; %d other errors (first %v)", exhausted.Load(), want, other.Load(), firstOther.Load())
	}
	st, err := c.Queue("tasks").Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Consumers != maxStreams {
		t.Fatalf("%d consumers open; want the limit, %d", st.Consumers, maxStreams)
	}
	peak := rssKiB(t, m)
	t.Logf("flood refused after %v", time.Since(floodStart))
	t.Logf("master RSS: idle %d MiB, with %d streams and %d waiting Joins held %d MiB", idle/1024, maxStreams, maxWaits, peak/1024)
	const bound = 256 << 10 // KiB
	if peak > bound {
		t.Fatalf("master RSS %d MiB under the flood; want under %d MiB", peak/1024, bound/1024)
	}
	if n := other.Load(); n > 0 {
		t.Fatalf("%d calls failed other than with RESOURCE_EXHAUSTED; first: %v", n, firstOther.Load())
	}

	stopFlood()
	wg.Wait()
	t.Logf("flood over after %v", time.Since(floodStart))
	// The streams and waits are gone, and their memory goes back to the
	// system: the master frees what they held within a bounded time.
	for {
		st, err := c.Queue("tasks").Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rss := rssKiB(t, m)
		if st.Consumers == 0 && rss < idle+(peak-idle)/2 {
			t.Logf("after the flood: RSS %d MiB", rss/1024)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after the flood: %d consumers, RSS %d MiB (peak %d MiB, idle %d MiB)", st.Consumers, rss/1024, peak/1024, idle/1024)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Issue 8.4: thousands of refusals from a keyless client cost a few log
// lines and a summary, not a line each. The interval is an hour, so the
// summary comes when the master stops, however long the refusals took.
func TestRefusalsLogRateLimited(t *testing.T) {
	key := writeKey(t, testKey)
	m, addr := startMaster(t, key, "-refusal-log-interval", "1h", "-auth-timeout", "1h")
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := ctxTimeout(t, 2*time.Minute)
	ac := pb.NewAuthServiceClient(conn)
	qs := pb.NewQueueServiceClient(conn)
	const n = 3000
	for i := range n {
		nonce := make([]byte, 32)
		rand.Read(nonce)
		if _, err := ac.Login(ctx, &pb.LoginRequest{ServerNonce: nonce, ClientProof: nonce}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("login %d: %v", i, err)
		}
		if _, err := qs.Stats(ctx, &pb.StatsRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("call %d without metadata: %v", i, err)
		}
		bogus := metadata.NewOutgoingContext(ctx, metadata.Pairs("distq-session", "00112233445566778899aabbccddeeff",
			"distq-seq", strconv.Itoa(i+1), "distq-mac", strings.Repeat("ab", 32)))
		if _, err := qs.Stats(bogus, &pb.StatsRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("call %d on an unknown session: %v", i, err)
		}
	}
	m.signal(syscall.SIGTERM)
	if code := m.wait(time.Minute); code != 0 {
		t.Fatalf("master exited %d", code)
	}
	full := grepLines(m.output(), "refusals: ")
	summary := m.waitLine("more refusals, not logged one by one", time.Second)
	t.Logf("%d refusals; the log:\n%s", 3*n, full)
	lines := strings.Split(full, "\n")
	if len(lines) != 6 { // five in full, one summary
		t.Fatalf("%d refusal lines; want the first five in full and one summary", len(lines))
	}
	if !strings.Contains(summary, "count=8995") {
		t.Fatalf("summary %q; want the other 8,995 refusals counted", summary)
	}
	for _, want := range []string{"login refused", "call refused", "127.0.0.1"} {
		if !strings.Contains(summary, want) {
			t.Fatalf("the summary does not name %q: %s", want, summary)
		}
	}
}

var (
	noRaceOnce sync.Once
	noRaceBin  string
	noRaceErr  error
)

// buildNoRaceMaster builds the master without the race detector, whose
// shadow memory would swamp a measurement of the master's own.
func buildNoRaceMaster(t *testing.T) string {
	t.Helper()
	noRaceOnce.Do(func() {
		dir := filepath.Join(binDir, "norace")
		cmd := exec.Command("go", "build", "-o", dir+"/", "../../cmd/master")
		out, err := cmd.CombinedOutput()
		if err != nil {
			noRaceErr = fmt.Errorf("building the master without -race: %v\n%s", err, out)
		}
		noRaceBin = filepath.Join(dir, "master")
	})
	if noRaceErr != nil {
		t.Fatal(noRaceErr)
	}
	return noRaceBin
}

// rssKiB reads a running process's resident set size.
func rssKiB(t *testing.T, p *proc) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc to read the master's memory from: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

func grepLines(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// Issue 8.5: a late ack from before a master restart cannot settle an item
// of the new master, even when both masters number their first item and
// lease alike.
func TestLateAckAfterRestartRefused(t *testing.T) {
	key := writeKey(t, testKey)
	m1, addr := startMaster(t, key)
	ctx := ctxTimeout(t, 2*time.Minute)
	old := dial(t, addr, testKey)
	if _, err := old.Queue("tasks").Put(ctx, []byte("old")); err != nil {
		t.Fatal(err)
	}
	late, err := old.Queue("tasks").Lease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}

	m1.cmd.Process.Kill()
	m1.wait(time.Minute)
	m2 := start(t, "master2", "master", "-listen", addr, "-authkey-file", key)
	m2.waitLine("master serving", 30*time.Second)

	fresh := dial(t, addr, testKey)
	if _, err := fresh.Queue("tasks").Put(ctx, []byte("new")); err != nil {
		t.Fatal(err)
	}
	held, err := fresh.Queue("tasks").Lease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before the restart: item %d; after: item %d", late.ID, held.ID)

	// The old holder's client logs in again by itself; its ack is refused.
	if err := late.Reply(ctx, "results", []byte("reply-for-OLD")); !errors.Is(err, distq.ErrLeaseLost) {
		t.Fatalf("late ack from before the restart: %v; want ErrLeaseLost", err)
	}
	if err := held.Reply(ctx, "results", []byte("reply-for-NEW")); err != nil {
		t.Fatalf("the real holder's ack: %v", err)
	}
	r, err := fresh.Queue("results").GetNowait(ctx)
	if err != nil || string(r.Payload) != "reply-for-NEW" || r.ReplyTo != held.ID {
		t.Fatalf("result %+v, %v; want the new holder's reply to item %d", r, err, held.ID)
	}
	if _, err := fresh.Queue("results").GetNowait(ctx); !errors.Is(err, distq.ErrEmpty) {
		t.Fatalf("a second result: %v", err)
	}
	st, err := fresh.Queue("tasks").Stats(ctx)
	if err != nil || st.AckedTotal != 1 || st.RefusedTotal != 1 {
		t.Fatalf("stats %+v, %v; want 1 ack and 1 refused", st, err)
	}
}
