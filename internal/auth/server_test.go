package auth

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	distqv1 "github.com/distq/distq/proto/distq/v1"
)

func TestNewServerValidates(t *testing.T) {
	for name, cfg := range map[string]ServerConfig{
		"no key":           {},
		"empty key":        {Key: []byte{}},
		"negative ttl":     {Key: testKey, NonceTTL: -1},
		"negative idle":    {Key: testKey, SessionIdle: -1},
		"negative pending": {Key: testKey, MaxPending: -1},
		"negative max":     {Key: testKey, MaxSessions: -1},
	} {
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("%s: NewServer accepted %+v", name, cfg)
		}
	}
	s, err := NewServer(ServerConfig{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if s.pending.max != defaultMaxPending || s.pending.ttl != defaultNonceTTL ||
		s.sessions.max != DefaultMaxSessions || s.sessions.ttl != defaultSessionIdle {
		t.Fatal("defaults not applied")
	}
}

func TestNewServerCopiesKey(t *testing.T) {
	key := []byte("secret")
	s, err := NewServer(ServerConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	key[0] = 'X'
	if string(s.key) != "secret" {
		t.Fatal("server key aliases the caller's slice")
	}
}

func TestNewClientValidates(t *testing.T) {
	if _, err := NewClient(nil); err == nil {
		t.Fatal("NewClient(nil) accepted")
	}
	c, err := NewClient(testKey)
	if err != nil {
		t.Fatal(err)
	}
	if c.RequireTransportSecurity() {
		t.Fatal("RequireTransportSecurity = true")
	}
}

func TestClientNoMetadataForAuthService(t *testing.T) {
	c, err := NewClient(testKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{distqv1.AuthService_Challenge_FullMethodName, distqv1.AuthService_Login_FullMethodName} {
		ctx := credentials.NewContextWithRequestInfo(context.Background(), credentials.RequestInfo{Method: m})
		md, err := c.GetRequestMetadata(ctx)
		if err != nil || len(md) != 0 {
			t.Fatalf("GetRequestMetadata(%s) = %v, %v; want nothing", m, md, err)
		}
	}
	ctx := credentials.NewContextWithRequestInfo(context.Background(), credentials.RequestInfo{Method: distqv1.QueueService_Stats_FullMethodName})
	if _, err := c.GetRequestMetadata(ctx); !IsSessionError(err) {
		t.Fatalf("GetRequestMetadata without session: %v, want a session error", err)
	}
}

func TestChallengeTableEvictsOldest(t *testing.T) {
	clock := newFakeClock()
	tab := newChallengeTable(3, 30*time.Second)
	nonce := func(b byte) []byte { n := make([]byte, 32); n[0] = b; return n }
	for i := range byte(5) {
		tab.add(nonce(i), nonce(100+i), clock.Now())
		clock.Advance(time.Second)
	}
	if n := tab.len(); n != 3 {
		t.Fatalf("len = %d, want 3", n)
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := tab.take(nonce(byte(i)), clock.Now()); ok != want {
			t.Errorf("take(%d) = %v, want %v", i, ok, want)
		}
	}
	// Expired entries are swept on the next add.
	tab.add(nonce(10), nonce(110), clock.Now())
	tab.add(nonce(11), nonce(111), clock.Now())
	clock.Advance(30 * time.Second)
	tab.add(nonce(12), nonce(112), clock.Now())
	if n := tab.len(); n != 1 {
		t.Fatalf("len after sweep = %d, want 1", n)
	}
}

func TestSessionTableEvictsIdleNotStreaming(t *testing.T) {
	clock := newFakeClock()
	tab := newSessionTable(2, 10*time.Minute)
	a, err := tab.add("a", nil, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.hold(a, clock.Now()); err != nil { // a has an open stream
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if _, err := tab.add("b", nil, clock.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if _, err := tab.add("c", nil, clock.Now()); err != nil { // evicts b, not a
		t.Fatal(err)
	}
	if _, err := tab.lookup("b", clock.Now()); err != errSessionUnknown {
		t.Fatalf("b: %v, want unknown", err)
	}
	c, err := tab.lookup("c", clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.hold(c, clock.Now()); err != nil {
		t.Fatal(err)
	}
	// Every session now has an open stream: refuse rather than cut one off.
	if _, err := tab.add("d", nil, clock.Now()); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("add with all sessions streaming: %v, want RESOURCE_EXHAUSTED", err)
	}

	// a's stream keeps it alive past the idle limit; once released it idles
	// from the release time.
	clock.Advance(time.Hour)
	if _, err := tab.lookup("a", clock.Now()); err != nil {
		t.Fatalf("a with open stream: %v", err)
	}
	tab.release(a, clock.Now())
	clock.Advance(10*time.Minute - time.Nanosecond)
	if _, err := tab.lookup("a", clock.Now()); err != nil {
		t.Fatalf("a just before expiry: %v", err)
	}
	clock.Advance(time.Nanosecond)
	if _, err := tab.lookup("a", clock.Now()); err != errSessionExpired {
		t.Fatalf("a after expiry: %v, want expired", err)
	}
	if _, err := tab.lookup("a", clock.Now()); err != errSessionUnknown {
		t.Fatalf("a after removal: %v, want unknown", err)
	}
}

func TestSessionTableSweepsOnAdd(t *testing.T) {
	clock := newFakeClock()
	tab := newSessionTable(100, 10*time.Minute)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := tab.add(id, nil, clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(10 * time.Minute)
	if _, err := tab.add("d", nil, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if n := tab.len(); n != 1 {
		t.Fatalf("len = %d, want 1", n)
	}
}

func TestAdmitAfterRemovalRefused(t *testing.T) {
	clock := newFakeClock()
	tab := newSessionTable(1, 10*time.Minute)
	a, err := tab.add("a", nil, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tab.add("b", nil, clock.Now()); err != nil { // evicts a
		t.Fatal(err)
	}
	if err := tab.admit(a, 1, clock.Now()); err != errSessionUnknown {
		t.Fatalf("admit on evicted session: %v", err)
	}
	if err := tab.hold(a, clock.Now()); err != errSessionUnknown {
		t.Fatalf("hold on evicted session: %v", err)
	}
}
