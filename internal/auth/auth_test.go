package auth

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	distqv1 "github.com/distq/distq/proto/distq/v1"
)

var (
	testKey  = []byte("correct horse battery staple")
	otherKey = []byte("incorrect horse battery staple")
)

func TestRightKeyUnary(t *testing.T) {
	m := startMaster(t, testKey)
	c, conn := login(t, m, testKey)
	if len(c.Session()) != 32 {
		t.Fatalf("session id %q, want 32 hex chars", c.Session())
	}
	for range 3 {
		wantCode(t, stats(t.Context(), conn), codes.Unimplemented)
	}
	if got := m.queue.lastSession.Load(); got != c.Session() {
		t.Fatalf("SessionFromContext in handler = %v, want %q", got, c.Session())
	}
}

func TestRightKeyStream(t *testing.T) {
	m := startMaster(t, testKey)
	c, conn := login(t, m, testKey)
	stream, err := distqv1.NewQueueServiceClient(conn).Consume(t.Context())
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.Unimplemented)
	if got := m.queue.lastSession.Load(); got != c.Session() {
		t.Fatalf("SessionFromContext in stream handler = %v, want %q", got, c.Session())
	}
}

func TestMissingMetadata(t *testing.T) {
	m := startMaster(t, testKey)
	raw := dial(t, m.addr, nil)
	wantCode(t, stats(t.Context(), raw), codes.Unauthenticated)

	stream, err := distqv1.NewQueueServiceClient(raw).Consume(t.Context())
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.Unauthenticated)
	if m.queue.lastSession.Load() != nil {
		t.Fatal("a handler ran for an unauthenticated call")
	}
}

func TestExemptMethods(t *testing.T) {
	m := startMaster(t, testKey)
	raw := dial(t, m.addr, nil)
	_, err := healthpb.NewHealthClient(raw).Check(t.Context(), &healthpb.HealthCheckRequest{})
	wantCode(t, err, codes.OK)

	// A client without a session may call health through its credentials too.
	c, err := NewClient(testKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = healthpb.NewHealthClient(dial(t, m.addr, c)).Check(t.Context(), &healthpb.HealthCheckRequest{})
	wantCode(t, err, codes.OK)
}

func TestNoSessionYetIsSessionError(t *testing.T) {
	m := startMaster(t, testKey)
	c, err := NewClient(testKey)
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, m.addr, c)
	err = stats(t.Context(), conn)
	if !IsSessionError(err) {
		t.Fatalf("call before handshake: %v, want a session error", err)
	}
	if err := c.Reauth(t.Context(), conn, c.Session()); err != nil {
		t.Fatalf("Reauth: %v", err)
	}
	wantCode(t, stats(t.Context(), conn), codes.Unimplemented)
}

func TestWrongKeyOnClientIsMasterUnverified(t *testing.T) {
	// The key is symmetric: a client with the wrong key cannot verify the
	// genuine master, so it stops before Login.
	m := startMaster(t, testKey)
	c, err := NewClient(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Handshake(t.Context(), dial(t, m.addr, c))
	if !errors.Is(err, ErrMasterUnverified) {
		t.Fatalf("Handshake: %v, want ErrMasterUnverified", err)
	}
	if n := m.logins.Load(); n != 0 {
		t.Fatalf("master saw %d Login calls, want 0", n)
	}
	if c.Session() != "" {
		t.Fatalf("session %q after failed handshake", c.Session())
	}
}

func TestFakeMasterNeverSeesLogin(t *testing.T) {
	fake := startMaster(t, otherKey)
	c, err := NewClient(testKey)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Handshake(t.Context(), dial(t, fake.addr, c))
	if !errors.Is(err, ErrMasterUnverified) {
		t.Fatalf("Handshake: %v, want ErrMasterUnverified", err)
	}
	if n := fake.challenges.Load(); n != 1 {
		t.Fatalf("fake master saw %d Challenge calls, want 1", n)
	}
	if n := fake.logins.Load(); n != 0 {
		t.Fatalf("fake master saw %d Login calls, want 0", n)
	}
}

func TestLoginRefusedIsAuthFailed(t *testing.T) {
	// The master proves itself, then refuses Login (here: the nonce
	// expired in between), which the client reports as ErrAuthFailed.
	var m *master
	m = startMaster(t, testKey, withBeforeLogin(func() { m.clock.Advance(31 * time.Second) }))
	c, err := NewClient(testKey)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Handshake(t.Context(), dial(t, m.addr, c))
	if !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("Handshake: %v, want ErrAuthFailed", err)
	}
	if !strings.Contains(err.Error(), "wrong key") {
		t.Fatalf("error %q does not mention a wrong key", err)
	}
}

func TestNetworkErrorIsReturnedAsIs(t *testing.T) {
	// A port nothing listens on: the handshake fails with UNAVAILABLE, which
	// the caller can see and retry.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	c, err := NewClient(testKey)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Handshake(t.Context(), dial(t, addr, c))
	if errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrMasterUnverified) {
		t.Fatalf("Handshake: %v, want a plain error", err)
	}
	wantCode(t, err, codes.Unavailable)
}

// rawHandshake runs Challenge by hand and returns a correct LoginRequest.
func rawHandshake(t *testing.T, ac distqv1.AuthServiceClient, key []byte) *distqv1.LoginRequest {
	t.Helper()
	cn, err := newNonce()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := ac.Challenge(t.Context(), &distqv1.ChallengeRequest{ClientNonce: cn})
	if err != nil {
		t.Fatalf("Challenge: %v", err)
	}
	return &distqv1.LoginRequest{ServerNonce: ch.ServerNonce, ClientProof: clientProof(key, ch.ServerNonce, cn)}
}

func TestWrongProofRefused(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	m := startMaster(t, testKey, withLogger(hclog.New(&hclog.LoggerOptions{
		Output: &logs, Mutex: &mu, Level: hclog.Debug,
	})))
	ac := distqv1.NewAuthServiceClient(dial(t, m.addr, nil))
	req := rawHandshake(t, ac, otherKey)
	_, err := ac.Login(t.Context(), req)
	wantCode(t, err, codes.Unauthenticated)
	if msg := status.Convert(err).Message(); msg != "distq: authentication failed" {
		t.Fatalf("message %q", msg)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "[WARN]") || !strings.Contains(out, "login refused") || !strings.Contains(out, "127.0.0.1") {
		t.Fatalf("no warning with the peer address in log:\n%s", out)
	}
	if strings.Contains(out, string(testKey)) || strings.Contains(out, string(otherKey)) {
		t.Fatalf("log contains a key:\n%s", out)
	}
}

func TestLoginReplayRefused(t *testing.T) {
	m := startMaster(t, testKey)
	ac := distqv1.NewAuthServiceClient(dial(t, m.addr, nil))
	req := rawHandshake(t, ac, testKey)
	if _, err := ac.Login(t.Context(), req); err != nil {
		t.Fatalf("first Login: %v", err)
	}
	_, err := ac.Login(t.Context(), req)
	wantCode(t, err, codes.Unauthenticated)
}

func TestNonceUsedUpByWrongProof(t *testing.T) {
	m := startMaster(t, testKey)
	ac := distqv1.NewAuthServiceClient(dial(t, m.addr, nil))
	req := rawHandshake(t, ac, testKey)
	good := req.ClientProof
	req.ClientProof = append([]byte(nil), good...)
	req.ClientProof[0] ^= 1
	_, err := ac.Login(t.Context(), req)
	wantCode(t, err, codes.Unauthenticated)
	req.ClientProof = good
	_, err = ac.Login(t.Context(), req)
	wantCode(t, err, codes.Unauthenticated)
}

func TestBadNonceLength(t *testing.T) {
	m := startMaster(t, testKey)
	ac := distqv1.NewAuthServiceClient(dial(t, m.addr, nil))
	for _, n := range []int{0, 31, 33} {
		_, err := ac.Challenge(t.Context(), &distqv1.ChallengeRequest{ClientNonce: make([]byte, n)})
		wantCode(t, err, codes.InvalidArgument)
		_, err = ac.Login(t.Context(), &distqv1.LoginRequest{ServerNonce: make([]byte, n), ClientProof: make([]byte, 32)})
		wantCode(t, err, codes.InvalidArgument)
	}
}

func TestExpiredNonce(t *testing.T) {
	m := startMaster(t, testKey)
	ac := distqv1.NewAuthServiceClient(dial(t, m.addr, nil))

	req := rawHandshake(t, ac, testKey)
	m.clock.Advance(29 * time.Second)
	if _, err := ac.Login(t.Context(), req); err != nil {
		t.Fatalf("Login after 29s: %v", err)
	}

	req = rawHandshake(t, ac, testKey)
	m.clock.Advance(31 * time.Second)
	_, err := ac.Login(t.Context(), req)
	wantCode(t, err, codes.Unauthenticated)
}

// callMetadata returns the metadata c would send for one call of method.
func callMetadata(t *testing.T, c *Client, method string) metadata.MD {
	t.Helper()
	ctx := credentials.NewContextWithRequestInfo(t.Context(), credentials.RequestInfo{Method: method})
	md, err := c.GetRequestMetadata(ctx)
	if err != nil {
		t.Fatalf("GetRequestMetadata: %v", err)
	}
	return metadata.New(md)
}

func statsWith(t *testing.T, raw grpc.ClientConnInterface, md metadata.MD) error {
	t.Helper()
	return stats(metadata.NewOutgoingContext(t.Context(), md), raw)
}

func TestCallReplayRefused(t *testing.T) {
	m := startMaster(t, testKey)
	c, _ := login(t, m, testKey)
	raw := dial(t, m.addr, nil)
	md := callMetadata(t, c, distqv1.QueueService_Stats_FullMethodName)
	wantCode(t, statsWith(t, raw, md), codes.Unimplemented)
	wantCode(t, statsWith(t, raw, md), codes.Unauthenticated)
}

func TestCallMetadataBoundToMethod(t *testing.T) {
	m := startMaster(t, testKey)
	c, _ := login(t, m, testKey)
	raw := dial(t, m.addr, nil)
	md := callMetadata(t, c, distqv1.QueueService_Ack_FullMethodName)
	wantCode(t, statsWith(t, raw, md), codes.Unauthenticated)
}

func TestTamperedMACRefused(t *testing.T) {
	m := startMaster(t, testKey)
	c, _ := login(t, m, testKey)
	raw := dial(t, m.addr, nil)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == '0' {
			b[i] = '1'
		} else {
			b[i] = '0'
		}
		return string(b)
	}
	for _, tamper := range []func(metadata.MD){
		func(md metadata.MD) { md.Set(mdMAC, flip(md.Get(mdMAC)[0], 17)) },
		func(md metadata.MD) { md.Set(mdMAC, strings.ToUpper(md.Get(mdMAC)[0])) },
		func(md metadata.MD) { md.Set(mdMAC, md.Get(mdMAC)[0][:63]) },
		func(md metadata.MD) { md.Set(mdSeq, "0"+md.Get(mdSeq)[0]) },
		func(md metadata.MD) { md.Set(mdSeq, "+"+md.Get(mdSeq)[0]) },
		func(md metadata.MD) { md.Set(mdSession, flip(md.Get(mdSession)[0], 0)) },
		func(md metadata.MD) { md.Append(mdSeq, "99999") },
	} {
		md := callMetadata(t, c, distqv1.QueueService_Stats_FullMethodName)
		tamper(md)
		wantCode(t, statsWith(t, raw, md), codes.Unauthenticated)
	}
	// The refused calls used up nothing: the client's own calls still work.
	wantCode(t, stats(t.Context(), dial(t, m.addr, c)), codes.Unimplemented)
}

func TestSeqOutOfOrderAndReplay(t *testing.T) {
	m := startMaster(t, testKey)
	c, _ := login(t, m, testKey)
	raw := dial(t, m.addr, nil)
	const n = 10000                 // more than the count window of old, 4,096
	mds := make([]metadata.MD, n+1) // mds[seq]
	for seq := 1; seq <= n; seq++ {
		mds[seq] = callMetadata(t, c, distqv1.QueueService_Stats_FullMethodName)
		if got := mds[seq].Get(mdSeq)[0]; got != strconv.Itoa(seq) {
			t.Fatalf("seq %s, want %d", got, seq)
		}
	}
	// The last first, then the rest from the oldest: each accepted once.
	wantCode(t, statsWith(t, raw, mds[n]), codes.Unimplemented)
	for _, seq := range []int{1, 3, 2, n / 2} {
		wantCode(t, statsWith(t, raw, mds[seq]), codes.Unimplemented)
	}
	for _, seq := range []int{2, n, n / 2} {
		err := statsWith(t, raw, mds[seq])
		wantCode(t, err, codes.Unauthenticated)
		if !IsReplayError(err) || IsSessionError(err) {
			t.Fatalf("replay of seq %d: %v; want a replay error", seq, err)
		}
	}

	// Stragglers are accepted within the horizon of being signed, and
	// refused as stale once two rotations have passed them by.
	m.clock.Advance(ReplayHorizon - time.Second)
	wantCode(t, statsWith(t, raw, mds[4]), codes.Unimplemented)
	m.clock.Advance(time.Second)
	wantCode(t, statsWith(t, raw, mds[5]), codes.Unimplemented) // rotation 1
	m.clock.Advance(ReplayHorizon)
	// Rotation 2 moves the floor to n, the highest seq of rotation 1: the
	// client's own next call, seq n+1, is fine; seq 7, signed two
	// horizons ago and never sent, is refused as stale.
	wantCode(t, stats(t.Context(), dial(t, m.addr, c)), codes.Unimplemented)
	if err := statsWith(t, raw, mds[7]); !IsReplayError(err) {
		t.Fatalf("seq signed two horizons ago: %v; want a replay error", err)
	}
}

// Thousands of calls at once from one client, on one connection, signed
// before they wait for a stream and run by handlers in any order: none is
// refused. (With the count window of old, thousands were.)
func TestManyConcurrentCallsNeverRefused(t *testing.T) {
	m := startMaster(t, testKey)
	_, conn := login(t, m, testKey)
	const calls = 20000
	var wg sync.WaitGroup
	var refused atomic.Int64
	var first atomic.Value
	for range calls {
		wg.Go(func() {
			if err := stats(t.Context(), conn); status.Code(err) != codes.Unimplemented {
				refused.Add(1)
				first.CompareAndSwap(nil, err)
			}
		})
	}
	wg.Wait()
	if n := refused.Load(); n > 0 {
		t.Fatalf("%d of %d concurrent calls refused; first: %v", n, calls, first.Load())
	}
}

func TestSessionExpiryAndReauth(t *testing.T) {
	m := startMaster(t, testKey)
	c, conn := login(t, m, testKey)
	wantCode(t, stats(t.Context(), conn), codes.Unimplemented)

	m.clock.Advance(9 * time.Minute)
	wantCode(t, stats(t.Context(), conn), codes.Unimplemented) // a call resets the idle timer
	m.clock.Advance(9 * time.Minute)
	wantCode(t, stats(t.Context(), conn), codes.Unimplemented)

	m.clock.Advance(11 * time.Minute)
	stale := c.Session()
	err := stats(t.Context(), conn)
	if !IsSessionError(err) {
		t.Fatalf("call on expired session: %v, want a session error", err)
	}
	if err := c.Reauth(t.Context(), conn, stale); err != nil {
		t.Fatalf("Reauth: %v", err)
	}
	fresh := c.Session()
	if fresh == stale || fresh == "" {
		t.Fatalf("session %q after Reauth of %q", fresh, stale)
	}
	wantCode(t, stats(t.Context(), conn), codes.Unimplemented)

	// A late Reauth for the old session is a no-op.
	if err := c.Reauth(t.Context(), conn, stale); err != nil {
		t.Fatalf("second Reauth: %v", err)
	}
	if c.Session() != fresh || m.challenges.Load() != 2 {
		t.Fatalf("late Reauth ran a handshake (%d challenges)", m.challenges.Load())
	}
}

func TestOpenStreamKeepsSessionAlive(t *testing.T) {
	m := startMaster(t, testKey, withHold())
	c, conn := login(t, m, testKey)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := distqv1.NewQueueServiceClient(conn).Consume(ctx); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	<-m.queue.started

	m.clock.Advance(time.Hour)
	wantCode(t, stats(t.Context(), conn), codes.Unimplemented)
	if c.Session() != m.queue.lastSession.Load() {
		t.Fatal("stream ran on another session")
	}

	cancel()
	<-m.streamDone // the stream's session is released
	m.clock.Advance(9 * time.Minute)
	wantCode(t, stats(t.Context(), conn), codes.Unimplemented)
	m.clock.Advance(11 * time.Minute)
	if err := stats(t.Context(), conn); !IsSessionError(err) {
		t.Fatalf("call after stream ended and session idled: %v, want a session error", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	m := startMaster(t, testKey)
	c, conn := login(t, m, testKey)
	const workers, calls = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*calls)
	for range workers {
		wg.Go(func() {
			for range calls {
				if err := stats(t.Context(), conn); status.Code(err) != codes.Unimplemented {
					errs <- err
				}
				_ = c.Session()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("call: %v", err)
	}
}

func TestConcurrentReauthRunsOneHandshake(t *testing.T) {
	m := startMaster(t, testKey)
	c, conn := login(t, m, testKey)
	stale := c.Session()
	m.clock.Advance(11 * time.Minute)

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			err := stats(t.Context(), conn)
			if IsSessionError(err) {
				if err := c.Reauth(t.Context(), conn, stale); err != nil {
					t.Errorf("Reauth: %v", err)
					return
				}
				err = stats(t.Context(), conn)
			}
			if status.Code(err) != codes.Unimplemented {
				t.Errorf("call after Reauth: %v", err)
			}
		})
	}
	wg.Wait()
	if n := m.challenges.Load(); n != 2 {
		t.Fatalf("%d handshakes, want 2 (login + one Reauth)", n)
	}
}

func TestServerClose(t *testing.T) {
	m := startMaster(t, testKey)
	_, conn := login(t, m, testKey)
	if err := m.auth.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.auth.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wantCode(t, stats(t.Context(), conn), codes.Unavailable)
	_, err := distqv1.NewAuthServiceClient(conn).Challenge(t.Context(), &distqv1.ChallengeRequest{ClientNonce: make([]byte, 32)})
	wantCode(t, err, codes.Unavailable)
}

func TestIsSessionError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("distq: session unknown"), false},
		{errSessionUnknown, true},
		{errSessionExpired, true},
		{errNoClientSession, true},
		{fmtWrap(errSessionExpired), true},
		{errBadMAC, false},
		{errLoginFailed, false},
		{status.Error(codes.PermissionDenied, "distq: session unknown"), false},
	} {
		if got := IsSessionError(tc.err); got != tc.want {
			t.Errorf("IsSessionError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func fmtWrap(err error) error { return errors.Join(errors.New("calling Stats"), err) }
